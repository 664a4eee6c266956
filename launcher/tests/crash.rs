//! Kill -9 in the middle of a replay, start again: every expected alert is stored exactly
//! once, with its full count, and the raw topic holds every line of the file exactly once.

use soc_core::stream::embedded::EmbeddedLog;
use soc_core::stream::topics;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

mod support;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ATTACKERS: usize = 400;
const FAILURES_EACH: usize = 6;
const NOISE_PER_ATTACKER: usize = 60;

/// Attackers take turns; each makes six failures within six seconds of event time, among
/// benign web traffic. Returns the number of lines.
fn write_log(path: &Path) -> usize {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut lines = 0;
    let base = chrono::DateTime::parse_from_rfc3339("2026-03-10T08:00:00Z").expect("time");
    for a in 0..ATTACKERS {
        let ip = format!("203.0.{}.{}", a / 250, a % 250 + 1);
        for k in 0..FAILURES_EACH {
            let t = base + chrono::Duration::seconds((a * 10 + k) as i64);
            writeln!(
                f,
                "{} bastion sshd[{}]: Failed password for invalid user u{k} from {ip} port {} ssh2",
                t.format("%b %e %H:%M:%S"),
                1000 + a,
                30000 + k
            )
            .expect("write");
            lines += 1;
            for n in 0..NOISE_PER_ATTACKER / FAILURES_EACH {
                writeln!(
                    f,
                    r#"198.51.100.{} - - [{}] "GET /index.html HTTP/1.1" 200 512 "-" "Mozilla/5.0""#,
                    n + 1,
                    t.format("%d/%b/%Y:%H:%M:%S +0000")
                )
                .expect("write");
                lines += 1;
            }
        }
    }
    lines
}

