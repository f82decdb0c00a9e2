//! The `ssl.*` settings of one SSL listener, as Kafka resolves them: each key is looked up as
//! `listener.name.<listener, lower case>.<key>` first, then as `<key>`, so one file can give
//! its listeners different certificates.
//!
//! ```text
//!  listener.name.internal.ssl.keystore.location ─┐ (wins)
//!  ssl.keystore.location ────────────────────────┴─► SslSettings { keystore: PemFile(..) }
//! ```
//!
//! Only what a properties file can say is checked here (values, combinations); the files and
//! PEM texts themselves are read by the broker when it builds its TLS configuration, and its
//! errors name the key a value came from ([`Setting::key`]).

use std::collections::BTreeSet;
use std::fmt;

use crate::properties::Entry;
use crate::reader::Reader;

/// One value with the key it was read from (`ssl.x` or `listener.name.<n>.ssl.x`).
#[derive(Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
}

/// Values may be keys and passwords: never printed.
impl fmt::Debug for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Setting({})", self.key)
    }
}

/// Where a listener's own certificate chain and private key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keystore {
    /// `ssl.keystore.location`: one PEM file holding the private key and the chain.
    PemFile(Setting),
    /// `ssl.keystore.certificate.chain` and `ssl.keystore.key`: PEM text in the file itself.
    PemInline { chain: Setting, key: Setting },
}

/// Which certificates client certificates (and, between brokers, server certificates) must
/// chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Truststore {
    /// No truststore: client certificates cannot be checked; a broker connecting to another
    /// one over TLS has nothing to trust either.
    None,
    /// `ssl.truststore.location`: a PEM file of CA certificates.
    PemFile(Setting),
    /// `ssl.truststore.certificates`: PEM text in the file itself.
    PemInline(Setting),
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// A client certificate is asked for; a client without one is let in (as `ANONYMOUS`),
    /// one with an untrusted certificate is not.
    Requested,
    Required,
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientAuth::None => "none",
            ClientAuth::Requested => "requested",
            ClientAuth::Required => "required",
        })
    }
}

/// A TLS protocol version rustls offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        })
    }
}

