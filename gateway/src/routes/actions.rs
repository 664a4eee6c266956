//! Response actions: list, look at one with its history, propose one by hand, approve,
//! reject, revert; the runtime switch; and the audit log's check. Each change goes out on the
//! WebSocket as an `action` message.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::response::dispatch::{self, announce, new_command};
use crate::response::enrollment::valid_host;
use crate::response::{ActionView, ResponseService, TransitionView};
use crate::routes::workflow::check_text;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use soc_core::command::{Action, IpTarget};
use soc_core::db::{action, agent_command, alert};
use soc_core::response::actions::{history, propose, set_switch, switch_enabled, transition_now};
use soc_core::response::audit::{self, AuditRecord};
use soc_core::response::{ActionError, ActionState, Change, NewAction, ProposedBy};

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::NotFound(id) => ApiError::NotFound(format!("no action {id}")),
            ActionError::Transition { .. } => ApiError::Conflict(e.to_string()),
            ActionError::Db(e) => ApiError::Database(e),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// One state: `proposed`, `approved`, `rejected`, `dispatched`, `applied`, `failed`,
    /// `expired`, `reverted`.
    pub state: Option<String>,
    /// The alert the actions came from.
    pub alert_id: Option<String>,
    /// The host whose agent carries them out.
    pub host: Option<String>,
    /// At most this many, newest first (1 to 500; 100 by default).
    pub limit: Option<u64>,
}

fn action_id_param(id: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not an action id")))
}

async fn views(
    db: &DatabaseConnection,
    rows: Vec<action::Model>,
) -> Result<Vec<ActionView>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|a| a.id.clone()).collect();
    let commands = agent_command::Entity::find()
        .filter(agent_command::Column::ActionId.is_in(ids))
        .order_by_asc(agent_command::Column::CreatedAt)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|a| {
            let latest = commands.iter().rev().find(|c| c.action_id == a.id);
            ActionView::new(a, latest)
        })
        .collect())
}

#[utoipa::path(get, path = "/api/actions", tag = "response", params(ListQuery), responses((status = 200, description = "Actions, newest first", body = Vec<ActionView>), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `GET /api/actions`.
pub async fn list(
    q: web::Query<ListQuery>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("`limit` must be 1 to 500".into()));
    }
    let mut query = action::Entity::find()
        .order_by_desc(action::Column::UpdatedAt)
        .limit(limit);
    if let Some(s) = &q.state {
        let st = ActionState::parse(s)
            .ok_or_else(|| ApiError::BadRequest(format!("unknown state `{s}`")))?;
        query = query.filter(action::Column::State.eq(st.as_str()));
    }
    if let Some(a) = &q.alert_id {
        query = query.filter(action::Column::AlertId.eq(crate::routes::alerts::alert_id(a)?));
    }
    if let Some(h) = &q.host {
        if !valid_host(h) {
            return Err(ApiError::BadRequest(format!("`{h}` is not a host name")));
        }
        query = query.filter(action::Column::TargetHost.eq(h.clone()));
    }
    let rows = query.all(db.get_ref()).await?;
    Ok(HttpResponse::Ok().json(views(db.get_ref(), rows).await?))
}

/// A command sent for an action, as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CommandView {
    pub id: String,
    pub agent_id: String,
    /// `apply` or `revert`.
    pub purpose: String,
    pub state: String,
    pub reason: Option<String>,
    /// The id of the key that signed it.
    pub key_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub reported_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionDetail {
    pub action: ActionView,
    pub transitions: Vec<TransitionView>,
    pub commands: Vec<CommandView>,
}

#[utoipa::path(get, path = "/api/actions/{id}", tag = "response", params(("id" = String, Path, description = "Action id")), responses((status = 200, description = "The action, its transitions and commands", body = ActionDetail), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `GET /api/actions/{id}`.
pub async fn get(
    path: web::Path<String>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let id = action_id_param(&path)?;
    let a = action::Entity::find_by_id(id.clone())
        .one(db.get_ref())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no action {id}")))?;
    let commands = agent_command::Entity::find()
        .filter(agent_command::Column::ActionId.eq(id.clone()))
        .order_by_asc(agent_command::Column::CreatedAt)
        .all(db.get_ref())
        .await?;
    let transitions = history(db.get_ref(), &id).await?;
    Ok(HttpResponse::Ok().json(ActionDetail {
        action: ActionView::new(a, commands.last()),
        transitions: transitions.into_iter().map(Into::into).collect(),
        commands: commands
            .into_iter()
            .map(|c| CommandView {
                key_id: serde_json::from_str::<soc_core::command::SignedCommand>(&c.signed)
                    .ok()
                    .map(|s| s.key_id),
                id: c.id,
                agent_id: c.agent_id,
                purpose: c.purpose,
                state: c.state,
                reason: c.reason,
                created_at: c.created_at,
                expires_at: c.expires_at,
                delivered_at: c.delivered_at,
                reported_at: c.reported_at,
            })
            .collect(),
    }))
}

