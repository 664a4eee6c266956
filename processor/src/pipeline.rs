//! The processor loop, one task per owned partition:
//! read a batch (chain applied) → run the rules → commit alerts, rule state and checkpoint in
//! one database transaction → publish the alerts → commit the stream offset.
//!
//! A restart resumes from the database checkpoint (records below it are skipped), restores
//! the open windows, and republishes the alerts of the last committed batch, so a `kill -9`
//! anywhere loses no alert and stores none twice (ids are deterministic; writes are upserts).

use crate::error::{Error, Result};
use crate::ioc::IocSet;
use crate::publish::publish;
use crate::rules::detector::Detector;
use crate::rules::load_rules;
use crate::settings::ProcessorSettings;
use crate::store::Store;
use crate::suppress::Suppressions;
use crate::triage::{TriageHandle, TriageStats};
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use sea_orm::DatabaseConnection;
use serde_json::Value;
use soc_core::clock::Clock;
use soc_core::event::KIND_UNPARSED;
use soc_core::stream::{Consumer, ConsumerSpec, LogStream, Record, StartFrom, StreamError};
use soc_core::Alert;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};
use uuid::Uuid;

/// Counters a caller (the launcher's health and bench) can read.
#[derive(Debug, Default)]
pub struct ProcessorStats {
    /// Records read after the chain.
    pub records: AtomicU64,
    /// Alert revisions written.
    pub alerts: AtomicU64,
    /// Records that were not a JSON object (the chain should never let one through).
    pub invalid_records: AtomicU64,
    /// Alert updates withheld by analysts' suppressions.
    pub suppressed: AtomicU64,
    /// Lines no parser recognized.
    pub parse_failures: AtomicU64,
    /// Records in the input not yet processed, by partition (measured every 5 s).
    pub lag: std::sync::Mutex<std::collections::BTreeMap<u32, u64>>,
    /// Partitions whose consumer (and SmartModule chain) is ready.
    pub partitions_ready: AtomicU64,
    /// Partitions found behind the database's checkpoint at start (the stream was lost or
    /// replaced) and processed again from their start.
    pub stream_resets: AtomicU64,
    /// LLM triage counters.
    pub triage: Arc<TriageStats>,
}

/// How often windows past the watermark are swept.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);
/// Batches slower than this are logged (debug) with the time of each stage.
const SLOW_BATCH: Duration = Duration::from_millis(50);
/// How often the lag behind the input stream is measured.
const LAG_EVERY: Duration = Duration::from_secs(5);
/// Retries of a failed database commit before the role stops.
const COMMIT_RETRIES: usize = 5;

pub async fn run(
    settings: ProcessorSettings,
    stream: Arc<dyn LogStream>,
    db: DatabaseConnection,
    stats: Arc<ProcessorStats>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let rules = load_rules(&settings.rules, &settings.rule_overrides)?;
    let iocs = IocSet::load(&settings.indicators)?;
    info!(rules = rules.len(), indicators = iocs.len(), "rules loaded");
    let partitions: Vec<u32> = if settings.partitions.is_empty() {
        (0..stream.partitions(&settings.input_topic).await?).collect()
    } else {
        settings.partitions.clone()
    };
    let (triage, worker) = TriageHandle::with_clock(
        settings.triage.clone(),
        stats.triage.clone(),
        settings.clock,
    )?;
    // The worker and its writer end with the shutdown signal; alerts never wait on them.
    let mut background = tokio::task::JoinSet::new();
    if let Some(worker) = worker {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        background.spawn(worker.run(tx, shutdown.clone()));
        background.spawn(crate::triage::updates::write_updates(
            rx,
            db.clone(),
            stream.clone(),
            settings.alerts_topic.clone(),
            settings.clock,
            settings.triage.response.clone(),
        ));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for p in partitions {
        tasks.spawn(run_partition(
            settings.clone(),
            Detector::new(rules.clone()).with_indicators(iocs.clone()),
            p,
            stream.clone(),
            Store::new(db.clone()),
            stats.clone(),
            triage.clone(),
            shutdown.clone(),
        ));
    }
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(Error::from_join("partition task", e)),
        }
    }
    // Let the verdicts already answered reach the database; the rest keep the fallback.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while background.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Run a batch of normalized records through the detector: the alerts raised or updated, one
