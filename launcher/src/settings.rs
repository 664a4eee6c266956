//! The one configuration of every `soc` command: defaults, then a TOML file, then `SOC_*`
//! environment variables, then flags (layered by `figment`). `launcher/soc.example.toml`
//! documents every key and is what `soc config --example` prints.

use anyhow::{Context, Result};
use clap::Args;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use soc_core::assets::Assets;
use soc_processor::rules::RuleOverride;
use soc_processor::triage::{Profile, TriageSettings};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The documented configuration file, every value its default.
pub const EXAMPLE: &str = include_str!("../soc.example.toml");

/// Read when no `--config` is given and it exists in the working directory.
const IMPLICIT_FILE: &str = "soc.toml";

/// Top-level keys, so unrelated `SOC_*` variables (`SOC_LOG`, ...) are not taken for config.
const KEYS: [&str; 11] = [
    "data_dir",
    "database_url",
    "listen",
    "allowed_hosts",
    "auth",
    "tls",
    "fluvio",
    "assets",
    "rules",
    "ingest",
    "triage",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where `soc up` keeps the embedded log, SQLite and replay checkpoints.
    pub data_dir: PathBuf,
    /// Database URL; `None`: SQLite in `data_dir`. May hold a password: printed redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Address of the dashboard and API.
    pub listen: SocketAddr,
    /// Host names the gateway is reached by, besides IP addresses and `localhost` (e.g. a
    /// reverse proxy's name). Requests naming any other host are refused.
    pub allowed_hosts: Vec<String>,
    pub auth: AuthSettings,
    pub tls: TlsSettings,
    pub fluvio: FluvioSettings,
    pub assets: AssetDirs,
    pub rules: RuleSettings,
    pub ingest: IngestSettings,
    pub triage: TriageSettings,
    pub response: ResponseSettings,
}

/// The response loop at the gateway (the policy itself is `[assets] response_policy`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseSettings {
    /// The Ed25519 key commands are signed with (created on first start, mode 0600);
    /// `None`: `response-signing.key` in `data_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<PathBuf>,
    /// How long a signed command is valid, in seconds (agents refuse more than 900).
    pub command_validity_secs: u32,
    /// How long a dispatched action waits for its agent to connect, in seconds.
    pub delivery_deadline_secs: u32,
    /// How long an enrollment token stays usable, in hours.
    pub enrollment_hours: u32,
}

impl Default for ResponseSettings {
    fn default() -> Self {
        ResponseSettings {
            signing_key: None,
            command_validity_secs: 600,
            delivery_deadline_secs: 3600,
            enrollment_hours: 24,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("data"),
            database_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allowed_hosts: Vec::new(),
            auth: AuthSettings::default(),
            tls: TlsSettings::default(),
            fluvio: FluvioSettings::default(),
            assets: AssetDirs::default(),
            rules: RuleSettings::default(),
            ingest: IngestSettings::default(),
            triage: TriageSettings::default(),
            response: ResponseSettings::default(),
        }
    }
}

/// Sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// How long a dashboard session lasts from sign-in.
    pub session_hours: u32,
    /// The first admin's password, used once, when the database has no user yet. Unset: one
    /// is generated, printed once, and must be changed at first sign-in.
    #[serde(skip_serializing)]
    pub admin_password: Option<secrecy::SecretString>,
    /// Mark the session cookie `Secure` while serving plain HTTP (behind a TLS proxy);
    /// always on with `[tls]`.
    pub secure_cookies: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            session_hours: 12,
            admin_password: None,
            secure_cookies: false,
        }
    }
}

/// TLS for the gateway, from PEM files; both or neither.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FluvioSettings {
    /// Fluvio SC endpoint, e.g. `127.0.0.1:9003`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Where the Fluvio roles keep replay checkpoints; `None`: `checkpoints` in `data_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_dir: Option<PathBuf>,
}

/// Directories that replace the shipped (embedded) files of each kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssetDirs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smartmodules: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indicators: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<PathBuf>,
    /// A response policy file replacing the shipped `processor/policy/response.yaml`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_policy: Option<PathBuf>,
}

