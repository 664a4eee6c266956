//! The dashboard in a real headless Chromium: it goes live over the WebSocket, and an alert
//! raised by a replay appears (and is updated) without the page reloading.
//!
//! Chromium comes from `SOC_CHROMIUM` or /usr/bin/chromium (Debian: `apt-get install chromium`).
//! It is driven over the DevTools protocol with the WebSocket client the tests already use.

mod support;
use support::browser::{Browser, ROWS};

use serde_json::{json, Value};
use soc::embedded;
use std::path::PathBuf;

/// The first admin's password in this test.
const ADMIN_PASSWORD: &str = "dashboard test passphrase";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_alerts_live_without_reload() {
    // No model: alerts carry the deterministic verdict (the merge with later model verdicts
    // is exercised below through the page's own update function).
    let dir = tempfile::tempdir().expect("tempdir");
    let (pipeline, stop) = support::start_without_model(dir.path(), Some(ADMIN_PASSWORD)).await;

    let mut browser = Browser::launch().await;
    browser.open(&format!("http://{}/", pipeline.addr)).await;
    // Signed out: the sign-in form, no alert table, and the API refuses the page.
    browser
        .wait_for("document.getElementById('signin').hidden", |v| v == false)
        .await;
    assert_eq!(
        browser.eval("document.getElementById('app').hidden").await,
        true
    );
    assert_eq!(
        browser
            .eval("fetch('/api/alerts').then(r => r.status)")
            .await,
        401
    );
    browser
        .eval(
            "document.getElementById('username').value = 'admin'; \
             document.getElementById('password').value = 'wrong password'; \
             document.getElementById('signin').requestSubmit(); 0",
        )
        .await;
    browser
        .wait_for("document.getElementById('signin-error').textContent", |v| {
            v.as_str()
                .is_some_and(|t| t.contains("wrong user name or password"))
        })
        .await;
    browser
        .eval(&format!(
            "document.getElementById('username').value = 'admin'; \
             document.getElementById('password').value = '{ADMIN_PASSWORD}'; \
             document.getElementById('signin').requestSubmit(); 0"
        ))
        .await;
    browser
        .wait_for("document.getElementById('status').textContent", |v| {
            v == "live"
        })
        .await;
    let empty = browser.eval(ROWS).await;
    assert_eq!(empty, "[]", "no alerts before the replay");
    // Anything set now survives only if the page is never reloaded.
    browser.eval("window.__noReload = 42").await;

    let log = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpora/crowdsec-hub/tests/ssh-bf/ssh-bf.log"
    ));
    soc_connectors::replay::replay(
        &pipeline.log,
        &soc_connectors::replay::ReplayConfig::new(&log),
    )
    .await
    .expect("replay");

    // The log raises two incidents: the brute force and the user enumeration behind it.
    let brute_force = |rows: &[Vec<String>]| -> Option<Vec<String>> {
        rows.iter()
            .find(|r| r.get(1).is_some_and(|t| t.starts_with("SSH brute force")))
            .cloned()
    };
    let rows = browser
        .wait_for(ROWS, |v| {
            v.as_str()
                .and_then(|s| serde_json::from_str::<Vec<Vec<String>>>(s).ok())
                .is_some_and(|rows| {
                    rows.len() == 2
                        && brute_force(&rows).is_some_and(|r| r.get(4).is_some_and(|c| c == "6"))
                })
        })
        .await;
    let rows: Vec<Vec<String>> =
        serde_json::from_str(rows.as_str().expect("string")).expect("rows");
    let row = brute_force(&rows).expect("brute-force row");
    assert_eq!(row[0], "high");
    assert_eq!(row[2], "35.188.49.176");
    assert_eq!(row[3], "sd-126005");
    assert!(row[7].contains("T1110"), "{row:?}");
    assert!(
        row[8].starts_with("P2") && row[8].contains("fallback (disabled)"),
        "{row:?}"
    );
    assert!(
        row[8].contains("block_ip 35.188.49.176 [pending]"),
        "{row:?}"
    );

    // A model verdict pushed with an older revision replaces the verdict but keeps the newer
    // counts; a later fallback revision does not undo it. The page compares the ranks the
    // server sends (`Triage::rank`); it has no rule of its own.
    let id = browser
        .eval("[...alerts.values()].find(a => a.rule_id === 'soc/ssh-bruteforce').id")
        .await;
    let id = id.as_str().expect("alert id").to_string();
    let rank = browser
        .eval(&format!("typeof alerts.get(\"{id}\").triage.rank"))
        .await;
    assert_eq!(rank, "number", "the API sends each verdict's rank");
    let script = format!(
        r#"(() => {{
            const a = alerts.get("{id}");
            const model = Object.assign({{}}, a, {{ revision: a.revision - 1, count: 1,
                triage: Object.assign({{}}, a.triage, {{ source: "model", reason: undefined, verdict: "true_positive",
                    priority: 1, stage: 2, summary: "guessing <b>root</b>", model_verdict: "benign", decided_at: new Date().toISOString(),
                    rank: 2 ** 50 + 2 * 2 ** 47 + Date.now() }}) }});
            upsert(model, true);
            const late = Object.assign({{}}, a, {{ revision: a.revision + 1, count: a.count + 1,
                triage: Object.assign({{}}, a.triage, {{ decided_at: new Date(Date.now() + 1000).toISOString(),
                    rank: a.triage.rank + 1000 }}) }});
            upsert(late, true);
            const cells = [...document.getElementById("alert-{id}").children];
            return JSON.stringify([cells[4].textContent, cells[8].textContent, cells[8].title, cells[8].innerHTML.includes("<b>")]);
        }})()"#
    );
    let merged: Vec<Value> =
        serde_json::from_str(browser.eval(&script).await.as_str().expect("string")).expect("json");
    assert_eq!(merged[0], "7", "the newest counts stay: {merged:?}");
    assert!(
        merged[1].as_str().is_some_and(|t| t.starts_with("P1")
            && t.contains("true positive")
            && t.contains("model said benign")),
        "{merged:?}"
    );
    assert_eq!(
        merged[2], "Model's reading (unverified): guessing <b>root</b>",
        "model text shown as model text"
    );
    assert_eq!(merged[3], false, "model text never becomes markup");
    assert!(
        rows.iter()
            .any(|r| r[1].starts_with("SSH user enumeration")),
        "{rows:?}"
    );
    assert_eq!(row[9], "new", "a new alert is new: {row:?}");

    // Resolving it (over the API, with the page's session and CSRF token) reaches the page
    // as a workflow message; the analyst's text stays text.
    let script = format!(
        r#"fetch("/api/alerts/{id}", {{ method: "PATCH",
              headers: {{ "Content-Type": "application/json", "X-CSRF-Token": session.csrf_token }},
              body: JSON.stringify({{ status: "resolved", resolution: "false_positive",
                                      reason: "<img src=x onerror=alert(1)> our scanner" }}) }})
            .then(r => r.status)"#
    );
    assert_eq!(browser.eval(&script).await, 200);
    let cell = browser
        .wait_for(
            &format!(
                r#"(() => {{ const c = document.getElementById("alert-{id}").children[9];
                   return JSON.stringify([c.textContent, c.title, c.querySelector("img") !== null]); }})()"#
            ),
            |v| v.as_str().is_some_and(|s| s.contains("resolved")),
        )
        .await;
    let cell: Vec<Value> = serde_json::from_str(cell.as_str().expect("string")).expect("json");
    assert_eq!(cell[0], "resolvedfalse positive", "{cell:?}");
    assert_eq!(
        cell[1], "<img src=x onerror=alert(1)> our scanner",
        "{cell:?}"
    );
    assert_eq!(cell[2], false, "no markup from an analyst's text");

    // The socket drops; a change made meanwhile arrives when the page resumes from its cursor.
    browser.eval("socket.close(); 0").await;
    browser
        .wait_for("document.getElementById('status').textContent", |v| {
            v != "live"
        })
        .await;
    let script = format!(
        r#"fetch("/api/alerts/{id}", {{ method: "PATCH",
              headers: {{ "Content-Type": "application/json", "X-CSRF-Token": session.csrf_token }},
              body: JSON.stringify({{ status: "investigating", assignee: "admin" }}) }})
            .then(r => r.status)"#
    );
    assert_eq!(browser.eval(&script).await, 200);
    browser
        .wait_for(
            &format!(r#"document.getElementById("alert-{id}").children[9].textContent"#),
            |v| v == "investigating · admin",
        )
        .await;
    assert!(
        pipeline
            .hub
            .sessions_resumed
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1,
        "the page resumed rather than reloading"
    );
    assert_eq!(
        browser.eval("window.__noReload").await,
        42,
        "the page did not reload"
    );

    drop(browser);
    let _ = stop.send(true);
    pipeline.wait().await.expect("clean shutdown");
}