/// revision (the newest) per incident, in the order incidents first appear.
pub fn detect<'a>(
    detector: &mut Detector,
    records: impl IntoIterator<Item = &'a Record>,
    now: chrono::DateTime<Utc>,
    stats: &ProcessorStats,
    partition: u32,
) -> Vec<Alert> {
    let mut alerts: Vec<Alert> = Vec::new();
    let mut alert_index: HashMap<Uuid, usize> = HashMap::new();
    // Counted per batch, not per record: one metrics update per parser.
    let mut by_dataset: HashMap<String, u64> = HashMap::new();
    for rec in records {
        stats.records.fetch_add(1, Ordering::Relaxed);
        let event: Value = match serde_json::from_slice(&rec.value) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                stats.invalid_records.fetch_add(1, Ordering::Relaxed);
                warn!(
                    partition,
                    offset = rec.offset,
                    "record is not a normalized event"
                );
                continue;
            }
        };
        let ds = dataset_of(&event);
        match by_dataset.get_mut(ds) {
            Some(n) => *n += 1,
            None => {
                by_dataset.insert(ds.to_string(), 1);
            }
        }
        for alert in detector.process(&event, rec.timestamp_ms, now) {
            match alert_index.get(&alert.id) {
                Some(&i) => alerts[i] = alert,
                None => {
                    alert_index.insert(alert.id, alerts.len());
                    alerts.push(alert);
                }
            }
        }
    }
    for (dataset, n) in by_dataset {
        if dataset == KIND_UNPARSED {
            stats.parse_failures.fetch_add(n, Ordering::Relaxed);
            metrics::counter!("soc_processor_parse_failures_total").increment(n);
        }
        metrics::counter!("soc_processor_events_total", "dataset" => dataset_label(dataset))
            .increment(n);
    }
    alerts
}

/// Distinct `dataset` labels a process reports before the rest count as `other`.
const MAX_DATASET_LABELS: usize = 64;

/// The parser that produced an event (`unparsed` for a line none recognized).
fn dataset_of(event: &Value) -> &str {
    if event.pointer("/event/kind").and_then(Value::as_str) == Some(KIND_UNPARSED) {
        return KIND_UNPARSED;
    }
    event
        .pointer("/event/dataset")
        .and_then(Value::as_str)
        .unwrap_or("none")
}

/// A dataset as a metric label: a record cannot grow the label set without bound.
fn dataset_label(dataset: String) -> String {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let well_formed = dataset.len() <= 32
        && dataset
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !well_formed {
        return "other".into();
    }
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.contains(&dataset) {
        return dataset;
    }
    if seen.len() < MAX_DATASET_LABELS {
        seen.push(dataset.clone());
        return dataset;
    }
    "other".into()
}

