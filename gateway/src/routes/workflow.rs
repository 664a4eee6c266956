//! Working an alert: status, assignee, resolution with its reason, notes, and the history of
//! who changed what when. Every change is one transaction with its history rows, and goes out
//! on the WebSocket as `{"type":"workflow",...}`.

use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::hub::AlertHub;
use crate::routes::alerts::{alert_id, Workflow};
use actix_web::{web, HttpResponse};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use soc_core::db::{alert, alert_event, user};

/// Longest note or resolution reason.
pub const MAX_TEXT: usize = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Acknowledged,
    Investigating,
    Resolved,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::New,
        Status::Acknowledged,
        Status::Investigating,
        Status::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Acknowledged => "acknowledged",
            Status::Investigating => "investigating",
            Status::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    TruePositive,
    FalsePositive,
    Benign,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::TruePositive => "true_positive",
            Resolution::FalsePositive => "false_positive",
            Resolution::Benign => "benign",
        }
    }
}

/// Present-and-null (`"assignee": null`, unassign) told apart from absent (no change).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowChange {
    pub status: Option<Status>,
    /// A user name, or null to unassign.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub assignee: Option<Option<String>>,
    /// Needed when resolving.
    pub resolution: Option<Resolution>,
    /// Why: needed with a resolution.
    pub reason: Option<String>,
}

pub(crate) fn check_text(what: &str, text: &str) -> Result<String, ApiError> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > MAX_TEXT {
        return Err(ApiError::BadRequest(format!(
            "{what} must have 1 to {MAX_TEXT} characters"
        )));
    }
    Ok(t.to_string())
}

pub(crate) fn event(
    alert_id: &str,
    actor: &str,
    kind: &str,
    from: Option<String>,
    to: Option<String>,
    text: Option<String>,
    at: chrono::DateTime<Utc>,
) -> alert_event::ActiveModel {
    alert_event::ActiveModel {
        alert_id: Set(alert_id.to_string()),
        at: Set(at),
        actor: Set(actor.to_string()),
        kind: Set(kind.to_string()),
        from_value: Set(from),
        to_value: Set(to),
        text: Set(text),
        ..Default::default()
    }
}

fn announce(hub: &AlertHub, alert_id: &str, workflow: &Workflow, events: &[alert_event::Model]) {
    hub.publish_message(&json!({
        "type": "workflow",
        "alert_id": alert_id,
        "workflow": workflow,
        "events": events,
    }));
}