const ANALYST_PASSWORD: &str = "analyst test passphrase";
const VIEWER_PASSWORD: &str = "viewer test passphrase";
const XSS: &str = "<img src=x onerror=alert(1)>";

/// An alert for a user whose name is markup, stored and sent live as the processor would.
async fn hostile_alert(pipeline: &embedded::Pipeline) {
    use sea_orm::{EntityTrait, IntoActiveModel};
    let t = chrono::Utc::now();
    let a = soc_core::Alert {
        id: soc_core::Alert::incident_id("soc/ssh-bruteforce", XSS, t),
        rule_id: "soc/ssh-bruteforce".into(),
        title: format!("SSH brute force: user.name = {XSS}"),
        severity: soc_core::Severity::Medium,
        mitre: vec!["T1110".into()],
        group_by: "user.name".into(),
        group_key: XSS.into(),
        source_ip: Some("203.0.113.66".into()),
        host_name: Some("<b>web</b>".into()),
        count: 5,
        first_seen: t,
        last_seen: t,
        evidence: vec![json!({
            "message": format!("sshd[1]: Failed password for invalid user {XSS} from 203.0.113.66"),
            "user": {"name": XSS},
        })],
        revision: 5,
        indicators: vec![],
        incident_id: None,
        triage: None,
        created_at: t,
        updated_at: t,
    };
    soc_core::db::alert::Entity::insert(soc_core::db::alert::Model::from(&a).into_active_model())
        .exec_without_returning(&pipeline.db)
        .await
        .expect("insert");
    pipeline.hub.publish(&serde_json::to_vec(&a).expect("json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysts_work_alerts_in_the_dashboard_and_others_see_it_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pipeline, stop) = support::start_without_model(dir.path(), Some(ADMIN_PASSWORD)).await;
    let accounts = soc_gateway::auth::Accounts::new(pipeline.db.clone());
    for (name, pw, role) in [
        ("ana", ANALYST_PASSWORD, soc_gateway::auth::Role::Analyst),
        ("vic", VIEWER_PASSWORD, soc_gateway::auth::Role::Viewer),
    ] {
        accounts
            .create_user(name, pw, role, false, chrono::Utc::now())
            .await
            .expect("user");
    }
    let url = format!("http://{}/", pipeline.addr);

    let mut ana = Browser::launch().await;
    ana.open(&url).await;
    ana.wait_for("document.getElementById('signin').hidden", |v| v == false)
        .await;
    ana.desktop().await;
    ana.sign_in("ana", ANALYST_PASSWORD).await;
    let mut admin = Browser::launch().await;
    admin.open(&url).await;
    admin
        .wait_for("document.getElementById('signin').hidden", |v| v == false)
        .await;
    admin.desktop().await;
    admin.sign_in("admin", ADMIN_PASSWORD).await;

    let log = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpora/crowdsec-hub/tests/ssh-bf/ssh-bf.log"
    ));
    soc_connectors::replay::replay(
        &pipeline.log,
        &soc_connectors::replay::ReplayConfig::new(&log),
    )
    .await
    .expect("replay");
    for b in [&mut ana, &mut admin] {
        b.wait_for("document.querySelectorAll('#alerts tr').length", |v| v == 2)
            .await;
    }

    // Filter by severity, then search a source: one row, the brute force.
    ana.type_into("f-severity", "high").await;
    ana.wait_for("document.querySelectorAll('#alerts tr').length", |v| v == 1)
        .await;
    ana.type_into("f-q", "35.188.49").await;
    let rows = ana
        .wait_for(ROWS, |v| {
            v.as_str()
                .and_then(|s| serde_json::from_str::<Vec<Vec<String>>>(s).ok())
                .is_some_and(|r| r.len() == 1 && r[0][2] == "35.188.49.176")
        })
        .await;
    assert!(rows.as_str().expect("rows").contains("SSH brute force"));
    ana.type_into("f-q", "no-such-thing").await;
    ana.wait_for("document.querySelectorAll('#alerts tr').length", |v| v == 0)
        .await;
    ana.type_into("f-q", "35.188.49").await;
    ana.wait_for("document.querySelectorAll('#alerts tr').length", |v| v == 1)
        .await;

    // Open it: the raw lines that raised it, and the rule's description.
    ana.eval("document.querySelector('#alerts tr').click(); 0")
        .await;
    let evidence = ana
        .wait_for(
            "JSON.stringify([...document.querySelectorAll('#d-evidence pre')].map(p => p.textContent))",
            |v| v.as_str().is_some_and(|s| s.contains("Invalid user")),
        )
        .await;
    let lines: Vec<String> =
        serde_json::from_str(evidence.as_str().expect("string")).expect("lines");
    assert!(
        lines.len() >= 5 && lines.iter().all(|l| l.contains("from 35.188.49.176")),
        "the log lines that raised it: {lines:?}"
    );
    let desc = ana
        .eval("document.getElementById('d-rule-desc').textContent")
        .await;
    assert!(
        desc.as_str().is_some_and(|d| !d.is_empty()),
        "the rule's description"
    );
    ana.screenshot("analyst-detail").await;

    // Resolve it as a false positive, with a reason, from the detail.
    ana.type_into("d-resolution", "false_positive").await;
    ana.type_into("d-reason", "authorised scan, ticket 4411")
        .await;
    ana.eval("document.getElementById('d-resolve').requestSubmit(); 0")
        .await;
    ana.wait_for(
        "document.querySelector('#alerts tr') && document.querySelector('#alerts tr').children[9].textContent",
        |v| v == "resolvedfalse positive",
    )
    .await;
    ana.wait_for("document.getElementById('d-timeline').textContent", |v| {
        v.as_str().is_some_and(|t| {
            t.contains("ana set resolution")
                && t.contains("ticket 4411")
                && t.contains("6 events, high")
        })
    })
    .await;
    // The other analyst's browser sees it without reloading.
    admin.eval("window.__noReload = 7").await;
    // Give the overview its next refresh, so the screenshot shows the charts filled.
    admin
        .wait_for("document.getElementById('top-sources').textContent", |v| {
            v.as_str().is_some_and(|t| t.contains("35.188.49.176"))
        })
        .await;
    let row = admin
        .wait_for(ROWS, |v| {
            v.as_str()
                .is_some_and(|s| s.contains("resolvedfalse positive"))
        })
        .await;
    assert!(row.as_str().expect("rows").contains("35.188.49.176"));
    assert_eq!(admin.eval("window.__noReload").await, 7);
    let charts = admin
        .eval("['chart-alerts','chart-events','chart-latency','chart-cost'].map(id => document.getElementById(id).tagName).join()")
        .await;
    assert_eq!(charts, "svg,svg,svg,svg", "the overview's charts");
    admin
        .wait_for(
            "document.getElementById('chart-triage-caption').textContent",
            |v| v.as_str().is_some_and(|t| t.contains("cost $0.0000")),
        )
        .await;
    admin.screenshot("second-browser-live").await;

    // A user name that is markup stays text, in the list and in the detail.
    admin
        .eval("window.alert = () => { window.__xss = true; }; 0")
        .await;
    hostile_alert(&pipeline).await;
    let rows = admin
        .wait_for(ROWS, |v| v.as_str().is_some_and(|s| s.contains("onerror")))
        .await;
    assert!(rows.as_str().expect("rows").contains(XSS));
    admin
        .eval("[...document.querySelectorAll('#alerts tr')].find(r => r.textContent.includes('onerror')).click(); 0")
        .await;
    admin
        .wait_for("document.getElementById('d-evidence').textContent", |v| {
            v.as_str().is_some_and(|t| t.contains(XSS))
        })
        .await;
    assert_eq!(
        admin
            .eval("document.querySelectorAll('#alerts img, #detail img, #alerts b, #detail b').length")
            .await,
        0,
        "no markup from alert data"
    );
    assert_eq!(admin.eval("window.__xss === undefined").await, true);
    admin.screenshot("hostile-user-name").await;

    // The policy proposed blocking the brute force's source; the analyst approves it from
    // the pending list. No agent is enrolled for its host, so it fails, and every open
    // dashboard sees it leave the list live.
    const PENDING: &str =
        "[...document.querySelectorAll('#approvals li')].map(l => l.textContent).join('|')";
    for b in [&mut ana, &mut admin] {
        b.wait_for(PENDING, |v| {
            v.as_str()
                .is_some_and(|s| s.contains("block_ip 35.188.49.176 on sd-126005"))
        })
        .await;
    }
    ana.screenshot("pending-approval").await;
    ana.eval("document.querySelector('#approvals li button.approve').click(); 0")
        .await;
    admin
        .wait_for("document.getElementById('approvals-box').hidden", |v| {
            v == true
        })
        .await;
    let token = support::token(&pipeline).await;
    let actions = support::get_json(
        &format!("http://{}/api/actions?alert_id=", pipeline.addr)
            .replace("?alert_id=", "?state=failed"),
        &token,
    )
    .await;
    let failed = &actions[0];
    assert_eq!(failed["target"], "35.188.49.176", "{actions}");
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no agent is enrolled for host `sd-126005`")),
        "{failed}"
    );
    let detail = support::get_json(
        &format!(
            "http://{}/api/actions/{}",
            pipeline.addr,
            failed["id"].as_str().unwrap()
        ),
        &token,
    )
    .await;
    assert_eq!(detail["transitions"][1]["actor"], "user:ana", "{detail}");

    // A viewer reads the same detail with no way to change it.
    let mut vic = Browser::launch().await;
    vic.open(&url).await;
    vic.wait_for("document.getElementById('signin').hidden", |v| v == false)
        .await;
    vic.sign_in("vic", VIEWER_PASSWORD).await;
    vic.wait_for("document.querySelectorAll('#alerts tr').length", |v| v == 3)
        .await;
    vic.eval("document.querySelector('#alerts tr').click(); 0")
        .await;
    vic.wait_for("document.getElementById('detail').hidden", |v| v == false)
        .await;
    assert_eq!(
        vic.eval("[...document.querySelectorAll('.workflow-actions')].filter(e => !e.hidden && e.offsetParent !== null).length")
            .await,
        0,
        "no workflow buttons for a viewer"
    );
    vic.screenshot("viewer-detail").await;

    // At 390 px wide the page fits: no sideways scrolling.
    vic.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    )
    .await;
    vic.eval("document.getElementById('detail-close').click(); 0")
        .await;
    let width = vic
        .wait_for("document.documentElement.scrollWidth", |v| {
            v.as_u64().is_some_and(|w| w <= 390)
        })
        .await;
    assert!(width.as_u64().is_some_and(|w| w <= 390), "{width}");
    vic.screenshot("phone-390px").await;
    let rows = vic.rows().await;
    assert_eq!(rows.len(), 3);

    drop((ana, admin, vic));
    let _ = stop.send(true);
    pipeline.wait().await.expect("clean shutdown");
}

