//! `GET /metrics` in the Prometheus text format, through the `metrics` crate and its
//! Prometheus exporter. Stages count with `metrics::counter!` where things happen; counters
//! a stage already keeps in atomics are copied in by samplers at scrape time.

use crate::hub::AlertHub;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

/// Copies a stage's own counters into the recorder just before a scrape.
pub type Sampler = Box<dyn Fn() + Send + Sync>;

/// A stage's counters as JSON, for `/api/stats/pipeline`.
pub type Snapshot = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Earlier readings of the stages' counters, for `/api/stats/pipeline`'s rates.
pub type Readings = std::collections::VecDeque<(std::time::Instant, Vec<Option<f64>>)>;

/// What `/metrics` and `/api/stats/pipeline` render.
pub struct MetricsExport {
    handle: PrometheusHandle,
    samplers: Vec<Sampler>,
    snapshots: Vec<(&'static str, Snapshot)>,
    pub readings: std::sync::Mutex<Readings>,
}

impl std::fmt::Debug for MetricsExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsExport")
            .field("samplers", &self.samplers.len())
            .finish()
    }
}

/// Triage latency buckets, in seconds: model calls take from a tenth of a second to tens.
const LATENCY_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0];

/// The process's Prometheus recorder, installed on first use. The recorder is global to the
/// process (the `metrics` macros write to it), so every pipeline in one process shares it.
pub fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    &LATENCY_BUCKETS,
                )
                .and_then(|b| b.install_recorder());
            match installed {
                Ok(h) => {
                    describe();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics is off");
                    None
                }
            }
        })
        .clone()
}

impl MetricsExport {
    /// An export over the process recorder, or `None` when it could not be installed.
    pub fn new() -> Option<Self> {
        recorder().map(|handle| MetricsExport {
            handle,
            samplers: Vec::new(),
            snapshots: Vec::new(),
            readings: std::sync::Mutex::new(Readings::new()),
        })
    }

    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        self.samplers.push(sampler);
        self
    }

    pub fn with_snapshot(mut self, name: &'static str, snapshot: Snapshot) -> Self {
        self.snapshots.push((name, snapshot));
        self
    }

    /// Every stage's counters, by stage.
    pub fn snapshots(&self) -> Vec<(&'static str, serde_json::Value)> {
        self.snapshots.iter().map(|(n, f)| (*n, f())).collect()
    }

    /// The exposition text, with the hub's (where this process has one) and every sampler's
    /// counters current.
    pub fn render(&self, hub: Option<&AlertHub>) -> String {
        if let Some(hub) = hub {
            sample_hub(hub);
        }
        for s in &self.samplers {
            s();
        }
        self.handle.render()
    }
}

fn sample_hub(hub: &AlertHub) {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let opened = load(&hub.sessions_opened);
    let closed = load(&hub.sessions_closed);
    metrics::gauge!("soc_gateway_ws_clients").set(opened.saturating_sub(closed) as f64);
    metrics::counter!("soc_gateway_ws_sessions_total").absolute(opened);
    metrics::counter!("soc_gateway_ws_dropped_total", "reason" => "lagging")
        .absolute(load(&hub.sessions_dropped_lagging));
    metrics::counter!("soc_gateway_ws_dropped_total", "reason" => "stalled")
        .absolute(load(&hub.sessions_dropped_stalled));
    metrics::counter!("soc_gateway_alerts_forwarded_total").absolute(load(&hub.alerts_forwarded));
    metrics::counter!("soc_gateway_ws_resumed_total", "outcome" => "resumed")
        .absolute(load(&hub.sessions_resumed));
    metrics::counter!("soc_gateway_ws_resumed_total", "outcome" => "resync")
        .absolute(load(&hub.sessions_resynced));
}

/// Help text for the series every deployment has.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "soc_ingest_lines_total",
        "Log lines written to the raw stream"
    );
    describe_counter!(
        "soc_ingest_truncated_lines_total",
        "Lines cut to the size limit (kept whole in the dead-letter topic), by connector"
    );
    describe_counter!(
        "soc_ingest_received_lines_total",
        "Lines received by a live connector (syslog, HTTP, file tail), by connector"
    );
    describe_counter!(
        "soc_ingest_received_bytes_total",
        Unit::Bytes,
        "Bytes of lines received by a live connector, by connector"
    );
    describe_counter!(
        "soc_ingest_errors_total",
        "Connector errors (reads, TLS handshakes, partial frames, bad tokens), by connector and type"
    );
    describe_counter!(
        "soc_ingest_dropped_lines_total",
        "Lines a connector dropped (UDP when the stream is behind, refused HTTP requests), by reason"
    );
    describe_counter!(
        "soc_processor_events_total",
        "Normalized events processed, by parser (dataset)"
    );
    describe_counter!(
        "soc_processor_parse_failures_total",
        "Lines no parser recognized"
    );
    describe_counter!(
        "soc_alert_updates_total",
        "Alert revisions stored and published, by rule and severity"
    );
    describe_gauge!(
        "soc_processor_lag_records",
        "Records in the input stream not yet processed, by partition"
    );
    describe_histogram!(
        "soc_triage_latency_seconds",
        Unit::Seconds,
        "Time of a model call, retries included"
    );
    describe_gauge!(
        "soc_triage_breaker_open",
        "1 while the model's circuit breaker is open"
    );
    describe_gauge!("soc_gateway_ws_clients", "WebSocket clients connected");
    describe_counter!(
        "soc_gateway_ws_dropped_total",
        "WebSocket clients disconnected for falling behind or not reading"
    );
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String), (status = 401, body = crate::error::Problem, content_type = "application/problem+json"), (status = 403, body = crate::error::Problem, content_type = "application/problem+json"), (status = 404, description = "Metrics are off", body = crate::error::Problem, content_type = "application/problem+json")), security(("bearer" = []), ("session" = [])))]
pub async fn scrape(
    export: Option<actix_web::web::Data<MetricsExport>>,
    hub: Option<actix_web::web::Data<AlertHub>>,
) -> Result<actix_web::HttpResponse, crate::error::ApiError> {
    let Some(export) = export else {
        return Err(crate::error::ApiError::NotFound(
            "metrics are not enabled in this process".into(),
        ));
    };
    Ok(actix_web::HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(export.render(hub.as_ref().map(|h| h.get_ref()))))
}

/// `/metrics` alone, for a process that serves no gateway (`soc processor` on a cluster),
/// behind the same rule: a viewer's token.
pub fn serve_alone(
    listener: std::net::TcpListener,
    db: sea_orm::DatabaseConnection,
    export: std::sync::Arc<MetricsExport>,
) -> std::io::Result<actix_web::dev::Server> {
    use crate::auth::guard::{check_access, AccessTable};
    use crate::auth::{Access, Accounts, Role};
    use actix_web::{web, App, HttpServer};
    let accounts = web::Data::new(Accounts::new(db));
    let access = web::Data::new(AccessTable::new([(
        actix_web::http::Method::GET,
        "/metrics",
        Access::Role(Role::Viewer),
    )]));
    let export = web::Data::from(export);
    Ok(HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(check_access))
            .app_data(accounts.clone())
            .app_data(access.clone())
            .app_data(export.clone())
            .route("/metrics", web::get().to(scrape))
    })
    .workers(1)
    .shutdown_timeout(2)
    .listen(listener)?
    .disable_signals()
    .run())
}
