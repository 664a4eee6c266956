//! `soc-dev`: see the crate docs of `soc_devtools` for the commands.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    soc::init_tracing(soc::LogFormat::Text);
    soc_devtools::run(soc_devtools::Cli::parse()).await
}
