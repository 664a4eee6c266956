use soc_core::clock::Clock;
use std::time::Duration;

/// Where to start in a file found at start-up that has no checkpoint yet. Files that
/// appear later (after a rotation) are always read from their beginning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFrom {
    #[default]
    Beginning,
    End,
}

/// Files to follow.
#[derive(Debug, Clone, PartialEq)]
pub struct TailConfig {
    /// Glob patterns of the files to follow (`/var/log/auth.log*`). Include the rotated
    /// names so lines written just before a rotation are still read.
    pub include: Vec<String>,
    /// Glob patterns of files not to follow, even when included.
    pub exclude: Vec<String>,
    pub read_from: ReadFrom,
    /// How often the globs are matched again and the files read.
    pub poll_interval: Duration,
    /// Longer lines are cut to this many bytes, tagged, and set aside in `dead-letters`.
    pub max_line_bytes: usize,
    /// Bytes read from one file per poll, so one busy file does not starve the others.
    pub max_read_bytes: usize,
    /// Lines per submission to the stream.
    pub batch_lines: usize,
    pub clock: Clock,
}

impl TailConfig {
    pub fn new(include: Vec<String>) -> Self {
        TailConfig {
            include,
            exclude: default_exclude(),
            read_from: ReadFrom::Beginning,
            poll_interval: Duration::from_millis(250),
            max_line_bytes: crate::replay::DEFAULT_MAX_LINE_BYTES,
            max_read_bytes: 4 * 1024 * 1024,
            batch_lines: 1_000,
            clock: Clock::System,
        }
    }
}

/// Compressed rotations: their bytes are not lines.
pub fn default_exclude() -> Vec<String> {
    ["*.gz", "*.bz2", "*.xz", "*.zst", "*.zip"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
