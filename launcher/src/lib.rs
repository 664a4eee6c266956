//! The `soc` launcher: one command for every role.
//!
//! - `soc up` runs the whole pipeline in one process on the embedded default (durable log and
//!   SQLite under `--data-dir`, dashboard on 127.0.0.1:8080), optionally replaying files.
//! - `soc setup|processor|gateway|replay` run one role against a Fluvio cluster and
//!   `DATABASE_URL`; `soc migrate` applies the schema; `soc config` prints the configuration.
//!
//! Everything it needs (SmartModules, rules, indicator lists, deployment config, the demo
//! log) is compiled in; see [`settings`] for the one configuration every command reads.

pub mod demo;
pub mod embedded;
pub mod explain;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod settings;
pub mod users;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use settings::{ConfigArgs, Settings};
use soc_core::stream::fluvio::FluvioStream;
use soc_core::stream::LogStream;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "soc", version, about = "Streaming security operations center")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Log lines as text or JSON (to stderr; `SOC_LOG` sets the filter).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run every role in this process on the embedded log and SQLite.
    Up(UpArgs),
    /// Create the topics and register the SmartModules in a Fluvio cluster.
    Setup,
    /// Run the processor against a Fluvio cluster.
    Processor(ProcessorArgs),
    /// Run the gateway (API, WebSocket, dashboard) against a Fluvio cluster.
    Gateway(GatewayArgs),
    /// Replay a log file into the raw topic of a Fluvio cluster.
    Replay(ReplayArgs),
    /// Run one connector (syslog, HTTP ingest, file tail) against a Fluvio cluster, from
    /// a connector file such as fluvio-config/connectors/syslog-tcp.yaml.
    Connector(ConnectorArgs),
    /// Apply the database migrations.
    Migrate,
    /// Manage the users who sign in to the dashboard, and their API tokens.
    #[command(subcommand)]
    User(users::UserCmd),
    /// The audit log of response actions.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// The command-signing keys: list, rotate, retire.
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// Print the effective configuration (defaults, file, environment, flags), secrets
    /// redacted.
    Config(ConfigCmd),
    /// Load every rule file under a directory (ours or Sigma) and report which fail and why.
    CheckRules {
        /// A directory of rule files, e.g. a checkout of SigmaHQ's rules/web.
        dir: PathBuf,
    },
    /// Show what the pipeline makes of log lines: the parsed event, the filter's verdict,
    /// the rules that select each line and why the others do not, and the alerts raised.
    Explain(explain::ExplainArgs),
}

#[derive(Args)]
pub struct UpArgs {
    /// Replay these log files into the raw topic once the pipeline is up (resumes after a restart).
    #[arg(long)]
    pub replay: Vec<PathBuf>,
    /// Replay the demo log shipped with `soc` (SSH brute force from two addresses).
    #[arg(long)]
    pub demo: bool,
    /// Limit replay speed (lines per second).
    #[arg(long)]
    pub replay_rate: Option<u64>,
    /// The year of replayed timestamps written without one (an archive from an earlier
    /// year); default: inferred from the time a line is read, never in the future.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1970..=9999))]
    pub year: Option<i32>,
    #[command(flatten)]
    pub ingest: IngestArgs,
}

/// Live ways in for log lines; each overrides its `[ingest]` key.
#[derive(Args, Clone, Debug, Default)]
pub struct IngestArgs {
    /// Receive syslog over UDP on this address, e.g. 127.0.0.1:5514 [ingest.syslog.udp].
    #[arg(long)]
    pub syslog_udp: Option<std::net::SocketAddr>,
    /// Receive syslog over TCP (octet counting or one message per line) [ingest.syslog.tcp].
    #[arg(long)]
    pub syslog_tcp: Option<std::net::SocketAddr>,
    /// Receive syslog over TLS; needs [ingest.syslog] tls_cert and tls_key [ingest.syslog.tls].
    #[arg(long)]
    pub syslog_tls: Option<std::net::SocketAddr>,
    /// Accept lines over HTTP (POST /ingest with a token from [ingest.http.tokens]) [ingest.http.listen].
    #[arg(long)]
    pub http_ingest: Option<std::net::SocketAddr>,
    /// Follow files matching this glob, e.g. '/var/log/auth.log*' (repeatable) [ingest.tail.include].
    #[arg(long)]
    pub tail: Vec<String>,
}

impl IngestArgs {
    pub fn apply(&self, settings: &mut Settings) {
        let ingest = &mut settings.ingest;
        if self.syslog_udp.is_some() {
            ingest.syslog.udp = self.syslog_udp;
        }
        if self.syslog_tcp.is_some() {
            ingest.syslog.tcp = self.syslog_tcp;
        }
        if self.syslog_tls.is_some() {
            ingest.syslog.tls = self.syslog_tls;
        }
        if self.http_ingest.is_some() {
            ingest.http.listen = self.http_ingest;
        }
        if !self.tail.is_empty() {
            ingest.tail.include = self.tail.clone();
        }
    }
}

