//! A thin OpenAI-compatible chat-completions client: one request shape per server profile,
//! retries with jittered backoff on the answers worth retrying, and the rate-limit headers
//! fed back to the limiter.

use super::limits::{RateLimitHeaders, RateLimiter};
use super::settings::{Profile, TriageSettings};
use backon::{BackoffBuilder, ExponentialBuilder};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use soc_core::clock::Clock;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// One chat request: fixed instructions, the untrusted data as a JSON document, and the
/// schema the answer must follow.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub system: String,
    pub user: String,
    pub schema_name: &'static str,
    pub schema: Value,
}

#[derive(Debug, Clone)]
pub struct ChatAnswer {
    pub content: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The model the server says answered.
    pub model: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("transport: {0}")]
    Transport(String),
    /// 200, but not a chat completion we can read (or cut off by the token limit).
    #[error("unreadable answer: {0}")]
    BadResponse(String),
}

impl CallError {
    /// Worth another attempt: rate limits (429, Groq's 498 capacity answer), 408, server
    /// errors, timeouts and broken connections. 4xx otherwise means the request is wrong.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Status { status, .. } => {
                matches!(status, 408 | 409 | 425 | 429 | 498) || *status >= 500
            }
            CallError::Timeout(_) | CallError::Transport(_) => true,
            CallError::BadResponse(_) => false,
        }
    }

    /// The `llm_calls.status` word.
    pub fn status_word(&self) -> &'static str {
        match self {
            CallError::Status { status: 429, .. } | CallError::Status { status: 498, .. } => {
                "rate_limited"
            }
            CallError::Status { status, .. } if *status < 500 && *status != 408 => "rejected",
            CallError::BadResponse(_) => "invalid_answer",
            _ => "unreachable",
        }
    }
}

/// The result of a call with its retries.
#[derive(Debug)]
pub struct CallOutcome {
    pub result: Result<ChatAnswer, CallError>,
    /// HTTP requests sent.
    pub attempts: u32,
    /// 429/498 answers among them.
    pub rate_limited: u32,
    /// From the first request to the last answer, waits included.
    pub latency: Duration,
}

pub struct ChatClient {
    http: reqwest::Client,
    url: String,
    key: Option<SecretString>,
    profile: Profile,
    model: String,
    json_schema: bool,
    settings: TriageSettings,
    clock: Clock,
}

