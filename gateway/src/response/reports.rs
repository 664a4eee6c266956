//! What an agent reports about a command, applied to the command and its action. A report
//! is idempotent (an agent sends it again until acknowledged) and counts only for the
//! agent's own commands.

use super::dispatch::{announce, GATEWAY};
use super::ResponseService;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use soc_core::command::{Action, Report, ReportState};
use soc_core::db::{action, agent_command};
use soc_core::response::actions::transition;
use soc_core::response::audit::{self, AuditRecord};
use soc_core::response::{ActionError, ActionState, Change};
use tracing::{info, warn};

fn is_final(state: &str) -> bool {
    matches!(state, "applied" | "failed" | "refused" | "expired")
}

/// Applies a report; returns whether the agent may forget it (it is stored, or it is about
/// nothing this agent was sent).
pub async fn handle(
    svc: &ResponseService,
    agent: &str,
    r: &Report,
    now: DateTime<Utc>,
) -> Result<bool, ActionError> {
    let Some(cmd) = agent_command::Entity::find_by_id(r.command.to_string())
        .filter(agent_command::Column::AgentId.eq(agent))
        .one(&svc.db)
        .await?
    else {
        warn!(agent, command = %r.command, "report on a command this agent was not sent");
        return Ok(true);
    };
    if is_final(&cmd.state) {
        return Ok(true);
    }
    let state = match r.state {
        ReportState::Accepted => "accepted",
        ReportState::Applied => "applied",
        ReportState::Failed => "failed",
        ReportState::Refused => "refused",
    };
    metrics::counter!("soc_agent_reports_total", "state" => state).increment(1);
    let reason = r
        .reason
        .clone()
        .map(|s| s.chars().take(1000).collect::<String>());
    let actor = format!("agent:{agent}");
    let txn = svc.db.begin().await?;
    let mut am: agent_command::ActiveModel = cmd.clone().into();
    am.state = ActiveValue::Set(state.into());
    am.reason = ActiveValue::Set(reason.clone().or(cmd.reason.clone()));
    am.reported_at = ActiveValue::Set(Some(now));
    agent_command::Entity::update(am).exec(&txn).await?;
    let dry = if r.dry_run {
        " (dry run: nothing changed)"
    } else {
        ""
    };
    let moved = match (r.state, cmd.purpose.as_str()) {
        (ReportState::Accepted, _) => None,
        (ReportState::Applied, "apply") => {
            let a = action::Entity::find_by_id(cmd.action_id.clone())
                .one(&txn)
                .await?;
            let ttl = a
                .as_ref()
                .and_then(|a| serde_json::from_str::<Action>(&a.params).ok())
                .and_then(|act| match act {
                    Action::BlockIp { ttl_secs, .. } => Some(ttl_secs),
                    _ => None,
                });
            Some(
                transition(
                    &txn,
                    &cmd.action_id,
                    ActionState::Applied,
                    &actor,
                    Change {
                        detail: Some(format!("applied by agent {agent}{dry}")),
                        expires_at: ttl.map(|t| now + chrono::Duration::seconds(i64::from(t))),
                        ..Change::default()
                    },
                    now,
                )
                .await,
            )
        }
        (ReportState::Applied, _) => {
            // A revert: its requester is who reverted the action.
            let by = cmd
                .reason
                .as_deref()
                .and_then(|n| n.strip_prefix("requested by "))
                .unwrap_or(GATEWAY)
                .to_string();
            Some(
                transition(
                    &txn,
                    &cmd.action_id,
                    ActionState::Reverted,
                    &by,
                    Change {
                        detail: Some(format!("undone by agent {agent}{dry}")),
                        ..Change::default()
                    },
                    now,
                )
                .await,
            )
        }
        (_, "apply") => Some(
            transition(
                &txn,
                &cmd.action_id,
                ActionState::Failed,
                &actor,
                Change {
                    detail: Some(format!(
                        "{state} by agent {agent}: {}",
                        reason.as_deref().unwrap_or("no reason given")
                    )),
                    ..Change::default()
                },
                now,
            )
            .await,
        ),
        (_, _) => {
            // The revert did not happen: the action stays applied; the log says so.
            audit::append(
                &txn,
                &AuditRecord {
                    actor: actor.clone(),
                    kind: "action.revert_failed".into(),
                    subject: cmd.action_id.clone(),
                    detail: serde_json::json!({ "state": state, "reason": reason }),
                },
                now,
            )
            .await?;
            action::Entity::update_many()
                .col_expr(
                    action::Column::Reason,
                    sea_orm::sea_query::Expr::value(format!(
                        "revert {state}: {}",
                        reason.as_deref().unwrap_or("no reason given")
                    )),
                )
                .filter(action::Column::Id.eq(cmd.action_id.clone()))
                .exec(&txn)
                .await?;
            None
        }
    };
    match moved {
        None | Some(Ok(_)) => {}
        // The action moved on meanwhile (expired, say): the report is kept on the command.
        Some(Err(ActionError::Transition { id, from, to })) => {
            warn!(action = %id, from = %from, to, "report arrived for an action in another state");
        }
        Some(Err(e)) => return Err(e),
    }
    txn.commit().await?;
    info!(agent, command = %cmd.id, action = %cmd.action_id, state, "agent report");
    if let Some(a) = action::Entity::find_by_id(cmd.action_id.clone())
        .one(&svc.db)
        .await?
    {
        announce(svc, a).await?;
    }
    Ok(true)
}
