//! `soc up` receiving live: `logger(1)` over UDP and TCP with octet counting, a TLS sender
//! trusting a CA the test makes, HTTP ingest and a followed file. Each door carries one
//! attacker's brute force, and each attacker becomes an alert.

#[path = "../../connectors/tests/support/mod.rs"]
mod ingest_support;
mod support;

use ingest_support::{failed_logins, logger, logger_lines, TestCa};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "ingest-token-for-the-test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port")
}

struct Soc(Child);

impl Drop for Soc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_served(out: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if text.contains("dashboard:") && text.contains("file tail") {
            return;
        }
        assert!(Instant::now() < deadline, "soc up never served: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A classic syslog line for now (the processor reads its time), from `host`.
fn syslog_line(host: &str, message: &str) -> String {
    let now = chrono::Utc::now().format("%b %e %H:%M:%S");
    format!("{now} {host} sshd[4242]: {message}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_carries_lines_that_become_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new(dir.path());
    let apps = dir.path().join("apps");
    std::fs::create_dir(&apps).expect("mkdir");
    let config = dir.path().join("soc.toml");
    std::fs::write(
        &config,
        format!(
            "[ingest.syslog]\ntls_cert = {:?}\ntls_key = {:?}\n[ingest.http.tokens]\napps = {TOKEN:?}\n",
            ca.cert_path, ca.key_path
        ),
    )
    .expect("config");
    let (udp, tcp, tls, http, port) = (
        free_udp_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let at = |p: u16| format!("127.0.0.1:{p}");
    let out = dir.path().join("soc.out");
    let _soc = Soc(Command::new(env!("CARGO_BIN_EXE_soc"))
        .current_dir(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["up", "--no-llm", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", &at(port)])
        .args(["--syslog-udp", &at(udp)])
        .args(["--syslog-tcp", &at(tcp)])
        .args(["--syslog-tls", &at(tls)])
        .args(["--http-ingest", &at(http)])
        .args(["--tail", &format!("{}/*.log*", apps.display())])
        .env("SOC_LOG", "warn")
        .env("SOC_AUTH__ADMIN_PASSWORD", support::ADMIN_PASSWORD)
        .stdout(std::fs::File::create(&out).expect("stdout"))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("soc up starts"));
    wait_served(&out);

    // UDP and TCP (octet counting): logger(1) itself.
    logger(
        &[
            "--udp",
            "--rfc3164",
            "-n",
            "127.0.0.1",
            "-P",
            &udp.to_string(),
            "-t",
            "sshd",
        ],
        &failed_logins("192.0.2.11", 6),
    );
    logger(
        &[
            "--tcp",
            "--octet-count",
            "-n",
            "127.0.0.1",
            "-P",
            &tcp.to_string(),
            "-t",
            "sshd",
        ],
        &failed_logins("192.0.2.12", 6),
    );

    // TLS: logger's lines, octet-counted, to the TLS port; the server's close says durable.
    let lines = logger_lines("sshd", &failed_logins("192.0.2.13", 6));
    let stream = tokio::net::TcpStream::connect(at(tls))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut conn = ca
        .connector()
        .connect(name, stream)
        .await
        .expect("handshake");
    for l in &lines {
        conn.write_all(format!("{} {l}", l.len()).as_bytes())
            .await
            .expect("send");
    }
    conn.flush().await.expect("flush");
    conn.get_mut().0.shutdown().await.expect("half-close");
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest).await;

    // HTTP: a wrong token is refused; the right one is answered once the lines are kept.
    let body: String = failed_logins("192.0.2.14", 6)
        .iter()
        .map(|m| format!("{}\n", syslog_line("web1", m)))
        .collect();
    let client = reqwest::Client::new();
    let url = format!("http://{}/ingest", at(http));
    let res = client
        .post(&url)
        .bearer_auth("not-the-token")
        .body(body.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 401);
    let res = client
        .post(&url)
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);

    // A followed file.
    let mut f = std::fs::File::create(apps.join("auth.log")).expect("create");
    for m in failed_logins("192.0.2.15", 6) {
        writeln!(f, "{}", syslog_line("db1", &m)).expect("write");
    }
    drop(f);

    let expected: BTreeSet<String> = (11..=15).map(|n| format!("192.0.2.{n}")).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let url = format!(
            "http://{}/api/alerts?limit=100&rule_id=soc/ssh-bruteforce",
            at(port)
        );
        let got: BTreeSet<String> = tokio::task::spawn_blocking(move || {
            support::get_signed_in(port, &url)
                .and_then(|page| {
                    page["alerts"].as_array().map(|a| {
                        a.iter()
                            .filter_map(|x| x["source_ip"].as_str().map(String::from))
                            .collect()
                    })
                })
                .unwrap_or_default()
        })
        .await
        .expect("join");
        if got == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alerts for {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const STREAMED: u64 = 100_000;
const ATTACKERS: u64 = 100;
const FAILURES_EACH: u64 = 10;

/// Line `i` of the streamed log: every 100th a failed login of one of the attackers (each
/// fails 10 times), the rest routine. Every line is different, so a repeat would show.
fn streamed_line(i: u64, now: &str) -> String {
    if i.is_multiple_of(STREAMED / (ATTACKERS * FAILURES_EACH)) {
        let attacker = (i / 100) % ATTACKERS;
        format!(
            "<38>{now} web-1 sshd[{}]: Failed password for root from 203.0.113.{} port {} ssh2",
            10_000 + i,
            attacker + 1,
            i
        )
    } else {
        format!("<30>{now} web-1 systemd[1]: Started Session {i} of user deploy.")
    }
}

/// A syslog sender that retries what was not acknowledged: a session per connection,
/// resuming where the server says, reconnecting (bounded) when the server goes away.
fn stream_with_retries(addr: String, acked: std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{BufRead, BufReader};
    use std::sync::atomic::Ordering;
    let now = chrono::Utc::now().format("%b %e %H:%M:%S").to_string();
    let deadline = Instant::now() + Duration::from_secs(240);
    while acked.load(Ordering::SeqCst) < STREAMED {
        assert!(Instant::now() < deadline, "the sender never finished");
        let Ok(conn) = std::net::TcpStream::connect(&addr) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let mut read = BufReader::new(conn.try_clone().expect("clone"));
        let mut write = std::io::BufWriter::new(conn);
        if write
            .write_all(b"soc-session streamer\n")
            .and_then(|_| write.flush())
            .is_err()
        {
            continue;
        }
        let mut answer = String::new();
        let resume = match read.read_line(&mut answer) {
            Ok(n) if n > 0 => answer
                .trim_end()
                .strip_prefix("soc-resume ")
                .and_then(|n| n.parse::<u64>().ok()),
            _ => None,
        };
        let Some(resume) = resume else {
            // Busy (the old connection is still closing) or the server went away.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        acked.fetch_max(resume, Ordering::SeqCst);
        let acks = {
            let acked = acked.clone();
            std::thread::spawn(move || {
                let mut line = String::new();
                while matches!(read.read_line(&mut line), Ok(n) if n > 0) {
                    if let Some(n) = line
                        .trim_end()
                        .strip_prefix("soc-ack ")
                        .and_then(|n| n.parse().ok())
                    {
                        acked.fetch_max(n, Ordering::SeqCst);
                    }
                    line.clear();
                }
            })
        };
        let mut sent_all = true;
        for i in resume..STREAMED {
            if writeln!(write, "{}", streamed_line(i, &now)).is_err() {
                sent_all = false;
                break;
            }
        }
        if sent_all && write.flush().is_ok() {
            // Our close; the server closes after it once everything is durable.
            let _ = write.get_ref().shutdown(std::net::Shutdown::Write);
        }
        let _ = acks.join();
    }
}

/// `kill -9` of `soc up` while a TCP sender streams 100,000 lines and resends what was not
/// acknowledged: after the restart every line is in the stream exactly once, and the alerts
/// are those of a clean run (each attacker once, with its full count).
#[test]
fn sigkill_while_a_tcp_sender_streams_loses_and_repeats_nothing() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (tcp, port) = (free_port(), free_port());
    let start = || {
        Soc(Command::new(env!("CARGO_BIN_EXE_soc"))
            .current_dir(dir.path())
            .args(["up", "--no-llm", "--data-dir"])
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--syslog-tcp", &format!("127.0.0.1:{tcp}")])
            .env("SOC_LOG", "warn")
            .env("SOC_AUTH__ADMIN_PASSWORD", support::ADMIN_PASSWORD)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("soc up starts"))
    };
    let mut first = start();
    let acked = Arc::new(AtomicU64::new(0));
    let sender = {
        let acked = acked.clone();
        std::thread::spawn(move || stream_with_retries(format!("127.0.0.1:{tcp}"), acked))
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.load(Ordering::SeqCst) < 20_000 {
        assert!(
            Instant::now() < deadline,
            "nothing acknowledged before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let at_kill = acked.load(Ordering::SeqCst);
    let _ = Command::new("kill")
        .args(["-9", &first.0.id().to_string()])
        .status();
    let _ = first.0.wait();
    assert!(at_kill < STREAMED, "the kill must land mid-stream");

    let _second = start();
    sender.join().expect("the sender finished");
    assert_eq!(acked.load(Ordering::SeqCst), STREAMED);

    // The alerts of a clean run: each attacker once, every failure counted.
    let deadline = Instant::now() + Duration::from_secs(120);
    let url = format!("http://127.0.0.1:{port}/api/alerts?limit=500&rule_id=soc/ssh-bruteforce");
    loop {
        let alerts = support::get_signed_in(port, &url)
            .and_then(|p| p["alerts"].as_array().cloned())
            .unwrap_or_default();
        let ips: BTreeSet<&str> = alerts
            .iter()
            .filter_map(|a| a["source_ip"].as_str())
            .collect();
        let full = alerts.iter().all(|a| a["count"] == FAILURES_EACH);
        if alerts.len() as u64 == ATTACKERS && ips.len() as u64 == ATTACKERS && full {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} alerts for {} sources, all full: {full}",
            alerts.len(),
            ips.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(_second);

    // Every line in the stream exactly once.
    let log = soc_core::stream::embedded::EmbeddedLog::open(&data.join("log.redb"), None)
        .expect("reopen log");
    let raw = log
        .read(soc_core::stream::topics::RAW_LOGS, 0, 0, 200_000)
        .expect("read");
    assert_eq!(raw.len() as u64, STREAMED, "records in the stream");
    let distinct: BTreeSet<String> = raw
        .iter()
        .map(|r| {
            soc_core::event::split_notes(&String::from_utf8_lossy(&r.value))
                .0
                .to_string()
        })
        .collect();
    assert_eq!(distinct.len() as u64, STREAMED, "no line twice");
}