impl ChatClient {
    pub fn new(
        settings: &TriageSettings,
        key: Option<SecretString>,
        clock: Clock,
    ) -> Result<Self, super::TriageError> {
        let http = reqwest::Client::builder()
            .timeout(clock.real(Duration::from_secs(settings.timeout_secs.max(1))))
            .connect_timeout(clock.real(Duration::from_secs(settings.timeout_secs.clamp(1, 10))))
            .user_agent(concat!("soc/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ChatClient {
            http,
            url: format!("{}/chat/completions", settings.base_url()),
            key,
            profile: settings.profile,
            model: settings.model().to_string(),
            json_schema: settings.use_json_schema(),
            settings: settings.clone(),
            clock,
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// The request body for this profile: only fields the server accepts (Groq rejects
    /// `n`, `logprobs`, `logit_bias` and `messages[].name`, so none of those are sent).
    pub fn body(&self, req: &ChatRequest) -> Value {
        let response_format = if self.json_schema {
            json!({
                "type": "json_schema",
                "json_schema": { "name": req.schema_name, "strict": true, "schema": req.schema }
            })
        } else {
            json!({ "type": "json_object" })
        };
        let mut body = json!({
            "model": self.model,
            "messages": [
                { "role": "system", "content": req.system },
                { "role": "user", "content": req.user },
            ],
            "temperature": self.settings.temperature,
            "response_format": response_format,
        });
        body[self.profile.max_tokens_field()] = json!(self.settings.max_completion_tokens);
        if let Some(effort) = &self.settings.reasoning_effort {
            if matches!(self.profile, Profile::Groq | Profile::OpenAi) {
                body["reasoning_effort"] = json!(effort);
            }
        }
        if self.profile == Profile::Ollama {
            body["stream"] = json!(false);
        }
        body
    }

    async fn send_once(&self, body: &Value) -> (Result<ChatAnswer, CallError>, RateLimitHeaders) {
        let mut rb = self.http.post(&self.url).json(body);
        if let Some(k) = &self.key {
            rb = rb.bearer_auth(k.expose_secret());
        }
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return (
                    Err(CallError::Timeout(Duration::from_secs(
                        self.settings.timeout_secs,
                    ))),
                    RateLimitHeaders::default(),
                )
            }
            Err(e) => {
                return (
                    Err(CallError::Transport(e.without_url().to_string())),
                    RateLimitHeaders::default(),
                )
            }
        };
        let headers = RateLimitHeaders::from_headers(resp.headers());
        let status = resp.status();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) if e.is_timeout() => {
                return (
                    Err(CallError::Timeout(Duration::from_secs(
                        self.settings.timeout_secs,
                    ))),
                    headers,
                )
            }
            Err(e) => {
                return (
                    Err(CallError::Transport(e.without_url().to_string())),
                    headers,
                )
            }
        };
        if !status.is_success() {
            let body: String = text.chars().take(300).collect();
            return (
                Err(CallError::Status {
                    status: status.as_u16(),
                    body,
                }),
                headers,
            );
        }
        (parse_completion(&text), headers)
    }

    /// Send one request, waiting for the limiter before each attempt and retrying what is
    /// worth retrying.
    pub async fn call(&self, limiter: &mut RateLimiter, req: &ChatRequest) -> CallOutcome {
        let body = self.body(req);
        let tokens = estimate_tokens(&req.system)
            + estimate_tokens(&req.user)
            + self.settings.max_completion_tokens as u64;
        let max_wait = Duration::from_secs(self.settings.max_backoff_secs.max(1));
        let started = Instant::now();
        let mut delays = retry_delays(self.settings.backoff_ms, max_wait);
        let mut attempts = 0;
        let mut rate_limited = 0;
        loop {
            let wait = limiter.delay(self.clock.now(), tokens);
            if !wait.is_zero() {
                debug!(
                    wait_ms = wait.as_millis() as u64,
                    "waiting for the rate limit"
                );
                self.clock.sleep(wait).await;
            }
            limiter.record(self.clock.now(), tokens);
            attempts += 1;
            let (result, headers) = self.send_once(&body).await;
            limiter.observe(self.clock.now(), &headers, max_wait);
            match result {
                Ok(answer) => {
                    if answer.prompt_tokens + answer.completion_tokens > 0 {
                        limiter.correct_last(answer.prompt_tokens + answer.completion_tokens);
                    }
                    return CallOutcome {
                        result: Ok(answer),
                        attempts,
                        rate_limited,
                        latency: started.elapsed(),
                    };
                }
                Err(e) => {
                    if matches!(
                        e,
                        CallError::Status {
                            status: 429 | 498,
                            ..
                        }
                    ) {
                        rate_limited += 1;
                    }
                    if !e.retryable() || attempts > self.settings.max_retries {
                        return CallOutcome {
                            result: Err(e),
                            attempts,
                            rate_limited,
                            latency: started.elapsed(),
                        };
                    }
                    // `retry-after` already blocks the limiter; the backoff spreads retries.
                    let backoff = delays.next().unwrap_or(max_wait);
                    warn!(attempt = attempts, error = %e, backoff_ms = backoff.as_millis() as u64, "model call failed; retrying");
                    self.clock.sleep(backoff).await;
                }
            }
        }
    }
}

/// A rough, deliberately high token count for budgeting (about 3 characters a token).
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(3) + 8
}

