//! `GET /api/incidents`: the alerts grouped by attacker incident, the most recently active
//! first. A scanner that trips eleven rules is one incident with eleven rule hits, each with
//! its ATT&CK techniques, count and workflow status.

use crate::error::ApiError;
use crate::routes::alerts::{filtered, ListQuery};
use crate::routes::rules::RuleCatalog;
use actix_web::{web, HttpResponse};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use soc_core::db::alert;
use soc_core::{Alert, Severity};
use std::collections::BTreeMap;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 200;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IncidentQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u64>,
    /// Incidents to skip: `next_offset` of the previous page.
    pub offset: Option<u64>,
    /// Incidents with an alert of this severity.
    pub severity: Option<String>,
    /// The attacker's address.
    pub source_ip: Option<String>,
    /// Incidents with an alert in this workflow status.
    pub status: Option<String>,
    /// Incidents active at or after this time (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Free text, as for alerts.
    pub q: Option<String>,
}

/// One rule's alert inside an incident.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleHit {
    #[schema(value_type = String)]
    pub alert_id: uuid::Uuid,
    pub rule_id: String,
    pub title: String,
    pub severity: String,
    /// ATT&CK technique ids.
    pub mitre: Vec<String>,
    /// Matching events (or attempts) the rule counted.
    pub count: u64,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
    /// The alert's workflow status.
    pub status: String,
}

/// An attacker's incident: the rule hits against one source close in time.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentView {
    #[schema(value_type = String)]
    pub id: uuid::Uuid,
    /// The source address, else the key the rules grouped by (a user, a host).
    pub attacker: String,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
    /// The highest severity of its hits.
    pub severity: String,
    /// Every ATT&CK technique of its hits, once.
    pub mitre: Vec<String>,
    /// `new` while any hit is new, else the least advanced status of its hits.
    pub status: String,
    /// The rule hits, most severe first.
    pub hits: Vec<RuleHit>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentPage {
    pub incidents: Vec<IncidentView>,
    /// Pass as `offset` for the next (less recently active) page; absent on the last.
    pub next_offset: Option<u64>,
    /// How many incidents match, on every page together.
    pub total: u64,
}

/// Workflow statuses from least to most advanced.
const STATUS_ORDER: [&str; 4] = ["new", "acknowledged", "investigating", "resolved"];

fn status_rank(s: &str) -> usize {
    STATUS_ORDER.iter().position(|x| *x == s).unwrap_or(0)
}

/// Group stored alerts (with their status) into incidents, in the order of `ids`.
pub fn group(ids: &[String], rows: Vec<(Alert, String)>) -> Vec<IncidentView> {
    let mut by_incident: BTreeMap<String, Vec<(Alert, String)>> = BTreeMap::new();
    for (a, status) in rows {
        let key = a.incident_id.unwrap_or(a.id).to_string();
        by_incident.entry(key).or_default().push((a, status));
    }
    ids.iter()
        .filter_map(|id| {
            let mut hits = by_incident.remove(id)?;
            hits.sort_by(|(a, _), (b, _)| {
                b.severity
                    .cmp(&a.severity)
                    .then(a.first_seen.cmp(&b.first_seen))
            });
            let first = &hits.first()?.0;
            let mut mitre: Vec<String> = Vec::new();
            for (a, _) in &hits {
                for t in &a.mitre {
                    if !mitre.contains(t) {
                        mitre.push(t.clone());
                    }
                }
            }
            Some(IncidentView {
                id: id.parse().ok()?,
                attacker: first.attacker().to_string(),
                first_seen: hits.iter().map(|(a, _)| a.first_seen).min()?,
                last_seen: hits.iter().map(|(a, _)| a.last_seen).max()?,
                severity: hits
                    .iter()
                    .map(|(a, _)| a.severity)
                    .max()
                    .unwrap_or(Severity::Low)
                    .as_str()
                    .to_string(),
                mitre,
                status: hits
                    .iter()
                    .map(|(_, s)| s.as_str())
                    .min_by_key(|s| status_rank(s))
                    .unwrap_or("new")
                    .to_string(),
                hits: hits
                    .into_iter()
                    .map(|(a, status)| RuleHit {
                        alert_id: a.id,
                        rule_id: a.rule_id,
                        title: a.title,
                        severity: a.severity.as_str().to_string(),
                        mitre: a.mitre,
                        count: a.count,
                        first_seen: a.first_seen,
                        last_seen: a.last_seen,
                        status,
                    })
                    .collect(),
            })
        })
        .collect()
}

#[utoipa::path(get, path = "/api/incidents", tag = "alerts", params(IncidentQuery), responses((status = 200, body = IncidentPage), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn list(
    db: web::Data<DatabaseConnection>,
    rules: web::Data<RuleCatalog>,
    q: web::Query<IncidentQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let offset = q.offset.unwrap_or(0);
    if offset > i64::MAX as u64 {
        return Err(ApiError::BadRequest("offset is too large".into()));
    }
    // The alert filters select the incidents that have a matching alert.
    let alerts = ListQuery {
        severity: q.severity.clone(),
        source_ip: q.source_ip.clone(),
        status: q.status.clone(),
        since: q.since,
        q: q.q.clone(),
        ..ListQuery::default()
    };
    let incident = Expr::col((alert::Entity, alert::Column::IncidentId))
        .if_null(Expr::col((alert::Entity, alert::Column::Id)));
    let grouped = filtered(&alerts, &rules)?
        .select_only()
        .expr_as(incident.clone(), "incident")
        .group_by(incident);
    let total = grouped.clone().count(db.get_ref()).await?;
    let ids: Vec<String> = grouped
        .order_by(
            Expr::col((alert::Entity, alert::Column::LastSeen)).max(),
            Order::Desc,
        )
        .order_by(Expr::cust("incident"), Order::Asc)
        .limit(limit)
        .offset(offset)
        .into_tuple()
        .all(db.get_ref())
        .await?;
    let models = alert::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(alert::Column::IncidentId.is_in(ids.clone()))
                .add(
                    sea_orm::Condition::all()
                        .add(alert::Column::IncidentId.is_null())
                        .add(alert::Column::Id.is_in(ids.clone())),
                ),
        )
        .all(db.get_ref())
        .await?;
    let mut rows = Vec::with_capacity(models.len());
    for m in models {
        let status = m.status.clone();
        let a = Alert::try_from(m).map_err(|e| ApiError::InvalidData(e.to_string()))?;
        rows.push((a, status));
    }
    let incidents = group(&ids, rows);
    let next_offset = (offset + (ids.len() as u64) < total).then(|| offset + ids.len() as u64);
    Ok(HttpResponse::Ok().json(IncidentPage {
        incidents,
        next_offset,
        total,
    }))
}
