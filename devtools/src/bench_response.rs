//! `soc-dev bench-response`: the response loop under load, real on every link. `soc up`
//! (embedded) with a policy that approves blocks by itself, an agent enrolled and running in
//! this process, its nft inside a network namespace the bench creates and removes. It
//! replays brute forces from N distinct addresses and reports, per action, the time from the
//! alert being stored (the proposal is written in the same transaction) to the agent's
//! `applied` being stored; then how fast addresses go into the kernel set in one
//! transaction. Needs root, `ip` and `nft`.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use soc_core::db::{action, action_transition};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct ResponseBenchArgs {
    /// Distinct attacking addresses, each a brute force of six failed logins.
    #[arg(long, default_value_t = 1000)]
    pub attackers: u32,
    /// Addresses put into the kernel set in one transaction for the blocks-per-second figure.
    #[arg(long, default_value_t = 10_000)]
    pub block_addresses: u32,
}

struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// 10.200.0.0/16 and up: private, and only ever inside the bench's namespace.
fn attacker(i: u32) -> String {
    format!(
        "10.{}.{}.{}",
        200 + i / 64_000,
        (i / 250) % 256,
        i % 250 + 1
    )
}

pub async fn run(args: ResponseBenchArgs) -> Result<()> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        bail!("bench-response needs root (a network namespace and nftables)");
    }
    let ns = Namespace(format!("socbench{}", std::process::id()));
    let st = std::process::Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .context("running ip (apt-get install iproute2)")?;
    if !st.success() {
        bail!("ip netns add {} failed", ns.0);
    }
    let nft: Vec<String> = ["ip", "netns", "exec", &ns.0, "nft"]
        .map(String::from)
        .to_vec();

    let dir = tempfile::tempdir()?;
    let policy = soc_processor::response::ResponsePolicy::parse(
        &include_str!("../../processor/policy/response.yaml")
            .replace(
                "automatically: {}",
                "automatically: {block_ip: {min_severity: high}}",
            )
            .replace(
                "max_per_minute: 30",
                &format!("max_per_minute: {}", args.attackers * 2),
            ),
        Path::new("bench-policy.yaml"),
    )?;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut opts = soc::embedded::Options::local(dir.path(), listener, shutdown.clone());
    opts.triage = Some(soc_processor::triage::TriageSettings {
        enabled: false,
        response: Arc::new(policy),
        ..Default::default()
    });
    let pipeline = soc::embedded::start(opts).await?;
    let base = format!("http://{}", pipeline.addr);
    let admin = soc::users::issue_token(&pipeline.db, "admin", "bench", None).await?;
    let client = reqwest::Client::new();
    let enr: serde_json::Value = client
        .post(format!("{base}/api/agents/enrollments"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"host": "bench-host"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let settings = soc_responder::settings::AgentSettings {
        gateway: base.clone(),
        state_dir: dir.path().join("agent"),
        nft: nft.clone(),
        table: "soc_bench".into(),
        heartbeat_secs: 5,
        ..Default::default()
    };
    let identity = soc_responder::agent::enroll(
        &settings,
        enr["token"].as_str().context("enrollment token")?,
    )
    .await?;
    let agent = tokio::spawn(soc_responder::agent::run(
        settings,
        identity,
        shutdown.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let agents: serde_json::Value = client
            .get(format!("{base}/api/agents"))
            .bearer_auth(&admin)
            .send()
            .await?
            .json()
            .await?;
        if agents[0]["connected"] == true {
            break;
        }
        if Instant::now() > deadline {
            bail!("the agent did not connect");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The attack: six failed logins from each address, stamped now.
    let now = chrono::Local::now().format("%b %e %H:%M:%S").to_string();
    let mut lines = String::new();
    for i in 0..args.attackers {
        let ip = attacker(i);
        for k in 0..6 {
            lines.push_str(&format!(
                "{now} bench-host sshd[{}]: Failed password for root from {ip} port {} ssh2\n",
                1000 + k,
                40_000 + k
            ));
        }
    }
    let file = dir.path().join("storm.log");
    std::fs::write(&file, lines)?;
    let started = Instant::now();
    soc_connectors::replay::replay(
        &pipeline.log,
        &soc_connectors::replay::ReplayConfig::new(&file),
    )
    .await?;
    let want = args.attackers as usize;
    let deadline = Instant::now() + Duration::from_secs(300);
    let applied = loop {
        let applied = action::Entity::find()
            .filter(action::Column::State.eq("applied"))
            .all(&pipeline.db)
            .await?;
        if applied.len() >= want {
            break applied;
        }
        if Instant::now() > deadline {
            bail!("{} of {want} blocks applied after 300 s", applied.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let total = started.elapsed();
    let at = |state: &'static str| {
        let db = pipeline.db.clone();
        async move {
            let rows = action_transition::Entity::find()
                .filter(action_transition::Column::ToState.eq(state))
                .all(&db)
                .await?;
            anyhow::Ok(
                rows.into_iter()
                    .map(|t| (t.action_id, t.at))
                    .collect::<HashMap<String, DateTime<Utc>>>(),
            )
        }
    };
    let (dispatched_at, applied_at) = (at("dispatched").await?, at("applied").await?);
    let span = |from: &dyn Fn(&action::Model) -> Option<DateTime<Utc>>,
                to: &HashMap<String, DateTime<Utc>>| {
        let mut ms: Vec<f64> = applied
            .iter()
            .filter_map(|a| {
                let end = to.get(&a.id)?;
                Some((*end - from(a)?).num_microseconds()? as f64 / 1000.0)
            })
            .collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        ms
    };
    let ms = span(&|a| Some(a.created_at), &applied_at);
    let to_dispatch = span(&|a| Some(a.created_at), &dispatched_at);
    let to_apply = span(&|a| dispatched_at.get(&a.id).copied(), &applied_at);
    let _ = stop.send(true);
    let _ = agent.await;
    pipeline.wait().await?;

    // Straight into the kernel: one transaction of many addresses.
    let fw = soc_responder::Firewall::new(nft, "soc_bench_raw");
    fw.ensure().await?;
    let nets: Vec<(ipnet::IpNet, u32)> = (0..args.block_addresses)
        .map(|i| {
            // Every other address, so no two merge into a range: one element each.
            let ip: std::net::IpAddr = attacker(i * 2).parse().expect("address");
            (ipnet::IpNet::from(ip), 600)
        })
        .collect();
    let t = Instant::now();
    fw.block(&nets).await?;
    let block_secs = t.elapsed().as_secs_f64();
    let in_set = fw.blocked().await?.len();

    println!(
        "response loop, {} attackers (6 failed logins each), automatic approval:",
        args.attackers
    );
    println!(
        "  alert stored -> applied stored: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} actions)",
        crate::percentile(&ms, 0.5),
        crate::percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN),
        ms.len()
    );
    println!(
        "    of which stored -> dispatched: p50 {:.0} ms, p99 {:.0} ms; dispatched -> applied: p50 {:.0} ms, p99 {:.0} ms",
        crate::percentile(&to_dispatch, 0.5),
        crate::percentile(&to_dispatch, 0.99),
        crate::percentile(&to_apply, 0.5),
        crate::percentile(&to_apply, 0.99)
    );
    println!("  replay to last applied: {:.1} s", total.as_secs_f64());
    println!(
        "kernel set: {} addresses in one transaction in {:.2} s = {:.0} addresses/s ({} elements after merging)",
        args.block_addresses,
        block_secs,
        f64::from(args.block_addresses) / block_secs,
        in_set
    );
    Ok(())
}
