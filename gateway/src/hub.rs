//! Fan-out of alerts to WebSocket clients. Each client reads from a bounded broadcast queue:
//! a client that falls behind by more than the queue is disconnected, never buffered.
//!
//! Every message gets a cursor (`<epoch>-<seq>`, the epoch new each time the gateway starts)
//! and is kept in a ring bounded in bytes, so a client that reconnects with the last cursor
//! it saw gets exactly what it missed, then the live stream. A cursor from another run of the
//! gateway, or older than the ring, gets a `resync`: reload over REST.

use soc_core::clock::Clock;
use soc_core::stream::{ConsumerSpec, LogStream, StartFrom};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tracing::warn;

/// Messages queued per client before it counts as too slow.
pub const CLIENT_QUEUE: usize = 1024;
/// Bytes of recent messages kept for clients that reconnect.
pub const RESUME_BYTES: usize = 16 << 20;

/// One message as sent, with its place in the sequence.
#[derive(Debug, Clone)]
pub struct HubMessage {
    pub seq: u64,
    pub text: Arc<str>,
    /// For an alert: its id and revision, so a client can resume from the last one it saw.
    pub alert: Option<(Arc<str>, u64)>,
}

/// Where a (re)connecting client resumes.
#[derive(Debug, Clone, Copy)]
pub enum ResumeFrom<'a> {
    /// From now on.
    Live,
    /// After the message with this cursor.
    Cursor(&'a str),
    /// After the message that carried this revision of this alert.
    Alert { id: &'a str, revision: u64 },
}

#[derive(Debug)]
struct Ring {
    next_seq: u64,
    kept: VecDeque<HubMessage>,
    bytes: usize,
}

/// Where a (re)connecting client starts.
#[derive(Debug)]
pub struct Resume {
    /// The live queue, subscribed at the same instant the backlog was taken.
    pub live: broadcast::Receiver<HubMessage>,
    /// What the client missed, oldest first.
    pub backlog: Vec<HubMessage>,
    /// The cursor could not be honoured: the client must reload, then follow the live queue.
    pub resync: Option<&'static str>,
}

#[derive(Debug)]
pub struct AlertHub {
    tx: broadcast::Sender<HubMessage>,
    epoch: String,
    ring: Mutex<Ring>,
    ring_bytes: usize,
    pub sessions_opened: AtomicU64,
    pub sessions_closed: AtomicU64,
    pub alerts_forwarded: AtomicU64,
    /// Sessions dropped for falling a queue behind.
    pub sessions_dropped_lagging: AtomicU64,
    /// Sessions dropped because their connection took no message for the send timeout.
    pub sessions_dropped_stalled: AtomicU64,
    /// Sessions resumed from a cursor, and those told to resync.
    pub sessions_resumed: AtomicU64,
    pub sessions_resynced: AtomicU64,
    /// Times the sessions' heartbeats and client timeouts.
    pub clock: Clock,
}

impl Default for AlertHub {
    fn default() -> Self {
        Self::new(CLIENT_QUEUE)
    }
}

impl AlertHub {
    pub fn new(queue: usize) -> Self {
        let mut epoch = [0u8; 6];
        // Only needs to differ between runs; the clock is the fallback.
        if getrandom::getrandom(&mut epoch).is_err() {
            let t = chrono::Utc::now().timestamp_micros().to_be_bytes();
            epoch.copy_from_slice(&t[2..]);
        }
        AlertHub {
            tx: broadcast::channel(queue).0,
            epoch: hex::encode(epoch),
            ring: Mutex::new(Ring {
                next_seq: 1,
                kept: VecDeque::new(),
                bytes: 0,
            }),
            ring_bytes: RESUME_BYTES,
            sessions_opened: AtomicU64::new(0),
            sessions_closed: AtomicU64::new(0),
            alerts_forwarded: AtomicU64::new(0),
            sessions_dropped_lagging: AtomicU64::new(0),
            sessions_dropped_stalled: AtomicU64::new(0),
            sessions_resumed: AtomicU64::new(0),
            sessions_resynced: AtomicU64::new(0),
            clock: Clock::System,
        }
    }

    /// The same hub with sessions timed by `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same hub keeping `bytes` of messages for resuming clients.
    pub fn with_resume_bytes(mut self, bytes: usize) -> Self {
        self.ring_bytes = bytes;
        self
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding the lock leaves the ring consistent (push and evict are
        // each complete), so a poisoned lock is still usable.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live queue only, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HubMessage> {
        self.tx.subscribe()
    }

    /// Subscribe, with what was missed since the last message a client saw.
    pub fn resume(&self, from: ResumeFrom<'_>) -> Resume {
        let ring = self.ring();
        let live = self.tx.subscribe();
        let seq = match from {
            ResumeFrom::Live => {
                return Resume {
                    live,
                    backlog: Vec::new(),
                    resync: None,
                }
            }
            ResumeFrom::Cursor(cursor) => cursor
                .split_once('-')
                .filter(|(epoch, _)| *epoch == self.epoch)
                .and_then(|(_, seq)| seq.parse::<u64>().ok())
                .filter(|seq| *seq < ring.next_seq),
            // The newest message that carried it: a replay may have sent it twice.
            ResumeFrom::Alert { id, revision } => ring
                .kept
                .iter()
                .rev()
                .find(|m| {
                    m.alert
                        .as_ref()
                        .is_some_and(|(i, r)| &**i == id && *r == revision)
                })
                .map(|m| m.seq),
        };
        let Some(seq) = seq else {
            self.sessions_resynced.fetch_add(1, Ordering::Relaxed);
            return Resume {
                live,
                backlog: Vec::new(),
                resync: Some(
                    "the gateway restarted, no longer holds that message, or never sent it",
                ),
            };
        };
        let oldest = ring.kept.front().map_or(ring.next_seq, |m| m.seq);
        if seq + 1 < oldest {
            self.sessions_resynced.fetch_add(1, Ordering::Relaxed);
            return Resume {
                live,
                backlog: Vec::new(),
                resync: Some("missed more than the gateway keeps"),
            };
        }
        self.sessions_resumed.fetch_add(1, Ordering::Relaxed);
        let backlog = ring.kept.iter().filter(|m| m.seq > seq).cloned().collect();
        Resume {
            live,
            backlog,
            resync: None,
        }
    }

    /// Number, keep and send one message. The JSON object gets its `cursor` first; the
    /// lock spans keep and send, so a resuming client sees each message once.
    fn send(&self, kind: &str, rest: &str, alert: Option<(Arc<str>, u64)>) {
        let mut ring = self.ring();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        let kind = serde_json::Value::from(kind);
        let sep = if rest.is_empty() { "" } else { "," };
        let text: Arc<str> = Arc::from(format!(
            r#"{{"type":{kind},"cursor":"{}-{seq}"{sep}{rest}}}"#,
            self.epoch
        ));
        ring.bytes += text.len();
        ring.kept.push_back(HubMessage {
            seq,
            text: text.clone(),
            alert: alert.clone(),
        });
        while ring.bytes > self.ring_bytes {
            match ring.kept.pop_front() {
                Some(m) => ring.bytes -= m.text.len(),
                None => break,
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(HubMessage { seq, text, alert });
    }

    /// Send a message (a JSON object with a `type`) to every connected client.
    pub fn publish_message(&self, message: &serde_json::Value) {
        let Some(obj) = message.as_object() else {
            return;
        };
        let kind = obj
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("message");
        let mut rest = obj.clone();
        rest.remove("type");
        rest.remove("cursor");
        let body = serde_json::Value::Object(rest).to_string();
        // `{...}` without its braces, to follow `type` and `cursor`.
        let inner = &body[1..body.len() - 1];
        self.send(kind, inner, None);
    }

    /// Send one alert (its JSON) to every connected client.
    pub fn publish(&self, alert_json: &[u8]) {
        let Ok(text) = std::str::from_utf8(alert_json) else {
            return;
        };
        #[derive(serde::Deserialize)]
        struct IdRevision {
            id: String,
            revision: u64,
        }
        let key = serde_json::from_str::<IdRevision>(text)
            .ok()
            .map(|k| (Arc::from(k.id), k.revision));
        self.alerts_forwarded.fetch_add(1, Ordering::Relaxed);
        self.send("alert", &format!(r#""alert":{text}"#), key);
    }
}

/// Follow the alerts topic and hand every record to the hub. One consumer per partition.
pub async fn follow_alerts(
    stream: Arc<dyn LogStream>,
    topic: String,
    consumer_id: String,
    hub: Arc<AlertHub>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), soc_core::stream::StreamError> {
    let partitions = stream.partitions(&topic).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for partition in 0..partitions {
        let stream = stream.clone();
        let hub = hub.clone();
        let topic = topic.clone();
        let consumer_id = consumer_id.clone();
        let mut shutdown = shutdown.clone();
        tasks.spawn(async move {
            let mut consumer = stream
                .consumer(ConsumerSpec {
                    topic,
                    partition,
                    consumer_id,
                    chain: vec![],
                    start: StartFrom::Committed,
                })
                .await?;
            loop {
                if *shutdown.borrow() {
                    return Ok(());
                }
                let batch = tokio::select! {
                    _ = shutdown.changed() => return Ok(()),
                    b = consumer.next_batch(1000, Duration::from_millis(500)) => b?,
                };
                if batch.is_empty() {
                    continue;
                }
                for rec in &batch {
                    hub.publish(&rec.value);
                }
                if let Err(e) = consumer.commit().await {
                    warn!(error = %e, "gateway could not commit its alerts offset");
                }
            }
        });
    }
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => {
                return Err(soc_core::stream::StreamError::Unavailable(format!(
                    "alert follower failed: {e}"
                )))
            }
        }
    }
    Ok(())
}
