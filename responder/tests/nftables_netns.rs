//! The executor against real nftables, inside network namespaces this test creates: an
//! "attacker" namespace connects to a listener in a "victim" namespace over a veth pair,
//! and the agent's nft runs in the victim. Runs as root where `ip` and `nft` exist; says
//! why it is skipped otherwise. Every address is on the test's own links.

use chrono::{Duration as ChronoDuration, Utc};
use soc_core::command::{Action, Command, CommandSigner, ReportState, SignedCommand, TrustedKeys};
use soc_responder::{Executor, ExecutorConfig, Firewall, Guardrails};
use std::time::{Duration, Instant};
use uuid::Uuid;

mod common;
use common::{run, skip_reason, Netns};

const AGENT: &str = "victim-1";

struct Gateway {
    signer: CommandSigner,
    seq: u128,
}

impl Gateway {
    fn command(&mut self, action: Action) -> Command {
        self.seq += 1;
        let now = Utc::now();
        Command {
            id: Uuid::from_u128(self.seq),
            action_id: Uuid::from_u128(1000 + self.seq),
            agent: AGENT.into(),
            action,
            issued_at: now,
            expires_at: now + ChronoDuration::seconds(300),
            nonce: format!("nonce-{:016}", self.seq),
        }
    }
    fn sign(&mut self, action: Action) -> SignedCommand {
        let c = self.command(action);
        self.signer.sign(&c)
    }
}

fn block(targets: &[&str], ttl_secs: u32) -> Action {
    Action::BlockIp {
        targets: targets.iter().map(|t| t.parse().unwrap()).collect(),
        ttl_secs,
    }
}

fn unblock(targets: &[&str]) -> Action {
    Action::UnblockIp {
        targets: targets.iter().map(|t| t.parse().unwrap()).collect(),
    }
}

fn states(reports: &[soc_core::command::Report]) -> Vec<ReportState> {
    reports.iter().map(|r| r.state).collect()
}

