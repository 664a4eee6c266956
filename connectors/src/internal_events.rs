//! What the connectors count, in one place: the metric names and their bounded labels.
//!
//! `connector` is one of the [`Connector`] names; `error_type` and `reason` are the
//! constants below, never text from the input.

/// Which door a line came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connector {
    SyslogUdp,
    SyslogTcp,
    SyslogTls,
    Http,
    FileTail,
    Replay,
}

impl Connector {
    pub const fn name(self) -> &'static str {
        match self {
            Connector::SyslogUdp => "syslog_udp",
            Connector::SyslogTcp => "syslog_tcp",
            Connector::SyslogTls => "syslog_tls",
            Connector::Http => "http",
            Connector::FileTail => "file_tail",
            Connector::Replay => "replay",
        }
    }
}

/// A connection or request failed to read (reset, bad frame, I/O error).
pub const ERROR_READ: &str = "read";
/// A TLS handshake failed (bad or missing client certificate, not TLS at all).
pub const ERROR_TLS_HANDSHAKE: &str = "tls_handshake";
/// A frame ended before its announced length (the sender disconnected mid-frame).
pub const ERROR_PARTIAL_FRAME: &str = "partial_frame";
/// A request without a valid ingest token.
pub const ERROR_UNAUTHORIZED: &str = "unauthorized";
/// A request body that is not what its content type says (bad gzip, bad JSON).
pub const ERROR_BAD_BODY: &str = "bad_body";
/// The stream refused what was received.
pub const ERROR_STREAM: &str = "stream";

/// The queue to the stream was full.
pub const DROP_BACKPRESSURE: &str = "backpressure";
/// The connection limit was reached; the connection was closed unread.
pub const DROP_CONNECTION_LIMIT: &str = "connection_limit";

/// Lines and bytes received (before they are durable; `soc_ingest_lines_total` counts
/// those).
pub fn received(connector: Connector, lines: u64, bytes: u64) {
    let c = connector.name();
    metrics::counter!("soc_ingest_received_lines_total", "connector" => c).increment(lines);
    metrics::counter!("soc_ingest_received_bytes_total", "connector" => c).increment(bytes);
}

pub fn error(connector: Connector, error_type: &'static str) {
    metrics::counter!(
        "soc_ingest_errors_total",
        "connector" => connector.name(),
        "error_type" => error_type
    )
    .increment(1);
}

pub fn dropped(connector: Connector, reason: &'static str, lines: u64) {
    metrics::counter!(
        "soc_ingest_dropped_lines_total",
        "connector" => connector.name(),
        "reason" => reason
    )
    .increment(lines);
}

pub fn truncated(connector: Connector) {
    metrics::counter!("soc_ingest_truncated_lines_total", "connector" => connector.name())
        .increment(1);
}