fn pick(dir: &Option<PathBuf>, shipped: fn() -> Assets, what: &str) -> Result<Assets> {
    match dir {
        Some(d) => Assets::dir(d).with_context(|| format!("{what} directory")),
        None => Ok(shipped()),
    }
}

impl AssetDirs {
    pub fn smartmodules(&self) -> Result<Assets> {
        pick(
            &self.smartmodules,
            soc_core::stream::shipped::smartmodules,
            "SmartModule",
        )
    }
    pub fn rules(&self) -> Result<Assets> {
        pick(&self.rules, soc_processor::rules::shipped_rules, "rules")
    }
    pub fn indicators(&self) -> Result<Assets> {
        pick(
            &self.indicators,
            soc_processor::ioc::shipped_indicators,
            "indicator list",
        )
    }
    pub fn deployment(&self) -> Result<Assets> {
        pick(
            &self.deployment,
            soc_core::stream::shipped::deployment,
            "deployment config",
        )
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleSettings {
    /// Tuning by rule id.
    pub overrides: BTreeMap<String, RuleOverride>,
}

/// How lines enter the raw topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// Longer lines are cut to this many bytes and set aside in full size in `dead-letters`.
    pub max_line_bytes: usize,
    /// Bytes received by the live connectors and not yet durable; beyond it TCP senders
    /// wait, HTTP senders get 503 and UDP datagrams are dropped (and counted).
    pub max_pending_bytes: usize,
    /// The year of each replayed file whose timestamps have none (an archive from an
    /// earlier year), by path as given to `--replay`; `--year` sets it for all.
    pub replay_years: BTreeMap<PathBuf, i32>,
    pub syslog: SyslogSettings,
    pub http: HttpIngestSettings,
    pub tail: TailSettings,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            max_line_bytes: soc_connectors::replay::DEFAULT_MAX_LINE_BYTES,
            max_pending_bytes: soc_connectors::sink::SinkConfig::default().max_pending_bytes,
            replay_years: BTreeMap::new(),
            syslog: SyslogSettings::default(),
            http: HttpIngestSettings::default(),
            tail: TailSettings::default(),
        }
    }
}

/// Syslog listeners; each one is off until given an address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogSettings {
    /// UDP address, e.g. `127.0.0.1:5514` (`--syslog-udp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<SocketAddr>,
    /// TCP address, octet counting or one message per line (`--syslog-tcp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<SocketAddr>,
    /// TLS address (`--syslog-tls`); needs `tls_cert` and `tls_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<SocketAddr>,
    /// Certificate chain (PEM, leaf first) of the TLS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of the TLS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// TCP and TLS connections served at once, per listener.
    pub max_connections: usize,
}

impl Default for SyslogSettings {
    fn default() -> Self {
        SyslogSettings {
            udp: None,
            tcp: None,
            tls: None,
            tls_cert: None,
            tls_key: None,
            max_connections: soc_connectors::syslog::default_max_connections(),
        }
    }
}

/// The HTTP ingest endpoint; off until given an address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpIngestSettings {
    /// Address, e.g. `127.0.0.1:8088` (`--http-ingest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// One token per sending source, by name: `web1 = "a long random string"`. Printed
    /// redacted.
    #[serde(skip_serializing)]
    pub tokens: BTreeMap<String, secrecy::SecretString>,
    /// Larger bodies (before or after gzip) are refused with 413.
    pub max_body_bytes: usize,
    /// Serve HTTPS with the `[tls]` certificate and key.
    pub tls: bool,
}

impl Default for HttpIngestSettings {
    fn default() -> Self {
        HttpIngestSettings {
            listen: None,
            tokens: BTreeMap::new(),
            max_body_bytes: soc_connectors::http::default_max_body_bytes(),
            tls: false,
        }
    }
}

