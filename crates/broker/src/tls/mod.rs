//! TLS on the broker's SSL listeners and on its own connections to other brokers, with rustls
//! (ring provider) and Kafka's `ssl.*` settings ([`sluice_config::SslSettings`]).
//!
//! ```text
//!  SslSettings ─► build_server ─► ServerTls (acceptor, principal rules) ─► server::serve
//!       │                             accept: TCP ─► handshake in the connection's task
//!       │                                           (bounded by HANDSHAKE_TIMEOUT, its costly
//!       │                                           step by handshake_turns) ─► Wire::Tls
//!       └──────► build_client ─► Connector (trust, own certificate) ─► replica fetchers,
//!                                                                       controller probes
//! ```
//!
//! Everything that can be wrong with a key, a certificate file or a cipher suite name is found
//! when the broker starts (and by `broker --check`), as a [`TlsError`] naming the key. Once
//! running, a failed handshake only ends that connection.

mod der;
pub mod pem;
pub mod pkcs8;
pub mod principal;
pub mod suites;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sluice_config::{ClientAuth, Keystore, Setting, SslSettings, TlsVersion, Truststore};
use sluice_kafka::async_client::AsyncConn;

use principal::{Mapper, Principal};

/// The longest a TLS handshake may take (bounded further by `connections.max.idle.ms`): a
/// client that stalls mid-handshake holds nothing longer than this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS setting the broker cannot use, naming its key.
#[derive(Debug, thiserror::Error)]
#[error("listener {listener}: {key}: {reason}")]
pub struct TlsError {
    pub listener: String,
    pub key: String,
    pub reason: String,
}

fn error(s: &SslSettings, key: &str, reason: impl Into<String>) -> TlsError {
    TlsError {
        listener: s.listener.clone(),
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The PEM text a setting names: the file's content for a `*.location`, else the value.
fn pem_text(s: &SslSettings, setting: &Setting, is_file: bool) -> Result<String, TlsError> {
    if !is_file {
        return Ok(setting.value.clone());
    }
    let bytes = std::fs::read(&setting.value).map_err(|e| {
        error(
            s,
            &setting.key,
            format!("cannot read {}: {e}", setting.value),
        )
    })?;
    match String::from_utf8(bytes) {
        Ok(t) if t.contains("-----BEGIN ") => Ok(t),
        Ok(_) | Err(_) => Err(error(
            s,
            &setting.key,
            format!(
                "{} is not a PEM file (a JKS or PKCS12 keystore?); JKS and PKCS12 are not supported yet: convert with `openssl pkcs12 -in keystore.p12 -nodes -out keystore.pem` (a JKS file first with `keytool -importkeystore -srckeystore keystore.jks -destkeystore keystore.p12 -deststoretype PKCS12`) and set ssl.keystore.type=PEM",
                setting.value
            ),
        )),
    }
}

/// The certificate chain and private key of a listener.
fn load_keystore(
    s: &SslSettings,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let (cert_blocks, cert_key, key_blocks, key_key) = match &s.keystore {
        Keystore::PemFile(l) => {
            let blocks = pem::parse(&pem_text(s, l, true)?).map_err(|e| error(s, &l.key, e))?;
            (blocks.clone(), l.key.clone(), blocks, l.key.clone())
        }
        Keystore::PemInline { chain, key } => (
            pem::parse(&chain.value).map_err(|e| error(s, &chain.key, e))?,
            chain.key.clone(),
            pem::parse(&key.value).map_err(|e| error(s, &key.key, e))?,
            key.key.clone(),
        ),
    };
    let chain: Vec<CertificateDer<'static>> = cert_blocks
        .iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.der.clone()))
        .collect();
    if chain.is_empty() {
        return Err(error(s, &cert_key, "no CERTIFICATE block"));
    }
    let mut keys = key_blocks
        .iter()
        .filter(|b| b.label.ends_with("PRIVATE KEY"));
    let key = keys
        .next()
        .ok_or_else(|| error(s, &key_key, "no PRIVATE KEY block"))?;
    if keys.next().is_some() {
        return Err(error(s, &key_key, "more than one private key"));
    }
    let key = match key.label.as_str() {
        "PRIVATE KEY" => PrivateKeyDer::Pkcs8(key.der.clone().into()),
        "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(key.der.clone().into()),
        "EC PRIVATE KEY" => PrivateKeyDer::Sec1(key.der.clone().into()),
        "ENCRYPTED PRIVATE KEY" => {
            let Some(p) = &s.key_password else {
                return Err(error(
                    s,
                    &key_key,
                    "the private key is encrypted: set its password as ssl.key.password",
                ));
            };
            let plain = pkcs8::decrypt(&key.der, &p.value).map_err(|e| error(s, &p.key, e))?;
            return Ok((chain, PrivateKeyDer::Pkcs8(plain.into())));
        }
        other => return Err(error(s, &key_key, format!("unknown key type `{other}`"))),
    };
    if let Some(p) = &s.key_password {
        return Err(error(
            s,
            &p.key,
            "the private key is not encrypted; remove ssl.key.password",
        ));
    }
    Ok((chain, key))
}

