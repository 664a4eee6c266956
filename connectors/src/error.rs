#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The stream refused the batch; nothing of it is acknowledged.
    #[error(transparent)]
    Stream(#[from] soc_core::stream::StreamError),
}

pub type Result<T> = std::result::Result<T, Error>;
