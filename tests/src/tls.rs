//! Certificates for TLS tests, made with the `openssl` command-line tool in a directory of the
//! test's: a CA, certificates it signs (for brokers: `localhost` and `127.0.0.1` as names, so
//! clients that check host names accept them), an expired one, and one from a CA nobody trusts.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A key and its certificate, as files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, PKCS#8, unencrypted).
    pub key: PathBuf,
    /// Key, certificate and the CA's certificate in one PEM file: `ssl.keystore.location`.
    pub bundle: PathBuf,
}

/// A test certificate authority in `dir`.
#[derive(Debug)]
pub struct Pki {
    pub dir: PathBuf,
    /// The CA certificate (PEM): `ssl.truststore.location`, `ssl.ca.location`.
    pub ca: PathBuf,
    ca_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command-line tool");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const LEAF_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n";

impl Pki {
    /// A new CA named `name` (its files are `<name>-ca.pem` and `<name>-ca.key`).
    pub fn new(dir: &Path, name: &str) -> Pki {
        let ca = dir.join(format!("{name}-ca.pem"));
        let ca_key = dir.join(format!("{name}-ca.key"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                ca_key.to_str().unwrap(),
                "-out",
                ca.to_str().unwrap(),
                "-days",
                "30",
                "-subj",
                &format!("/CN={name} test CA"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Pki {
            dir: dir.to_path_buf(),
            ca,
            ca_key,
        }
    }

    fn request(&self, name: &str, subject: &str) -> (PathBuf, PathBuf) {
        let key = self.dir.join(format!("{name}.key"));
        let csr = self.dir.join(format!("{name}.csr"));
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                csr.to_str().unwrap(),
                "-subj",
                subject,
            ],
        );
        (key, csr)
    }

    fn finish(&self, name: &str, key: PathBuf, cert: PathBuf) -> Issued {
        let bundle = self.dir.join(format!("{name}-bundle.pem"));
        let mut text = std::fs::read_to_string(&key).unwrap();
        text.push_str(&std::fs::read_to_string(&cert).unwrap());
        text.push_str(&std::fs::read_to_string(&self.ca).unwrap());
        std::fs::write(&bundle, text).unwrap();
        Issued { cert, key, bundle }
    }

    /// A certificate for `subject` (e.g. `/CN=broker`), valid for 30 days, naming `localhost`
    /// and `127.0.0.1`, usable by servers and clients.
    pub fn issue(&self, name: &str, subject: &str) -> Issued {
        let (key, csr) = self.request(name, subject);
        let cert = self.dir.join(format!("{name}.pem"));
        let ext = self.dir.join(format!("{name}.ext"));
        std::fs::write(&ext, LEAF_EXT).unwrap();
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                csr.to_str().unwrap(),
                "-CA",
                self.ca.to_str().unwrap(),
                "-CAkey",
                self.ca_key.to_str().unwrap(),
                "-CAcreateserial",
                "-out",
                cert.to_str().unwrap(),
                "-days",
                "30",
                "-extfile",
                ext.to_str().unwrap(),
            ],
        );
        self.finish(name, key, cert)
    }

    /// `issued`'s key encrypted with `password` in a keystore file with the certificate and the
    /// CA's, as Kafka's PEM keystores hold it with `ssl.key.password`: encrypted as Java can
    /// read it (`-v1 PBE-SHA1-3DES`) when `java_readable`, else with PBES2 (AES-256-CBC,
    /// `openssl pkcs8 -topk8`'s default).
    pub fn encrypted_bundle(
        &self,
        issued: &Issued,
        password: &str,
        java_readable: bool,
    ) -> std::path::PathBuf {
        let name = issued.key.file_stem().unwrap().to_str().unwrap();
        let encrypted = self
            .dir
            .join(format!("{name}-encrypted-{java_readable}.key"));
        let scheme: &[&str] = if java_readable {
            &["-v1", "PBE-SHA1-3DES"]
        } else {
            &["-v2", "aes-256-cbc"]
        };
        openssl(
            &self.dir,
            &[
                "pkcs8",
                "-topk8",
                scheme[0],
                scheme[1],
                "-passout",
                &format!("pass:{password}"),
                "-in",
                issued.key.to_str().unwrap(),
                "-out",
                encrypted.to_str().unwrap(),
            ],
        );
        let bundle = self
            .dir
            .join(format!("{name}-encrypted-{java_readable}-bundle.pem"));
        let mut text = std::fs::read_to_string(&encrypted).unwrap();
        text.push_str(&std::fs::read_to_string(&issued.cert).unwrap());
        text.push_str(&std::fs::read_to_string(&self.ca).unwrap());
        std::fs::write(&bundle, text).unwrap();
        bundle
    }

    /// A certificate like [`Pki::issue`]'s that expired in 2020.
    pub fn issue_expired(&self, name: &str, subject: &str) -> Issued {
        let (key, csr) = self.request(name, subject);
        let cert = self.dir.join(format!("{name}.pem"));
        let db = self.dir.join(format!("{name}-db"));
        std::fs::create_dir_all(&db).unwrap();
        std::fs::write(db.join("index.txt"), "").unwrap();
        std::fs::write(db.join("serial"), "1000\n").unwrap();
        let cnf = db.join("ca.cnf");
        std::fs::write(
            &cnf,
            format!(
                "[ca]\ndefault_ca=test\n[test]\ndir={d}\ndatabase={d}/index.txt\nnew_certs_dir={d}\nserial={d}/serial\ndefault_md=sha256\npolicy=any\ncopy_extensions=none\nx509_extensions=leaf\n[any]\ncommonName=supplied\n[leaf]\n{LEAF_EXT}",
                d = db.display()
            ),
        )
        .unwrap();
        openssl(
            &self.dir,
            &[
                "ca",
                "-batch",
                "-notext",
                "-config",
                cnf.to_str().unwrap(),
                "-cert",
                self.ca.to_str().unwrap(),
                "-keyfile",
                self.ca_key.to_str().unwrap(),
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200201000000Z",
                "-in",
                csr.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ],
        );
        self.finish(name, key, cert)
    }
}
