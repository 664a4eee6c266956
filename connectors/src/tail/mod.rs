//! Follow files as they grow (`tail -F`, with Vector's file source as the reference): globs
//! matched again on every poll, files known by a fingerprint of their first line rather
//! than by path, a position per file stored with its lines.
//!
//! - A file renamed (logrotate's default) keeps its fingerprint, so it is followed under its
//!   new name (when a glob still matches it) or read to its end through the handle kept
//!   open (when none does); the new file at the old path is a new fingerprint, read from
//!   its start.
//! - A file copied and truncated (`copytruncate`): the copy has the old fingerprint and
//!   resumes at the old position; the truncated file, once it has a first line again, is a
//!   new file.
//! - A file deleted while followed is read to its end through its handle, then let go.
//! - A restart resumes every file at its checkpoint: on the embedded log each position is
//!   written in the same transaction as its lines, so no line is lost or repeated.
//!
//! Two files whose first lines are the same bytes are taken for one (Vector's `checksum`
//! fingerprint has the same limit); a file is not read before it has a first line.

mod config;

pub use config::{default_exclude, ReadFrom, TailConfig};

use crate::error::{Error, Result};
use crate::internal_events::{self as events, Connector};
use crate::line::{now_ms, read_line_limited, LineRead, Lines};
use crate::sink::{Receipt, Sink, Submission};
use sha2::{Digest, Sha256};
use soc_core::stream::{Checkpoint, LogStream};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt, BufReader};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// The fingerprint is taken over the first line, or this many bytes when it is longer.
const FINGERPRINT_BYTES: usize = 1024;
/// Submissions not yet durable before the tail waits.
const MAX_IN_FLIGHT: usize = 16;

/// A file's identity: a hash of its first line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    fn checkpoint_name(&self) -> String {
        format!("tail:{}", self.0)
    }
}

struct Followed {
    path: PathBuf,
    file: tokio::fs::File,
    position: u64,
}

pub struct FileTail {
    config: TailConfig,
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
    stream: Arc<dyn LogStream>,
    followed: HashMap<Fingerprint, Followed>,
    /// Positions of files let go, until their checkpoints are surely durable: a file that
    /// matches again soon after resumes here, not at an older checkpoint.
    retired: HashMap<Fingerprint, u64>,
    first_scan: bool,
}

/// Let-go positions remembered at most.
const MAX_RETIRED: usize = 4096;

impl FileTail {
    /// Check the patterns; an error here is a configuration error.
    pub fn new(config: TailConfig, stream: Arc<dyn LogStream>) -> Result<Self> {
        let bad = |p: &str, e: glob::PatternError| Error::Config(format!("glob `{p}`: {e}"));
        for p in &config.include {
            glob::Pattern::new(p).map_err(|e| bad(p, e))?;
        }
        let exclude = config
            .exclude
            .iter()
            .map(|p| glob::Pattern::new(p).map_err(|e| bad(p, e)))
            .collect::<Result<Vec<_>>>()?;
        Ok(FileTail {
            include: config.include.clone(),
            config,
            exclude,
            stream,
            followed: HashMap::new(),
            retired: HashMap::new(),
            first_scan: true,
        })
    }

    /// Follow until `shutdown` turns true; what was read by then is durable on return.
    pub async fn run(mut self, sink: Sink, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        info!(include = ?self.include, "following files");
        let mut in_flight = VecDeque::new();
        loop {
            self.poll(&sink, &mut in_flight).await?;
            tokio::select! {
                _ = self.config.clock.sleep(self.config.poll_interval) => {}
                _ = crate::stopped(&mut shutdown) => break,
            }
        }
        for receipt in in_flight {
            receipt.durable().await?;
        }
        Ok(())
    }

    /// One pass: match the globs, read what each file gained.
    pub async fn poll(&mut self, sink: &Sink, in_flight: &mut VecDeque<Receipt>) -> Result<()> {
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        for path in self.matching_paths() {
            let Some((fingerprint, file)) = open_fingerprinted(&path).await else {
                continue;
            };
            if !seen.insert(fingerprint.clone()) {
                // A hard link or a copy not yet told apart: one of them is enough.
                continue;
            }
            found.push((path, fingerprint, file));
        }
        // Followed before and not matched now: renamed out of the globs or deleted. What it
        // gained since the last pass is read through the handle (first: it is older than
        // any new file), then it is let go.
        let gone: Vec<Fingerprint> = self
            .followed
            .keys()
            .filter(|f| !seen.contains(*f))
            .cloned()
            .collect();
        for fingerprint in gone {
            if let Some(entry) = self.followed.remove(&fingerprint) {
                debug!(file = %entry.path.display(), "no longer matched; read to its end");
                let entry = self
                    .read_new(entry, &fingerprint, false, sink, in_flight)
                    .await?;
                if self.retired.len() >= MAX_RETIRED {
                    self.retired.clear();
                }
                self.retired.insert(fingerprint, entry.position);
            }
        }
        // Files already followed first: after a rotation the old file's last lines come
        // before the new file's first ones.
        found.sort_by_key(|(_, f, _)| !self.followed.contains_key(f));
        for (path, fingerprint, file) in found {
            let position = match self.followed.get(&fingerprint) {
                Some(f) => {
                    if f.path != path {
                        info!(from = %f.path.display(), to = %path.display(), "followed file renamed");
                    }
                    f.position
                }
                None => self.start_position(&fingerprint, &path, &file).await?,
            };
            let entry = Followed {
                path,
                file,
                position,
            };
            let entry = self
                .read_new(entry, &fingerprint, true, sink, in_flight)
                .await?;
            self.followed.insert(fingerprint, entry);
        }
        self.first_scan = false;
        Ok(())
    }

