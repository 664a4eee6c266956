//! Fan-out of alerts to WebSocket clients. Each client reads from a bounded broadcast queue:
//! a client that falls behind by more than the queue is disconnected, never buffered.

use soc_core::clock::Clock;
use soc_core::stream::{ConsumerSpec, LogStream, StartFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tracing::warn;

/// Messages queued per client before it counts as too slow.
pub const CLIENT_QUEUE: usize = 1024;

#[derive(Debug)]
pub struct AlertHub {
    tx: broadcast::Sender<Arc<str>>,
    pub sessions_opened: AtomicU64,
    pub sessions_closed: AtomicU64,
    pub alerts_forwarded: AtomicU64,
    /// Sessions dropped for falling a queue behind.
    pub sessions_dropped_lagging: AtomicU64,
    /// Sessions dropped because their connection took no message for the send timeout.
    pub sessions_dropped_stalled: AtomicU64,
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
        AlertHub {
            tx: broadcast::channel(queue).0,
            sessions_opened: AtomicU64::new(0),
            sessions_closed: AtomicU64::new(0),
            alerts_forwarded: AtomicU64::new(0),
            sessions_dropped_lagging: AtomicU64::new(0),
            sessions_dropped_stalled: AtomicU64::new(0),
            clock: Clock::System,
        }
    }

    /// The same hub with sessions timed by `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }

    /// Send a message (a JSON object with a `type`) to every connected client.
    pub fn publish_message(&self, message: &serde_json::Value) {
        let msg: Arc<str> = Arc::from(message.to_string());
        let _ = self.tx.send(msg);
    }

    /// Send one alert (its JSON) to every connected client.
    pub fn publish(&self, alert_json: &[u8]) {
        let Ok(text) = std::str::from_utf8(alert_json) else {
            return;
        };
        let msg: Arc<str> = Arc::from(format!(r#"{{"type":"alert","alert":{text}}}"#));
        self.alerts_forwarded.fetch_add(1, Ordering::Relaxed);
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(msg);
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
