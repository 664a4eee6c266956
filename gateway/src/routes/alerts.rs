//! `GET /api/alerts` (newest first, keyset pagination, filters) and `GET /api/alerts/{id}`,
//! each alert with its workflow.

use crate::error::ApiError;
use crate::routes::rules::RuleCatalog;
use actix_web::{web, HttpResponse};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use soc_core::db::alert;
use soc_core::Alert;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 500;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page (with the same `sort` and `order`).
    pub cursor: Option<String>,
    pub rule_id: Option<String>,
    pub severity: Option<String>,
    /// The triage priority, 1 (most urgent) to 5.
    pub priority: Option<u8>,
    pub source_ip: Option<String>,
    /// The host the alert concerns.
    pub host: Option<String>,
    /// A user the alert is grouped by or whose name its evidence carries.
    pub user: Option<String>,
    /// A MITRE ATT&CK technique: `T1110` also matches its sub-techniques (`T1110.001`).
    pub technique: Option<String>,
    /// A rule family (`ssh`, `http`, ...; see `GET /api/rules`).
    pub family: Option<String>,
    /// `new`, `acknowledged`, `investigating` or `resolved`.
    pub status: Option<String>,
    /// A user name; `none` for unassigned alerts.
    pub assignee: Option<String>,
    /// Alerts active at or after this time (RFC 3339): last seen no earlier.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Alerts active at or before this time: first seen no later.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Free text, case-insensitive, in the title, rule, source, host and grouping key.
    pub q: Option<String>,
    /// The alerts of one attacker's incident (`incident_id`, see `GET /api/incidents`).
    pub incident: Option<String>,
    /// `first_seen` (default), `last_seen` or `count`.
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
}

/// Where an alert stands with the analysts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertPage {
    /// Alerts, each with its `workflow`.
    #[schema(value_type = Vec<Object>)]
    pub alerts: Vec<AlertView>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
    /// How many alerts match the filters, on every page together.
    pub total: u64,
}

/// An alert id from a request, in the form ids are stored in.
pub(crate) fn alert_id(id: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::BadRequest(format!("`{id}` is not an alert id")))
}

/// The longest free-text query and filter value.
const MAX_TEXT: usize = 200;

fn text_param<'a>(name: &str, v: &'a Option<String>) -> Result<Option<&'a str>, ApiError> {
    match v.as_deref() {
        None => Ok(None),
        Some(t) if t.is_empty() || t.len() > MAX_TEXT || t.chars().any(char::is_control) => Err(
            ApiError::BadRequest(format!("`{name}` must have 1 to {MAX_TEXT} characters")),
        ),
        Some(t) => Ok(Some(t)),
    }
}

/// `%` and `_` in user text match themselves.
fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn contains(col: alert::Column, needle: &str) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
    Expr::expr(Func::lower(Expr::col((alert::Entity, col))))
        .like(LikeExpr::new(format!("%{}%", like_escaped(&needle.to_lowercase()))).escape('\\'))
}

/// The alerts the query's filters select (no order, no paging); shared with the aggregates.
pub fn filtered(
    q: &ListQuery,
    rules: &RuleCatalog,
) -> Result<sea_orm::Select<alert::Entity>, ApiError> {
    let mut query = alert::Entity::find();
    if let Some(f) = text_param("family", &q.family)? {
        let ids = rules.family(f);
        if ids.is_empty() {
            return Err(ApiError::BadRequest(format!(
                "no rule family `{f}` (see GET /api/rules)"
            )));
        }
        query = query.filter(alert::Column::RuleId.is_in(ids));
    }
    if let Some(r) = text_param("rule_id", &q.rule_id)? {
        query = query.filter(alert::Column::RuleId.eq(r));
    }
    if let Some(s) = &q.severity {
        if soc_core::Severity::parse(s).is_none() {
            return Err(ApiError::BadRequest(
                "severity must be one of low, medium, high, critical".into(),
            ));
        }
        query = query.filter(alert::Column::Severity.eq(s.as_str()));
    }
    if let Some(p) = q.priority {
        if !(1..=5).contains(&p) {
            return Err(ApiError::BadRequest("priority must be 1 to 5".into()));
        }
        query = query.filter(alert::Column::Priority.eq(i32::from(p)));
    }
    if let Some(ip) = text_param("source_ip", &q.source_ip)? {
        query = query.filter(alert::Column::SourceIp.eq(ip));
    }
    if let Some(h) = text_param("host", &q.host)? {
        query = query.filter(alert::Column::HostName.eq(h));
    }
    if let Some(u) = text_param("user", &q.user)? {
        let named = serde_json::to_string(u).unwrap_or_default();
        query = query.filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(alert::Column::GroupBy.eq("user.name"))
                        .add(alert::Column::GroupKey.eq(u)),
                )
                .add(
                    alert::Column::Evidence.like(
                        sea_orm::sea_query::LikeExpr::new(format!(
                            "%\"user\":{{%\"name\":{}%",
                            like_escaped(&named)
                        ))
                        .escape('\\'),
                    ),
                ),
        );
    }
    if let Some(t) = text_param("technique", &q.technique)? {
        let valid = t.len() <= 16
            && t.starts_with('T')
            && t[1..].chars().all(|c| c.is_ascii_digit() || c == '.');
        if !valid {
            return Err(ApiError::BadRequest(format!(
                "`{t}` is not an ATT&CK technique (T1110, T1110.001)"
            )));
        }
        // The stored JSON array holds quoted ids: `"T1110` starts `T1110` and `T1110.001`.
        query = query.filter(alert::Column::Mitre.like(format!("%\"{t}%")));
    }
    if let Some(s) = text_param("status", &q.status)? {
        if crate::routes::workflow::Status::parse(s).is_none() {
            return Err(ApiError::BadRequest(
                "status must be one of new, acknowledged, investigating, resolved".into(),
            ));
        }
        query = query.filter(alert::Column::Status.eq(s));
    }
    match text_param("assignee", &q.assignee)? {
        Some("none") => query = query.filter(alert::Column::Assignee.is_null()),
        Some(a) => query = query.filter(alert::Column::Assignee.eq(a)),
        None => {}
    }
    if let Some(t) = q.since {
        query = query.filter(alert::Column::LastSeen.gte(t));
    }
    if let Some(t) = q.until {
        query = query.filter(alert::Column::FirstSeen.lte(t));
    }
    if let Some(i) = text_param("incident", &q.incident)? {
        let id = uuid::Uuid::parse_str(i)
            .map_err(|_| ApiError::BadRequest(format!("`{i}` is not an incident id")))?
            .to_string();
        query = query.filter(
            Condition::any()
                .add(alert::Column::IncidentId.eq(id.as_str()))
                .add(
                    Condition::all()
                        .add(alert::Column::IncidentId.is_null())
                        .add(alert::Column::Id.eq(id.as_str())),
                ),
        );
    }
    if let Some(text) = text_param("q", &q.q)? {
        let mut any = Condition::any();
        for col in [
            alert::Column::Title,
            alert::Column::RuleId,
            alert::Column::SourceIp,
            alert::Column::HostName,
            alert::Column::GroupKey,
        ] {
            any = any.add(contains(col, text));
        }
        query = query.filter(any);
    }
    Ok(query)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SortKey {
    FirstSeen,
    LastSeen,
    Count,
}

