//! The embedded durable log: topics, partitions, offsets, per-consumer committed offsets and
//! time retention in one redb file. Consumers run their SmartModule chain in-process.
//!
//! Every produce is one redb write transaction committed with `Durability::Immediate`
//! (fsync), so a record is acknowledged only once it is on disk; a producer checkpoint is
//! stored in the same transaction, so a restarted producer neither loses nor repeats lines.

use super::chain::{Chain, ModuleRegistry};
use super::{
    partition_for, topics, ChainStep, Checkpoint, Consumer, ConsumerSpec, DeadLetter, LogStream,
    ProduceRecord, Record, Result, StartFrom, StreamError, TopicSpec,
};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// topic -> (partitions, retention seconds; 0 keeps everything)
const TOPICS: TableDefinition<&str, (u32, u64)> = TableDefinition::new("topics");
/// (consumer, topic, partition) -> next offset to read
const CONSUMER_OFFSETS: TableDefinition<(&str, &str, u32), u64> =
    TableDefinition::new("consumer_offsets");
/// producer checkpoint name -> position
const CHECKPOINTS: TableDefinition<&str, u64> = TableDefinition::new("checkpoints");
/// topic -> most bytes a partition keeps
const SIZE_LIMITS: TableDefinition<&str, u64> = TableDefinition::new("size_limits");
/// records table -> bytes of its records, kept with every write and delete
const SIZES: TableDefinition<&str, u64> = TableDefinition::new("sizes");

/// Bytes of a records table: its counter, or (for a log written before the counters
/// existed) the sum of its records, counted once.
fn table_bytes(
    sizes: &redb::Table<&str, u64>,
    records: &redb::Table<u64, &[u8]>,
    name: &str,
) -> Result<u64> {
    if let Some(n) = sizes.get(name).map_err(unavailable)? {
        return Ok(n.value());
    }
    let mut total = 0u64;
    for e in records.iter().map_err(unavailable)? {
        let (_, v) = e.map_err(unavailable)?;
        total += v.value().len() as u64;
    }
    Ok(total)
}

fn records_table(topic: &str, partition: u32) -> String {
    format!("records/{topic}/{partition}")
}

fn unavailable(e: impl std::fmt::Display) -> StreamError {
    StreamError::Unavailable(e.to_string())
}

/// Record layout: timestamp (i64 LE), key length (u32 LE, u32::MAX for none), key, value.
fn encode_record(r: &ProduceRecord) -> Vec<u8> {
    let key_len = r.key.as_ref().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(12 + key_len + r.value.len());
    out.extend_from_slice(&r.timestamp_ms.to_le_bytes());
    match &r.key {
        Some(k) => {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
        }
        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
    }
    out.extend_from_slice(&r.value);
    out
}

fn decode_record(partition: u32, offset: u64, bytes: &[u8]) -> Option<Record> {
    let ts = i64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
    let key_len = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
    let (key, rest) = if key_len == u32::MAX {
        (None, bytes.get(12..)?)
    } else {
        let end = 12 + key_len as usize;
        (Some(bytes.get(12..end)?.to_vec()), bytes.get(end..)?)
    };
    Some(Record {
        partition,
        offset,
        timestamp_ms: ts,
        key,
        value: rest.to_vec(),
    })
}

struct Inner {
    db: Database,
    /// Next offset to write, per (topic, partition); watched by consumers.
    ends: Mutex<HashMap<(String, u32), watch::Sender<u64>>>,
    /// Serializes writers so offsets are assigned in commit order.
    write_lock: Mutex<()>,
    modules: Option<ModuleRegistry>,
    chain_memory_limit: Option<usize>,
    /// Raw bytes a consumer hands its chain at once, at most (one larger record goes alone).
    chain_batch_bytes: usize,
    dead_letters: std::sync::atomic::AtomicU64,
}

/// Default bound of a chain batch in bytes: far below any sane wasm store limit.
pub const CHAIN_BATCH_BYTES: usize = 4 << 20;

/// A durable log in one file. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog").finish_non_exhaustive()
    }
}

/// Pages of the log kept in memory.
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;

