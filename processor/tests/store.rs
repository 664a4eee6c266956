//! The processor's transactional store on SQLite and PostgreSQL.

use chrono::{TimeZone, Utc};
use sea_orm::EntityTrait;
use soc_core::db::llm_call;
use soc_core::{Alert, Severity, Triage, Verdict, VerdictSource};
use soc_migrations::testing::TestDb;
use soc_processor::rules::detector::StateChanges;
use soc_processor::store::Store;
use soc_processor::suppress::Hidden;
use soc_processor::triage::service::CallRecord;
use soc_processor::triage::updates::{record_call, store_verdict};

fn alert(count: u64) -> Alert {
    let first = Utc
        .with_ymd_and_hms(2026, 2, 12, 14, 10, 21)
        .single()
        .expect("time");
    Alert {
        id: Alert::incident_id("soc/ssh-bruteforce", "35.188.49.176", first),
        rule_id: "soc/ssh-bruteforce".into(),
        title: "SSH brute force: source.ip = 35.188.49.176".into(),
        severity: Severity::High,
        mitre: vec!["T1110".into()],
        group_by: "source.ip".into(),
        group_key: "35.188.49.176".into(),
        source_ip: Some("35.188.49.176".into()),
        host_name: Some("sd-126005".into()),
        count,
        first_seen: first,
        last_seen: first + chrono::Duration::seconds(count as i64),
        evidence: vec![serde_json::json!({"user": {"name": "pascal"}})],
        revision: count,
        indicators: Vec::new(),
        incident_id: None,
        triage: None,
        created_at: first,
        updated_at: first,
    }
}

#[tokio::test]
async fn batch_commit_is_an_upsert_with_state_and_checkpoint() {
    for db in TestDb::all().await {
        let store = Store::new(db.conn.clone());
        let b = db.backend;
        assert_eq!(store.checkpoint("p", 0).await.expect("read"), None, "{b}");

        let changes = StateChanges {
            upserts: vec![(
                "soc/ssh-bruteforce".into(),
                "1.2.3.4".into(),
                "{\"x\":1}".into(),
            )],
            deletes: vec![],
        };
        store
            .commit_batch("p", 0, 10, &[alert(5)], &changes, &Hidden::new())
            .await
            .expect("commit 1");
        let cp = store
            .checkpoint("p", 0)
            .await
            .expect("read")
            .expect("checkpoint");
        assert_eq!(cp.next_offset, 10, "{b}");
        assert_eq!(cp.unpublished, vec![alert(5).id.to_string()], "{b}");
        assert_eq!(
            store.rule_state("p", 0).await.expect("state"),
            vec![(
                "soc/ssh-bruteforce".into(),
                "1.2.3.4".into(),
                "{\"x\":1}".into()
            )],
            "{b}"
        );

        // The same incident again (a replay, or an update): one row, newest values.
        let changes = StateChanges {
            upserts: vec![],
            deletes: vec![("soc/ssh-bruteforce".into(), "1.2.3.4".into())],
        };
        let incidents = store
            .commit_batch("p", 0, 20, &[alert(7)], &changes, &Hidden::new())
            .await
            .expect("commit 2");
        let stored = store
            .alerts_by_id(&[alert(7).id.to_string()])
            .await
            .expect("alerts");
        assert_eq!(stored.len(), 1, "{b}");
        let mut expected = alert(7);
        expected.incident_id = incidents.get(&expected.id).copied();
        assert!(
            expected.incident_id.is_some(),
            "{b}: filed under an incident"
        );
        assert_eq!(stored[0], expected, "{b}: round trip is exact");
        assert!(
            store.rule_state("p", 0).await.expect("state").is_empty(),
            "{b}"
        );
        assert_eq!(
            store
                .checkpoint("p", 0)
                .await
                .expect("read")
                .map(|c| c.next_offset),
            Some(20),
            "{b}"
        );
        // Another partition has its own checkpoint.
        assert_eq!(store.checkpoint("p", 1).await.expect("read"), None, "{b}");
    }
}

fn triage(source: VerdictSource, stage: u8, priority: u8) -> Triage {
    Triage {
        source,
        reason: (source == VerdictSource::Fallback).then(|| "pending".into()),
        verdict: Verdict::Suspicious,
        confidence: 0.5,
        needs_investigation: false,
        priority,
        stage,
        summary: None,
        risk: None,
        attack_chain: vec![],
        mitre: vec![],
        actions: vec![],
        model: None,
        model_verdict: None,
        fingerprint: "f".into(),
        decided_at: Utc::now(),
    }
}

