//! The `soc` launcher: one command for every role.
//!
//! - `soc up` runs the whole pipeline in one process on the embedded default (durable log and
//!   SQLite under `--data-dir`, dashboard on 127.0.0.1:8080), optionally replaying files.
//! - `soc setup|processor|gateway|replay` run one role against a Fluvio cluster and
//!   `DATABASE_URL`; `soc migrate` applies the schema; `soc bench` measures the pipeline.

pub mod bench;
pub mod bench_triage;
pub mod embedded;
pub mod eval;
pub mod eval_triage;
pub mod fake_llm;
pub mod paths;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use soc_core::stream::fluvio::FluvioStream;
use soc_core::stream::LogStream;
use soc_processor::rules::RuleOverride;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "soc", version, about = "Streaming security operations center")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run every role in this process on the embedded log and SQLite.
    Up(UpArgs),
    /// Create the topics and register the SmartModules in a Fluvio cluster.
    Setup(FluvioArgs),
    /// Run the processor against a Fluvio cluster.
    Processor(ProcessorArgs),
    /// Run the gateway (API, WebSocket, dashboard) against a Fluvio cluster.
    Gateway(GatewayArgs),
    /// Replay a log file into the raw topic of a Fluvio cluster.
    Replay(ReplayArgs),
    /// Apply the database migrations.
    Migrate(DbArgs),
    /// Measure chain throughput, pipeline throughput and line-to-WebSocket latency.
    Bench(bench::BenchArgs),
    /// Replay an attack storm with LLM triage on, against a local server limited like Groq's
    /// free tier: model calls, tokens, verdicts by path, alerts delayed and lost.
    BenchTriage(bench_triage::TriageBenchArgs),
    /// Score the detections against the CrowdSec hub's tests (e.g. ../shared/corpora/crowdsec-hub).
    Eval(eval::EvalArgs),
    /// Triage the hub corpus's alerts with the configured model and compare the verdicts
    /// with the labels (needs GROQ_API_KEY for Groq; says so and exits without it).
    EvalTriage(eval_triage::EvalTriageArgs),
    /// Load every rule file under a directory (ours or Sigma) and report which fail and why.
    CheckRules {
        /// A directory of rule files, e.g. a checkout of SigmaHQ's rules/web.
        dir: PathBuf,
    },
}

#[derive(Args, Clone, Default)]
pub struct CommonPaths {
    /// Directory of SmartModule `.wasm` files (built by scripts/build-smartmodules.sh).
    #[arg(long, env = "SOC_SMARTMODULES_DIR")]
    pub smartmodules: Option<PathBuf>,
    /// Directory of rule files.
    #[arg(long, env = "SOC_RULES_DIR")]
    pub rules_dir: Option<PathBuf>,
    /// Deployment config: topics/*.yaml and chain.yaml.
    #[arg(long, env = "SOC_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// Directory of indicator-of-compromise lists (`*.txt`).
    #[arg(long, env = "SOC_IOC_DIR")]
    pub ioc_dir: Option<PathBuf>,
    /// Rule tuning, e.g. `soc/ssh-bruteforce:threshold=3,window_secs=30` (repeatable).
    #[arg(
        long = "rule-override",
        env = "SOC_RULE_OVERRIDES",
        value_delimiter = ';'
    )]
    pub rule_overrides: Vec<String>,
    /// LLM server profile: groq, openai, ollama, vllm or llama.cpp (default: triage.yaml).
    #[arg(long, env = "SOC_LLM_PROFILE")]
    pub llm_profile: Option<String>,
    /// OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1.
    #[arg(long, env = "SOC_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    /// Model name, e.g. openai/gpt-oss-20b.
    #[arg(long, env = "SOC_LLM_MODEL")]
    pub llm_model: Option<String>,
    /// Never call a model: every alert keeps the deterministic verdict.
    #[arg(long)]
    pub no_llm: bool,
}

