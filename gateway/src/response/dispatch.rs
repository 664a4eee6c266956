//! Approved actions to signed commands, commands to connected agents, and what runs out of
//! time: a command no agent picked up by the delivery deadline, a block whose TTL ended.

use super::{ActionView, ResponseService};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use soc_core::command::{Action, Command, GatewayMessage, SignedCommand};
use soc_core::db::{action, agent, agent_command};
use soc_core::response::actions::{switch_enabled, transition_many, transition_now, Move};
use soc_core::response::{ActionError, ActionState, Change};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

/// The dispatcher's actor in transitions.
pub const GATEWAY: &str = "gateway";

/// How often the dispatcher looks without being woken.
const TICK: Duration = Duration::from_secs(1);

/// Runs until shutdown: wakes on approvals, reports, connects, every alert the hub sees (an
/// alert's commit may have approved an action), and once a second.
pub async fn run(svc: Arc<ResponseService>, mut shutdown: watch::Receiver<bool>) {
    let mut alerts = svc.hub.subscribe();
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Err(e) = tick(&svc, Utc::now()).await {
            warn!(error = %e, "response dispatch failed; retrying");
        }
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = svc.woken() => {}
            r = alerts.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r {
                    alerts = svc.hub.subscribe();
                }
                // One pass covers every alert already here: a storm is not a pass per alert.
                use tokio::sync::broadcast::error::TryRecvError;
                while matches!(alerts.try_recv(), Ok(_) | Err(TryRecvError::Lagged(_))) {}
            }
            _ = svc.clock.sleep(TICK) => {}
        }
    }
}

/// One pass: dispatch, deliver, expire.
pub async fn tick(svc: &ResponseService, now: DateTime<Utc>) -> Result<(), ActionError> {
    svc.reload_keys();
    announce_proposals(svc, now).await?;
    let on = svc.config.enabled && switch_enabled(&svc.db).await?;
    if on {
        dispatch_approved(svc, now).await?;
        deliver_pending(svc, now).await?;
    }
    expire(svc, now).await?;
    Ok(())
}

fn nonce() -> String {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).expect("the operating system's random generator works");
    hex::encode(b)
}

/// A command row for `agent`, signed now.
pub(crate) fn new_command(
    svc: &ResponseService,
    action_id: &str,
    agent: &str,
    purpose: &str,
    act: Action,
    note: Option<String>,
    now: DateTime<Utc>,
) -> agent_command::Model {
    let id = Uuid::new_v4();
    let expires_at = now + svc.config.command_validity;
    let signed = sign(svc, id, action_id, agent, act, now, expires_at);
    agent_command::Model {
        id: id.to_string(),
        action_id: action_id.to_string(),
        agent_id: agent.to_string(),
        purpose: purpose.to_string(),
        signed: serde_json::to_string(&signed).unwrap_or_default(),
        state: "pending".into(),
        reason: note,
        created_at: now,
        expires_at,
        delivered_at: None,
        reported_at: None,
    }
}

