//! Response actions as records: proposed once per (alert, kind, target), then moved through
//! their lifecycle one checked transition at a time. Every transition is a row of its own
//! and an audit entry, written in the same transaction as the state change.

use super::audit::{self, AuditRecord};
use crate::command::Action;
use crate::db::{action, action_transition, response_switch};
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Waits for approval.
    Proposed,
    /// Approved; waits to be sent to its agent.
    Approved,
    Rejected,
    /// Sent (or queued for) its agent; waits for the result.
    Dispatched,
    Applied,
    Failed,
    /// Its time ran out: never delivered, or its block lapsed.
    Expired,
    /// Undone by an analyst.
    Reverted,
}

impl ActionState {
    pub const ALL: [ActionState; 8] = [
        ActionState::Proposed,
        ActionState::Approved,
        ActionState::Rejected,
        ActionState::Dispatched,
        ActionState::Applied,
        ActionState::Failed,
        ActionState::Expired,
        ActionState::Reverted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Proposed => "proposed",
            ActionState::Approved => "approved",
            ActionState::Rejected => "rejected",
            ActionState::Dispatched => "dispatched",
            ActionState::Applied => "applied",
            ActionState::Failed => "failed",
            ActionState::Expired => "expired",
            ActionState::Reverted => "reverted",
        }
    }

    pub fn parse(s: &str) -> Option<ActionState> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The states an action may come from to reach this one.
    pub fn from_states(self) -> &'static [ActionState] {
        use ActionState::*;
        match self {
            Proposed => &[],
            Approved => &[Proposed],
            // An approval may be withdrawn until the command has gone out.
            Rejected => &[Proposed, Approved],
            Dispatched => &[Approved],
            Applied => &[Dispatched],
            // Approved but no agent to carry it out, or the agent's answer.
            Failed => &[Approved, Dispatched],
            Expired => &[Proposed, Approved, Dispatched, Applied],
            Reverted => &[Applied],
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            ActionState::Rejected
                | ActionState::Failed
                | ActionState::Expired
                | ActionState::Reverted
        )
    }
}

/// Who proposed an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposedBy {
    /// The response policy, from the rule's own verdict.
    Policy,
    /// The model's triage. Always waits for a person.
    Model,
    Analyst,
}

impl ProposedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ProposedBy::Policy => "policy",
            ProposedBy::Model => "model",
            ProposedBy::Analyst => "analyst",
        }
    }
}

/// A proposal about to be recorded.
#[derive(Debug, Clone)]
pub struct NewAction {
    pub alert_id: Option<Uuid>,
    /// What the agent will be told to do.
    pub action: Action,
    pub target: String,
    pub target_field: String,
    pub target_host: String,
    pub proposed_by: ProposedBy,
    pub proposer: String,
    /// Sent to a host the response policy names instead of the alert's own: the host is
    /// part of the action's identity, so each named host gets its own action.
    pub routed: bool,
}

