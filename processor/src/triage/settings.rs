//! Triage configuration: which server, which model, how fast, how much, and what may be
//! approved without an analyst. The `[triage]` section of the configuration file.

use crate::response::ResponsePolicy;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The kinds of OpenAI-compatible servers, each with the request fields it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Groq,
    OpenAi,
    Ollama,
    Vllm,
    #[serde(rename = "llama.cpp", alias = "llamacpp")]
    LlamaCpp,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "groq" => Some(Profile::Groq),
            "openai" => Some(Profile::OpenAi),
            "ollama" => Some(Profile::Ollama),
            "vllm" => Some(Profile::Vllm),
            "llama.cpp" | "llamacpp" => Some(Profile::LlamaCpp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Groq => "groq",
            Profile::OpenAi => "openai",
            Profile::Ollama => "ollama",
            Profile::Vllm => "vllm",
            Profile::LlamaCpp => "llama.cpp",
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            Profile::Groq => "https://api.groq.com/openai/v1",
            Profile::OpenAi => "https://api.openai.com/v1",
            Profile::Ollama => "http://127.0.0.1:11434/v1",
            Profile::Vllm => "http://127.0.0.1:8000/v1",
            Profile::LlamaCpp => "http://127.0.0.1:8080/v1",
        }
    }

    pub fn default_model(self) -> &'static str {
        match self {
            Profile::Groq => "openai/gpt-oss-20b",
            Profile::OpenAi => "gpt-4o-mini",
            Profile::Ollama => "llama3.1",
            Profile::Vllm | Profile::LlamaCpp => "default",
        }
    }

    /// The environment variable holding the key; local servers need none.
    pub fn default_api_key_env(self) -> Option<&'static str> {
        match self {
            Profile::Groq => Some("GROQ_API_KEY"),
            Profile::OpenAi => Some("OPENAI_API_KEY"),
            Profile::Ollama | Profile::Vllm | Profile::LlamaCpp => None,
        }
    }

    /// Whether the server enforces a JSON schema on the answer for this model. Groq does
    /// for its gpt-oss models only; Ollama and llama.cpp get `json_object` and the schema
    /// in the prompt.
    pub fn supports_json_schema(self, model: &str) -> bool {
        match self {
            Profile::Groq => model.starts_with("openai/gpt-oss"),
            Profile::OpenAi | Profile::Vllm => true,
            Profile::Ollama | Profile::LlamaCpp => false,
        }
    }

    /// OpenAI and Groq name the answer budget `max_completion_tokens`; the local servers
    /// know `max_tokens`.
    pub fn max_tokens_field(self) -> &'static str {
        match self {
            Profile::Groq | Profile::OpenAi => "max_completion_tokens",
            Profile::Ollama | Profile::Vllm | Profile::LlamaCpp => "max_tokens",
        }
    }
}

/// How the answer's shape is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// `json_schema` where the profile and model support it, else `json_object`.
    #[default]
    Auto,
    JsonSchema,
    JsonObject,
}

