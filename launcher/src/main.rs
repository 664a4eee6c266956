//! `soc`: see the crate docs of the `soc` library for the commands.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    soc::init_tracing();
    soc::run(soc::Cli::parse()).await
}
