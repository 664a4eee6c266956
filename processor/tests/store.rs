//! The processor's transactional store on SQLite and PostgreSQL.

use chrono::{TimeZone, Utc};
use soc_core::{Alert, Severity};
use soc_migrations::testing::TestDb;
use soc_processor::rules::threshold::StateChanges;
use soc_processor::store::Store;

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
