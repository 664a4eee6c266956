//! `GET /api/health` (readiness): 200 while the database answers and every stage of the
//! process runs; 503 naming what is wrong otherwise. `GET /api/health/live` (liveness): 200
//! whenever the gateway answers at all.

use crate::stages::Stages;
use actix_web::{web, HttpResponse};
use sea_orm::DatabaseConnection;
use serde_json::json;

#[utoipa::path(get, path = "/api/health", tag = "health", responses((status = 200, description = "Ready", body = Object), (status = 503, description = "A stage or the database is down", body = Object)))]
pub async fn ready(
    db: web::Data<DatabaseConnection>,
    stages: Option<web::Data<Stages>>,
) -> HttpResponse {
    let database = match db.ping().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "health: database unreachable");
            "unreachable"
        }
    };
    let (ready, stages) = match &stages {
        Some(s) => (s.ready(), json!(s.snapshot())),
        None => (true, json!({})),
    };
    if database == "ok" && ready {
        HttpResponse::Ok().json(json!({"status": "ok", "database": database, "stages": stages}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({"status": "failing", "database": database, "stages": stages}))
    }
}

#[utoipa::path(get, path = "/api/health/live", tag = "health", responses((status = 200, description = "The process answers", body = Object)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}