/// Price of a model in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriageSettings {
    /// Off: every alert keeps the deterministic verdict and no call is made.
    pub enabled: bool,
    pub profile: Profile,
    /// Empty: the profile's default. Must be `https://` unless the host is loopback or
    /// `allow_insecure_http` is set, since the API key and incident data travel on it.
    pub base_url: String,
    /// Accept a plain `http://` base URL on a host other than loopback (a model server on
    /// a trusted network); the key and incidents then cross that network unencrypted.
    pub allow_insecure_http: bool,
    /// Empty: the profile's default.
    pub model: String,
    /// Environment variable of the API key; empty: the profile's default.
    pub api_key_env: String,
    /// The key itself, when not read from `api_key_env` (e.g. `SOC_TRIAGE__API_KEY`). A
    /// secret: never serialized, and `Debug` prints it redacted.
    #[serde(skip_serializing)]
    pub api_key: Option<SecretString>,
    pub output: OutputMode,
    /// Sent as `reasoning_effort` when set (Groq and OpenAI reasoning models).
    pub reasoning_effort: Option<String>,
    pub temperature: f32,
    /// Answer budget per call, in tokens.
    pub max_completion_tokens: u32,
    /// Per HTTP attempt, in seconds.
    pub timeout_secs: u64,
    /// Retries of one call on 408, 429, 498, 5xx and timeouts.
    pub max_retries: u32,
    /// First backoff, doubled on every retry, with full jitter; in milliseconds.
    pub backoff_ms: u64,
    /// Longest single wait for a backoff or a `retry-after`, in seconds.
    pub max_backoff_secs: u64,
    /// Requests per minute this process sends at most (Groq free tier: 30).
    pub requests_per_minute: u32,
    /// Tokens (prompt plus answer budget) per minute at most; 0: no cap.
    pub tokens_per_minute: u32,
    /// Consecutive failed calls that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before one probe call, in seconds.
    pub breaker_cooldown_secs: u64,
    /// Most incidents in one call.
    pub batch_max_incidents: usize,
    /// Estimated prompt tokens per call at most (incidents are added until it is reached).
    pub batch_token_budget: u32,
    /// How long to wait for more incidents before sending a partial batch, in milliseconds.
    pub batch_wait_ms: u64,
    /// How long a verdict is reused for identical incidents, in seconds.
    pub cache_ttl_secs: u64,
    /// Incidents waiting for the model at most; beyond it the least urgent keep the fallback.
    pub queue_capacity: usize,
    /// Calls at most per incident (triage, then investigation).
    pub max_attempts_per_incident: u32,
    /// Sample events per incident sent to the model.
    pub samples_per_incident: usize,
    /// Prices by model name.
    pub prices: BTreeMap<String, Price>,
    /// When an action may be proposed at all, and what is approved without a person (`[assets] response_policy` replaces the
    /// shipped file).
    #[serde(skip)]
    pub response: Arc<ResponsePolicy>,
}

/// Groq's list prices of the models it serves, in US dollars per million tokens (check your
/// provider's current price list; the configuration replaces this table).
fn default_prices() -> BTreeMap<String, Price> {
    [
        ("openai/gpt-oss-20b", 0.075, 0.30),
        ("openai/gpt-oss-120b", 0.15, 0.60),
        ("llama-3.1-8b-instant", 0.05, 0.08),
        ("llama-3.3-70b-versatile", 0.59, 0.79),
    ]
    .into_iter()
    .map(|(model, input_per_mtok, output_per_mtok)| {
        (
            model.to_string(),
            Price {
                input_per_mtok,
                output_per_mtok,
            },
        )
    })
    .collect()
}

impl Default for TriageSettings {
    fn default() -> Self {
        TriageSettings {
            enabled: true,
            profile: Profile::Groq,
            base_url: String::new(),
            allow_insecure_http: false,
            model: String::new(),
            api_key_env: String::new(),
            api_key: None,
            output: OutputMode::Auto,
            reasoning_effort: Some("low".into()),
            temperature: 0.0,
            max_completion_tokens: 1024,
            timeout_secs: 30,
            max_retries: 3,
            backoff_ms: 500,
            max_backoff_secs: 60,
            requests_per_minute: 30,
            tokens_per_minute: 6000,
            breaker_failures: 5,
            breaker_cooldown_secs: 60,
            batch_max_incidents: 8,
            batch_token_budget: 3000,
            batch_wait_ms: 2000,
            cache_ttl_secs: 3600,
            queue_capacity: 10_000,
            max_attempts_per_incident: 2,
            samples_per_incident: 3,
            prices: default_prices(),
            response: Arc::default(),
        }
    }
}

impl TriageSettings {
    pub fn base_url(&self) -> &str {
        if self.base_url.is_empty() {
            self.profile.default_base_url()
        } else {
            self.base_url.trim_end_matches('/')
        }
    }

