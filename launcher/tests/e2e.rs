//! The walking skeleton end to end: the SSH brute-force log of the CrowdSec hub tests is
//! replayed through the embedded pipeline (wasm chain included) and its alert is read back
//! from `GET /api/alerts` and from a WebSocket client connected before the replay.

use futures_util::StreamExt;
use soc::embedded;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

mod support;

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
    let token = support::token(&pipeline).await;

    let mut ws = support::ws(pipeline.addr, &token).await;
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

    let page = support::get_json(
        &format!("{base}/api/alerts?rule_id=soc/ssh-bruteforce"),
        &token,
    )
    .await;
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
    let all = support::get_json(&format!("{base}/api/alerts"), &token).await;
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

/// `attackers` SSH brute forces from 198.51.<n>.x, six failures each.
fn brute_forces(path: &std::path::Path, n: u8, attackers: u8) {
    let mut text = String::new();
    for a in 0..attackers {
        for k in 0u8..6 {
            text.push_str(&format!(
                "Mar 10 08:{:02}:{:02} bastion sshd[{}]: Failed password for invalid user u{k} from 198.51.{n}.{} port {} ssh2\n",
                a / 6,
                (a % 6) * 10 + k,
                1000 + u32::from(a),
                u32::from(a) + 1,
                30000 + u32::from(k)
            ));
        }
    }
    std::fs::write(path, text).expect("log");
}

async fn brute_force_alerts(base: &str, token: &str) -> usize {
    let page = support::get_json(
        &format!("{base}/api/alerts?limit=500&rule_id=soc/ssh-bruteforce"),
        token,
    )
    .await;
    page["alerts"].as_array().map_or(0, Vec::len)
}

/// Cut a file to nothing, as a lost disk or a bad restore leaves it.
fn truncate(path: &std::path::Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(0))
        .unwrap_or_else(|e| panic!("truncating {}: {e}", path.display()));
}