/// The header counts every alert that matches, not only the newest 200 the list loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_counts_alerts_beyond_the_loaded_page() {
    use sea_orm::{EntityTrait, IntoActiveModel};
    let dir = tempfile::tempdir().expect("tempdir");
    let (pipeline, stop) = support::start_without_model(dir.path(), Some(ADMIN_PASSWORD)).await;
    let t = chrono::Utc::now();
    let stored: Vec<_> = (0..217u32)
        .map(|i| {
            let ip = format!("198.18.{}.{}", i / 200, i % 200 + 1);
            let mut a = stored_alert("soc/ssh-bruteforce", &ip, t);
            a.title = format!("SSH brute force: source.ip = {ip}");
            a.mitre = vec!["T1110".into()];
            a.first_seen = t - chrono::Duration::seconds(i64::from(i));
            soc_core::db::alert::Model::from(&a).into_active_model()
        })
        .collect();
    soc_core::db::alert::Entity::insert_many(stored)
        .exec_without_returning(&pipeline.db)
        .await
        .expect("insert");

    let mut browser = Browser::launch().await;
    browser.open(&format!("http://{}/", pipeline.addr)).await;
    browser
        .wait_for("document.getElementById('signin').hidden", |v| v == false)
        .await;
    browser.sign_in("admin", ADMIN_PASSWORD).await;
    browser
        .wait_for("document.getElementById('counts').textContent", |v| {
            v == "200 of 217 alerts shown"
        })
        .await;
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#alerts tr').length")
            .await,
        200
    );
    drop(browser);
    let _ = stop.send(true);
    pipeline.wait().await.expect("clean shutdown");
}

