//! `GET /api/rules`: the detection rules this deployment runs, for the alert detail (the
//! rule's description and references) and for filtering by family.

use actix_web::{web, HttpResponse};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleInfo {
    pub id: String,
    /// The directory it ships in: `ssh`, `http`, `sigma`, ...
    pub family: String,
    pub title: String,
    pub description: String,
    pub severity: String,
    pub mitre: Vec<String>,
    pub references: Vec<String>,
}

/// The rules, as the launcher loaded them for the processor.
#[derive(Debug, Default)]
pub struct RuleCatalog(pub Vec<RuleInfo>);

impl RuleCatalog {
    /// Ids of the rules of one family.
    pub fn family(&self, family: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|r| r.family == family)
            .map(|r| r.id.clone())
            .collect()
    }
}

#[utoipa::path(get, path = "/api/rules", tag = "rules", responses((status = 200, body = Vec<RuleInfo>), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn list(catalog: web::Data<RuleCatalog>) -> HttpResponse {
    HttpResponse::Ok().json(&catalog.0)
}
