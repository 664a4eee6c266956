//! The agent as it lives in production: connected over TLS, enforcing while the gateway is
//! down (a flushed ruleset restored, a block's TTL still lifting it in the kernel), back
//! when the gateway returns, and taking a rotated signing key without re-enrolling, through
//! the key it already trusts, then dropping the retired one.
//!
//! Runs as root where `ip`, `nft` and `python3` exist; says why it is skipped otherwise.

use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{run, skip_reason, Netns};
#[path = "common/api.rs"]
mod api;
use api::{agent_setup, attack, enroll_agent, spawn_agent, Api};

const HOST: &str = "edge-host";

/// `soc up` over TLS on `listener`, approving blocks by itself.
async fn start(
    dir: &Path,
    tls: (&Path, &Path),
    listener: std::net::TcpListener,
) -> (soc::embedded::Pipeline, tokio::sync::watch::Sender<bool>) {
    let policy = soc_processor::response::ResponsePolicy::parse(
        &include_str!("../../processor/policy/response.yaml").replace(
            "automatically: {}",
            "automatically: {block_ip: {min_severity: high}}",
        ),
        Path::new("test-policy.yaml"),
    )
    .expect("policy");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut opts = soc::embedded::Options::local(dir, listener, shutdown);
    opts.settings.tls.cert = Some(tls.0.to_path_buf());
    opts.settings.tls.key = Some(tls.1.to_path_buf());
    opts.triage = Some(soc_processor::triage::TriageSettings {
        enabled: false,
        response: Arc::new(policy),
        ..Default::default()
    });
    let pipeline = soc::embedded::start(opts).await.expect("pipeline starts");
    assert!(pipeline.tls);
    (pipeline, stop)
}

fn identity(state: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(state.join("identity.json")).unwrap()).unwrap()
}