    /// Refuse a base URL that would send the key or incidents in the clear, or anywhere but
    /// an HTTP server: `https://`, or `http://` on loopback, or `http://` when allowed.
    pub fn check_base_url(&self) -> Result<(), super::TriageError> {
        let raw = self.base_url();
        let bad = |why: &'static str| super::TriageError::BaseUrl {
            url: raw.to_string(),
            why,
        };
        let url = reqwest::Url::parse(raw).map_err(|_| bad("not a URL"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials belong in the API key, not the URL"));
        }
        match url.scheme() {
            "https" => Ok(()),
            "http" => {
                let loopback = match url.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                    None => false,
                };
                if loopback || self.allow_insecure_http {
                    Ok(())
                } else {
                    Err(bad(
                        "plain http off loopback: use https, or set triage.allow_insecure_http",
                    ))
                }
            }
            _ => Err(bad("the scheme must be https (or http on loopback)")),
        }
    }

    pub fn model(&self) -> &str {
        if self.model.is_empty() {
            self.profile.default_model()
        } else {
            &self.model
        }
    }

    pub fn api_key_env(&self) -> Option<&str> {
        if self.api_key_env.is_empty() {
            self.profile.default_api_key_env()
        } else {
            Some(&self.api_key_env)
        }
    }

    /// The key: set directly, else from the environment. `None` for a hosted profile means
    /// the model is not called at all.
    pub fn resolve_api_key(&self) -> Option<SecretString> {
        if let Some(k) = &self.api_key {
            return Some(k.clone());
        }
        let var = self.api_key_env()?;
        std::env::var(var)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(SecretString::from)
    }

    /// Whether a key is configured or found, without exposing it.
    pub fn has_api_key(&self) -> bool {
        self.resolve_api_key()
            .is_some_and(|k| !k.expose_secret().is_empty())
    }

    /// Whether calls can be made: enabled, and a key where the profile needs one.
    pub fn needs_key_and_has_none(&self) -> bool {
        self.api_key.is_none() && self.api_key_env().is_some() && self.resolve_api_key().is_none()
    }

    pub fn use_json_schema(&self) -> bool {
        match self.output {
            OutputMode::JsonSchema => true,
            OutputMode::JsonObject => false,
            OutputMode::Auto => self.profile.supports_json_schema(self.model()),
        }
    }

    /// Cost of a call in US dollars, when the model has a price.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        let p = self.prices.get(self.model())?;
        Some(
            (prompt_tokens as f64 * p.input_per_mtok
                + completion_tokens as f64 * p.output_per_mtok)
                / 1_000_000.0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_only_travels_over_https_or_loopback() {
        let with = |url: &str, allow: bool| TriageSettings {
            base_url: url.into(),
            allow_insecure_http: allow,
            ..TriageSettings::default()
        };
        for ok in [
            "https://api.groq.com/openai/v1",
            "http://127.0.0.1:8000/v1",
            "http://127.8.9.10/v1",
            "http://[::1]:8080/v1",
            "http://localhost:11434/v1",
        ] {
            assert!(with(ok, false).check_base_url().is_ok(), "{ok}");
        }
        for bad in [
            "http://198.51.100.7:8000/v1",
            "http://models.example.net/v1",
            "http://localhost.example.net/v1",
            "ftp://127.0.0.1/v1",
            "https://user:pw@api.example.net/v1",
            "api.groq.com/openai/v1",
        ] {
            let err = with(bad, false)
                .check_base_url()
                .expect_err(bad)
                .to_string();
            assert!(err.contains(bad), "the URL is named: {err}");
        }
        assert!(with("http://198.51.100.7:8000/v1", true)
            .check_base_url()
            .is_ok());
        for p in [
            Profile::Groq,
            Profile::OpenAi,
            Profile::Ollama,
            Profile::Vllm,
            Profile::LlamaCpp,
        ] {
            let s = TriageSettings {
                profile: p,
                ..TriageSettings::default()
            };
            assert!(s.check_base_url().is_ok(), "{p:?}'s default");
        }
    }

    #[test]
    fn config_file_parses_profiles_prices_and_policy() {
        let s: TriageSettings = serde_norway::from_str(
            r#"
profile: llama.cpp
requests_per_minute: 10
prices:
  default: { input_per_mtok: 1.0, output_per_mtok: 2.0 }
"#,
        )
        .expect("valid config");
        assert_eq!(s.profile, Profile::LlamaCpp);
        assert_eq!(s.base_url(), "http://127.0.0.1:8080/v1");
        assert!(!s.use_json_schema());
        assert_eq!(s.cost(1_000_000, 500_000), Some(2.0));
        assert!(serde_norway::from_str::<TriageSettings>("modle: x").is_err());
        // Approval moved to the response policy file.
        assert!(serde_norway::from_str::<TriageSettings>("auto_approve: []").is_err());
    }

    #[test]
    fn groq_uses_json_schema_only_for_gpt_oss() {
        let mut s = TriageSettings::default();
        assert!(s.use_json_schema());
        s.model = "llama-3.3-70b-versatile".into();
        assert!(!s.use_json_schema());
        assert_eq!(s.api_key_env(), Some("GROQ_API_KEY"));
    }
}
