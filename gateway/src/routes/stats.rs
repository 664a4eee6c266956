//! Aggregates for the dashboard's charts and for scripts: alerts over time by severity, top
//! sources, rules and hosts, and the pipeline's counters. Each takes the alert list's
//! filters (`GET /api/alerts`), so a chart shows what the list shows.

use crate::error::ApiError;
use crate::hub::AlertHub;
use crate::metrics::MetricsExport;
use crate::routes::alerts::{filtered, ListQuery};
use crate::routes::rules::RuleCatalog;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::sea_query::{Alias, Expr, Func};
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use serde_json::json;
use soc_core::db::alert;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// Buckets one answer may hold.
pub const MAX_BUCKETS: i64 = 1500;
/// Alerts one time series reads; beyond it the answer says it is `truncated`.
pub const MAX_ROWS: u64 = 100_000;

/// Split `own` parameters from the alert filters, which must parse as [`ListQuery`].
fn split_query(
    req: &HttpRequest,
    own: &[&str],
) -> Result<(BTreeMap<String, String>, ListQuery), ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("query: {e}")))?;
    let mut mine = BTreeMap::new();
    let mut rest = Vec::new();
    for (k, v) in pairs {
        if own.contains(&k.as_str()) {
            if mine.insert(k.clone(), v).is_some() {
                return Err(ApiError::BadRequest(format!("`{k}` given twice")));
            }
        } else if matches!(k.as_str(), "limit" | "cursor" | "sort" | "order") {
            return Err(ApiError::BadRequest(format!("`{k}` does not apply here")));
        } else {
            rest.push((k, v));
        }
    }
    let encoded = serde_urlencoded::to_string(&rest)
        .map_err(|e| ApiError::BadRequest(format!("query: {e}")))?;
    let filters: ListQuery = serde_urlencoded::from_str(&encoded)
        .map_err(|e| ApiError::BadRequest(format!("query: {e}")))?;
    Ok((mine, filters))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    pub t: DateTime<Utc>,
    pub low: u64,
    pub medium: u64,
    pub high: u64,
    pub critical: u64,
}

#[utoipa::path(get, path = "/api/stats/alerts-over-time", tag = "stats", params(("bucket" = Option<String>, Query, description = "minute, hour (default) or day"), crate::routes::alerts::ListQuery), responses((status = 200, description = "Buckets by severity", body = Object), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `GET /api/stats/alerts-over-time?bucket=minute|hour|day`: alerts by the bucket of their
/// first event, by severity. Without `since`, the last 24 hours (minute: the last 6 hours).
pub async fn over_time(
    req: HttpRequest,
    db: web::Data<DatabaseConnection>,
    rules: web::Data<RuleCatalog>,
) -> Result<HttpResponse, ApiError> {
    let (own, mut filters) = split_query(&req, &["bucket"])?;
    let (name, width) = match own.get("bucket").map(String::as_str) {
        None | Some("hour") => ("hour", Duration::hours(1)),
        Some("minute") => ("minute", Duration::minutes(1)),
        Some("day") => ("day", Duration::days(1)),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "bucket must be minute, hour or day".into(),
            ))
        }
    };
    let until = filters.until.unwrap_or_else(Utc::now);
    let since = filters.since.unwrap_or_else(|| {
        until
            - if name == "minute" {
                Duration::hours(6)
            } else {
                Duration::hours(24)
            }
    });
    if since > until {
        return Err(ApiError::BadRequest("`since` is after `until`".into()));
    }
    let start = since
        .duration_trunc(width)
        .map_err(|e| ApiError::BadRequest(format!("since: {e}")))?;
    let buckets = (until - start).num_seconds() / width.num_seconds() + 1;
    if buckets > MAX_BUCKETS {
        return Err(ApiError::BadRequest(format!(
            "{buckets} buckets asked for; at most {MAX_BUCKETS}: use a wider bucket or a shorter range"
        )));
    }
    // Bucketed here rather than in SQL: the same code on SQLite and PostgreSQL.
    filters.since = None;
    filters.until = None;
    let rows: Vec<(DateTime<Utc>, String)> = filtered(&filters, &rules)?
        .filter(alert::Column::FirstSeen.gte(start))
        .filter(alert::Column::FirstSeen.lte(until))
        .select_only()
        .column(alert::Column::FirstSeen)
        .column(alert::Column::Severity)
        .limit(MAX_ROWS + 1)
        .into_tuple()
        .all(db.get_ref())
        .await?;
    let truncated = rows.len() as u64 > MAX_ROWS;
    let mut series: Vec<Bucket> = (0..buckets)
        .map(|i| Bucket {
            t: start + width * i as i32,
            low: 0,
            medium: 0,
            high: 0,
            critical: 0,
        })
        .collect();
    for (t, severity) in rows.into_iter().take(MAX_ROWS as usize) {
        let i = (t - start).num_seconds() / width.num_seconds();
        let Some(b) = usize::try_from(i).ok().and_then(|i| series.get_mut(i)) else {
            continue;
        };
        match severity.as_str() {
            "low" => b.low += 1,
            "medium" => b.medium += 1,
            "high" => b.high += 1,
            "critical" => b.critical += 1,
            _ => {}
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "bucket": name,
        "since": start,
        "until": until,
        "truncated": truncated,
        "series": series,
    })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopEntry {
    pub key: String,
    /// Alerts (incidents).
    pub alerts: i64,
    /// Events across those alerts.
    pub events: i64,
}