    fn matching_paths(&self) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        for pattern in &self.include {
            let Ok(found) = glob::glob(pattern) else {
                continue;
            };
            for path in found.flatten() {
                if path.is_file() && !self.exclude.iter().any(|x| x.matches_path(&path)) {
                    paths.push(path);
                }
            }
        }
        paths.sort();
        paths.dedup();
        paths
    }

    async fn start_position(
        &self,
        fingerprint: &Fingerprint,
        path: &Path,
        file: &tokio::fs::File,
    ) -> Result<u64> {
        if let Some(p) = self.retired.get(fingerprint) {
            return Ok(*p);
        }
        if let Some(p) = self
            .stream
            .checkpoint(&fingerprint.checkpoint_name())
            .await?
        {
            info!(file = %path.display(), position = p, "resuming file at its checkpoint");
            return Ok(p);
        }
        if self.first_scan && self.config.read_from == ReadFrom::End {
            let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
            return Ok(len);
        }
        info!(file = %path.display(), "following new file from its start");
        Ok(0)
    }

    /// Read the complete lines `entry` gained since its position (up to the per-poll
    /// bound) and submit them with the position after them. A file shorter than the
    /// position was truncated: one just opened by its path still has the fingerprint, so it
    /// was written again from the start (`reread`); through an old handle its new content
    /// is another file, found by its path.
    async fn read_new(
        &self,
        mut entry: Followed,
        fingerprint: &Fingerprint,
        reread: bool,
        sink: &Sink,
        in_flight: &mut VecDeque<Receipt>,
    ) -> Result<Followed> {
        let io_err = |source| Error::Io {
            path: entry.path.display().to_string(),
            source,
        };
        let len = match entry.file.metadata().await {
            Ok(m) => m.len(),
            Err(e) => return Err(io_err(e)),
        };
        if len < entry.position {
            if !reread {
                return Ok(entry);
            }
            warn!(file = %entry.path.display(), position = entry.position, len, "file truncated; reading it from the start");
            entry.position = 0;
        }
        if len == entry.position {
            return Ok(entry);
        }
        entry
            .file
            .seek(SeekFrom::Start(entry.position))
            .await
            .map_err(io_err)?;
        let limit = self.config.max_line_bytes;
        let mut reader = BufReader::with_capacity(256 * 1024, &mut entry.file);
        let mut lines = Lines::default();
        let mut buf = Vec::new();
        let mut position = entry.position;
        let stop_at = entry.position + self.config.max_read_bytes as u64;
        while position < stop_at {
            buf.clear();
            let LineRead {
                consumed,
                len,
                complete,
            } = read_line_limited(&mut reader, &mut buf, limit)
                .await
                .map_err(|source| Error::Io {
                    path: entry.path.display().to_string(),
                    source,
                })?;
            if consumed == 0 || !complete {
                // A line still being written waits for its newline.
                break;
            }
            let at = position;
            position += consumed as u64;
            let path = &entry.path;
            lines.push(
                Connector::FileTail,
                &buf,
                len,
                limit,
                None,
                None,
                || format!("tail:{}@{at}", path.display()),
                now_ms(),
            );
            if lines.len() >= self.config.batch_lines {
                submit(&mut lines, fingerprint, position, sink, in_flight).await?;
            }
        }
        drop(reader);
        if position != entry.position {
            submit(&mut lines, fingerprint, position, sink, in_flight).await?;
            entry.position = position;
        }
        Ok(entry)
    }
}

async fn submit(
    lines: &mut Lines,
    fingerprint: &Fingerprint,
    position: u64,
    sink: &Sink,
    in_flight: &mut VecDeque<Receipt>,
) -> Result<()> {
    let batch = std::mem::take(lines);
    events::received(Connector::FileTail, batch.len() as u64, batch.bytes);
    let mut submission = Submission::from(batch);
    // Empty lines move the position too.
    submission.checkpoints.push(Checkpoint {
        name: fingerprint.checkpoint_name(),
        position,
    });
    in_flight.push_back(sink.submit(submission).await?);
    while in_flight.len() > MAX_IN_FLIGHT {
        if let Some(oldest) = in_flight.pop_front() {
            oldest.durable().await?;
        }
    }
    Ok(())
}

/// Open a file and fingerprint it; `None` when it cannot be opened (gone, no permission:
/// said once in the debug log) or has no first line yet.
async fn open_fingerprinted(path: &Path) -> Option<(Fingerprint, tokio::fs::File)> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => {
            debug!(file = %path.display(), error = %e, "cannot open");
            return None;
        }
    };
    let mut head = vec![0u8; FINGERPRINT_BYTES];
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]).await {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    let first_line = match head[..n].iter().position(|b| *b == b'\n') {
        Some(i) => &head[..=i],
        None if n == FINGERPRINT_BYTES => &head[..n],
        None => return None,
    };
    let digest = Sha256::digest(first_line);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Some((Fingerprint(hex), file))
}