/// An action proposed by an analyst.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewActionBody {
    /// `block_ip`, `lock_user` or `isolate_host` (a process is killed only from an
    /// incident's own process events).
    pub kind: String,
    /// An address or range (`block_ip`), a user (`lock_user`), or the host (`isolate_host`).
    pub target: String,
    /// The host whose agent carries it out (for `isolate_host`, the target itself).
    pub target_host: Option<String>,
    /// How long a block lasts, in seconds (the policy's default otherwise; at most its
    /// maximum).
    pub ttl_secs: Option<u32>,
    /// The alert it answers, if any.
    pub alert_id: Option<String>,
    /// Why: kept in the action's history and the audit log.
    pub reason: String,
}

fn invalid(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

/// The typed command for a hand-made proposal, held to the policy's limits and protected
/// lists.
fn hand_made(
    svc: &ResponseService,
    b: &NewActionBody,
) -> Result<(Action, String, String), ApiError> {
    let target = b.target.trim();
    let limits = &svc.config.limits;
    match b.kind.as_str() {
        "block_ip" => {
            let t: IpTarget = target.parse().map_err(invalid)?;
            let net = t.net();
            let widest = match net {
                ipnet::IpNet::V4(_) => limits.widest_prefix_v4,
                ipnet::IpNet::V6(_) => limits.widest_prefix_v6,
            };
            if net.prefix_len() < widest {
                return Err(invalid(format!(
                    "{t} is wider than /{widest}, the widest block the policy allows"
                )));
            }
            if let Some(p) = svc
                .config
                .protected_networks
                .iter()
                .find(|p| p.contains(&net) || net.contains(*p))
            {
                return Err(invalid(format!("{t} overlaps the protected network {p}")));
            }
            let ttl = b.ttl_secs.unwrap_or(limits.block_ttl_secs);
            if ttl == 0 || ttl > limits.max_block_ttl_secs {
                return Err(invalid(format!(
                    "`ttl_secs` must be 1 to {}",
                    limits.max_block_ttl_secs
                )));
            }
            let host = b
                .target_host
                .clone()
                .ok_or_else(|| invalid("`target_host` names the host whose agent blocks".into()))?;
            Ok((
                Action::BlockIp {
                    targets: vec![t],
                    ttl_secs: ttl,
                },
                t.to_string(),
                host,
            ))
        }
        "lock_user" => {
            if !soc_core::command::valid_user_name(target) {
                return Err(invalid(format!("`{target}` is not a user name")));
            }
            if svc
                .config
                .protected_users
                .iter()
                .any(|u| u.eq_ignore_ascii_case(target))
            {
                return Err(invalid(format!("user {target} is protected")));
            }
            let host = b
                .target_host
                .clone()
                .ok_or_else(|| invalid("`target_host` names the host whose agent locks".into()))?;
            Ok((
                Action::LockUser {
                    user: target.to_string(),
                },
                target.to_string(),
                host,
            ))
        }
        "isolate_host" => Ok((Action::IsolateHost, target.to_string(), target.to_string())),
        other => Err(invalid(format!(
            "`{other}`: propose block_ip, lock_user or isolate_host"
        ))),
    }
}

#[utoipa::path(post, path = "/api/actions", tag = "response", request_body = NewActionBody, responses((status = 201, description = "The proposed action", body = ActionView), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json"), (status = 409, description = "Already proposed", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `POST /api/actions`: an analyst proposes an action; it waits for approval like any other.
pub async fn create(
    p: Principal,
    body: web::Json<NewActionBody>,
    svc: web::Data<ResponseService>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let reason = check_text("a reason", &b.reason)?;
    let (act, target, host) = hand_made(&svc, &b)?;
    if !valid_host(&host) {
        return Err(invalid(format!("`{host}` is not a host name")));
    }
    // An action for a host other than the alert's is its own action (the same block on an
    // edge firewall, say), not a duplicate of the one for the attacked host.
    let (alert_id, routed) = match &b.alert_id {
        Some(a) => {
            let id = crate::routes::alerts::alert_id(a)?;
            let found = alert::Entity::find_by_id(id.clone())
                .one(&svc.db)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
            (
                Some(uuid::Uuid::parse_str(&id).map_err(|_| invalid("alert id".into()))?),
                found.host_name.as_deref() != Some(host.as_str()),
            )
        }
        None => (None, false),
    };
    let now = Utc::now();
    let txn = svc.db.begin().await?;
    let created = propose(
        &txn,
        &NewAction {
            alert_id,
            action: act,
            target,
            target_field: "analyst".into(),
            target_host: host,
            proposed_by: ProposedBy::Analyst,
            proposer: p.username.clone(),
            routed,
        },
        now,
    )
    .await?
    .ok_or_else(|| ApiError::Conflict("this action was already proposed for this alert".into()))?;
    audit::append(
        &txn,
        &AuditRecord {
            actor: format!("user:{}", p.username),
            kind: "action.reason".into(),
            subject: created.id.clone(),
            detail: serde_json::json!({ "reason": reason }),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    let view = ActionView::new(created, None);
    svc.publish_proposal(&view);
    Ok(HttpResponse::Created().json(view))
}

/// An optional comment with a decision.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub comment: Option<String>,
}

async fn decide(
    p: &Principal,
    id: &str,
    to: ActionState,
    comment: Option<String>,
    svc: &ResponseService,
) -> Result<HttpResponse, ApiError> {
    let id = action_id_param(id)?;
    let comment = comment.map(|c| check_text("a comment", &c)).transpose()?;
    let a = action::Entity::find_by_id(id.clone())
        .one(&svc.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no action {id}")))?;
    // Four eyes: who proposed an action by hand does not approve it too.
    if to == ActionState::Approved && a.proposed_by == "analyst" && a.proposer == p.username {
        return Err(ApiError::Conflict(
            "an action you proposed must be approved by another analyst".into(),
        ));
    }
    let moved = transition_now(
        &svc.db,
        &id,
        to,
        &format!("user:{}", p.username),
        Change {
            detail: comment,
            ..Change::default()
        },
        Utc::now(),
    )
    .await?;
    svc.wake();
    announce(svc, moved.clone()).await?;
    Ok(HttpResponse::Ok().json(ActionView::new(moved, None)))
}

#[utoipa::path(post, path = "/api/actions/{id}/approve", tag = "response", params(("id" = String, Path, description = "Action id")), request_body = Decision, responses((status = 200, description = "The approved action", body = ActionView), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json"), (status = 409, description = "Not in a state to approve", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `POST /api/actions/{id}/approve`.
pub async fn approve(
    p: Principal,
    path: web::Path<String>,
    body: Option<web::Json<Decision>>,
    svc: web::Data<ResponseService>,
) -> Result<HttpResponse, ApiError> {
    let comment = body.and_then(|b| b.into_inner().comment);
    decide(&p, &path, ActionState::Approved, comment, &svc).await
}

#[utoipa::path(post, path = "/api/actions/{id}/reject", tag = "response", params(("id" = String, Path, description = "Action id")), request_body = Decision, responses((status = 200, description = "The rejected action", body = ActionView), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json"), (status = 409, description = "Not in a state to reject", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `POST /api/actions/{id}/reject`.
pub async fn reject(
    p: Principal,
    path: web::Path<String>,
    body: Option<web::Json<Decision>>,
    svc: web::Data<ResponseService>,
) -> Result<HttpResponse, ApiError> {
    let comment = body.and_then(|b| b.into_inner().comment);
    decide(&p, &path, ActionState::Rejected, comment, &svc).await
}

#[utoipa::path(post, path = "/api/actions/{id}/revert", tag = "response", params(("id" = String, Path, description = "Action id")), request_body = Decision, responses((status = 202, description = "The undo command is on its way; the action becomes `reverted` when the agent reports it done", body = ActionView), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json"), (status = 409, description = "Not applied, or cannot be undone", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `POST /api/actions/{id}/revert`: undo an applied action (unblock, unlock, release).
pub async fn revert(
    p: Principal,
    path: web::Path<String>,
    body: Option<web::Json<Decision>>,
    svc: web::Data<ResponseService>,
) -> Result<HttpResponse, ApiError> {
    let id = action_id_param(&path)?;
    let comment = body
        .and_then(|b| b.into_inner().comment)
        .map(|c| check_text("a comment", &c))
        .transpose()?;
    let a = action::Entity::find_by_id(id.clone())
        .one(&svc.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no action {id}")))?;
    if a.state != ActionState::Applied.as_str() {
        return Err(ApiError::Conflict(format!(
            "action {id} is {}; only an applied action can be reverted",
            a.state
        )));
    }
    let act: Action = serde_json::from_str(&a.params)
        .map_err(|e| ApiError::InvalidData(format!("action {id}: {e}")))?;
    let undo = match act {
        Action::BlockIp { targets, .. } => Action::UnblockIp { targets },
        Action::LockUser { user } => Action::UnlockUser { user },
        Action::IsolateHost => Action::ReleaseHost,
        other => {
            return Err(ApiError::Conflict(format!(
                "{} cannot be undone",
                other.kind()
            )))
        }
    };
    let agent = a
        .agent_id
        .clone()
        .ok_or_else(|| ApiError::Conflict(format!("action {id} has no agent")))?;
    let now = Utc::now();
    let by = format!("user:{}", p.username);
    let cmd = new_command(
        &svc,
        &id,
        &agent,
        "revert",
        undo,
        Some(format!("requested by {by}")),
        now,
    );
    let txn = svc.db.begin().await?;
    audit::lock(&txn).await?;
    agent_command::Entity::insert(agent_command::ActiveModel::from(cmd.clone()))
        .exec(&txn)
        .await?;
    audit::append(
        &txn,
        &AuditRecord {
            actor: by,
            kind: "action.revert_requested".into(),
            subject: id.clone(),
            detail: serde_json::json!({ "comment": comment, "command": cmd.id }),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    dispatch::deliver(&svc, &cmd, now).await?;
    svc.wake();
    Ok(HttpResponse::Accepted().json(ActionView::new(a, Some(&cmd))))
}

/// Whether response runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SwitchView {
    /// The runtime switch (admins turn it off in an emergency).
    pub enabled: bool,
    /// The response policy file's `enabled`.
    pub policy_enabled: bool,
}

#[utoipa::path(get, path = "/api/response/switch", tag = "response", responses((status = 200, description = "Whether response runs", body = SwitchView), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `GET /api/response/switch`.
pub async fn switch_get(svc: web::Data<ResponseService>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(SwitchView {
        enabled: switch_enabled(&svc.db).await?,
        policy_enabled: svc.config.enabled,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchBody {
    pub enabled: bool,
}

#[utoipa::path(post, path = "/api/response/switch", tag = "response", request_body = SwitchBody, responses((status = 200, description = "Whether response runs now", body = SwitchView), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `POST /api/response/switch`: off stops every automatic approval and every dispatch.
pub async fn switch_set(
    p: Principal,
    body: web::Json<SwitchBody>,
    svc: web::Data<ResponseService>,
) -> Result<HttpResponse, ApiError> {
    set_switch(
        &svc.db,
        body.enabled,
        &format!("user:{}", p.username),
        Utc::now(),
    )
    .await?;
    tracing::warn!(user = %p.username, enabled = body.enabled, "response switch changed");
    svc.hub.publish_message(&serde_json::json!({
        "type": "response_switch",
        "enabled": body.enabled,
    }));
    svc.wake();
    Ok(HttpResponse::Ok().json(SwitchView {
        enabled: body.enabled,
        policy_enabled: svc.config.enabled,
    }))
}

/// The audit log's check.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditCheck {
    pub intact: bool,
    /// Entries checked (when intact).
    pub entries: Option<i64>,
    /// What was found (when not).
    pub problem: Option<String>,
}

#[utoipa::path(get, path = "/api/audit/verify", tag = "response", responses((status = 200, description = "Whether the audit log is intact", body = AuditCheck), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `GET /api/audit/verify`: the same check as `soc audit verify`.
pub async fn audit_verify(db: web::Data<DatabaseConnection>) -> Result<HttpResponse, ApiError> {
    let r = audit::verify(db.get_ref()).await;
    Ok(HttpResponse::Ok().json(match r {
        Ok(n) => AuditCheck {
            intact: true,
            entries: Some(n),
            problem: None,
        },
        Err(audit::AuditError::Db(e)) => return Err(ApiError::InvalidData(e)),
        Err(e) => AuditCheck {
            intact: false,
            entries: None,
            problem: Some(e.to_string()),
        },
    }))
}
