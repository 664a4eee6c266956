//! Every route of the gateway, with who may call it. The app is built from this table, so a
//! route cannot exist without an access rule, and the authorization tests walk it.

pub mod actions;
pub mod agents;
pub mod alerts;
pub mod auth;
pub mod dashboard;
pub mod health;
pub mod incidents;
pub mod rules;
pub mod stats;
pub mod suppressions;
pub mod tokens;
pub mod users;
pub mod workflow;

use crate::auth::{Access, Role};
use actix_web::http::Method;

pub struct RouteDef {
    pub method: Method,
    /// actix-web pattern, as `HttpRequest::match_pattern` reports it.
    pub path: &'static str,
    pub access: Access,
    /// Attaches the handler.
    pub to: fn(actix_web::Route) -> actix_web::Route,
}

fn def(
    method: Method,
    path: &'static str,
    access: Access,
    to: fn(actix_web::Route) -> actix_web::Route,
) -> RouteDef {
    RouteDef {
        method,
        path,
        access,
        to,
    }
}

pub fn table() -> Vec<RouteDef> {
    use Access::{Account, Agent, Public};
    const VIEWER: Access = Access::Role(Role::Viewer);
    const ANALYST: Access = Access::Role(Role::Analyst);
    const ADMIN: Access = Access::Role(Role::Admin);
    let (get, post, patch, delete) = (Method::GET, Method::POST, Method::PATCH, Method::DELETE);
    vec![
        // The page shell carries no data: it signs in, then calls the API.
        def(get.clone(), "/", Public, |r| r.to(dashboard::index)),
        def(get.clone(), "/api/health", Public, |r| r.to(health::ready)),
        // The API's description and its browser carry no data.
        def(get.clone(), "/api/openapi.json", Public, |r| {
            r.to(crate::openapi::spec)
        }),
        def(get.clone(), "/api/docs", Public, |r| {
            r.to(crate::openapi::swagger_root)
        }),
        def(get.clone(), "/api/docs/{tail:.*}", Public, |r| {
            r.to(crate::openapi::swagger)
        }),
        def(get.clone(), "/api/health/live", Public, |r| {
            r.to(health::live)
        }),
        def(post.clone(), "/api/auth/signin", Public, |r| {
            r.to(auth::sign_in)
        }),
        def(post.clone(), "/api/auth/signout", Account, |r| {
            r.to(auth::sign_out)
        }),
        def(post.clone(), "/api/auth/password", Account, |r| {
            r.to(auth::change_password)
        }),
        def(get.clone(), "/api/session", Account, |r| {
            r.to(auth::session)
        }),
        def(get.clone(), "/api/alerts", VIEWER, |r| r.to(alerts::list)),
        def(get.clone(), "/api/incidents", VIEWER, |r| {
            r.to(incidents::list)
        }),
        def(get.clone(), "/api/alerts/{id}", VIEWER, |r| {
            r.to(alerts::get)
        }),
        def(get.clone(), "/api/alerts/{id}/revisions", VIEWER, |r| {
            r.to(alerts::revisions)
        }),
        def(patch.clone(), "/api/alerts/{id}", ANALYST, |r| {
            r.to(workflow::update)
        }),
        def(get.clone(), "/api/alerts/{id}/history", VIEWER, |r| {
            r.to(workflow::history)
        }),
        def(post.clone(), "/api/alerts/{id}/notes", ANALYST, |r| {
            r.to(workflow::add_note)
        }),
        def(get.clone(), "/api/suppressions", VIEWER, |r| {
            r.to(suppressions::list)
        }),
        def(post.clone(), "/api/suppressions", ANALYST, |r| {
            r.to(suppressions::create)
        }),
        def(delete.clone(), "/api/suppressions/{id}", ANALYST, |r| {
            r.to(suppressions::revoke)
        }),
        def(get.clone(), "/api/stats/alerts-over-time", VIEWER, |r| {
            r.to(stats::over_time)
        }),
        def(get.clone(), "/api/stats/top", VIEWER, |r| r.to(stats::top)),
        def(get.clone(), "/api/stats/pipeline", VIEWER, |r| {
            r.to(stats::pipeline)
        }),
        def(get.clone(), "/api/rules", VIEWER, |r| r.to(rules::list)),
        def(get.clone(), "/metrics", VIEWER, |r| {
            r.to(crate::metrics::scrape)
        }),
        def(get.clone(), "/ws/alerts", VIEWER, |r| {
            r.to(crate::ws::alerts_ws)
        }),
        def(get.clone(), "/api/tokens", VIEWER, |r| r.to(tokens::list)),
        def(post.clone(), "/api/tokens", VIEWER, |r| {
            r.to(tokens::create)
        }),
        def(delete.clone(), "/api/tokens/{id}", VIEWER, |r| {
            r.to(tokens::revoke)
        }),
        def(get.clone(), "/api/actions", VIEWER, |r| r.to(actions::list)),
        def(post.clone(), "/api/actions", ANALYST, |r| {
            r.to(actions::create)
        }),
        def(get.clone(), "/api/actions/{id}", VIEWER, |r| {
            r.to(actions::get)
        }),
        def(post.clone(), "/api/actions/{id}/approve", ANALYST, |r| {
            r.to(actions::approve)
        }),
        def(post.clone(), "/api/actions/{id}/reject", ANALYST, |r| {
            r.to(actions::reject)
        }),
        def(post.clone(), "/api/actions/{id}/revert", ANALYST, |r| {
            r.to(actions::revert)
        }),
        def(get.clone(), "/api/response/switch", VIEWER, |r| {
            r.to(actions::switch_get)
        }),
        def(post.clone(), "/api/response/switch", ADMIN, |r| {
            r.to(actions::switch_set)
        }),
        def(get.clone(), "/api/audit/verify", ADMIN, |r| {
            r.to(actions::audit_verify)
        }),
        def(get.clone(), "/api/agents", VIEWER, |r| r.to(agents::list)),
        def(post.clone(), "/api/agents/enrollments", ADMIN, |r| {
            r.to(agents::create_enrollment)
        }),
        // The one-time token in the body is the credential.
        def(post.clone(), "/api/agents/enroll", Public, |r| {
            r.to(agents::enroll)
        }),
        def(delete, "/api/agents/{id}", ADMIN, |r| r.to(agents::revoke)),
        def(get.clone(), "/ws/agent", Agent, |r| {
            r.to(crate::response::agent_ws::agent_ws)
        }),
        def(get, "/api/users", ADMIN, |r| r.to(users::list)),
        def(post, "/api/users", ADMIN, |r| r.to(users::create)),
        def(patch, "/api/users/{username}", ADMIN, |r| {
            r.to(users::update)
        }),
    ]
}
