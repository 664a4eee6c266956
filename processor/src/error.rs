use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule file is unreadable or invalid: fail at startup, naming the file.
    #[error("rule {}: {reason}", file.display())]
    Rule { file: PathBuf, reason: String },
    /// An indicator list has a bad line: fail at startup, naming file and line.
    #[error("indicator list {}:{line}: {reason}", file.display())]
    Ioc {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    /// A shipped or configured file set cannot be read.
    #[error(transparent)]
    Asset(#[from] soc_core::assets::AssetError),
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Triage(#[from] crate::triage::TriageError),
    /// A task of the processor panicked: a bug, reported with its message.
    #[error("{task} panicked: {message}")]
    Panicked { task: &'static str, message: String },
    /// A task was cancelled before it finished (the runtime is shutting down).
    #[error("{task} was cancelled")]
    Cancelled { task: &'static str },
    /// Stored state the processor wrote cannot be read back: refuse to guess.
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt { what: String, reason: String },
    /// The database refused or is unreachable; the batch is retried from its checkpoint.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Stream(#[from] soc_core::stream::StreamError),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A failed join of `task`: a panic keeps its message, so it is reported as the bug it
    /// is and not as a configuration problem.
    pub fn from_join(task: &'static str, e: tokio::task::JoinError) -> Error {
        if e.is_panic() {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Error::Panicked { task, message }
        } else {
            Error::Cancelled { task }
        }
    }
}
