//! Agents enroll once with a one-time token an admin made for their host, and get a
//! credential of their own. Both are stored as SHA-256 only. Agent credentials carry their
//! own prefix and live in their own table: a user's API token never authenticates an agent,
//! nor an agent's credential a user.

use crate::auth::secret;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    TransactionTrait,
};
use soc_core::db::{agent, agent_enrollment};
use soc_core::response::audit::{self, AuditRecord};

pub const ENROLL_PREFIX: &str = "soc-enroll_";
pub const AGENT_PREFIX: &str = "soc-agent_";

/// An agent as the guard knows it after checking its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPrincipal {
    pub agent_id: String,
    pub host: String,
}

pub use soc_core::command::valid_host_name as valid_host;

/// Makes a one-time token for `host`; returns the enrollment id and the token (shown once).
pub async fn create_token(
    db: &DatabaseConnection,
    host: &str,
    by: &str,
    ttl: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<(agent_enrollment::Model, String), DbErr> {
    let token = secret::generate(ENROLL_PREFIX);
    let row = agent_enrollment::Model {
        id: uuid::Uuid::new_v4().to_string(),
        token_hash: secret::hash(&token),
        host: host.to_string(),
        created_by: by.to_string(),
        created_at: now,
        expires_at: now + ttl,
        used_at: None,
        agent_id: None,
    };
    let txn = db.begin().await?;
    audit::lock(&txn).await?;
    agent_enrollment::Entity::insert(agent_enrollment::ActiveModel::from(row.clone()))
        .exec(&txn)
        .await?;
    audit::append(
        &txn,
        &AuditRecord {
            actor: format!("user:{by}"),
            kind: "agent.enrollment_created".into(),
            subject: row.id.clone(),
            detail: serde_json::json!({ "host": host, "expires_at": row.expires_at }),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok((row, token))
}

/// Why an enrollment was refused: deliberately one answer for unknown, used and expired.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("the enrollment token is unknown, used or expired")]
    Refused,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Spends a token: a new agent for its host, with its credential (shown once).
pub async fn enroll(
    db: &DatabaseConnection,
    token: &str,
    version: &str,
    keys_version: u64,
    now: DateTime<Utc>,
) -> Result<(agent::Model, String), EnrollError> {
    if !token.starts_with(ENROLL_PREFIX) {
        return Err(EnrollError::Refused);
    }
    let hash = secret::hash(token);
    let txn = db.begin().await?;
    audit::lock(&txn).await?;
    let Some(e) = agent_enrollment::Entity::find()
        .filter(agent_enrollment::Column::TokenHash.eq(hash.clone()))
        .one(&txn)
        .await?
    else {
        return Err(EnrollError::Refused);
    };
    if e.used_at.is_some() || e.expires_at <= now {
        return Err(EnrollError::Refused);
    }
    let agent_id = format!("agt-{}", uuid::Uuid::new_v4().simple());
    // Spent exactly once, also when two agents race with the same token.
    let spent = agent_enrollment::Entity::update_many()
        .col_expr(agent_enrollment::Column::UsedAt, Expr::value(now))
        .col_expr(
            agent_enrollment::Column::AgentId,
            Expr::value(agent_id.clone()),
        )
        .filter(agent_enrollment::Column::Id.eq(e.id.clone()))
        .filter(agent_enrollment::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    if spent.rows_affected != 1 {
        return Err(EnrollError::Refused);
    }
    let credential = secret::generate(AGENT_PREFIX);
    let row = agent::Model {
        id: agent_id.clone(),
        host: e.host.clone(),
        credential_hash: secret::hash(&credential),
        created_by: e.created_by.clone(),
        created_at: now,
        last_seen: None,
        version: Some(version.chars().take(64).collect()),
        dry_run: false,
        revoked_at: None,
        keys_version: Some(i64::try_from(keys_version).unwrap_or(i64::MAX)),
    };
    agent::Entity::insert(agent::ActiveModel::from(row.clone()))
        .exec(&txn)
        .await?;
    audit::append(
        &txn,
        &AuditRecord {
            actor: format!("agent:{agent_id}"),
            kind: "agent.enrolled".into(),
            subject: agent_id.clone(),
            detail: serde_json::json!({ "host": e.host, "enrollment": e.id }),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok((row, credential))
}

/// The agent a credential belongs to, unless revoked.
pub async fn resolve<C: ConnectionTrait>(
    db: &C,
    credential: &str,
) -> Result<Option<AgentPrincipal>, DbErr> {
    if !credential.starts_with(AGENT_PREFIX) {
        return Ok(None);
    }
    Ok(agent::Entity::find()
        .filter(agent::Column::CredentialHash.eq(secret::hash(credential)))
        .filter(agent::Column::RevokedAt.is_null())
        .one(db)
        .await?
        .map(|a| AgentPrincipal {
            agent_id: a.id,
            host: a.host,
        }))
}

/// Revokes an agent: its credential stops working at once.
pub async fn revoke(
    db: &DatabaseConnection,
    agent_id: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    audit::lock(&txn).await?;
    let n = agent::Entity::update_many()
        .col_expr(agent::Column::RevokedAt, Expr::value(now))
        .filter(agent::Column::Id.eq(agent_id))
        .filter(agent::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected;
    if n == 1 {
        audit::append(
            &txn,
            &AuditRecord {
                actor: format!("user:{by}"),
                kind: "agent.revoked".into(),
                subject: agent_id.to_string(),
                detail: serde_json::json!({}),
            },
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(n == 1)
}

/// Notes that an agent was seen, with what it says of itself.
pub async fn seen(
    db: &DatabaseConnection,
    agent_id: &str,
    version: Option<&str>,
    dry_run: Option<bool>,
    keys_version: Option<u64>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut am = agent::ActiveModel {
        id: ActiveValue::Unchanged(agent_id.to_string()),
        last_seen: ActiveValue::Set(Some(now)),
        ..Default::default()
    };
    if let Some(v) = version {
        am.version = ActiveValue::Set(Some(v.chars().take(64).collect()));
    }
    if let Some(d) = dry_run {
        am.dry_run = ActiveValue::Set(d);
    }
    if let Some(k) = keys_version {
        am.keys_version = ActiveValue::Set(Some(i64::try_from(k).unwrap_or(i64::MAX)));
    }
    agent::Entity::update(am).exec(db).await.map(|_| ())
}