/// An attacker's alerts of several rules are one row, which opens onto the other rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_attackers_rule_hits_are_one_row() {
    use sea_orm::{EntityTrait, IntoActiveModel};
    let dir = tempfile::tempdir().expect("tempdir");
    let (pipeline, stop) = support::start_without_model(dir.path(), Some(ADMIN_PASSWORD)).await;
    let t = chrono::Utc::now();
    let scanner = uuid::Uuid::new_v4();
    let alert = |rule: &str, ip: &str, severity, incident: Option<uuid::Uuid>| {
        let mut a = stored_alert(rule, ip, t);
        a.mitre = vec!["T1595".into()];
        a.count = 12;
        a.revision = 12;
        a.severity = severity;
        a.incident_id = incident;
        soc_core::db::alert::Model::from(&a).into_active_model()
    };
    use soc_core::Severity::{High, Medium};
    let stored = vec![
        alert("soc/http-probing", "203.0.113.7", Medium, Some(scanner)),
        alert(
            "soc/http-sensitive-files",
            "203.0.113.7",
            High,
            Some(scanner),
        ),
        alert(
            "soc/http-admin-interface-probing",
            "203.0.113.7",
            Medium,
            Some(scanner),
        ),
        alert("soc/ssh-bruteforce", "198.51.100.9", High, None),
    ];
    soc_core::db::alert::Entity::insert_many(stored)
        .exec_without_returning(&pipeline.db)
        .await
        .expect("insert");

    let mut browser = Browser::launch().await;
    browser.open(&format!("http://{}/", pipeline.addr)).await;
    browser
        .wait_for("document.getElementById('signin').hidden", |v| v == false)
        .await;
    browser.desktop().await;
    browser.sign_in("admin", ADMIN_PASSWORD).await;
    browser
        .wait_for("document.getElementById('counts').textContent", |v| {
            v == "4 alerts in 2 incidents"
        })
        .await;
    const VISIBLE: &str = "JSON.stringify([...document.querySelectorAll('#alerts tr')].filter(r => !r.hidden).map(r => r.children[1].textContent))";
    let visible = browser.eval(VISIBLE).await;
    let visible: Vec<String> =
        serde_json::from_str(visible.as_str().expect("string")).expect("rows");
    assert_eq!(visible.len(), 2, "one row per attacker: {visible:?}");
    let lead = visible
        .iter()
        .find(|t| t.contains("203.0.113.7"))
        .expect("the scanner's row");
    assert!(
        lead.starts_with("soc/http-sensitive-files") && lead.ends_with("+2 rules"),
        "the most severe hit leads and counts the others: {lead}"
    );
    // Opening the row shows the other two rules right behind it.
    browser
        .eval("document.querySelector('#alerts button.rules').click(); 0")
        .await;
    let opened = browser
        .wait_for(VISIBLE, |v| {
            v.as_str()
                .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
                .is_some_and(|r| r.len() == 4)
        })
        .await;
    let opened: Vec<String> = serde_json::from_str(opened.as_str().expect("string")).expect("rows");
    let at = opened
        .iter()
        .position(|t| t.starts_with("soc/http-sensitive-files"))
        .expect("lead");
    assert!(
        opened[at + 1].contains("203.0.113.7") && opened[at + 2].contains("203.0.113.7"),
        "{opened:?}"
    );
    drop(browser);
    let _ = stop.send(true);
    pipeline.wait().await.expect("clean shutdown");
}

/// A medium alert of `rule` against `ip` at `t`, count 5, as the tests store it directly.
fn stored_alert(rule: &str, ip: &str, t: chrono::DateTime<chrono::Utc>) -> soc_core::Alert {
    soc_core::Alert {
        id: soc_core::Alert::incident_id(rule, ip, t),
        rule_id: rule.into(),
        title: format!("{rule}: source.ip = {ip}"),
        severity: soc_core::Severity::Medium,
        mitre: vec![],
        group_by: "source.ip".into(),
        group_key: ip.into(),
        source_ip: Some(ip.into()),
        host_name: Some("web".into()),
        count: 5,
        first_seen: t,
        last_seen: t,
        evidence: vec![],
        revision: 5,
        indicators: vec![],
        incident_id: None,
        triage: None,
        created_at: t,
        updated_at: t,
    }
}
