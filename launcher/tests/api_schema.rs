//! schemathesis against the running gateway: every operation of the OpenAPI document, with
//! generated valid and invalid input, signed in with an admin token. No 5xx, and every answer
//! within the document (status code, content type, body schema).
//!
//! schemathesis comes from `SOC_SCHEMATHESIS` or the PATH (`scripts/test.sh` installs it
//! from PyPI).

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_gateway_keeps_to_its_openapi_document() {
    let st = std::env::var("SOC_SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let (pipeline, stop) = support::start_without_model(dir.path(), None).await;
    // Alerts to read, so the operations that take an id meet real ones too.
    let log = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpora/crowdsec-hub/tests/ssh-bf/ssh-bf.log"
    ));
    soc_connectors::replay::replay(
        &pipeline.log,
        &soc_connectors::replay::ReplayConfig::new(&log),
    )
    .await
    .expect("replay");
    let token = support::token(&pipeline).await;
    let url = format!("http://{}/api/openapi.json", pipeline.addr);
    let report = dir.path().join("report");
    // schemathesis keeps a cache in its working directory: not in the source tree.
    let work = dir.path().to_path_buf();

    let run = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&st)
            .current_dir(&work)
            .args(["run", &url, "--header"])
            .arg(format!("Authorization: Bearer {token}"))
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--max-examples",
                "25",
                "--seed",
                "1",
                "--request-timeout",
                "10",
                "--no-color",
            ])
            .arg("--report-dir")
            .arg(&report)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{st}: {e} (python3 -m pip install schemathesis)"));
        // Bounded: a hung run is killed, and fails the test.
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let out = child.wait_with_output().expect("output");
                return (
                    Some(status),
                    String::from_utf8_lossy(&out.stdout).into_owned()
                        + &String::from_utf8_lossy(&out.stderr),
                );
            }
            if started.elapsed() > Duration::from_secs(600) {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                return (None, String::from_utf8_lossy(&out.stdout).into_owned());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let (status, output) = run.await.expect("join");
    let status = status.unwrap_or_else(|| panic!("schemathesis ran over 10 minutes:\n{output}"));
    assert!(status.success(), "schemathesis found failures:\n{output}");
    // "Test cases: 1490 generated, 1490 passed": enough cases that the run means something.
    let generated: u64 = output
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" generated")
                .and_then(|(n, _)| n.trim().parse().ok())
        })
        .unwrap_or(0);
    assert!(generated >= 500, "{generated} cases:\n{output}");
    let _ = stop.send(true);
    pipeline.wait().await.expect("clean shutdown");
}
