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
    #[error("configuration: {0}")]
    Config(String),
    /// The database refused or is unreachable; the batch is retried from its checkpoint.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Stream(#[from] soc_core::stream::StreamError),
}

pub type Result<T> = std::result::Result<T, Error>;