fn key_ids(identity: &Value) -> Vec<String> {
    identity["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap().to_string())
        .collect()
}

/// The key id that signed an action's newest command.
async fn signed_by(api: &Api, token: &str, action: &str) -> String {
    let d = api.get(&format!("/api/actions/{action}"), token).await;
    let commands = d["commands"].as_array().expect("commands");
    commands.last().expect("a command")["key_id"]
        .as_str()
        .expect("a key id")
        .to_string()
}

/// Polls `f` every 100 ms until it holds, for at most `within`.
fn eventually(within: Duration, what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < within, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_enforces_through_an_outage_and_takes_a_rotated_key() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let ns = Netns::create().expect("network namespaces");
    let dir = tempfile::tempdir().unwrap();
    let (a2, a66, a99) = (ns.attacker_ip(2), ns.attacker_ip(66), ns.attacker_ip(99));
    let victim = ns.victim_ip();

    // A certificate for 127.0.0.1 from a CA of the test's own; the agent trusts that CA.
    let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ca.cert.pem()).unwrap();
    std::fs::write(&key, ca.key_pair.serialize_pem()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (pipeline, stop) = start(dir.path(), (&cert, &key), listener).await;
    let api = Api {
        base: format!("https://{addr}"),
        client: reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.cert.pem().as_bytes()).unwrap())
            .build()
            .unwrap(),
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
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let alice = soc::users::issue_token(&pipeline.db, "alice", "test", None)
        .await
        .unwrap();

    // The agent: over https, trusting the test's CA only; re-asserting its table every
    // second; nft inside the victim namespace.
    let (config, state) = agent_setup(
        dir.path(),
        &api.base,
        &ns.victim,
        &format!("ca_cert = \"{}\"\nreassert_secs = 1\n", cert.display()),
    );
    let log = dir.path().join("agent.log");
    let (s, enr) = api
        .post("/api/agents/enrollments", &admin, json!({"host": HOST}))
        .await;
    assert_eq!(s, 201, "{enr}");
    let out = enroll_agent(&config, enr["token"].as_str().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first_key = key_ids(&identity(&state));
    assert_eq!(first_key.len(), 1);
    assert_eq!(identity(&state)["keys_version"], 1);
    let mut agent = spawn_agent(&config, &log);
    api.wait_agent(&admin, "connected over TLS", &log, |a| {
        a["connected"] == true
    })
    .await;
    eventually(Duration::from_secs(10), "victim reachable", || {
        ns.reaches(&a2, &victim)
    });

    // A brute force, blocked automatically, signed with the first key.
    attack(&pipeline, dir.path(), HOST, &a2).await;
    let applied = api
        .wait_action(&admin, &a2, "applied", Duration::from_secs(30))
        .await;
    assert!(!ns.reaches(&a2, &victim));
    assert_eq!(
        signed_by(&api, &admin, applied["id"].as_str().unwrap()).await,
        first_key[0]
    );

    // Rotation, as `soc keys rotate` does it, while everything runs: the gateway sends the
    // new key set, signed by the key the agent trusts; the agent stores and reports it.
    let key_file = dir.path().join("response-signing.key");
    let rotated = soc_gateway::response::keyring::rotate(&key_file, chrono::Utc::now()).unwrap();
    let new_key = rotated.active().key_id().to_string();
    api.wait_agent(&admin, "adopted key set 2", &log, |a| {
        a["keys_version"] == 2
    })
    .await;
    assert_eq!(
        key_ids(&identity(&state)),
        [new_key.clone(), first_key[0].clone()]
    );

    // A block with a short life, signed with the new key and applied.
    let (s, p66) = api
        .post(
            "/api/actions",
            &alice,
            json!({"kind": "block_ip", "target": a66, "target_host": HOST, "ttl_secs": 6,
                   "reason": "short block"}),
        )
        .await;
    assert_eq!(s, 201, "{p66}");
    let id66 = p66["id"].as_str().unwrap().to_string();
    let (s, v) = api
        .post(&format!("/api/actions/{id66}/approve"), &admin, json!({}))
        .await;
    assert_eq!(s, 200, "{v}");
    api.wait_action(&admin, &a66, "applied", Duration::from_secs(30))
        .await;
    assert_eq!(signed_by(&api, &admin, &id66).await, new_key);
    assert!(!ns.reaches(&a66, &victim));

    // Retiring the old key: the agent keeps the new one only.
    soc_gateway::response::keyring::retire(&key_file, &first_key[0], chrono::Utc::now()).unwrap();
    api.wait_agent(&admin, "adopted key set 3", &log, |a| {
        a["keys_version"] == 3
    })
    .await;
    assert_eq!(key_ids(&identity(&state)), std::slice::from_ref(&new_key));

    // The gateway goes away. The agent keeps enforcing: its table comes back after a
    // ruleset flush, and the short block lapses in the kernel on time.
    let _ = stop.send(true);
    pipeline.wait().await.expect("clean stop");
    assert!(reqwest::get(format!("{}/api/health/live", api.base))
        .await
        .is_err());
    assert!(!ns.reaches(&a2, &victim), "a block went with the gateway");
    run(&["ip", "netns", "exec", &ns.victim, "nft", "flush", "ruleset"]).unwrap();
    eventually(
        Duration::from_secs(15),
        "the agent restores its table",
        || ns.ruleset().contains("soc_agent") && !ns.reaches(&a2, &victim),
    );
    eventually(Duration::from_secs(15), "the short block lapses", || {
        ns.reaches(&a66, &victim)
    });
    assert!(
        !ns.reaches(&a2, &victim),
        "the long block lapsed with the short one"
    );
    assert!(
        agent.try_wait().unwrap().is_none(),
        "the agent exited without its gateway"
    );

    // The gateway returns on the same address: the agent reconnects by itself and takes
    // commands signed with the key it adopted before the outage.
    let listener = std::net::TcpListener::bind(addr).unwrap();
    let (pipeline, stop) = start(dir.path(), (&cert, &key), listener).await;
    api.wait_agent(&admin, "reconnected", &log, |a| a["connected"] == true)
        .await;
    attack(&pipeline, dir.path(), HOST, &a99).await;
    let applied = api
        .wait_action(&admin, &a99, "applied", Duration::from_secs(30))
        .await;
    assert_eq!(
        signed_by(&api, &admin, applied["id"].as_str().unwrap()).await,
        new_key
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("disconnected from the gateway"), "{logged}");
    assert!(
        !logged.contains("key set from the gateway refused"),
        "{logged}"
    );

    let check = api.get("/api/audit/verify", &admin).await;
    assert_eq!(check["intact"], true, "{check}");
    agent.kill().unwrap();
    agent.wait().unwrap();
    let _ = stop.send(true);
    pipeline.wait().await.unwrap();
}
