//! The gateway's side of the response loop: approved actions become signed commands for the
//! agent on the action's host, are delivered when that agent is connected (again after every
//! reconnect until it answers), and the agent's reports move the actions on. Every change
//! goes out on the analysts' WebSocket.
//!
//! - [`dispatch`]: approved → dispatched, delivery, expiry.
//! - [`reports`]: what an agent says about a command.
//! - [`agent_ws`]: the agents' WebSocket.
//! - [`enrollment`]: one-time tokens and agent credentials.
//! - [`keyring`]: the signing keys' file, rotation and retirement.

pub mod agent_ws;
pub mod dispatch;
pub mod enrollment;
pub mod keyring;
pub mod reports;

use crate::hub::AlertHub;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sea_orm::DatabaseConnection;
use serde::Serialize;
use soc_core::clock::Clock;
use soc_core::command::keys::Keyring;
use soc_core::command::{GatewayMessage, PublicKey};
use soc_core::db::{action, action_transition, agent_command};
use soc_core::response::Limits;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{mpsc, Notify};

/// How response behaves at the gateway.
#[derive(Debug, Clone)]
pub struct ResponseConfig {
    /// The policy file's switch; the runtime switch (`/api/response/switch`) is separate.
    pub enabled: bool,
    pub limits: Limits,
    /// Never the target of an action proposed by hand.
    pub protected_networks: Vec<IpNet>,
    pub protected_users: Vec<String>,
    /// How long a signed command stays valid (agents refuse longer than 15 minutes).
    pub command_validity: chrono::Duration,
    /// How long a dispatched action waits for its agent to connect before it expires.
    pub delivery_deadline: chrono::Duration,
    /// How long an enrollment token stays usable.
    pub enrollment_ttl: chrono::Duration,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            enabled: true,
            limits: Limits::default(),
            protected_networks: Vec::new(),
            protected_users: vec!["root".into()],
            command_validity: chrono::Duration::minutes(10),
            delivery_deadline: chrono::Duration::hours(1),
            enrollment_ttl: chrono::Duration::hours(24),
        }
    }
}

/// A connected agent's outgoing queue.
struct Link {
    session: u64,
    tx: mpsc::Sender<GatewayMessage>,
}

/// Shared by the dispatcher, the agents' sessions and the action routes.
pub struct ResponseService {
    pub config: ResponseConfig,
    keyring: RwLock<Arc<Keyring>>,
    /// Where the keyring came from, watched for rotations; `None` for a ring given in code.
    keyring_file: Option<keyring::KeyringFile>,
    pub db: DatabaseConnection,
    pub hub: Arc<AlertHub>,
    links: Mutex<HashMap<String, Link>>,
    next_session: AtomicU64,
    wake: Notify,
    pub clock: Clock,
    /// Proposals already announced, by id with their creation time: the dispatcher
    /// announces what the processor records, the routes what they make.
    pub(crate) announced: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl std::fmt::Debug for ResponseService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseService")
            .field("keyring", &self.keys())
            .finish_non_exhaustive()
    }
}

/// An action as the API and the WebSocket show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActionView {
    pub id: String,
    pub alert_id: Option<String>,
    pub kind: String,
    pub target: String,
    pub target_field: String,
    pub target_host: String,
    /// The command's typed parameters.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// `policy`, `model` or `analyst`.
    pub proposed_by: String,
    pub proposer: String,
    pub state: String,
    pub reason: Option<String>,
    pub agent_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Until when an applied action holds.
    pub expires_at: Option<DateTime<Utc>>,
    /// The newest command's state as the agent reported it (`pending`, `accepted`, …).
    pub command_state: Option<String>,
}

impl ActionView {
    pub fn new(a: action::Model, command: Option<&agent_command::Model>) -> Self {
        ActionView {
            params: serde_json::from_str(&a.params).unwrap_or(serde_json::Value::Null),
            id: a.id,
            alert_id: a.alert_id,
            kind: a.kind,
            target: a.target,
            target_field: a.target_field,
            target_host: a.target_host,
            proposed_by: a.proposed_by,
            proposer: a.proposer,
            state: a.state,
            reason: a.reason,
            agent_id: a.agent_id,
            created_at: a.created_at,
            updated_at: a.updated_at,
            expires_at: a.expires_at,
            command_state: command.map(|c| c.state.clone()),
        }
    }
}

