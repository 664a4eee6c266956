//! `soc-dev bench`: three measurements on this machine.
//!
//! 1. Raw lines/s through the normalize+filter wasm chain on one thread, per log type and mixed.
//! 2. Raw lines/s through the whole embedded pipeline (produce, chain, rules, checkpoint).
//! 3. Latency from a line entering the raw topic to its alert reaching a WebSocket client,
//!    p50/p99, at a fixed input rate.

use anyhow::{Context, Result};
use chrono::Utc;
use clap::Args;
use futures_util::StreamExt;
use soc::embedded;
use soc::settings::{ConfigArgs, Settings};
use soc_core::stream::chain::ModuleRegistry;
use soc_core::stream::config::chain_from;
use soc_core::stream::{topics, LogStream, ProduceRecord, Record};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Args)]
pub struct BenchArgs {
    /// Lines per chain measurement and for the pipeline throughput run.
    #[arg(long, default_value_t = 200_000)]
    lines: usize,
    /// Input rate of the latency run, lines per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Length of the latency run, seconds.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    #[command(flatten)]
    config: ConfigArgs,
}

fn syslog_time() -> String {
    Utc::now().format("%b %e %H:%M:%S").to_string()
}

/// A line of each kind the parsers know; `i` varies addresses and users.
pub(crate) fn sample_line(kind: usize, i: usize) -> String {
    let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    match kind {
        0 => format!(
            "{} web-1 sshd[{}]: Failed password for invalid user user{} from {ip} port {} ssh2",
            syslog_time(),
            1000 + i % 5000,
            i % 97,
            20000 + i % 40000
        ),
        1 => format!(
            r#"{ip} - - [{}] "GET /shop/item/{}?ref=home HTTP/1.1" 200 {} "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36""#,
            Utc::now().format("%d/%b/%Y:%H:%M:%S +0000"),
            i % 1000,
            500 + i % 20000
        ),
        2 => format!(
            "<86>{} web-1 CRON[{}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
            syslog_time(),
            2000 + i % 5000
        ),
        3 => format!(
            r#"{{"time":"{}","level":"info","msg":"request served","client_ip":"{ip}","user":"svc{}","latency_ms":{}}}"#,
            Utc::now().to_rfc3339(),
            i % 50,
            i % 300
        ),
        4 => format!(
            "{} mail-1 postfix/smtpd[{}]: warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
            syslog_time(),
            3000 + i % 5000
        ),
        5 => format!(
            "{} mail-1 dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<user{}>, method=PLAIN, rip={ip}, lip=192.0.2.25, TLS, session=<abc{}>",
            syslog_time(),
            i % 97,
            i % 1000
        ),
        6 => format!(
            r#"{{"timestamp":"{}","flow_id":{},"in_iface":"eth0","event_type":"alert","src_ip":"{ip}","src_port":{},"dest_ip":"192.0.2.80","dest_port":80,"proto":"TCP","alert":{{"action":"allowed","gid":1,"signature_id":{},"rev":1,"signature":"ET SCAN Suspicious inbound","category":"Attempted Information Leak","severity":2}}}}"#,
            Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f%z"),
            1_000_000 + i,
            20000 + i % 40000,
            2_000_000 + i % 50
        ),
        7 => format!(
            r#"type=EXECVE msg=audit({}.{:03}:{}): argc=3 a0="curl" a1="-s" a2="http://{ip}/x.sh""#,
            Utc::now().timestamp(),
            i % 1000,
            10_000 + i
        ),
        8 => format!(
            "{} fw-1 kernel: [12345.678] IN=eth0 OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC={ip} DST=192.0.2.1 LEN=44 TOS=0x00 PREC=0x00 TTL=50 ID=0 PROTO=TCP SPT={} DPT={} WINDOW=1024 RES=0x00 SYN URGP=0",
            syslog_time(),
            20000 + i % 40000,
            1 + i % 1024
        ),
        _ => format!(
            "2026/03/12 10:00:00 [error] 1234#0: *{} user \"user{}\" was not found in \"/etc/nginx/.htpasswd\", client: {ip}, server: example.com, request: \"GET /admin HTTP/1.1\", host: \"example.com\"",
            i,
            i % 97
        ),
    }
}

const KINDS: [&str; 10] = [
    "sshd",
    "nginx access",
    "syslog (cron/pam)",
    "json",
    "postfix",
    "dovecot",
    "suricata eve",
    "auditd",
    "iptables",
    "nginx error",
];

fn records(lines: &[String]) -> Vec<Record> {
    let now = Utc::now().timestamp_millis();
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| Record {
            partition: 0,
            offset: i as u64,
            timestamp_ms: now,
            key: None,
            value: l.clone().into_bytes(),
        })
        .collect()
}

