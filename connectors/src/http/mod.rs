//! HTTP ingest: `POST /ingest` with newline-delimited lines (`text/plain`) or JSON objects
//! (`application/x-ndjson`), optionally gzip-compressed, authorized by a token per source.
//!
//! The answer comes only once the lines are durable in the stream. When the stream is
//! behind, the request is refused whole with 503 and `Retry-After` instead of queuing
//! without bound; a body over the limit (before or after gzip) gets 413.
//!
//! A sender that retries can make its lines land exactly once: it names itself
//! (`Soc-Sender`) and numbers its lines (`Soc-Sequence`, the number of the body's first
//! line). The position after the last line is stored with the lines; a retried request is
//! answered with the lines already kept counted as duplicates and not written again.

mod config;

pub use config::{default_max_body_bytes, HttpIngestConfig};

use crate::error::{Error, Result};
use crate::internal_events::{self as events, Connector};
use crate::line::{now_ms, Lines};
use crate::sink::{Sink, SinkError, Submission};
use actix_web::http::{header, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use soc_core::stream::{Checkpoint, LogStream};
use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
use tokio::sync::watch;
use tracing::{info, warn};

/// Sender names are short and plain: they become checkpoint names.
const MAX_SENDER_LEN: usize = 128;
/// Senders whose next sequence is kept in memory (beyond it, read back from the stream).
const MAX_SENDERS_CACHED: usize = 10_000;

struct State {
    sink: Sink,
    stream: Arc<dyn LogStream>,
    /// (source name, SHA-256 of its token): compared in constant time.
    tokens: Vec<(String, [u8; 32])>,
    max_body_bytes: usize,
    max_line_bytes: usize,
    retry_after_secs: u32,
    /// Next expected sequence per sender; the lock also keeps one sender's requests in order.
    senders: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<u64>>>>>,
}

/// A bound HTTP ingest listener, ready to [`run`](HttpIngest::run).
pub struct HttpIngest {
    server: actix_web::dev::Server,
    local_addr: SocketAddr,
}

impl HttpIngest {
    /// Bind the configured address (before the stream is there to write to): an error here
    /// is a configuration error.
    pub fn bind_listener(config: &HttpIngestConfig) -> Result<std::net::TcpListener> {
        if config.tokens.is_empty() {
            return Err(Error::Config(
                "HTTP ingest needs at least one token ([ingest.http.tokens])".into(),
            ));
        }
        std::net::TcpListener::bind(config.address).map_err(|source| Error::Bind {
            address: config.address,
            source,
        })
    }

    /// Build the server on a bound listener.
    pub fn new(
        config: HttpIngestConfig,
        listener: std::net::TcpListener,
        sink: Sink,
        stream: Arc<dyn LogStream>,
    ) -> Result<Self> {
        let bind_err = |source| Error::Bind {
            address: config.address,
            source,
        };
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let tls = match &config.tls {
            Some((cert, key)) => Some(soc_core::tls::server_config(cert, key)?),
            None => None,
        };
        let state = web::Data::new(State {
            sink,
            stream,
            tokens: config
                .tokens
                .iter()
                .map(|(name, t)| {
                    (
                        name.clone(),
                        Sha256::digest(t.expose_secret().as_bytes()).into(),
                    )
                })
                .collect(),
            max_body_bytes: config.max_body_bytes,
            max_line_bytes: config.max_line_bytes,
            retry_after_secs: config.retry_after_secs,
            senders: Mutex::new(HashMap::new()),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/ingest", web::post().to(ingest))
                .route(
                    "/health",
                    web::get().to(|| async { HttpResponse::Ok().body("ok") }),
                )
                .default_service(web::to(|| async {
                    problem(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "POST lines to /ingest".into(),
                    )
                }))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(10);
        let server = match tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls),
            None => server.listen(listener),
        }
        .map_err(bind_err)?
        .run();
        Ok(HttpIngest { server, local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serve until `shutdown` turns true; requests in progress are finished.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        info!(address = %self.local_addr, "HTTP ingest listening");
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        let _ = shutdown.wait_for(|s| *s).await;
        handle.stop(true).await;
        server
            .await
            .map_err(|e| Error::Config(format!("HTTP ingest server: {e}")))?
            .map_err(|source| Error::Io {
                path: "HTTP ingest".into(),
                source,
            })
    }
}

fn problem(status: StatusCode, code: &'static str, detail: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .json(serde_json::json!({
            "type": format!("https://soc.invalid/problems/{code}"),
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": detail,
            "code": code,
        }))
}

