//! The one way every live connector writes to the stream: a bounded queue in front of a
//! single writer that batches what the connectors submit and produces it in one durable
//! write, with the submitters' checkpoints in the same write.
//!
//! Memory is bounded by bytes, not by count: a submission waits for room (TCP and file tail
//! stop reading, so the sender's own buffers fill and it slows down) or is refused at once
//! (HTTP answers 503, UDP drops and counts). A submitter that needs to answer its sender
//! only once the lines are durable waits on the [`Receipt`].

use soc_core::stream::{topics, Checkpoint, DeadLetter, LogStream, ProduceRecord, StreamError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::error;

/// Bytes a permit stands for: the semaphore counts KiB so its count fits any budget.
const PERMIT_BYTES: usize = 1024;

/// How the writer batches and how much it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    /// Topic the lines are produced to (normally `raw-logs`).
    pub topic: String,
    /// Bytes of lines submitted but not yet durable, across every connector; beyond it
    /// submitters wait or are refused.
    pub max_pending_bytes: usize,
    /// Records per produced batch at most.
    pub batch_records: usize,
    /// Bytes per produced batch at most (a single larger submission is produced alone).
    pub batch_bytes: usize,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            topic: soc_core::stream::topics::RAW_LOGS.to_string(),
            max_pending_bytes: 16 * 1024 * 1024,
            batch_records: 5_000,
            batch_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Why a submission was not taken or not made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// The queue holds its budget of bytes; try again later.
    #[error("the stream is behind: {pending_bytes} bytes wait to be written")]
    Full { pending_bytes: usize },
    /// The writer stopped (shutdown, or the stream failed).
    #[error("the stream writer has stopped")]
    Closed,
    /// The stream refused the batch this submission was in; nothing of it is durable.
    #[error("the stream refused the batch: {0}")]
    Stream(String),
}

impl From<StreamError> for SinkError {
    fn from(e: StreamError) -> Self {
        SinkError::Stream(e.to_string())
    }
}

/// Lines to produce together, and where their source stands once they are durable.
#[derive(Debug, Default)]
pub struct Submission {
    pub records: Vec<ProduceRecord>,
    /// Lines over the size limit, in full size and place; written before the records.
    pub dead_letters: Vec<DeadLetter>,
    pub checkpoints: Vec<Checkpoint>,
}

impl From<crate::line::Lines> for Submission {
    fn from(lines: crate::line::Lines) -> Self {
        Submission {
            records: lines.records,
            dead_letters: lines.dead_letters,
            checkpoints: Vec::new(),
        }
    }
}

impl Submission {
    pub fn bytes(&self) -> usize {
        self.records
            .iter()
            .map(|r| r.value.len() + r.key.as_ref().map_or(0, Vec::len))
            .sum()
    }
}

struct Queued {
    submission: Submission,
    bytes: usize,
    _permit: OwnedSemaphorePermit,
    done: oneshot::Sender<Result<(), SinkError>>,
}

/// Resolves once the submission is durable in the stream (or failed).
pub struct Receipt(oneshot::Receiver<Result<(), SinkError>>);

impl Receipt {
    pub async fn durable(self) -> Result<(), SinkError> {
        self.0.await.unwrap_or(Err(SinkError::Closed))
    }
}

/// A handle to the writer; cheap to clone, one per connection if need be.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::UnboundedSender<Queued>,
    stream: Arc<dyn LogStream>,
    budget: Arc<Semaphore>,
    budget_permits: usize,
}

impl Sink {
    /// Start the writer. It ends, and the returned future resolves, once every handle is
    /// dropped and the queue is written, or with the error when the stream fails (what was
    /// queued then is answered with the error, never acknowledged).
    pub fn start(
        stream: Arc<dyn LogStream>,
        config: SinkConfig,
    ) -> (
        Sink,
        impl std::future::Future<Output = Result<(), StreamError>>,
    ) {
        let budget_permits = config.max_pending_bytes.div_ceil(PERMIT_BYTES).max(1);
        // Unbounded only in count: every entry holds permits for its bytes.
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = Sink {
            tx,
            stream: stream.clone(),
            budget: Arc::new(Semaphore::new(budget_permits)),
            budget_permits,
        };
        (sink, write_loop(stream, config, rx))
    }

    fn permits(&self, bytes: usize) -> u32 {
        // A submission larger than the whole budget takes the whole budget, so it is
        // written alone instead of waiting forever.
        let n = bytes.div_ceil(PERMIT_BYTES).clamp(1, self.budget_permits);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Queue a submission, waiting for room; the receipt tells when it is durable.
    pub async fn submit(&self, submission: Submission) -> Result<Receipt, SinkError> {
        let bytes = submission.bytes();
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(self.permits(bytes))
            .await
            .map_err(|_| SinkError::Closed)?;
        self.enqueue(submission, bytes, permit)
    }

    /// Queue a submission only if there is room now.
    pub fn try_submit(&self, submission: Submission) -> Result<Receipt, SinkError> {
        let bytes = submission.bytes();
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(self.permits(bytes))
            .map_err(|e| match e {
                tokio::sync::TryAcquireError::Closed => SinkError::Closed,
                tokio::sync::TryAcquireError::NoPermits => SinkError::Full {
                    pending_bytes: self.pending_bytes(),
                },
            })?;
        self.enqueue(submission, bytes, permit)
    }

    fn enqueue(
        &self,
        submission: Submission,
        bytes: usize,
        permit: OwnedSemaphorePermit,
    ) -> Result<Receipt, SinkError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Queued {
                submission,
                bytes,
                _permit: permit,
                done,
            })
            .map_err(|_| SinkError::Closed)?;
        Ok(Receipt(rx))
    }

    /// Where a source stood after its last durable submission.
    pub async fn checkpoint(&self, name: &str) -> Result<Option<u64>, SinkError> {
        Ok(self.stream.checkpoint(name).await?)
    }

    /// Bytes submitted and not yet durable (to the permit's granularity).
    pub fn pending_bytes(&self) -> usize {
        (self.budget_permits - self.budget.available_permits()) * PERMIT_BYTES
    }
}