impl EmbeddedLog {
    /// Open or create the log at `path`. `modules` supplies SmartModules for consumer chains.
    pub fn open(path: &Path, modules: Option<ModuleRegistry>) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(unavailable)?;
        }
        // redb caches up to 1 GiB by default, and a log written once and read once gains
        // little from it: RSS grew with every line received.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(unavailable)?;
        {
            let tx = db.begin_write().map_err(unavailable)?;
            tx.open_table(TOPICS).map_err(unavailable)?;
            tx.open_table(CONSUMER_OFFSETS).map_err(unavailable)?;
            tx.open_table(CHECKPOINTS).map_err(unavailable)?;
            tx.open_table(SIZE_LIMITS).map_err(unavailable)?;
            tx.open_table(SIZES).map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
        }
        let log = EmbeddedLog {
            inner: Arc::new(Inner {
                db,
                ends: Mutex::new(HashMap::new()),
                write_lock: Mutex::new(()),
                modules,
                chain_memory_limit: None,
                chain_batch_bytes: CHAIN_BATCH_BYTES,
                dead_letters: std::sync::atomic::AtomicU64::new(0),
            }),
        };
        log.load_ends()?;
        Ok(log)
    }

    /// Bound the raw bytes a consumer hands its chain at once (default
    /// [`CHAIN_BATCH_BYTES`]).
    pub fn with_chain_batch_bytes(mut self, bytes: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.chain_batch_bytes = bytes.max(1);
        }
        self
    }

    /// Limit each consumer chain's wasm store (bytes).
    pub fn with_chain_memory_limit(mut self, bytes: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.chain_memory_limit = Some(bytes);
        }
        self
    }

    fn load_ends(&self) -> Result<()> {
        let rtx = self.inner.db.begin_read().map_err(unavailable)?;
        let topics = rtx.open_table(TOPICS).map_err(unavailable)?;
        let mut ends = self.inner.ends.lock().map_err(unavailable)?;
        for entry in topics.iter().map_err(unavailable)? {
            let (name, meta) = entry.map_err(unavailable)?;
            let (partitions, _) = meta.value();
            for p in 0..partitions {
                let table_name = records_table(name.value(), p);
                let def: TableDefinition<u64, &[u8]> = TableDefinition::new(&table_name);
                let end = match rtx.open_table(def) {
                    Ok(t) => t
                        .last()
                        .map_err(unavailable)?
                        .map_or(0, |(k, _)| k.value() + 1),
                    Err(redb::TableError::TableDoesNotExist(_)) => 0,
                    Err(e) => return Err(unavailable(e)),
                };
                ends.insert((name.value().to_string(), p), watch::channel(end).0);
            }
        }
        Ok(())
    }

    fn end_watch(&self, topic: &str, partition: u32) -> Result<watch::Receiver<u64>> {
        let ends = self.inner.ends.lock().map_err(unavailable)?;
        ends.get(&(topic.to_string(), partition))
            .map(|s| s.subscribe())
            .ok_or_else(|| StreamError::UnknownTopic(format!("{topic}/{partition}")))
    }

    fn topic_meta(&self, topic: &str) -> Result<(u32, u64)> {
        let rtx = self.inner.db.begin_read().map_err(unavailable)?;
        let topics = rtx.open_table(TOPICS).map_err(unavailable)?;
        let meta = topics
            .get(topic)
            .map_err(unavailable)?
            .ok_or_else(|| StreamError::UnknownTopic(topic.to_string()))?;
        Ok(meta.value())
    }

    fn produce_blocking(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
        checkpoints: Vec<Checkpoint>,
    ) -> Result<()> {
        let (partitions, _) = self.topic_meta(topic)?;
        let _guard = self.inner.write_lock.lock().map_err(unavailable)?;
        let mut next: HashMap<u32, u64> = HashMap::new();
        {
            let ends = self.inner.ends.lock().map_err(unavailable)?;
            for p in 0..partitions {
                let end = ends
                    .get(&(topic.to_string(), p))
                    .map(|s| *s.borrow())
                    .unwrap_or(0);
                next.insert(p, end);
            }
        }
        let tx = self.inner.db.begin_write().map_err(unavailable)?;
        {
            let mut by_partition: HashMap<u32, Vec<&ProduceRecord>> = HashMap::new();
            for r in &records {
                by_partition
                    .entry(partition_for(r.key.as_deref(), partitions))
                    .or_default()
                    .push(r);
            }
            let mut sizes = tx.open_table(SIZES).map_err(unavailable)?;
            for (p, recs) in by_partition {
                let name = records_table(topic, p);
                let def: TableDefinition<u64, &[u8]> = TableDefinition::new(&name);
                let mut table = tx.open_table(def).map_err(unavailable)?;
                let mut bytes = table_bytes(&sizes, &table, &name)?;
                let offset = next.entry(p).or_insert(0);
                for r in recs {
                    let encoded = encode_record(r);
                    bytes += encoded.len() as u64;
                    table
                        .insert(*offset, encoded.as_slice())
                        .map_err(unavailable)?;
                    *offset += 1;
                }
                sizes.insert(name.as_str(), bytes).map_err(unavailable)?;
            }
            if !checkpoints.is_empty() {
                let mut t = tx.open_table(CHECKPOINTS).map_err(unavailable)?;
                for cp in &checkpoints {
                    t.insert(cp.name.as_str(), cp.position)
                        .map_err(unavailable)?;
                }
            }
        }
        tx.commit().map_err(unavailable)?;
        let ends = self.inner.ends.lock().map_err(unavailable)?;
        for (p, end) in next {
            if let Some(s) = ends.get(&(topic.to_string(), p)) {
                s.send_replace(end);
            }
        }
        Ok(())
    }

    /// Up to `max` records from `from`, stopping once they hold `max_bytes` (always at
    /// least one record, whatever its size).
    fn read_blocking(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>> {
        let rtx = self.inner.db.begin_read().map_err(unavailable)?;
        let name = records_table(topic, partition);
        let def: TableDefinition<u64, &[u8]> = TableDefinition::new(&name);
        let table = match rtx.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(unavailable(e)),
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for entry in table.range(from..).map_err(unavailable)?.take(max) {
            let (k, v) = entry.map_err(unavailable)?;
            bytes += v.value().len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            let offset = k.value();
            let rec = decode_record(partition, offset, v.value()).ok_or_else(|| {
                StreamError::Unavailable(format!("corrupt record {topic}/{partition}@{offset}"))
            })?;
            out.push(rec);
        }
        Ok(out)
    }

    /// Delete records older than each topic's retention, then the oldest of any partition
    /// holding more than its topic's size limit. The newest record of a partition is always
    /// kept, so its end offset survives. Returns how many were deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<u64> {
        let topics: Vec<(String, u32, u64, Option<u64>)> = {
            let rtx = self.inner.db.begin_read().map_err(unavailable)?;
            let t = rtx.open_table(TOPICS).map_err(unavailable)?;
            let limits = rtx.open_table(SIZE_LIMITS).map_err(unavailable)?;
            let mut v = Vec::new();
            for e in t.iter().map_err(unavailable)? {
                let (k, meta) = e.map_err(unavailable)?;
                let (p, r) = meta.value();
                let limit = limits
                    .get(k.value())
                    .map_err(unavailable)?
                    .map(|l| l.value());
                v.push((k.value().to_string(), p, r, limit));
            }
            v
        };
        let _guard = self.inner.write_lock.lock().map_err(unavailable)?;
        let tx = self.inner.db.begin_write().map_err(unavailable)?;
        let mut deleted = 0;
        {
            let mut sizes = tx.open_table(SIZES).map_err(unavailable)?;
            for (topic, partitions, retention_secs, limit) in topics {
                if retention_secs == 0 && limit.is_none() {
                    continue;
                }
                let cutoff = if retention_secs == 0 {
                    i64::MIN
                } else {
                    now_ms - (retention_secs as i64) * 1000
                };
                for p in 0..partitions {
                    let name = records_table(&topic, p);
                    let def: TableDefinition<u64, &[u8]> = TableDefinition::new(&name);
                    let mut table = tx.open_table(def).map_err(unavailable)?;
                    let mut bytes = table_bytes(&sizes, &table, &name)?;
                    let last = table.last().map_err(unavailable)?.map(|(k, _)| k.value());
                    // Offsets grow with time: from the oldest, delete while a record is out
                    // of the retention or the partition is over its size.
                    let mut doomed = Vec::new();
                    let mut left = bytes;
                    for e in table.iter().map_err(unavailable)? {
                        let (k, v) = e.map_err(unavailable)?;
                        let ts = v
                            .value()
                            .get(0..8)
                            .and_then(|b| b.try_into().ok())
                            .map(i64::from_le_bytes)
                            .unwrap_or(i64::MAX);
                        let too_old = ts < cutoff;
                        let too_big = limit.is_some_and(|l| left > l);
                        if Some(k.value()) == last || !(too_old || too_big) {
                            break;
                        }
                        left = left.saturating_sub(v.value().len() as u64);
                        doomed.push(k.value());
                    }
                    for k in doomed {
                        table.remove(k).map_err(unavailable)?;
                        deleted += 1;
                    }
                    bytes = left;
                    sizes.insert(name.as_str(), bytes).map_err(unavailable)?;
                }
            }
        }
        tx.commit().map_err(unavailable)?;
        Ok(deleted)
    }

    fn committed_offset(&self, consumer: &str, topic: &str, partition: u32) -> Result<u64> {
        let rtx = self.inner.db.begin_read().map_err(unavailable)?;
        let t = rtx.open_table(CONSUMER_OFFSETS).map_err(unavailable)?;
        Ok(t.get((consumer, topic, partition))
            .map_err(unavailable)?
            .map_or(0, |v| v.value()))
    }

    fn commit_blocking(
        &self,
        consumer: &str,
        topic: &str,
        partition: u32,
        next: u64,
    ) -> Result<()> {
        let tx = self.inner.db.begin_write().map_err(unavailable)?;
        {
            let mut t = tx.open_table(CONSUMER_OFFSETS).map_err(unavailable)?;
            t.insert((consumer, topic, partition), next)
                .map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)
    }

    /// Records in a partition after `from`, without a chain (for tools and tests).
    pub fn read(&self, topic: &str, partition: u32, from: u64, max: usize) -> Result<Vec<Record>> {
        self.read_blocking(topic, partition, from, max, usize::MAX)
    }

    /// Run `records` through `chain`; when the chain fails on a batch, split it and run the
    /// halves, so the records it cannot process end up alone in `dead` (with the error) and
    /// every other record goes on. The chain is rebuilt after each failure: a trapped wasm
    /// store is not reused.
    fn isolate(
        &self,
        chain: &mut Chain,
        steps: &[ChainStep],
        records: Vec<Record>,
        dead: &mut Vec<(Record, String)>,
    ) -> Result<Vec<Record>> {
        let err = match chain.process(&records) {
            Ok(out) => return Ok(out),
            Err(e) => e,
        };
        if let Some(m) = &self.inner.modules {
            *chain = m.build_chain(steps, self.inner.chain_memory_limit)?;
        }
        let mut records = records;
        if records.len() == 1 {
            dead.extend(records.pop().map(|r| (r, err.to_string())));
            return Ok(Vec::new());
        }
        let second = records.split_off(records.len() / 2);
        let mut out = self.isolate(chain, steps, records, dead)?;
        out.extend(self.isolate(chain, steps, second, dead)?);
        Ok(out)
    }

    /// Set aside what the chain could not process, counted, in the dead-letter topic.
    fn dead_letter(&self, topic: &str, partition: u32, dead: Vec<(Record, String)>) -> Result<()> {
        if dead.is_empty() {
            return Ok(());
        }
        self.inner
            .dead_letters
            .fetch_add(dead.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let letters: Vec<ProduceRecord> = dead
            .iter()
            .map(|(r, e)| {
                tracing::warn!(topic, partition, offset = r.offset, error = %e, "record set aside: the chain fails on it");
                DeadLetter::new(
                    "chain_failed",
                    e.clone(),
                    format!("{topic}/{partition}@{}", r.offset),
                    &r.value,
                    r.value.len() as u64,
                )
                .to_record()
            })
            .collect();
        match self.produce_blocking(topics::DEAD_LETTERS, letters, Vec::new()) {
            // Without the topic the letters are still counted and logged above.
            Err(StreamError::UnknownTopic(_)) => Ok(()),
            other => other,
        }
    }

    /// Records set aside in the dead-letter topic by consumer chains since the log opened.
    pub fn dead_letters(&self) -> u64 {
        self.inner
            .dead_letters
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The next offset to be written in a partition.
    pub fn end_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        Ok(*self.end_watch(topic, partition)?.borrow())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(unavailable)?
}

#[async_trait]
impl LogStream for EmbeddedLog {
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<()> {
        if spec.partitions == 0 {
            return Err(StreamError::NoPartitions(spec.name.clone()));
        }
        let log = self.clone();
        let spec = spec.clone();
        blocking(move || {
            let _guard = log.inner.write_lock.lock().map_err(unavailable)?;
            let tx = log.inner.db.begin_write().map_err(unavailable)?;
            {
                // The configured limit applies from this start on, also to an existing topic.
                let mut limits = tx.open_table(SIZE_LIMITS).map_err(unavailable)?;
                match spec.max_partition_bytes {
                    Some(bytes) => limits.insert(spec.name.as_str(), bytes).map(|_| ()),
                    None => limits.remove(spec.name.as_str()).map(|_| ()),
                }
                .map_err(unavailable)?;
            }
            let partitions = {
                let mut t = tx.open_table(TOPICS).map_err(unavailable)?;
                let existing = t
                    .get(spec.name.as_str())
                    .map_err(unavailable)?
                    .map(|v| v.value());
                match existing {
                    Some((p, _)) => p,
                    None => {
                        t.insert(
                            spec.name.as_str(),
                            (spec.partitions, spec.retention_secs.unwrap_or(0)),
                        )
                        .map_err(unavailable)?;
                        spec.partitions
                    }
                }
            };
            tx.commit().map_err(unavailable)?;
            let mut ends = log.inner.ends.lock().map_err(unavailable)?;
            for p in 0..partitions {
                ends.entry((spec.name.clone(), p))
                    .or_insert_with(|| watch::channel(0).0);
            }
            Ok(())
        })
        .await
    }

    async fn stream_end(&self, topic: &str, partition: u32) -> Result<Option<u64>> {
        self.end_offset(topic, partition).map(Some)
    }

    async fn partitions(&self, topic: &str) -> Result<u32> {
        let log = self.clone();
        let topic = topic.to_string();
        blocking(move || log.topic_meta(&topic).map(|(p, _)| p)).await
    }

    async fn produce(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
        checkpoints: Vec<Checkpoint>,
    ) -> Result<()> {
        if records.is_empty() && checkpoints.is_empty() {
            return Ok(());
        }
        let log = self.clone();
        let topic = topic.to_string();
        blocking(move || log.produce_blocking(&topic, records, checkpoints)).await
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<u64>> {
        let log = self.clone();
        let name = name.to_string();
        blocking(move || {
            let rtx = log.inner.db.begin_read().map_err(unavailable)?;
            let t = rtx.open_table(CHECKPOINTS).map_err(unavailable)?;
            Ok(t.get(name.as_str())
                .map_err(unavailable)?
                .map(|v| v.value()))
        })
        .await
    }

    async fn consumer(&self, spec: ConsumerSpec) -> Result<Box<dyn Consumer>> {
        let watch = self.end_watch(&spec.topic, spec.partition)?;
        let log = self.clone();
        let spec2 = spec.clone();
        let (position, chain) = blocking(move || {
            let position = match spec2.start {
                StartFrom::Committed => {
                    log.committed_offset(&spec2.consumer_id, &spec2.topic, spec2.partition)?
                }
                StartFrom::Beginning => 0,
                StartFrom::Offset(n) => n,
            };
            let chain = match (&log.inner.modules, spec2.chain.is_empty()) {
                (_, true) => None,
                (Some(m), false) => {
                    Some(m.build_chain(&spec2.chain, log.inner.chain_memory_limit)?)
                }
                (None, false) => return Err(StreamError::ChainWithoutModules),
            };
            Ok((position, chain))
        })
        .await?;
        Ok(Box::new(EmbeddedConsumer {
            log: self.clone(),
            spec,
            position,
            chain: chain.map(|c| Arc::new(Mutex::new(c))),
            watch,
        }))
    }
}

struct EmbeddedConsumer {
    log: EmbeddedLog,
    spec: ConsumerSpec,
    /// Next raw offset to read; records the chain dropped are behind it too.
    position: u64,
    chain: Option<Arc<Mutex<Chain>>>,
    watch: watch::Receiver<u64>,
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn next_batch(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Record>> {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let end = *self.watch.borrow_and_update();
            if end > self.position {
                let log = self.log.clone();
                let (topic, partition, from) =
                    (self.spec.topic.clone(), self.spec.partition, self.position);
                let chain = self.chain.clone();
                let steps = self.spec.chain.clone();
                let (raw_end, records) = blocking(move || {
                    let raw = log.read_blocking(
                        &topic,
                        partition,
                        from,
                        max_records,
                        log.inner.chain_batch_bytes,
                    )?;
                    let raw_end = raw.last().map_or(from, |r| r.offset + 1);
                    let out = match chain {
                        Some(c) => {
                            let mut chain = c.lock().map_err(unavailable)?;
                            let mut dead = Vec::new();
                            let out = log.isolate(&mut chain, &steps, raw, &mut dead)?;
                            log.dead_letter(&topic, partition, dead)?;
                            out
                        }
                        None => raw,
                    };
                    Ok((raw_end, out))
                })
                .await?;
                self.position = raw_end;
                if !records.is_empty() || raw_end == from {
                    return Ok(records);
                }
                // The chain dropped the whole batch: read on.
                continue;
            }
            match tokio::time::timeout_at(deadline, self.watch.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(StreamError::Unavailable("log closed".into())),
                Err(_) => return Ok(Vec::new()),
            }
        }
    }

    async fn commit(&mut self) -> Result<()> {
        let log = self.log.clone();
        let spec = self.spec.clone();
        let position = self.position;
        blocking(move || {
            log.commit_blocking(&spec.consumer_id, &spec.topic, spec.partition, position)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &str, ts: i64) -> ProduceRecord {
        ProduceRecord {
            key: None,
            value: v.as_bytes().to_vec(),
            timestamp_ms: ts,
        }
    }

    async fn topic(log: &EmbeddedLog, name: &str, retention_secs: Option<u64>) {
        log.ensure_topic(&TopicSpec {
            name: name.into(),
            partitions: 1,
            retention_secs,
            max_partition_bytes: None,
        })
        .await
        .expect("topic");
    }

    fn spec(topic: &str, id: &str) -> ConsumerSpec {
        ConsumerSpec {
            topic: topic.into(),
            partition: 0,
            consumer_id: id.into(),
            chain: vec![],
            start: StartFrom::Committed,
        }
    }

    #[tokio::test]
    async fn records_offsets_and_commits_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.redb");
        {
            let log = EmbeddedLog::open(&path, None).expect("open");
            topic(&log, "t", None).await;
            log.produce("t", vec![rec("a", 1), rec("b", 2), rec("c", 3)], vec![])
                .await
                .expect("produce");
            let mut c = log.consumer(spec("t", "c1")).await.expect("consumer");
            let got = c
                .next_batch(2, Duration::from_millis(10))
                .await
                .expect("batch");
            assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0, 1]);
            c.commit().await.expect("commit");
        }
        let log = EmbeddedLog::open(&path, None).expect("reopen");
        assert_eq!(log.end_offset("t", 0).expect("end"), 3);
        let mut c = log.consumer(spec("t", "c1")).await.expect("consumer");
        let got = c
            .next_batch(10, Duration::from_millis(10))
            .await
            .expect("batch");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].value, b"c");
        assert_eq!(got[0].timestamp_ms, 3);
        // Another consumer id starts from the beginning.
        let mut other = log.consumer(spec("t", "c2")).await.expect("consumer");
        let got = other
            .next_batch(10, Duration::from_millis(10))
            .await
            .expect("batch");
        assert_eq!(got.len(), 3);
    }

    #[tokio::test]
    async fn consumer_wakes_on_produce() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), None).expect("open");
        topic(&log, "t", None).await;
        let mut c = log.consumer(spec("t", "c")).await.expect("consumer");
        let empty = c
            .next_batch(10, Duration::from_millis(20))
            .await
            .expect("batch");
        assert!(empty.is_empty());
        let log2 = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            log2.produce("t", vec![rec("x", 1)], vec![])
                .await
                .expect("produce");
        });
        let got = c
            .next_batch(10, Duration::from_secs(5))
            .await
            .expect("batch");
        assert_eq!(got.len(), 1);
    }

    #[tokio::test]
    async fn checkpoint_is_stored_with_the_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), None).expect("open");
        topic(&log, "t", None).await;
        assert_eq!(log.checkpoint("file").await.expect("cp"), None);
        log.produce(
            "t",
            vec![rec("a", 1)],
            vec![
                Checkpoint {
                    name: "file".into(),
                    position: 42,
                },
                Checkpoint {
                    name: "other".into(),
                    position: 7,
                },
            ],
        )
        .await
        .expect("produce");
        assert_eq!(log.checkpoint("file").await.expect("cp"), Some(42));
        assert_eq!(log.checkpoint("other").await.expect("cp"), Some(7));
    }

    #[tokio::test]
    async fn retention_deletes_old_records_but_keeps_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), None).expect("open");
        topic(&log, "t", Some(10)).await;
        log.produce(
            "t",
            vec![rec("old", 1_000), rec("old2", 2_000), rec("new", 100_000)],
            vec![],
        )
        .await
        .expect("produce");
        let deleted = log.enforce_retention(105_000).expect("retention");
        assert_eq!(deleted, 2);
        let left = log.read("t", 0, 0, 10).expect("read");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].offset, 2);
        assert_eq!(log.end_offset("t", 0).expect("end"), 3);
    }

    #[tokio::test]
    async fn a_partition_over_its_size_loses_its_oldest_records_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.redb");
        let value = "x".repeat(1_000);
        {
            let log = EmbeddedLog::open(&path, None).expect("open");
            log.ensure_topic(&TopicSpec {
                name: "t".into(),
                partitions: 1,
                retention_secs: None,
                max_partition_bytes: Some(10_000),
            })
            .await
            .expect("topic");
            for i in 0..50 {
                log.produce("t", vec![rec(&value, i)], vec![])
                    .await
                    .expect("produce");
            }
            // Within its time retention (none), over its size: the oldest go.
            let deleted = log.enforce_retention(1_000_000).expect("retention");
            let left = log.read("t", 0, 0, 100).expect("read");
            assert_eq!(deleted as usize + left.len(), 50);
            let bytes: usize = left.iter().map(|r| r.value.len() + 12).sum();
            assert!(bytes <= 10_000, "{bytes} bytes kept");
            assert!(left.len() >= 9, "no more than needed went: {}", left.len());
            assert_eq!(left.last().map(|r| r.offset), Some(49), "the newest stay");
            assert_eq!(log.end_offset("t", 0).expect("end"), 50);
            assert_eq!(log.enforce_retention(1_000_000).expect("again"), 0);
        }
        // The counter survives a restart: more writes are bounded the same way.
        let log = EmbeddedLog::open(&path, None).expect("reopen");
        for i in 50..60 {
            log.produce("t", vec![rec(&value, i)], vec![])
                .await
                .expect("produce");
        }
        log.enforce_retention(1_000_000).expect("retention");
        let left = log.read("t", 0, 0, 100).expect("read");
        let bytes: usize = left.iter().map(|r| r.value.len() + 12).sum();
        assert!(bytes <= 10_000 && left.len() >= 9, "{} records", left.len());
        assert_eq!(left.last().map(|r| r.offset), Some(59));
    }

    #[tokio::test]
    async fn unknown_topic_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), None).expect("open");
        let err = log
            .produce("nope", vec![rec("a", 1)], vec![])
            .await
            .expect_err("unknown");
        assert!(matches!(err, StreamError::UnknownTopic(_)));
    }
}
