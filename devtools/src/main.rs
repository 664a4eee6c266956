//! `soc-dev`: see the crate docs of `soc_devtools` for the commands.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SOC_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,fluvio=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    soc_devtools::run(soc_devtools::Cli::parse()).await
}