#[utoipa::path(patch, path = "/api/alerts/{id}", tag = "workflow", params(("id" = String, Path, description = "The id")), request_body = WorkflowChange, responses((status = 200, body = crate::routes::alerts::Workflow), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `PATCH /api/alerts/{id}`: move the alert through its workflow.
pub async fn update(
    p: Principal,
    id: web::Path<String>,
    body: web::Json<WorkflowChange>,
    db: web::Data<DatabaseConnection>,
    hub: web::Data<AlertHub>,
) -> Result<HttpResponse, ApiError> {
    let id = alert_id(&id)?;
    let change = body.into_inner();
    let reason = change
        .reason
        .as_deref()
        .map(|r| check_text("a reason", r))
        .transpose()?;
    if let Some(Some(name)) = &change.assignee {
        let assignee = user::Entity::find()
            .filter(user::Column::Username.eq(name.as_str()))
            .one(db.get_ref())
            .await?;
        let can_work = assignee.is_some_and(|u| {
            !u.disabled && Role::parse(&u.role).is_some_and(|r| r >= Role::Analyst)
        });
        if !can_work {
            return Err(ApiError::BadRequest(format!(
                "`{name}` is not an enabled analyst or admin"
            )));
        }
    }
    let now = Utc::now();
    let txn = db.begin().await?;
    let row = alert::Entity::find_by_id(id.clone())
        .one(&txn)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    let current = Status::parse(&row.status).unwrap_or(Status::New);
    let target = change.status.unwrap_or(current);
    if target == Status::Resolved {
        if current != Status::Resolved && (change.resolution.is_none() || reason.is_none()) {
            return Err(ApiError::BadRequest(
                "resolving needs a `resolution` (true_positive, false_positive, benign) and a `reason`"
                    .into(),
            ));
        }
        if change.resolution.is_some() != reason.is_some() {
            return Err(ApiError::BadRequest(
                "a resolution and its reason go together".into(),
            ));
        }
    } else if change.resolution.is_some() {
        return Err(ApiError::BadRequest(
            "a resolution is given when resolving (`status`: `resolved`)".into(),
        ));
    }
    let actor = p.username.as_str();
    let mut events = Vec::new();
    let mut m = row.clone().into_active_model();
    if target != current {
        m.status = Set(target.as_str().to_string());
        events.push(event(
            &id,
            actor,
            "status",
            Some(current.as_str().into()),
            Some(target.as_str().into()),
            None,
            now,
        ));
        if current == Status::Resolved {
            // Reopened: the old resolution no longer holds; the history keeps it.
            m.resolution = Set(None);
            m.resolution_reason = Set(None);
        }
    }
    if let (Some(resolution), Some(reason)) = (change.resolution, reason) {
        m.resolution = Set(Some(resolution.as_str().to_string()));
        m.resolution_reason = Set(Some(reason.clone()));
        events.push(event(
            &id,
            actor,
            "resolution",
            row.resolution.clone(),
            Some(resolution.as_str().into()),
            Some(reason),
            now,
        ));
    }
    if let Some(assignee) = change.assignee {
        if assignee != row.assignee {
            m.assignee = Set(assignee.clone());
            events.push(event(
                &id,
                actor,
                "assignee",
                row.assignee.clone(),
                assignee,
                None,
                now,
            ));
        }
    }
    if events.is_empty() {
        txn.rollback().await?;
        return Ok(HttpResponse::Ok().json(Workflow::from(&row)));
    }
    m.workflow_updated_at = Set(Some(now));
    let updated = m.update(&txn).await?;
    let mut stored = Vec::with_capacity(events.len());
    for e in events {
        stored.push(e.insert(&txn).await?);
    }
    txn.commit().await?;
    let workflow = Workflow::from(&updated);
    tracing::info!(user = %p.username, alert = %id, status = %workflow.status, "alert workflow changed");
    announce(&hub, &id, &workflow, &stored);
    Ok(HttpResponse::Ok().json(workflow))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    pub text: String,
}

#[utoipa::path(post, path = "/api/alerts/{id}/notes", tag = "workflow", params(("id" = String, Path, description = "The id")), request_body = NewNote, responses((status = 201, description = "The note, as a history entry", body = Object), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `POST /api/alerts/{id}/notes`.
pub async fn add_note(
    p: Principal,
    id: web::Path<String>,
    body: web::Json<NewNote>,
    db: web::Data<DatabaseConnection>,
    hub: web::Data<AlertHub>,
) -> Result<HttpResponse, ApiError> {
    let id = alert_id(&id)?;
    let text = check_text("a note", &body.text)?;
    let row = alert::Entity::find_by_id(id.clone())
        .one(db.get_ref())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    let note = event(&id, &p.username, "note", None, None, Some(text), Utc::now())
        .insert(db.get_ref())
        .await?;
    announce(
        &hub,
        &id,
        &Workflow::from(&row),
        std::slice::from_ref(&note),
    );
    Ok(HttpResponse::Created().json(note))
}

#[utoipa::path(get, path = "/api/alerts/{id}/history", tag = "workflow", params(("id" = String, Path, description = "The id")), responses((status = 200, description = "History entries, oldest first", body = Vec<Object>), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `GET /api/alerts/{id}/history`: oldest first.
pub async fn history(
    id: web::Path<String>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let id = alert_id(&id)?;
    if alert::Entity::find_by_id(id.clone())
        .one(db.get_ref())
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("no alert {id}")));
    }
    let events = alert_event::Entity::find()
        .filter(alert_event::Column::AlertId.eq(id))
        .order_by_asc(alert_event::Column::Id)
        .all(db.get_ref())
        .await?;
    Ok(HttpResponse::Ok().json(events))
}
