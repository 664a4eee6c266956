//! Replay a log file into a topic, in batches. Each batch is produced together with the
//! byte position after its last line (the checkpoint); on the embedded log both land in one
//! transaction, so a replay killed at any moment and started again neither loses nor repeats
//! a line.

mod config;

pub use config::ReplayConfig;

use crate::error::{Error, Result};
use soc_core::stream::{Checkpoint, LogStream, ProduceRecord};
use std::io::SeekFrom;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tracing::info;

/// How often a long replay logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Lines produced by this run.
    pub lines: u64,
    /// Byte position the run started from (0, or the checkpoint of an earlier run).
    pub resumed_from: u64,
    /// Byte position after the last produced line.
    pub position: u64,
}

/// Checkpoint name for a file: its canonical path, so the same file resumes wherever it is
/// named from.
pub fn checkpoint_name(path: &std::path::Path) -> String {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("replay:{}", canonical.display())
}

pub async fn replay(stream: &dyn LogStream, config: &ReplayConfig) -> Result<ReplayReport> {
    let io_err = |source| Error::Io {
        path: config.path.display().to_string(),
        source,
    };
    let name = checkpoint_name(&config.path);
    let resumed_from = if config.resume {
        stream.checkpoint(&name).await?.unwrap_or(0)
    } else {
        0
    };
    let file = tokio::fs::File::open(&config.path).await.map_err(io_err)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader
        .seek(SeekFrom::Start(resumed_from))
        .await
        .map_err(io_err)?;
    let mut position = resumed_from;
    let mut lines = 0u64;
    let mut batch: Vec<ProduceRecord> = Vec::with_capacity(config.batch_lines);
    let mut buf = Vec::with_capacity(4096);
    let started = config.clock.now();
    let mut last_progress = started;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).await.map_err(io_err)?;
        if n == 0 {
            break;
        }
        position += n as u64;
        let mut line = buf.as_slice();
        while let Some((b'\n' | b'\r', rest)) = line.split_last() {
            line = rest;
        }
        if !line.is_empty() {
            batch.push(ProduceRecord {
                key: None,
                value: line.to_vec(),
                timestamp_ms: chrono::Utc::now().timestamp_millis(),
            });
        }
        if batch.len() >= config.batch_lines {
            lines += flush(stream, config, &mut batch, &name, position).await?;
            pace(config, lines, started).await;
            if config.clock.since(last_progress) >= PROGRESS_EVERY {
                last_progress = config.clock.now();
                let secs = config.clock.since(started).as_secs_f64().max(1e-3);
                info!(
                    file = %config.path.display(),
                    lines,
                    lines_per_sec = (lines as f64 / secs).round(),
                    position,
                    "replay progress"
                );
            }
        }
    }
    lines += flush(stream, config, &mut batch, &name, position).await?;
    info!(
        file = %config.path.display(),
        lines,
        resumed_from,
        position,
        "replay finished"
    );
    Ok(ReplayReport {
        lines,
        resumed_from,
        position,
    })
}

async fn flush(
    stream: &dyn LogStream,
    config: &ReplayConfig,
    batch: &mut Vec<ProduceRecord>,
    name: &str,
    position: u64,
) -> Result<u64> {
    let n = batch.len() as u64;
    let records = std::mem::take(batch);
    // Empty lines still move the checkpoint.
    stream
        .produce(
            &config.topic,
            records,
            Some(Checkpoint {
                name: name.to_string(),
                position,
            }),
        )
        .await?;
    Ok(n)
}

/// Hold the configured rate (lines per second), if any.
async fn pace(config: &ReplayConfig, lines: u64, started: Instant) {
    if let Some(rate) = config.lines_per_sec.filter(|r| *r > 0) {
        let due = Duration::from_secs_f64(lines as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(config.clock.since(started)) {
            config.clock.sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use soc_core::clock::Clock;
    use soc_core::stream::embedded::EmbeddedLog;
    use soc_core::stream::TopicSpec;

    #[tokio::test]
    async fn the_rate_limit_holds_on_the_clock_it_is_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("in.log");
        let text: String = (0..2_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&file, text).expect("write");
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), None).expect("log");
        log.ensure_topic(&TopicSpec {
            name: soc_core::stream::topics::RAW_LOGS.into(),
            partitions: 1,
            retention_secs: None,
        })
        .await
        .expect("topic");
        // 2,000 lines at 500 a second take four seconds of the clock's time; at a hundred
        // times real speed that is 40 ms of real time.
        let clock = Clock::fast(100);
        let mut config = ReplayConfig::new(&file);
        config.batch_lines = 100;
        config.lines_per_sec = Some(500);
        config.clock = clock;
        let t0 = clock.now();
        let real = Instant::now();
        let report = replay(&log, &config).await.expect("replay");
        assert_eq!(report.lines, 2_000);
        let paced = clock.since(t0);
        assert!(paced >= Duration::from_millis(3_800), "{paced:?}");
        assert!(
            real.elapsed() < Duration::from_secs(2),
            "{:?}",
            real.elapsed()
        );
    }
}
