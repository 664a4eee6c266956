//! `GET /api/alerts` (newest first, keyset pagination, filters) and `GET /api/alerts/{id}`,
//! each alert with its workflow.

use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use soc_core::db::alert;
use soc_core::Alert;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub rule_id: Option<String>,
    pub severity: Option<String>,
    pub source_ip: Option<String>,
    /// `new`, `acknowledged`, `investigating` or `resolved`.
    pub status: Option<String>,
    /// A user name; `none` for unassigned alerts.
    pub assignee: Option<String>,
}

/// Where an alert stands with the analysts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Workflow {
    pub status: String,
    pub assignee: Option<String>,
    pub resolution: Option<String>,
    pub resolution_reason: Option<String>,
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<&alert::Model> for Workflow {
    fn from(m: &alert::Model) -> Self {
        Workflow {
            status: m.status.clone(),
            assignee: m.assignee.clone(),
            resolution: m.resolution.clone(),
            resolution_reason: m.resolution_reason.clone(),
            updated_at: m.workflow_updated_at,
        }
    }
}

/// An alert as the API serves it: the detection, and the analysts' workflow beside it.
#[derive(Debug, Serialize, Deserialize)]
pub struct AlertView {
    #[serde(flatten)]
    pub alert: Alert,
    pub workflow: Workflow,
}

impl TryFrom<alert::Model> for AlertView {
    type Error = ApiError;
    fn try_from(m: alert::Model) -> Result<Self, ApiError> {
        let workflow = Workflow::from(&m);
        let alert = Alert::try_from(m).map_err(|e| ApiError::InvalidData(e.to_string()))?;
        Ok(AlertView { alert, workflow })
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AlertPage {
    pub alerts: Vec<AlertView>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Cursor: `<first_seen ms>.<id>` of the last alert of a page.
fn parse_cursor(c: &str) -> Result<(chrono::DateTime<chrono::Utc>, String), ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid cursor `{c}`"));
    let (ms, id) = c.split_once('.').ok_or_else(bad)?;
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    uuid::Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((soc_core::time_from_millis(ms), id.to_string()))
}

pub async fn list(
    db: web::Data<DatabaseConnection>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let mut query = alert::Entity::find();
    if let Some(r) = &q.rule_id {
        query = query.filter(alert::Column::RuleId.eq(r.as_str()));
    }
    if let Some(s) = &q.severity {
        if soc_core::Severity::parse(s).is_none() {
            return Err(ApiError::BadRequest(
                "severity must be one of low, medium, high, critical".into(),
            ));
        }
        query = query.filter(alert::Column::Severity.eq(s.as_str()));
    }
    if let Some(ip) = &q.source_ip {
        query = query.filter(alert::Column::SourceIp.eq(ip.as_str()));
    }
    if let Some(s) = &q.status {
        if crate::routes::workflow::Status::parse(s).is_none() {
            return Err(ApiError::BadRequest(
                "status must be one of new, acknowledged, investigating, resolved".into(),
            ));
        }
        query = query.filter(alert::Column::Status.eq(s.as_str()));
    }
    match q.assignee.as_deref() {
        Some("none") => query = query.filter(alert::Column::Assignee.is_null()),
        Some(a) => query = query.filter(alert::Column::Assignee.eq(a)),
        None => {}
    }
    if let Some(c) = &q.cursor {
        let (t, id) = parse_cursor(c)?;
        query = query.filter(
            Condition::any().add(alert::Column::FirstSeen.lt(t)).add(
                Condition::all()
                    .add(alert::Column::FirstSeen.eq(t))
                    .add(alert::Column::Id.lt(id)),
            ),
        );
    }
    let rows = query
        .order_by_desc(alert::Column::FirstSeen)
        .order_by_desc(alert::Column::Id)
        .limit(limit + 1)
        .all(db.get_ref())
        .await?;
    let has_more = rows.len() as u64 > limit;
    let mut alerts = Vec::with_capacity(rows.len());
    for m in rows.into_iter().take(limit as usize) {
        alerts.push(AlertView::try_from(m)?);
    }
    let next_cursor = if has_more {
        alerts
            .last()
            .map(|a| format!("{}.{}", a.alert.first_seen.timestamp_millis(), a.alert.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(AlertPage {
        alerts,
        next_cursor,
    }))
}

pub async fn get(
    db: web::Data<DatabaseConnection>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::BadRequest(format!("`{id}` is not an alert id")));
    }
    let row = alert::Entity::find_by_id(id.clone())
        .one(db.get_ref())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    Ok(HttpResponse::Ok().json(AlertView::try_from(row)?))
}
