//! `soc-agent`: the response agent. `enroll` once with a token from the gateway's admin,
//! then `run` (as the systemd unit does).

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use soc_responder::agent::{self, Identity};
use soc_responder::settings::AgentSettings;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "soc-agent",
    version,
    about = "Executes signed, guard-railed mitigations from the soc gateway"
)]
struct Cli {
    /// The configuration file (default /etc/soc-agent/agent.toml, when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Enroll with a one-time token (`POST /api/agents/enrollments` on the gateway, or the
    /// dashboard's Agents page) and store this agent's identity.
    Enroll {
        /// The token; read from standard input when `-`.
        #[arg(long)]
        token: String,
    },
    /// Connect to the gateway and carry out its commands until stopped.
    Run,
    /// Print this agent's identity and what its firewall table blocks.
    Status,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let settings = AgentSettings::load(cli.config.as_deref())?;
    match cli.command {
        Cmd::Enroll { token } => {
            let token = if token == "-" {
                let mut t = String::new();
                std::io::stdin().read_line(&mut t)?;
                t.trim().to_string()
            } else {
                token
            };
            let id = agent::enroll(&settings, &token).await?;
            println!("enrolled as {} for host {}", id.agent_id, id.host);
            Ok(())
        }
        Cmd::Run => {
            let identity = Identity::load(&settings.state_dir)
                .context("not enrolled yet: run `soc-agent enroll --token ...` first")?;
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("a SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                let _ = tx.send(true);
            });
            agent::run(settings, identity, rx).await?;
            Ok(())
        }
        Cmd::Status => {
            let identity = Identity::load(&settings.state_dir)?;
            println!("agent {} on host {}", identity.agent_id, identity.host);
            let fw = soc_responder::Firewall::new(settings.nft.clone(), settings.table.clone());
            for (family, span) in fw.blocked().await? {
                let from = soc_responder::spans::from_u128(family, span.start);
                let to = soc_responder::spans::from_u128(family, span.end);
                println!("blocked {from}-{to} for {} s more", span.expires);
            }
            if fw.isolated().await? {
                println!("host isolated");
            }
            Ok(())
        }
    }
}
