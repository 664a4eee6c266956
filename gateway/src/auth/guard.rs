//! The access rule of every route, and the middleware that enforces it before a handler
//! runs: who is asking (session cookie or bearer token), whether their role suffices, and,
//! for a state-changing request made with the cookie, the CSRF token and Origin.

use super::{Accounts, Role, CSRF_HEADER, SESSION_COOKIE};
use crate::error::ApiError;
use crate::origin::HostPolicy;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, ResponseError};
use std::collections::HashMap;
use std::fmt;
use std::future::{ready, Ready};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the page shell, sign-in, health.
    Public,
    /// Any signed-in user, also one who must still change a generated password (their own
    /// session, the password change, sign-out).
    Account,
    /// Signed in with at least this role.
    Role(Role),
    /// An enrolled response agent, by its own credential (never a user's).
    Agent,
}

/// How a principal proved who they are.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A dashboard session: `id` is the hash of the cookie's secret.
    Session { id: String, csrf_token: String },
    /// An API token, by its id.
    Token { id: String },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Session { .. } => f.write_str("Session(..)"),
            Credential::Token { id } => write!(f, "Token({id})"),
        }
    }
}

/// A signed-in caller, put in the request by the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    pub must_change_password: bool,
    pub credential: Credential,
}

impl Principal {
    pub fn session_id(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { id, .. } => Some(id),
            Credential::Token { .. } => None,
        }
    }
}

impl FromRequest for Principal {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Only routes the guard let through with a principal reach a handler that asks.
        ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .ok_or_else(|| ApiError::Unauthenticated.into()),
        )
    }
}

/// Access rules by (method, route pattern), built from the route table.
#[derive(Debug, Default)]
pub struct AccessTable(HashMap<(Method, &'static str), Access>);

impl AccessTable {
    pub fn new(rules: impl IntoIterator<Item = (Method, &'static str, Access)>) -> Self {
        AccessTable(rules.into_iter().map(|(m, p, a)| ((m, p), a)).collect())
    }

    fn get(&self, method: &Method, pattern: &str) -> Option<Access> {
        let find = |m: &Method| {
            self.0
                .iter()
                .find(|((rm, rp), _)| rm == m && *rp == pattern)
                .map(|(_, a)| *a)
        };
        find(method).or_else(|| {
            (method == Method::HEAD)
                .then(|| find(&Method::GET))
                .flatten()
        })
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The bearer token of an `Authorization` header; `Err` when the header is there but is not
/// a bearer token.
fn bearer(req: &ServiceRequest) -> Result<Option<String>, ApiError> {
    let Some(h) = req.headers().get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = h.to_str().map_err(|_| ApiError::Unauthenticated)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Ok(Some(token.trim().to_string()))
        }
        _ => Err(ApiError::Unauthenticated),
    }
}

async fn principal(
    req: &ServiceRequest,
    accounts: &Accounts,
) -> Result<Option<Principal>, ApiError> {
    let now = chrono::Utc::now();
    if let Some(token) = bearer(req)? {
        return match accounts.resolve_token(&token, now).await {
            Ok(Some(p)) => Ok(Some(p)),
            Ok(None) => Err(ApiError::Unauthenticated),
            Err(e) => Err(e.into()),
        };
    }
    match req.cookie(SESSION_COOKIE) {
        Some(c) => match accounts.resolve_session(c.value(), now).await {
            Ok(Some(p)) => Ok(Some(p)),
            Ok(None) => Err(ApiError::Unauthenticated),
            Err(e) => Err(e.into()),
        },
        None => Ok(None),
    }
}

/// Middleware: enforce the route's access rule. A route missing from the table is refused,
/// so a route added without a rule is closed, not open.
pub async fn check_access(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let refuse = |req: ServiceRequest, e: ApiError| Ok(req.into_response(e.error_response()));
    let Some(pattern) = req.match_pattern() else {
        // No route matches: the router answers 404.
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let (Some(table), Some(accounts)) = (
        req.app_data::<web::Data<AccessTable>>(),
        req.app_data::<web::Data<Accounts>>(),
    ) else {
        tracing::error!("the gateway was built without its access table");
        return refuse(req, ApiError::Internal);
    };
    let access = match table.get(req.method(), &pattern) {
        Some(a) => a,
        None if table.0.keys().any(|(_, p)| *p == pattern) => {
            // A method the route does not have: the router answers 405.
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
        None => {
            tracing::error!(route = %pattern, "route without an access rule refused");
            return refuse(req, ApiError::Internal);
        }
    };
    if access == Access::Public {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    if access == Access::Agent {
        let token = match bearer(&req) {
            Ok(Some(t)) => t,
            Ok(None) | Err(_) => return refuse(req, ApiError::Unauthenticated),
        };
        let Some(db) = req.app_data::<web::Data<sea_orm::DatabaseConnection>>() else {
            return refuse(req, ApiError::Internal);
        };
        return match crate::response::enrollment::resolve(db.get_ref(), &token).await {
            Ok(Some(agent)) => {
                req.extensions_mut().insert(agent);
                Ok(next.call(req).await?.map_into_boxed_body())
            }
            Ok(None) => {
                tracing::warn!(route = %pattern, "agent credential refused");
                refuse(req, ApiError::Unauthenticated)
            }
            Err(e) => refuse(req, e.into()),
        };
    }
    let p = match principal(&req, accounts).await {
        Ok(Some(p)) => p,
        Ok(None) => return refuse(req, ApiError::Unauthenticated),
        Err(e) => return refuse(req, e),
    };
    if let Access::Role(min) = access {
        if p.must_change_password {
            return refuse(req, ApiError::PasswordChangeRequired);
        }
        if p.role < min {
            return refuse(req, ApiError::Forbidden(min));
        }
    }
    if let Credential::Session { csrf_token, .. } = &p.credential {
        if !is_safe(req.method()) {
            let sent = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let origin_ok = req
                .app_data::<web::Data<HostPolicy>>()
                .is_none_or(|h| h.origin_allowed(req.headers()));
            if !super::secret::equal(sent, csrf_token) || !origin_ok {
                tracing::warn!(user = %p.username, route = %pattern, "request without a valid CSRF token refused");
                return refuse(req, ApiError::CsrfFailed);
            }
        }
    }
    req.extensions_mut().insert(p);
    Ok(next.call(req).await?.map_into_boxed_body())
}