fn sign(
    svc: &ResponseService,
    id: Uuid,
    action_id: &str,
    agent: &str,
    act: Action,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> SignedCommand {
    svc.keys().active().sign(&Command {
        id,
        action_id: action_id.parse().unwrap_or(Uuid::nil()),
        agent: agent.to_string(),
        action: act,
        issued_at: now,
        expires_at,
        nonce: nonce(),
    })
}

/// The agent for a host: the one seen last among those not revoked.
pub(crate) async fn agent_for(
    svc: &ResponseService,
    host: &str,
) -> Result<Option<agent::Model>, DbErr> {
    agent::Entity::find()
        .filter(agent::Column::Host.eq(host))
        .filter(agent::Column::RevokedAt.is_null())
        .order_by_desc(agent::Column::LastSeen)
        .one(&svc.db)
        .await
}

async fn latest_command(
    svc: &ResponseService,
    action_id: &str,
) -> Result<Option<agent_command::Model>, DbErr> {
    agent_command::Entity::find()
        .filter(agent_command::Column::ActionId.eq(action_id))
        .order_by_desc(agent_command::Column::CreatedAt)
        .one(&svc.db)
        .await
}

/// Publishes an action's current state to dashboards.
pub(crate) async fn announce(svc: &ResponseService, a: action::Model) -> Result<(), DbErr> {
    let cmd = latest_command(svc, &a.id).await?;
    svc.publish(&ActionView::new(a, cmd.as_ref()));
    Ok(())
}

/// How far back the dispatcher looks for proposals to announce. A proposal's time is taken
/// before its transaction commits, so one can appear after a later one was announced.
const ANNOUNCE_LOOKBACK: chrono::Duration = chrono::Duration::seconds(30);

/// Tells dashboards of proposals the processor recorded and nobody announced yet.
async fn announce_proposals(svc: &ResponseService, now: DateTime<Utc>) -> Result<(), DbErr> {
    let from = now - ANNOUNCE_LOOKBACK;
    // Keyset pages over (created_at, id): a storm records thousands in one millisecond.
    let mut after: Option<(DateTime<Utc>, String)> = None;
    loop {
        let mut q = action::Entity::find()
            .filter(action::Column::State.eq(ActionState::Proposed.as_str()))
            .filter(action::Column::CreatedAt.gte(from));
        if let Some((t, id)) = &after {
            q = q.filter(
                sea_orm::Condition::any()
                    .add(action::Column::CreatedAt.gt(*t))
                    .add(
                        sea_orm::Condition::all()
                            .add(action::Column::CreatedAt.eq(*t))
                            .add(action::Column::Id.gt(id.clone())),
                    ),
            );
        }
        let page = q
            .order_by_asc(action::Column::CreatedAt)
            .order_by_asc(action::Column::Id)
            .limit(1000)
            .all(&svc.db)
            .await?;
        let full = page.len() == 1000;
        after = page.last().map(|a| (a.created_at, a.id.clone()));
        for a in page {
            svc.publish_proposal(&ActionView::new(a, None));
        }
        if !full {
            break;
        }
    }
    svc.announced
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|_, t| *t >= from);
    Ok(())
}