/// Lines per second through the chain, and how many lines the filter kept.
fn chain_rate(
    registry: &ModuleRegistry,
    chain: &[soc_core::stream::ChainStep],
    lines: &[String],
) -> Result<(f64, usize)> {
    let mut c = registry.build_chain(chain, None)?;
    // Warm up the instance before timing.
    c.process(&records(&lines[..lines.len().min(1000)]))?;
    let batches: Vec<Vec<Record>> = lines.chunks(1000).map(records).collect();
    let start = Instant::now();
    let mut out = 0usize;
    for b in batches {
        out += c.process(&b)?.len();
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((lines.len() as f64 / secs, out))
}

/// Events per second through the detector with every shipped rule, and alerts raised.
fn rules_rate(
    registry: &ModuleRegistry,
    chain: &[soc_core::stream::ChainStep],
    lines: &[String],
    settings: &Settings,
) -> Result<(f64, usize)> {
    let mut c = registry.build_chain(chain, None)?;
    let mut events = Vec::with_capacity(lines.len());
    for b in lines.chunks(1000) {
        for r in c.process(&records(b))? {
            events.push((
                serde_json::from_slice::<serde_json::Value>(&r.value)?,
                r.timestamp_ms,
            ));
        }
    }
    let rules =
        soc_processor::rules::load_rules(&settings.assets.rules()?, &settings.rules.overrides)?;
    let mut detector = soc_processor::rules::detector::Detector::new(rules);
    let now = Utc::now();
    let start = Instant::now();
    let mut raised = 0;
    for (e, ts) in &events {
        raised += detector.process(e, *ts, now).len();
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((events.len() as f64 / secs, raised))
}

pub async fn run(args: BenchArgs) -> Result<()> {
    let settings = args.config.load()?;
    let registry = ModuleRegistry::load(&settings.assets.smartmodules()?)?;
    let chain = chain_from(&settings.assets.deployment()?)?;

    println!("## chain: normalize + filter (wasm, one thread, batches of 1000)");
    let mut mixed = Vec::with_capacity(args.lines);
    for (kind, name) in KINDS.iter().enumerate() {
        let per_kind = args.lines / 4;
        let lines: Vec<String> = (0..per_kind).map(|i| sample_line(kind, i)).collect();
        let (r2, c2) = (registry.clone(), chain.clone());
        let (rate, kept) =
            tokio::task::spawn_blocking(move || chain_rate(&r2, &c2, &lines)).await??;
        println!("{name:>20}: {rate:>10.0} lines/s (filter kept {kept} of {per_kind})");
    }
    for i in 0..args.lines {
        mixed.push(sample_line(i % KINDS.len(), i));
    }
    let (r2, c2, m2) = (registry.clone(), chain.clone(), mixed.clone());
    let (rate, kept) = tokio::task::spawn_blocking(move || chain_rate(&r2, &c2, &m2)).await??;
    println!(
        "{:>20}: {rate:>10.0} lines/s (filter kept {kept} of {})",
        "mixed",
        mixed.len()
    );

    println!("\n## rules: the processor's detector alone (one thread, normalized events)");
    let (r2, c2, m2, s2) = (
        registry.clone(),
        chain.clone(),
        mixed.clone(),
        settings.clone(),
    );
    let (rules_rate, raised) =
        tokio::task::spawn_blocking(move || rules_rate(&r2, &c2, &m2, &s2)).await??;
    println!(
        "{:>20}: {rules_rate:>10.0} events/s ({raised} alert revisions)",
        "mixed"
    );

    println!("\n## pipeline: produce -> chain -> rules -> checkpoint (embedded log, SQLite)");
    let (throughput, disk) = pipeline_throughput(&args, &mixed, kept as u64).await?;
    println!(
        "{:>20}: {throughput:>10.0} lines/s ({} lines)",
        "end to end",
        mixed.len()
    );
    let input: usize = mixed.iter().map(|l| l.len() + 1).sum();
    println!(
        "{:>20}: {:>10.2} bytes on disk per input byte ({} MB in, {} MB in the data directory)",
        "disk cost",
        disk as f64 / input as f64,
        input / 1_000_000,
        disk / 1_000_000
    );

    println!(
        "\n## latency: line in raw topic -> alert on WebSocket, {} lines/s for {} s",
        args.rate, args.duration_secs
    );
    let (mut lat, sent_alerts) = latency(&args).await?;
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{:>20}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} of {} alerts received)",
        "line -> websocket",
        crate::percentile(&lat, 0.5),
        crate::percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        lat.len(),
        sent_alerts
    );
    if let Some(mb) = crate::status_mb("VmHWM:") {
        println!("{:>20}: {mb:.0} MB", "peak RSS");
    }
    Ok(())
}

