//! How fast lines go from senders to durable in the embedded log: syslog over TCP (in
//! acknowledged sessions, so the time counted ends when the last line is durable) and
//! HTTP ingest; acknowledgement latency; the process's memory while senders flood.
//!
//! Senders and `soc` share this process and its two cores, so the figures are a floor for
//! a `soc` with the machine to itself.

use anyhow::{bail, Context, Result};
use clap::Args;
use secrecy::SecretString;
use soc_connectors::http::{HttpIngest, HttpIngestConfig};
use soc_connectors::sink::{Sink, SinkConfig};
use soc_connectors::syslog::{SyslogConfig, SyslogMode, SyslogSource};
use soc_core::stream::embedded::EmbeddedLog;
use soc_core::stream::{topics, LogStream, TopicSpec};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

#[derive(Args, Debug)]
pub struct IngestBenchArgs {
    /// Lines per protocol.
    #[arg(long, default_value_t = 1_000_000)]
    pub lines: u64,
    /// TCP connections sending at once.
    #[arg(long, default_value_t = 4)]
    pub connections: u64,
    /// HTTP clients posting at once.
    #[arg(long, default_value_t = 4)]
    pub http_clients: u64,
    /// Lines per HTTP request.
    #[arg(long, default_value_t = 1_000)]
    pub http_batch: u64,
}

/// Lines per write of a TCP sender, and the granularity of its latency samples.
const CHUNK: u64 = 1_000;

fn line(i: u64) -> String {
    format!(
        "<38>Dec  3 10:{:02}:{:02} web-{} sshd[{}]: Failed password for invalid user u{} from 198.51.{}.{} port {} ssh2\n",
        (i / 60) % 60,
        i % 60,
        i % 16,
        10_000 + i % 50_000,
        i % 997,
        (i / 256) % 256,
        i % 256,
        1024 + i % 60_000
    )
}

struct Phase {
    name: &'static str,
    lines: u64,
    elapsed: Duration,
    /// Acknowledgement latencies, ms, sorted.
    latencies: Vec<f64>,
    peak_rss_mb: f64,
}

impl Phase {
    fn print(&self, base_rss_mb: f64) {
        let secs = self.elapsed.as_secs_f64();
        println!("{}:", self.name);
        println!("{:>28}: {}", "lines durable", self.lines);
        println!(
            "{:>28}: {:.0} lines/s ({:.2} s)",
            "senders to durable",
            self.lines as f64 / secs,
            secs
        );
        println!(
            "{:>28}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            "acknowledgement latency",
            crate::percentile(&self.latencies, 0.50),
            crate::percentile(&self.latencies, 0.99),
            self.latencies.last().copied().unwrap_or(f64::NAN)
        );
        println!(
            "{:>28}: {:.0} MB (before: {base_rss_mb:.0} MB)",
            "peak RSS during the flood", self.peak_rss_mb
        );
    }
}

async fn open_log(dir: &std::path::Path) -> Result<Arc<EmbeddedLog>> {
    let log = EmbeddedLog::open(&dir.join("log.redb"), None)?;
    for name in [topics::RAW_LOGS, topics::DEAD_LETTERS] {
        log.ensure_topic(&TopicSpec {
            name: name.into(),
            partitions: 1,
            retention_secs: None,
            max_partition_bytes: None,
        })
        .await?;
    }
    Ok(Arc::new(log))
}

/// Sample the resident set every 20 ms until told to stop; the largest seen.
fn rss_sampler() -> (watch::Sender<bool>, tokio::task::JoinHandle<f64>) {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut peak: f64 = 0.0;
        loop {
            peak = peak.max(crate::status_mb("VmRSS:").unwrap_or(0.0));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = stopped.changed() => return peak,
            }
        }
    });
    (stop, task)
}

async fn tcp_sender(addr: std::net::SocketAddr, id: u64, from: u64, to: u64) -> Result<Vec<f64>> {
    let conn = tokio::net::TcpStream::connect(addr).await?;
    conn.set_nodelay(true)?;
    let (read, mut write) = conn.into_split();
    let mut read = BufReader::new(read);
    write
        .write_all(format!("soc-session bench-{id}\n").as_bytes())
        .await?;
    let mut answer = String::new();
    read.read_line(&mut answer).await?;
    if answer.trim_end() != "soc-resume 0" {
        bail!("unexpected answer to the session: {answer:?}");
    }
    let total = to - from;
    // (lines written so far, when): an ack of at least that many closes the sample.
    let marks: Arc<Mutex<VecDeque<(u64, Instant)>>> = Arc::default();
    let acks = {
        let marks = marks.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut line = String::new();
            while read.read_line(&mut line).await.unwrap_or(0) > 0 {
                if let Some(n) = line
                    .trim_end()
                    .strip_prefix("soc-ack ")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    let now = Instant::now();
                    let mut m = marks.lock().unwrap_or_else(|e| e.into_inner());
                    while m.front().is_some_and(|(k, _)| *k <= n) {
                        if let Some((_, t)) = m.pop_front() {
                            latencies.push((now - t).as_secs_f64() * 1e3);
                        }
                    }
                    if n >= total {
                        break;
                    }
                }
                line.clear();
            }
            latencies
        })
    };
    let mut sent = 0;
    let mut buf = String::with_capacity(CHUNK as usize * 140);
    while sent < total {
        buf.clear();
        let n = CHUNK.min(total - sent);
        for i in 0..n {
            buf.push_str(&line(from + sent + i));
        }
        write.write_all(buf.as_bytes()).await?;
        sent += n;
        marks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((sent, Instant::now()));
    }
    let latencies = acks.await?;
    write.shutdown().await?;
    Ok(latencies)
}

