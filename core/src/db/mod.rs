//! sea-orm entities shared by the processor (writes) and the gateway (reads).
//! The schema itself lives in the `soc-migrations` crate.

pub mod action;
pub mod action_transition;
pub mod agent;
pub mod agent_command;
pub mod agent_enrollment;
pub mod alert;
pub mod alert_event;
pub mod alert_revision;
pub mod api_token;
pub mod audit_entry;
pub mod audit_head;
pub mod llm_call;
pub mod processor_checkpoint;
pub mod response_switch;
pub mod rule_state;
pub mod session;
pub mod suppression;
pub mod user;

use crate::{Alert, Severity, Triage};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// Open a connection pool. SQLite files are created if missing and run in WAL mode, so the
/// gateway reads while the processor writes. On every pooled connection: `synchronous=NORMAL`
/// (a commit survives a process crash; the WAL is synced at checkpoints) and no automatic
/// checkpoint in the committing connection: call [`checkpoint_sqlite`] from a background task.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let sqlite = url.starts_with("sqlite:");
    let url = if sqlite && !url.contains("mode=") && !url.contains(":memory:") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_string()
    };
    let mut opts = ConnectOptions::new(url);
    opts.sqlx_logging(false);
    if sqlite {
        use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
        opts.max_connections(4).min_connections(1);
        opts.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(10))
                // A safety net only: checkpoints normally run in the background.
                .pragma("wal_autocheckpoint", "20000")
        });
    }
    Database::connect(opts).await
}

/// Copy the SQLite WAL into the database without blocking writers (a no-op elsewhere).
pub async fn checkpoint_sqlite(db: &DatabaseConnection) -> Result<(), DbErr> {
    use sea_orm::ConnectionTrait;
    if db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
        db.execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await?;
    }
    Ok(())
}

impl From<&Alert> for alert::Model {
    fn from(a: &Alert) -> Self {
        alert::Model {
            id: a.id.to_string(),
            rule_id: a.rule_id.clone(),
            title: a.title.clone(),
            severity: a.severity.as_str().to_string(),
            mitre: serde_json::to_string(&a.mitre).unwrap_or_else(|_| "[]".into()),
            group_by: a.group_by.clone(),
            group_key: a.group_key.clone(),
            source_ip: a.source_ip.clone(),
            host_name: a.host_name.clone(),
            count: a.count as i64,
            first_seen: a.first_seen,
            last_seen: a.last_seen,
            evidence: serde_json::to_string(&a.evidence).unwrap_or_else(|_| "[]".into()),
            revision: a.revision as i64,
            indicators: serde_json::to_string(&a.indicators).unwrap_or_else(|_| "[]".into()),
            incident_id: a.incident_id.map(|i| i.to_string()),
            status: "new".to_string(),
            assignee: None,
            resolution: None,
            resolution_reason: None,
            workflow_updated_at: None,
            triage: a
                .triage
                .as_ref()
                .and_then(|t| serde_json::to_string(t).ok()),
            verdict_source: a.triage.as_ref().map(|t| t.source.as_str().to_string()),
            priority: a.triage.as_ref().map(|t| t.priority as i32),
            verdict_rank: a.triage.as_ref().map(Triage::rank),
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// A stored row could not be read back as an alert.
#[derive(Debug, thiserror::Error)]
#[error("alert row {id} is invalid: {reason}")]
pub struct InvalidRow {
    pub id: String,
    pub reason: String,
}

impl TryFrom<alert::Model> for Alert {
    type Error = InvalidRow;

    fn try_from(m: alert::Model) -> Result<Self, InvalidRow> {
        let bad = |reason: String| InvalidRow {
            id: m.id.clone(),
            reason,
        };
        Ok(Alert {
            id: m.id.parse().map_err(|e| bad(format!("id: {e}")))?,
            severity: Severity::parse(&m.severity)
                .ok_or_else(|| bad(format!("severity `{}`", m.severity)))?,
            mitre: serde_json::from_str(&m.mitre).map_err(|e| bad(format!("mitre: {e}")))?,
            evidence: serde_json::from_str(&m.evidence)
                .map_err(|e| bad(format!("evidence: {e}")))?,
            indicators: serde_json::from_str(&m.indicators)
                .map_err(|e| bad(format!("indicators: {e}")))?,
            triage: match &m.triage {
                Some(t) => Some(serde_json::from_str(t).map_err(|e| bad(format!("triage: {e}")))?),
                None => None,
            },
            // Rows stored before incidents existed are each their own.
            incident_id: Some(match &m.incident_id {
                Some(i) => i.parse().map_err(|e| bad(format!("incident_id: {e}")))?,
                None => m.id.parse().map_err(|e| bad(format!("id: {e}")))?,
            }),
            rule_id: m.rule_id,
            title: m.title,
            group_by: m.group_by,
            group_key: m.group_key,
            source_ip: m.source_ip,
            host_name: m.host_name,
            count: m.count.max(0) as u64,
            first_seen: m.first_seen,
            last_seen: m.last_seen,
            revision: m.revision.max(0) as u64,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}
