//! `soc`: see the crate docs of the `soc` library for the commands.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = soc::Cli::parse();
    soc::init_tracing(cli.log_format);
    soc::run(cli).await
}
