//! The whole response loop, real on every link: `soc up` (embedded) detects an SSH brute
//! force, the response policy proposes and approves `block_ip`, the gateway signs and sends
//! it to a `soc-agent` process enrolled for the attacked host, the agent's nft (inside a
//! network namespace this test creates) drops the attacker, and `applied` comes back. Then an
//! analyst's proposal approved by an admin, an agent killed with SIGKILL mid-command and one
//! that is down while an action is approved, a revert, and the audit chain.
//!
//! Runs as root where `ip`, `nft` and `python3` exist; says why it is skipped otherwise.

use chrono::Utc;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{skip_reason, Netns};
#[path = "common/api.rs"]
mod api;
use api::{agent_setup, attack, enroll_agent, spawn_agent, Api};
#[path = "../../launcher/tests/support/browser.rs"]
mod browser;

const ADMIN_PASSWORD: &str = "response test passphrase";

const HOST: &str = "victim-host";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_block_reaches_the_attacked_host_and_its_result_comes_back() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let ns = Netns::create().expect("network namespaces");
    let dir = tempfile::tempdir().unwrap();
    let (a2, a66, a99, a120) = (
        ns.attacker_ip(2),
        ns.attacker_ip(66),
        ns.attacker_ip(99),
        ns.attacker_ip(120),
    );
    let victim = ns.victim_ip();

    // `soc up`, with a policy that approves blocks of high-severity incidents by itself.
    let policy = soc_processor::response::ResponsePolicy::parse(
        &include_str!("../../processor/policy/response.yaml").replace(
            "automatically: {}",
            "automatically: {block_ip: {min_severity: high}}",
        ),
        Path::new("test-policy.yaml"),
    )
    .expect("policy");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut opts = soc::embedded::Options::local(dir.path(), listener, shutdown);
    opts.settings.auth.admin_password = Some(ADMIN_PASSWORD.into());
    opts.triage = Some(soc_processor::triage::TriageSettings {
        enabled: false,
        response: Arc::new(policy),
        ..Default::default()
    });
    let pipeline = soc::embedded::start(opts).await.expect("pipeline starts");
    let api = Api {
        base: format!("http://{}", pipeline.addr),
        client: reqwest::Client::new(),
    };
    let admin = soc::users::issue_token(&pipeline.db, "admin", "test", None)
        .await
        .unwrap();
    soc_gateway::auth::Accounts::new(pipeline.db.clone())
        .create_user(
            "alice",
            "alice's long passphrase",
            soc_gateway::auth::Role::Analyst,
            false,
            Utc::now(),
        )
        .await
        .unwrap();
    let alice = soc::users::issue_token(&pipeline.db, "alice", "test", None)
        .await
        .unwrap();

    // The agent: its nft runs inside the victim namespace, slowly while `slow` exists.
    let slow = dir.path().join("slow");
    let (config, state) = agent_setup(dir.path(), &api.base, &ns.victim, "reassert_secs = 5\n");
    let log = dir.path().join("agent.log");

    // Enrollment: a one-time token for the host, spent once.
    let (s, enr) = api
        .post("/api/agents/enrollments", &admin, json!({"host": HOST}))
        .await;
    assert_eq!(s, 201, "{enr}");
    let token = enr["token"].as_str().unwrap().to_string();
    let out = enroll_agent(&config, &token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = enroll_agent(&config, &token);
    assert!(!again.status.success(), "a token enrolls once");
    let identity: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("identity.json")).unwrap())
            .unwrap();
    let credential = identity["credential"].as_str().unwrap().to_string();
    // An agent's credential is not a user's token, nor the other way round.
    let (s, _) = api
        .call(reqwest::Method::GET, "/api/alerts", &credential, None)
        .await;
    assert_eq!(s, 401, "an agent credential read alerts");
    let mut agent = spawn_agent(&config, &log);
    api.wait_agent(&admin, "connected", &log, |a| a["connected"] == true)
        .await;
    let t0 = Instant::now();
    while !ns.reaches(&a2, &victim) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "victim never reachable"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // 1. Automatic: the brute force is blocked on the victim.
    attack(&pipeline, dir.path(), HOST, &a2).await;
    let applied = api
        .wait_action(&admin, &a2, "applied", Duration::from_secs(30))
        .await;
    assert!(
        !ns.reaches(&a2, &victim),
        "the attacker still reaches the victim"
    );
    assert!(ns.reaches(&a66, &victim), "another address was blocked");
    let detail = api
        .get(
            &format!("/api/actions/{}", applied["id"].as_str().unwrap()),
            &admin,
        )
        .await;
    let steps: Vec<(String, String)> = detail["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["to"].as_str().unwrap().to_string(),
                t["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let agent_id = identity["agent_id"].as_str().unwrap();
    assert_eq!(
        steps,
        [
            (
                "proposed".to_string(),
                "policy:soc/ssh-bruteforce".to_string()
            ),
            ("approved".into(), "policy:auto-approve".into()),
            ("dispatched".into(), "gateway".into()),
            ("applied".into(), format!("agent:{agent_id}")),
        ]
    );
    assert_eq!(detail["commands"][0]["state"], "applied");
    assert!(applied["expires_at"].is_string(), "a block has an end");

    // 2. By hand: an analyst proposes a block in answer to the alert, cannot approve it
    //    herself, and an admin approves it with a click on the dashboard, which shows it
    //    applied in the alert's detail.
    let mut page = browser::Browser::launch().await;
    page.open(&format!("{}/", api.base)).await;
    page.wait_for("document.getElementById('signin').hidden", |v| v == false)
        .await;
    page.desktop().await;
    page.sign_in("admin", ADMIN_PASSWORD).await;
    let row = format!(
        "#alerts tr[data-id='{}']",
        applied["alert_id"].as_str().unwrap()
    );
    page.wait_for(&format!("!!document.querySelector(\"{row}\")"), |v| {
        v == true
    })
    .await;
    page.eval(&format!("document.querySelector(\"{row}\").click(); 0"))
        .await;
    page.wait_for(
        "document.querySelectorAll('#d-actions li[data-action-id]').length",
        |v| v == 1,
    )
    .await;
    let (s, proposed) = api
        .post(
            "/api/actions",
            &alice,
            json!({"kind": "block_ip", "target": a66, "target_host": HOST,
                   "alert_id": applied["alert_id"], "reason": "the same actor's second address"}),
        )
        .await;
    assert_eq!(s, 201, "{proposed}");
    let id66 = proposed["id"].as_str().unwrap().to_string();
    let (s, _) = api
        .post(&format!("/api/actions/{id66}/approve"), &alice, json!({}))
        .await;
    assert_eq!(s, 409, "four eyes: the proposer approved");
    let button = format!("#approvals li[data-action-id='{id66}'] button.approve");
    page.wait_for(&format!("!!document.querySelector(\"{button}\")"), |v| {
        v == true
    })
    .await;
    page.eval(&format!("document.querySelector(\"{button}\").click(); 0"))
        .await;
    page.wait_for(
        &format!("(document.querySelector(\"#d-actions li[data-action-id='{id66}'] .astate\") || {{}}).textContent"),
        |v| v == "applied",
    )
    .await;
    page.screenshot("action-applied").await;
    assert!(!ns.reaches(&a66, &victim));
    let d = api.get(&format!("/api/actions/{id66}"), &admin).await;
    assert_eq!(d["transitions"][1]["actor"], "user:admin", "{d}");
    drop(page);

    // 3. SIGKILL between accepting and answering, then an action approved while the agent
    //    is down: after a restart each is applied exactly once.
    std::fs::write(&slow, "").unwrap();
    let (_, p99) = api
        .post(
            "/api/actions",
            &alice,
            json!({"kind": "block_ip", "target": a99, "target_host": HOST, "reason": "r"}),
        )
        .await;
    let id99 = p99["id"].as_str().unwrap().to_string();
    api.post(&format!("/api/actions/{id99}/approve"), &admin, json!({}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = api.get(&format!("/api/actions/{id99}"), &admin).await;
        if d["commands"][0]["state"] == "accepted" {
            break;
        }
        assert!(Instant::now() < deadline, "never accepted: {d}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.kill().unwrap();
    agent.wait().unwrap();
    std::fs::remove_file(&slow).unwrap();
    let (_, p120) = api
        .post(
            "/api/actions",
            &alice,
            json!({"kind": "block_ip", "target": a120, "target_host": HOST, "reason": "r"}),
        )
        .await;
    let id120 = p120["id"].as_str().unwrap().to_string();
    api.post(&format!("/api/actions/{id120}/approve"), &admin, json!({}))
        .await;
    let waiting = api
        .wait_action(&admin, &a120, "dispatched", Duration::from_secs(10))
        .await;
    assert_eq!(waiting["command_state"], "pending", "{waiting}");
    let mut agent = spawn_agent(&config, &log);
    for (target, id) in [(&a99, &id99), (&a120, &id120)] {
        api.wait_action(&admin, target, "applied", Duration::from_secs(30))
            .await;
        let d = api.get(&format!("/api/actions/{id}"), &admin).await;
        let applied = d["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["to"] == "applied")
            .count();
        assert_eq!(applied, 1, "{target}: {d}");
        assert_eq!(d["commands"].as_array().unwrap().len(), 1, "{d}");
    }
    let set = ns.ruleset();
    assert_eq!(
        set.matches(&format!("{a99} ")).count() + set.matches(&format!("{a99},")).count(),
        1,
        "{set}"
    );

    // 4. Revert: the analyst undoes the manual block; the address reaches the victim again.
    let (s, v) = api
        .post(
            &format!("/api/actions/{id66}/revert"),
            &alice,
            json!({"comment": "false positive"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    api.wait_action(&admin, &a66, "reverted", Duration::from_secs(30))
        .await;
    assert!(ns.reaches(&a66, &victim), "reverted block still drops");
    assert!(!ns.reaches(&a2, &victim), "the other block went too");

    // 5. Every step is in an intact audit chain.
    let check = api.get("/api/audit/verify", &admin).await;
    assert_eq!(check["intact"], true, "{check}");
    assert!(check["entries"].as_i64().unwrap() >= 16, "{check}");

    agent.kill().unwrap();
    agent.wait().unwrap();
    let _ = stop.send(true);
}
