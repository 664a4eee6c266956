//! The gateway: REST API over the alert store, a WebSocket stream of alerts as they are
//! written, and the live analyst dashboard.

pub mod error;
pub mod hub;
pub mod origin;
pub mod routes;
pub mod stages;
pub mod ws;

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, HttpServer};
pub use hub::{follow_alerts, AlertHub};
pub use origin::HostPolicy;
use sea_orm::DatabaseConnection;
pub use stages::Stages;
use std::net::TcpListener;
use std::sync::Arc;

/// What the handlers share; each piece is registered as its own `web::Data`.
#[derive(Clone)]
pub struct GatewayState {
    pub db: DatabaseConnection,
    pub hub: Arc<AlertHub>,
    /// The names the gateway answers to (Host and WebSocket Origin checks).
    pub hosts: Arc<HostPolicy>,
    /// The process's stages, for health.
    pub stages: Arc<Stages>,
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
    App::new()
        .wrap(actix_web::middleware::from_fn(origin::check_host))
        .app_data(web::Data::new(state.db))
        .app_data(web::Data::from(state.hub))
        .app_data(web::Data::from(state.hosts))
        .app_data(web::Data::from(state.stages))
        .app_data(web::QueryConfig::default().error_handler(|e, _| error::bad_request(e)))
        .app_data(web::PathConfig::default().error_handler(|e, _| error::bad_request(e)))
        .app_data(web::JsonConfig::default().error_handler(|e, _| error::bad_request(e)))
        .route("/", web::get().to(routes::dashboard::index))
        .route("/api/health", web::get().to(routes::health::health))
        .service(web::scope("/api/alerts").configure(routes::alerts::configure))
        .route("/ws/alerts", web::get().to(ws::alerts_ws))
}

/// Serve on an already-bound listener (port 0 in tests).
pub fn run(state: GatewayState, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
    Ok(HttpServer::new(move || create_app(state.clone()))
        .workers(2)
        // WebSocket sessions never finish on their own: do not wait long for them.
        .shutdown_timeout(2)
        .listen(listener)?
        .disable_signals()
        .run())
}
