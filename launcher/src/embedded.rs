//! The whole pipeline in one process: embedded log, processor, gateway and its alert feed.

use crate::{paths, CommonPaths};
use anyhow::{Context, Result};
use sea_orm::DatabaseConnection;
use soc_core::stream::chain::ModuleRegistry;
use soc_core::stream::config::{chain_from_dir, topics_from_dir};
use soc_core::stream::embedded::EmbeddedLog;
use soc_core::stream::{topics, LogStream};
use soc_gateway::{AlertHub, GatewayState};
use soc_processor::pipeline::ProcessorStats;
use soc_processor::triage::{Profile, TriageSettings};
use soc_processor::ProcessorSettings;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub struct Options {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub listener: TcpListener,
    pub paths: CommonPaths,
    /// Triage settings to use instead of `triage.yaml` and the flags.
    pub triage: Option<soc_processor::triage::TriageSettings>,
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
    /// Everything in `data_dir` (log and SQLite), the checkout's SmartModules, rules and config.
    pub fn local(
        data_dir: &std::path::Path,
        listener: TcpListener,
        shutdown: watch::Receiver<bool>,
    ) -> Options {
        Options {
            data_dir: data_dir.to_path_buf(),
            database_url: format!("sqlite://{}/soc.sqlite", data_dir.display()),
            listener,
            paths: CommonPaths::default(),
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

pub fn processor_settings(p: &CommonPaths) -> Result<ProcessorSettings> {
    let config = paths::config_dir(p)?;
    Ok(ProcessorSettings {
        chain: chain_from_dir(&config)?,
        rules_dir: paths::rules_dir(p)?,
        ioc_dir: paths::ioc_dir(p)?,
        rule_overrides: crate::parse_overrides(&p.rule_overrides)?,
        triage: triage_settings(&config, p)?,
        ..ProcessorSettings::default()
    })
}

/// `triage.yaml` of the config directory, with the command line's overrides.
pub fn triage_settings(config_dir: &std::path::Path, p: &CommonPaths) -> Result<TriageSettings> {
    let mut s =
        TriageSettings::load(&config_dir.join("triage.yaml")).map_err(anyhow::Error::msg)?;
    if let Some(profile) = &p.llm_profile {
        s.profile = Profile::parse(profile).with_context(|| {
            format!("unknown LLM profile `{profile}` (groq, openai, ollama, vllm, llama.cpp)")
        })?;
    }
    if let Some(url) = &p.llm_base_url {
        s.base_url = url.clone();
    }
    if let Some(model) = &p.llm_model {
        s.model = model.clone();
    }
    if p.no_llm {
        s.enabled = false;
    }
    Ok(s)
}

pub async fn start(opts: Options) -> Result<Pipeline> {
    let modules = ModuleRegistry::load_dir(&paths::smartmodules_dir(&opts.paths)?)?;
    let log = EmbeddedLog::open(&opts.data_dir.join("log.redb"), Some(modules))
        .context("opening the embedded log")?;
    for spec in topics_from_dir(&paths::config_dir(&opts.paths)?)? {
        log.ensure_topic(&spec).await?;
    }
    let db = crate::connect_db(&opts.database_url).await?;
    let mut settings = processor_settings(&opts.paths)?;
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
                    Some(Err(e)) => break Err(anyhow::anyhow!("role panicked: {e}")),
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
