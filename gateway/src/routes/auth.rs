//! Sign-in, sign-out, the caller's own session and password.

use crate::auth::password::MAX_LEN;
use crate::auth::{Accounts, Principal, Role, SESSION_COOKIE};
use crate::error::ApiError;
use crate::origin::HostPolicy;
use crate::AuthState;
use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub username: String,
    pub password: String,
}

// By hand: the password never reaches a log line.
impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The caller as the dashboard needs it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub username: String,
    pub role: Role,
    pub must_change_password: bool,
    /// Echo in `X-CSRF-Token` on every state-changing request (sessions only).
    pub csrf_token: Option<String>,
    /// `session` or `token`.
    pub via: &'static str,
    pub expires_at: Option<DateTime<Utc>>,
}

fn session_cookie(value: String, secure: bool, max_age: time::Duration) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, value)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .max_age(max_age)
        .finish()
}

#[utoipa::path(post, path = "/api/auth/signin", tag = "auth", request_body = SignIn, responses((status = 200, description = "Signed in; the session cookie is set", body = SessionView), (status = 400, body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Wrong user name or password", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Foreign origin", body = crate::error::Problem, content_type = "application/problem+json"), (status = 429, description = "Too many attempts", body = crate::error::Problem, content_type = "application/problem+json")))]
pub async fn sign_in(
    req: HttpRequest,
    body: web::Json<SignIn>,
    accounts: web::Data<Accounts>,
    auth: web::Data<AuthState>,
    hosts: Option<web::Data<HostPolicy>>,
) -> Result<HttpResponse, ApiError> {
    // A page elsewhere must not sign the browser in to an account of its choosing.
    if hosts.is_some_and(|h| !h.origin_allowed(req.headers())) {
        return Err(ApiError::ForeignOrigin);
    }
    let address = req.peer_addr().map(|a| a.ip());
    if body.username.len() > 64 || body.password.len() > MAX_LEN {
        return Err(ApiError::InvalidCredentials);
    }
    auth.limiter
        .check(address, &body.username)
        .map_err(|wait| {
            tracing::warn!(user = %body.username, ?address, "sign-in refused: too many failures");
            metrics::counter!("soc_gateway_signin_total", "outcome" => "rate_limited").increment(1);
            ApiError::TooManyAttempts(wait.as_secs().max(1))
        })?;
    let Some(user) = accounts
        .authenticate(&body.username, &body.password)
        .await?
    else {
        auth.limiter.failed(address, &body.username);
        tracing::warn!(user = %body.username, ?address, "sign-in failed");
        metrics::counter!("soc_gateway_signin_total", "outcome" => "failed").increment(1);
        return Err(ApiError::InvalidCredentials);
    };
    let now = Utc::now();
    // Sign-ins are rare: a good moment to forget sessions that ended.
    if let Err(e) = accounts.purge_expired(now).await {
        tracing::warn!(error = %e, "purging expired sessions");
    }
    let session = accounts.start_session(&user, auth.session_ttl, now).await?;
    tracing::info!(user = %user.username, ?address, "signed in");
    metrics::counter!("soc_gateway_signin_total", "outcome" => "ok").increment(1);
    let max_age = time::Duration::seconds(auth.session_ttl.num_seconds());
    let cookie = session_cookie(
        session.secret.expose_secret().to_string(),
        auth.secure_cookies,
        max_age,
    );
    Ok(HttpResponse::Ok().cookie(cookie).json(SessionView {
        username: user.username,
        role: Role::parse(&user.role).ok_or(ApiError::Internal)?,
        must_change_password: user.must_change_password,
        csrf_token: Some(session.csrf_token),
        via: "session",
        expires_at: Some(session.expires_at),
    }))
}

#[utoipa::path(post, path = "/api/auth/signout", tag = "auth", responses((status = 204, description = "Signed out"), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn sign_out(
    p: Principal,
    accounts: web::Data<Accounts>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(id) = p.session_id() {
        accounts.end_session(id).await?;
        tracing::info!(user = %p.username, "signed out");
    }
    Ok(HttpResponse::NoContent()
        .cookie(session_cookie(
            String::new(),
            auth.secure_cookies,
            time::Duration::ZERO,
        ))
        .finish())
}

#[utoipa::path(get, path = "/api/session", tag = "auth", responses((status = 200, body = SessionView), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn session(p: Principal) -> HttpResponse {
    let (csrf_token, via) = match &p.credential {
        crate::auth::guard::Credential::Session { csrf_token, .. } => {
            (Some(csrf_token.clone()), "session")
        }
        crate::auth::guard::Credential::Token { .. } => (None, "token"),
    };
    HttpResponse::Ok().json(SessionView {
        username: p.username,
        role: p.role,
        must_change_password: p.must_change_password,
        csrf_token,
        via,
        expires_at: None,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

#[utoipa::path(post, path = "/api/auth/password", tag = "auth", request_body = ChangePassword, responses((status = 204, description = "Changed; other sessions ended"), (status = 400, description = "Bad request", body = crate::error::Problem, content_type = "application/problem+json"), (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, description = "Role too low", body = crate::error::Problem, content_type = "application/problem+json"), (status = 429, description = "Too many attempts", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
/// Change one's own password, proving the current one; every other session of the user ends.
pub async fn change_password(
    req: HttpRequest,
    p: Principal,
    body: web::Json<ChangePassword>,
    accounts: web::Data<Accounts>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, ApiError> {
    if body.current_password.len() > MAX_LEN {
        return Err(ApiError::InvalidCredentials);
    }
    let address = req.peer_addr().map(|a| a.ip());
    auth.limiter
        .check(address, &p.username)
        .map_err(|wait| ApiError::TooManyAttempts(wait.as_secs().max(1)))?;
    if accounts
        .authenticate(&p.username, &body.current_password)
        .await?
        .is_none()
    {
        auth.limiter.failed(address, &p.username);
        return Err(ApiError::InvalidCredentials);
    }
    if body.new_password == body.current_password {
        return Err(ApiError::BadRequest(
            "the new password must differ from the current one".into(),
        ));
    }
    accounts
        .set_password(
            &p.username,
            &body.new_password,
            false,
            p.session_id(),
            Utc::now(),
        )
        .await?;
    tracing::info!(user = %p.username, "password changed");
    Ok(HttpResponse::NoContent().finish())
}
