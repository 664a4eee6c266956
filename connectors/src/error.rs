#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A configuration value that cannot work (a bad glob, say).
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] soc_core::tls::TlsError),
    /// The stream refused the batch; nothing of it is acknowledged.
    #[error(transparent)]
    Stream(#[from] soc_core::stream::StreamError),
    /// The stream writer behind every live connector stopped.
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
}

pub type Result<T> = std::result::Result<T, Error>;