async fn start_pipeline(
    args: &BenchArgs,
    dir: &std::path::Path,
) -> Result<(embedded::Pipeline, watch::Sender<bool>)> {
    let (tx, rx) = watch::channel(false);
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut options = embedded::Options::local(dir, listener, rx);
    options.settings = Settings {
        data_dir: dir.to_path_buf(),
        ..args.config.load()?
    };
    let pipeline = embedded::start(embedded::Options {
        // Measured without a model: alerts carry the deterministic verdict, as they do
        // before a model answers (`soc-dev bench-triage` measures the model side).
        triage: Some(soc_processor::triage::TriageSettings {
            enabled: false,
            ..Default::default()
        }),
        ..options
    })
    .await?;
    Ok((pipeline, tx))
}

/// `kept`: how many of `lines` pass the chain, i.e. reach the rules. Returns lines/s and
/// the bytes the data directory then holds (log, database and its journal).
async fn pipeline_throughput(
    args: &BenchArgs,
    lines: &[String],
    kept: u64,
) -> Result<(f64, usize)> {
    let dir = tempfile::tempdir()?;
    let (pipeline, stop) = start_pipeline(args, dir.path()).await?;
    let now = Utc::now().timestamp_millis();
    // Includes the processor's start-up (chain compilation).
    let start = Instant::now();
    for chunk in lines.chunks(1000) {
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
    let target = kept;
    let deadline = Instant::now() + Duration::from_secs(600);
    while pipeline.stats.records.load(Ordering::Relaxed) < target {
        anyhow::ensure!(
            Instant::now() < deadline,
            "pipeline did not drain in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = stop.send(true);
    pipeline.wait().await?;
    let mut disk = 0usize;
    for entry in std::fs::read_dir(dir.path())? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            disk += meta.len() as usize;
        }
    }
    Ok((lines.len() as f64 / secs, disk))
}

/// Every tick (10 ms) sends rate/100 lines: background traffic plus five SSH failures from
/// a new address, the fifth of which completes an incident. Latency is measured from the
/// produce call of that fifth line to the alert's first revision on the WebSocket, once the
/// processor is ready (its chain compiled), i.e. in steady state.
async fn latency(args: &BenchArgs) -> Result<(Vec<f64>, usize)> {
    let dir = tempfile::tempdir()?;
    let (pipeline, stop) = start_pipeline(args, dir.path()).await?;
    // Steady state only: wait until the processor has compiled its chain.
    let ready_by = Instant::now() + Duration::from_secs(60);
    while pipeline.stats.partitions_ready.load(Ordering::Relaxed) == 0 {
        anyhow::ensure!(Instant::now() < ready_by, "processor not ready in 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let token = soc::users::issue_token(&pipeline.db, "admin", "bench", None).await?;
    let mut request = format!("ws://{}/ws/alerts", pipeline.addr).into_client_request()?;
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("connecting the WebSocket client")?;
    let received: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let rec2 = received.clone();
    let reader = tokio::spawn(async move {
        let (_, mut read) = ws.split();
        while let Some(Ok(msg)) = read.next().await {
            let at = Instant::now();
            if let Ok(text) = msg.into_text() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    if let Some(ip) = v["alert"]["source_ip"].as_str() {
                        if let Ok(mut m) = rec2.lock() {
                            m.entry(ip.to_string()).or_insert(at);
                        }
                    }
                }
            }
        }
    });
    let per_tick = (args.rate / 100).max(6) as usize;
    let ticks = args.duration_secs * 100;
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut interval = tokio::time::interval(Duration::from_millis(10));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0usize;
    for tick in 0..ticks as usize {
        interval.tick().await;
        let attacker = format!("172.16.{}.{}", (tick >> 8) & 255, tick & 255);
        let mut lines: Vec<String> = (0..per_tick - 5)
            .map(|_| {
                n += 1;
                sample_line(1 + n % 3, n)
            })
            .collect();
        for k in 0..5 {
            lines.push(format!(
                "{} web-1 sshd[4242]: Failed password for root from {attacker} port {} ssh2",
                syslog_time(),
                40000 + k
            ));
        }
        let now = Utc::now().timestamp_millis();
        let recs = lines
            .into_iter()
            .map(|l| ProduceRecord {
                key: None,
                value: l.into_bytes(),
                timestamp_ms: now,
            })
            .collect();
        let t0 = Instant::now();
        pipeline.log.produce(topics::RAW_LOGS, recs, vec![]).await?;
        sent.insert(attacker, t0);
    }
    // Let the tail drain.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = received.lock().map(|m| m.len()).unwrap_or(0);
        if got >= sent.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reader.abort();
    let _ = stop.send(true);
    pipeline.wait().await?;
    let received = received.lock().map(|m| m.clone()).unwrap_or_default();
    let lat = sent
        .iter()
        .filter_map(|(ip, t0)| {
            received
                .get(ip)
                .map(|t1| t1.saturating_duration_since(*t0).as_secs_f64() * 1000.0)
        })
        .collect();
    Ok((lat, sent.len()))
}
