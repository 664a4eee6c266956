//! Triage in the running pipeline, against a local OpenAI-compatible server (wiremock) that
//! answers slowly: the alert reaches the API and the WebSocket at once with the deterministic
//! verdict, and the model's verdict follows as an update on both, with the call recorded.

use futures_util::StreamExt;
use serde_json::{json, Value};
use soc::embedded;
use soc_processor::triage::{Profile, TriageSettings};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const MODEL_DELAY: Duration = Duration::from_secs(2);

mod support;

fn corpus(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpora")).join(rel)
}

/// Every incident is a true positive; the investigation says P1 and block the source.
fn answer(req: &Request) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&req.body).expect("json");
    let system = body["messages"][0]["content"].as_str().unwrap_or_default();
    let user: Value =
        serde_json::from_str(body["messages"][1]["content"].as_str().unwrap_or("{}")).expect("doc");
    let results: Vec<Value> = user["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .map(|i| {
            if system.contains("investigating") {
                json!({"ref": i["ref"], "risk": 90, "priority": "P1", "attack_chain": ["password guessing"],
                       "mitre": ["T1110.001"], "actions": ["block_ip"], "rationale": "Ongoing guessing."})
            } else {
                json!({"ref": i["ref"], "verdict": "true_positive", "confidence": 0.9,
                       "needs_investigation": true, "summary": "SSH password guessing from one host."})
            }
        })
        .collect();
    ResponseTemplate::new(200)
        .set_delay(MODEL_DELAY)
        .set_body_json(json!({
            "model": "fake-model",
            "choices": [{"message": {"role": "assistant", "content": json!({"results": results}).to_string()}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 500, "completion_tokens": 80}
        }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_leave_with_the_fallback_and_the_model_verdict_follows() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (stop, shutdown) = watch::channel(false);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let pipeline = embedded::start(embedded::Options {
        triage: Some(TriageSettings {
            profile: Profile::Vllm,
            base_url: format!("{}/v1", server.uri()),
            model: "fake-model".into(),
            api_key: Some("k".into()),
            batch_wait_ms: 100,
            ..TriageSettings::default()
        }),
        ..embedded::Options::local(dir.path(), listener, shutdown)
    })
    .await
    .expect("pipeline starts");
    let base = format!("http://{}", pipeline.addr);
    let token = support::token(&pipeline).await;
    let mut ws = support::ws(pipeline.addr, &token).await;
    while pipeline
        .hub
        .sessions_opened
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let started = tokio::time::Instant::now();
    soc_connectors::replay::replay(
        &pipeline.log,
        &soc_connectors::replay::ReplayConfig::new(corpus("crowdsec-hub/tests/ssh-bf/ssh-bf.log")),
    )
    .await
    .expect("replay");

    // Collect the brute-force incident's messages until the investigated verdict arrives.
    let mut first_seen_at = None;
    let mut first_triage = Value::Null;
    let mut last;
    let deadline = started + Duration::from_secs(30);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the model's verdict arrives in time")
            .expect("socket open")
            .expect("message");
        let tokio_tungstenite::tungstenite::Message::Text(text) = msg else {
            continue;
        };
        let m: Value = serde_json::from_str(&text).expect("json");
        if m["alert"]["rule_id"] != "soc/ssh-bruteforce" {
            continue;
        }
        if first_seen_at.is_none() {
            first_seen_at = Some(started.elapsed());
            first_triage = m["alert"]["triage"].clone();
        }
        last = m;
        if last["alert"]["triage"]["stage"] == 2 {
            break;
        }
    }
    // The alert did not wait for the model (which takes 2 s a call).
    let first = first_seen_at.expect("alert seen");
    assert!(first < MODEL_DELAY, "first message after {first:?}");
    assert_eq!(first_triage["source"], "fallback");
    assert_eq!(first_triage["reason"], "pending");
    let t = &last["alert"]["triage"];
    assert_eq!(t["source"], "model");
    assert_eq!(t["verdict"], "true_positive");
    assert_eq!(t["priority"], 1);
    assert_eq!(t["actions"][0]["action"], "block_ip");
    assert_eq!(
        t["actions"][0]["target"], "35.188.49.176",
        "target from the parsed event"
    );
    assert_eq!(t["actions"][0]["status"], "pending");
    assert_eq!(
        last["alert"]["severity"], "high",
        "the rule's severity stands"
    );

    // The API serves the stored verdict; the call is recorded.
    let id = last["alert"]["id"].as_str().expect("id").to_string();
    let stored: Value = support::get_json(&format!("{base}/api/alerts/{id}"), &token).await;
    assert_eq!(stored["triage"]["source"], "model");
    assert_eq!(stored["triage"]["stage"], 2);
    assert_eq!(stored["count"], 6);
    use sea_orm::EntityTrait;
    let calls = soc_core::db::llm_call::Entity::find()
        .all(&pipeline.db)
        .await
        .expect("calls");
    assert!(
        calls.len() >= 2,
        "triage and investigation calls recorded: {calls:?}"
    );
    assert!(calls
        .iter()
        .all(|c| c.status == "ok" && c.prompt_tokens == 500 && c.latency_ms >= 2000));

    let _ = stop.send(true);
    pipeline.wait().await.expect("clean shutdown");
}