#[derive(Args)]
pub struct UpArgs {
    /// Where the embedded log and the SQLite database live.
    #[arg(long, env = "SOC_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Database URL; defaults to SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Address of the dashboard and API.
    #[arg(long, env = "SOC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Replay these log files into the raw topic once the pipeline is up (resumes after a restart).
    #[arg(long)]
    pub replay: Vec<PathBuf>,
    /// Limit replay speed (lines per second).
    #[arg(long)]
    pub replay_rate: Option<u64>,
    #[command(flatten)]
    pub paths: CommonPaths,
}

#[derive(Args, Clone)]
pub struct FluvioArgs {
    /// Fluvio SC endpoint, e.g. 127.0.0.1:9003.
    #[arg(long = "fluvio", env = "FLUVIO_ENDPOINT")]
    pub endpoint: String,
    #[command(flatten)]
    pub paths: CommonPaths,
}

#[derive(Args, Clone)]
pub struct DbArgs {
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
}

#[derive(Args)]
pub struct ProcessorArgs {
    #[command(flatten)]
    pub fluvio: FluvioArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// Partitions of raw-logs this instance owns (repeatable; default all).
    #[arg(long = "partition")]
    pub partitions: Vec<u32>,
    /// Consumer id for offsets and checkpoints; one per set of partitions.
    #[arg(long, default_value = "processor")]
    pub consumer_id: String,
}

#[derive(Args)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub fluvio: FluvioArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long, env = "SOC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Consumer id of this gateway instance on the alerts topic.
    #[arg(long, default_value = "gateway")]
    pub consumer_id: String,
}

#[derive(Args)]
pub struct ReplayArgs {
    pub file: PathBuf,
    #[command(flatten)]
    pub fluvio: FluvioArgs,
    #[arg(long)]
    pub rate: Option<u64>,
    /// Where replay checkpoints are kept.
    #[arg(long, default_value = "data/checkpoints")]
    pub checkpoint_dir: PathBuf,
}

pub fn parse_overrides(specs: &[String]) -> Result<BTreeMap<String, RuleOverride>> {
    let mut out: BTreeMap<String, RuleOverride> = BTreeMap::new();
    for spec in specs.iter().filter(|s| !s.trim().is_empty()) {
        let (id, params) = spec
            .split_once(':')
            .with_context(|| format!("rule override `{spec}`: expected ID:key=value,..."))?;
        let o = out.entry(id.trim().to_string()).or_default();
        for kv in params.split(',') {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("rule override `{spec}`: `{kv}` is not key=value"))?;
            let v: u64 = v
                .trim()
                .parse()
                .with_context(|| format!("rule override `{spec}`: `{v}` is not a number"))?;
            match k.trim() {
                "threshold" => o.threshold = Some(v),
                "window_secs" => o.window_secs = Some(v),
                other => {
                    bail!("rule override `{spec}`: unknown key `{other}` (threshold, window_secs)")
                }
            }
        }
    }
    Ok(out)
}

pub fn shutdown_on_ctrl_c() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    rx
}

pub async fn connect_fluvio(args: &FluvioArgs, checkpoint_dir: PathBuf) -> Result<FluvioStream> {
    FluvioStream::connect(&args.endpoint, checkpoint_dir)
        .await
        .context("connecting to Fluvio")
}