/// The CA certificates of a listener's truststore, if it has one.
fn load_truststore(s: &SslSettings) -> Result<Option<RootCertStore>, TlsError> {
    let (setting, is_file) = match &s.truststore {
        Truststore::None => return Ok(None),
        Truststore::PemFile(l) => (l, true),
        Truststore::PemInline(c) => (c, false),
    };
    let text = pem_text(s, setting, is_file)?;
    let blocks = pem::parse(&text).map_err(|e| error(s, &setting.key, e))?;
    let mut roots = RootCertStore::empty();
    for b in blocks.iter().filter(|b| b.label == "CERTIFICATE") {
        roots
            .add(CertificateDer::from(b.der.clone()))
            .map_err(|e| {
                error(
                    s,
                    &setting.key,
                    format!("a CA certificate is unusable: {e}"),
                )
            })?;
    }
    if roots.is_empty() {
        return Err(error(s, &setting.key, "no CERTIFICATE block"));
    }
    Ok(Some(roots))
}

/// The crypto provider with the listener's cipher suites, and its protocol versions.
fn provider(
    s: &SslSettings,
) -> Result<
    (
        Arc<rustls::crypto::CryptoProvider>,
        Vec<&'static rustls::SupportedProtocolVersion>,
    ),
    TlsError,
> {
    // ring, not aws-lc-rs (no C toolchain beyond what ring needs, no second crypto library);
    // rustls deprecates it for lacking post-quantum key exchange, which Kafka's clients do not
    // offer either.
    #[allow(deprecated)]
    let mut p = rustls::crypto::ring::default_provider();
    if let Some(c) = &s.cipher_suites {
        p.cipher_suites = suites::parse(&c.value).map_err(|e| error(s, &c.key, e))?;
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = s
        .enabled_protocols
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let usable = p
        .cipher_suites
        .iter()
        .any(|suite| versions.iter().any(|v| suite.version() == *v));
    if !usable {
        let key = s
            .cipher_suites
            .as_ref()
            .map_or("ssl.enabled.protocols", |c| c.key.as_str());
        return Err(error(
            s,
            key,
            "no cipher suite of ssl.cipher.suites belongs to a protocol of ssl.enabled.protocols",
        ));
    }
    Ok((Arc::new(p), versions))
}

/// How many handshakes may do their expensive step (the server's key exchange and signature,
/// about a millisecond of CPU each) at once: half the cores. Under a storm of new connections
/// the other half stays with the established ones, whose requests would otherwise queue behind
/// hundreds of handshakes on the runtime's threads. Only that step is gated, so a client that
/// stalls mid-handshake holds no turn.
pub fn handshake_turns() -> &'static tokio::sync::Semaphore {
    static TURNS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    TURNS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new((cores / 2).max(1))
    })
}

/// An SSL listener's server side.
#[derive(Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub mapper: Arc<Mapper>,
    pub client_auth: ClientAuth,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// Builds the server side of SSL listener `s`.
pub fn build_server(s: &SslSettings) -> Result<ServerTls, TlsError> {
    let (provider, versions) = provider(s)?;
    let (chain, key) = load_keystore(s)?;
    let roots = load_truststore(s)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| error(s, "ssl.enabled.protocols", e.to_string()))?;
    let builder = match (s.client_auth, roots) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(roots)) => {
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let v = if auth == ClientAuth::Requested {
                v.allow_unauthenticated()
            } else {
                v
            };
            let v = v
                .build()
                .map_err(|e| error(s, "ssl.truststore.location", format!("{e:?}")))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let key_setting = match &s.keystore {
        Keystore::PemFile(l) => l.key.clone(),
        Keystore::PemInline { key, .. } => key.key.clone(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        error(
            s,
            &key_setting,
            format!("the key and certificate do not go together: {e}"),
        )
    })?;
    config.alpn_protocols.clear();
    let mapper = Mapper::parse(&s.principal_mapping_rules.value)
        .map_err(|e| error(s, &s.principal_mapping_rules.key, e))?;
    Ok(ServerTls {
        config: Arc::new(config),
        mapper: Arc::new(mapper),
        client_auth: s.client_auth,
    })
}

