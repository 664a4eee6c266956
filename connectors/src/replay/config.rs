use soc_core::clock::Clock;
use std::path::PathBuf;

/// Configuration of a file replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayConfig {
    /// The file to read, one log line per line.
    pub path: PathBuf,
    /// Topic to produce to (normally `raw-logs`).
    pub topic: String,
    /// Lines per produced batch (and per checkpoint).
    pub batch_lines: usize,
    /// Limit the rate; `None` replays as fast as the stream takes it.
    pub lines_per_sec: Option<u64>,
    /// Resume after the file's last checkpoint instead of from the start.
    pub resume: bool,
    /// Paces `lines_per_sec`.
    pub clock: Clock,
}

impl ReplayConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ReplayConfig {
            path: path.into(),
            topic: soc_core::stream::topics::RAW_LOGS.to_string(),
            batch_lines: default_batch_lines(),
            lines_per_sec: None,
            resume: true,
            clock: Clock::System,
        }
    }
}

pub const fn default_batch_lines() -> usize {
    500
}
