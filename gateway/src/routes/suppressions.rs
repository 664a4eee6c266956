//! Suppressions: mute a rule for one source address, user or host until a time, with a
//! reason. The processor applies them and counts what they withheld; revoking keeps the row
//! as the record of what it hid.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::workflow::{check_text, event};
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use soc_core::db::alert;
use soc_core::db::suppression::{self, Field};

/// The longest a rule may be muted in one go: a suppression is a decision to revisit.
pub const MAX_DAYS: i64 = 365;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSuppression {
    pub rule_id: String,
    /// `source.ip`, `user.name` or `host.name`.
    #[schema(value_type = String)]
    pub field: Field,
    pub value: String,
    /// When it ends (RFC 3339); in the future and at most a year away.
    pub until: DateTime<Utc>,
    pub reason: String,
    /// The alert it was made from: the alert's history records it.
    pub alert_id: Option<String>,
}

/// A suppression as the API serves it.
#[derive(Debug, Serialize)]
pub struct SuppressionView {
    #[serde(flatten)]
    pub row: suppression::Model,
    /// In force now: neither revoked nor past `until`.
    pub active: bool,
}

impl SuppressionView {
    fn new(row: suppression::Model, now: DateTime<Utc>) -> Self {
        SuppressionView {
            active: row.active(now),
            row,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `active` (the default) or `all`.
    pub state: Option<String>,
}

fn check_value(field: Field, value: &str) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 256 || v.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "`value` must have 1 to 256 characters and no control characters".into(),
        ));
    }
    if field == Field::SourceIp {
        let ip: std::net::IpAddr = v
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("`{v}` is not an IP address")))?;
        return Ok(ip.to_string());
    }
    Ok(v.to_string())
}

fn check_rule(rule_id: &str) -> Result<String, ApiError> {
    let r = rule_id.trim();
    if r.is_empty() || r.len() > 200 || r.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::BadRequest(
            "`rule_id` must have 1 to 200 characters and no spaces".into(),
        ));
    }
    Ok(r.to_string())
}

#[utoipa::path(get, path = "/api/suppressions", tag = "suppressions", params(ListQuery), responses((status = 200, description = "Suppressions, newest first", body = Vec<Object>), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `GET /api/suppressions`: newest first.
pub async fn list(
    q: web::Query<ListQuery>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    let mut query = suppression::Entity::find().order_by_desc(suppression::Column::CreatedAt);
    match q.state.as_deref() {
        None | Some("active") => {
            query = query
                .filter(suppression::Column::RevokedAt.is_null())
                .filter(suppression::Column::Until.gt(now));
        }
        Some("all") => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "state `{other}`: use `active` or `all`"
            )))
        }
    }
    let rows = query.all(db.get_ref()).await?;
    let out: Vec<SuppressionView> = rows
        .into_iter()
        .map(|r| SuppressionView::new(r, now))
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(post, path = "/api/suppressions", tag = "suppressions", request_body = NewSuppression, responses((status = 201, description = "The suppression", body = Object), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `POST /api/suppressions`.
pub async fn create(
    p: Principal,
    body: web::Json<NewSuppression>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    let b = body.into_inner();
    let rule_id = check_rule(&b.rule_id)?;
    let value = check_value(b.field, &b.value)?;
    let reason = check_text("a reason", &b.reason)?;
    if b.until <= now || b.until > now + Duration::days(MAX_DAYS) {
        return Err(ApiError::BadRequest(format!(
            "`until` must be in the future and at most {MAX_DAYS} days away"
        )));
    }
    let alert_id = b
        .alert_id
        .as_deref()
        .map(crate::routes::alerts::alert_id)
        .transpose()?;
    let row = suppression::Model {
        id: uuid::Uuid::new_v4().to_string(),
        rule_id,
        field: b.field.as_str().to_string(),
        value,
        until: b.until,
        reason,
        created_by: p.username.clone(),
        created_at: now,
        revoked_by: None,
        revoked_at: None,
        hidden: 0,
        last_hidden_at: None,
    };
    let txn = db.begin().await?;
    if let Some(id) = &alert_id {
        if alert::Entity::find_by_id(id.clone())
            .one(&txn)
            .await?
            .is_none()
        {
            return Err(ApiError::NotFound(format!("no alert {id}")));
        }
        let what = format!("{} {} = {}", row.rule_id, row.field, row.value);
        event(
            id,
            &p.username,
            "suppressed",
            None,
            Some(what),
            Some(row.reason.clone()),
            now,
        )
        .insert(&txn)
        .await?;
    }
    suppression::Entity::insert(row.clone().into_active_model())
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    tracing::info!(user = %p.username, rule = %row.rule_id, field = %row.field, until = %row.until, "suppression created");
    Ok(HttpResponse::Created().json(SuppressionView::new(row, now)))
}

#[utoipa::path(delete, path = "/api/suppressions/{id}", tag = "suppressions", params(("id" = String, Path, description = "The id")), responses((status = 200, description = "The revoked suppression", body = Object), (status = 409, description = "Already revoked", body = crate::error::Problem, content_type = "application/problem+json"), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `DELETE /api/suppressions/{id}`: revoke; the row stays with its counts.
pub async fn revoke(
    p: Principal,
    id: web::Path<String>,
    db: web::Data<DatabaseConnection>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not a suppression id")))?
        .to_string();
    let now = Utc::now();
    let row = suppression::Entity::find_by_id(id.clone())
        .one(db.get_ref())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no suppression {id}")))?;
    if row.revoked_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "suppression {id} is already revoked"
        )));
    }
    let mut m = row.into_active_model();
    m.revoked_at = Set(Some(now));
    m.revoked_by = Set(Some(p.username.clone()));
    let row = m.update(db.get_ref()).await?;
    tracing::info!(user = %p.username, suppression = %id, "suppression revoked");
    Ok(HttpResponse::Ok().json(SuppressionView::new(row, now)))
}