#[utoipa::path(get, path = "/api/stats/top", tag = "stats", params(("by" = String, Query, description = "source_ip, rule_id or host"), ("limit" = Option<u32>, Query, description = "1 to 100, default 10"), crate::routes::alerts::ListQuery), responses((status = 200, body = Vec<TopEntry>), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `GET /api/stats/top?by=source_ip|rule_id|host&limit=10`: the most frequent values by
/// number of alerts.
pub async fn top(
    req: HttpRequest,
    db: web::Data<DatabaseConnection>,
    rules: web::Data<RuleCatalog>,
) -> Result<HttpResponse, ApiError> {
    let (own, filters) = split_query(&req, &["by", "limit"])?;
    let col = match own.get("by").map(String::as_str) {
        Some("source_ip") => alert::Column::SourceIp,
        Some("rule_id") => alert::Column::RuleId,
        Some("host") => alert::Column::HostName,
        _ => {
            return Err(ApiError::BadRequest(
                "by must be source_ip, rule_id or host".into(),
            ))
        }
    };
    let limit: u64 = match own.get("limit") {
        None => 10,
        Some(l) => l
            .parse()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| ApiError::BadRequest("limit must be 1 to 100".into()))?,
    };
    let n_alerts: Expr = Func::count(Expr::col((alert::Entity, col))).into();
    // PostgreSQL sums a BIGINT as NUMERIC: cast back so both backends give an integer.
    let n_events: Expr = Func::cast_as(
        Func::sum(Expr::col((alert::Entity, alert::Column::Count))),
        Alias::new("BIGINT"),
    )
    .into();
    let rows: Vec<(String, i64, Option<i64>)> = filtered(&filters, &rules)?
        .filter(col.is_not_null())
        .select_only()
        .column(col)
        .column_as(n_alerts.clone(), "alerts_n")
        .column_as(n_events, "events_n")
        .group_by(col)
        .order_by(n_alerts, sea_orm::Order::Desc)
        .order_by_asc(col)
        .limit(limit)
        .into_tuple()
        .all(db.get_ref())
        .await?;
    let out: Vec<TopEntry> = rows
        .into_iter()
        .map(|(key, alerts, events)| TopEntry {
            key,
            alerts,
            events: events.unwrap_or(0),
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(get, path = "/api/stats/pipeline", tag = "stats", responses((status = 200, description = "The stages' counters and when they were read", body = Object), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `GET /api/stats/pipeline`: the counters of the stages in this process, the time they were
/// read, and per-second rates over the readings of the last minute.
pub async fn pipeline(
    hub: web::Data<AlertHub>,
    export: Option<web::Data<MetricsExport>>,
) -> HttpResponse {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut body = json!({
        "at": Utc::now(),
        "gateway": {
            "ws_clients": load(&hub.sessions_opened).saturating_sub(load(&hub.sessions_closed)),
            "ws_dropped": load(&hub.sessions_dropped_lagging) + load(&hub.sessions_dropped_stalled),
            "alerts_forwarded": load(&hub.alerts_forwarded),
        },
    });
    if let Some(export) = &export {
        for (name, snapshot) in export.snapshots() {
            body[name] = snapshot;
        }
        body["rates"] = rates(&export.readings, hub.clock.now(), &body);
    }
    HttpResponse::Ok().json(body)
}

/// The counters rates are computed for: name, where in the reading.
const RATED: [(&str, &str); 5] = [
    ("events_per_sec", "/stages/processor/records"),
    ("alert_updates_per_sec", "/stages/processor/alert_updates"),
    ("parse_failures_per_sec", "/stages/processor/parse_failures"),
    ("triage_calls_per_sec", "/stages/triage/calls"),
    ("alerts_forwarded_per_sec", "/gateway/alerts_forwarded"),
];
/// How far back the rates look.
const RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Per-second rates from the oldest reading of the last minute to this one; null until two
/// readings at least a second apart exist. Readings are taken when this endpoint is called
/// (the dashboard calls it every 5 s), on the hub's clock.
fn rates(
    readings: &std::sync::Mutex<crate::metrics::Readings>,
    now: std::time::Instant,
    reading: &serde_json::Value,
) -> serde_json::Value {
    let values: Vec<Option<f64>> = RATED
        .iter()
        .map(|(_, path)| reading.pointer(path).and_then(serde_json::Value::as_f64))
        .collect();
    let mut readings = readings.lock().unwrap_or_else(|e| e.into_inner());
    while readings.len() > 1
        && readings
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > RATE_WINDOW)
    {
        readings.pop_front();
    }
    let mut out = serde_json::Map::new();
    let base = readings.front().cloned();
    let secs = base
        .as_ref()
        .map(|(t, _)| now.saturating_duration_since(*t).as_secs_f64())
        .unwrap_or(0.0);
    for (i, (name, _)) in RATED.iter().enumerate() {
        let rate = match (&base, values[i]) {
            (Some((_, old)), Some(v)) if secs >= 1.0 => {
                old[i].map(|o| ((v - o).max(0.0) / secs * 100.0).round() / 100.0)
            }
            _ => None,
        };
        out.insert((*name).into(), json!(rate));
    }
    out.insert("window_secs".into(), json!(secs.round()));
    readings.push_back((now, values));
    serde_json::Value::Object(out)
}
