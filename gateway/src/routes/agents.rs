//! Response agents: enrollment tokens (admins), enrollment itself (the agent, with its
//! token), the registry, and revocation.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::response::enrollment::{self, valid_host, EnrollError};
use crate::response::ResponseService;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{EntityTrait, QueryOrder};
use serde::{Deserialize, Serialize};
use soc_core::command::PublicKey;
use soc_core::db::agent;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnrollment {
    /// The host the agent will run on; actions for this host go to it.
    pub host: String,
    /// How long the token stays usable, in hours (1 to 168; 24 by default).
    pub ttl_hours: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnrollmentToken {
    pub id: String,
    pub host: String,
    /// Shown once: give it to `soc-agent enroll`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[utoipa::path(post, path = "/api/agents/enrollments", tag = "agents", request_body = NewEnrollment, responses((status = 201, description = "A one-time enrollment token", body = EnrollmentToken), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `POST /api/agents/enrollments`.
pub async fn create_enrollment(
    p: Principal,
    body: web::Json<NewEnrollment>,
    svc: web::Data<ResponseService>,
) -> Result<HttpResponse, ApiError> {
    let host = body.host.trim().to_string();
    if !valid_host(&host) {
        return Err(ApiError::BadRequest(format!("`{host}` is not a host name")));
    }
    let ttl = match body.ttl_hours {
        None => svc.config.enrollment_ttl,
        Some(h @ 1..=168) => chrono::Duration::hours(i64::from(h)),
        Some(_) => return Err(ApiError::BadRequest("`ttl_hours` must be 1 to 168".into())),
    };
    let (row, token) =
        enrollment::create_token(&svc.db, &host, &p.username, ttl, Utc::now()).await?;
    Ok(HttpResponse::Created().json(EnrollmentToken {
        id: row.id,
        host: row.host,
        token,
        expires_at: row.expires_at,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    pub token: String,
    /// The agent's version.
    pub version: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Enrolled {
    pub agent_id: String,
    pub host: String,
    /// The agent's own credential, shown once: it authenticates `/ws/agent`.
    pub credential: String,
    /// The keys the agent accepts commands from.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<PublicKey>,
    /// The version of that key set: the agent adopts only newer ones.
    pub keys_version: u64,
}

#[utoipa::path(post, path = "/api/agents/enroll", tag = "agents", request_body = EnrollBody, responses((status = 201, description = "The agent's id, credential and the gateway's keys", body = Enrolled), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Unknown, used or expired token", body = crate::error::Problem, content_type = "application/problem+json")))]
/// `POST /api/agents/enroll`: spends a one-time token.
pub async fn enroll(
    body: web::Json<EnrollBody>,
    svc: web::Data<ResponseService>,
) -> Result<HttpResponse, ApiError> {
    if body.token.len() > 128 || body.version.len() > 64 {
        return Err(ApiError::BadRequest(
            "`token` or `version` is too long".into(),
        ));
    }
    let ring = svc.keys();
    match enrollment::enroll(
        &svc.db,
        body.token.trim(),
        &body.version,
        ring.version(),
        Utc::now(),
    )
    .await
    {
        Ok((a, credential)) => {
            tracing::info!(agent = %a.id, host = %a.host, "agent enrolled");
            Ok(HttpResponse::Created().json(Enrolled {
                agent_id: a.id,
                host: a.host,
                credential,
                keys: ring.public_keys(),
                keys_version: ring.version(),
            }))
        }
        Err(EnrollError::Refused) => {
            tracing::warn!("enrollment with an unknown, used or expired token refused");
            Err(ApiError::Unauthenticated)
        }
        Err(EnrollError::Db(e)) => Err(e.into()),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    pub id: String,
    pub host: String,
    pub version: Option<String>,
    pub dry_run: bool,
    /// The version of the gateway's key set the agent holds.
    pub keys_version: Option<i64>,
    pub connected: bool,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[utoipa::path(get, path = "/api/agents", tag = "agents", responses((status = 200, description = "Enrolled agents", body = Vec<AgentView>), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `GET /api/agents`: the registry.
pub async fn list(svc: web::Data<ResponseService>) -> Result<HttpResponse, ApiError> {
    let rows = agent::Entity::find()
        .order_by_asc(agent::Column::Host)
        .all(&svc.db)
        .await?;
    let out: Vec<AgentView> = rows
        .into_iter()
        .map(|a| AgentView {
            connected: svc.connected(&a.id),
            id: a.id,
            host: a.host,
            version: a.version,
            dry_run: a.dry_run,
            keys_version: a.keys_version,
            last_seen: a.last_seen,
            created_at: a.created_at,
            revoked_at: a.revoked_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(delete, path = "/api/agents/{id}", tag = "agents", params(("id" = String, Path, description = "Agent id")), responses((status = 204, description = "Revoked: its credential stops working and it is disconnected"), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// `DELETE /api/agents/{id}`.
pub async fn revoke(
    p: Principal,
    path: web::Path<String>,
    svc: web::Data<ResponseService>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if id.len() > 64 || !id.starts_with("agt-") {
        return Err(ApiError::BadRequest(format!("`{id}` is not an agent id")));
    }
    if !enrollment::revoke(&svc.db, &id, &p.username, Utc::now()).await? {
        return Err(ApiError::NotFound(format!("no active agent {id}")));
    }
    svc.disconnect(&id);
    tracing::warn!(agent = %id, user = %p.username, "agent revoked");
    Ok(HttpResponse::NoContent().finish())
}
