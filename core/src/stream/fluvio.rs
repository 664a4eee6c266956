//! The Fluvio backend: topics and SmartModules live in a Fluvio cluster, the chain runs in
//! the SPU on consume, consumer offsets are stored in the cluster and flushed only when the
//! caller commits (after its work is durable).
//!
//! Fluvio commits "the last record yielded", so `commit` always covers everything returned.
//! In fluvio 0.50 the stream returned by `consumer_with_config` holds a lock for as long as a
//! read is pending, and `offset_commit`/`offset_flush` wait on it: committing after a read that
//! found nothing hangs forever. So a commit is made only when the last read returned a record;
//! otherwise it is deferred to a later batch (the stored offset lags, never leads, the work).
//! The processor does not depend on it: it restarts from its database checkpoint.
//! Producer checkpoints have no transactional home in Fluvio: they are written to a local file
//! after the flush (at-least-once for a restarted replay).

use super::{
    Checkpoint, Consumer, ConsumerSpec, DeploymentError, LogStream, ProduceRecord, Record, Result,
    StartFrom, StreamError, TopicSpec,
};
use crate::assets::Assets;
use crate::clock::Clock;
use async_trait::async_trait;
use fluvio::consumer::{ConsumerConfigExtBuilder, ConsumerStream, OffsetManagementStrategy};
use fluvio::dataplane::link::ErrorCode;
use fluvio::dataplane::record::ConsumerRecord;
use fluvio::metadata::smartmodule::{SmartModuleSpec, SmartModuleWasm};
use fluvio::metadata::topic::config::TopicConfig;
use fluvio::metadata::topic::{
    CleanupPolicy, SegmentBasedPolicy, TopicSpec as FluvioTopicSpec, TopicStorageConfig,
};
use fluvio::{
    Fluvio, FluvioClusterConfig, Offset, RecordKey, SmartModuleContextData, SmartModuleExtraParams,
    SmartModuleInvocation, SmartModuleInvocationWasm, SmartModuleKind, TopicProducerPool,
};
use futures_util::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

fn unavailable(e: impl std::fmt::Display) -> StreamError {
    StreamError::Unavailable(e.to_string())
}

type BoxedStream =
    Pin<Box<dyn ConsumerStream<Item = std::result::Result<ConsumerRecord, ErrorCode>> + Send>>;

pub struct FluvioStream {
    client: Arc<Fluvio>,
    producers: Mutex<HashMap<String, Arc<TopicProducerPool>>>,
    checkpoint_dir: PathBuf,
    /// Times the retries.
    clock: Clock,
}

impl std::fmt::Debug for FluvioStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FluvioStream")
            .field("checkpoint_dir", &self.checkpoint_dir)
            .finish_non_exhaustive()
    }
}

impl FluvioStream {
    /// Connect to a cluster's SC, e.g. `127.0.0.1:9003`.
    pub async fn connect(endpoint: &str, checkpoint_dir: PathBuf) -> Result<Self> {
        let client = Fluvio::connect_with_config(&FluvioClusterConfig::new(endpoint))
            .await
            .map_err(|e| StreamError::Unavailable(format!("fluvio at {endpoint}: {e:#}")))?;
        Ok(FluvioStream {
            client: Arc::new(client),
            producers: Mutex::new(HashMap::new()),
            checkpoint_dir,
            clock: Clock::System,
        })
    }

    /// The same client with its retries timed by `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Create the topics described by the Fluvio topic YAML files in `topics/` of the
    /// deployment config (the format of `fluvio topic create --config`).
    pub async fn create_topics(&self, config: &Assets) -> Result<Vec<String>> {
        let mut created = Vec::new();
        let admin = self.client.admin().await;
        for f in config.files_with_extension("topics", &["yaml", "yml"])? {
            let cfg = f
                .text()
                .parse::<TopicConfig>()
                .map_err(|e| StreamError::Deployment {
                    path: config.describe(&format!("topics/{}", f.name)),
                    source: DeploymentError::Cluster(e.into()),
                })?;
            let name = cfg.meta.name.clone();
            match admin
                .create(name.clone(), false, FluvioTopicSpec::from(cfg))
                .await
            {
                Ok(()) => created.push(name),
                Err(e) if e.to_string().contains("already exists") => {}
                Err(e) => return Err(unavailable(format!("create topic {name}: {e:#}"))),
            }
        }
        Ok(created)
    }