/// Where a partition resumes: the database's checkpoint, unless the stream cannot have
/// reached it (it was lost or replaced: its records are new, and are all processed), or the
/// start when the database has none (new, or lost: what the stream holds rebuilds it).
/// Alert ids are deterministic, so processing a record twice updates the same alert.
fn start_offset(
    checkpoint: Option<u64>,
    end: Option<u64>,
    partition: u32,
    stats: &ProcessorStats,
) -> u64 {
    match (checkpoint, end) {
        (Some(cp), Some(end)) if cp > end => {
            stats.stream_resets.fetch_add(1, Ordering::Relaxed);
            error!(
                partition,
                checkpoint = cp,
                stream_end = end,
                "the raw topic ends before the database's checkpoint: the stream was lost or \
                 replaced; processing it again from its start"
            );
            0
        }
        (Some(cp), _) => cp,
        (None, Some(end)) if end > 0 => {
            warn!(
                partition,
                stream_end = end,
                "no checkpoint in the database: processing the raw topic from its start (a \
                 new database, or a lost one being rebuilt)"
            );
            0
        }
        (None, _) => 0,
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_partition(
    settings: ProcessorSettings,
    mut detector: Detector,
    partition: u32,
    stream: Arc<dyn LogStream>,
    store: Store,
    stats: Arc<ProcessorStats>,
    triage: TriageHandle,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let consumer_id = settings.consumer_id.as_str();
    let mut proposer = crate::actions::Proposer::new(settings.triage.response.clone());
    for (rule, key, state) in store.rule_state(consumer_id, partition).await? {
        detector.restore(&rule, &key, &state);
    }
    let checkpoint = store.checkpoint(consumer_id, partition).await?;
    if let Some(cp) = &checkpoint {
        // The last batch's alerts are in the database; the crash may have come before they
        // reached the topic. Publishing again is harmless: consumers keep the newest revision.
        let alerts = store.alerts_by_id(&cp.unpublished).await?;
        publish(stream.as_ref(), &settings.alerts_topic, &alerts).await?;
    }
    let end = stream.stream_end(&settings.input_topic, partition).await?;
    let mut next_offset = start_offset(
        checkpoint.as_ref().map(|c| c.next_offset),
        end,
        partition,
        &stats,
    );
    info!(
        partition,
        next_offset,
        open_keys = detector.open_keys(),
        "processor partition resumed"
    );
    let consumer = stream
        .consumer(ConsumerSpec {
            topic: settings.input_topic.clone(),
            partition,
            consumer_id: consumer_id.to_string(),
            chain: settings.chain.clone(),
            // The database's checkpoint is authoritative: without one, the database is new
            // or was lost, and everything the stream still holds is processed again.
            start: StartFrom::Offset(next_offset),
        })
        .await?;
    stats.partitions_ready.fetch_add(1, Ordering::Relaxed);
    // The chain of the next batch runs while this one is detected and committed: two
    // stages on two cores instead of one after the other.
    let (batches_tx, mut batches) = mpsc::channel(READ_AHEAD);
    let (done_tx, done_rx) = watch::channel(0u64);
    let reader = tokio::spawn(read_ahead(
        consumer,
        ReadPace {
            max_records: settings.batch_max_records,
            wait: Duration::from_millis(settings.batch_wait_ms),
            commit_every: STREAM_COMMIT_EVERY,
            clock: settings.clock,
        },
        batches_tx,
        done_rx,
        shutdown.clone(),
    ));
    let mut handled = 0u64;
    let clock = settings.clock;
    let mut suppressions = Suppressions::new(store.connection(), clock);
    let partition_label = partition.to_string();
    let mut last_lag: Option<Instant> = None;
    let mut last_expire = clock.now();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let batch = tokio::select! {
            _ = shutdown.changed() => break,
            b = batches.recv() => match b {
                Some(b) => b,
                // The reader stopped: its result says why.
                None => break,
            },
        };
        if last_lag.is_none_or(|t| clock.since(t) >= LAG_EVERY) {
            last_lag = Some(clock.now());
            // How far the processor is behind its input: what the stream holds beyond the
            // checkpoint, read once per interval rather than per batch.
            if let Ok(Some(end)) = stream.stream_end(&settings.input_topic, partition).await {
                let lag = end.saturating_sub(next_offset);
                metrics::gauge!("soc_processor_lag_records", "partition" => partition_label.clone())
                    .set(lag as f64);
                stats
                    .lag
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(partition, lag);
            }
        }
        let t_read = Instant::now();
        let now = Utc::now();
        let start_offset = next_offset;
        let fresh: Vec<&Record> = batch.iter().filter(|r| r.offset >= start_offset).collect();
        if let Some(last) = fresh.last() {
            next_offset = last.offset + 1;
        }
        let detected = detect(&mut detector, fresh, now, &stats, partition);
        suppressions.refresh(now).await;
        let (mut alerts, hidden) = suppressions.apply(detected, now);
        triage.attach(&mut alerts);
        if clock.since(last_expire) >= EXPIRE_EVERY {
            detector.expire();
            last_expire = clock.now();
        }
        if next_offset == start_offset && batch.is_empty() {
            handled += 1;
            let _ = done_tx.send(handled);
            continue;
        }
        let changes = detector.take_changes();
        let proposals = proposer.collect(&alerts);
        let t_rules = Instant::now();
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_times(COMMIT_RETRIES)
            .build();
        loop {
            match store
                .commit_batch_proposing(
                    consumer_id,
                    partition,
                    next_offset,
                    &alerts,
                    &changes,
                    &hidden,
                    &proposals,
                    proposer.policy().max_auto_per_minute,
                )
                .await
            {
                Ok(incidents) => {
                    proposer.recorded(&proposals);
                    for a in &mut alerts {
                        a.incident_id = incidents.get(&a.id).copied();
                    }
                    break;
                }
                Err(Error::Database(e)) => match delays.next() {
                    Some(delay) => {
                        warn!(partition, error = %e, delay_ms = delay.as_millis() as u64, "checkpoint commit failed; retrying");
                        settings.clock.sleep(delay).await;
                    }
                    None => return Err(Error::Database(e)),
                },
                Err(e) => return Err(e),
            }
        }
        stats
            .alerts
            .fetch_add(alerts.len() as u64, Ordering::Relaxed);
        for a in &alerts {
            metrics::counter!("soc_alert_updates_total", "rule" => a.rule_id.clone(), "severity" => a.severity.as_str())
                .increment(1);
        }
        let withheld: u64 = hidden.values().sum();
        if withheld > 0 {
            stats.suppressed.fetch_add(withheld, Ordering::Relaxed);
            debug!(
                partition,
                withheld, "alert updates withheld by suppressions"
            );
        }
        let t_db = Instant::now();
        publish(stream.as_ref(), &settings.alerts_topic, &alerts).await?;
        // Only after the alerts are stored and out: the model's verdict follows as an update.
        triage.submit(&alerts);
        handled += 1;
        let _ = done_tx.send(handled);
        let total = t_read.elapsed();
        if total >= SLOW_BATCH {
            debug!(
                partition,
                records = batch.len(),
                alerts = alerts.len(),
                rules_ms = (t_rules - t_read).as_millis() as u64,
                db_ms = (t_db - t_rules).as_millis() as u64,
                publish_ms = t_db.elapsed().as_millis() as u64,
                "slow batch"
            );
        }
    }
    drop(batches);
    match reader.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => return Err(Error::from_join("partition reader", e)),
    }
    info!(partition, next_offset, "processor partition stopped");
    Ok(())
}