#[tokio::test]
async fn blocks_are_enforced_by_the_kernel_and_bad_commands_change_nothing() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let ns = Netns::create().expect("network namespaces");
    let state = tempfile::tempdir().unwrap();
    let mut gw = Gateway {
        signer: CommandSigner::from_seed(&[42; 32]),
        seq: 0,
    };
    let cfg = ExecutorConfig {
        agent_id: AGENT.into(),
        keys: TrustedKeys::new(&[gw.signer.public_key()]).unwrap(),
        guard: Guardrails::default(),
        dry_run: false,
        enabled: true,
        gateway: vec![format!("{}:8443", ns.attacker_ip(200)).parse().unwrap()],
        state_dir: state.path().to_path_buf(),
        usermod: vec!["false".into()],
        passwd: "/etc/passwd".into(),
    };
    let fw = || {
        Firewall::new(
            ["ip", "netns", "exec", &ns.victim, "nft"]
                .map(String::from)
                .to_vec(),
            "soc_agent",
        )
    };
    let ex = Executor::open(cfg.clone(), fw(), Utc::now()).await.unwrap();
    let (victim, a2, a66) = (ns.victim_ip(), ns.attacker_ip(2), ns.attacker_ip(66));

    // The listener may need a moment to start.
    let t0 = Instant::now();
    while !ns.reaches(&a2, &victim) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "victim never reachable"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ns.reaches(&a66, &victim));

    // One address, for 3 s.
    let first = gw.sign(block(&[&a2], 3));
    let r = ex.handle(&first, Utc::now()).await;
    assert_eq!(
        states(&r),
        [ReportState::Accepted, ReportState::Applied],
        "{r:?}"
    );
    let blocked_at = Instant::now();
    assert!(!ns.reaches(&a2, &victim), "blocked address still reaches");
    assert!(ns.reaches(&a66, &victim), "another address is blocked too");

    // A range covers the addresses inside it, and unblocking it frees them.
    let range = format!("10.231.{}.64/26", ns.net);
    let r = ex.handle(&gw.sign(block(&[&range], 120)), Utc::now()).await;
    assert_eq!(
        states(&r),
        [ReportState::Accepted, ReportState::Applied],
        "{r:?}"
    );
    assert!(
        !ns.reaches(&a66, &victim),
        "an address inside a blocked range reaches"
    );
    let r = ex.handle(&gw.sign(unblock(&[&range])), Utc::now()).await;
    assert_eq!(
        states(&r),
        [ReportState::Accepted, ReportState::Applied],
        "{r:?}"
    );
    assert!(ns.reaches(&a66, &victim), "unblocked range still dropped");

    // IPv6 too.
    let r = ex
        .handle(&gw.sign(block(&["fd00:231::2"], 120)), Utc::now())
        .await;
    assert_eq!(
        states(&r),
        [ReportState::Accepted, ReportState::Applied],
        "{r:?}"
    );
    assert!(!ns.reaches("fd00:231::2", "fd00:231::1"));
    let r = ex
        .handle(&gw.sign(unblock(&["fd00:231::2"])), Utc::now())
        .await;
    assert_eq!(states(&r), [ReportState::Accepted, ReportState::Applied]);
    assert!(ns.reaches("fd00:231::2", "fd00:231::1"));

    // The kernel lets the first block expire with nothing done by the agent.
    while !ns.reaches(&a2, &victim) {
        assert!(
            blocked_at.elapsed() < Duration::from_secs(10),
            "the block never expired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        blocked_at.elapsed() >= Duration::from_millis(2_000),
        "expired after {:?}, before its TTL",
        blocked_at.elapsed()
    );

    // Bad commands: each refused, with its reason, and the ruleset stays as it was.
    let before = ns.ruleset();
    let mut bad: Vec<(&str, SignedCommand)> = Vec::new();
    bad.push(("bad_signature", {
        let mut s = gw.sign(block(&[&a2], 60));
        s.payload = s.payload.replace(&a2, &a66);
        s
    }));
    let forger = CommandSigner::from_seed(&[7; 32]);
    bad.push(("unknown_key", forger.sign(&gw.command(block(&[&a2], 60)))));
    bad.push(("bad_signature", {
        let mut s = forger.sign(&gw.command(block(&[&a2], 60)));
        s.key_id = gw.signer.key_id().to_string();
        s
    }));
    bad.push(("replayed", {
        let mut c = gw.command(block(&[&a2], 60));
        c.nonce = "nonce-0000000000000001".into();
        gw.signer.sign(&c)
    }));
    bad.push(("expired", {
        let mut c = gw.command(block(&[&a2], 60));
        c.issued_at = Utc::now() - ChronoDuration::seconds(400);
        c.expires_at = Utc::now() - ChronoDuration::seconds(100);
        gw.signer.sign(&c)
    }));
    bad.push(("wrong_agent", {
        let mut c = gw.command(block(&[&a2], 60));
        c.agent = "db-1".into();
        gw.signer.sign(&c)
    }));
    let valid = serde_json::to_string(&gw.command(block(&[&a2], 60))).unwrap();
    bad.push((
        "malformed",
        gw.signer
            .sign_payload(valid.replace("block_ip", "run_shell")),
    ));
    bad.push((
        "malformed",
        gw.signer
            .sign_payload(valid.replace(r#""ttl_secs":60"#, r#""ttl_secs":"60s""#)),
    ));
    bad.push(("protected", gw.sign(block(&["127.0.0.1"], 60))));
    bad.push(("protected", gw.sign(block(&[&ns.attacker_ip(200)], 60))));
    bad.push(("prefix_too_wide", gw.sign(block(&["198.18.0.0/16"], 60))));
    // The first command again, after its block expired: answered, not re-run.
    bad.push(("again", first.clone()));
    for (want, cmd) in &bad {
        let r = ex.handle(cmd, Utc::now()).await;
        if *want == "again" {
            assert_eq!(states(&r), [ReportState::Applied], "{r:?}");
        } else {
            assert_eq!(states(&r), [ReportState::Refused], "{want}: {r:?}");
            let reason = r[0].reason.as_deref().unwrap_or("");
            assert!(reason.starts_with(want), "{want}: {reason}");
        }
        assert_eq!(ns.ruleset(), before, "{want} changed the ruleset");
        assert!(ns.reaches(&a2, &victim), "{want} blocked the address");
    }
    let mut off = cfg.clone();
    off.enabled = false;
    let disabled = Executor::open(off, fw(), Utc::now()).await.unwrap();
    let r = disabled
        .handle(&gw.sign(block(&[&a2], 60)), Utc::now())
        .await;
    assert_eq!(states(&r), [ReportState::Refused]);
    assert_eq!(ns.ruleset(), before, "a disabled agent changed the ruleset");

    // Still working after all that; and a flushed ruleset comes back with its blocks.
    let r = ex.handle(&gw.sign(block(&[&a2], 120)), Utc::now()).await;
    assert_eq!(states(&r), [ReportState::Accepted, ReportState::Applied]);
    assert!(!ns.reaches(&a2, &victim));
    run(&["ip", "netns", "exec", &ns.victim, "nft", "flush", "ruleset"]).unwrap();
    assert!(ns.reaches(&a2, &victim), "flush did not remove the block");
    assert!(
        ex.reassert(Utc::now()).await.unwrap(),
        "table not seen missing"
    );
    assert!(
        !ns.reaches(&a2, &victim),
        "block not restored after a flush"
    );
    // A restarted agent restores it as well.
    run(&["ip", "netns", "exec", &ns.victim, "nft", "flush", "ruleset"]).unwrap();
    drop(ex);
    let _ex = Executor::open(cfg.clone(), fw(), Utc::now()).await.unwrap();
    assert!(
        !ns.reaches(&a2, &victim),
        "block not restored after a restart"
    );
}

#[tokio::test]
async fn isolation_keeps_only_the_gateway_connection() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let mut ns = Netns::create().expect("network namespaces");
    // The "gateway" listens in the attacker namespace on .66:9443.
    let attacker = ns.attacker.clone();
    ns.serve(&attacker, 9443).unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut gw = Gateway {
        signer: CommandSigner::from_seed(&[43; 32]),
        seq: 500,
    };
    let victim = ns.victim_ip();
    let a2 = ns.attacker_ip(2);
    let cfg = ExecutorConfig {
        agent_id: AGENT.into(),
        keys: TrustedKeys::new(&[gw.signer.public_key()]).unwrap(),
        guard: Guardrails::default(),
        dry_run: false,
        enabled: true,
        gateway: vec![format!("{}:9443", ns.attacker_ip(66)).parse().unwrap()],
        state_dir: state.path().to_path_buf(),
        usermod: vec!["false".into()],
        passwd: "/etc/passwd".into(),
    };
    let fw = Firewall::new(
        ["ip", "netns", "exec", &ns.victim, "nft"]
            .map(String::from)
            .to_vec(),
        "soc_agent",
    );
    let ex = Executor::open(cfg, fw, Utc::now()).await.unwrap();
    let t0 = Instant::now();
    while !ns.reaches(&a2, &victim) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "victim never reachable"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (v, a66) = (ns.victim.clone(), ns.attacker_ip(66));
    while !ns.connects(&v, &victim, &a66, 9443) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "gateway never reachable"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = ex.handle(&gw.sign(Action::IsolateHost), Utc::now()).await;
    assert_eq!(
        states(&r),
        [ReportState::Accepted, ReportState::Applied],
        "{r:?}"
    );
    assert!(!ns.reaches(&a2, &victim), "isolated host still reachable");
    assert!(
        !ns.reaches(&a66, &victim),
        "isolated host reachable from the gateway's other ports"
    );
    assert!(
        ns.connects(&v, &victim, &a66, 9443),
        "isolation cut the gateway connection"
    );
    assert!(
        !ns.connects(&v, &victim, &a2, 9443),
        "isolated host reaches other hosts"
    );
    let r = ex.handle(&gw.sign(Action::ReleaseHost), Utc::now()).await;
    assert_eq!(
        states(&r),
        [ReportState::Accepted, ReportState::Applied],
        "{r:?}"
    );
    assert!(ns.reaches(&a2, &victim), "released host unreachable");
    assert!(!ex.firewall().isolated().await.unwrap());
}

/// `lock_user` and `unlock_user` with the real `usermod`, on account files under a root of
/// the test's own (`usermod --prefix`), so the machine's accounts are never touched.
#[tokio::test]
async fn accounts_are_locked_and_unlocked_with_usermod() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    if run(&["sh", "-c", "command -v usermod"]).is_err() {
        eprintln!("skipped: `usermod` is not installed (apt-get install passwd)");
        return;
    }
    let ns = Netns::create().expect("network namespaces");
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let hash = "$y$j9T$salt$hash";
    for (file, text) in [
        (
            "passwd",
            "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/usr/sbin/nologin\n\
             mallory:x:1500:1500::/home/mallory:/bin/sh\n",
        ),
        (
            "shadow",
            &format!("root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nmallory:{hash}:19000:0:99999:7:::\n"),
        ),
        ("group", "root:x:0:\ndaemon:x:1:\nmallory:x:1500:\n"),
        ("gshadow", "root:*::\ndaemon:*::\nmallory:!::\n"),
    ] {
        std::fs::write(etc.join(file), text).unwrap();
    }
    let shadow = || {
        std::fs::read_to_string(etc.join("shadow"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("mallory:"))
            .unwrap()
            .to_string()
    };
    let state = tempfile::tempdir().unwrap();
    let mut gw = Gateway {
        signer: CommandSigner::from_seed(&[44; 32]),
        seq: 900,
    };
    let cfg = ExecutorConfig {
        agent_id: AGENT.into(),
        keys: TrustedKeys::new(&[gw.signer.public_key()]).unwrap(),
        guard: Guardrails::default(),
        dry_run: false,
        enabled: true,
        gateway: Vec::new(),
        state_dir: state.path().to_path_buf(),
        usermod: vec![
            "usermod".into(),
            "--prefix".into(),
            root.path().display().to_string(),
        ],
        passwd: etc.join("passwd"),
    };
    let fw = Firewall::new(
        ["ip", "netns", "exec", &ns.victim, "nft"]
            .map(String::from)
            .to_vec(),
        "soc_agent",
    );
    let ex = Executor::open(cfg, fw, Utc::now()).await.unwrap();
    let lock = |user: &str| Action::LockUser { user: user.into() };

    let r = ex.handle(&gw.sign(lock("mallory")), Utc::now()).await;
    assert_eq!(
        states(&r),
        [ReportState::Accepted, ReportState::Applied],
        "{r:?}"
    );
    // Locked: the hash behind a `!`, the account expired (day 1 of 1970).
    assert_eq!(shadow(), format!("mallory:!{hash}:19000:0:99999:7::1:"));

    let r = ex
        .handle(
            &gw.sign(Action::UnlockUser {
                user: "mallory".into(),
            }),
            Utc::now(),
        )
        .await;
    assert_eq!(
        states(&r),
        [ReportState::Accepted, ReportState::Applied],
        "{r:?}"
    );
    assert_eq!(shadow(), format!("mallory:{hash}:19000:0:99999:7:::"));

    // root, a system account and an unknown one are refused and nothing changes.
    let before = std::fs::read_to_string(etc.join("shadow")).unwrap();
    for user in ["root", "daemon", "nobody-here"] {
        let r = ex.handle(&gw.sign(lock(user)), Utc::now()).await;
        assert_eq!(states(&r), [ReportState::Refused], "{user}: {r:?}");
    }
    assert_eq!(std::fs::read_to_string(etc.join("shadow")).unwrap(), before);
}