impl PartialEq for HttpIngestSettings {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret;
        self.listen == other.listen
            && self.max_body_bytes == other.max_body_bytes
            && self.tls == other.tls
            && self.tokens.len() == other.tokens.len()
            && self
                .tokens
                .iter()
                .zip(&other.tokens)
                .all(|((a, x), (b, y))| a == b && x.expose_secret() == y.expose_secret())
    }
}

/// Files to follow; off until given a pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailSettings {
    /// Glob patterns (`--tail`), e.g. `/var/log/auth.log*`: include rotated names so lines
    /// written just before a rotation are still read.
    pub include: Vec<String>,
    /// Patterns never followed (compressed rotations by default).
    pub exclude: Vec<String>,
    /// `beginning` or `end`: where to start in files found at the first start that have no
    /// checkpoint. Files that appear later are always read from their start.
    pub read_from: ReadFrom,
    /// How often the patterns are matched again and the files read, in milliseconds.
    pub poll_interval_ms: u64,
}

/// Where to start in a file met for the first time at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    #[default]
    Beginning,
    End,
}

impl Default for TailSettings {
    fn default() -> Self {
        TailSettings {
            include: Vec::new(),
            exclude: soc_connectors::tail::default_exclude(),
            read_from: ReadFrom::Beginning,
            poll_interval_ms: 250,
        }
    }
}

impl IngestSettings {
    /// The year to give a replayed file's year-less timestamps: `--year`, else the file's
    /// entry in `replay_years` (matched as given, then by canonical path).
    pub fn year_of(&self, file: &std::path::Path, flag: Option<i32>) -> Option<i32> {
        flag.or_else(|| self.replay_years.get(file).copied())
            .or_else(|| {
                let canonical = std::fs::canonicalize(file).ok()?;
                self.replay_years
                    .iter()
                    .find(|(p, _)| std::fs::canonicalize(p).ok().as_ref() == Some(&canonical))
                    .map(|(_, y)| *y)
            })
    }
}

/// Flags every command takes; each one overrides the file and the environment.
#[derive(Args, Clone, Debug, Default)]
pub struct ConfigArgs {
    /// Configuration file (TOML); default: ./soc.toml when it exists.
    #[arg(long, env = "SOC_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Where the embedded log and the SQLite database live [data_dir].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL; default SQLite in the data directory [database_url].
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Address of the dashboard and API [listen].
    #[arg(long, global = true)]
    pub listen: Option<SocketAddr>,
    /// Fluvio SC endpoint, e.g. 127.0.0.1:9003 [fluvio.endpoint].
    #[arg(long = "fluvio", global = true)]
    pub fluvio_endpoint: Option<String>,
    /// Directory of SmartModule `.wasm` files replacing the shipped ones [assets.smartmodules].
    #[arg(long, global = true)]
    pub smartmodules: Option<PathBuf>,
    /// Directory of rule files replacing the shipped rules [assets.rules].
    #[arg(long, global = true)]
    pub rules_dir: Option<PathBuf>,
    /// Directory of indicator lists (`*.txt`) replacing the shipped ones [assets.indicators].
    #[arg(long, global = true)]
    pub ioc_dir: Option<PathBuf>,
    /// Deployment config (chain.yaml, topics/*.yaml) replacing the shipped one
    /// [assets.deployment].
    #[arg(long, global = true)]
    pub deployment_dir: Option<PathBuf>,
    /// Response policy (when each action may be proposed) replacing the shipped one
    /// [assets.response_policy].
    #[arg(long, global = true)]
    pub response_policy: Option<PathBuf>,
    /// Rule tuning, e.g. `soc/ssh-bruteforce:threshold=3,window_secs=30` (repeatable)
    /// [rules.overrides].
    #[arg(long = "rule-override", global = true)]
    pub rule_overrides: Vec<String>,
    /// LLM server profile: groq, openai, ollama, vllm or llama.cpp [triage.profile].
    #[arg(long, global = true)]
    pub llm_profile: Option<String>,
    /// OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1 [triage.base_url].
    #[arg(long, global = true)]
    pub llm_base_url: Option<String>,
    /// Model name, e.g. openai/gpt-oss-20b [triage.model].
    #[arg(long, global = true)]
    pub llm_model: Option<String>,
    /// Never call a model: every alert keeps the deterministic verdict [triage.enabled].
    #[arg(long, global = true)]
    pub no_llm: bool,
}

