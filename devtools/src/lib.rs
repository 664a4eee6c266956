//! Developer commands kept out of the shipping `soc` binary: throughput and latency
//! benchmarks, the detection and triage evaluations against third-party corpora, and a
//! local server that speaks the OpenAI chat protocol with Groq's free-tier limits.

pub mod bench;
pub mod bench_ingest;
pub mod bench_response;
pub mod bench_triage;
pub mod eval;
pub mod eval_lines;
pub mod eval_triage;
pub mod fake_llm;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "soc-dev", version, about = "Developer tools for soc")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Measure chain throughput, pipeline throughput and line-to-WebSocket latency.
    Bench(bench::BenchArgs),
    /// Lines from senders to durable: syslog over TCP (acknowledged sessions) and HTTP
    /// ingest; lines/s, acknowledgement latency, memory during the flood.
    BenchIngest(bench_ingest::IngestBenchArgs),
    /// Replay an attack storm with LLM triage on, against a local server limited like Groq's
    /// free tier: model calls, tokens, verdicts by path, alerts delayed and lost.
    BenchTriage(bench_triage::TriageBenchArgs),
    /// The response loop under load: brute forces from N addresses, automatically approved
    /// blocks through a real agent into nftables in a namespace; latency from alert to
    /// `applied`, and addresses per second into the kernel set (needs root).
    BenchResponse(bench_response::ResponseBenchArgs),
    /// Score the detections against the CrowdSec hub's tests (e.g. ../shared/corpora/crowdsec-hub).
    Eval(eval::EvalArgs),
    /// Score the parsers, filter and rules on labelled log lines, per family: failure lines
    /// recognised, attempts counted, false positives on look-alike benign lines
    /// (devtools/eval/lines by default; fail2ban's test logs with --fail2ban).
    EvalLines(eval_lines::EvalLinesArgs),
    /// Triage the hub corpus's alerts with the configured model and compare the verdicts
    /// with the labels (needs GROQ_API_KEY for Groq; says so and exits without it).
    EvalTriage(eval_triage::EvalTriageArgs),
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bench(args) => bench::run(args).await,
        Command::BenchIngest(args) => bench_ingest::run(args).await,
        Command::BenchTriage(args) => bench_triage::run(args).await,
        Command::BenchResponse(args) => bench_response::run(args).await,
        Command::Eval(args) => eval::run(args),
        Command::EvalLines(args) => eval_lines::run(args),
        Command::EvalTriage(args) => eval_triage::run(args).await.map(|_| ()),
    }
}

/// The value at quantile `p` (0 to 1) of sorted samples; NaN when there are none.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A memory figure of this process from /proc/self/status (`VmRSS:` now, `VmHWM:` the
/// peak), in MB.
fn status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
