//! SSL listeners' settings: Kafka's `ssl.*` keys, `listener.name.<n>.ssl.*` overrides, the
//! inter-broker listener, and the clear refusals (SASL, PKCS12, JKS).

use std::path::Path;

use sluice_config::{BrokerConfig, ClientAuth, ConfigError, Diagnostic, Keystore, TlsVersion};

const BASE: &str = "zookeeper.connect=localhost:2181\n";

fn load(text: &str) -> sluice_config::Loaded<BrokerConfig> {
    BrokerConfig::from_bytes(
        Path::new("server.properties"),
        format!("{BASE}{text}").as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{}", e.report()))
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match BrokerConfig::from_bytes(
        Path::new("server.properties"),
        format!("{BASE}{text}").as_bytes(),
    ) {
        Ok(l) => panic!("expected errors, loaded {:?}", l.config),
        Err(ConfigError::Invalid { errors, .. }) => errors,
        Err(e) => panic!("unexpected {e}"),
    }
}

fn only(errors: &[Diagnostic]) -> &Diagnostic {
    assert_eq!(errors.len(), 1, "{errors:#?}");
    &errors[0]
}

#[test]
fn plaintext_and_ssl_listeners_with_a_per_listener_keystore() {
    let l = load(
        "listeners=PLAINTEXT://:9092,SSL://:9093,INTERNAL://:9094\n\
         listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,INTERNAL:SSL\n\
         inter.broker.listener.name=INTERNAL\n\
         ssl.keystore.type=PEM\n\
         ssl.keystore.location=/etc/kafka/broker.pem\n\
         ssl.truststore.location=/etc/kafka/ca.pem\n\
         listener.name.internal.ssl.keystore.location=/etc/kafka/internal.pem\n\
         listener.name.internal.ssl.client.auth=required\n\
         ssl.enabled.protocols=TLSv1.3\n",
    );
    assert!(l.warnings.is_empty(), "{:#?}", l.warnings);
    let c = l.config;
    assert_eq!(c.inter_broker_listener_name, "INTERNAL");
    assert_eq!(c.protocol_of("INTERNAL"), "SSL");
    assert_eq!(c.protocol_of("PLAINTEXT"), "PLAINTEXT");
    assert_eq!(c.ssl.len(), 2);
    let external = &c.ssl["SSL"];
    let internal = &c.ssl["INTERNAL"];
    match (&external.keystore, &internal.keystore) {
        (Keystore::PemFile(e), Keystore::PemFile(i)) => {
            assert_eq!(e.value, "/etc/kafka/broker.pem");
            assert_eq!(i.value, "/etc/kafka/internal.pem");
            assert_eq!(i.key, "listener.name.internal.ssl.keystore.location");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(external.client_auth, ClientAuth::None);
    assert_eq!(internal.client_auth, ClientAuth::Required);
    assert_eq!(internal.enabled_protocols, vec![TlsVersion::Tls13]);
    let effective = c.effective();
    assert!(effective.contains(&(
        "listener.name.internal.ssl.client.auth".to_string(),
        "required".to_string()
    )));
}

#[test]
fn sasl_listeners_are_refused_naming_the_key() {
    let e = errors(
        "listeners=PLAINTEXT://:9092,CLIENTS://:9093\n\
         listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CLIENTS:SASL_PLAINTEXT\n",
    );
    let e = only(&e);
    assert_eq!(e.key.as_deref(), Some("listeners"));
    assert!(
        e.message.contains("CLIENTS")
            && e.message.contains("SASL_PLAINTEXT")
            && e.message.contains("listener.security.protocol.map")
            && e.message.contains("not supported yet"),
        "{e}"
    );
    let e = errors("security.inter.broker.protocol=SASL_SSL\n");
    assert!(
        e.iter().any(
            |d| d.key.as_deref() == Some("security.inter.broker.protocol")
                && d.message.contains("SASL")
        ),
        "{e:#?}"
    );
}

#[test]
fn pkcs12_and_jks_keystores_are_refused_with_the_conversion() {
    for (ty, tool) in [
        ("PKCS12", "openssl pkcs12"),
        ("JKS", "keytool -importkeystore"),
    ] {
        let e = errors(&format!(
            "listeners=SSL://:9093\nssl.keystore.type={ty}\nssl.keystore.location=/k\nssl.keystore.password=secret\n"
        ));
        let e = only(&e);
        assert_eq!(e.key.as_deref(), Some("ssl.keystore.type"));
        assert!(
            e.message
                .contains(&format!("{ty} keystores are not supported yet"))
                && e.message.contains(tool),
            "{e}"
        );
    }
}

#[test]
fn inconsistent_ssl_settings_each_get_an_error() {
    let e = errors("listeners=SSL://:9093\nssl.keystore.location=/k\nssl.client.auth=required\n");
    assert!(
        only(&e).message.contains("ssl.truststore.location"),
        "{e:?}"
    );
    let e = errors("listeners=SSL://:9093\nssl.keystore.location=/k\nssl.client.auth=maybe\n");
    assert!(
        only(&e).message.contains("none, requested or required"),
        "{e:?}"
    );
    let e = errors(
        "listeners=SSL://:9093\nssl.keystore.certificate.chain=-----BEGIN CERTIFICATE-----\n",
    );
    assert!(only(&e).message.contains("ssl.keystore.key"), "{e:?}");
    let e = errors(
        "listeners=SSL://:9093\nssl.keystore.type=PEM\nssl.keystore.location=/k\nssl.keystore.password=x\n",
    );
    assert_eq!(only(&e).key.as_deref(), Some("ssl.keystore.password"));
    let e =
        errors("listeners=SSL://:9093\nssl.keystore.location=/k\nssl.enabled.protocols=TLSv1.4\n");
    assert!(only(&e).message.contains("TLSv1.4"), "{e:?}");
    let e = errors(
        "listeners=PLAINTEXT://:9092,SSL://:9093\nssl.keystore.location=/k\n\
         inter.broker.listener.name=SSL\nsecurity.inter.broker.protocol=SSL\n",
    );
    assert!(only(&e).message.contains("only one of"), "{e:?}");
}

#[test]
fn old_protocols_are_dropped_with_a_warning_and_strays_are_named() {
    let l = load(
        "listeners=SSL://:9093\nssl.keystore.location=/k\n\
         ssl.enabled.protocols=TLSv1.2,TLSv1.1,TLSv1\n\
         listener.name.external.ssl.keystore.location=/other\n",
    );
    assert_eq!(
        l.config.ssl["SSL"].enabled_protocols,
        vec![TlsVersion::Tls12]
    );
    assert!(
        l.warnings
            .iter()
            .any(|w| w.message.contains("TLSv1.1, TLSv1 not offered")),
        "{:#?}",
        l.warnings
    );
    assert!(
        l.warnings.iter().any(|w| w.key.as_deref()
            == Some("listener.name.external.ssl.keystore.location")
            && w.message.contains("no listener is named `external`")),
        "{:#?}",
        l.warnings
    );
}

#[test]
fn security_inter_broker_protocol_picks_the_listener_of_that_name() {
    let l = load(
        "listeners=PLAINTEXT://:9092,SSL://:9093\nssl.keystore.location=/k\nsecurity.inter.broker.protocol=SSL\n",
    );
    assert_eq!(l.config.inter_broker_listener_name, "SSL");
    let l = load("listeners=SSL://:9093,PLAINTEXT://:9092\nssl.keystore.location=/k\n");
    assert_eq!(l.config.inter_broker_listener_name, "PLAINTEXT");
}
