//! The processor's transactional store on SQLite and PostgreSQL.

use chrono::{TimeZone, Utc};
use sea_orm::EntityTrait;
use soc_core::db::llm_call;
use soc_core::{Alert, Severity, Triage, Verdict, VerdictSource};
use soc_migrations::testing::TestDb;
use soc_processor::rules::detector::StateChanges;
use soc_processor::store::Store;
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
            .commit_batch("p", 0, 10, &[alert(5)], &changes)
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
        store
            .commit_batch("p", 0, 20, &[alert(7)], &changes)
            .await
            .expect("commit 2");
        let stored = store
            .alerts_by_id(&[alert(7).id.to_string()])
            .await
            .expect("alerts");
        assert_eq!(stored.len(), 1, "{b}");
        assert_eq!(stored[0], alert(7), "{b}: round trip is exact");
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
            .commit_batch("p", 0, 2, &[later], &StateChanges::default())
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