impl SortKey {
    fn column(self) -> alert::Column {
        match self {
            SortKey::FirstSeen => alert::Column::FirstSeen,
            SortKey::LastSeen => alert::Column::LastSeen,
            SortKey::Count => alert::Column::Count,
        }
    }

    /// The cursor's value of this key for an alert.
    fn value_of(self, a: &Alert) -> i64 {
        match self {
            SortKey::FirstSeen => a.first_seen.timestamp_millis(),
            SortKey::LastSeen => a.last_seen.timestamp_millis(),
            SortKey::Count => a.count as i64,
        }
    }

    fn as_value(self, v: i64) -> sea_orm::Value {
        match self {
            SortKey::FirstSeen | SortKey::LastSeen => soc_core::time_from_millis(v).into(),
            SortKey::Count => v.into(),
        }
    }
}

/// Cursor: `<sort value>.<id>` of the last alert of a page.
fn parse_cursor(c: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid cursor `{c}`"));
    let (v, id) = c.split_once('.').ok_or_else(bad)?;
    let v: i64 = v.parse().map_err(|_| bad())?;
    uuid::Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((v, id.to_string()))
}

#[utoipa::path(get, path = "/api/alerts", tag = "alerts", params(ListQuery), responses((status = 200, body = AlertPage), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn list(
    db: web::Data<DatabaseConnection>,
    rules: web::Data<RuleCatalog>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let key = match q.sort.as_deref() {
        None | Some("first_seen") => SortKey::FirstSeen,
        Some("last_seen") => SortKey::LastSeen,
        Some("count") => SortKey::Count,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "sort must be first_seen, last_seen or count".into(),
            ))
        }
    };
    let ascending = match q.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(ApiError::BadRequest("order must be asc or desc".into())),
    };
    let mut query = filtered(&q, &rules)?;
    let total = query.clone().count(db.get_ref()).await?;
    let col = key.column();
    if let Some(c) = &q.cursor {
        let (v, id) = parse_cursor(c)?;
        let v = key.as_value(v);
        let (beyond, id_beyond) = if ascending {
            (col.gt(v.clone()), alert::Column::Id.gt(id))
        } else {
            (col.lt(v.clone()), alert::Column::Id.lt(id))
        };
        query = query.filter(
            Condition::any()
                .add(beyond)
                .add(Condition::all().add(col.eq(v)).add(id_beyond)),
        );
    }
    let order = if ascending {
        sea_orm::Order::Asc
    } else {
        sea_orm::Order::Desc
    };
    let rows = query
        .order_by(col, order.clone())
        .order_by(alert::Column::Id, order)
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
            .map(|a| format!("{}.{}", key.value_of(&a.alert), a.alert.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(AlertPage {
        alerts,
        next_cursor,
        total,
    }))
}

#[utoipa::path(get, path = "/api/alerts/{id}", tag = "alerts", params(("id" = String, Path, description = "The id")), responses((status = 200, description = "The alert with its workflow", body = Object), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn get(
    db: web::Data<DatabaseConnection>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = alert_id(&id)?;
    let row = alert::Entity::find_by_id(id.clone())
        .one(db.get_ref())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}")))?;
    Ok(HttpResponse::Ok().json(AlertView::try_from(row)?))
}

/// `GET /api/alerts/{id}/revisions`: the incident's milestones, oldest first: its first
/// revision, each doubling of its event count, each change of severity.
#[utoipa::path(get, path = "/api/alerts/{id}/revisions", tag = "alerts", params(("id" = String, Path, description = "The id")), responses((status = 200, description = "Milestones, oldest first", body = Vec<Object>), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn revisions(
    db: web::Data<DatabaseConnection>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    use soc_core::db::alert_revision;
    let id = alert_id(&id)?;
    if alert::Entity::find_by_id(id.clone())
        .one(db.get_ref())
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!("no alert {id}")));
    }
    let rows = alert_revision::Entity::find()
        .filter(alert_revision::Column::AlertId.eq(id))
        .order_by_asc(alert_revision::Column::Revision)
        .all(db.get_ref())
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}
