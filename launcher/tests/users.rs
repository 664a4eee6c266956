//! `soc user`: users and tokens made from the command line work against the gateway's store.

use soc_gateway::auth::{Accounts, Role};
use std::io::Write;
use std::process::{Command, Stdio};

fn soc(data: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_soc"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("SOC_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("soc runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("soc ends");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn users_and_tokens_made_on_the_command_line_sign_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let (ok, out, err) = soc(data, &["user", "add", "alice", "--role", "analyst"], None);
    assert!(ok, "{err}");
    let one_time = out.split_whitespace().last().expect("password").to_string();
    assert_eq!(one_time.len(), 20, "{out}");

    let (ok, _, err) = soc(data, &["user", "add", "alice"], None);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = soc(data, &["user", "add", "bob", "--role", "root"], None);
    assert!(!ok && err.contains("not a role"), "{err}");

    let (ok, _, err) = soc(
        data,
        &["user", "passwd", "alice", "--password-stdin"],
        Some("alice's own passphrase\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, _) = soc(data, &["user", "list"], None);
    assert!(
        ok && out.contains("alice") && out.contains("analyst"),
        "{out}"
    );
    assert!(
        !out.contains("must change"),
        "a chosen password needs no change: {out}"
    );

    let (ok, token, err) = soc(
        data,
        &[
            "user", "token", "alice", "--name", "export", "--role", "viewer",
        ],
        None,
    );
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    assert!(token.starts_with("soc_"), "{token}");
    let (ok, _, err) = soc(
        data,
        &["user", "token", "alice", "--name", "x", "--role", "admin"],
        None,
    );
    assert!(!ok && err.contains("above its owner"), "{err}");

    let db = soc_core::db::connect(&format!("sqlite://{}/soc.sqlite", data.display()))
        .await
        .expect("db");
    let accounts = Accounts::new(db.clone());
    let now = chrono::Utc::now();
    let p = accounts
        .resolve_token(&token, now)
        .await
        .expect("resolve")
        .expect("a live token");
    assert_eq!((p.username.as_str(), p.role), ("alice", Role::Viewer));
    assert!(accounts
        .authenticate("alice", "alice's own passphrase")
        .await
        .expect("auth")
        .is_some());
    assert!(accounts
        .authenticate("alice", &one_time)
        .await
        .expect("auth")
        .is_none());

    let (ok, list, _) = soc(data, &["user", "tokens", "alice"], None);
    assert!(
        ok && list.contains("export") && !list.contains(&token),
        "{list}"
    );
    let id = list.split_whitespace().next().expect("id").to_string();
    let (ok, _, err) = soc(data, &["user", "revoke", &id], None);
    assert!(ok, "{err}");
    assert!(accounts
        .resolve_token(&token, now)
        .await
        .expect("resolve")
        .is_none());

    let (ok, _, err) = soc(data, &["user", "set", "alice", "--disable"], None);
    assert!(ok, "{err}");
    assert!(accounts
        .authenticate("alice", "alice's own passphrase")
        .await
        .expect("auth")
        .is_none());
}

/// `soc keys`: rotation keeps the old key until it is retired, a retirement that would
/// strand an agent is refused, and both land in the audit chain.
#[tokio::test]
async fn signing_keys_rotate_and_retire_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let (ok, out, err) = soc(data, &["keys", "list"], None);
    assert!(ok, "{err}");
    assert!(out.contains("key set version 1"), "{out}");
    let first = out
        .lines()
        .find(|l| l.ends_with("active"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the active key")
        .to_string();

    let (ok, out, err) = soc(data, &["keys", "rotate"], None);
    assert!(ok, "{err}");
    assert!(out.contains("version 2"), "{out}");
    let (_, out, _) = soc(data, &["keys", "list"], None);
    assert!(out.contains(&format!("{first}  previous")), "{out}");

    // An enrolled agent still on version 1 would trust no key after the retirement.
    let db = soc::connect_db(&format!("sqlite://{}/soc.sqlite", data.display()))
        .await
        .expect("db");
    let (_, token) = soc_gateway::response::enrollment::create_token(
        &db,
        "web-1",
        "admin",
        chrono::Duration::hours(1),
        chrono::Utc::now(),
    )
    .await
    .expect("token");
    soc_gateway::response::enrollment::enroll(&db, &token, "test", 1, chrono::Utc::now())
        .await
        .expect("enrolled");
    let (ok, _, err) = soc(data, &["keys", "retire", &first], None);
    assert!(!ok && err.contains("web-1"), "{err}");
    let (_, out, _) = soc(data, &["keys", "list"], None);
    assert!(out.contains("version 1 (behind)"), "{out}");
    let (ok, out, err) = soc(data, &["keys", "retire", &first, "--force"], None);
    assert!(ok, "{err}");
    assert!(out.contains("version 3"), "{out}");
    let (_, out, _) = soc(data, &["keys", "list"], None);
    assert!(!out.contains(&first), "{out}");

    let (ok, out, err) = soc(data, &["audit", "verify"], None);
    assert!(ok && out.contains("intact"), "{out}{err}");
    let kinds: Vec<String> = {
        use sea_orm::EntityTrait;
        soc_core::db::audit_entry::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    };
    assert!(kinds.contains(&"keys.rotated".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"keys.retired".to_string()), "{kinds:?}");
}
