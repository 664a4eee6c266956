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
    #[error("WebSocket connections are accepted from the gateway's own pages only")]
    ForeignOrigin,
}

/// (code, status, title): one line per error kind.
const CODES: &[(&str, u16, &str)] = &[
    ("not_found", 404, "Not found"),
    ("bad_request", 400, "Bad request"),
    ("foreign_origin", 403, "Foreign origin"),
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

#[derive(Serialize)]
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
        HttpResponse::build(self.status_code())
            .content_type("application/problem+json")
            .json(Problem {
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