fn start(data: &Path, log: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_soc"))
        .current_dir(std::env::temp_dir())
        .args(["up", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--replay")
        .arg(log)
        // Slow enough that the kill lands in the middle of the replay.
        .args(["--replay-rate", "15000"])
        .env("SOC_LOG", "warn")
        .env("SOC_AUTH__ADMIN_PASSWORD", support::ADMIN_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("soc up starts")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Every SSH brute-force alert (other rules, such as user enumeration, fire on this log too).
fn fetch_all(port: u16) -> Option<Vec<serde_json::Value>> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url =
            format!("http://127.0.0.1:{port}/api/alerts?limit=500&rule_id=soc/ssh-bruteforce");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = support::get_signed_in(port, &url)?;
        all.extend(page["alerts"].as_array()?.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Some(all),
        }
    }
}

fn kill9(child: &mut Child) {
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let _ = child.wait();
}

#[test]
fn sigkill_mid_replay_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let log = dir.path().join("attack.log");
    let total_lines = write_log(&log);
    let port = free_port();

    let mut first = start(&data, &log, port);
    // Wait until part of the file is in and some alerts exist, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no alert before the kill");
        if let Some(alerts) = fetch_all(port) {
            if alerts.len() >= 20 {
                assert!(alerts.len() < ATTACKERS, "the kill must land mid-replay");
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill9(&mut first);

    let mut second = start(&data, &log, port);
    let deadline = Instant::now() + Duration::from_secs(120);
    let alerts = loop {
        assert!(
            Instant::now() < deadline,
            "pipeline did not finish after restart"
        );
        if let Some(alerts) = fetch_all(port) {
            let done = alerts.len() >= ATTACKERS
                && alerts.iter().all(|a| a["count"] == FAILURES_EACH as u64);
            if done {
                break alerts;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Let anything still in flight land, then look again.
    std::thread::sleep(Duration::from_millis(500));
    let alerts = fetch_all(port).unwrap_or(alerts);
    kill9(&mut second);

    let mut by_ip: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for a in &alerts {
        by_ip
            .entry(a["source_ip"].as_str().expect("ip").to_string())
            .or_default()
            .push(a);
    }
    assert_eq!(by_ip.len(), ATTACKERS, "every attacker raised an alert");
    for (ip, list) in &by_ip {
        assert_eq!(
            list.len(),
            1,
            "{ip}: exactly one incident, got {}",
            list.len()
        );
        assert_eq!(list[0]["count"], FAILURES_EACH as u64, "{ip}: full count");
    }

    // Every line of the file is in the raw topic exactly once.
    let stream = EmbeddedLog::open(&data.join("log.redb"), None).expect("reopen log");
    let end = stream.end_offset(topics::RAW_LOGS, 0).expect("end offset");
    assert_eq!(end as usize, total_lines, "raw records = lines in the file");
    let first = stream.read(topics::RAW_LOGS, 0, 0, 1).expect("read");
    assert_eq!(first.first().map(|r| r.offset), Some(0));
}

/// A stage that fails stops `soc up` at once with the error, even in the middle of a long
/// replay: no live process that serves nothing.
#[test]
fn a_broken_rule_stops_the_start_before_anything_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("broken.yaml"),
        "id: soc/broken\ntitle: t\nseverity: high\ndetection: {sel: {a: b}, condition: sel and missing}\n",
    )
    .expect("rule");
    let log = dir.path().join("input.log");
    write_log(&log);
    let out = dir.path().join("stdout");
    let started = Instant::now();
    let child = soc_up(
        dir.path(),
        &[
            "--rules-dir".as_ref(),
            rules.as_os_str(),
            "--replay".as_ref(),
            log.as_os_str(),
            "--replay-rate".as_ref(),
            "100".as_ref(),
            "--no-llm".as_ref(),
        ],
        &[],
        &out,
    );
    let (status, stderr) = Waiter::new(child).wait_for(Duration::from_secs(30));
    assert!(
        !status.success(),
        "a broken rule must fail the start: {stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("broken.yaml") && stderr.contains("missing"),
        "the error names the cause: {stderr}"
    );
    let printed = std::fs::read_to_string(&out).expect("stdout");
    assert!(!printed.contains("dashboard:"), "served first: {printed}");
    assert!(
        !dir.path().join("data").join("log.redb").exists(),
        "opened the stream first"
    );

    // An override for a rule that does not exist: the same.
    let child = soc_up(
        dir.path(),
        &[
            "--rule-override".as_ref(),
            "soc/no-such-rule:threshold=3".as_ref(),
            "--no-llm".as_ref(),
        ],
        &[],
        &out,
    );
    let (status, stderr) = Waiter::new(child).wait_for(Duration::from_secs(30));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("soc/no-such-rule"), "{stderr}");
    let printed = std::fs::read_to_string(&out).expect("stdout");
    assert!(!printed.contains("dashboard:"), "served first: {printed}");
}

/// The database goes away under a running `soc up` (on PostgreSQL, dropped): the processor
/// gives up after its retries, and the process stops at once with the failure logged,
/// instead of serving on as a zombie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_stage_stops_the_process_with_its_error() {
    use sea_orm::ConnectionTrait;
    let Some(db) = soc_migrations::testing::TestDb::postgres().await else {
        eprintln!("skipped: needs PostgreSQL (SOC_TEST_POSTGRES_URL)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("input.log");
    write_log(&log);
    let out = dir.path().join("stdout");
    // Half a minute of replay: the failure must not wait for it.
    let child = soc_up(
        dir.path(),
        &[
            "--replay".as_ref(),
            log.as_os_str(),
            "--replay-rate".as_ref(),
            "1000".as_ref(),
            "--no-llm".as_ref(),
            "--log-format".as_ref(),
            "json".as_ref(),
        ],
        &[("SOC_DATABASE_URL", &db.url)],
        &out,
    );
    let child = Waiter::new(child);
    tokio::task::block_in_place(|| wait_served(&out));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let name = db
        .url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_string();
    db.conn.close_by_ref().await.ok();
    let admin =
        sea_orm::Database::connect(std::env::var("SOC_TEST_POSTGRES_URL").expect("admin url"))
            .await
            .expect("admin connection");
    admin
        .execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .expect("drop the database");
    let dropped = Instant::now();
    let (status, stderr) =
        tokio::task::spawn_blocking(move || child.wait_for(Duration::from_secs(60)))
            .await
            .expect("waiter");
    assert!(
        !status.success(),
        "a failed stage must fail the process: {stderr}"
    );
    assert!(
        dropped.elapsed() < Duration::from_secs(60),
        "{:?}",
        dropped.elapsed()
    );
    let logged = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["message"] == "stage failed")
        .unwrap_or_else(|| panic!("logged as JSON when it happened: {stderr}"));
    assert_eq!(logged["level"], "ERROR");
    assert_eq!(logged["fields"]["stage"], "processor");
}

/// `soc up` in `dir` with its data under `dir/data`, a free port, warnings only on stderr
/// (piped) and stdout into `out`, plus `args` and `envs`.
fn soc_up(dir: &Path, args: &[&std::ffi::OsStr], envs: &[(&str, &str)], out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_soc"))
        .current_dir(dir)
        .args(["up", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(args)
        .env("SOC_LOG", "warn")
        .envs(envs.iter().copied())
        .stdout(std::fs::File::create(out).expect("stdout file"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("soc up starts")
}

/// Waits until `soc up` printed where it serves.
fn wait_served(out: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(out)
        .unwrap_or_default()
        .contains("dashboard:")
    {
        assert!(Instant::now() < deadline, "soc up never served");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child that is killed if it outlives the test's bound.
struct Waiter(Child);

impl Waiter {
    fn new(child: Child) -> Self {
        Waiter(child)
    }

    fn wait_for(mut self, bound: Duration) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                let mut err = String::new();
                if let Some(mut e) = self.0.stderr.take() {
                    e.read_to_string(&mut err).expect("stderr");
                }
                return (status, err);
            }
            assert!(
                Instant::now() < deadline,
                "still running after {bound:?}: a zombie"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `soc up` with a `--replay` file that does not exist stops before it starts anything,
/// naming the file; Ctrl-C during a replay stops the replay and the process, and says where
/// the next replay resumes.
#[test]
fn a_missing_file_stops_the_start_and_ctrl_c_stops_a_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = |replay: &Path, out: &Path| {
        soc_up(
            dir.path(),
            &[
                "--replay".as_ref(),
                replay.as_os_str(),
                "--replay-rate".as_ref(),
                "200".as_ref(),
                "--no-llm".as_ref(),
            ],
            &[],
            out,
        )
    };

    let out = dir.path().join("missing.out");
    let started = Instant::now();
    let (status, stderr) =
        Waiter::new(up(&dir.path().join("no-such.log"), &out)).wait_for(Duration::from_secs(30));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("no-such.log"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let printed = std::fs::read_to_string(&out).expect("stdout");
    assert!(
        !printed.contains("dashboard:"),
        "served before failing: {printed}"
    );

    // Minutes of replay at 200 lines/s; Ctrl-C once it runs.
    let log = dir.path().join("input.log");
    write_log(&log);
    let out = dir.path().join("replay.out");
    let child = up(&log, &out);
    let pid = child.id().to_string();
    let waiter = Waiter::new(child);
    wait_served(&out);
    std::thread::sleep(Duration::from_secs(2));
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let (status, stderr) = waiter.wait_for(Duration::from_secs(30));
    assert!(status.success(), "{status:?}: {stderr}");
    let printed = std::fs::read_to_string(&out).expect("stdout");
    assert!(printed.contains("stopped at byte"), "{printed}");
}