pub async fn connect_db(url: &str) -> Result<sea_orm::DatabaseConnection> {
    use soc_migrations::MigratorTrait;
    let db = soc_core::db::connect(url)
        .await
        .with_context(|| format!("connecting to {}", paths::redact_url(url)))?;
    soc_migrations::Migrator::up(&db, None)
        .await
        .context("applying migrations")?;
    Ok(db)
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Up(args) => up(args).await,
        Command::Setup(args) => {
            let stream = connect_fluvio(&args, PathBuf::from("data/checkpoints")).await?;
            let config = paths::config_dir(&args.paths)?;
            let created = stream
                .create_topics_from_dir(&config.join("topics"))
                .await?;
            println!(
                "topics created: {}",
                if created.is_empty() {
                    "none (all existed)".into()
                } else {
                    created.join(", ")
                }
            );
            let modules = stream
                .register_smartmodules(&paths::smartmodules_dir(&args.paths)?)
                .await?;
            println!("smartmodules registered: {}", modules.join(", "));
            Ok(())
        }
        Command::Processor(args) => {
            let stream: Arc<dyn LogStream> =
                Arc::new(connect_fluvio(&args.fluvio, PathBuf::from("data/checkpoints")).await?);
            let db = connect_db(&args.db.database_url).await?;
            let mut settings = embedded::processor_settings(&args.fluvio.paths)?;
            settings.partitions = args.partitions;
            settings.consumer_id = args.consumer_id;
            let stats = Arc::default();
            soc_processor::run(settings, stream, db, stats, shutdown_on_ctrl_c())
                .await
                .context("processor")
        }
        Command::Gateway(args) => {
            let stream: Arc<dyn LogStream> =
                Arc::new(connect_fluvio(&args.fluvio, PathBuf::from("data/checkpoints")).await?);
            let db = connect_db(&args.db.database_url).await?;
            let hub = Arc::new(soc_gateway::AlertHub::default());
            let shutdown = shutdown_on_ctrl_c();
            let listener = std::net::TcpListener::bind(args.listen)
                .with_context(|| format!("binding {}", args.listen))?;
            let server = soc_gateway::run(
                soc_gateway::GatewayState {
                    db,
                    hub: hub.clone(),
                },
                listener,
            )?;
            let handle = server.handle();
            tokio::spawn(server);
            println!("gateway listening on http://{}", args.listen);
            let follow = soc_gateway::follow_alerts(
                stream,
                soc_core::stream::topics::ALERTS.into(),
                args.consumer_id,
                hub,
                shutdown,
            )
            .await;
            handle.stop(true).await;
            follow.context("following alerts")
        }
        Command::Replay(args) => {
            let stream = connect_fluvio(&args.fluvio, args.checkpoint_dir).await?;
            let mut config = soc_connectors::replay::ReplayConfig::new(&args.file);
            config.lines_per_sec = args.rate;
            let report = soc_connectors::replay::replay(&stream, &config).await?;
            println!(
                "replayed {} lines (resumed from byte {})",
                report.lines, report.resumed_from
            );
            Ok(())
        }
        Command::Migrate(args) => {
            connect_db(&args.database_url).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Bench(args) => bench::run(args).await,
        Command::BenchTriage(args) => bench_triage::run(args).await,
        Command::Eval(args) => eval::run(args),
        Command::EvalTriage(args) => eval_triage::run(args).await.map(|_| ()),
        Command::CheckRules { dir } => check_rules(&dir),
    }
}

pub async fn up(args: UpArgs) -> Result<()> {
    let database_url = match &args.database_url {
        Some(u) => u.clone(),
        None => {
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("creating {}", args.data_dir.display()))?;
            format!("sqlite://{}/soc.sqlite", args.data_dir.display())
        }
    };
    let shutdown = shutdown_on_ctrl_c();
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    let pipeline = embedded::start(embedded::Options {
        data_dir: args.data_dir.clone(),
        database_url,
        listener,
        paths: args.paths.clone(),
        shutdown: shutdown.clone(),
        triage: None,
    })
    .await?;
    println!("dashboard: http://{}/", pipeline.addr);
    for file in &args.replay {
        let mut config = soc_connectors::replay::ReplayConfig::new(file);
        config.lines_per_sec = args.replay_rate;
        let report = soc_connectors::replay::replay(&pipeline.log, &config)
            .await
            .with_context(|| format!("replaying {}", file.display()))?;
        println!(
            "replayed {} lines from {} (resumed from byte {})",
            report.lines,
            file.display(),
            report.resumed_from
        );
    }
    pipeline.wait().await
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