/// Start the pipeline on `dir`, replay `log` if given, wait for `want` brute-force alerts.
async fn run_until(dir: &std::path::Path, log: Option<&std::path::Path>, want: usize) -> u64 {
    let (pipeline, stop) = support::start_without_model(dir, None).await;
    let base = format!("http://{}", pipeline.addr);
    let token = support::token(&pipeline).await;
    if let Some(log) = log {
        soc_connectors::replay::replay(
            &pipeline.log,
            &soc_connectors::replay::ReplayConfig::new(log),
        )
        .await
        .expect("replay");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    while tokio::time::Instant::now() < deadline {
        got = brute_force_alerts(&base, &token).await;
        if got >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got, want, "alerts after start in {}", dir.display());
    let health = reqwest::get(format!("{base}/api/health"))
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let resets = pipeline
        .stats
        .stream_resets
        .load(std::sync::atomic::Ordering::Relaxed);
    let _ = stop.send(true);
    pipeline.wait().await.expect("clean shutdown");
    resets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_or_stream_is_detected_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("first.log");
    let second = dir.path().join("second.log");
    brute_forces(&first, 1, 20);
    brute_forces(&second, 2, 10);
    assert_eq!(run_until(dir.path(), Some(&first), 20).await, 0);

    // The database is lost: rebuilt from what the stream holds.
    for f in ["soc.sqlite-wal", "soc.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    truncate(&dir.path().join("soc.sqlite"));
    assert_eq!(
        run_until(dir.path(), None, 20).await,
        0,
        "rebuilt, no reset"
    );

    // The stream is lost and new lines arrive: the database's checkpoint is ahead of it,
    // which is detected, and the new lines are all processed.
    truncate(&dir.path().join("log.redb"));
    assert_eq!(
        run_until(dir.path(), Some(&second), 30).await,
        1,
        "the reset is counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_lines_are_set_aside_and_detection_goes_on() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let attack = dir.path().join("attack.log");
    brute_forces(&attack, 7, 1);
    let log = dir.path().join("huge.log");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&log).expect("create"));
        let filler = "x".repeat(1 << 20);
        for i in 0..200 {
            writeln!(f, "Mar 10 07:59:59 bastion app[{i}]: {filler}").expect("write");
        }
        f.write_all(&std::fs::read(&attack).expect("attack"))
            .expect("write");
    }

    let (pipeline, stop) = support::start_without_model(dir.path(), None).await;
    let base = format!("http://{}", pipeline.addr);
    let token = support::token(&pipeline).await;
    let report = soc_connectors::replay::replay(
        &pipeline.log,
        &soc_connectors::replay::ReplayConfig::new(&log),
    )
    .await
    .expect("replay");
    assert_eq!((report.lines, report.truncated), (206, 200));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while brute_force_alerts(&base, &token).await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the brute force after the huge lines was not detected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let letters = pipeline
        .log
        .read(soc_core::stream::topics::DEAD_LETTERS, 0, 0, 1_000)
        .expect("dead letters");
    assert_eq!(letters.len(), 200);
    let first: soc_core::stream::DeadLetter =
        serde_json::from_slice(&letters[0].value).expect("json");
    assert_eq!(first.reason, "line_too_long");
    assert_eq!(first.bytes, (1 << 20) + 32);
    assert!(first.source.ends_with("huge.log@0"), "{}", first.source);
    // The cut line itself goes on, tagged with its full size for the normalized event.
    let raw = pipeline
        .log
        .read(soc_core::stream::topics::RAW_LOGS, 0, 0, 1)
        .expect("raw");
    let (line, full) =
        soc_core::event::split_truncated(std::str::from_utf8(&raw[0].value).expect("utf-8"));
    assert_eq!(full, Some((1 << 20) + 32));
    assert!(line.starts_with("Mar 10 07:59:59 bastion app[0]: xxx"));
    let health = reqwest::get(format!("{base}/api/health"))
        .await
        .expect("health");
    assert_eq!(health.status(), 200, "the process stays healthy");
    let _ = stop.send(true);
    pipeline.wait().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppression_withholds_one_source_and_counts_what_it_hid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("three.log");
    brute_forces(&log, 3, 3);
    let (pipeline, stop) = support::start_without_model(dir.path(), None).await;
    let base = format!("http://{}", pipeline.addr);
    let token = support::token(&pipeline).await;
    let until = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let made: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/suppressions"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "rule_id": "soc/ssh-bruteforce", "field": "source.ip", "value": "198.51.3.1",
            "until": until, "reason": "our scanner",
        }))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("create suppression")
        .json()
        .await
        .expect("json");
    let id = made["id"].as_str().expect("id").to_string();
    soc_connectors::replay::replay(
        &pipeline.log,
        &soc_connectors::replay::ReplayConfig::new(&log),
    )
    .await
    .expect("replay");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let hidden = loop {
        let all = support::get_json(&format!("{base}/api/suppressions"), &token).await;
        let hidden = all
            .as_array()
            .and_then(|a| a.iter().find(|s| s["id"] == id.as_str()))
            .and_then(|s| s["hidden"].as_i64())
            .unwrap_or(0);
        if brute_force_alerts(&base, &token).await >= 2 && hidden >= 1 {
            break hidden;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alerts or count missing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        all_ids(&base, &token).await,
        vec!["198.51.3.2", "198.51.3.3"]
    );
    assert!(hidden >= 1, "{hidden}");

    // The same run in Prometheus terms. The recorder is the process's, shared with the other
    // tests of this binary, so counters are at least this run's.
    let text = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no `{series}` in\n{text}"))
    };
    assert!(value("soc_ingest_lines_total ") >= 18.0);
    assert!(value("soc_processor_events_total{dataset=\"sshd\"} ") >= 18.0);
    assert!(
        value("soc_alert_updates_total{rule=\"soc/ssh-bruteforce\",severity=\"high\"} ") >= 2.0
    );
    assert!(value("soc_processor_suppressed_total ") >= 1.0);
    assert!(value("soc_processor_lag_records{partition=\"0\"} ") >= 0.0);
    assert!(
        text.contains("# TYPE soc_gateway_ws_clients gauge"),
        "{text}"
    );
    let anonymous = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics");
    assert_eq!(anonymous.status(), 401, "metrics need a viewer's token");
    let _ = stop.send(true);
    pipeline.wait().await.expect("clean shutdown");
}

/// The source addresses of the stored brute-force alerts, sorted.
async fn all_ids(base: &str, token: &str) -> Vec<String> {
    let page = support::get_json(
        &format!("{base}/api/alerts?limit=500&rule_id=soc/ssh-bruteforce"),
        token,
    )
    .await;
    let mut ips: Vec<String> = page["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["source_ip"].as_str().map(String::from))
        .collect();
    ips.sort();
    ips
}