async fn bench_tcp(args: &IngestBenchArgs) -> Result<Phase> {
    let dir = tempfile::tempdir()?;
    let log = open_log(dir.path()).await?;
    let stream: Arc<dyn LogStream> = log.clone();
    let (sink, writer) = Sink::start(stream, SinkConfig::default());
    let writer = tokio::spawn(writer);
    let source =
        SyslogSource::bind(SyslogConfig::new(SyslogMode::Tcp, "127.0.0.1:0".parse()?)).await?;
    let addr = source.local_addr();
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(source.run(sink, stopped));
    let (rss_stop, rss) = rss_sampler();
    let per = args.lines / args.connections.max(1);
    let started = Instant::now();
    let senders: Vec<_> = (0..args.connections.max(1))
        .map(|c| tokio::spawn(tcp_sender(addr, c, c * per, (c + 1) * per)))
        .collect();
    let mut latencies = Vec::new();
    for s in senders {
        latencies.extend(s.await??);
    }
    let elapsed = started.elapsed();
    let _ = rss_stop.send(true);
    let peak_rss_mb = rss.await?;
    let _ = stop.send(true);
    server.await??;
    writer.await??;
    let lines = log.end_offset(topics::RAW_LOGS, 0)?;
    if lines != per * args.connections.max(1) {
        bail!(
            "{lines} lines durable, {} sent",
            per * args.connections.max(1)
        );
    }
    latencies.sort_by(f64::total_cmp);
    Ok(Phase {
        name: "syslog over TCP (acknowledged sessions)",
        lines,
        elapsed,
        latencies,
        peak_rss_mb,
    })
}

async fn bench_http(args: &IngestBenchArgs) -> Result<Phase> {
    let dir = tempfile::tempdir()?;
    let log = open_log(dir.path()).await?;
    let stream: Arc<dyn LogStream> = log.clone();
    let (sink, writer) = Sink::start(stream.clone(), SinkConfig::default());
    let writer = tokio::spawn(writer);
    let token = "bench-token";
    let mut tokens = BTreeMap::new();
    tokens.insert("bench".to_string(), SecretString::from(token));
    let mut config = HttpIngestConfig::new("127.0.0.1:0".parse()?, tokens);
    config.max_body_bytes = 64 * 1024 * 1024;
    let listener = HttpIngest::bind_listener(&config)?;
    let server = HttpIngest::new(config, listener, sink, stream)?;
    let url = format!("http://{}/ingest", server.local_addr());
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(server.run(stopped));
    let (rss_stop, rss) = rss_sampler();
    let clients = args.http_clients.max(1);
    let per = args.lines / clients;
    let batch = args.http_batch.max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut latencies = Vec::new();
                let mut sent = 0;
                while sent < per {
                    let n = batch.min(per - sent);
                    let from = c * per + sent;
                    let body: String = (from..from + n).map(line).collect();
                    let t = Instant::now();
                    let res = client
                        .post(&url)
                        .bearer_auth(token)
                        .header("Soc-Sender", format!("bench-{c}"))
                        .header("Soc-Sequence", sent.to_string())
                        .body(body)
                        .send()
                        .await?;
                    if res.status() == 503 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    res.error_for_status()?;
                    latencies.push(t.elapsed().as_secs_f64() * 1e3);
                    sent += n;
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed();
    let _ = rss_stop.send(true);
    let peak_rss_mb = rss.await?;
    let _ = stop.send(true);
    server.await??;
    writer.await??;
    let lines = log.end_offset(topics::RAW_LOGS, 0)?;
    if lines != per * clients {
        bail!("{lines} lines durable, {} sent", per * clients);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(Phase {
        name: "HTTP ingest (numbered requests)",
        lines,
        elapsed,
        latencies,
        peak_rss_mb,
    })
}

pub async fn run(args: IngestBenchArgs) -> Result<()> {
    let base = crate::status_mb("VmRSS:").unwrap_or(0.0);
    println!(
        "bench-ingest: {} lines per protocol, {} TCP connections, {} HTTP clients x {} lines a request",
        args.lines, args.connections, args.http_clients, args.http_batch
    );
    bench_tcp(&args)
        .await
        .context("syslog over TCP")?
        .print(base);
    bench_http(&args).await.context("HTTP ingest")?.print(base);
    Ok(())
}