    /// Register every `*.wasm` of `modules` as a SmartModule named after its file stem
    /// (re-registering replaces the module).
    pub async fn register_smartmodules(&self, modules: &Assets) -> Result<Vec<String>> {
        let admin = self.client.admin().await;
        let mut names = Vec::new();
        for f in modules.files_with_extension("", &["wasm"])? {
            let name = f.stem().to_string();
            let wasm = SmartModuleWasm::from_raw_wasm_bytes(&f.data).map_err(unavailable)?;
            let spec = SmartModuleSpec {
                wasm,
                ..Default::default()
            };
            admin
                .create(name.clone(), false, spec)
                .await
                .map_err(|e| unavailable(format!("register smartmodule {name}: {e:#}")))?;
            names.push(name);
        }
        names.sort();
        Ok(names)
    }

    async fn producer(&self, topic: &str) -> Result<Arc<TopicProducerPool>> {
        let mut producers = self.producers.lock().await;
        if let Some(p) = producers.get(topic) {
            return Ok(p.clone());
        }
        // A new topic can take a moment to reach the client's metadata: retry briefly.
        let mut last = None;
        for attempt in 0..20u64 {
            match self.client.topic_producer(topic.to_string()).await {
                Ok(p) => {
                    let p = Arc::new(p);
                    producers.insert(topic.to_string(), p.clone());
                    return Ok(p);
                }
                Err(e) => {
                    last = Some(e);
                    self.clock
                        .sleep(Duration::from_millis(100 * (attempt + 1)))
                        .await;
                }
            }
        }
        Err(unavailable(format!(
            "producer for {topic}: {:#}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    fn checkpoint_path(&self, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.checkpoint_dir.join(format!("{safe}.checkpoint"))
    }
}

#[async_trait]
impl LogStream for FluvioStream {
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<()> {
        let admin = self.client.admin().await;
        let mut fspec = FluvioTopicSpec::new_computed(spec.partitions, 1, None);
        if let Some(secs) = spec.retention_secs {
            // Fluvio refuses retention under 10 s.
            fspec.set_cleanup_policy(CleanupPolicy::Segment(SegmentBasedPolicy {
                time_in_seconds: secs.max(10) as u32,
            }));
        }
        if let Some(bytes) = spec.max_partition_bytes {
            fspec.set_storage(TopicStorageConfig {
                segment_size: None,
                max_partition_size: Some(bytes),
            });
        }
        match admin.create(spec.name.clone(), false, fspec).await {
            Ok(()) => Ok(()),
            Err(e) if e.to_string().contains("already exists") => Ok(()),
            Err(e) => Err(unavailable(format!("create topic {}: {e:#}", spec.name))),
        }
    }

    async fn partitions(&self, topic: &str) -> Result<u32> {
        let admin = self.client.admin().await;
        let topics = admin
            .list::<FluvioTopicSpec, String>(vec![topic.to_string()])
            .await
            .map_err(unavailable)?;
        topics
            .iter()
            .find(|m| m.name == topic)
            .map(|m| m.spec.partitions())
            .ok_or_else(|| StreamError::UnknownTopic(topic.to_string()))
    }

    async fn produce(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
        checkpoints: Vec<Checkpoint>,
    ) -> Result<()> {
        let producer = self.producer(topic).await?;
        for r in records {
            let key = match r.key {
                Some(k) => RecordKey::from(k),
                None => RecordKey::NULL,
            };
            producer.send(key, r.value).await.map_err(unavailable)?;
        }
        // `send` only enqueues: a record is delivered once the flush returns.
        producer.flush().await.map_err(unavailable)?;
        for cp in checkpoints {
            std::fs::create_dir_all(&self.checkpoint_dir).map_err(unavailable)?;
            let path = self.checkpoint_path(&cp.name);
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, cp.position.to_string()).map_err(unavailable)?;
            std::fs::rename(&tmp, &path).map_err(unavailable)?;
        }
        Ok(())
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<u64>> {
        match std::fs::read_to_string(self.checkpoint_path(name)) {
            Ok(s) => Ok(s.trim().parse().ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn Consumer>> {
        let invocations: Vec<SmartModuleInvocation> = spec
            .chain
            .iter()
            .map(|step| SmartModuleInvocation {
                wasm: SmartModuleInvocationWasm::Predefined(step.name.clone()),
                // The SPU picks map or filter from the module's exports.
                kind: SmartModuleKind::Generic(SmartModuleContextData::None),
                params: SmartModuleExtraParams::from(step.params.clone()),
                name: Some(step.name.clone()),
            })
            .collect();
        // With a stored offset S, `beginning()` resumes at S+1; `absolute(0)` ignores it.
        let start = match spec.start {
            StartFrom::Committed => Offset::beginning(),
            StartFrom::Beginning => Offset::absolute(0).map_err(unavailable)?,
            StartFrom::Offset(n) => Offset::absolute(n as i64).map_err(unavailable)?,
        };
        let mut builder = ConsumerConfigExtBuilder::default();
        builder
            .topic(spec.topic.clone())
            .partition(spec.partition)
            .offset_start(start)
            .offset_consumer(spec.consumer_id.clone())
            .offset_strategy(OffsetManagementStrategy::Manual);
        if !invocations.is_empty() {
            builder.smartmodule(invocations);
        }
        let config = builder
            .build()
            .map_err(|e| StreamError::Consumer(e.into()))?;
        let stream = self
            .client
            .consumer_with_config(config)
            .await
            .map_err(|e| unavailable(format!("consumer on {}: {e:#}", spec.topic)))?;
        let stream: BoxedStream = Box::pin(stream);
        Ok(Box::new(FluvioConsumer {
            stream,
            partition: spec.partition,
            uncommitted: false,
            last_read_returned: false,
        }))
    }
}

/// Longest wait for the cluster to acknowledge an offset flush.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

struct FluvioConsumer {
    stream: BoxedStream,
    partition: u32,
    uncommitted: bool,
    /// Whether the last read returned a record (no read is pending: committing is safe).
    last_read_returned: bool,
}

fn to_record(partition: u32, r: ConsumerRecord) -> Record {
    Record {
        partition,
        offset: r.offset().max(0) as u64,
        timestamp_ms: r.timestamp(),
        key: r.key().map(<[u8]>::to_vec),
        value: r.value().to_vec(),
    }
}

#[async_trait]
impl Consumer for FluvioConsumer {
    async fn next_batch(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Record>> {
        let first = match tokio::time::timeout(max_wait, self.stream.next()).await {
            Err(_) => {
                self.last_read_returned = false;
                return Ok(Vec::new());
            }
            Ok(None) => return Err(StreamError::Unavailable("fluvio stream ended".into())),
            Ok(Some(Err(code))) => return Err(unavailable(format!("{code:?}"))),
            Ok(Some(Ok(r))) => r,
        };
        let mut out = vec![to_record(self.partition, first)];
        self.last_read_returned = true;
        // Take what is already buffered without waiting again.
        while out.len() < max_records {
            match self.stream.next().now_or_never() {
                Some(Some(Ok(r))) => out.push(to_record(self.partition, r)),
                Some(Some(Err(code))) => return Err(unavailable(format!("{code:?}"))),
                Some(None) => break,
                None => {
                    self.last_read_returned = false;
                    break;
                }
            }
        }
        self.uncommitted = true;
        Ok(out)
    }

    async fn commit(&mut self) -> Result<()> {
        if !self.uncommitted {
            return Ok(());
        }
        if !self.last_read_returned {
            tracing::debug!(
                partition = self.partition,
                "offset commit deferred: a read is pending"
            );
            return Ok(());
        }
        let stream = &mut self.stream;
        let commit = async {
            stream
                .offset_commit()
                .await
                .map_err(|c| unavailable(format!("offset commit: {c:?}")))?;
            stream
                .offset_flush()
                .await
                .map_err(|c| unavailable(format!("offset flush: {c:?}")))
        };
        tokio::time::timeout(FLUSH_TIMEOUT, commit)
            .await
            .map_err(|_| unavailable("offset flush not acknowledged in time"))??;
        self.uncommitted = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `soc setup` hands the shipped topic files to Fluvio's own parser: they must agree
    /// with ours, sizes included.
    #[test]
    fn fluvio_reads_the_shipped_topics_as_we_do() {
        let set = crate::stream::shipped::deployment();
        let ours = crate::stream::config::topics_from(&set).expect("ours");
        for f in set
            .files_with_extension("topics", &["yaml", "yml"])
            .expect("files")
        {
            let cfg: TopicConfig = f.text().parse().expect("fluvio parses it");
            let spec = ours
                .iter()
                .find(|t| t.name == cfg.meta.name)
                .expect("same topic");
            assert_eq!(
                cfg.partition.max_size.map(|s| s.as_u64()),
                spec.max_partition_bytes,
                "{}",
                spec.name
            );
        }
    }
}
