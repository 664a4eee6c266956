//! The gateway: REST API over the alert store, a WebSocket stream of alerts as they are
//! written, and the analyst dashboard, behind sign-in.

pub mod auth;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod openapi;
pub mod origin;
pub mod response;
pub mod routes;
pub mod stages;
pub mod tls;
pub mod ws;

pub use rustls;

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, HttpServer};
use auth::guard::AccessTable;
use auth::limiter::SignInLimiter;
use auth::Accounts;
pub use hub::{follow_alerts, AlertHub};
pub use origin::HostPolicy;
use sea_orm::DatabaseConnection;
pub use stages::Stages;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;

/// How sign-in behaves.
pub struct AuthState {
    /// How long a dashboard session lasts from sign-in.
    pub session_ttl: chrono::Duration,
    /// Mark the session cookie `Secure` (served over TLS, directly or by a proxy).
    pub secure_cookies: bool,
    pub limiter: SignInLimiter,
}

impl Default for AuthState {
    fn default() -> Self {
        AuthState {
            session_ttl: chrono::Duration::hours(12),
            secure_cookies: false,
            limiter: SignInLimiter::default(),
        }
    }
}

/// What the handlers share; each piece is registered as its own `web::Data`.
#[derive(Clone)]
pub struct GatewayState {
    pub db: DatabaseConnection,
    pub hub: Arc<AlertHub>,
    /// The names the gateway answers to (Host and WebSocket Origin checks).
    pub hosts: Arc<HostPolicy>,
    /// The process's stages, for health.
    pub stages: Arc<Stages>,
    pub auth: Arc<AuthState>,
    /// The detection rules, for `/api/rules` and the `family` filter.
    pub rules: Arc<routes::rules::RuleCatalog>,
    /// What `/metrics` serves; `None` answers 404.
    pub metrics: Option<Arc<metrics::MetricsExport>>,
    /// Response actions, agents and their commands.
    pub response: Arc<response::ResponseService>,
}

/// The application, used by `run` and by in-process tests.
pub fn create_app(
    state: GatewayState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let table = routes::table();
    let access = AccessTable::new(table.iter().map(|r| (r.method.clone(), r.path, r.access)));
    let mut app = App::new()
        // Runs second: who is asking, and may they.
        .wrap(actix_web::middleware::from_fn(auth::guard::check_access))
        // Runs first: is this request for us at all.
        .wrap(actix_web::middleware::from_fn(origin::check_host))
        .app_data(web::Data::new(Accounts::new(state.db.clone())))
        .app_data(web::Data::new(access))
        .app_data(web::Data::new(state.db))
        .app_data(web::Data::from(state.hub))
        .app_data(web::Data::from(state.hosts))
        .app_data(web::Data::from(state.stages))
        .app_data(web::Data::from(state.auth))
        .app_data(web::Data::from(state.rules))
        .app_data(web::Data::from(state.response))
        .app_data(web::QueryConfig::default().error_handler(|e, _| error::bad_request(e)))
        .app_data(web::PathConfig::default().error_handler(|e, _| error::bad_request(e)))
        .app_data(
            web::JsonConfig::default()
                .limit(64 * 1024)
                .error_handler(|e, _| error::bad_request(e)),
        );
    if let Some(m) = state.metrics {
        app = app.app_data(web::Data::from(m));
    }
    // One resource per path, holding each of its methods.
    let mut by_path: BTreeMap<&'static str, Vec<&routes::RouteDef>> = BTreeMap::new();
    for r in &table {
        by_path.entry(r.path).or_default().push(r);
    }
    for (path, defs) in by_path {
        let mut resource = web::resource(path);
        for d in defs {
            resource = resource.route((d.to)(web::method(d.method.clone())));
        }
        app = app.service(resource);
    }
    app
}

/// Serve on an already-bound listener (port 0 in tests), over TLS when given a config.
pub fn run(
    state: GatewayState,
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<actix_web::dev::Server> {
    let server = HttpServer::new(move || create_app(state.clone()))
        .workers(2)
        // WebSocket sessions never finish on their own: do not wait long for them.
        .shutdown_timeout(2);
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    };
    Ok(server.disable_signals().run())
}