#[tokio::test]
async fn a_model_verdict_is_never_overwritten_by_the_fallback() {
    for db in TestDb::all().await {
        let store = Store::new(db.conn.clone());
        let b = db.backend;
        let mut a = alert(5);
        a.triage = Some(triage(VerdictSource::Fallback, 1, 2));
        store
            .commit_batch(
                "p",
                0,
                1,
                std::slice::from_ref(&a),
                &StateChanges::default(),
                &Hidden::new(),
            )
            .await
            .expect("commit");
        let read = |id: String| {
            let store = store.clone();
            async move { store.alerts_by_id(&[id]).await.expect("read")[0].clone() }
        };
        assert_eq!(read(a.id.to_string()).await.triage, a.triage, "{b}");

        // The model's verdict arrives.
        let mut judged = a.clone();
        judged.triage = Some(triage(VerdictSource::Model, 2, 1));
        store_verdict(&db.conn, &judged)
            .await
            .expect("store verdict");
        // A later revision from the processor still carries a fallback: the row keeps the model's.
        let mut later = alert(9);
        later.triage = Some(triage(VerdictSource::Fallback, 1, 2));
        store
            .commit_batch(
                "p",
                0,
                2,
                &[later],
                &StateChanges::default(),
                &Hidden::new(),
            )
            .await
            .expect("commit");
        // So does a late fallback from the triage writer.
        store_verdict(&db.conn, &a).await.expect("store verdict");
        let row = read(a.id.to_string()).await;
        assert_eq!(row.count, 9, "{b}: counts still follow the processor");
        assert_eq!(row.triage, judged.triage, "{b}");

        // Calls are recorded with tokens, cost and latency.
        record_call(
            &db.conn,
            &CallRecord {
                provider: "groq".into(),
                model: "openai/gpt-oss-20b".into(),
                stage: "triage",
                incidents: 3,
                attempts: 2,
                prompt_tokens: 1200,
                completion_tokens: 150,
                cost_usd: Some(0.000135),
                latency_ms: 420,
                status: "ok",
                error: None,
            },
        )
        .await
        .expect("record call");
        let calls = llm_call::Entity::find().all(&db.conn).await.expect("calls");
        assert_eq!(calls.len(), 1, "{b}");
        assert_eq!(
            (
                calls[0].prompt_tokens,
                calls[0].completion_tokens,
                calls[0].latency_ms
            ),
            (1200, 150, 420),
            "{b}"
        );
        assert_eq!(calls[0].cost_usd, Some(0.000135), "{b}");
    }
}

#[tokio::test]
async fn a_resolved_incident_reopens_on_new_events_but_not_on_a_replay() {
    use sea_orm::{ActiveModelTrait, ColumnTrait, IntoActiveModel, QueryFilter, Set};
    use soc_core::db::{alert as alert_row, alert_event};
    for db in TestDb::all().await {
        let store = Store::new(db.conn.clone());
        let b = db.backend;
        let id = alert(5).id.to_string();
        let none = StateChanges::default();
        store
            .commit_batch("p", 0, 1, &[alert(5)], &none, &Hidden::new())
            .await
            .expect("commit");
        let row = alert_row::Entity::find_by_id(id.clone())
            .one(&db.conn)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(row.status, "new", "{b}");
        let mut m = row.into_active_model();
        m.status = Set("resolved".into());
        m.assignee = Set(Some("ana".into()));
        m.resolution = Set(Some("benign".into()));
        m.resolution_reason = Set(Some("pen test".into()));
        m.update(&db.conn).await.expect("resolve");

        let row = |db: &TestDb| {
            let conn = db.conn.clone();
            let id = id.clone();
            async move {
                alert_row::Entity::find_by_id(id)
                    .one(&conn)
                    .await
                    .expect("read")
                    .expect("row")
            }
        };
        // The same incident with no new events (a replay): the analyst's decision stands.
        store
            .commit_batch("p", 0, 2, &[alert(5)], &none, &Hidden::new())
            .await
            .expect("replay");
        let r = row(&db).await;
        assert_eq!(r.status, "resolved", "{b}");
        assert_eq!(r.resolution.as_deref(), Some("benign"), "{b}");

        // Two more events: open again, the resolution gone, the assignee kept, one history row.
        store
            .commit_batch("p", 0, 3, &[alert(7)], &none, &Hidden::new())
            .await
            .expect("new events");
        let r = row(&db).await;
        assert_eq!(r.status, "new", "{b}");
        assert_eq!(r.resolution, None, "{b}");
        assert_eq!(r.resolution_reason, None, "{b}");
        assert_eq!(r.assignee.as_deref(), Some("ana"), "{b}");
        assert_eq!(r.count, 7, "{b}");
        let events = alert_event::Entity::find()
            .filter(alert_event::Column::AlertId.eq(id.as_str()))
            .all(&db.conn)
            .await
            .expect("events");
        assert_eq!(events.len(), 1, "{b}");
        assert_eq!(events[0].kind, "reopened", "{b}");
        assert_eq!(events[0].actor, "system", "{b}");
        assert_eq!(
            events[0].text.as_deref(),
            Some("2 new events after it was resolved"),
            "{b}"
        );

        // Once open, further events change nothing in the workflow.
        store
            .commit_batch("p", 0, 4, &[alert(9)], &none, &Hidden::new())
            .await
            .expect("more");
        let n = alert_event::Entity::find()
            .filter(alert_event::Column::AlertId.eq(id.as_str()))
            .all(&db.conn)
            .await
            .expect("events")
            .len();
        assert_eq!(n, 1, "{b}");
    }
}

