//! The principal of a TLS client: its certificate's subject distinguished name, written as
//! Java's `X500Principal.getName()` writes it (RFC 2253: last RDN first, `CN`, `OU`, `O`, `L`,
//! `ST`, `C`, `STREET`, `DC`, `UID` by keyword, any other attribute as its OID with the value's
//! DER in `#hex`), then mapped by `ssl.principal.mapping.rules` as Kafka's
//! `SslPrincipalMapper` does. A client without a certificate is `ANONYMOUS`, as in Kafka.
//!
//! ```text
//!  certificate DER ─► tbsCertificate.subject ─► "CN=app,OU=ops,O=acme,C=DE" ─► rules ─► "app"
//! ```

use std::fmt;

use super::der::{oid_string, tlv, Tlv};

/// `User:<name>`, the principal requests on a connection act as (ACLs come later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
}

impl Principal {
    pub fn anonymous() -> Principal {
        Principal {
            name: "ANONYMOUS".into(),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "User:{}", self.name)
    }
}

/// The subject Name (a SEQUENCE of RDN SETs) of an X.509 certificate.
fn subject(cert: &[u8]) -> Option<&[u8]> {
    let (certificate, _) = tlv(cert)?;
    let (tbs, _) = tlv(certificate.content)?;
    let mut rest = tbs.content;
    let (first, after) = tlv(rest)?;
    if first.tag == 0xa0 {
        rest = after; // [0] version
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = tlv(rest)?.1;
    }
    let (subject, _) = tlv(rest)?;
    (subject.tag == 0x30).then_some(subject.content)
}

/// RFC 2253 keywords Java's `X500Principal` uses.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// A directory string's text (PrintableString, T61String, IA5String, GeneralString,
/// BMPString, UTF8String), as Java decodes them; `None` for other types.
fn directory_string(v: &Tlv<'_>) -> Option<String> {
    match v.tag {
        0x0c | 0x13 | 0x16 | 0x1b => Some(String::from_utf8_lossy(v.content).into_owned()),
        0x14 => Some(v.content.iter().map(|&b| char::from(b)).collect()),
        0x1e => {
            let units: Vec<u16> = v
                .content
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

/// Escapes a value as Java's `AVA.toRFC2253String` does.
fn escape(value: &str) -> String {
    const ESCAPEES: &str = ",=+<>#;\"\\";
    let mut s = String::new();
    for c in value.chars() {
        if ESCAPEES.contains(c) {
            s.push('\\');
            s.push(c);
        } else if c == '\0' {
            s.push_str("\\00");
        } else {
            s.push(c);
        }
    }
    let chars: Vec<char> = s.chars().collect();
    let blank = |c: &char| *c == ' ' || *c == '\r';
    let lead = chars.iter().take_while(|c| blank(c)).count();
    let trail = chars.len() - chars.iter().rev().take_while(|c| blank(c)).count();
    let mut out = String::with_capacity(s.len());
    for (i, c) in chars.iter().enumerate() {
        if i < lead || i >= trail.max(lead) {
            out.push('\\');
        }
        out.push(*c);
    }
    out
}

/// The subject DN of a DER certificate in RFC 2253 form, or `None` if it cannot be read.
pub fn subject_dn(cert: &[u8]) -> Option<String> {
    let mut rdns = Vec::new();
    let mut rest = subject(cert)?;
    while !rest.is_empty() {
        let (set, after) = tlv(rest)?;
        rest = after;
        let mut avas = Vec::new();
        let mut inner = set.content;
        while !inner.is_empty() {
            let (seq, after) = tlv(inner)?;
            inner = after;
            let (oid, value) = tlv(seq.content)?;
            let (value, _) = tlv(value)?;
            let oid = oid_string(oid.content)?;
            let ava = match (keyword(&oid), directory_string(&value)) {
                (Some(k), Some(text)) => format!("{k}={}", escape(&text)),
                (k, _) => {
                    let hex: String = value.raw.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{}=#{hex}", k.map_or(oid.clone(), str::to_string))
                }
            };
            avas.push(ava);
        }
        rdns.push(avas.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// One rule of `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: regex::Regex,
        replacement: String,
        case: Option<char>,
    },
}

/// `ssl.principal.mapping.rules`: the first rule whose pattern matches the whole DN gives the
/// name; `DEFAULT` gives the DN itself.
#[derive(Debug, Clone)]
pub struct Mapper {
    rules: Vec<Rule>,
}

impl Mapper {
    /// Parses Kafka's syntax: `RULE:pattern/replacement/[LU]` and `DEFAULT`, comma-separated.
    pub fn parse(text: &str) -> Result<Mapper, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = split_unescaped(after)
                    .ok_or_else(|| format!("`{rest}`: expected RULE:pattern/replacement/[LU]"))?;
                let (replacement, after) = split_unescaped(after)
                    .ok_or_else(|| format!("`{rest}`: expected RULE:pattern/replacement/[LU]"))?;
                let (case, after) = match after.chars().next() {
                    Some(c @ ('L' | 'U')) => (Some(c), &after[1..]),
                    _ => (None, after),
                };
                let anchored = format!("^(?:{pattern})$");
                let pattern = regex::Regex::new(&anchored)
                    .map_err(|e| format!("`{pattern}` is not a valid pattern: {e}"))?;
                rules.push(Rule::Replace {
                    pattern,
                    replacement: java_replacement(replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(format!(
                    "`{rest}`: expected DEFAULT or RULE:pattern/replacement/[LU]"
                ));
            }
            rest = rest.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(Mapper { rules })
    }

    /// The principal name of `dn`; `None` when no rule applies (Kafka refuses the client).
    pub fn name(&self, dn: &str) -> Option<String> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Some(dn.to_string()),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    if pattern.is_match(dn) {
                        let name = pattern.replace_all(dn, replacement.as_str()).into_owned();
                        return Some(match case {
                            Some('L') => name.to_lowercase(),
                            Some('U') => name.to_uppercase(),
                            _ => name,
                        });
                    }
                }
            }
        }
        None
    }
}

/// Splits at the first `/` not escaped by `\`; the part before keeps its escapes but `\/`.
fn split_unescaped(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, n)) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '/' => return Some((out, &s[i + 1..])),
            _ => out.push(c),
        }
    }
    None
}

/// Java's `$1` group references as the regex crate's `${1}` (so `$1abc` stays group 1).
fn java_replacement(r: String) -> String {
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if n == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(n);
                    }
                }
            }
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_java() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape(" x "), "\\ x\\ ");
        assert_eq!(escape("#1=2"), "\\#1\\=2");
    }

    #[test]
    fn kafka_rules() {
        let m = Mapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, RULE:^CN=([a-z]+)\\/x,.*$/$1-slash/,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.name("CN=Kafka-App,OU=ServiceUsers,O=Acme").as_deref(),
            Some("kafka-app")
        );
        assert_eq!(m.name("CN=abc/x,O=Acme").as_deref(), Some("abc-slash"));
        assert_eq!(
            m.name("CN=other,O=Acme").as_deref(),
            Some("CN=other,O=Acme")
        );
        let strict = Mapper::parse("RULE:^CN=(.*)$/$1/U").unwrap();
        assert_eq!(strict.name("CN=app").as_deref(), Some("APP"));
        assert_eq!(strict.name("O=x"), None);
        assert!(Mapper::parse("RULE:broken").is_err());
        assert!(Mapper::parse("SOMETHING").is_err());
    }
}
