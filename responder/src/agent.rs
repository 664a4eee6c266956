//! The agent's life: enroll once, then stay connected to the gateway (reconnecting with
//! backoff), take commands, answer each, and keep enforcing what it applied whether or not
//! the gateway is there (the kernel expires blocks on its own).

use crate::executor::{Checked, Executor, ExecutorConfig};
use crate::firewall::Firewall;
use crate::settings::AgentSettings;
use chrono::Utc;
use futures_util::{FutureExt, SinkExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use soc_core::command::keys::SignedKeySet;
use soc_core::command::{AgentMessage, GatewayMessage, PublicKey, SignedCommand, TrustedKeys};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tracing::{info, warn};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Who this agent is to the gateway: written once at enrollment (mode 0600).
#[derive(Debug, Deserialize)]
pub struct Identity {
    pub agent_id: String,
    pub host: String,
    /// Never logged: `Debug` redacts it.
    pub credential: SecretString,
    pub keys: Vec<PublicKey>,
    /// The version of the gateway's key set `keys` came from (0: enrolled before versions).
    #[serde(default)]
    pub keys_version: u64,
}

#[derive(Serialize)]
struct IdentityFile<'a> {
    agent_id: &'a str,
    host: &'a str,
    credential: &'a str,
    keys: &'a [PublicKey],
    keys_version: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{}: {source}", path.display())]
    Identity {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    IdentityFormat { path: PathBuf, message: String },
    #[error("enrollment: {0}")]
    Enroll(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Executor(#[from] crate::executor::ExecutorError),
}

pub fn identity_path(state_dir: &Path) -> PathBuf {
    state_dir.join("identity.json")
}

impl Identity {
    pub fn load(state_dir: &Path) -> Result<Identity, AgentError> {
        let path = identity_path(state_dir);
        let text = std::fs::read_to_string(&path).map_err(|source| AgentError::Identity {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| AgentError::IdentityFormat {
            path,
            message: e.to_string(),
        })
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), AgentError> {
        let path = identity_path(state_dir);
        let io = |source| AgentError::Identity {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        let text = serde_json::to_string_pretty(&IdentityFile {
            agent_id: &self.agent_id,
            host: &self.host,
            credential: self.credential.expose_secret(),
            keys: &self.keys,
            keys_version: self.keys_version,
        })
        .map_err(|e| AgentError::IdentityFormat {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

/// The TLS client configuration: the public roots, plus `ca_cert` when set.
fn tls_config(settings: &AgentSettings) -> Result<Arc<rustls::ClientConfig>, AgentError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &settings.ca_cert {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| AgentError::Tls(format!("{}: {e}", path.display())))?;
        for c in certs {
            let c = c.map_err(|e| AgentError::Tls(format!("{}: {e}", path.display())))?;
            roots
                .add(c)
                .map_err(|e| AgentError::Tls(format!("{}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AgentError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Deserialize)]
struct Enrolled {
    agent_id: String,
    host: String,
    credential: SecretString,
    keys: Vec<PublicKey>,
    #[serde(default)]
    keys_version: u64,
}

/// Spends a one-time token at the gateway and stores the identity it returns.
pub async fn enroll(settings: &AgentSettings, token: &str) -> Result<Identity, AgentError> {
    let mut client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .use_preconfigured_tls((*tls_config(settings)?).clone());
    if settings.gateway.starts_with("http://") {
        client = client.https_only(false);
    }
    let client = client
        .build()
        .map_err(|e| AgentError::Enroll(e.to_string()))?;
    let url = format!(
        "{}/api/agents/enroll",
        settings.gateway.trim_end_matches('/')
    );
    let resp = client
        .post(&url)
        .json(&serde_json::json!({ "token": token, "version": VERSION }))
        .send()
        .await
        .map_err(|e| AgentError::Enroll(format!("{url}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(AgentError::Enroll(format!(
            "{url}: {status}: {}",
            body.chars().take(300).collect::<String>()
        )));
    }
    let e: Enrolled = resp
        .json()
        .await
        .map_err(|e| AgentError::Enroll(format!("{url}: {e}")))?;
    TrustedKeys::new(&e.keys).map_err(AgentError::Enroll)?;
    let id = Identity {
        agent_id: e.agent_id,
        host: e.host,
        credential: e.credential,
        keys: e.keys,
        keys_version: e.keys_version,
    };
    id.save(&settings.state_dir)?;
    Ok(id)
}

/// The gateway's addresses: never blocked, and kept reachable by isolation.
pub async fn gateway_addrs(settings: &AgentSettings) -> Vec<SocketAddr> {
    let Ok(url) = url::Url::parse(&settings.gateway) else {
        return Vec::new();
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return Vec::new();
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let found = tokio::net::lookup_host(addr).await;
    match found {
        Ok(addrs) => addrs.collect(),
        Err(e) => {
            warn!(gateway = %settings.gateway, error = %e, "cannot resolve the gateway");
            Vec::new()
        }
    }
}

/// The executor for this host, from the settings and identity.
pub async fn executor(
    settings: &AgentSettings,
    identity: &Identity,
) -> Result<Executor, AgentError> {
    let keys = TrustedKeys::new(&identity.keys).map_err(|message| AgentError::IdentityFormat {
        path: identity_path(&settings.state_dir),
        message,
    })?;
    let cfg = ExecutorConfig {
        agent_id: identity.agent_id.clone(),
        keys,
        guard: settings.guard.clone(),
        dry_run: settings.dry_run,
        enabled: settings.enabled,
        gateway: gateway_addrs(settings).await,
        state_dir: settings.state_dir.clone(),
        usermod: settings.usermod.clone(),
        passwd: settings.passwd.clone(),
    };
    let fw = Firewall::new(settings.nft.clone(), settings.table.clone());
    Ok(Executor::open(cfg, fw, Utc::now()).await?)
}

/// Runs until shutdown: connected when the gateway is there, enforcing either way.
pub async fn run(
    settings: AgentSettings,
    mut identity: Identity,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let ex = Arc::new(executor(&settings, &identity).await?);
    let tls = if settings.gateway.starts_with("https://") {
        Some(tls_config(&settings)?)
    } else {
        None
    };
    info!(agent = %identity.agent_id, host = %identity.host, gateway = %settings.gateway, dry_run = settings.dry_run, "agent starting");
    if !settings.dry_run {
        let (ex, every, mut stop) = (
            ex.clone(),
            Duration::from_secs(settings.reassert_secs.max(1)),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(e) = ex.reassert(Utc::now()).await {
                    warn!(error = %e, "cannot check the firewall table");
                }
            }
        });
    }
    let mut backoff = Duration::from_secs(1);
    let max = Duration::from_secs(settings.max_backoff_secs.max(1));
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let started = tokio::time::Instant::now();
        match session(&settings, &mut identity, &ex, tls.clone(), &mut shutdown).await {
            Ok(()) => return Ok(()),
            Err(e) => warn!(error = %e, "disconnected from the gateway"),
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        // Full jitter, so many agents do not reconnect in step after a gateway restart.
        let wait = backoff.mul_f64(0.5 + jitter() * 0.5);
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(max);
    }
}

fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

async fn send(tx: &mut Sink, msg: &AgentMessage) -> Result<(), String> {
    let text = serde_json::to_string(msg).map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(10), tx.send(Message::text(text)))
        .await
        .map_err(|_| "sending timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// Adopts a key set the gateway sent if a key this agent trusts signed it and it is newer
/// than the one held: stored first, then used. Returns the version adopted.
fn adopt_keys(
    settings: &AgentSettings,
    identity: &mut Identity,
    ex: &Executor,
    signed: &SignedKeySet,
) -> Option<u64> {
    let set = match ex
        .trusted_keys()
        .accept_keyset(signed, identity.keys_version)
    {
        Ok(set) => set,
        Err(e) => {
            metrics::counter!("soc_agent_keysets_refused_total").increment(1);
            warn!(error = %e, held = identity.keys_version, "key set from the gateway refused; keeping the keys held");
            return None;
        }
    };
    let keys = TrustedKeys::new(&set.keys).ok()?;
    let before = (identity.keys.clone(), identity.keys_version);
    identity.keys = set.keys.clone();
    identity.keys_version = set.version;
    // Stored before use: after a restart the agent trusts what it last adopted.
    if let Err(e) = identity.save(&settings.state_dir) {
        warn!(error = %e, "cannot store the new key set; keeping the keys held");
        (identity.keys, identity.keys_version) = before;
        return None;
    }
    ex.set_keys(keys);
    info!(version = set.version, keys = ?ex.trusted_keys().key_ids(), "adopted the gateway's key set");
    Some(set.version)
}

/// The most commands taken together into one run (one nftables transaction for blocks).
const BATCH: usize = 5000;

async fn session(
    settings: &AgentSettings,
    identity: &mut Identity,
    ex: &Executor,
    tls: Option<Arc<rustls::ClientConfig>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let mut req = settings
        .ws_url()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    let bearer = format!("Bearer {}", identity.credential.expose_secret());
    req.headers_mut().insert(
        "authorization",
        bearer
            .parse()
            .map_err(|_| "credential is not a header value")?,
    );
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(16 << 20);
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_tungstenite::connect_async_tls_with_config(req, Some(config), false, connector),
    )
    .await
    .map_err(|_| "connecting timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = ws.split();
    send(
        &mut tx,
        &AgentMessage::Hello {
            version: VERSION.into(),
            host: identity.host.clone(),
            dry_run: settings.dry_run,
            keys_version: identity.keys_version,
        },
    )
    .await?;
    for r in ex.unacknowledged(Utc::now()).await {
        send(&mut tx, &AgentMessage::Report(r)).await?;
    }
    let mut heartbeat = tokio::time::interval(Duration::from_secs(settings.heartbeat_secs.max(1)));
    loop {
        let first = tokio::select! {
            _ = shutdown.changed() => {
                let _ = tx.send(Message::Close(None)).await;
                return Ok(());
            }
            _ = heartbeat.tick() => {
                send(&mut tx, &AgentMessage::Heartbeat { at: Utc::now() }).await?;
                continue;
            }
            m = rx.next() => m,
        };
        let mut texts = Vec::new();
        let mut next = first;
        loop {
            match next {
                Some(Ok(Message::Text(t))) => texts.push(t.to_string()),
                Some(Ok(Message::Ping(p))) => {
                    tx.send(Message::Pong(p)).await.map_err(|e| e.to_string())?
                }
                Some(Ok(Message::Close(c))) => {
                    return Err(format!("closed by the gateway: {c:?}"));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("connection closed".into()),
            }
            // What has already arrived goes in the same run.
            if texts.len() >= BATCH {
                break;
            }
            match rx.next().now_or_never() {
                Some(m) => next = m,
                None => break,
            }
        }
        handle(settings, identity, ex, &mut tx, texts).await?;
    }
}

async fn handle(
    settings: &AgentSettings,
    identity: &mut Identity,
    ex: &Executor,
    tx: &mut Sink,
    texts: Vec<String>,
) -> Result<(), String> {
    // Commands are checked together (one journal sync) up to the next message that must
    // be handled in order, such as a new key set.
    let mut pending: Vec<SignedCommand> = Vec::new();
    let mut run = Vec::new();
    for t in texts {
        match serde_json::from_str::<GatewayMessage>(&t) {
            Ok(GatewayMessage::Command(signed)) => pending.push(signed),
            Ok(GatewayMessage::Welcome { agent, host }) => {
                info!(agent = %agent, host = %host, "connected to the gateway");
            }
            Ok(GatewayMessage::Ack { command }) => ex.acknowledged(command).await,
            Ok(GatewayMessage::Keys(signed)) => {
                check(ex, tx, std::mem::take(&mut pending), &mut run).await?;
                if let Some(version) = adopt_keys(settings, identity, ex, &signed) {
                    send(tx, &AgentMessage::KeysAdopted { version }).await?;
                }
            }
            Err(e) => warn!(error = %e, "unreadable message from the gateway"),
        }
    }
    check(ex, tx, pending, &mut run).await?;
    if !run.is_empty() {
        for r in ex.run(run, Utc::now()).await {
            send(tx, &AgentMessage::Report(r)).await?;
        }
    }
    Ok(())
}

/// Checks commands, answers the refused and repeated ones, says `accepted` for the rest
/// (before running: a crash from then on is answered after restart) and queues them.
async fn check(
    ex: &Executor,
    tx: &mut Sink,
    commands: Vec<SignedCommand>,
    run: &mut Vec<crate::executor::Accepted>,
) -> Result<(), String> {
    if commands.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    for checked in ex.check_many(&commands, now).await {
        match checked {
            Checked::Done(reports) => {
                for r in reports {
                    send(tx, &AgentMessage::Report(r)).await?;
                }
            }
            Checked::Run(a) => {
                send(tx, &AgentMessage::Report(ex.accepted(&a, now))).await?;
                run.push(a);
            }
        }
    }
    Ok(())
}
