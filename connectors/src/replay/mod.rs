//! Replay a log file into a topic, in batches. Each batch is produced together with the
//! byte position after its last line (the checkpoint); on the embedded log both land in one
//! transaction, so a replay killed at any moment and started again neither loses nor repeats
//! a line.

mod config;

pub use config::{ReplayConfig, DEFAULT_MAX_LINE_BYTES};

use crate::error::{Error, Result};
use crate::line::{read_line_limited, LineRead};
use soc_core::stream::{topics, Checkpoint, DeadLetter, LogStream, ProduceRecord};
use std::io::SeekFrom;
use std::time::{Duration, Instant};
use tokio::io::{AsyncSeekExt, BufReader};
use tracing::{info, warn};

/// How often a long replay logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Lines produced by this run.
    pub lines: u64,
    /// Lines over the size limit, produced cut to it and set aside in `dead-letters`.
    pub truncated: u64,
    /// Byte position the run started from (0, or the checkpoint of an earlier run).
    pub resumed_from: u64,
    /// Byte position after the last produced line.
    pub position: u64,
    /// Stopped before the end of the file (the next replay resumes at `position`).
    pub stopped: bool,
}

/// Checkpoint name for a file: its canonical path, so the same file resumes wherever it is
/// named from.
pub fn checkpoint_name(path: &std::path::Path) -> String {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("replay:{}", canonical.display())
}

pub async fn replay(stream: &dyn LogStream, config: &ReplayConfig) -> Result<ReplayReport> {
    // Never sent: this replay runs to the end of the file.
    let (_keep, never) = tokio::sync::watch::channel(false);
    replay_until(stream, config, never).await
}

/// [`replay`] that stops early once `stop` turns true (Ctrl-C): the lines read so far are
/// produced and checkpointed, so the next replay of the file resumes there.
pub async fn replay_until(
    stream: &dyn LogStream,
    config: &ReplayConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<ReplayReport> {
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
    let mut truncated = 0u64;
    let mut stopped = false;
    loop {
        if *stop.borrow() {
            stopped = true;
            break;
        }
        buf.clear();
        let LineRead {
            consumed: n,
            len: full,
            ..
        } = read_line_limited(&mut reader, &mut buf, config.max_line_bytes)
            .await
            .map_err(io_err)?;
        if n == 0 {
            break;
        }
        let line_start = position;
        position += n as u64;
        let mut line = buf.as_slice();
        while let Some((b'\n' | b'\r', rest)) = line.split_last() {
            line = rest;
        }
        let cut = full > config.max_line_bytes;
        if cut {
            // Kept, cut to the limit, so whatever it says is still parsed; and set aside
            // in full size and place so nobody wonders where the rest went.
            truncated += 1;
            crate::internal_events::truncated(crate::internal_events::Connector::Replay);
            warn!(
                file = %config.path.display(),
                at = line_start,
                bytes = full,
                limit = config.max_line_bytes,
                "line over the size limit truncated"
            );
            let letter = DeadLetter::new(
                "line_too_long",
                format!(
                    "{full} bytes, over the {}-byte limit",
                    config.max_line_bytes
                ),
                format!("replay:{}@{line_start}", config.path.display()),
                line,
                full as u64,
            );
            stream
                .produce(topics::DEAD_LETTERS, vec![letter.to_record()], vec![])
                .await?;
        }
        if !line.is_empty() {
            batch.push(ProduceRecord {
                key: None,
                // A cut line says so: its event carries `log.truncated_bytes`.
                value: {
                    let value = if cut {
                        soc_core::event::truncated_record(line, full as u64)
                    } else {
                        line.to_vec()
                    };
                    match config.year {
                        Some(y) => soc_core::event::with_year(value, y),
                        None => value,
                    }
                },
                timestamp_ms: chrono::Utc::now().timestamp_millis(),
            });
        }
        if batch.len() >= config.batch_lines {
            lines += flush(stream, config, &mut batch, &name, position).await?;
            tokio::select! {
                _ = pace(config, lines, started) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
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
        truncated,
        resumed_from,
        position,
        stopped,
        "replay finished"
    );
    Ok(ReplayReport {
        lines,
        truncated,
        resumed_from,
        position,
        stopped,
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
    // Counted once the stream has them: a failed produce is retried, not counted twice.
    // Empty lines still move the checkpoint.
    stream
        .produce(
            &config.topic,
            records,
            vec![Checkpoint {
                name: name.to_string(),
                position,
            }],
        )
        .await?;
    metrics::counter!("soc_ingest_lines_total").increment(n);
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
            max_partition_bytes: None,
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

    #[tokio::test]
    async fn an_archive_replayed_with_its_year_says_so_on_every_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("auth.log.2019");
        std::fs::write(
            &file,
            "Dec 31 23:59:58 h sshd[1]: Failed password for root from 192.0.2.1 port 1 ssh2\n\
             Dec 31 23:59:59 h sshd[2]: Invalid user x from 192.0.2.1 port 2\n",
        )
        .expect("write");
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), None).expect("log");
        log.ensure_topic(&TopicSpec {
            name: soc_core::stream::topics::RAW_LOGS.into(),
            partitions: 1,
            retention_secs: None,
            max_partition_bytes: None,
        })
        .await
        .expect("topic");
        let mut config = ReplayConfig::new(&file);
        config.year = Some(2019);
        replay(&log, &config).await.expect("replay");
        let records = log
            .read(soc_core::stream::topics::RAW_LOGS, 0, 0, 10)
            .expect("read");
        assert_eq!(records.len(), 2);
        for r in &records {
            let text = std::str::from_utf8(&r.value).expect("utf-8");
            let (line, notes) = soc_core::event::split_notes(text);
            assert!(line.starts_with("Dec 31 23:59:5"), "{line}");
            assert!(!line.contains('\n'));
            assert_eq!(notes.year, Some(2019));
        }
    }
}