#[tokio::test]
async fn suppressions_withhold_matching_updates_and_count_them() {
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    use soc_core::clock::Clock;
    use soc_core::db::suppression;
    use soc_processor::suppress::{Suppressions, REFRESH_EVERY};
    for db in TestDb::all().await {
        let store = Store::new(db.conn.clone());
        let b = db.backend;
        let now = Utc::now();
        let muted = suppression::Model {
            id: "0c6a3c1e-58e4-4b7e-9a57-3f0b7d5d2c11".into(),
            rule_id: "soc/ssh-bruteforce".into(),
            field: "source.ip".into(),
            value: "35.188.49.176".into(),
            until: now + chrono::Duration::hours(1),
            reason: "our scanner".into(),
            created_by: "ana".into(),
            created_at: now,
            revoked_by: None,
            revoked_at: None,
            hidden: 0,
            last_hidden_at: None,
        };
        let mut expired = muted.clone();
        expired.id = "9d1f5a4e-2b7c-4d8e-8f0a-6e3c2b1a0f99".into();
        expired.until = now - chrono::Duration::minutes(1);
        for m in [&muted, &expired] {
            suppression::Entity::insert(m.clone().into_active_model())
                .exec_without_returning(&db.conn)
                .await
                .expect("insert");
        }
        // Fast enough to keep the test short, slow enough that the refresh interval (0.5 s real)
        // outlasts the statements between two refreshes.
        let clock = Clock::fast(10);
        let mut sup = Suppressions::new(db.conn.clone(), clock);
        sup.refresh(now).await;
        assert_eq!(sup.len(), 1, "{b}: the expired one is not in force");

        let mut other = alert(3);
        other.source_ip = Some("198.51.100.7".into());
        other.group_key = "198.51.100.7".into();
        other.id = Alert::incident_id("soc/ssh-bruteforce", "198.51.100.7", other.first_seen);
        let (kept, hidden) = sup.apply(vec![alert(5), other.clone()], now);
        assert_eq!(kept, vec![other.clone()], "{b}");
        assert_eq!(hidden.get(&muted.id), Some(&1), "{b}");
        for offset in [1, 2] {
            store
                .commit_batch("p", 0, offset, &kept, &StateChanges::default(), &hidden)
                .await
                .expect("commit");
        }
        let row = suppression::Entity::find_by_id(muted.id.clone())
            .one(&db.conn)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(row.hidden, 2, "{b}: counted in each batch's transaction");
        assert!(row.last_hidden_at.is_some(), "{b}");
        assert!(
            store
                .alerts_by_id(&[alert(5).id.to_string()])
                .await
                .expect("alerts")
                .is_empty(),
            "{b}: a withheld update is not stored"
        );

        // Revoked: applied once the list is read again, not before.
        let mut m = row.into_active_model();
        m.revoked_at = Set(Some(now));
        m.revoked_by = Set(Some("ana".into()));
        m.update(&db.conn).await.expect("revoke");
        sup.refresh(now).await;
        assert_eq!(sup.len(), 1, "{b}: still the cached list");
        clock.sleep(REFRESH_EVERY).await;
        sup.refresh(now).await;
        assert!(sup.is_empty(), "{b}");
        let (kept, hidden) = sup.apply(vec![alert(6)], now);
        assert_eq!(kept.len(), 1, "{b}");
        assert!(hidden.is_empty(), "{b}");
    }
}

