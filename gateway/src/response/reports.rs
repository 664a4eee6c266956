//! What an agent reports about commands, applied to the commands and their actions. A report
//! is idempotent (an agent sends it again until acknowledged) and counts only for the
//! agent's own commands. Reports that arrive together are stored in one transaction: under
//! an attack storm an agent answers hundreds of commands at once, and a commit each would be
//! the loop's bottleneck.

use super::dispatch::GATEWAY;
use super::{ActionView, ResponseService};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use soc_core::command::{Action, Report, ReportState};
use soc_core::db::{action, agent_command};
use soc_core::response::actions::{transition_many, Move};
use soc_core::response::audit::{self, AuditRecord};
use soc_core::response::{ActionError, ActionState, Change};
use std::collections::HashMap;
use tracing::{info, warn};
use uuid::Uuid;

/// A command's new state and reason: the commands sharing one are one statement.
type CommandUpdate = (&'static str, Option<String>);

/// Reports stored in one transaction at most.
pub const BATCH_MAX: usize = 500;

fn is_final(state: &str) -> bool {
    matches!(state, "applied" | "failed" | "refused" | "expired")
}

/// Applies one report; returns whether the agent may forget it.
pub async fn handle(
    svc: &ResponseService,
    agent: &str,
    r: &Report,
    now: DateTime<Utc>,
) -> Result<bool, ActionError> {
    Ok(handle_batch(svc, agent, std::slice::from_ref(r), now)
        .await?
        .contains(&r.command))
}

/// Applies reports in one transaction; returns the commands whose reports the agent may
/// forget (stored, or about nothing this agent was sent). On an error nothing is stored and
/// nothing acknowledged: the agent sends them all again.
pub async fn handle_batch(
    svc: &ResponseService,
    agent: &str,
    reports: &[Report],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, ActionError> {
    // The newest report on a command is the one that counts (`accepted`, then `applied`).
    let mut newest: Vec<&Report> = Vec::new();
    for r in reports.iter().rev() {
        if !newest.iter().any(|n| n.command == r.command) {
            newest.push(r);
        }
    }
    newest.reverse();
    let actor = format!("agent:{agent}");
    let dry = |r: &Report| {
        if r.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    };
    let mut touched: Vec<String> = Vec::new();
    let txn = svc.db.begin().await?;
    // The write lock first: this transaction reads before it appends to the audit chain.
    audit::lock(&txn).await?;
    // Action moves by (target state, actor): each group is one bulk transition.
    let mut moves: Vec<((ActionState, String), Vec<Move>)> = Vec::new();
    let mut add = |to: ActionState, by: String, m: Move| match moves
        .iter_mut()
        .find(|((t, a), _)| *t == to && *a == by)
    {
        Some((_, list)) => list.push(m),
        None => moves.push(((to, by), vec![m])),
    };
    for chunk in newest.chunks(200) {
        let commands: HashMap<String, agent_command::Model> = agent_command::Entity::find()
            .filter(agent_command::Column::Id.is_in(chunk.iter().map(|r| r.command.to_string())))
            .filter(agent_command::Column::AgentId.eq(agent))
            .all(&txn)
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        // Block lengths, for when an applied block ends.
        let ttls: HashMap<String, u32> = action::Entity::find()
            .filter(action::Column::Id.is_in(commands.values().map(|c| c.action_id.clone())))
            .all(&txn)
            .await?
            .into_iter()
            .filter_map(|a| match serde_json::from_str::<Action>(&a.params).ok()? {
                Action::BlockIp { ttl_secs, .. } => Some((a.id, ttl_secs)),
                _ => None,
            })
            .collect();
        // Command rows by (state, reason): one statement each.
        let mut rows: Vec<(CommandUpdate, Vec<String>)> = Vec::new();
        for r in chunk {
            let Some(cmd) = commands.get(&r.command.to_string()) else {
                warn!(agent, command = %r.command, "report on a command this agent was not sent");
                continue;
            };
            if is_final(&cmd.state) {
                continue;
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
            let key = (state, reason.clone().or(cmd.reason.clone()));
            match rows.iter_mut().find(|(k, _)| *k == key) {
                Some((_, ids)) => ids.push(cmd.id.clone()),
                None => rows.push((key, vec![cmd.id.clone()])),
            }
            touched.push(cmd.action_id.clone());
            tracing::debug!(agent, command = %cmd.id, action = %cmd.action_id, state, "agent report");
            let id = cmd.action_id.clone();
            match (r.state, cmd.purpose.as_str()) {
                (ReportState::Accepted, _) => {}
                (ReportState::Applied, "apply") => add(
                    ActionState::Applied,
                    actor.clone(),
                    Move {
                        change: Change {
                            detail: Some(format!("applied by agent {agent}{}", dry(r))),
                            expires_at: ttls
                                .get(&id)
                                .map(|t| now + chrono::Duration::seconds(i64::from(*t))),
                            ..Change::default()
                        },
                        id,
                    },
                ),
                (ReportState::Applied, _) => {
                    // A revert: its requester is who reverted the action.
                    let by = cmd
                        .reason
                        .as_deref()
                        .and_then(|n| n.strip_prefix("requested by "))
                        .unwrap_or(GATEWAY)
                        .to_string();
                    add(
                        ActionState::Reverted,
                        by,
                        Move {
                            id,
                            change: Change {
                                detail: Some(format!("undone by agent {agent}{}", dry(r))),
                                ..Change::default()
                            },
                        },
                    )
                }
                (_, "apply") => add(
                    ActionState::Failed,
                    actor.clone(),
                    Move {
                        id,
                        change: Change {
                            detail: Some(format!(
                                "{state} by agent {agent}: {}",
                                reason.as_deref().unwrap_or("no reason given")
                            )),
                            ..Change::default()
                        },
                    },
                ),
                (_, _) => revert_failed(&txn, &actor, &id, state, reason.as_deref(), now).await?,
            }
        }
        for ((state, reason), ids) in rows {
            agent_command::Entity::update_many()
                .col_expr(agent_command::Column::State, Expr::value(state))
                .col_expr(agent_command::Column::Reason, Expr::value(reason))
                .col_expr(agent_command::Column::ReportedAt, Expr::value(now))
                .filter(agent_command::Column::Id.is_in(ids))
                .exec(&txn)
                .await?;
        }
    }
    for ((to, by), list) in moves {
        let moved = transition_many(&txn, &list, to, &by, now).await?;
        if moved.len() < list.len() {
            // Moved on meanwhile (expired, say): the reports are kept on the commands.
            warn!(
                agent,
                to = to.as_str(),
                reports = list.len(),
                moved = moved.len(),
                "reports arrived for actions in another state"
            );
        }
    }
    txn.commit().await?;
    info!(agent, reports = reports.len(), "agent reports stored");
    announce_all(svc, touched).await?;
    Ok(reports.iter().map(|r| r.command).collect())
}

/// A revert the agent could not do: the action stays applied; the log says so.
async fn revert_failed<C: ConnectionTrait>(
    txn: &C,
    actor: &str,
    action_id: &str,
    state: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), ActionError> {
    audit::append(
        txn,
        &AuditRecord {
            actor: actor.to_string(),
            kind: "action.revert_failed".into(),
            subject: action_id.to_string(),
            detail: serde_json::json!({ "state": state, "reason": reason }),
        },
        now,
    )
    .await?;
    action::Entity::update_many()
        .col_expr(
            action::Column::Reason,
            Expr::value(format!(
                "revert {state}: {}",
                reason.unwrap_or("no reason given")
            )),
        )
        .filter(action::Column::Id.eq(action_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// Publishes the actions' current states, each with its newest command, in two queries.
async fn announce_all(svc: &ResponseService, mut ids: Vec<String>) -> Result<(), ActionError> {
    ids.sort();
    ids.dedup();
    for chunk in ids.chunks(BATCH_MAX) {
        let actions = action::Entity::find()
            .filter(action::Column::Id.is_in(chunk.to_vec()))
            .all(&svc.db)
            .await?;
        // Oldest first, so the newest command of each action is the one kept.
        let newest: HashMap<String, agent_command::Model> = agent_command::Entity::find()
            .filter(agent_command::Column::ActionId.is_in(chunk.to_vec()))
            .order_by_asc(agent_command::Column::CreatedAt)
            .all(&svc.db)
            .await?
            .into_iter()
            .map(|c| (c.action_id.clone(), c))
            .collect();
        for a in actions {
            let cmd = newest.get(&a.id);
            svc.publish(&ActionView::new(a, cmd));
        }
    }
    Ok(())
}