impl ConfigArgs {
    /// The flags that are set, as key paths.
    fn flags(&self) -> Result<Figment> {
        let mut f = Figment::new();
        fn set<T: Serialize>(f: Figment, key: &str, v: &Option<T>) -> Figment {
            match v {
                Some(v) => f.merge(Serialized::default(key, v)),
                None => f,
            }
        }
        f = set(f, "data_dir", &self.data_dir);
        f = set(f, "database_url", &self.database_url);
        f = set(f, "listen", &self.listen);
        f = set(f, "fluvio.endpoint", &self.fluvio_endpoint);
        f = set(f, "assets.smartmodules", &self.smartmodules);
        f = set(f, "assets.rules", &self.rules_dir);
        f = set(f, "assets.indicators", &self.ioc_dir);
        f = set(f, "assets.deployment", &self.deployment_dir);
        f = set(f, "assets.response_policy", &self.response_policy);
        if let Some(p) = &self.llm_profile {
            let profile = Profile::parse(p).with_context(|| {
                format!("unknown LLM profile `{p}` (groq, openai, ollama, vllm, llama.cpp)")
            })?;
            f = f.merge(Serialized::default("triage.profile", profile));
        }
        f = set(f, "triage.base_url", &self.llm_base_url);
        f = set(f, "triage.model", &self.llm_model);
        if self.no_llm {
            f = f.merge(Serialized::default("triage.enabled", false));
        }
        if !self.rule_overrides.is_empty() {
            let overrides = parse_overrides(&self.rule_overrides)?;
            f = f.merge(Serialized::default("rules.overrides", overrides));
        }
        Ok(f)
    }

    /// The layered configuration: defaults, file, environment, flags.
    pub fn load(&self) -> Result<Settings> {
        self.load_from(Env::prefixed("SOC_"), Env::raw())
    }

    fn load_from(&self, soc_env: Env, raw_env: Env) -> Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        let file = match &self.config {
            Some(f) => {
                if !f.is_file() {
                    anyhow::bail!("configuration file {} does not exist", f.display());
                }
                Some(f.clone())
            }
            None => Some(PathBuf::from(IMPLICIT_FILE)).filter(|p| p.is_file()),
        };
        if let Some(file) = &file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let soc_env = soc_env
            .filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                KEYS.iter()
                    .any(|top| k == *top || k.starts_with(&format!("{top}__")))
            })
            .split("__");
        let raw_env = raw_env.only(&["DATABASE_URL", "FLUVIO_ENDPOINT"]).map(|k| {
            match k.as_str().to_ascii_uppercase().as_str() {
                "FLUVIO_ENDPOINT" => "fluvio.endpoint".into(),
                _ => "database_url".into(),
            }
        });
        figment = figment.merge(raw_env).merge(soc_env).merge(self.flags()?);
        let settings: Settings = figment.extract().map_err(|e| {
            // figment names the offending key and the layer it came from.
            anyhow::anyhow!("configuration: {e}")
        })?;
        Ok(settings)
    }
}

