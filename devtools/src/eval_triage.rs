//! `soc-dev eval-triage`: the labelled hub corpus through the model. Every in-scope test's alerts
//! are raised as `soc-dev eval` raises them, labelled by the scoring (an expected attack, or a
//! spurious alert), triaged by the configured model exactly as the processor would (batches,
//! cache, limits), and the verdicts compared with the labels. Without an API key it says so
//! and sends nothing.

use crate::eval::{Evaluator, Label, Mapping};
use anyhow::{Context, Result};
use clap::Args;
use soc_core::{Alert, Verdict, VerdictSource};
use soc_processor::triage::service::CallRecord;
use soc_processor::triage::{TriageHandle, TriageStats, Update};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

#[derive(Args, Clone)]
pub struct EvalTriageArgs {
    /// The hub corpus: a folder with `tests_index.jsonl` and `tests/<name>/`.
    pub corpus: PathBuf,
    /// Only tests whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Longest run, in seconds (the free tier allows 30 calls a minute).
    #[arg(long, default_value_t = 900)]
    pub max_secs: u64,
    #[command(flatten)]
    pub config: soc::settings::ConfigArgs,
}

/// Whether the model agrees with the label: attacks should be true positives or suspicious,
/// spurious alerts false positives or benign.
fn agrees(label: Label, v: Verdict) -> Option<bool> {
    match label {
        Label::Attack => Some(matches!(v, Verdict::TruePositive | Verdict::Suspicious)),
        Label::NotAttack => Some(matches!(v, Verdict::FalsePositive | Verdict::Benign)),
        Label::Unscored => None,
    }
}

/// What an evaluation found; `None` from [`run`] when nothing was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub alerts: usize,
    pub scored: usize,
    pub agree: usize,
    pub fallback: usize,
    pub calls: usize,
}

pub async fn run(args: EvalTriageArgs) -> Result<Option<Summary>> {
    let config = args.config.load()?;
    let settings = config.triage.clone();
    if !settings.enabled {
        println!("LLM triage is disabled (triage.enabled or --no-llm): nothing to evaluate.");
        return Ok(None);
    }
    if settings.needs_key_and_has_none() {
        println!(
            "{} is not set: skipping the model evaluation (nothing was sent). Set it, or pick a local server with --llm-profile and --llm-base-url.",
            settings.api_key_env().unwrap_or("the API key")
        );
        return Ok(None);
    }
    let mut eval = Evaluator::new(&config, Mapping::crowdsec_hub()?)?;
    let labelled = eval
        .labelled_alerts(&args.corpus, args.only.as_deref())
        .context("raising the corpus's alerts")?;
    println!(
        "{} alerts from the in-scope tests to {} ({} at {}), {} requests a minute at most",
        labelled.len(),
        settings.model(),
        settings.profile.as_str(),
        settings.base_url(),
        settings.requests_per_minute
    );
    // Tests replay the same lines, so the same incident can appear twice: one id per test.
    let mut alerts: Vec<Alert> = Vec::new();
    let mut labels: HashMap<uuid::Uuid, (String, Label)> = HashMap::new();
    for (test, mut a, label) in labelled {
        a.id = uuid::Uuid::new_v5(&a.id, test.as_bytes());
        labels.insert(a.id, (test, label));
        alerts.push(a);
    }

    let stats = Arc::new(TriageStats::default());
    let (handle, worker) = TriageHandle::new(settings.clone(), stats.clone())?;
    let worker = worker.context("triage worker")?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(worker.run(tx, stop_rx));
    let started = Instant::now();
    handle.submit(&alerts);
    let deadline = started + Duration::from_secs(args.max_secs);
    let mut verdicts: HashMap<uuid::Uuid, soc_core::Triage> = HashMap::new();
    let mut calls: Vec<CallRecord> = Vec::new();
    loop {
        while let Ok(u) = rx.try_recv() {
            match u {
                Update::Verdict(a) => {
                    if let Some(t) = a.triage {
                        verdicts.insert(a.id, t);
                    }
                }
                Update::Call(c) => calls.push(c),
            }
        }
        if handle.busy() == 0 && rx.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            println!(
                "stopped after {} s with {} incidents still waiting",
                args.max_secs,
                handle.busy()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    let _ = task.await;

    // Agreement per label, counting only verdicts that came from the model (or its cache).
    let mut table: BTreeMap<(Label, &str), usize> = BTreeMap::new();
    let (mut agree, mut scored, mut fallback) = (0, 0, 0);
    let mut disagreements = Vec::new();
    for a in &alerts {
        let (test, label) = &labels[&a.id];
        let Some(t) = verdicts.get(&a.id) else {
            continue;
        };
        if t.source == VerdictSource::Fallback {
            fallback += 1;
            continue;
        }
        *table.entry((*label, t.verdict.as_str())).or_default() += 1;
        if let Some(ok) = agrees(*label, t.verdict) {
            scored += 1;
            if ok {
                agree += 1;
            } else {
                disagreements.push(format!(
                    "{test}: {} {} → {}",
                    a.rule_id,
                    a.group_key,
                    t.verdict.as_str()
                ));
            }
        }
    }
    println!("\nlabel × verdict (model and cached verdicts):");
    for ((label, verdict), n) in &table {
        println!("  {:<11} {:<15} {n}", format!("{label:?}"), verdict);
    }
    println!(
        "\nagreement: {agree} of {scored} scored alerts ({:.1}%); {fallback} kept the fallback",
        if scored > 0 {
            100.0 * agree as f64 / scored as f64
        } else {
            f64::NAN
        }
    );
    for d in disagreements.iter().take(20) {
        println!("  disagrees: {d}");
    }
    let mut lat: Vec<u64> = calls.iter().map(|c| c.latency_ms).collect();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len().saturating_sub(1)) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    let (pt, ct) = calls.iter().fold((0, 0), |(p, c), x| {
        (p + x.prompt_tokens, c + x.completion_tokens)
    });
    let cost: f64 = calls.iter().filter_map(|c| c.cost_usd).sum();
    let failed = calls.iter().filter(|c| c.status != "ok").count();
    println!(
        "calls: {} ({failed} failed), latency p50 {} ms, p99 {} ms; tokens {pt} prompt + {ct} completion; cost ${cost:.5}; {:.0} s in all",
        calls.len(),
        pct(0.5),
        pct(0.99),
        started.elapsed().as_secs_f64()
    );
    Ok(Some(Summary {
        alerts: alerts.len(),
        scored,
        agree,
        fallback,
        calls: calls.len(),
    }))
}