/// How this broker connects to other brokers on the inter-broker listener.
#[derive(Clone, Default)]
pub struct Connector {
    /// `None` for a PLAINTEXT inter-broker listener.
    tls: Option<Arc<ClientConfig>>,
    /// Why TLS connections to other brokers cannot be made (an SSL inter-broker listener
    /// without a truststore): every connection fails with this, and the start warns of it.
    unusable: Option<String>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.tls.is_some())
            .field("unusable", &self.unusable)
            .finish()
    }
}

/// Builds the client side of SSL listener `s`: trusting its truststore, presenting its
/// keystore's certificate (as a Kafka broker does on its inter-broker connections).
pub fn build_client(s: &SslSettings) -> Result<Connector, TlsError> {
    let (provider, versions) = provider(s)?;
    let (chain, key) = load_keystore(s)?;
    let Some(roots) = load_truststore(s)? else {
        // A single broker serving SSL only needs no truststore; a second one will not be
        // reached until one is set, which the start warns of and each attempt logs.
        return Ok(Connector {
            tls: None,
            unusable: Some(format!(
                "listener {}: the inter-broker listener is SSL but has no truststore (ssl.truststore.location or ssl.truststore.certificates): other brokers' certificates cannot be checked",
                s.listener
            )),
        });
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| error(s, "ssl.enabled.protocols", e.to_string()))?;
    let roots = Arc::new(roots);
    let builder = if s.endpoint_identification {
        builder.with_root_certificates(roots)
    } else {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| error(s, "ssl.truststore.location", format!("{e:?}")))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
    };
    let config = builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| error(s, "ssl.keystore.location", e.to_string()))?;
    Ok(Connector {
        tls: Some(Arc::new(config)),
        unusable: None,
    })
}

impl Connector {
    /// Whether connections are made over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some() || self.unusable.is_some()
    }

    /// Why connections to other brokers cannot be made, if they cannot.
    pub fn unusable(&self) -> Option<&str> {
        self.unusable.as_deref()
    }

    /// The connector for `config`'s inter-broker listener.
    pub fn inter_broker(config: &sluice_config::BrokerConfig) -> Result<Connector, TlsError> {
        match config.ssl.get(&config.inter_broker_listener_name) {
            Some(s) if config.protocol_of(&s.listener) == "SSL" => build_client(s),
            _ => Ok(Connector::default()),
        }
    }

    /// Connects to `host:port` (`addr` resolved), over TLS when the listener is SSL; the TLS
    /// handshake counts against `timeout` too.
    pub async fn connect(
        &self,
        host: &str,
        addr: SocketAddr,
        client_id: &str,
        timeout: Duration,
        max_response: usize,
    ) -> Result<AsyncConn, sluice_kafka::ClientError> {
        let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| {
                sluice_kafka::ClientError::Connect(addr, std::io::ErrorKind::TimedOut.into())
            })?
            .map_err(|e| sluice_kafka::ClientError::Connect(addr, e))?;
        let _ = stream.set_nodelay(true);
        if let Some(why) = &self.unusable {
            return Err(sluice_kafka::ClientError::Connect(
                addr,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, why.clone()),
            ));
        }
        let Some(tls) = &self.tls else {
            return Ok(AsyncConn::over(
                Box::new(stream),
                addr,
                client_id,
                timeout,
                max_response,
            ));
        };
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            sluice_kafka::ClientError::Connect(
                addr,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            )
        })?;
        let connector = tokio_rustls::TlsConnector::from(tls.clone());
        let stream = tokio::time::timeout(timeout, connector.connect(name, stream))
            .await
            .map_err(|_| {
                sluice_kafka::ClientError::Connect(addr, std::io::ErrorKind::TimedOut.into())
            })?
            .map_err(|e| sluice_kafka::ClientError::Connect(addr, e))?;
        Ok(AsyncConn::over(
            Box::new(stream),
            addr,
            client_id,
            timeout,
            max_response,
        ))
    }
}

/// `ssl.endpoint.identification.algorithm=` (empty): the chain is checked, the name is not.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The principal of a finished handshake: the client certificate's subject mapped by the
/// listener's rules, or `ANONYMOUS` without one. `Err` when no rule applies (Kafka refuses
/// such a client) or the certificate's subject cannot be read.
pub fn principal_of(conn: &rustls::ServerConnection, mapper: &Mapper) -> Result<Principal, String> {
    let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) else {
        return Ok(Principal::anonymous());
    };
    let dn =
        principal::subject_dn(cert).ok_or("the client certificate's subject cannot be read")?;
    let name = mapper
        .name(&dn)
        .ok_or_else(|| format!("no rule of ssl.principal.mapping.rules applies to `{dn}`"))?;
    Ok(Principal { name })
}
