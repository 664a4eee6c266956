//! Alerts onto the alerts topic, for the gateway (dashboard, WebSocket) and responders: new
//! and updated alerts from the pipeline, and verdict updates from triage.

use chrono::Utc;
use soc_core::stream::{LogStream, ProduceRecord};
use soc_core::Alert;

/// Publish alerts keyed by id (one partition per incident, so its revisions stay in order).
pub async fn publish(
    stream: &dyn LogStream,
    topic: &str,
    alerts: &[Alert],
) -> std::result::Result<(), soc_core::stream::StreamError> {
    if alerts.is_empty() {
        return Ok(());
    }
    let now = Utc::now().timestamp_millis();
    let records = alerts
        .iter()
        .filter_map(|a| {
            serde_json::to_vec(a).ok().map(|value| ProduceRecord {
                key: Some(a.id.to_string().into_bytes()),
                value,
                timestamp_ms: now,
            })
        })
        .collect();
    stream.produce(topic, records, vec![]).await?;
    Ok(())
}