fn authenticate(req: &HttpRequest, state: &State) -> Option<String> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let digest: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
    // Every token is compared, so the time taken says nothing about which one matched.
    let mut found = None;
    for (name, expected) in &state.tokens {
        if bool::from(digest.ct_eq(expected)) {
            found = Some(name.clone());
        }
    }
    found
}

enum BodyError {
    TooLarge,
    Read(String),
}

async fn read_body(
    mut payload: web::Payload,
    max: usize,
) -> std::result::Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Inflate at most `max` bytes: a small body cannot become a huge one.
fn gunzip(body: &[u8], max: usize) -> std::result::Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    let decoder = flate2::read::MultiGzDecoder::new(body);
    decoder
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Read(format!("bad gzip: {e}")))?;
    if out.len() > max {
        return Err(BodyError::TooLarge);
    }
    Ok(out)
}

struct Sequence {
    sender: String,
    first: u64,
}

fn sequence(req: &HttpRequest) -> std::result::Result<Option<Sequence>, String> {
    let get = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().map_err(|_| format!("{name} is not text")))
    };
    match (get("soc-sender"), get("soc-sequence")) {
        (None, None) => Ok(None),
        (Some(sender), Some(seq)) => {
            let sender = sender?.to_string();
            if sender.is_empty()
                || sender.len() > MAX_SENDER_LEN
                || !sender
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
            {
                return Err(format!(
                    "Soc-Sender must be 1 to {MAX_SENDER_LEN} letters, digits or . _ : -"
                ));
            }
            let first = seq?
                .trim()
                .parse()
                .map_err(|_| "Soc-Sequence must be a whole number".to_string())?;
            Ok(Some(Sequence { sender, first }))
        }
        _ => Err("Soc-Sender and Soc-Sequence go together".into()),
    }
}

