//! `ssl.cipher.suites`: Kafka's (Java's, IANA) cipher suite names to rustls's suites. TLS 1.3
//! suites are named as Java names them (`TLS_AES_128_GCM_SHA256`); rustls's own spelling
//! (`TLS13_AES_128_GCM_SHA256`) is taken too.

use rustls::crypto::ring::ALL_CIPHER_SUITES;
use rustls::SupportedCipherSuite;

/// The IANA name of a rustls suite.
pub fn iana_name(s: &SupportedCipherSuite) -> String {
    format!("{:?}", s.suite()).replacen("TLS13_", "TLS_", 1)
}

/// The suites named in `list` (comma-separated), in the order given; every name that is not
/// one of the broker's suites is an error naming it and listing those it has.
pub fn parse(list: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut chosen = Vec::new();
    let mut unknown = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let found = ALL_CIPHER_SUITES.iter().find(|s| {
            let rustls_name = format!("{:?}", s.suite());
            name == rustls_name || name == iana_name(s)
        });
        match found {
            Some(s) if !chosen.contains(s) => chosen.push(*s),
            Some(_) => {}
            None => unknown.push(name),
        }
    }
    if !unknown.is_empty() {
        let offered: Vec<String> = ALL_CIPHER_SUITES.iter().map(iana_name).collect();
        return Err(format!(
            "{} not supported; the broker offers {}",
            unknown.join(", "),
            offered.join(", ")
        ));
    }
    if chosen.is_empty() {
        return Err("no cipher suite named".into());
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn java_and_rustls_names() {
        let s = parse("TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS13_AES_256_GCM_SHA384").unwrap();
        assert_eq!(s.len(), 3);
        let e = parse("TLS_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA,NOPE").unwrap_err();
        assert!(
            e.starts_with("TLS_RSA_WITH_AES_128_CBC_SHA, NOPE not supported"),
            "{e}"
        );
        assert!(e.contains("TLS_CHACHA20_POLY1305_SHA256"), "{e}");
    }
}