/// Delays between retries of one call: exponential from `base_ms`, with jitter so clients
/// that failed together do not retry together, each at most `max`.
pub fn retry_delays(base_ms: u64, max: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(base_ms.max(1)))
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The assistant's text of a chat completion, with token usage.
pub fn parse_completion(text: &str) -> Result<ChatAnswer, CallError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| CallError::BadResponse(format!("not JSON: {e}")))?;
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| CallError::BadResponse("no choices".into()))?;
    if choice.get("finish_reason").and_then(Value::as_str) == Some("length") {
        return Err(CallError::BadResponse(
            "answer cut off at the token limit".into(),
        ));
    }
    let content = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| CallError::BadResponse("no message content".into()))?;
    let usage = |k: &str| v.pointer(&format!("/usage/{k}")).and_then(Value::as_u64);
    Ok(ChatAnswer {
        content: content.to_string(),
        prompt_tokens: usage("prompt_tokens").unwrap_or(0),
        completion_tokens: usage("completion_tokens").unwrap_or(0),
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(profile: Profile, model: &str) -> ChatClient {
        let s = TriageSettings {
            profile,
            model: model.into(),
            reasoning_effort: Some("low".into()),
            ..TriageSettings::default()
        };
        ChatClient::new(&s, None, Clock::System).expect("client")
    }

    fn req() -> ChatRequest {
        ChatRequest {
            system: "s".into(),
            user: "{}".into(),
            schema_name: "x",
            schema: json!({"type": "object"}),
        }
    }

    #[test]
    fn each_profile_sends_only_what_it_accepts() {
        let groq = client(Profile::Groq, "openai/gpt-oss-20b").body(&req());
        assert_eq!(groq["response_format"]["type"], "json_schema");
        assert_eq!(groq["response_format"]["json_schema"]["strict"], true);
        assert!(groq.get("max_completion_tokens").is_some());
        assert_eq!(groq["reasoning_effort"], "low");
        for banned in ["n", "logprobs", "logit_bias", "max_tokens", "stream"] {
            assert!(groq.get(banned).is_none(), "{banned} sent to Groq");
        }
        assert!(groq["messages"]
            .as_array()
            .is_some_and(|m| m.iter().all(|m| m.get("name").is_none())));

        let llama = client(Profile::Groq, "llama-3.3-70b-versatile").body(&req());
        assert_eq!(llama["response_format"], json!({"type": "json_object"}));

        let ollama = client(Profile::Ollama, "llama3.1").body(&req());
        assert!(ollama.get("max_tokens").is_some());
        assert!(ollama.get("max_completion_tokens").is_none());
        assert!(ollama.get("reasoning_effort").is_none());
        assert_eq!(ollama["stream"], false);

        let vllm = client(Profile::Vllm, "m").body(&req());
        assert_eq!(vllm["response_format"]["type"], "json_schema");
        let cpp = client(Profile::LlamaCpp, "m").body(&req());
        assert_eq!(cpp["response_format"]["type"], "json_object");
    }

    #[test]
    fn retry_classes() {
        let st = |status| CallError::Status {
            status,
            body: String::new(),
        };
        for s in [408, 429, 498, 500, 502, 503] {
            assert!(st(s).retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!st(s).retryable(), "{s}");
        }
        assert!(CallError::Timeout(Duration::from_secs(1)).retryable());
        assert!(!CallError::BadResponse("x".into()).retryable());
    }

    #[test]
    fn retry_delays_grow_and_stay_capped() {
        let max = Duration::from_secs(5);
        let delays: Vec<Duration> = retry_delays(500, max).take(10).collect();
        assert!(delays[0] >= Duration::from_millis(500), "{delays:?}");
        assert!(delays[3] >= Duration::from_millis(4_000), "{delays:?}");
        // The cap holds, give or take the jitter added on top of it.
        assert!(delays.iter().all(|d| *d <= max * 2), "{delays:?}");
    }

    #[test]
    fn completions_are_read_and_truncation_is_an_error() {
        let ok = r#"{"model":"m","choices":[{"message":{"role":"assistant","content":"{}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":3}}"#;
        let a = parse_completion(ok).expect("answer");
        assert_eq!((a.prompt_tokens, a.completion_tokens), (10, 3));
        let cut = r#"{"choices":[{"message":{"content":"{\"res"},"finish_reason":"length"}]}"#;
        assert!(parse_completion(cut).is_err());
        assert!(parse_completion("<html>").is_err());
        assert!(parse_completion(r#"{"choices":[]}"#).is_err());
    }
}
