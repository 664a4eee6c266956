use chrono::{TimeZone, Utc};
use soc_core::{Alert, Severity};
use soc_gateway::auth::{Accounts, Role};
use soc_gateway::{AlertHub, GatewayState, HostPolicy};
use soc_migrations::testing::TestDb;
use std::sync::Arc;

pub fn alert(ip: &str, minute: u32) -> Alert {
    let first = Utc
        .with_ymd_and_hms(2026, 3, 1, 10, minute, 0)
        .single()
        .expect("time");
    Alert {
        id: Alert::incident_id("soc/ssh-bruteforce", ip, first),
        rule_id: "soc/ssh-bruteforce".into(),
        title: format!("SSH brute force: source.ip = {ip}"),
        severity: Severity::High,
        mitre: vec!["T1110".into()],
        group_by: "source.ip".into(),
        group_key: ip.into(),
        source_ip: Some(ip.into()),
        host_name: None,
        count: 5,
        first_seen: first,
        last_seen: first,
        evidence: vec![],
        revision: 5,
        indicators: Vec::new(),
        incident_id: None,
        triage: None,
        created_at: first,
        updated_at: first,
    }
}

pub async fn insert(db: &TestDb, alerts: &[Alert]) {
    use sea_orm::{EntityTrait, IntoActiveModel};
    for a in alerts {
        soc_core::db::alert::Entity::insert(
            soc_core::db::alert::Model::from(a).into_active_model(),
        )
        .exec_without_returning(&db.conn)
        .await
        .expect("insert alert");
    }
}

pub fn state(db: &TestDb) -> GatewayState {
    let hub = Arc::new(AlertHub::default());
    GatewayState {
        db: db.conn.clone(),
        response: response(db, hub.clone()),
        hub,
        hosts: Arc::new(HostPolicy::default()),
        stages: Arc::default(),
        auth: Arc::default(),
        metrics: None,
        rules: Arc::default(),
    }
}

/// The response service with a fixed test key.
pub fn response(db: &TestDb, hub: Arc<AlertHub>) -> Arc<soc_gateway::response::ResponseService> {
    Arc::new(soc_gateway::response::ResponseService::new(
        db.conn.clone(),
        hub,
        soc_gateway::response::ResponseConfig::default(),
        soc_core::command::keys::Keyring::single(soc_core::command::CommandSigner::from_seed(
            &[9; 32],
        )),
    ))
}

pub const PASSWORD: &str = "correct horse battery staple";

/// A user named after `role` (made on first use, with [`PASSWORD`]) and a new API token of it.
pub async fn token(db: &TestDb, role: Role) -> String {
    use secrecy::ExposeSecret;
    let accounts = Accounts::new(db.conn.clone());
    let name = format!("{role}-user");
    if accounts.user(&name).await.is_err() {
        accounts
            .create_user(&name, PASSWORD, role, false, Utc::now())
            .await
            .expect("user");
    }
    accounts
        .create_token(&name, "test", None, None, Utc::now())
        .await
        .expect("token")
        .secret
        .expose_secret()
        .to_string()
}

pub fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}