async fn write_loop(
    stream: Arc<dyn LogStream>,
    config: SinkConfig,
    mut rx: mpsc::UnboundedReceiver<Queued>,
) -> Result<(), StreamError> {
    while let Some(first) = rx.recv().await {
        // Whatever queued up while the last write ran goes into this one.
        let mut batch = vec![first];
        let mut records = batch[0].submission.records.len();
        let mut bytes = batch[0].bytes;
        while records < config.batch_records && bytes < config.batch_bytes {
            match rx.try_recv() {
                Ok(next) => {
                    records += next.submission.records.len();
                    bytes += next.bytes;
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let mut all = Vec::with_capacity(records);
        let mut checkpoints: Vec<Checkpoint> = Vec::new();
        let mut letters = Vec::new();
        let mut answers = Vec::with_capacity(batch.len());
        for q in batch {
            all.extend(q.submission.records);
            letters.extend(q.submission.dead_letters.iter().map(DeadLetter::to_record));
            for cp in q.submission.checkpoints {
                // A later submission's position for the same source supersedes.
                match checkpoints.iter_mut().find(|c| c.name == cp.name) {
                    Some(c) => c.position = cp.position,
                    None => checkpoints.push(cp),
                }
            }
            answers.push((q.done, q._permit));
        }
        let n = all.len() as u64;
        let written = async {
            if !letters.is_empty() {
                stream
                    .produce(topics::DEAD_LETTERS, letters, Vec::new())
                    .await?;
            }
            stream.produce(&config.topic, all, checkpoints).await
        };
        match written.await {
            Ok(()) => {
                metrics::counter!("soc_ingest_lines_total").increment(n);
                for (done, _permit) in answers {
                    let _ = done.send(Ok(()));
                }
            }
            Err(e) => {
                error!(error = %e, lines = n, "the stream refused a batch of received lines");
                let answer = SinkError::from(StreamError::Unavailable(e.to_string()));
                for (done, _permit) in answers {
                    let _ = done.send(Err(answer.clone()));
                }
                // Nothing later may become durable before what failed: stop, and let the
                // process supervisor see it.
                rx.close();
                while let Ok(q) = rx.try_recv() {
                    let _ = q.done.send(Err(SinkError::Closed));
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use soc_core::stream::embedded::EmbeddedLog;
    use soc_core::stream::TopicSpec;

    async fn log(dir: &std::path::Path) -> Arc<EmbeddedLog> {
        let log = EmbeddedLog::open(&dir.join("log.redb"), None).expect("log");
        log.ensure_topic(&TopicSpec {
            name: soc_core::stream::topics::RAW_LOGS.into(),
            partitions: 1,
            retention_secs: None,
            max_partition_bytes: None,
        })
        .await
        .expect("topic");
        Arc::new(log)
    }

    fn lines(n: usize, size: usize) -> Submission {
        Submission {
            records: (0..n)
                .map(|_| ProduceRecord {
                    key: None,
                    value: vec![b'x'; size],
                    timestamp_ms: 0,
                })
                .collect(),
            ..Submission::default()
        }
    }

    #[tokio::test]
    async fn a_receipt_resolves_once_the_lines_and_checkpoint_are_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log(dir.path()).await;
        let (sink, writer) = Sink::start(log.clone(), SinkConfig::default());
        let writer = tokio::spawn(writer);
        let mut s = lines(3, 10);
        s.checkpoints.push(Checkpoint {
            name: "src".into(),
            position: 30,
        });
        sink.submit(s)
            .await
            .expect("queued")
            .durable()
            .await
            .expect("durable");
        assert_eq!(log.read("raw-logs", 0, 0, 10).expect("read").len(), 3);
        assert_eq!(log.checkpoint("src").await.expect("cp"), Some(30));
        drop(sink);
        writer.await.expect("join").expect("writer ends cleanly");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_instead_of_growing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log(dir.path()).await;
        let config = SinkConfig {
            max_pending_bytes: 8 * 1024,
            ..SinkConfig::default()
        };
        // The writer is not running: nothing drains, so the budget fills.
        let (sink, writer) = Sink::start(log.clone(), config);
        let first = sink.try_submit(lines(4, 1024)).expect("room for 4 KiB");
        let second = sink.try_submit(lines(4, 1024)).expect("room for 8 KiB");
        match sink.try_submit(lines(1, 10)) {
            Err(SinkError::Full { pending_bytes }) => assert_eq!(pending_bytes, 8 * 1024),
            other => panic!("expected Full, got {:?}", other.err()),
        }
        // Once written, the room is back.
        let writer = tokio::spawn(writer);
        first.durable().await.expect("durable");
        second.durable().await.expect("durable");
        sink.try_submit(lines(1, 10))
            .expect("room again")
            .durable()
            .await
            .expect("durable");
        assert_eq!(log.read("raw-logs", 0, 0, 100).expect("read").len(), 9);
        drop(sink);
        writer.await.expect("join").expect("clean");
    }
}
