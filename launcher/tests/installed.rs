//! The `soc` binary needs nothing from the tree it was built in: copied to an empty
//! directory and started from another with a clean environment, `soc up --demo` raises the
//! demo's alerts. Where this test may (root, util-linux `unshare`), the source tree is also
//! hidden under an empty tmpfs in a private mount namespace while `soc` runs.

use std::path::Path;

mod support;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Whether this process may hide a directory in a private mount namespace.
fn can_hide_tree() -> bool {
    Command::new("unshare")
        .args(["--mount", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start(bin: &Path, cwd: &Path, port: u16, hide: Option<&Path>) -> Child {
    let soc_args = [
        "up".to_string(),
        "--demo".into(),
        "--data-dir".into(),
        cwd.join("data").display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--no-llm".into(),
    ];
    let mut cmd = match hide {
        Some(tree) => {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(r#"mount -t tmpfs soc-hidden "$1" && shift && exec "$@""#)
                .arg("sh")
                .arg(tree)
                .arg(bin)
                .args(soc_args);
            c
        }
        None => {
            let mut c = Command::new(bin);
            c.args(soc_args);
            c
        }
    };
    cmd.current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", cwd)
        .env("SOC_LOG", "warn")
        .env("SOC_AUTH__ADMIN_PASSWORD", support::ADMIN_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("soc starts")
}

fn brute_force_sources(port: u16) -> Vec<String> {
    let url = format!("http://127.0.0.1:{port}/api/alerts?rule_id=soc/ssh-bruteforce");
    let Some(page) = support::get_signed_in(port, &url) else {
        return Vec::new();
    };
    page["alerts"]
        .as_array()
        .map(|alerts| {
            alerts
                .iter()
                .filter_map(|a| a["source_ip"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_installed_binary_runs_the_demo_from_an_empty_directory() {
    let install = tempfile::tempdir().expect("install dir");
    let bin = install.path().join("soc");
    std::fs::copy(env!("CARGO_BIN_EXE_soc"), &bin).expect("copy the binary");
    let work = tempfile::tempdir().expect("working dir");
    let tree = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("source tree");
    let hide = can_hide_tree().then_some(tree.as_path());
    if hide.is_none() {
        eprintln!("note: cannot unshare a mount namespace here; the source tree stays visible");
    }
    let port = free_port();
    let mut child = start(&bin, work.path(), port, hide);

    let deadline = Instant::now() + Duration::from_secs(90);
    let mut sources = Vec::new();
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("soc exited early: {status}");
        }
        sources = brute_force_sources(port);
        if sources.iter().any(|s| s == "203.0.113.50") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        sources.iter().any(|s| s == "203.0.113.50"),
        "the demo's SSH brute force from 203.0.113.50 was not raised (got {sources:?})"
    );
    assert!(
        work.path().join("data/log.redb").exists(),
        "the data directory is where it was configured"
    );
}
