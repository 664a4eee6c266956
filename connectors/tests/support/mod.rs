//! An embedded log with the raw and dead-letter topics, a sink writing to it, and a test CA.
#![allow(dead_code)]

use soc_connectors::sink::{Sink, SinkConfig};
use soc_core::stream::embedded::EmbeddedLog;
use soc_core::stream::{topics, LogStream, TopicSpec};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub log: Arc<EmbeddedLog>,
}

impl Harness {
    pub async fn new() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(Harness::open(dir.path()).await);
        Harness { dir, log }
    }

    pub async fn open(dir: &std::path::Path) -> EmbeddedLog {
        let log = EmbeddedLog::open(&dir.join("log.redb"), None).expect("log");
        for name in [topics::RAW_LOGS, topics::DEAD_LETTERS] {
            log.ensure_topic(&TopicSpec {
                name: name.into(),
                partitions: 1,
                retention_secs: None,
                max_partition_bytes: None,
            })
            .await
            .expect("topic");
        }
        log
    }

    pub fn stream(&self) -> Arc<dyn LogStream> {
        self.log.clone()
    }

    /// A sink whose writer runs in the background.
    pub fn sink(&self, config: SinkConfig) -> Sink {
        let (sink, writer) = Sink::start(self.stream(), config);
        tokio::spawn(writer);
        sink
    }

    /// Every raw record's text, in order.
    pub fn raw(&self) -> Vec<String> {
        self.read(topics::RAW_LOGS)
    }

    pub fn read(&self, topic: &str) -> Vec<String> {
        self.log
            .read(topic, 0, 0, 1_000_000)
            .expect("read")
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r.value).into_owned())
            .collect()
    }

    /// The lines of the raw records, without their trailers.
    pub fn lines(&self) -> Vec<String> {
        self.raw()
            .iter()
            .map(|r| soc_core::event::split_notes(r).0.to_string())
            .collect()
    }

    /// Wait (bounded) until `n` raw records are in.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let raw = self.raw();
            if raw.len() >= n {
                return raw;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} records arrived: {raw:?}",
                raw.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A CA made for the test, and a server certificate it signed for 127.0.0.1 and localhost.
pub struct TestCa {
    pub ca_pem: String,
    pub cert_path: std::path::PathBuf,
    pub key_path: std::path::PathBuf,
}

impl TestCa {
    pub fn new(dir: &std::path::Path) -> TestCa {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "soc test CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("params");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("cert");
        let cert_path = dir.join("server.crt");
        let key_path = dir.join("server.key");
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        TestCa {
            ca_pem: ca.pem(),
            cert_path,
            key_path,
        }
    }

    /// A TLS client that trusts this CA only.
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.expect("ca pem")).expect("root");
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// Run `logger(1)` with `args`, the messages on its standard input, one per line.
pub fn logger(args: &[&str], messages: &[String]) {
    use std::io::Write;
    let mut child = std::process::Command::new("logger")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("logger(1) runs (util-linux)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(messages.join("\n").as_bytes())
        .expect("write");
    let status = child.wait().expect("logger");
    assert!(status.success(), "logger {args:?}: {status}");
}

/// What `logger(1)` would send for each message (RFC 5424), without sending it.
pub fn logger_lines(tag: &str, messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            let out = std::process::Command::new("logger")
                .args([
                    "--no-act",
                    "--stderr",
                    "--rfc5424",
                    "-n",
                    "127.0.0.1",
                    "-P",
                    "9",
                    "-t",
                    tag,
                    m,
                ])
                .output()
                .expect("logger(1) runs");
            String::from_utf8(out.stderr)
                .expect("utf-8")
                .trim_end()
                .to_string()
        })
        .collect()
}

pub fn failed_logins(ip: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "Failed password for root from {ip} port {} ssh2",
                40_000 + i
            )
        })
        .collect()
}
