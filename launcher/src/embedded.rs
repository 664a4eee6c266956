//! The whole pipeline in one process: embedded log, processor, gateway and its alert feed.

use crate::settings::Settings;
use anyhow::{Context, Result};
use sea_orm::DatabaseConnection;
use soc_core::clock::Clock;
use soc_core::stream::chain::ModuleRegistry;
use soc_core::stream::config::topics_from;
use soc_core::stream::embedded::EmbeddedLog;
use soc_core::stream::{topics, LogStream};
use soc_gateway::{AlertHub, GatewayState, Stages};
use soc_processor::pipeline::ProcessorStats;
use soc_processor::triage::TriageSettings;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub struct Options {
    /// Data directory, database, assets and triage, as configured.
    pub settings: Settings,
    pub listener: TcpListener,
    /// Triage settings to use instead of the configured ones (tests, benchmarks).
    pub triage: Option<TriageSettings>,
    pub shutdown: watch::Receiver<bool>,
    /// Times every stage's intervals, timeouts and backoff (a fast one in tests).
    pub clock: Clock,
}

/// Run `job` every `period` of `clock` until shutdown.
async fn every<F, Fut>(
    clock: Clock,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    job: F,
) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        job().await;
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = clock.sleep(period) => {}
        }
    }
}

impl Options {
    /// Everything in `data_dir` (log and SQLite), the shipped SmartModules, rules and config.
    pub fn local(
        data_dir: &std::path::Path,
        listener: TcpListener,
        shutdown: watch::Receiver<bool>,
    ) -> Options {
        Options {
            settings: Settings {
                data_dir: data_dir.to_path_buf(),
                ..Settings::default()
            },
            listener,
            shutdown,
            triage: None,
            clock: Clock::System,
        }
    }
}

pub struct Pipeline {
    pub log: EmbeddedLog,
    pub db: DatabaseConnection,
    pub stats: Arc<ProcessorStats>,
    pub hub: Arc<AlertHub>,
    pub addr: SocketAddr,
    /// Whether the gateway serves TLS.
    pub tls: bool,
    server: actix_web::dev::ServerHandle,
    tasks: JoinSet<Result<()>>,
    pub stages: Arc<Stages>,
    shutdown: watch::Receiver<bool>,
}

pub async fn start(opts: Options) -> Result<Pipeline> {
    // Before any stage counts anything: counts made without a recorder are lost.
    let _ = soc_gateway::metrics::recorder();
    let config = &opts.settings;
    let mut settings = config.processor()?;
    // A rule, a rule override or an indicator list that does not load stops the start
    // here, before anything is opened or served, naming the file and the problem.
    soc_processor::rules::load_rules(&settings.rules, &settings.rule_overrides)
        .context("loading the rules")?;
    soc_processor::ioc::IocSet::load(&settings.indicators)
        .context("loading the indicator lists")?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let modules = ModuleRegistry::load(&config.assets.smartmodules()?)?;
    let log = EmbeddedLog::open(&config.data_dir.join("log.redb"), Some(modules))
        .context("opening the embedded log")?;
    for spec in topics_from(&config.assets.deployment()?)? {
        log.ensure_topic(&spec).await?;
    }
    let db = crate::connect_db(&config.database_url())
        .await
        .with_context(|| {
            format!(
                "opening the database; if it is damaged, move it (and its -wal and -shm files) \
                 out of {}: the next start rebuilds every alert the stream still holds",
                config.data_dir.display()
            )
        })?;
    crate::users::ensure_first_admin(config, &db).await?;
    let tls = config.tls_config()?;
    if let Some(t) = &opts.triage {
        settings.triage = t.clone();
    }
    settings.clock = opts.clock;
    let stats = Arc::new(ProcessorStats::default());
    let hub = Arc::new(AlertHub::default().with_clock(opts.clock));
    let stream: Arc<dyn LogStream> = Arc::new(log.clone());
    let stages = Arc::new(Stages::default());
    let mut tasks = JoinSet::new();
    {
        let (stream, db, stats, shutdown) = (
            stream.clone(),
            db.clone(),
            stats.clone(),
            opts.shutdown.clone(),
        );
        spawn_stage(
            &mut tasks,
            &stages,
            &opts.shutdown,
            "processor",
            async move {
                soc_processor::run(settings, stream, db, stats, shutdown)
                    .await
                    .context("processor")
            },
        );
    }
    {
        let (stream, hub, shutdown) = (stream.clone(), hub.clone(), opts.shutdown.clone());
        spawn_stage(
            &mut tasks,
            &stages,
            &opts.shutdown,
            "alert feed",
            async move {
                soc_gateway::follow_alerts(
                    stream,
                    topics::ALERTS.into(),
                    "gateway".into(),
                    hub,
                    shutdown,
                )
                .await
                .context("gateway alert feed")
            },
        );
    }
    {
        // SQLite WAL checkpoints run here rather than inside the processor's commits.
        let db = db.clone();
        spawn_stage(
            &mut tasks,
            &stages,
            &opts.shutdown,
            "database checkpoints",
            every(
                opts.clock,
                Duration::from_secs(1),
                opts.shutdown.clone(),
                move || {
                    let db = db.clone();
                    async move {
                        if let Err(e) = soc_core::db::checkpoint_sqlite(&db).await {
                            tracing::warn!(error = %e, "database checkpoint failed");
                        }
                    }
                },
            ),
        );
    }
    {
        let log = log.clone();
        spawn_stage(
            &mut tasks,
            &stages,
            &opts.shutdown,
            "retention",
            every(
                opts.clock,
                Duration::from_secs(60),
                opts.shutdown.clone(),
                move || {
                    let log = log.clone();
                    async move {
                        let now = chrono::Utc::now().timestamp_millis();
                        match tokio::task::spawn_blocking(move || log.enforce_retention(now)).await
                        {
                            Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, "retention applied"),
                            Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
                            _ => {}
                        }
                    }
                },
            ),
        );
    }
    let response = Arc::new(
        config
            .response_service(db.clone(), hub.clone())?
            .with_clock(opts.clock),
    );
    {
        let (response, shutdown) = (response.clone(), opts.shutdown.clone());
        spawn_stage(
            &mut tasks,
            &stages,
            &opts.shutdown,
            "response",
            async move {
                soc_gateway::response::dispatch::run(response, shutdown).await;
                Ok(())
            },
        );
    }
    let addr = opts.listener.local_addr()?;
    let tls_on = tls.is_some();
    let server = soc_gateway::run(
        GatewayState {
            db: db.clone(),
            hub: hub.clone(),
            hosts: Arc::new(soc_gateway::HostPolicy::new(config.allowed_hosts.clone())),
            stages: stages.clone(),
            auth: Arc::new(config.auth_state()),
            rules: Arc::new(config.rule_catalog_or_empty()),
            metrics: soc_gateway::metrics::MetricsExport::new().map(|m| {
                Arc::new(
                    m.with_sampler(crate::metrics::processor_sampler(stats.clone()))
                        .with_snapshot("stages", crate::metrics::processor_snapshot(stats.clone())),
                )
            }),
            response,
        },
        opts.listener,
        tls,
    )?;
    let handle = server.handle();
    tokio::spawn(server);
    Ok(Pipeline {
        log,
        db,
        stats,
        hub,
        addr,
        tls: tls_on,
        server: handle,
        tasks,
        stages,
        shutdown: opts.shutdown,
    })
}