#[derive(Args)]
pub struct ProcessorArgs {
    /// Partitions of raw-logs this instance owns (repeatable; default all).
    #[arg(long = "partition")]
    pub partitions: Vec<u32>,
    /// Consumer id for offsets and checkpoints; one per set of partitions.
    #[arg(long, default_value = "processor")]
    pub consumer_id: String,
    /// Serve `/metrics` (a viewer's token) on this address, e.g. 127.0.0.1:9464.
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Args)]
pub struct GatewayArgs {
    /// Consumer id of this gateway instance on the alerts topic.
    #[arg(long, default_value = "gateway")]
    pub consumer_id: String,
}

#[derive(Args)]
pub struct ReplayArgs {
    pub file: PathBuf,
    #[arg(long)]
    pub rate: Option<u64>,
    /// The year of the file's timestamps written without one.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1970..=9999))]
    pub year: Option<i32>,
}

#[derive(Args)]
pub struct ConnectorArgs {
    /// The connector file (apiVersion, meta, and the connector's own section).
    pub file: PathBuf,
}

#[derive(Args)]
pub struct ConfigCmd {
    /// Print the documented example file (every key, with its default) instead.
    #[arg(long)]
    pub example: bool,
}

/// Logs to stderr, filtered by `SOC_LOG` (default `info`, quieter sqlx and fluvio).
/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