/// The TLS settings of one SSL listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslSettings {
    pub listener: String,
    pub keystore: Keystore,
    /// `ssl.key.password`: the password of an encrypted private key.
    pub key_password: Option<Setting>,
    pub truststore: Truststore,
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`, the versions rustls offers (TLSv1.2, TLSv1.3).
    pub enabled_protocols: Vec<TlsVersion>,
    /// `ssl.cipher.suites` as written (Kafka's IANA names); empty for rustls's defaults. The
    /// broker maps them to rustls suites and refuses unknown ones.
    pub cipher_suites: Option<Setting>,
    /// `ssl.endpoint.identification.algorithm=https` (the default): a broker connecting to
    /// another over this listener checks that the certificate names the host it dialled.
    pub endpoint_identification: bool,
    /// `ssl.principal.mapping.rules` (default `DEFAULT`): from a certificate's subject to the
    /// principal's name; parsed by the broker.
    pub principal_mapping_rules: Setting,
}

/// Every `ssl.*` key the broker reads (each also as `listener.name.<n>.<key>`).
const KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.protocol",
    "ssl.cipher.suites",
    "ssl.endpoint.identification.algorithm",
    "ssl.principal.mapping.rules",
];

/// Keys of Java's TLS stack with no counterpart in rustls: accepted with a note.
const WITHOUT_EFFECT: &[&str] = &[
    "ssl.provider",
    "ssl.keymanager.algorithm",
    "ssl.trustmanager.algorithm",
    "ssl.secure.random.implementation",
    "ssl.engine.factory.class",
    "ssl.allow.dn.changes",
    "ssl.allow.san.changes",
];

const CONVERT_PKCS12: &str = "convert it with `openssl pkcs12 -in keystore.p12 -nodes -out keystore.pem` (add `-legacy` for old files) and set ssl.keystore.type=PEM with ssl.keystore.location=keystore.pem";
const CONVERT_JKS: &str = "convert it with `keytool -importkeystore -srckeystore keystore.jks -destkeystore keystore.p12 -deststoretype PKCS12`, then `openssl pkcs12 -in keystore.p12 -nodes -out keystore.pem`, and set ssl.keystore.type=PEM with ssl.keystore.location=keystore.pem";

/// Looks `key` up for `listener`: its `listener.name.<listener>.` form first. Marks both read.
fn lookup<'a>(r: &mut Reader<'a>, listener: &str, key: &'static str) -> Option<&'a Entry> {
    let own = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
    let props = r.props;
    if let Some(e) = props.get(&own) {
        r.mark_used(&e.key);
        r.entry(key);
        return Some(e);
    }
    r.entry(key)
}

fn setting(e: &Entry) -> Setting {
    Setting {
        key: e.key.clone(),
        value: e.value.trim().to_string(),
    }
}

/// A non-empty value of `key` for `listener`.
fn value<'a>(r: &mut Reader<'a>, listener: &str, key: &'static str) -> Option<&'a Entry> {
    lookup(r, listener, key).filter(|e| !e.value.trim().is_empty())
}

/// Reads the TLS settings of SSL listener `listener`; problems go to `r` and give `None`.
pub(crate) fn parse(r: &mut Reader<'_>, listener: &str, at: &Entry) -> Option<SslSettings> {
    let errors_before = r.diags.errors.len();
    let keystore_type = value(r, listener, "ssl.keystore.type");
    let location = value(r, listener, "ssl.keystore.location");
    let chain = value(r, listener, "ssl.keystore.certificate.chain");
    let key = value(r, listener, "ssl.keystore.key");
    let keystore_password = value(r, listener, "ssl.keystore.password");
    let key_password = value(r, listener, "ssl.key.password").map(setting);
    if let Some(t) = keystore_type {
        match t.value.trim().to_ascii_uppercase().as_str() {
            "PEM" => {
                if let Some(p) = keystore_password {
                    r.error(p, "a PEM keystore has no store password (as in Kafka); give the private key's password as ssl.key.password, or remove this key");
                }
            }
            "PKCS12" => r.error(
                t,
                format!("PKCS12 keystores are not supported yet; {CONVERT_PKCS12}"),
            ),
            "JKS" => r.error(
                t,
                format!("JKS keystores are not supported yet; {CONVERT_JKS}"),
            ),
            other => r.error(t, format!("`{other}`: expected PEM")),
        }
    } else if location.is_some() {
        // Kafka's default type is JKS; a PEM file is taken as such (the broker checks its
        // content and explains a JKS or PKCS12 file).
        if let Some(p) = keystore_password {
            r.warn(
                p,
                "ignored: PEM keystores have no store password (ssl.key.password decrypts the key)",
            );
        }
    }
    let keystore = match (location, chain, key) {
        (Some(l), None, None) => Some(Keystore::PemFile(setting(l))),
        (None, Some(c), Some(k)) => Some(Keystore::PemInline {
            chain: setting(c),
            key: setting(k),
        }),
        (Some(l), _, _) => {
            r.error(l, "set either ssl.keystore.location or ssl.keystore.certificate.chain with ssl.keystore.key, not both");
            None
        }
        (None, Some(c), None) => {
            r.error(c, "ssl.keystore.key (the private key, PEM) is missing");
            None
        }
        (None, None, Some(k)) => {
            r.error(
                k,
                "ssl.keystore.certificate.chain (the certificates, PEM) is missing",
            );
            None
        }
        (None, None, None) => {
            r.error(
                at,
                format!(
                    "listener `{listener}` is SSL but has no certificate: set ssl.keystore.location (a PEM file with the key and the chain), or ssl.keystore.certificate.chain and ssl.keystore.key, optionally as listener.name.{}.ssl.*",
                    listener.to_ascii_lowercase()
                ),
            );
            None
        }
    };

    let truststore_type = value(r, listener, "ssl.truststore.type");
    let trust_location = value(r, listener, "ssl.truststore.location");
    let trust_inline = value(r, listener, "ssl.truststore.certificates");
    let trust_password = value(r, listener, "ssl.truststore.password");
    if let Some(t) = truststore_type {
        match t.value.trim().to_ascii_uppercase().as_str() {
            "PEM" => {
                if let Some(p) = trust_password {
                    r.error(p, "a PEM truststore has no password (as in Kafka); remove this key");
                }
            }
            "PKCS12" | "JKS" => r.error(
                t,
                "PKCS12 and JKS truststores are not supported yet; export the CA certificates with `keytool -exportcert -rfc -alias CA -keystore truststore.jks -file ca.pem` (or `openssl pkcs12 -in truststore.p12 -nokeys -out ca.pem`) and set ssl.truststore.type=PEM with ssl.truststore.location=ca.pem",
            ),
            other => r.error(t, format!("`{other}`: expected PEM")),
        }
    }
    let truststore = match (trust_location, trust_inline) {
        (Some(l), None) => Truststore::PemFile(setting(l)),
        (None, Some(c)) => Truststore::PemInline(setting(c)),
        (None, None) => Truststore::None,
        (Some(l), Some(_)) => {
            r.error(
                l,
                "set either ssl.truststore.location or ssl.truststore.certificates, not both",
            );
            Truststore::None
        }
    };

    let client_auth = match lookup(r, listener, "ssl.client.auth") {
        None => ClientAuth::None,
        Some(e) => match e.value.trim().to_ascii_lowercase().as_str() {
            "none" | "" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            _ => {
                r.error(
                    e,
                    format!("expected none, requested or required, found `{}`", e.value),
                );
                ClientAuth::None
            }
        },
    };
    if client_auth != ClientAuth::None && truststore == Truststore::None {
        let e = lookup(r, listener, "ssl.client.auth").expect("set");
        r.error(
            e,
            format!(
                "ssl.client.auth={client_auth} needs the CAs that client certificates must chain to: set ssl.truststore.location or ssl.truststore.certificates"
            ),
        );
    }

    let mut enabled_protocols = BTreeSet::new();
    match lookup(r, listener, "ssl.enabled.protocols") {
        None => {
            enabled_protocols.insert(TlsVersion::Tls12);
            enabled_protocols.insert(TlsVersion::Tls13);
        }
        Some(e) => {
            let mut dropped = Vec::new();
            for p in e.value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match p {
                    "TLSv1.2" => {
                        enabled_protocols.insert(TlsVersion::Tls12);
                    }
                    "TLSv1.3" => {
                        enabled_protocols.insert(TlsVersion::Tls13);
                    }
                    "TLSv1" | "TLSv1.1" | "SSLv3" | "SSLv2Hello" => dropped.push(p),
                    other => r.error(
                        e,
                        format!("`{other}` is not a TLS protocol version; expected TLSv1.2 and/or TLSv1.3"),
                    ),
                }
            }
            if !dropped.is_empty() {
                r.warn(
                    e,
                    format!(
                        "{} not offered: only TLSv1.2 and TLSv1.3 are supported",
                        dropped.join(", ")
                    ),
                );
            }
            if enabled_protocols.is_empty() && r.diags.errors.len() == errors_before {
                r.error(
                    e,
                    "no supported protocol left; expected TLSv1.2 and/or TLSv1.3",
                );
            }
        }
    }
    if let Some(e) = value(r, listener, "ssl.protocol") {
        if !["TLS", "TLSv1.2", "TLSv1.3"].contains(&e.value.trim()) {
            r.warn(
                e,
                "ignored: the versions offered are those of ssl.enabled.protocols (TLSv1.2, TLSv1.3)",
            );
        }
    }
    let cipher_suites = value(r, listener, "ssl.cipher.suites").map(setting);
    let endpoint_identification = match lookup(r, listener, "ssl.endpoint.identification.algorithm")
    {
        None => true,
        Some(e) => match e.value.trim().to_ascii_lowercase().as_str() {
            "https" => true,
            "" => false,
            _ => {
                r.error(
                    e,
                    format!(
                        "expected https or nothing (to disable host name checks), found `{}`",
                        e.value
                    ),
                );
                true
            }
        },
    };
    let principal_mapping_rules = value(r, listener, "ssl.principal.mapping.rules")
        .map(setting)
        .unwrap_or_else(|| Setting {
            key: "ssl.principal.mapping.rules".into(),
            value: "DEFAULT".into(),
        });
    if r.diags.errors.len() != errors_before {
        return None;
    }
    Some(SslSettings {
        listener: listener.to_string(),
        keystore: keystore?,
        key_password,
        truststore,
        client_auth,
        enabled_protocols: enabled_protocols.into_iter().collect(),
        cipher_suites,
        endpoint_identification,
        principal_mapping_rules,
    })
}

/// Marks the `ssl.*` keys read whether or not a listener uses them (a file may carry them for
/// a listener added later), notes the ones without effect, and warns about
/// `listener.name.<n>.*` keys naming no listener.
pub(crate) fn finish(r: &mut Reader<'_>, listeners: &[String]) {
    for key in KEYS {
        r.entry(key);
    }
    r.recognised_without_effect(
        WITHOUT_EFFECT,
        "Java's TLS stack setting; the broker's TLS (rustls) has no counterpart",
    );
    let props = r.props;
    for e in props.entries() {
        let Some(rest) = e.key.strip_prefix("listener.name.") else {
            continue;
        };
        let Some((name, key)) = rest.split_once('.') else {
            continue;
        };
        let known_listener = listeners.iter().any(|l| l.eq_ignore_ascii_case(name));
        let known_key = KEYS.contains(&key) || WITHOUT_EFFECT.contains(&key);
        if known_listener && known_key {
            r.mark_used(&e.key);
            if WITHOUT_EFFECT.contains(&key) {
                r.warn(
                    e,
                    "accepted but has no effect: Java's TLS stack setting; the broker's TLS (rustls) has no counterpart",
                );
            }
        } else if !known_listener && known_key {
            r.mark_used(&e.key);
            r.warn(
                e,
                format!("ignored: no listener is named `{name}` (listener names are matched without case)"),
            );
        }
    }
}
