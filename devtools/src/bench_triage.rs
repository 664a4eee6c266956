//! `soc-dev bench-triage`: an attack storm through the embedded pipeline with LLM triage on,
//! against a local OpenAI-compatible server limited like Groq's free tier. Reports model
//! calls, tokens, verdicts by path, and whether any alert waited for the model or was lost.

use crate::fake_llm::FakeLlm;
use anyhow::{Context, Result};
use chrono::Utc;
use clap::Args;
use sea_orm::EntityTrait;
use soc::embedded;
use soc::settings::{ConfigArgs, Settings};
use soc_core::db::{alert, llm_call};
use soc_core::stream::{topics, ConsumerSpec, LogStream, ProduceRecord, StartFrom};
use soc_core::Alert;
use soc_processor::triage::{Profile, TriageSettings};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Args)]
pub struct TriageBenchArgs {
    /// Attacking sources: each brute-forces SSH (6 to 16 lines) and runs one of six other
    /// attacks; a third also probe the web server; about 20 lines per source in all.
    #[arg(long, default_value_t = 600)]
    sources: usize,
    /// Input rate, lines per second.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Requests per minute the fake server allows and the client is capped at.
    #[arg(long, default_value_t = 30)]
    rpm: u32,
    /// Tokens per minute the client is capped at.
    #[arg(long, default_value_t = 6000)]
    tpm: u32,
    /// How long the fake model takes to answer, milliseconds.
    #[arg(long, default_value_t = 400)]
    model_latency_ms: u64,
    /// Longest wait for the triage queue to drain after the storm, seconds.
    #[arg(long, default_value_t = 180)]
    drain_secs: u64,
    #[command(flatten)]
    config: ConfigArgs,
}

fn storm(sources: usize) -> Vec<String> {
    let syslog = || Utc::now().format("%b %e %H:%M:%S").to_string();
    let clf = || Utc::now().format("%d/%b/%Y:%H:%M:%S +0000").to_string();
    let mut lines = Vec::new();
    for i in 0..sources {
        let ip = format!("172.20.{}.{}", (i >> 8) & 255, i & 255);
        // Incidents of several sizes, so not every one has the same fingerprint.
        for k in 0..6 + (i % 3) * 5 {
            lines.push(format!(
                "{} bastion sshd[{}]: Failed password for root from {ip} port {} ssh2",
                syslog(),
                3000 + i,
                40000 + k
            ));
        }
        if i % 3 == 0 {
            let ip = format!("172.21.{}.{}", (i >> 8) & 255, i & 255);
            for path in ["/.env", "/.git/config", "/backup.sql"] {
                lines.push(format!(
                    r#"{ip} - - [{}] "GET {path} HTTP/1.1" 404 153 "-" "Mozilla/5.0 (compatible; scanner)""#,
                    clf()
                ));
            }
        }
        if i % 3 == 1 {
            let ip = format!("172.22.{}.{}", (i >> 8) & 255, i & 255);
            lines.push(format!(
                r#"{ip} - - [{}] "GET /cgi-bin/status?cmd=;cat%20/etc/passwd HTTP/1.1" 404 153 "-" "curl/8.5.0""#,
                clf()
            ));
        }
        // Mail, IDS, audit, firewall and web-auth attacks from a share of the sources.
        for _ in 0..6 {
            lines.push(crate::bench::sample_line(4 + i % 6, i));
        }
        for k in 0..3 {
            lines.push(format!(
                r#"10.1.{}.{} - - [{}] "GET /shop/item/{} HTTP/1.1" 200 5120 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0""#,
                (i >> 8) & 255,
                i & 255,
                clf(),
                k + i
            ));
        }
    }
    lines
}