/// One transition as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TransitionView {
    pub from: Option<String>,
    pub to: String,
    pub actor: String,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<action_transition::Model> for TransitionView {
    fn from(t: action_transition::Model) -> Self {
        TransitionView {
            from: t.from_state,
            to: t.to_state,
            actor: t.actor,
            detail: t.detail,
            at: t.at,
        }
    }
}

impl ResponseService {
    pub fn new(
        db: DatabaseConnection,
        hub: Arc<AlertHub>,
        config: ResponseConfig,
        keyring: Keyring,
    ) -> Self {
        ResponseService {
            config,
            keyring: RwLock::new(Arc::new(keyring)),
            keyring_file: None,
            db,
            hub,
            links: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            wake: Notify::new(),
            clock: Clock::System,
            announced: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Watches the keyring's file: a rotation or retirement there reaches agents at once.
    pub fn with_keyring_file(mut self, path: std::path::PathBuf) -> Self {
        self.keyring_file = Some(keyring::KeyringFile::new(path));
        self
    }

    /// The signing keys now.
    pub fn keys(&self) -> Arc<Keyring> {
        // Replaced whole, never left half-written: a poisoned lock still holds a valid ring.
        self.keyring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The keys agents trust (handed out at enrollment).
    pub fn public_keys(&self) -> Vec<PublicKey> {
        self.keys().public_keys()
    }

    /// Takes a new ring and sends its key set to every connected agent.
    pub fn replace_keys(&self, ring: Keyring) {
        let ring = Arc::new(ring);
        *self.keyring.write().unwrap_or_else(|e| e.into_inner()) = ring.clone();
        tracing::info!(
            version = ring.version(),
            active = ring.active().key_id(),
            keys = ring.public_keys().len(),
            "command-signing keys changed"
        );
        let set = ring.signed_keyset(chrono::Utc::now());
        for link in self.links().values() {
            // A full queue: the agent gets the set again when it reconnects.
            let _ = link.tx.try_send(GatewayMessage::Keys(set.clone()));
        }
    }

    /// Re-reads the keyring's file if it changed.
    pub fn reload_keys(&self) {
        let Some(file) = &self.keyring_file else {
            return;
        };
        match file.reload_if_changed() {
            Ok(Some(ring)) => self.replace_keys(ring),
            Ok(None) => {}
            Err(e) => {
                metrics::counter!("soc_keyring_reload_errors_total").increment(1);
                tracing::error!(error = %e, "cannot read the changed keyring; still signing with the keys loaded before");
            }
        }
    }

    /// Makes the dispatcher look at once (after an approval, a report, a connect).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await
    }

    fn links(&self) -> std::sync::MutexGuard<'_, HashMap<String, Link>> {
        // Inserts and removals are single operations: a poisoned map is still whole.
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connected agent; a second connection of the same agent replaces the
    /// first. Returns the session number and the queue to send from.
    pub(crate) fn attach(&self, agent: &str) -> (u64, mpsc::Receiver<GatewayMessage>) {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(1024);
        self.links().insert(agent.to_string(), Link { session, tx });
        metrics::gauge!("soc_agents_connected").set(self.links().len() as f64);
        (session, rx)
    }

    pub(crate) fn detach(&self, agent: &str, session: u64) {
        let mut links = self.links();
        if links.get(agent).is_some_and(|l| l.session == session) {
            links.remove(agent);
        }
        metrics::gauge!("soc_agents_connected").set(links.len() as f64);
    }

    /// Drops an agent's connection (it was revoked).
    pub fn disconnect(&self, agent: &str) {
        self.links().remove(agent);
    }

    pub fn connected(&self, agent: &str) -> bool {
        self.links().contains_key(agent)
    }

    /// Queues a message for a connected agent; false when it is not connected or its queue
    /// is full (it gets the command again on its next connect).
    pub(crate) fn send(&self, agent: &str, msg: GatewayMessage) -> bool {
        match self.links().get(agent) {
            Some(l) => l.tx.try_send(msg).is_ok(),
            None => false,
        }
    }

    /// Tells dashboards of a new proposal, once.
    pub fn publish_proposal(&self, view: &ActionView) {
        let first = self
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(view.id.clone(), view.created_at)
            .is_none();
        if first {
            self.publish(view);
        }
    }

    /// Tells dashboards an action changed.
    pub fn publish(&self, view: &ActionView) {
        self.hub.publish_message(&serde_json::json!({
            "type": "action",
            "action": view,
        }));
    }
}