#[tokio::test]
async fn an_incident_keeps_its_milestones_first_doublings_and_severity_changes() {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
    use soc_core::db::alert_revision;
    for db in TestDb::all().await {
        let store = Store::new(db.conn.clone());
        let b = db.backend;
        let none = StateChanges::default();
        let mut critical = alert(17);
        critical.severity = Severity::Critical;
        // 5 (first), 7 (same power of two: nothing), 9 (doubled past 8), 9 again (a replay:
        // nothing), 17 critical (doubled and severity changed: one row).
        for (offset, a) in [alert(5), alert(7), alert(9), alert(9), critical]
            .into_iter()
            .enumerate()
        {
            store
                .commit_batch("p", 0, offset as u64 + 1, &[a], &none, &Hidden::new())
                .await
                .expect("commit");
        }
        let rows: Vec<(i64, String)> = alert_revision::Entity::find()
            .filter(alert_revision::Column::AlertId.eq(alert(5).id.to_string()))
            .order_by_asc(alert_revision::Column::Revision)
            .all(&db.conn)
            .await
            .expect("rows")
            .into_iter()
            .map(|r| (r.count, r.severity))
            .collect();
        assert_eq!(
            rows,
            vec![
                (5, "high".to_string()),
                (9, "high".to_string()),
                (17, "critical".to_string())
            ],
            "{b}"
        );
    }
}

/// An alert of `rule` against `ip` from `start` (minutes after 10:00) for `minutes`.
fn hit(rule: &str, ip: &str, start: i64, minutes: i64) -> Alert {
    let t0 = Utc
        .with_ymd_and_hms(2026, 3, 1, 10, 0, 0)
        .single()
        .expect("time");
    let first = t0 + chrono::Duration::minutes(start);
    let mut a = alert(3);
    a.id = Alert::incident_id(rule, ip, first);
    a.rule_id = rule.into();
    a.group_key = ip.into();
    a.source_ip = Some(ip.into());
    a.first_seen = first;
    a.last_seen = first + chrono::Duration::minutes(minutes);
    a
}

#[tokio::test]
async fn one_attackers_alerts_of_several_rules_are_one_incident() {
    for db in TestDb::all().await {
        let store = Store::new(db.conn.clone());
        let b = db.backend;
        let probing = hit("soc/http-probing", "203.0.113.7", 0, 5);
        let admin = hit("soc/http-admin-interface-probing", "203.0.113.7", 2, 10);
        let other = hit("soc/http-probing", "198.51.100.9", 1, 5);
        let first = store
            .commit_batch(
                "p",
                0,
                1,
                &[probing.clone(), admin.clone(), other.clone()],
                &StateChanges::default(),
                &Hidden::new(),
            )
            .await
            .expect("commit");
        assert_eq!(
            first[&probing.id], first[&admin.id],
            "{b}: same attacker, same incident"
        );
        assert_ne!(
            first[&probing.id], first[&other.id],
            "{b}: another attacker"
        );
        // Later, in another batch: within an hour of the last hit it joins; after a quiet
        // hour and more it opens a new incident.
        let sqli = hit("soc/http-sqli-probing", "203.0.113.7", 60, 1);
        let again = store
            .commit_batch(
                "p",
                0,
                2,
                std::slice::from_ref(&sqli),
                &StateChanges::default(),
                &Hidden::new(),
            )
            .await
            .expect("commit");
        assert_eq!(
            again[&sqli.id], first[&probing.id],
            "{b}: joins across batches"
        );
        let late = hit("soc/http-probing", "203.0.113.7", 200, 1);
        let later = store
            .commit_batch(
                "p",
                0,
                3,
                std::slice::from_ref(&late),
                &StateChanges::default(),
                &Hidden::new(),
            )
            .await
            .expect("commit");
        assert_ne!(
            later[&late.id], first[&probing.id],
            "{b}: a new incident after a quiet hour"
        );
        // Replayed after a crash, in another order, an alert keeps its incident.
        let replay = store
            .commit_batch(
                "p",
                0,
                1,
                &[admin.clone(), probing.clone()],
                &StateChanges::default(),
                &Hidden::new(),
            )
            .await
            .expect("commit");
        assert_eq!(replay[&admin.id], first[&admin.id], "{b}");
        assert_eq!(replay[&probing.id], first[&probing.id], "{b}");
        // The stored alerts carry it.
        let stored = store
            .alerts_by_id(&[sqli.id.to_string()])
            .await
            .expect("read");
        assert_eq!(stored[0].incident_id, Some(first[&probing.id]), "{b}");
    }
}