async fn ingest(req: HttpRequest, payload: web::Payload, state: web::Data<State>) -> HttpResponse {
    let Some(source) = authenticate(&req, &state) else {
        events::error(Connector::Http, events::ERROR_UNAUTHORIZED);
        let peer = req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        warn!(%peer, "HTTP ingest request without a valid token");
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"soc-ingest\""))
            .content_type("application/problem+json")
            .json(serde_json::json!({
                "type": "https://soc.invalid/problems/unauthenticated",
                "title": "Unauthorized",
                "status": 401,
                "detail": "an ingest token is needed: Authorization: Bearer TOKEN",
                "code": "unauthenticated",
            }));
    };
    let sequence = match sequence(&req) {
        Ok(s) => s,
        Err(detail) => return problem(StatusCode::BAD_REQUEST, "bad_request", detail),
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let too_large = || {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "a body holds at most {} bytes, after gzip too",
                state.max_body_bytes
            ),
        )
    };
    if declared.is_some_and(|n| n > state.max_body_bytes) {
        return too_large();
    }
    let encoding = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let body = match read_body(payload, state.max_body_bytes).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Read(e)) => {
            events::error(Connector::Http, events::ERROR_READ);
            return problem(StatusCode::BAD_REQUEST, "bad_request", e);
        }
    };
    let body = match encoding.as_deref() {
        None | Some("identity") => body,
        Some("gzip" | "x-gzip") => match gunzip(&body, state.max_body_bytes) {
            Ok(b) => b,
            Err(BodyError::TooLarge) => return too_large(),
            Err(BodyError::Read(e)) => {
                events::error(Connector::Http, events::ERROR_BAD_BODY);
                return problem(StatusCode::BAD_REQUEST, "bad_request", e);
            }
        },
        Some(other) => {
            return problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("Content-Encoding `{other}` is not accepted; send gzip or none"),
            )
        }
    };
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let v = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            matches!(
                v.as_str(),
                "application/x-ndjson"
                    | "application/ndjson"
                    | "application/jsonl"
                    | "application/json"
            )
        })
        .unwrap_or(false);
    let mut body_lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
    if body_lines.last().is_some_and(|l| l.is_empty()) {
        body_lines.pop();
    }
    if json {
        for (i, line) in body_lines.iter().enumerate() {
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            if !matches!(
                serde_json::from_slice(trimmed),
                Ok(serde_json::Value::Object(_))
            ) {
                events::error(Connector::Http, events::ERROR_BAD_BODY);
                return problem(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!(
                        "line {} is not a JSON object; nothing of this request was kept",
                        i + 1
                    ),
                );
            }
        }
    }
    let total = body_lines.len() as u64;
    let peer = req.peer_addr();
    let build = |skip: usize| {
        let received = now_ms();
        let mut lines = Lines::default();
        for line in &body_lines[skip..] {
            let keep = line.len().min(state.max_line_bytes);
            lines.push(
                Connector::Http,
                &line[..keep],
                line.len(),
                state.max_line_bytes,
                peer.map(|p| p.ip()),
                peer.map(|p| p.ip().to_string().into_bytes()),
                || format!("http:{source}"),
                received,
            );
        }
        lines
    };
    let Some(sequence) = sequence else {
        let lines = build(0);
        return write(&state, &source, lines, Vec::new(), serde_json::json!({})).await;
    };
    // One sender's requests one at a time, so a retry never races the request it retries.
    let name = format!("http:{source}:{}", sequence.sender);
    let slot = {
        let mut senders = state.senders.lock().unwrap_or_else(|e| e.into_inner());
        if senders.len() >= MAX_SENDERS_CACHED && !senders.contains_key(&name) {
            senders.retain(|_, s| Arc::strong_count(s) > 1);
        }
        senders.entry(name.clone()).or_default().clone()
    };
    let mut next = slot.lock().await;
    let kept = match *next {
        Some(n) => Some(n),
        None => match state.stream.checkpoint(&name).await {
            Ok(n) => n,
            Err(e) => {
                return problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                )
            }
        },
    };
    let end = sequence.first + total;
    let duplicates = kept.map_or(0, |k| k.saturating_sub(sequence.first).min(total));
    if let Some(k) = kept.filter(|k| *k < sequence.first) {
        warn!(sender = %sequence.sender, expected = k, got = sequence.first, "HTTP ingest sender skipped lines");
    }
    let lines = build(duplicates as usize);
    let checkpoints = if duplicates < total {
        vec![Checkpoint {
            name,
            position: end,
        }]
    } else {
        Vec::new()
    };
    let answer = write(
        &state,
        &source,
        lines,
        checkpoints,
        serde_json::json!({ "duplicates": duplicates, "next_sequence": end.max(kept.unwrap_or(0)) }),
    )
    .await;
    if answer.status().is_success() {
        *next = Some(end.max(kept.unwrap_or(0)));
    }
    answer
}

/// Queue the lines if there is room, wait until they are durable, then answer.
async fn write(
    state: &State,
    source: &str,
    lines: Lines,
    checkpoints: Vec<Checkpoint>,
    mut answer: serde_json::Value,
) -> HttpResponse {
    let accepted = lines.len();
    events::received(Connector::Http, accepted as u64, lines.bytes);
    let mut submission = Submission::from(lines);
    submission.checkpoints = checkpoints;
    let receipt = match state.sink.try_submit(submission) {
        Ok(r) => r,
        Err(SinkError::Full { pending_bytes }) => {
            events::dropped(Connector::Http, events::DROP_BACKPRESSURE, accepted as u64);
            return HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, state.retry_after_secs.to_string()))
                .content_type("application/problem+json")
                .json(serde_json::json!({
                    "type": "https://soc.invalid/problems/behind",
                    "title": "Service Unavailable",
                    "status": 503,
                    "detail": format!("the stream is behind ({pending_bytes} bytes wait); nothing of this request was kept, send it again"),
                    "code": "behind",
                }));
        }
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        }
    };
    match receipt.durable().await {
        Ok(()) => {
            answer["accepted"] = accepted.into();
            answer["source"] = source.into();
            HttpResponse::Ok().json(answer)
        }
        Err(e) => {
            events::error(Connector::Http, events::ERROR_STREAM);
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        }
    }
}
