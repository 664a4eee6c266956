//! The API's OpenAPI 3.1 document, generated from the handlers' annotations, and Swagger UI
//! from assets compiled into the binary (it works offline). A test holds the document and the
//! route table to the same set of routes.

use crate::routes::{
    actions, agents, alerts, auth as auth_routes, health, incidents, rules, stats, suppressions,
    tokens, users, workflow,
};
use actix_web::{web, HttpResponse, ResponseError};
use std::sync::{Arc, OnceLock};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "soc gateway API",
        description = "Alerts, their workflow, suppressions, aggregates, response actions and \
            agents, users and tokens. \
            Every route but sign-in and health needs a bearer token (`soc user token`) or the \
            dashboard's session cookie; state-changing requests with the cookie also need \
            `X-CSRF-Token`. Errors are `application/problem+json`."
    ),
    paths(
        health::ready,
        health::live,
        auth_routes::sign_in,
        auth_routes::sign_out,
        auth_routes::change_password,
        auth_routes::session,
        alerts::list,
        incidents::list,
        alerts::get,
        alerts::revisions,
        workflow::update,
        workflow::history,
        workflow::add_note,
        suppressions::list,
        suppressions::create,
        suppressions::revoke,
        stats::over_time,
        stats::top,
        stats::pipeline,
        rules::list,
        crate::metrics::scrape,
        tokens::list,
        tokens::create,
        tokens::revoke,
        users::list,
        users::create,
        users::update,
        actions::list,
        actions::get,
        actions::create,
        actions::approve,
        actions::reject,
        actions::revert,
        actions::switch_get,
        actions::switch_set,
        actions::audit_verify,
        agents::create_enrollment,
        agents::enroll,
        agents::list,
        agents::revoke,
    ),
    modifiers(&Credentials)
)]
pub struct ApiDoc;

/// The two ways to present a credential.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
    }
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
    })
}

/// `GET /api/openapi.json`.
pub async fn spec() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

/// `GET /api/docs/{tail}`: Swagger UI, pointed at the document.
pub async fn swagger(tail: web::Path<String>) -> HttpResponse {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| Arc::new(utoipa_swagger_ui::Config::from("/api/openapi.json")))
        .clone();
    match utoipa_swagger_ui::serve(&tail, config) {
        Ok(Some(file)) => HttpResponse::Ok()
            .content_type(file.content_type)
            .body(file.bytes.to_vec()),
        Ok(None) => crate::error::ApiError::NotFound(format!("no file `{tail}`")).error_response(),
        Err(e) => {
            tracing::error!(error = %e, "swagger ui asset");
            crate::error::ApiError::Internal.error_response()
        }
    }
}

/// `GET /api/docs`: to the UI's page, so its relative asset paths resolve.
pub async fn swagger_root() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", "/api/docs/"))
        .finish()
}
