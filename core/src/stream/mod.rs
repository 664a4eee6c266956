//! The stream every role talks through: topics with partitions, durable produce, consumers
//! with committed offsets and a SmartModule chain applied on consume.
//!
//! Two backends share this trait: [`embedded`] (an in-process durable log on redb, chains run
//! by `fluvio-smartengine`) and [`fluvio`] (a Fluvio cluster; chains run in the SPU).

#[cfg(feature = "embedded")]
pub mod chain;
pub mod config;
#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "fluvio")]
pub mod fluvio;
pub mod shipped;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Topic names used by the pipeline.
pub mod topics {
    /// Raw log lines, as shippers send them.
    pub const RAW_LOGS: &str = "raw-logs";
    /// Alerts as JSON, one record per alert revision.
    pub const ALERTS: &str = "alerts";
    /// What could not be processed as it came, with the reason ([`super::DeadLetter`]).
    pub const DEAD_LETTERS: &str = "dead-letters";
}

/// A record the pipeline could not process as it came (a line over the size limit, a
/// record the SmartModule chain fails on), kept with the reason instead of stopping
/// detection or vanishing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// `line_too_long` or `chain_failed`.
    pub reason: String,
    /// The error or limit, for a person.
    pub detail: String,
    /// Where it came from: `replay:<file>@<byte>` or `<topic>/<partition>@<offset>`.
    pub source: String,
    /// Its full size in bytes.
    pub bytes: u64,
    /// Its first bytes (at most [`DeadLetter::HEAD`]), as lossy UTF-8.
    pub head: String,
    /// When it was set aside, ms since the epoch.
    pub at_ms: i64,
}

impl DeadLetter {
    pub const HEAD: usize = 512;

    pub fn new(reason: &str, detail: String, source: String, value: &[u8], bytes: u64) -> Self {
        let head = &value[..value.len().min(Self::HEAD)];
        DeadLetter {
            reason: reason.to_string(),
            detail,
            source,
            bytes,
            head: String::from_utf8_lossy(head).into_owned(),
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }
    }

    pub fn to_record(&self) -> ProduceRecord {
        ProduceRecord {
            key: None,
            // A struct of strings and numbers always serializes.
            value: serde_json::to_vec(self).unwrap_or_default(),
            timestamp_ms: self.at_ms,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The store or cluster cannot be reached or written; the caller retries or stops.
    #[error("stream backend unavailable: {0}")]
    Unavailable(String),
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// A SmartModule could not be loaded or failed on a batch.
    #[error("smartmodule `{name}`: {reason}")]
    SmartModule { name: String, reason: String },
    /// A deployment file (topic or chain) is missing or invalid.
    #[error("{}: {source}", path.display())]
    Deployment {
        path: std::path::PathBuf,
        source: DeploymentError,
    },
    #[error("{0} holds no SmartModule (*.wasm)")]
    NoModules(String),
    #[error("a SmartModule chain was requested but no modules are loaded")]
    ChainWithoutModules,
    #[error("topic `{0}` needs at least one partition")]
    NoPartitions(String),
    /// The cluster client refused a consumer configuration.
    #[error("consumer configuration: {0}")]
    Consumer(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Asset(#[from] crate::assets::AssetError),
}

/// Why a deployment file was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("missing")]
    Missing,
    #[error(transparent)]
    Yaml(#[from] serde_norway::Error),
    #[error("bad retention time `{0}`")]
    RetentionTime(String),
    #[error("bad size `{0}` (e.g. `2 GB`)")]
    Size(String),
    /// The cluster's own parser refused it.
    #[error("{0}")]
    Cluster(Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T> = std::result::Result<T, StreamError>;

/// A topic to create if it does not exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    /// Records older than this are deleted. `None` keeps everything.
    pub retention_secs: Option<u64>,
    /// The oldest records of a partition are deleted while it holds more bytes than this
    /// (Fluvio's `partition.max-size`). `None`: no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_partition_bytes: Option<u64>,
}

/// A record to append. Its partition follows from its key (no key: partition 0).
#[derive(Debug, Clone, PartialEq)]
pub struct ProduceRecord {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    /// Ingest time, ms since the epoch.
    pub timestamp_ms: i64,
}

/// A record read from a partition, after the consumer's SmartModule chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub partition: u32,
    /// The record's offset in the source partition; kept through the chain.
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// One SmartModule of a consumer's chain, by its registered name, with its parameters.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChainStep {
    pub name: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The consumer's committed offset, or the beginning when it has none.
    #[default]
    Committed,
    Beginning,
    /// This offset: a consumer whose authoritative position lives elsewhere (the processor's
    /// database checkpoint) resumes exactly there.
    Offset(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSpec {
    pub topic: String,
    pub partition: u32,
    /// Name under which offsets are committed.
    pub consumer_id: String,
    pub chain: Vec<ChainStep>,
    pub start: StartFrom,
}

/// Where a producer stands in its input (e.g. a byte offset in a replayed file), stored
/// with the records so a restart resumes exactly after what was acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub name: String,
    pub position: u64,
}

#[async_trait]
pub trait LogStream: Send + Sync + 'static {
    /// Create the topic if it does not exist.
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<()>;

    async fn partitions(&self, topic: &str) -> Result<u32>;

    /// Append records; when this returns they are durable. With checkpoints, the embedded
    /// log stores them in the same transaction (exactly once); Fluvio stores them after the
    /// flush (at least once).
    async fn produce(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
        checkpoints: Vec<Checkpoint>,
    ) -> Result<()>;

    /// The last checkpoint stored under `name`.
    async fn checkpoint(&self, name: &str) -> Result<Option<u64>>;

    /// The next offset to be written to a partition, where the backend can tell cheaply
    /// (the embedded log); `None` where it cannot. Lets a consumer see that its checkpoint
    /// is ahead of the stream, i.e. the stream was lost or replaced.
    async fn stream_end(&self, topic: &str, partition: u32) -> Result<Option<u64>> {
        let _ = (topic, partition);
        Ok(None)
    }

    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn Consumer>>;
}

#[async_trait]
pub trait Consumer: Send {
    /// Up to `max_records` records after the chain, waiting at most `max_wait` for the
    /// first; an empty vector when nothing arrived.
    async fn next_batch(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Record>>;

    /// Mark every record returned so far as processed; durable when this returns.
    async fn commit(&mut self) -> Result<()>;
}

/// Partition of a keyed record: stable across restarts and backends' clients (FNV-1a).
pub fn partition_for(key: Option<&[u8]>, partitions: u32) -> u32 {
    let Some(key) = key else { return 0 };
    if partitions <= 1 {
        return 0;
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in key {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % partitions
}
