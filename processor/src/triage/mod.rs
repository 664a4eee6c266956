//! LLM triage of incidents, off the hot path.
//!
//! - [`settings`]: server profile, model, limits, prices, approval policy (the `[triage]`
//!   section of the configuration).
//! - [`client`]: the OpenAI-compatible chat-completions client, with retries.
//! - [`limits`]: request and token budgets, rate-limit headers, the circuit breaker.
//! - [`prompt`]: instructions and the incidents as sanitized JSON data.
//! - [`verdict`]: answer validation, the deterministic fallback, proposed actions.
//! - [`service`]: the queue, batching, the fingerprint cache and the worker.
//! - [`updates`]: verdicts to the database and the `alerts` topic, calls to `llm_calls`.

pub mod client;
pub mod limits;
pub mod prompt;
pub mod service;
pub mod settings;
pub mod updates;
pub mod verdict;

pub use service::{TriageHandle, TriageStats, TriageWorker, Update};

/// Why triage could not start.
#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    /// The HTTP client for the model server could not be built (TLS backend, settings).
    #[error("building the HTTP client for the model server: {0}")]
    Client(#[from] reqwest::Error),
    /// The base URL would expose the key or incidents, or is not a URL.
    #[error("triage base URL `{url}`: {why}")]
    BaseUrl { url: String, why: &'static str },
}
pub use settings::{Profile, TriageSettings};
