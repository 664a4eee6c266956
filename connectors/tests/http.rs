//! HTTP ingest: tokens, limits, gzip, durable-before-answer, backpressure, and retries that
//! land exactly once.

mod support;

use secrecy::SecretString;
use soc_connectors::http::{HttpIngest, HttpIngestConfig};
use soc_connectors::sink::{Sink, SinkConfig};
use std::collections::BTreeMap;
use support::Harness;
use tokio::sync::watch;

const TOKEN: &str = "a-token-for-the-apps-source";

fn config() -> HttpIngestConfig {
    let mut tokens = BTreeMap::new();
    tokens.insert("apps".to_string(), SecretString::from(TOKEN));
    let mut c = HttpIngestConfig::new("127.0.0.1:0".parse().expect("addr"), tokens);
    c.max_body_bytes = 64 * 1024;
    c
}

async fn serve(h: &Harness, config: HttpIngestConfig, sink: Sink) -> (String, watch::Sender<bool>) {
    let listener = HttpIngest::bind_listener(&config).expect("bind");
    let server = HttpIngest::new(config, listener, sink, h.stream()).expect("server");
    let url = format!("http://{}/ingest", server.local_addr());
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(server.run(stopped));
    (url, stop)
}

fn post(url: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().post(url).bearer_auth(TOKEN)
}

#[tokio::test]
async fn lines_are_durable_when_answered_and_tokens_and_limits_hold() {
    let h = Harness::new().await;
    let sink = h.sink(SinkConfig::default());
    let (url, _stop) = serve(&h, config(), sink).await;

    let res = post(&url)
        .body("<13>Dec  3 10:00:00 h sshd[1]: one\n\n<13>Dec  3 10:00:00 h sshd[1]: two\n")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["source"], "apps");
    // Answered only once durable: they are in the stream now, with the sender's address.
    let raw = h.raw();
    assert_eq!(raw.len(), 2);
    assert_eq!(
        soc_core::event::split_notes(&raw[1]).1.peer,
        Some("127.0.0.1".parse().expect("ip"))
    );

    // gzip, and JSON objects.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"{\"event_type\":\"alert\"}\n{\"a\":1}\n").expect("gz");
    let res = post(&url)
        .header("Content-Encoding", "gzip")
        .header("Content-Type", "application/x-ndjson")
        .body(gz.finish().expect("gz"))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    assert_eq!(h.raw().len(), 4);

    // Not JSON objects, though the type says so: refused whole.
    let res = post(&url)
        .header("Content-Type", "application/x-ndjson")
        .body("{\"a\":1}\n[1,2]\n")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400);
    assert_eq!(h.raw().len(), 4);

    // No token, a wrong token: 401, nothing kept.
    for req in [
        reqwest::Client::new().post(&url),
        reqwest::Client::new().post(&url).bearer_auth("wrong"),
    ] {
        let res = req.body("x\n").send().await.expect("post");
        assert_eq!(res.status(), 401);
        assert!(res.headers().contains_key("www-authenticate"));
    }

    // Too large, as sent and as inflated (a small gzip that becomes a big body).
    let res = post(&url)
        .body(vec![b'a'; 65 * 1024])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 413);
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut bomb, &vec![b'\n'; 10 * 1024 * 1024]).expect("gz");
    let bomb = bomb.finish().expect("gz");
    assert!(bomb.len() < 64 * 1024);
    let res = post(&url)
        .header("Content-Encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 413);
    assert_eq!(h.raw().len(), 4);
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_a_retry_loses_nothing() {
    let h = Harness::new().await;
    // The writer is held back: the queue fills and stays full until it runs.
    let (sink, writer) = Sink::start(
        h.stream(),
        SinkConfig {
            max_pending_bytes: 4 * 1024,
            ..SinkConfig::default()
        },
    );
    let (url, _stop) = serve(&h, config(), sink.clone()).await;
    let body: String = (0..100)
        .map(|i| format!("line {i:04} {}\n", "x".repeat(20)))
        .collect();
    // The first request is queued (and waits for the writer); the next finds no room.
    let first = tokio::spawn(post(&url).body(body.clone()).send());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sink.pending_bytes() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first request never queued"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let refused = post(&url).body(body.clone()).send().await.expect("post");
    assert_eq!(refused.status(), 503, "a full queue answers 503");
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    tokio::spawn(writer);
    assert_eq!(first.await.expect("join").expect("post").status(), 200);
    // The refused request sent again is kept.
    let res = post(&url).body(body).send().await.expect("post");
    assert_eq!(res.status(), 200);
    assert_eq!(h.raw().len(), 200);
}

#[tokio::test]
async fn numbered_retries_land_exactly_once_even_across_a_restart() {
    let h = Harness::new().await;
    let lines: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
    let send = |url: String, from: usize, to: usize| {
        let body: String = lines[from..to].iter().map(|l| format!("{l}\n")).collect();
        async move {
            let res = post(&url)
                .header("Soc-Sender", "host-a")
                .header("Soc-Sequence", from.to_string())
                .body(body)
                .send()
                .await
                .expect("post");
            assert_eq!(res.status(), 200);
            res.json::<serde_json::Value>().await.expect("json")
        }
    };
    let sink = h.sink(SinkConfig::default());
    let (url, stop) = serve(&h, config(), sink).await;
    send(url.clone(), 0, 4).await;
    // The answer was lost; the sender retries 0..4 together with 4..6.
    let answer = send(url.clone(), 0, 6).await;
    assert_eq!(answer["duplicates"], 4);
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["next_sequence"], 6);
    stop.send(true).expect("stop");

    // A new server on the same stream knows where the sender stands.
    let sink = h.sink(SinkConfig::default());
    let (url, _stop) = serve(&h, config(), sink).await;
    let answer = send(url.clone(), 3, 10).await;
    assert_eq!(answer["duplicates"], 3);
    assert_eq!(h.lines(), lines);

    // Another sender is counted apart.
    let res = post(&url)
        .header("Soc-Sender", "host-b")
        .header("Soc-Sequence", "0")
        .body("line b\n")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    let res = post(&url)
        .header("Soc-Sender", "bad name!")
        .header("Soc-Sequence", "0")
        .body("x\n")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400);
    assert_eq!(h.lines().len(), 11);
}