impl Settings {
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) if !u.is_empty() => u.clone(),
            _ => format!("sqlite://{}/soc.sqlite", self.data_dir.display()),
        }
    }

    /// Where the Fluvio roles keep replay checkpoints.
    pub fn fluvio_checkpoint_dir(&self) -> PathBuf {
        self.fluvio
            .checkpoint_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("checkpoints"))
    }

    pub fn fluvio_endpoint(&self) -> Result<&str> {
        self.fluvio.endpoint.as_deref().filter(|e| !e.is_empty()).context(
            "no Fluvio endpoint: set --fluvio, FLUVIO_ENDPOINT or fluvio.endpoint in the config file",
        )
    }

    /// The effective configuration as TOML, with secrets redacted: the API key is shown as
    /// set or not, a database password as `***`.
    pub fn to_redacted_toml(&self) -> Result<String> {
        let mut value = toml::Value::try_from(self).context("serializing the configuration")?;
        if let Some(url) = &self.database_url {
            value["database_url"] = toml::Value::String(redact_url(url));
        }
        let key = match &self.triage.api_key {
            Some(_) => "[redacted]",
            None => "",
        };
        if let Some(triage) = value.get_mut("triage").and_then(|t| t.as_table_mut()) {
            triage.insert("api_key".into(), toml::Value::String(key.into()));
        }
        if let Some(tokens) = value
            .get_mut("ingest")
            .and_then(|i| i.get_mut("http"))
            .and_then(|h| h.as_table_mut())
        {
            let names: toml::map::Map<String, toml::Value> = self
                .ingest
                .http
                .tokens
                .keys()
                .map(|k| (k.clone(), toml::Value::String("[redacted]".into())))
                .collect();
            tokens.insert("tokens".into(), toml::Value::Table(names));
        }
        if self.auth.admin_password.is_some() {
            if let Some(auth) = value.get_mut("auth").and_then(|t| t.as_table_mut()) {
                auth.insert(
                    "admin_password".into(),
                    toml::Value::String("[redacted]".into()),
                );
            }
        }
        toml::to_string_pretty(&value).context("printing the configuration")
    }

    /// The gateway's sign-in behaviour.
    pub fn auth_state(&self) -> soc_gateway::AuthState {
        soc_gateway::AuthState {
            session_ttl: chrono::Duration::hours(i64::from(self.auth.session_hours.max(1))),
            secure_cookies: self.auth.secure_cookies || self.tls.cert.is_some(),
            ..soc_gateway::AuthState::default()
        }
    }

    /// The gateway's TLS configuration, when `[tls]` names a certificate and key.
    pub fn tls_config(&self) -> Result<Option<soc_gateway::rustls::ServerConfig>> {
        match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => Ok(Some(soc_gateway::tls::server_config(cert, key)?)),
            (None, None) => Ok(None),
            _ => anyhow::bail!("[tls] needs both `cert` and `key`"),
        }
    }

    /// The processor's settings: the shipped or configured rules, indicators, chain and triage.
    /// The rules the processor runs, described for the gateway.
    pub fn rule_catalog(&self) -> Result<soc_gateway::routes::rules::RuleCatalog> {
        let rules =
            soc_processor::rules::load_rule_families(&self.assets.rules()?, &self.rules.overrides)
                .context("loading the rules")?;
        Ok(soc_gateway::routes::rules::RuleCatalog(
            rules
                .into_iter()
                .map(|(family, r)| soc_gateway::routes::rules::RuleInfo {
                    id: r.id,
                    family,
                    title: r.title,
                    description: r.description,
                    severity: r.severity.as_str().to_string(),
                    mitre: r.mitre,
                    references: r.references,
                })
                .collect(),
        ))
    }

    /// The catalog, or an empty one when the rules do not load: the gateway only describes
    /// rules, and the processor, which runs them, fails loudly on the same error.
    pub fn rule_catalog_or_empty(&self) -> soc_gateway::routes::rules::RuleCatalog {
        self.rule_catalog().unwrap_or_else(|e| {
            tracing::warn!(error = %format!("{e:#}"), "rules not described to the dashboard");
            soc_gateway::routes::rules::RuleCatalog::default()
        })
    }

    /// The response policy: the configured file, or the shipped one.
    pub fn response_policy(
        &self,
    ) -> Result<std::sync::Arc<soc_processor::response::ResponsePolicy>> {
        Ok(match &self.assets.response_policy {
            Some(path) => std::sync::Arc::new(
                soc_processor::response::ResponsePolicy::load(path)
                    .context("loading the response policy")?,
            ),
            None => self.triage.response.clone(),
        })
    }

    /// The command-signing keyring's file.
    pub fn signing_key_path(&self) -> PathBuf {
        self.response
            .signing_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("response-signing.key"))
    }

    /// The gateway's side of response: the policy's limits and protected lists, the
    /// signing key (created when missing), the timing.
    pub fn response_service(
        &self,
        db: sea_orm::DatabaseConnection,
        hub: std::sync::Arc<soc_gateway::AlertHub>,
    ) -> Result<soc_gateway::response::ResponseService> {
        let policy = self.response_policy()?;
        let key_path = self.signing_key_path();
        let keyring = soc_gateway::response::keyring::load_or_create(&key_path)
            .context("loading the command-signing keys")?;
        let r = &self.response;
        if r.command_validity_secs == 0 || r.command_validity_secs > 900 {
            anyhow::bail!(
                "[response] command_validity_secs must be 1 to 900 (agents refuse longer)"
            );
        }
        let config = soc_gateway::response::ResponseConfig {
            enabled: policy.enabled,
            limits: policy.limits.clone(),
            protected_networks: policy.protected_networks().to_vec(),
            protected_users: policy.protected_users().to_vec(),
            command_validity: chrono::Duration::seconds(i64::from(r.command_validity_secs)),
            delivery_deadline: chrono::Duration::seconds(i64::from(
                r.delivery_deadline_secs.max(1),
            )),
            enrollment_ttl: chrono::Duration::hours(i64::from(r.enrollment_hours.clamp(1, 168))),
        };
        Ok(
            soc_gateway::response::ResponseService::new(db, hub, config, keyring)
                .with_keyring_file(key_path),
        )
    }

    pub fn processor(&self) -> Result<soc_processor::ProcessorSettings> {
        let mut triage = self.triage.clone();
        triage.response = self.response_policy()?;
        Ok(soc_processor::ProcessorSettings {
            chain: soc_core::stream::config::chain_from(&self.assets.deployment()?)?,
            rules: self.assets.rules()?,
            indicators: self.assets.indicators()?,
            rule_overrides: self.rules.overrides.clone(),
            triage,
            ..soc_processor::ProcessorSettings::default()
        })
    }
}

