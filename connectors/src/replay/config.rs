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
    /// Longer lines are cut to this many bytes (and set aside in full size in
    /// `dead-letters`); a line never costs more memory than this.
    pub max_line_bytes: usize,
    /// Paces `lines_per_sec`.
    pub clock: Clock,
    /// The year of timestamps the file writes without one (an archive from an earlier
    /// year); `None` infers it from the time each line is read.
    pub year: Option<i32>,
}

impl ReplayConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ReplayConfig {
            path: path.into(),
            topic: soc_core::stream::topics::RAW_LOGS.to_string(),
            batch_lines: default_batch_lines(),
            lines_per_sec: None,
            resume: true,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            clock: Clock::System,
            year: None,
        }
    }
}

/// 100 KiB, as Vector's file source: far above any real log line, far below what hurts.
pub const DEFAULT_MAX_LINE_BYTES: usize = 100 * 1024;

pub const fn default_batch_lines() -> usize {
    500
}
