use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule file is unreadable or invalid: fail at startup, naming the file.
    #[error("rule {}: {source}", file.display())]
    Rule {
        file: PathBuf,
        source: crate::rules::RuleError,
    },
    /// An indicator list has a bad line: fail at startup, naming file and line.
    #[error("indicator list {}:{}: {}", file.display(), source.line, source.kind)]
    Ioc {
        file: PathBuf,
        source: crate::ioc::IocError,
    },
    /// Configuration tunes a rule that does not exist: a typo must not silently do nothing.
    #[error("configuration overrides unknown rule `{id}`")]
    UnknownRule { id: String },
    /// A shipped or configured file set cannot be read.
    #[error(transparent)]
    Asset(#[from] soc_core::assets::AssetError),
    #[error(transparent)]
    Triage(#[from] crate::triage::TriageError),
    /// A task of the processor panicked: a bug, reported with its message.
    #[error("{task} panicked: {message}")]
    Panicked { task: &'static str, message: String },
    /// A task was cancelled before it finished (the runtime is shutting down).
    #[error("{task} was cancelled")]
    Cancelled { task: &'static str },
    /// Stored state the processor wrote cannot be read back: refuse to guess.
    #[error("stored {what} is unreadable: {source}")]
    Corrupt {
        what: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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