impl NewAction {
    /// The action's id: the same (alert, kind, target[, routed host]) always names the same
    /// action.
    pub fn id(&self) -> Uuid {
        let kind = self.action.kind();
        if self.routed {
            action_id(
                self.alert_id,
                kind,
                &format!("{}\n{}", self.target, self.target_host),
            )
        } else {
            action_id(self.alert_id, kind, &self.target)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no action {0}")]
    NotFound(String),
    #[error("action {id} is {from}; it cannot become {to}")]
    Transition {
        id: String,
        from: String,
        to: &'static str,
    },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The id an action gets: the same (alert, kind, target) always names the same action.
pub fn action_id(alert_id: Option<Uuid>, kind: &str, target: &str) -> Uuid {
    match alert_id {
        Some(a) => Uuid::new_v5(&a, format!("{kind}\n{target}").as_bytes()),
        None => Uuid::new_v4(),
    }
}

/// Records a proposal unless the same (alert, kind, target) was proposed before; returns the
/// new action, or `None` when it existed.
pub async fn propose<C: ConnectionTrait>(
    txn: &C,
    new: &NewAction,
    now: DateTime<Utc>,
) -> Result<Option<action::Model>, ActionError> {
    Ok(propose_many(txn, &[new], now).await?.pop())
}

/// One action's step, for [`record_many`].
struct Step<'a> {
    action: &'a action::Model,
    from: Option<String>,
    actor: String,
    detail: Option<String>,
}

/// The transition rows and audit entries of steps to `to`, in bulk.
async fn record_many<C: ConnectionTrait>(
    txn: &C,
    steps: &[Step<'_>],
    to: ActionState,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    for chunk in steps.chunks(200) {
        action_transition::Entity::insert_many(chunk.iter().map(|s| {
            action_transition::ActiveModel {
                id: ActiveValue::NotSet,
                action_id: ActiveValue::Set(s.action.id.clone()),
                from_state: ActiveValue::Set(s.from.clone()),
                to_state: ActiveValue::Set(to.as_str().to_string()),
                actor: ActiveValue::Set(s.actor.clone()),
                detail: ActiveValue::Set(s.detail.clone()),
                at: ActiveValue::Set(now),
            }
        }))
        .exec_without_returning(txn)
        .await?;
    }
    let records: Vec<AuditRecord> = steps
        .iter()
        .map(|s| {
            let a = s.action;
            AuditRecord {
                actor: s.actor.clone(),
                kind: format!("action.{}", to.as_str()),
                subject: a.id.clone(),
                detail: serde_json::json!({
                    "from": s.from,
                    "kind": a.kind,
                    "target": a.target,
                    "target_host": a.target_host,
                    "alert_id": a.alert_id,
                    "params": a.params,
                    "detail": s.detail,
                }),
            }
        })
        .collect();
    audit::append_many(txn, &records, now).await.map(|_| ())
}

fn new_model(new: &NewAction, now: DateTime<Utc>) -> action::Model {
    action::Model {
        id: new.id().to_string(),
        alert_id: new.alert_id.map(|a| a.to_string()),
        kind: new.action.kind().to_string(),
        target: new.target.clone(),
        target_field: new.target_field.clone(),
        target_host: new.target_host.clone(),
        params: serde_json::to_string(&new.action).unwrap_or_default(),
        proposed_by: new.proposed_by.as_str().to_string(),
        proposer: new.proposer.clone(),
        state: ActionState::Proposed.as_str().to_string(),
        reason: None,
        agent_id: None,
        created_at: now,
        updated_at: now,
        expires_at: None,
    }
}

/// [`propose`] for many: records those not proposed before, in the caller's transaction,
/// with a few statements per few hundred; returns the new ones, in the order given.
pub async fn propose_many<C: ConnectionTrait>(
    txn: &C,
    news: &[&NewAction],
    now: DateTime<Utc>,
) -> Result<Vec<action::Model>, ActionError> {
    let now = now.trunc_subsecs(3);
    audit::lock(txn).await?;
    let mut created: Vec<(action::Model, String)> = Vec::new();
    for chunk in news.chunks(200) {
        let models: Vec<action::Model> = chunk.iter().map(|n| new_model(n, now)).collect();
        // Under the audit lock nobody else proposes meanwhile: what exists now is all.
        let existing: std::collections::HashSet<String> = action::Entity::find()
            .filter(action::Column::Id.is_in(models.iter().map(|m| m.id.clone())))
            .all(txn)
            .await?
            .into_iter()
            .map(|a| a.id)
            .collect();
        let mut fresh = Vec::new();
        for (m, n) in models.into_iter().zip(chunk) {
            if existing.contains(&m.id) || created.iter().any(|(c, _)| c.id == m.id) {
                continue;
            }
            let actor = format!("{}:{}", n.proposed_by.as_str(), n.proposer);
            fresh.push((m, actor));
        }
        if fresh.is_empty() {
            continue;
        }
        action::Entity::insert_many(
            fresh
                .iter()
                .map(|(m, _)| action::ActiveModel::from(m.clone())),
        )
        .on_conflict(
            OnConflict::column(action::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
        created.extend(fresh);
    }
    let steps: Vec<Step> = created
        .iter()
        .map(|(m, actor)| Step {
            action: m,
            from: None,
            actor: actor.clone(),
            detail: None,
        })
        .collect();
    record_many(txn, &steps, ActionState::Proposed, now).await?;
    Ok(created.into_iter().map(|(m, _)| m).collect())
}

/// What a transition changes besides the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub detail: Option<String>,
    pub agent_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Moves an action to `to` if its current state allows it, in the caller's transaction.
pub async fn transition<C: ConnectionTrait>(
    txn: &C,
    id: &str,
    to: ActionState,
    actor: &str,
    change: Change,
    now: DateTime<Utc>,
) -> Result<action::Model, ActionError> {
    let moves = [Move {
        id: id.to_string(),
        change,
    }];
    if let Some(moved) = transition_many(txn, &moves, to, actor, now).await?.pop() {
        return Ok(moved);
    }
    // Not moved: say why, from the state it is in (the audit lock is still held).
    let current = action::Entity::find_by_id(id.to_string())
        .one(txn)
        .await?
        .ok_or_else(|| ActionError::NotFound(id.to_string()))?;
    Err(ActionError::Transition {
        id: id.to_string(),
        from: current.state,
        to: to.as_str(),
    })
}

/// [`transition`] in a transaction of its own.
pub async fn transition_now(
    db: &DatabaseConnection,
    id: &str,
    to: ActionState,
    actor: &str,
    change: Change,
    now: DateTime<Utc>,
) -> Result<action::Model, ActionError> {
    let txn = db.begin().await?;
    let a = transition(&txn, id, to, actor, change, now).await?;
    txn.commit().await?;
    Ok(a)
}

/// One action's move in [`transition_many`].
#[derive(Debug, Clone)]
pub struct Move {
    pub id: String,
    pub change: Change,
}

/// [`transition`] for many actions by one actor, in the caller's transaction, with a few
/// statements per few hundred actions. Returns the moved actions; those whose state does
/// not allow the move (or that do not exist) are left as they are.
pub async fn transition_many<C: ConnectionTrait>(
    txn: &C,
    moves: &[Move],
    to: ActionState,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<action::Model>, ActionError> {
    let now = now.trunc_subsecs(3);
    audit::lock(txn).await?;
    let from: Vec<&str> = to.from_states().iter().map(|s| s.as_str()).collect();
    let mut moved: Vec<(action::Model, String, Option<String>)> = Vec::new();
    for chunk in moves.chunks(200) {
        // Under the audit lock no other transition runs: the states read are the states.
        let current: HashMap<String, String> = action::Entity::find()
            .filter(action::Column::Id.is_in(chunk.iter().map(|m| m.id.clone())))
            .all(txn)
            .await?
            .into_iter()
            .map(|a| (a.id, a.state))
            .collect();
        // Moves with the same change are one statement.
        let mut groups: Vec<(&Change, Vec<String>)> = Vec::new();
        for m in chunk {
            if !current
                .get(&m.id)
                .is_some_and(|s| from.contains(&s.as_str()))
            {
                continue;
            }
            match groups.iter_mut().find(|(c, _)| **c == m.change) {
                Some((_, ids)) => ids.push(m.id.clone()),
                None => groups.push((&m.change, vec![m.id.clone()])),
            }
        }
        let mut ids = Vec::new();
        for (change, group) in groups {
            let mut update = action::Entity::update_many()
                .col_expr(action::Column::State, Expr::value(to.as_str()))
                .col_expr(action::Column::UpdatedAt, Expr::value(now))
                .filter(action::Column::Id.is_in(group.clone()))
                .filter(action::Column::State.is_in(from.clone()));
            if let Some(d) = &change.detail {
                update = update.col_expr(action::Column::Reason, Expr::value(d.clone()));
            }
            if let Some(a) = &change.agent_id {
                update = update.col_expr(action::Column::AgentId, Expr::value(a.clone()));
            }
            if let Some(e) = change.expires_at {
                update =
                    update.col_expr(action::Column::ExpiresAt, Expr::value(e.trunc_subsecs(3)));
            }
            update.exec(txn).await?;
            ids.extend(group);
        }
        if ids.is_empty() {
            continue;
        }
        let details: HashMap<&str, Option<String>> = chunk
            .iter()
            .map(|m| (m.id.as_str(), m.change.detail.clone()))
            .collect();
        for a in action::Entity::find()
            .filter(action::Column::Id.is_in(ids))
            .all(txn)
            .await?
        {
            if a.state != to.as_str() {
                continue;
            }
            let was = current.get(&a.id).cloned().unwrap_or_default();
            let detail = details.get(a.id.as_str()).cloned().flatten();
            moved.push((a, was, detail));
        }
    }
    let steps: Vec<Step> = moved
        .iter()
        .map(|(a, was, detail)| Step {
            action: a,
            from: Some(was.clone()),
            actor: actor.to_string(),
            detail: detail.clone(),
        })
        .collect();
    record_many(txn, &steps, to, now).await?;
    Ok(moved.into_iter().map(|(a, _, _)| a).collect())
}

/// An action's transitions, oldest first.
pub async fn history<C: ConnectionTrait>(
    db: &C,
    id: &str,
) -> Result<Vec<action_transition::Model>, DbErr> {
    action_transition::Entity::find()
        .filter(action_transition::Column::ActionId.eq(id))
        .order_by_asc(action_transition::Column::Id)
        .all(db)
        .await
}

/// How many actions the policy approved by itself since `since` (for its rate cap).
pub async fn auto_approved_since<C: ConnectionTrait>(
    db: &C,
    since: DateTime<Utc>,
) -> Result<u64, DbErr> {
    action_transition::Entity::find()
        .filter(action_transition::Column::ToState.eq(ActionState::Approved.as_str()))
        .filter(action_transition::Column::Actor.eq(AUTO_APPROVER))
        .filter(action_transition::Column::At.gte(since))
        .count(db)
        .await
}

/// The actor of automatic approvals.
pub const AUTO_APPROVER: &str = "policy:auto-approve";

/// Whether response is switched on (it is until someone switches it off).
pub async fn switch_enabled<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    Ok(response_switch::Entity::find_by_id(1)
        .one(db)
        .await?
        .is_none_or(|s| s.enabled))
}

/// Switches response on or off, audited.
pub async fn set_switch(
    db: &DatabaseConnection,
    enabled: bool,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let now = now.trunc_subsecs(3);
    let txn = db.begin().await?;
    audit::lock(&txn).await?;
    response_switch::Entity::insert(response_switch::ActiveModel {
        id: ActiveValue::Set(1),
        enabled: ActiveValue::Set(enabled),
        updated_by: ActiveValue::Set(actor.to_string()),
        updated_at: ActiveValue::Set(now),
    })
    .on_conflict(
        OnConflict::column(response_switch::Column::Id)
            .update_columns([
                response_switch::Column::Enabled,
                response_switch::Column::UpdatedBy,
                response_switch::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec(&txn)
    .await?;
    audit::append(
        &txn,
        &AuditRecord {
            actor: actor.to_string(),
            kind: "response.switch".into(),
            subject: "response".into(),
            detail: serde_json::json!({ "enabled": enabled }),
        },
        now,
    )
    .await?;
    txn.commit().await
}