/// `ID:key=value,...` flags into rule overrides.
pub fn parse_overrides(specs: &[String]) -> Result<BTreeMap<String, RuleOverride>> {
    let mut out: BTreeMap<String, RuleOverride> = BTreeMap::new();
    for spec in specs.iter().filter(|s| !s.trim().is_empty()) {
        let (id, params) = spec
            .split_once(':')
            .with_context(|| format!("rule override `{spec}`: expected ID:key=value,..."))?;
        let o = out.entry(id.trim().to_string()).or_default();
        for kv in params.split(',') {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("rule override `{spec}`: `{kv}` is not key=value"))?;
            let v: u64 = v
                .trim()
                .parse()
                .with_context(|| format!("rule override `{spec}`: `{v}` is not a number"))?;
            match k.trim() {
                "threshold" => o.threshold = Some(v),
                "window_secs" => o.window_secs = Some(v),
                other => {
                    anyhow::bail!(
                        "rule override `{spec}`: unknown key `{other}` (threshold, window_secs)"
                    )
                }
            }
        }
    }
    Ok(out)
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
// figment's `Jail` closures return its `figment::Error` by value.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;
    use secrecy::ExposeSecret;

    fn load(args: &ConfigArgs) -> std::result::Result<Settings, figment::Error> {
        args.load_from(Env::prefixed("SOC_"), Env::raw())
            .map_err(|e| figment::Error::from(e.to_string()))
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let from_example: Settings = Figment::from(Toml::string(EXAMPLE))
            .extract()
            .expect("the example parses");
        assert_eq!(
            toml::Value::try_from(&from_example).expect("toml"),
            toml::Value::try_from(Settings::default()).expect("toml"),
            "launcher/soc.example.toml must list the defaults"
        );
    }

    #[test]
    fn flags_beat_environment_beats_file_beats_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "soc.toml",
                r#"
