use secrecy::SecretString;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The HTTP ingest endpoint.
#[derive(Debug, Clone)]
pub struct HttpIngestConfig {
    /// Address to listen on, e.g. `127.0.0.1:8088`.
    pub address: SocketAddr,
    /// One token per sending source, by the source's name (the name is recorded with what
    /// it sends and names its metrics; the token is a secret, never logged).
    pub tokens: BTreeMap<String, SecretString>,
    /// A request body larger than this, before or after gzip, is refused with 413.
    pub max_body_bytes: usize,
    /// Longer lines are cut to this many bytes, tagged, and set aside in `dead-letters`.
    pub max_line_bytes: usize,
    /// Serve HTTPS with this certificate chain and key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// What `Retry-After` says when the stream is behind, in seconds.
    pub retry_after_secs: u32,
}

impl HttpIngestConfig {
    pub fn new(address: SocketAddr, tokens: BTreeMap<String, SecretString>) -> Self {
        HttpIngestConfig {
            address,
            tokens,
            max_body_bytes: default_max_body_bytes(),
            max_line_bytes: crate::replay::DEFAULT_MAX_LINE_BYTES,
            tls: None,
            retry_after_secs: 1,
        }
    }
}

/// 10 MiB: tens of thousands of lines a request.
pub const fn default_max_body_bytes() -> usize {
    10 * 1024 * 1024
}
