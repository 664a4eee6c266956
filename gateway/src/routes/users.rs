//! User management (admin): list, create, change role, disable, reset a password.

use crate::auth::accounts::UserView;
use crate::auth::{secret, Accounts, Principal, Role};
use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};

#[utoipa::path(get, path = "/api/users", tag = "users", responses((status = 200, body = Vec<UserView>), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn list(accounts: web::Data<Accounts>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(accounts.users().await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub role: Role,
    /// Left out: one is generated and returned once.
    pub password: Option<String>,
}

/// A user just created or reset, with the password to hand over (once) when one was made.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserWithPassword {
    pub user: UserView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[utoipa::path(post, path = "/api/users", tag = "users", request_body = NewUser, responses((status = 201, body = UserWithPassword), (status = 409, description = "Name taken", body = crate::error::Problem, content_type = "application/problem+json"), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn create(
    p: Principal,
    body: web::Json<NewUser>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let generated = body.password.is_none().then(secret::generate_password);
    let password = body
        .password
        .as_deref()
        .or(generated.as_deref())
        .unwrap_or("");
    // The admin knows this password: the user must choose their own at first sign-in.
    let user = accounts
        .create_user(&body.username, password, body.role, true, Utc::now())
        .await?;
    tracing::info!(by = %p.username, user = %user.username, role = %user.role, "user created");
    Ok(HttpResponse::Created().json(UserWithPassword {
        user,
        password: generated,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// Generate a new password (returned once); the user's sessions end.
    #[serde(default)]
    pub reset_password: bool,
}

#[utoipa::path(patch, path = "/api/users/{username}", tag = "users", params(("username" = String, Path)), request_body = UserChange, responses((status = 200, body = UserWithPassword), (status = 409, description = "The last admin", body = crate::error::Problem, content_type = "application/problem+json"), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Not found", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn update(
    p: Principal,
    username: web::Path<String>,
    body: web::Json<UserChange>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    let user = accounts
        .update_user(&username, body.role, body.disabled, now)
        .await?;
    let password = if body.reset_password {
        let pw = secret::generate_password();
        accounts
            .set_password(&user.username, &pw, true, None, now)
            .await?;
        Some(pw)
    } else {
        None
    };
    tracing::info!(by = %p.username, user = %user.username, role = %user.role, disabled = user.disabled, reset = password.is_some(), "user changed");
    Ok(HttpResponse::Ok().json(UserWithPassword { user, password }))
}