pub async fn run(args: TriageBenchArgs) -> Result<()> {
    let fake = FakeLlm::start(
        args.rpm as usize,
        Duration::from_millis(args.model_latency_ms),
    )
    .context("starting the fake model server")?;
    let triage = TriageSettings {
        profile: Profile::Groq,
        base_url: fake.base_url.clone(),
        model: "openai/gpt-oss-20b".into(),
        api_key: Some("bench".into()),
        requests_per_minute: args.rpm,
        tokens_per_minute: args.tpm,
        reasoning_effort: Some("low".into()),
        prices: BTreeMap::from([(
            "openai/gpt-oss-20b".to_string(),
            soc_processor::triage::settings::Price {
                input_per_mtok: 0.075,
                output_per_mtok: 0.30,
            },
        )]),
        ..TriageSettings::default()
    };
    let dir = tempfile::tempdir()?;
    let (stop, shutdown) = watch::channel(false);
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut options = embedded::Options::local(dir.path(), listener, shutdown);
    options.settings = Settings {
        data_dir: dir.path().to_path_buf(),
        ..args.config.load()?
    };
    let pipeline = embedded::start(embedded::Options {
        triage: Some(triage),
        ..options
    })
    .await?;
    let ready_by = Instant::now() + Duration::from_secs(60);
    while pipeline.stats.partitions_ready.load(Ordering::Relaxed) == 0 {
        anyhow::ensure!(Instant::now() < ready_by, "processor not ready in 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let lines = storm(args.sources);
    println!(
        "## storm: {} lines at {} lines/s; fake model {} requests/min, {} ms per answer; client capped at {} requests and {} tokens a minute",
        lines.len(),
        args.rate,
        args.rpm,
        args.model_latency_ms,
        args.rpm,
        args.tpm
    );
    let started = Instant::now();
    let per_tick = (args.rate / 100).max(1) as usize;
    let mut interval = tokio::time::interval(Duration::from_millis(10));
    for chunk in lines.chunks(per_tick) {
        interval.tick().await;
        let now = Utc::now().timestamp_millis();
        let recs = chunk
            .iter()
            .map(|l| ProduceRecord {
                key: None,
                value: l.clone().into_bytes(),
                timestamp_ms: now,
            })
            .collect();
        pipeline.log.produce(topics::RAW_LOGS, recs, vec![]).await?;
    }
    let produced_in = started.elapsed();

    // Drain: every line through the rules, then the triage queue empty and quiet.
    let stats = pipeline.stats.clone();
    let t = stats.triage.clone();
    let deadline = Instant::now() + Duration::from_secs(args.drain_secs);
    let mut last_change = (0, Instant::now());
    loop {
        let done = t.model_verdicts.load(Ordering::Relaxed)
            + t.cache_verdicts.load(Ordering::Relaxed)
            + t.fallback_verdicts.load(Ordering::Relaxed)
            + t.calls.load(Ordering::Relaxed);
        if done != last_change.0 {
            last_change = (done, Instant::now());
        }
        let quiet = last_change.1.elapsed() > Duration::from_secs(3);
        if (t.queued.load(Ordering::Relaxed) == 0 && quiet) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained_in = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // What was published: every revision on the alerts topic, in order.
    let mut first: HashMap<String, (i64, String)> = HashMap::new();
    let mut verdict_at: HashMap<String, i64> = HashMap::new();
    let parts = pipeline.log.partitions(topics::ALERTS).await?;
    for p in 0..parts {
        let mut c = pipeline
            .log
            .consumer(ConsumerSpec {
                topic: topics::ALERTS.into(),
                partition: p,
                consumer_id: "bench-reader".into(),
                chain: vec![],
                start: StartFrom::Offset(0),
            })
            .await?;
        loop {
            let batch = c.next_batch(5000, Duration::from_millis(300)).await?;
            if batch.is_empty() {
                break;
            }
            for r in batch {
                let Ok(a) = serde_json::from_slice::<Alert>(&r.value) else {
                    continue;
                };
                let id = a.id.to_string();
                let source = a
                    .triage
                    .as_ref()
                    .map_or("none", |t| t.source.as_str())
                    .to_string();
                if source != "fallback" && source != "none" {
                    verdict_at.entry(id.clone()).or_insert(r.timestamp_ms);
                }
                first.entry(id).or_insert((r.timestamp_ms, source));
            }
        }
    }
    let stored = alert::Entity::find().all(&pipeline.db).await?;
    let calls = llm_call::Entity::find().all(&pipeline.db).await?;
    let lost = stored.iter().filter(|a| !first.contains_key(&a.id)).count();
    let delayed = first.values().filter(|(_, s)| s != "fallback").count();
    let mut by_source: BTreeMap<String, usize> = BTreeMap::new();
    for a in &stored {
        *by_source
            .entry(a.verdict_source.clone().unwrap_or_else(|| "none".into()))
            .or_default() += 1;
    }
    let mut waits: Vec<f64> = verdict_at
        .iter()
        .filter_map(|(id, at)| first.get(id).map(|(t0, _)| (at - t0) as f64 / 1000.0))
        .collect();
    waits.sort_by(|a, b| a.total_cmp(b));
    let by_rule = stored
        .iter()
        .fold(BTreeMap::<&str, usize>::new(), |mut m, a| {
            *m.entry(a.rule_id.as_str()).or_default() += 1;
            m
        });

    println!(
        "{:>26}: {:.1} s to produce, {:.1} s until triage was quiet",
        "time",
        produced_in.as_secs_f64(),
        drained_in.as_secs_f64()
    );
    println!(
        "{:>26}: {} ({})",
        "incidents",
        stored.len(),
        by_rule
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "{:>26}: {} (alerts stored but never published)",
        "alerts lost", lost
    );
    println!(
        "{:>26}: {} (alerts first published with a model verdict, i.e. held for it)",
        "alerts delayed", delayed
    );
    println!(
        "{:>26}: {}",
        "verdicts by path",
        by_source
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "{:>26}: {} stored, {} triage + {} investigation; {} HTTP requests, {} answered 429",
        "LLM calls",
        calls.len(),
        calls.iter().filter(|c| c.stage == "triage").count(),
        calls.iter().filter(|c| c.stage == "investigation").count(),
        fake.stats.requests.load(Ordering::Relaxed),
        fake.stats.rejected_429.load(Ordering::Relaxed)
    );
    let incidents = stored.len().max(1) as f64;
    println!(
        "{:>26}: {:.4}",
        "calls per incident",
        calls.len() as f64 / incidents
    );
    let (pt, ct): (i64, i64) = calls.iter().fold((0, 0), |(p, c), x| {
        (p + x.prompt_tokens, c + x.completion_tokens)
    });
    let cost: f64 = calls.iter().filter_map(|c| c.cost_usd).sum();
    println!(
        "{:>26}: {pt} prompt + {ct} completion; cost ${cost:.5}",
        "tokens"
    );
    println!(
        "{:>26}: {} still queued (keep the fallback until answered)",
        "triage queue",
        t.queued.load(Ordering::Relaxed)
    );
    if !waits.is_empty() {
        println!(
            "{:>26}: p50 {:.1} s, p99 {:.1} s, max {:.1} s after the alert",
            "model verdict arrived",
            crate::percentile(&waits, 0.5),
            crate::percentile(&waits, 0.99),
            waits.last().copied().unwrap_or(f64::NAN)
        );
    }
    let _ = stop.send(true);
    pipeline.wait().await?;
    fake.stop().await;
    anyhow::ensure!(lost == 0, "{lost} alerts were lost");
    Ok(())
}
