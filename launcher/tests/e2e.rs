//! The walking skeleton end to end: the SSH brute-force log of the CrowdSec hub tests is
//! replayed through the embedded pipeline (wasm chain included) and its alert is read back
//! from `GET /api/alerts` and from a WebSocket client connected before the replay.

use futures_util::StreamExt;
use soc::embedded;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

fn corpus(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpora")).join(rel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_bruteforce_corpus_raises_its_alert_on_the_api_and_the_websocket() {
    let log = corpus("crowdsec-hub/tests/ssh-bf/ssh-bf.log");
    assert!(log.exists(), "corpus missing: {}", log.display());
    let dir = tempfile::tempdir().expect("tempdir");
    let (stop, shutdown) = watch::channel(false);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let pipeline = embedded::start(embedded::Options::local(dir.path(), listener, shutdown))
        .await
        .expect("pipeline starts");
    let base = format!("http://{}", pipeline.addr);

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/alerts", pipeline.addr))
        .await
        .expect("websocket connects");
    for _ in 0..100 {
        if pipeline
            .hub
            .sessions_opened
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let report = soc_connectors::replay::replay(
        &pipeline.log,
        &soc_connectors::replay::ReplayConfig::new(&log),
    )
    .await
    .expect("replay");
    // Seven lines, the last one empty (skipped); the sixth comes from `sshd-session`.
    assert_eq!(report.lines, 6);

    // The WebSocket sees the brute-force incident raised, then updated by the 6th failure.
    let mut last = serde_json::Value::Null;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(last["alert"]["count"] == 6 && last["alert"]["rule_id"] == "soc/ssh-bruteforce") {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("alert on the websocket in time")
            .expect("socket open")
            .expect("message");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
            last = serde_json::from_str(&text).expect("json message");
        }
    }
    assert_eq!(last["type"], "alert");
    assert_eq!(last["alert"]["source_ip"], "35.188.49.176");
    assert_eq!(last["alert"]["rule_id"], "soc/ssh-bruteforce");
    assert_eq!(last["alert"]["host_name"], "sd-126005");
    assert_eq!(last["alert"]["mitre"][0], "T1110");

    let page: serde_json::Value =
        reqwest::get(format!("{base}/api/alerts?rule_id=soc/ssh-bruteforce"))
            .await
            .expect("api")
            .json()
            .await
            .expect("json");
    let alerts = page["alerts"].as_array().expect("alerts");
    assert_eq!(
        alerts.len(),
        1,
        "one incident, not one alert per failure: {page}"
    );
    assert_eq!(alerts[0]["source_ip"], "35.188.49.176");
    assert_eq!(alerts[0]["count"], 6);
    assert_eq!(alerts[0]["id"], last["alert"]["id"]);
    assert_eq!(
        alerts[0]["first_seen"].as_str().map(|s| &s[5..19]),
        Some("02-12T14:10:21")
    );
    assert_eq!(alerts[0]["evidence"][0]["user"]["name"], "pascal");

    // The same six failures try six user names: the enumeration rule raises its own incident.
    let all: serde_json::Value = reqwest::get(format!("{base}/api/alerts"))
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    let rules: Vec<&str> = all["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["rule_id"].as_str())
        .collect();
    assert!(rules.contains(&"soc/ssh-user-enumeration"), "{rules:?}");

    let _ = stop.send(true);
    pipeline.wait().await.expect("clean shutdown");
}
