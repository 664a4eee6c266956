//! A local stand-in for an OpenAI-compatible server, for the triage benchmark: it answers
//! chat completions in the triage and investigation schemas, enforces a requests-per-minute
//! limit the way Groq does (429 with `retry-after`), sends `x-ratelimit-*` headers, and
//! counts what it was asked.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct FakeStats {
    pub requests: AtomicU64,
    pub rejected_429: AtomicU64,
    pub incidents: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
}

struct State {
    rpm: usize,
    latency: Duration,
    window: Mutex<VecDeque<Instant>>,
    stats: Arc<FakeStats>,
}

pub struct FakeLlm {
    pub base_url: String,
    pub stats: Arc<FakeStats>,
    handle: actix_web::dev::ServerHandle,
}

impl FakeLlm {
    /// Serve on a free local port: `rpm` requests a minute, each answered after `latency`.
    pub fn start(rpm: usize, latency: Duration) -> std::io::Result<FakeLlm> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(FakeStats::default());
        let state = web::Data::new(State {
            rpm,
            latency,
            window: Mutex::new(VecDeque::new()),
            stats: stats.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::JsonConfig::default().limit(4 << 20))
                .route("/v1/chat/completions", web::post().to(complete))
        })
        .workers(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(FakeLlm {
            base_url: format!("http://{addr}/v1"),
            stats,
            handle,
        })
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

fn tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

async fn complete(
    state: web::Data<State>,
    _req: HttpRequest,
    body: web::Json<Value>,
) -> HttpResponse {
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let (remaining, reset) = {
        let mut w = state.window.lock().unwrap_or_else(|e| e.into_inner());
        while w
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            w.pop_front();
        }
        if w.len() >= state.rpm {
            let retry = w.front().map_or(Duration::from_secs(1), |t| {
                (*t + Duration::from_secs(60)).saturating_duration_since(now)
            });
            state.stats.rejected_429.fetch_add(1, Ordering::Relaxed);
            return HttpResponse::TooManyRequests()
                .insert_header(("retry-after", retry.as_secs().max(1).to_string()))
                .insert_header(("x-ratelimit-remaining-requests", "0"))
                .json(json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}}));
        }
        w.push_back(now);
        let reset = w.front().map_or(Duration::ZERO, |t| {
            (*t + Duration::from_secs(60)).saturating_duration_since(now)
        });
        (state.rpm - w.len(), reset)
    };
    tokio::time::sleep(state.latency).await;
    let system = body["messages"][0]["content"].as_str().unwrap_or_default();
    let user = body["messages"][1]["content"].as_str().unwrap_or("{}");
    let doc: Value = serde_json::from_str(user).unwrap_or(Value::Null);
    let incidents = doc["incidents"].as_array().cloned().unwrap_or_default();
    state
        .stats
        .incidents
        .fetch_add(incidents.len() as u64, Ordering::Relaxed);
    let investigating = system.contains("investigating");
    let results: Vec<Value> = incidents
        .iter()
        .map(|i| {
            let serious = matches!(i["severity"].as_str(), Some("high" | "critical"));
            if investigating {
                json!({"ref": i["ref"], "risk": 80, "priority": "P2", "attack_chain": ["reconnaissance", "initial access attempt"],
                       "mitre": i["mitre"], "actions": ["block_ip", "notify"], "rationale": "Automated attack traffic."})
            } else {
                json!({"ref": i["ref"], "verdict": if serious {"true_positive"} else {"suspicious"},
                       "confidence": 0.8, "needs_investigation": serious, "summary": "Automated attack traffic from one source."})
            }
        })
        .collect();
    let content = json!({ "results": results }).to_string();
    let (pt, ct) = (tokens(system) + tokens(user), tokens(&content));
    state.stats.prompt_tokens.fetch_add(pt, Ordering::Relaxed);
    state
        .stats
        .completion_tokens
        .fetch_add(ct, Ordering::Relaxed);
    HttpResponse::Ok()
        .insert_header(("x-ratelimit-limit-requests", state.rpm.to_string()))
        .insert_header(("x-ratelimit-remaining-requests", remaining.to_string()))
        .insert_header(("x-ratelimit-reset-requests", format!("{:.2}s", reset.as_secs_f64())))
        .json(json!({
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
        }))
}
