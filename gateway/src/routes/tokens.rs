//! API tokens: anyone signed in makes and revokes their own; an admin sees and revokes all.

use crate::auth::accounts::TokenView;
use crate::auth::{Accounts, Principal, Role};
use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use chrono::{Duration, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

/// Longest lifetime a token may be given.
pub const MAX_DAYS: u32 = 3650;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Admins: every user's tokens.
    #[serde(default)]
    pub all: bool,
}

#[utoipa::path(get, path = "/api/tokens", tag = "tokens", params(TokenQuery), responses((status = 200, body = Vec<TokenView>), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn list(
    p: Principal,
    q: web::Query<TokenQuery>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let owner = if q.all && p.role == Role::Admin {
        None
    } else {
        Some(p.username.as_str())
    };
    Ok(HttpResponse::Ok().json(accounts.tokens(owner).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    pub name: String,
    /// At most the caller's role (default: the caller's).
    pub role: Option<Role>,
    /// Left out: the token lives until revoked.
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The secret: shown in this answer only.
    pub token: String,
    #[serde(flatten)]
    pub view: TokenView,
}

#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = NewTokenRequest, responses((status = 201, body = CreatedToken), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn create(
    p: Principal,
    body: web::Json<NewTokenRequest>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "a token's name is 1 to 64 printable characters".into(),
        ));
    }
    let now = Utc::now();
    let expires_at = match body.expires_in_days {
        Some(d) if d == 0 || d > MAX_DAYS => {
            return Err(ApiError::BadRequest(format!(
                "expires_in_days must be between 1 and {MAX_DAYS}"
            )))
        }
        Some(d) => Some(now + Duration::days(i64::from(d))),
        None => None,
    };
    let role = body.role.unwrap_or(p.role);
    if role > p.role {
        return Err(ApiError::Forbidden(role));
    }
    let t = accounts
        .create_token(&p.username, name, Some(role), expires_at, now)
        .await?;
    tracing::info!(user = %p.username, token = %t.view.id, role = %role, "API token created");
    Ok(HttpResponse::Created().json(CreatedToken {
        token: t.secret.expose_secret().to_string(),
        view: t.view,
    }))
}

#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens", params(("id" = String, Path, description = "The id")), responses((status = 204, description = "Revoked"), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn revoke(
    p: Principal,
    id: web::Path<String>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::NotFound(format!("no token `{id}`")));
    }
    let owner = (p.role != Role::Admin).then_some(p.username.as_str());
    accounts.revoke_token(&id, owner, Utc::now()).await?;
    tracing::info!(user = %p.username, token = %id, "API token revoked");
    Ok(HttpResponse::NoContent().finish())
}
