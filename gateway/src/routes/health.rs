//! `GET /api/health`: the process is up and its database answers.

use actix_web::{web, HttpResponse};
use sea_orm::DatabaseConnection;
use serde_json::json;

pub async fn health(db: web::Data<DatabaseConnection>) -> HttpResponse {
    match db.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ok", "database": "ok"})),
        Err(e) => {
            tracing::warn!(error = %e, "health: database unreachable");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "degraded", "database": "unreachable"}))
        }
    }
}