pub fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SOC_LOG")
        .unwrap_or_else(|_| "info,sqlx=warn,fluvio=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The first Ctrl-C (or SIGTERM) asks every stage to finish what it holds and stop; a
/// second Ctrl-C stops the process at once (what is durable stays durable: a restart
/// resumes from the checkpoints, as after a crash).
pub fn shutdown_on_ctrl_c() -> watch::Receiver<bool> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = watch::channel(false);
    // Registered now, so a second signal right after the first is not missed.
    let signals =
        signal(SignalKind::interrupt()).and_then(|i| Ok((i, signal(SignalKind::terminate())?)));
    tokio::spawn(async move {
        let Ok((mut interrupt, mut terminate)) = signals else {
            tracing::warn!("cannot listen for Ctrl-C; stop the process with SIGKILL");
            return;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down (Ctrl-C again to stop at once)");
        let _ = tx.send(true);
        interrupt.recv().await;
        eprintln!("stopped at once");
        std::process::exit(130);
    });
    rx
}

pub async fn connect_fluvio(settings: &Settings) -> Result<FluvioStream> {
    let endpoint = settings.fluvio_endpoint()?;
    FluvioStream::connect(endpoint, settings.fluvio_checkpoint_dir())
        .await
        .context("connecting to Fluvio")
}

pub async fn connect_db(url: &str) -> Result<sea_orm::DatabaseConnection> {
    use soc_migrations::MigratorTrait;
    let db = soc_core::db::connect(url)
        .await
        .with_context(|| format!("connecting to {}", settings::redact_url(url)))?;
    soc_migrations::Migrator::up(&db, None)
        .await
        .context("applying migrations")?;
    Ok(db)
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    if let Command::Config(ConfigCmd { example: true }) = cli.command {
        print!("{}", settings::EXAMPLE);
        return Ok(());
    }
    let settings = cli.config.load()?;
    match cli.command {
        Command::Up(args) => up(settings, args).await,
        Command::Config(_) => {
            print!("{}", settings.to_redacted_toml()?);
            Ok(())
        }
        Command::Setup => {
            let stream = connect_fluvio(&settings).await?;
            let created = stream.create_topics(&settings.assets.deployment()?).await?;
            println!(
                "topics created: {}",
                if created.is_empty() {
                    "none (all existed)".into()
                } else {
                    created.join(", ")
                }
            );
            let modules = stream
                .register_smartmodules(&settings.assets.smartmodules()?)
                .await?;
            println!("smartmodules registered: {}", modules.join(", "));
            Ok(())
        }
        Command::Processor(args) => {
            let stream: Arc<dyn LogStream> = Arc::new(connect_fluvio(&settings).await?);
            let db = connect_db(&settings.database_url()).await?;
            let mut processor = settings.processor()?;
            processor.partitions = args.partitions;
            processor.consumer_id = args.consumer_id;
            let stats: Arc<soc_processor::pipeline::ProcessorStats> = Arc::default();
            let metrics = match args.metrics_listen {
                Some(addr) => {
                    let export = soc_gateway::metrics::MetricsExport::new()
                        .context("the metrics recorder could not be installed")?
                        .with_sampler(metrics::processor_sampler(stats.clone()));
                    let listener = std::net::TcpListener::bind(addr)
                        .with_context(|| format!("binding {addr}"))?;
                    let server =
                        soc_gateway::metrics::serve_alone(listener, db.clone(), Arc::new(export))?;
                    let handle = server.handle();
                    tokio::spawn(server);
                    println!("processor metrics on http://{addr}/metrics");
                    Some(handle)
                }
                None => None,
            };
            let result = soc_processor::run(processor, stream, db, stats, shutdown_on_ctrl_c())
                .await
                .context("processor");
            if let Some(h) = metrics {
                h.stop(true).await;
            }
            result
        }
        Command::Gateway(args) => {
            let stream: Arc<dyn LogStream> = Arc::new(connect_fluvio(&settings).await?);
            let db = connect_db(&settings.database_url()).await?;
            let hub = Arc::new(soc_gateway::AlertHub::default());
            let stages = Arc::new(soc_gateway::Stages::default());
            let shutdown = shutdown_on_ctrl_c();
            let listener = std::net::TcpListener::bind(settings.listen)
                .with_context(|| format!("binding {}", settings.listen))?;
            users::ensure_first_admin(&settings, &db).await?;
            let tls = settings.tls_config()?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            let response = Arc::new(settings.response_service(db.clone(), hub.clone())?);
            let dispatcher = tokio::spawn(soc_gateway::response::dispatch::run(
                response.clone(),
                shutdown.clone(),
            ));
            let server = soc_gateway::run(
                soc_gateway::GatewayState {
                    db,
                    hub: hub.clone(),
                    hosts: Arc::new(soc_gateway::HostPolicy::new(settings.allowed_hosts.clone())),
                    stages: stages.clone(),
                    auth: Arc::new(settings.auth_state()),
                    rules: Arc::new(settings.rule_catalog_or_empty()),
                    metrics: soc_gateway::metrics::MetricsExport::new().map(Arc::new),
                    response,
                },
                listener,
                tls,
            )?;
            let handle = server.handle();
            tokio::spawn(server);
            println!("gateway listening on {scheme}://{}", settings.listen);
            let follow = stages
                .track(
                    "alert feed",
                    soc_gateway::follow_alerts(
                        stream,
                        soc_core::stream::topics::ALERTS.into(),
                        args.consumer_id,
                        hub,
                        shutdown,
                    ),
                )
                .await;
            handle.stop(true).await;
            dispatcher.abort();
            follow.context("following alerts")
        }
        Command::Replay(args) => {
            let stream = connect_fluvio(&settings).await?;
            let mut config = soc_connectors::replay::ReplayConfig::new(&args.file);
            config.lines_per_sec = args.rate;
            config.max_line_bytes = settings.ingest.max_line_bytes;
            config.year = settings.ingest.year_of(&args.file, args.year);
            let report = soc_connectors::replay::replay(&stream, &config).await?;
            println!(
                "replayed {} lines (resumed from byte {})",
                report.lines, report.resumed_from
            );
            Ok(())
        }
        Command::Connector(args) => run_connector(&settings, &args.file).await,
        Command::Migrate => {
            connect_db(&settings.database_url()).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User(cmd) => {
            let db = connect_db(&settings.database_url()).await?;
            users::run(cmd, &db).await
        }
        Command::CheckRules { dir } => check_rules(&dir),
        Command::Explain(args) => explain::run(&settings, args),
        Command::Keys(cmd) => {
            let db = connect_db(&settings.database_url()).await?;
            keys::run(cmd, &settings.signing_key_path(), &db).await
        }
        Command::Audit(AuditCmd::Verify) => {
            let db = connect_db(&settings.database_url()).await?;
            match soc_core::response::audit::verify(&db).await {
                Ok(n) => {
                    println!("audit log intact: {n} entries");
                    Ok(())
                }
                Err(e) => Err(anyhow::anyhow!("audit log tampered with: {e}")),
            }
        }
    }
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Check that no entry was edited, removed or reordered; exits non-zero if one was.
    Verify,
}

pub async fn up(mut settings: Settings, args: UpArgs) -> Result<()> {
    let shutdown = shutdown_on_ctrl_c();
    args.ingest.apply(&mut settings);
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("binding {}", settings.listen))?;
    let connectors = ingest::Connectors::bind(&settings).await?;
    let max_line_bytes = settings.ingest.max_line_bytes;
    // Before anything starts: a typo in a path is not a reason to start and then stop.
    for f in &args.replay {
        std::fs::File::open(f).with_context(|| format!("--replay {}", f.display()))?;
    }
    let mut files: Vec<(PathBuf, Option<i32>)> = args
        .replay
        .iter()
        .map(|f| (f.clone(), settings.ingest.year_of(f, args.year)))
        .collect();
    if args.demo {
        files.push((demo::write(&settings.data_dir)?, None));
    }
    let mut pipeline = embedded::start(embedded::Options {
        settings,
        listener,
        shutdown: shutdown.clone(),
        triage: None,
        clock: soc_core::clock::Clock::System,
    })
    .await?;
    println!("dashboard: {}://{}/", pipeline.scheme(), pipeline.addr);
    for line in connectors.describe() {
        println!("receiving: {line}");
    }
    let stream: Arc<dyn LogStream> = Arc::new(pipeline.log.clone());
    for (name, stage) in connectors.stages(stream, shutdown.clone())? {
        pipeline.spawn_stage(name, stage);
    }
    // Replays run as jobs of the pipeline, so a stage that fails meanwhile stops `soc up`
    // at once instead of after the files are read.
    let log = pipeline.log.clone();
    let rate = args.replay_rate;
    pipeline.spawn_job("replay".into(), async move {
        for (file, year) in &files {
            let mut config = soc_connectors::replay::ReplayConfig::new(file);
            config.lines_per_sec = rate;
            config.max_line_bytes = max_line_bytes;
            config.year = *year;
            let report = soc_connectors::replay::replay_until(&log, &config, shutdown.clone())
                .await
                .with_context(|| format!("replaying {}", file.display()))?;
            if report.stopped {
                println!(
                    "replay of {} stopped at byte {} after {} lines; the next `soc up --replay` resumes there",
                    file.display(),
                    report.position,
                    report.lines
                );
                break;
            }
            println!(
                "replayed {} lines from {} (resumed from byte {})",
                report.lines,
                file.display(),
                report.resumed_from
            );
        }
        Ok(())
    });
    pipeline.wait().await
}

/// One connector from its file, producing into the cluster until Ctrl-C.
async fn run_connector(settings: &Settings, file: &std::path::Path) -> Result<()> {
    use soc_connectors::deployment::{ConnectorDeployment, ConnectorKind};
    use soc_connectors::sink::{Sink, SinkConfig};
    let deployment = ConnectorDeployment::load(file, |name| std::env::var(name).ok())?;
    let shutdown = shutdown_on_ctrl_c();
    // Bound before connecting: a port in use is reported without waiting for the cluster.
    let (syslog, http) = match &deployment.kind {
        ConnectorKind::Syslog(c) => (
            Some(soc_connectors::syslog::SyslogSource::bind(c.clone()).await?),
            None,
        ),
        ConnectorKind::Http(c) => (
            None,
            Some(soc_connectors::http::HttpIngest::bind_listener(c)?),
        ),
        ConnectorKind::File(_) => (None, None),
    };
    let stream: Arc<dyn LogStream> = Arc::new(connect_fluvio(settings).await?);
    let (sink, writer) = Sink::start(
        stream.clone(),
        SinkConfig {
            topic: deployment.topic.clone(),
            max_pending_bytes: settings.ingest.max_pending_bytes,
            ..SinkConfig::default()
        },
    );
    let writer = tokio::spawn(writer);
    println!(
        "connector {} producing to {}",
        deployment.name, deployment.topic
    );
    let ran: soc_connectors::Result<()> = match deployment.kind {
        ConnectorKind::Syslog(_) => match syslog {
            Some(source) => source.run(sink, shutdown).await,
            None => Ok(()),
        },
        ConnectorKind::Http(c) => match http {
            Some(listener) => {
                soc_connectors::http::HttpIngest::new(c, listener, sink, stream)?
                    .run(shutdown)
                    .await
            }
            None => Ok(()),
        },
        ConnectorKind::File(c) => {
            soc_connectors::tail::FileTail::new(c, stream)?
                .run(sink, shutdown)
                .await
        }
    };
    ran.with_context(|| format!("connector {}", deployment.name))?;
    writer
        .await
        .context("the stream writer")?
        .context("writing received lines")
}

/// Load each rule file on its own; print the failures and a summary. Fails if any fails.
fn check_rules(dir: &std::path::Path) -> Result<()> {
    let files = soc_processor::rules::rule_files(dir)?;
    let mut failed = 0;
    for f in &files {
        if let Err(e) = soc_processor::rules::load_rule(f) {
            failed += 1;
            println!("FAIL {e}");
        }
    }
    println!(
        "{} of {} rule files load ({} refused)",
        files.len() - failed,
        files.len(),
        failed
    );
    if failed > 0 {
        bail!("{failed} rule files were refused");
    }
    Ok(())
}
