//! The whole pipeline in one process: embedded log, processor, gateway and its alert feed.

use crate::settings::Settings;
use anyhow::{Context, Result};
use sea_orm::DatabaseConnection;
use soc_core::stream::chain::ModuleRegistry;
use soc_core::stream::config::topics_from;
use soc_core::stream::embedded::EmbeddedLog;
use soc_core::stream::{topics, LogStream};
use soc_gateway::{AlertHub, GatewayState};
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
}

/// Run `job` every `period` until shutdown.
async fn every<F, Fut>(period: Duration, mut shutdown: watch::Receiver<bool>, job: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = tick.tick() => job().await,
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
        }
    }
}

pub struct Pipeline {
    pub log: EmbeddedLog,
    pub db: DatabaseConnection,
    pub stats: Arc<ProcessorStats>,
    pub hub: Arc<AlertHub>,
    pub addr: SocketAddr,
    server: actix_web::dev::ServerHandle,
    tasks: JoinSet<Result<()>>,
    shutdown: watch::Receiver<bool>,
}

pub async fn start(opts: Options) -> Result<Pipeline> {
    let config = &opts.settings;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let modules = ModuleRegistry::load(&config.assets.smartmodules()?)?;
    let log = EmbeddedLog::open(&config.data_dir.join("log.redb"), Some(modules))
        .context("opening the embedded log")?;
    for spec in topics_from(&config.assets.deployment()?)? {
        log.ensure_topic(&spec).await?;
    }
    let db = crate::connect_db(&config.database_url()).await?;
    let mut settings = config.processor()?;
    if let Some(t) = &opts.triage {
        settings.triage = t.clone();
    }
    let stats = Arc::new(ProcessorStats::default());
    let hub = Arc::new(AlertHub::default());
    let stream: Arc<dyn LogStream> = Arc::new(log.clone());
    let mut tasks = JoinSet::new();
    {
        let (stream, db, stats, shutdown) = (
            stream.clone(),
            db.clone(),
            stats.clone(),
            opts.shutdown.clone(),
        );
        tasks.spawn(async move {
            soc_processor::run(settings, stream, db, stats, shutdown)
                .await
                .context("processor")
        });
    }
    {
        let (stream, hub, shutdown) = (stream.clone(), hub.clone(), opts.shutdown.clone());
        tasks.spawn(async move {
            soc_gateway::follow_alerts(
                stream,
                topics::ALERTS.into(),
                "gateway".into(),
                hub,
                shutdown,
            )
            .await
            .context("gateway alert feed")
        });
    }
    {
        // SQLite WAL checkpoints run here rather than inside the processor's commits.
        let db = db.clone();
        tasks.spawn(every(
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
        ));
    }
    {
        let log = log.clone();
        tasks.spawn(every(
            Duration::from_secs(60),
            opts.shutdown.clone(),
            move || {
                let log = log.clone();
                async move {
                    let now = chrono::Utc::now().timestamp_millis();
                    match tokio::task::spawn_blocking(move || log.enforce_retention(now)).await {
                        Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, "retention applied"),
                        Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
                        _ => {}
                    }
                }
            },
        ));
    }
    let addr = opts.listener.local_addr()?;
    let server = soc_gateway::run(
        GatewayState {
            db: db.clone(),
            hub: hub.clone(),
        },
        opts.listener,
    )?;
    let handle = server.handle();
    tokio::spawn(server);
    Ok(Pipeline {
        log,
        db,
        stats,
        hub,
        addr,
        server: handle,
        tasks,
        shutdown: opts.shutdown,
    })
}

impl Pipeline {
    /// Run until shutdown is requested or a role fails; a failed role fails the process so a
    /// supervisor restarts it (it resumes from its checkpoints).
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
        self.server.stop(true).await;
        while let Some(res) = self.tasks.join_next().await {
            if let Ok(Err(e)) = res {
                tracing::warn!(error = %e, "role stopped with an error");
            }
        }
        result
    }
}