/// Batches queued (chain applied) for the detector; the reader holds one more while it
/// waits for room, so at most `READ_AHEAD + 1` are read ahead of the one being detected.
const READ_AHEAD: usize = 1;
/// Longest a stream offset commit waits while batches keep arriving.
const STREAM_COMMIT_EVERY: Duration = Duration::from_secs(1);

/// Reads batches ahead of the detector. The stream offset is committed only once every batch
/// read so far is handled (`done` counts them), so it never runs ahead of the work; under
/// constant load the reader pauses for that at most once a `commit_every`.
/// How the reader batches and how often it commits.
struct ReadPace {
    /// Records per batch at most.
    max_records: usize,
    /// Longest wait for a batch's first record.
    wait: Duration,
    /// Commit at least this often under constant load.
    commit_every: Duration,
    clock: Clock,
}

async fn read_ahead(
    mut consumer: Box<dyn Consumer>,
    pace: ReadPace,
    batches: mpsc::Sender<Vec<Record>>,
    mut done: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) -> std::result::Result<(), StreamError> {
    let ReadPace {
        max_records,
        wait,
        commit_every,
        clock,
    } = pace;
    let mut sent = 0u64;
    // Records were read since the last commit.
    let mut uncommitted = false;
    let mut last_commit = clock.now();
    loop {
        let batch = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            b = consumer.next_batch(max_records, wait) => b?,
        };
        uncommitted |= !batch.is_empty();
        if batches.send(batch).await.is_err() {
            return Ok(());
        }
        sent += 1;
        if !uncommitted {
            continue;
        }
        let caught_up = *done.borrow() >= sent;
        if !caught_up && clock.since(last_commit) < commit_every {
            continue;
        }
        // Wait for the processor to handle what was read, then mark it processed.
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            r = done.wait_for(|&n| n >= sent) => if r.is_err() { return Ok(()) },
        }
        consumer.commit().await?;
        uncommitted = false;
        last_commit = clock.now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::atomic::AtomicU64;

    /// Yields one record per batch; records how far it had read at each commit, next to how
    /// far the processor had handled.
    struct Counting {
        next: u64,
        end: u64,
        handled: Arc<AtomicU64>,
        commits: Arc<std::sync::Mutex<Vec<(u64, u64)>>>,
        max_ahead: Arc<AtomicU64>,
    }

    #[async_trait]
    impl Consumer for Counting {
        async fn next_batch(
            &mut self,
            _max: usize,
            wait: Duration,
        ) -> std::result::Result<Vec<Record>, StreamError> {
            if self.next == self.end {
                tokio::time::sleep(wait).await;
                return Ok(Vec::new());
            }
            let ahead = self.next - self.handled.load(Ordering::SeqCst);
            self.max_ahead.fetch_max(ahead, Ordering::SeqCst);
            self.next += 1;
            Ok(vec![Record {
                partition: 0,
                offset: self.next - 1,
                timestamp_ms: 0,
                key: None,
                value: b"{}".to_vec(),
            }])
        }

        async fn commit(&mut self) -> std::result::Result<(), StreamError> {
            let handled = self.handled.load(Ordering::SeqCst);
            self.commits
                .lock()
                .expect("commits")
                .push((self.next, handled));
            Ok(())
        }
    }

    #[tokio::test]
    async fn reads_ahead_but_never_commits_ahead_of_the_work() {
        let handled = Arc::new(AtomicU64::new(0));
        let commits = Arc::new(std::sync::Mutex::new(Vec::new()));
        let max_ahead = Arc::new(AtomicU64::new(0));
        let consumer = Counting {
            next: 0,
            end: 20,
            handled: handled.clone(),
            commits: commits.clone(),
            max_ahead: max_ahead.clone(),
        };
        let (tx, mut rx) = mpsc::channel(READ_AHEAD);
        let (done_tx, done_rx) = watch::channel(0u64);
        let (stop_tx, stop_rx) = watch::channel(false);
        let reader = tokio::spawn(read_ahead(
            Box::new(consumer),
            ReadPace {
                max_records: 100,
                wait: Duration::from_millis(5),
                // Far shorter than the 400 ms of work below, so a commit must come mid-run
                // even when the reader is never caught up.
                commit_every: Duration::from_millis(60),
                clock: Clock::System,
            },
            tx,
            done_rx,
            stop_rx,
        ));
        // A slow processor: 20 ms a batch.
        let mut batches = 0u64;
        while handled.load(Ordering::SeqCst) < 20 {
            let batch = rx.recv().await.expect("batch");
            tokio::time::sleep(Duration::from_millis(20)).await;
            handled.fetch_add(batch.len() as u64, Ordering::SeqCst);
            batches += 1;
            done_tx.send(batches).expect("reader alive");
        }
        // Keep handling the idle reads until everything read is committed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while commits.lock().expect("commits").last().map(|c| c.0) != Some(20) {
            assert!(
                Instant::now() < deadline,
                "the last records were never committed"
            );
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
                batches += 1;
                done_tx.send(batches).expect("reader alive");
            }
        }
        stop_tx.send(true).expect("stop");
        drop(rx);
        reader.await.expect("join").expect("reader");
        let commits = commits.lock().expect("commits").clone();
        assert!(
            max_ahead.load(Ordering::SeqCst) >= 1,
            "the next batch was read while one was being handled"
        );
        for (read, done) in &commits {
            assert!(read <= done, "committed {read} records with {done} handled");
        }
        assert!(
            commits.len() >= 2,
            "commits happen during the run too, not only at the end: {commits:?}"
        );
    }
}
