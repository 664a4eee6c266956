//! Ways raw logs enter the raw topic. Today: replaying a file, checkpointed so a restart
//! resumes after the last acknowledged line.

pub mod error;
pub mod replay;

pub use error::{Error, Result};