listen = "127.0.0.1:9000"
data_dir = "from-file"
[triage]
model = "file-model"
base_url = "http://file.invalid/v1"
[rules.overrides]
"soc/ssh-bruteforce" = { threshold = 7 }
"#,
            )?;
            jail.set_env("SOC_DATA_DIR", "from-env");
            jail.set_env("SOC_TRIAGE__MODEL", "env-model");
            jail.set_env("SOC_LOG", "debug"); // not configuration: ignored
            let args = ConfigArgs {
                llm_model: Some("flag-model".into()),
                ..ConfigArgs::default()
            };
            let s = load(&args)?;
            assert_eq!(s.listen.port(), 9000);
            assert_eq!(s.data_dir, PathBuf::from("from-env"));
            assert_eq!(
                s.fluvio_checkpoint_dir(),
                PathBuf::from("from-env/checkpoints"),
                "checkpoints follow the data directory unless set"
            );
            assert_eq!(s.triage.model, "flag-model");
            assert_eq!(s.triage.base_url, "http://file.invalid/v1");
            assert_eq!(s.triage.max_retries, 3, "untouched keys keep their default");
            assert_eq!(s.rules.overrides["soc/ssh-bruteforce"].threshold, Some(7));
            let s = load(&ConfigArgs::default())?;
            assert_eq!(s.triage.model, "env-model");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        Jail::expect_with(|jail| {
            jail.create_file("soc.toml", "[triage]\nmodle = \"x\"\n")?;
            let err = load(&ConfigArgs::default()).expect_err("typo refused");
            assert!(err.to_string().contains("modle"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_api_key_never_reaches_debug_or_the_printed_config() {
        Jail::expect_with(|jail| {
            jail.set_env("SOC_TRIAGE__API_KEY", "gsk_live_secret_value");
            jail.set_env("DATABASE_URL", "postgres://soc:hunter2@db:5432/soc");
            jail.set_env("SOC_INGEST__HTTP__TOKENS__APPS", "ingest_token_value");
            let s = load(&ConfigArgs::default())?;
            assert_eq!(
                s.ingest.http.tokens["apps"].expose_secret(),
                "ingest_token_value"
            );
            assert_eq!(
                s.triage
                    .api_key
                    .as_ref()
                    .map(|k| k.expose_secret().to_string())
                    .as_deref(),
                Some("gsk_live_secret_value")
            );
            let debug = format!("{s:?}");
            let printed = s.to_redacted_toml().expect("toml");
            for out in [&debug, &printed] {
                assert!(!out.contains("gsk_live_secret_value"), "{out}");
                assert!(!out.contains("ingest_token_value"), "{out}");
            }
            // The token's source is named, its value is not.
            assert!(printed.contains("apps = \"[redacted]\""), "{printed}");
            assert!(!printed.contains("hunter2"), "{printed}");
            assert!(printed.contains("api_key = \"[redacted]\""), "{printed}");
            assert!(
                printed.contains("postgres://soc:***@db:5432/soc"),
                "{printed}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let args = ConfigArgs {
            config: Some(PathBuf::from("/nonexistent/soc.toml")),
            ..ConfigArgs::default()
        };
        assert!(args.load().is_err());
    }

    #[test]
    fn overrides_parse_and_typos_fail() {
        let o = parse_overrides(&["soc/ssh-bruteforce:threshold=3,window_secs=30".into()])
            .expect("valid");
        assert_eq!(o["soc/ssh-bruteforce"].window_secs, Some(30));
        assert!(parse_overrides(&["soc/x:thresold=3".into()]).is_err());
        assert!(parse_overrides(&["soc/x".into()]).is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://soc:s3cret@db:5432/soc"),
            "postgres://soc:***@db:5432/soc"
        );
        assert_eq!(
            redact_url("sqlite://data/soc.sqlite"),
            "sqlite://data/soc.sqlite"
        );
    }
}
