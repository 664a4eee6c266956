use std::net::SocketAddr;
use std::path::PathBuf;

/// Transport of a syslog listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogMode {
    /// RFC 5426: one message per datagram, best effort; every drop is counted.
    Udp,
    /// RFC 6587 over TCP: octet counting or one message per line.
    Tcp,
    /// RFC 5425: the TCP framing inside TLS (rustls).
    Tls { cert: PathBuf, key: PathBuf },
}

/// One syslog listener.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogConfig {
    pub mode: SyslogMode,
    /// Address to listen on, e.g. `127.0.0.1:5514`.
    pub address: SocketAddr,
    /// Longer messages are cut to this many bytes, tagged, and set aside in full size in
    /// `dead-letters`.
    pub max_line_bytes: usize,
    /// TCP/TLS connections served at once; more are closed unread and counted.
    pub max_connections: usize,
    /// Messages per submission to the stream from one connection.
    pub batch_lines: usize,
}

impl SyslogConfig {
    pub fn new(mode: SyslogMode, address: SocketAddr) -> Self {
        SyslogConfig {
            mode,
            address,
            max_line_bytes: crate::replay::DEFAULT_MAX_LINE_BYTES,
            max_connections: default_max_connections(),
            batch_lines: 500,
        }
    }
}

pub const fn default_max_connections() -> usize {
    1024
}