/// Run a stage among the pipeline's tasks, its state tracked for health and its failure
/// logged the moment it happens.
/// A stage that ends before shutdown was asked for has stopped working: that is a
/// failure too.
fn spawn_stage(
    tasks: &mut JoinSet<Result<()>>,
    stages: &Arc<Stages>,
    shutdown: &watch::Receiver<bool>,
    name: &'static str,
    fut: impl std::future::Future<Output = Result<()>> + Send + 'static,
) {
    let stages = stages.clone();
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        stages
            .track(name, async move {
                fut.await?;
                if *shutdown.borrow() {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("{name} stopped without being asked to"))
                }
            })
            .await
    });
}

impl Pipeline {
    /// `https` or `http`, as the gateway serves.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// Run a stage that lives as long as the pipeline (a connector) beside the others: it
    /// is tracked for health, and its failure or early end stops the pipeline.
    pub fn spawn_stage(
        &mut self,
        name: &'static str,
        fut: impl std::future::Future<Output = Result<()>> + Send + 'static,
    ) {
        spawn_stage(&mut self.tasks, &self.stages, &self.shutdown, name, fut);
    }

    /// Run a job that ends by itself (a file replay) beside the stages: its failure stops
    /// the pipeline like a stage's, its success does not.
    pub fn spawn_job(
        &mut self,
        name: String,
        fut: impl std::future::Future<Output = Result<()>> + Send + 'static,
    ) {
        let stages = self.stages.clone();
        self.tasks
            .spawn(async move { stages.track_job(&name, fut).await });
    }

    /// Run until shutdown is requested or a stage fails; a failed stage fails the process at
    /// once so a supervisor restarts it (every stage resumes from its checkpoints).
    pub async fn wait(mut self) -> Result<()> {
        let mut shutdown = self.shutdown.clone();
        let result = loop {
            tokio::select! {
                _ = shutdown.changed() => break Ok(()),
                res = self.tasks.join_next() => match res {
                    None => break Ok(()),
                    Some(Ok(Ok(()))) => {
                        if *shutdown.borrow() { break Ok(()); }
                    }
                    Some(Ok(Err(e))) => break Err(e),
                    Some(Err(e)) if e.is_panic() => {
                        break Err(anyhow::anyhow!("a role panicked: {e}"))
                    }
                    Some(Err(e)) => break Err(anyhow::anyhow!("a role was cancelled: {e}")),
                },
            }
        };
        if result.is_err() {
            // The other stages wait for a shutdown that is not coming: stop them now rather
            // than linger as a process that serves nothing. Each commits atomically, so
            // stopping one mid-batch loses nothing.
            self.tasks.abort_all();
        }
        self.server.stop(true).await;
        while let Some(res) = self.tasks.join_next().await {
            if let Ok(Err(e)) = res {
                tracing::warn!(error = %e, "stage stopped with an error");
            }
        }
        // Every stage is done with the database: close it, so SQLite folds its journal
        // back into the file before the process goes.
        if let Err(e) = self.db.close().await {
            tracing::warn!(error = %e, "closing the database");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stage_that_ends_unasked_is_a_failure() {
        let stages = Arc::new(Stages::default());
        let (stop, shutdown) = watch::channel(false);
        let mut tasks = JoinSet::new();
        spawn_stage(&mut tasks, &stages, &shutdown, "feed", async { Ok(()) });
        let res = tasks.join_next().await.expect("joined").expect("no panic");
        let err = res.expect_err("ended before shutdown");
        assert!(err.to_string().contains("feed stopped"), "{err}");
        assert!(!stages.ready());

        let stages = Arc::new(Stages::default());
        stop.send(true).expect("stop");
        spawn_stage(&mut tasks, &stages, &shutdown, "feed", async { Ok(()) });
        let res = tasks.join_next().await.expect("joined").expect("no panic");
        assert!(res.is_ok(), "a stage ending on shutdown stopped cleanly");
    }
}