async fn dispatch_approved(svc: &ResponseService, now: DateTime<Utc>) -> Result<(), ActionError> {
    let approved = action::Entity::find()
        .filter(action::Column::State.eq(ActionState::Approved.as_str()))
        .order_by_asc(action::Column::UpdatedAt)
        .limit(1000)
        .all(&svc.db)
        .await?;
    if approved.is_empty() {
        return Ok(());
    }
    // Decide first, then write every dispatch in one transaction: an attack storm approves
    // many blocks at once, and one commit each would be the loop's bottleneck.
    let mut failures = Vec::new();
    let mut plan = Vec::new();
    let mut agents: HashMap<String, Option<agent::Model>> = HashMap::new();
    for a in approved {
        let act: Action = match serde_json::from_str(&a.params) {
            Ok(act) => act,
            Err(e) => {
                failures.push((a.id, format!("invalid parameters: {e}")));
                continue;
            }
        };
        if !agents.contains_key(&a.target_host) {
            let found = agent_for(svc, &a.target_host).await?;
            agents.insert(a.target_host.clone(), found);
        }
        match agents.get(&a.target_host).cloned().flatten() {
            None => failures.push((
                a.id,
                format!("no agent is enrolled for host `{}`", a.target_host),
            )),
            Some(ag) => {
                let cmd = new_command(svc, &a.id, &ag.id, "apply", act, None, now);
                plan.push((a.id, ag, cmd));
            }
        }
    }
    let mut sent = Vec::new();
    if !plan.is_empty() {
        let moves: Vec<Move> = plan
            .iter()
            .map(|(id, ag, _)| Move {
                id: id.clone(),
                change: Change {
                    detail: Some(format!("to agent {} on {}", ag.id, ag.host)),
                    agent_id: Some(ag.id.clone()),
                    ..Change::default()
                },
            })
            .collect();
        let txn = svc.db.begin().await?;
        // Rejected or dispatched meanwhile by another pass: left out, nothing to send.
        let moved = transition_many(&txn, &moves, ActionState::Dispatched, GATEWAY, now).await?;
        let mut commands: HashMap<String, agent_command::Model> =
            plan.into_iter().map(|(id, _, cmd)| (id, cmd)).collect();
        for a in moved {
            if let Some(cmd) = commands.remove(&a.id) {
                sent.push((a, cmd));
            }
        }
        for chunk in sent.chunks(200) {
            agent_command::Entity::insert_many(
                chunk
                    .iter()
                    .map(|(_, cmd)| agent_command::ActiveModel::from(cmd.clone())),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
    }
    let mut delivered = Vec::new();
    for (moved, cmd) in &sent {
        metrics::counter!("soc_actions_dispatched_total", "kind" => moved.kind.clone())
            .increment(1);
        if send_command(svc, cmd) {
            delivered.push(cmd.id.clone());
        }
    }
    mark_delivered(svc, delivered, now).await?;
    for (moved, cmd) in sent {
        svc.publish(&ActionView::new(moved, Some(&cmd)));
    }
    for (id, why) in failures {
        let failed = fail(svc, &id, why, now).await?;
        announce(svc, failed).await?;
    }
    Ok(())
}

fn send_command(svc: &ResponseService, cmd: &agent_command::Model) -> bool {
    match serde_json::from_str::<SignedCommand>(&cmd.signed) {
        Ok(signed) => svc.send(&cmd.agent_id, GatewayMessage::Command(signed)),
        Err(_) => false,
    }
}

async fn mark_delivered(
    svc: &ResponseService,
    ids: Vec<String>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    for chunk in ids.chunks(500) {
        agent_command::Entity::update_many()
            .col_expr(
                agent_command::Column::DeliveredAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(agent_command::Column::Id.is_in(chunk.to_vec()))
            .filter(agent_command::Column::DeliveredAt.is_null())
            .exec(&svc.db)
            .await?;
    }
    Ok(())
}

async fn fail(
    svc: &ResponseService,
    id: &str,
    why: String,
    now: DateTime<Utc>,
) -> Result<action::Model, ActionError> {
    warn!(action = id, reason = %why, "action failed before dispatch");
    transition_now(
        &svc.db,
        id,
        ActionState::Failed,
        GATEWAY,
        Change {
            detail: Some(why),
            ..Change::default()
        },
        now,
    )
    .await
}

/// Sends a command to its agent if connected; records that it went out.
pub(crate) async fn deliver(
    svc: &ResponseService,
    cmd: &agent_command::Model,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    if !send_command(svc, cmd) {
        return Ok(false);
    }
    if cmd.delivered_at.is_none() {
        mark_delivered(svc, vec![cmd.id.clone()], now).await?;
    }
    Ok(true)
}

/// Commands that never went out: to agents that are connected now. One whose validity ran
/// out, or whose key was retired, before it was ever sent is signed again (a new validity
/// and nonce; no agent saw the old one).
async fn deliver_pending(svc: &ResponseService, now: DateTime<Utc>) -> Result<(), DbErr> {
    let pending = agent_command::Entity::find()
        .filter(agent_command::Column::State.eq("pending"))
        .filter(agent_command::Column::DeliveredAt.is_null())
        .order_by_asc(agent_command::Column::CreatedAt)
        .limit(5000)
        .all(&svc.db)
        .await?;
    for cmd in pending {
        if !svc.connected(&cmd.agent_id) {
            continue;
        }
        let cmd = if cmd.expires_at <= now || !signed_by_current_key(svc, &cmd) {
            resign(svc, cmd, now).await?
        } else {
            cmd
        };
        deliver(svc, &cmd, now).await?;
    }
    Ok(())
}

/// Whether the key that signed a command is still in the keyring: one signed before its
/// key was retired is signed again before it goes out (no agent saw it), since agents stop
/// trusting a retired key.
fn signed_by_current_key(svc: &ResponseService, cmd: &agent_command::Model) -> bool {
    let Ok(signed) = serde_json::from_str::<SignedCommand>(&cmd.signed) else {
        return false;
    };
    svc.keys()
        .public_keys()
        .iter()
        .any(|k| k.key_id == signed.key_id)
}

async fn resign(
    svc: &ResponseService,
    cmd: agent_command::Model,
    now: DateTime<Utc>,
) -> Result<agent_command::Model, DbErr> {
    let old: SignedCommand = match serde_json::from_str(&cmd.signed) {
        Ok(s) => s,
        Err(_) => return Ok(cmd),
    };
    let Ok(c) = serde_json::from_str::<Command>(&old.payload) else {
        return Ok(cmd);
    };
    let expires_at = now + svc.config.command_validity;
    let signed = sign(
        svc,
        c.id,
        &cmd.action_id,
        &cmd.agent_id,
        c.action,
        now,
        expires_at,
    );
    let mut am: agent_command::ActiveModel = cmd.clone().into();
    am.signed = ActiveValue::Set(serde_json::to_string(&signed).unwrap_or_default());
    am.expires_at = ActiveValue::Set(expires_at);
    agent_command::Entity::update(am).exec(&svc.db).await
}

/// Everything unanswered for an agent that just connected: commands it may have received
/// and not answered (sent again as they were, so its journal recognises them), and those
/// never sent.
pub async fn resend(svc: &ResponseService, agent: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
    if !(svc.config.enabled && switch_enabled(&svc.db).await?) {
        return Ok(());
    }
    let open = agent_command::Entity::find()
        .filter(agent_command::Column::AgentId.eq(agent))
        .filter(agent_command::Column::State.is_in(["pending", "accepted"]))
        .order_by_asc(agent_command::Column::CreatedAt)
        .all(&svc.db)
        .await?;
    for cmd in open {
        let cmd = if cmd.delivered_at.is_none()
            && (cmd.expires_at <= now || !signed_by_current_key(svc, &cmd))
        {
            resign(svc, cmd, now).await?
        } else {
            cmd
        };
        deliver(svc, &cmd, now).await?;
    }
    Ok(())
}

async fn expire(svc: &ResponseService, now: DateTime<Utc>) -> Result<(), ActionError> {
    // Never sent before the deadline: its agent stayed away.
    let stale = agent_command::Entity::find()
        .filter(agent_command::Column::State.eq("pending"))
        .filter(agent_command::Column::DeliveredAt.is_null())
        .filter(agent_command::Column::CreatedAt.lt(now - svc.config.delivery_deadline))
        .limit(1000)
        .all(&svc.db)
        .await?;
    for cmd in stale {
        let why = format!(
            "agent {} did not connect within {} minutes",
            cmd.agent_id,
            svc.config.delivery_deadline.num_minutes()
        );
        let mut am: agent_command::ActiveModel = cmd.clone().into();
        am.state = ActiveValue::Set("expired".into());
        am.reason = ActiveValue::Set(Some(why.clone()));
        agent_command::Entity::update(am).exec(&svc.db).await?;
        if cmd.purpose == "apply" {
            match transition_now(
                &svc.db,
                &cmd.action_id,
                ActionState::Expired,
                GATEWAY,
                Change {
                    detail: Some(why),
                    ..Change::default()
                },
                now,
            )
            .await
            {
                Ok(a) => announce(svc, a).await?,
                Err(ActionError::Transition { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    // Applied with an end: the kernel lifted it at that time.
    let lapsed = action::Entity::find()
        .filter(action::Column::State.eq(ActionState::Applied.as_str()))
        .filter(action::Column::ExpiresAt.lt(now))
        .limit(1000)
        .all(&svc.db)
        .await?;
    for a in lapsed {
        match transition_now(
            &svc.db,
            &a.id,
            ActionState::Expired,
            GATEWAY,
            Change {
                detail: Some("its time ended; the agent's kernel lifted it".into()),
                ..Change::default()
            },
            now,
        )
        .await
        {
            Ok(a) => {
                info!(action = %a.id, kind = %a.kind, target = %a.target, "action expired");
                announce(svc, a).await?
            }
            Err(ActionError::Transition { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
