//! Problem+JSON (RFC 9457) errors: one table of codes, one `ResponseError` impl.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("database error")]
    Database(#[from] sea_orm::DbErr),
    #[error("stored data is invalid")]
    InvalidData(String),
    #[error("the Host header does not name this gateway; add the name to `allowed_hosts`")]
    MisdirectedHost,
    #[error("this request is accepted from the gateway's own pages only (Origin)")]
    ForeignOrigin,
    #[error("sign in first: a session cookie or an `Authorization: Bearer` token is needed, and the one sent is missing, expired or revoked")]
    Unauthenticated,
    #[error("this needs the {0} role")]
    Forbidden(crate::auth::Role),
    #[error("a state-changing request needs the session's CSRF token in `X-CSRF-Token`, from the gateway's own origin")]
    CsrfFailed,
    #[error("choose a new password first (POST /api/auth/password)")]
    PasswordChangeRequired,
    #[error("wrong user name or password")]
    InvalidCredentials,
    #[error("too many sign-in attempts; try again in {0} s")]
    TooManyAttempts(u64),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error")]
    Internal,
}

impl From<crate::auth::AccountError> for ApiError {
    fn from(e: crate::auth::AccountError) -> Self {
        use crate::auth::AccountError as A;
        match e {
            A::Database(e) => ApiError::Database(e),
            A::StoredRole(r) => ApiError::InvalidData(format!("stored role `{r}`")),
            A::Password(crate::auth::password::PasswordError::Hash(h)) => ApiError::InvalidData(h),
            A::NoSuchUser(_) | A::NoSuchToken(_) => ApiError::NotFound(e.to_string()),
            A::UsernameTaken(_) | A::LastAdmin => ApiError::Conflict(e.to_string()),
            A::Password(_) | A::InvalidUsername | A::RoleAboveOwner(_) => {
                ApiError::BadRequest(e.to_string())
            }
        }
    }
}

/// (code, status, title): one line per error kind.
const CODES: &[(&str, u16, &str)] = &[
    ("not_found", 404, "Not found"),
    ("bad_request", 400, "Bad request"),
    ("unauthenticated", 401, "Unauthenticated"),
    ("invalid_credentials", 401, "Invalid credentials"),
    ("forbidden", 403, "Forbidden"),
    ("csrf_failed", 403, "CSRF check failed"),
    ("password_change_required", 403, "Password change required"),
    ("foreign_origin", 403, "Foreign origin"),
    ("conflict", 409, "Conflict"),
    ("too_many_requests", 429, "Too many requests"),
    ("misdirected_request", 421, "Misdirected request"),
    ("database_unavailable", 503, "Database unavailable"),
    ("internal", 500, "Internal error"),
];

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Database(_) => "database_unavailable",
            ApiError::InvalidData(_) => "internal",
            ApiError::MisdirectedHost => "misdirected_request",
            ApiError::ForeignOrigin => "foreign_origin",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::CsrfFailed => "csrf_failed",
            ApiError::PasswordChangeRequired => "password_change_required",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::TooManyAttempts(_) => "too_many_requests",
            ApiError::Conflict(_) => "conflict",
            ApiError::Internal => "internal",
        }
    }

    fn entry(&self) -> (&'static str, u16, &'static str) {
        let code = self.code();
        CODES
            .iter()
            .copied()
            .find(|(c, _, _)| *c == code)
            .unwrap_or(("internal", 500, "Internal error"))
    }
}

/// An error, as RFC 9457 Problem Details (`application/problem+json`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub code: &'static str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.entry().1).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let (code, status, title) = self.entry();
        let detail = if status >= 500 {
            // Log the cause; the client gets a generic detail.
            match self {
                ApiError::Database(e) => tracing::error!(error = %e, "request failed"),
                ApiError::InvalidData(e) => tracing::error!(error = %e, "request failed"),
                _ => {}
            }
            title.to_string()
        } else {
            self.to_string()
        };
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthenticated | ApiError::InvalidCredentials => {
                res.insert_header(("WWW-Authenticate", "Bearer realm=\"soc\""));
            }
            ApiError::TooManyAttempts(secs) => {
                res.insert_header(("Retry-After", secs.to_string()));
            }
            _ => {}
        }
        res.content_type("application/problem+json").json(Problem {
            kind: format!("https://soc.invalid/problems/{code}"),
            title,
            status,
            detail,
            code,
        })
    }
}

/// Route extractor failures (bad query strings, JSON, paths) through Problem+JSON.
pub fn bad_request(err: impl std::fmt::Display) -> actix_web::Error {
    ApiError::BadRequest(err.to_string()).into()
}
