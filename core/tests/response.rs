//! Actions and the audit chain on SQLite and PostgreSQL.
#![cfg(feature = "response")]

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, TransactionTrait};
use soc_core::command::Action;
use soc_core::db::{action, audit_entry};
use soc_core::response::actions::{self, history, propose, transition_now};
use soc_core::response::audit::{self, AuditError};
use soc_core::response::{ActionState, Change, NewAction, ProposedBy};
use soc_migrations::testing::TestDb;
use uuid::Uuid;

async fn backends() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite().await];
    dbs.extend(TestDb::postgres().await);
    dbs
}

fn block(alert: Uuid, ip: &str) -> NewAction {
    NewAction {
        alert_id: Some(alert),
        action: Action::BlockIp {
            targets: vec![ip.parse().unwrap()],
            ttl_secs: 3600,
        },
        target: ip.into(),
        target_field: "source.ip".into(),
        target_host: "web-1".into(),
        proposed_by: ProposedBy::Policy,
        proposer: "soc/ssh-bruteforce".into(),
        routed: false,
    }
}

async fn propose_now(db: &DatabaseConnection, new: &NewAction) -> Option<action::Model> {
    let txn = db.begin().await.unwrap();
    let a = propose(&txn, new, Utc::now()).await.unwrap();
    txn.commit().await.unwrap();
    a
}

#[tokio::test]
async fn one_action_per_alert_kind_and_target_with_checked_transitions() {
    for t in backends().await {
        let db = &t.conn;
        let alert = Uuid::from_u128(7);
        let a = propose_now(db, &block(alert, "198.51.100.7"))
            .await
            .unwrap();
        assert_eq!(a.state, "proposed", "{}", t.backend);
        // A replay, a restart, a second verdict: the same proposal adds nothing.
        assert!(propose_now(db, &block(alert, "198.51.100.7"))
            .await
            .is_none());
        assert!(propose_now(db, &block(alert, "198.51.100.8"))
            .await
            .is_some());
        assert_eq!(action::Entity::find().all(db).await.unwrap().len(), 2);

        // Not from proposed to applied.
        let e = transition_now(
            db,
            &a.id,
            ActionState::Applied,
            "agent:x",
            Change::default(),
            Utc::now(),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("cannot become applied"), "{e}");
        for (to, actor) in [
            (ActionState::Approved, "user:alice"),
            (ActionState::Dispatched, "gateway"),
            (ActionState::Applied, "agent:web-1"),
            (ActionState::Reverted, "user:bob"),
        ] {
            let m = transition_now(db, &a.id, to, actor, Change::default(), Utc::now())
                .await
                .unwrap();
            assert_eq!(m.state, to.as_str());
        }
        // Final.
        assert!(transition_now(
            db,
            &a.id,
            ActionState::Approved,
            "user:alice",
            Change::default(),
            Utc::now()
        )
        .await
        .is_err());
        let h = history(db, &a.id).await.unwrap();
        let steps: Vec<(Option<&str>, &str, &str)> = h
            .iter()
            .map(|s| {
                (
                    s.from_state.as_deref(),
                    s.to_state.as_str(),
                    s.actor.as_str(),
                )
            })
            .collect();
        assert_eq!(
            steps,
            [
                (None, "proposed", "policy:soc/ssh-bruteforce"),
                (Some("proposed"), "approved", "user:alice"),
                (Some("approved"), "dispatched", "gateway"),
                (Some("dispatched"), "applied", "agent:web-1"),
                (Some("applied"), "reverted", "user:bob"),
            ]
        );
        // Two proposals and four transitions, each audited.
        assert_eq!(audit::verify(db).await, Ok(6), "{}", t.backend);
        actions::set_switch(db, false, "user:admin", Utc::now())
            .await
            .unwrap();
        assert!(!actions::switch_enabled(db).await.unwrap());
        assert_eq!(audit::verify(db).await, Ok(7));
    }
}

async fn chain_of(db: &DatabaseConnection, n: usize) {
    for i in 0..n {
        propose_now(db, &block(Uuid::from_u128(100 + i as u128), "203.0.113.9")).await;
    }
    assert_eq!(audit::verify(db).await, Ok(n as i64));
}

async fn exec(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql).await.unwrap();
}

#[tokio::test]
async fn audit_verify_finds_every_kind_of_tampering() {
    for make in 0..5 {
        for t in backends().await {
            let db = &t.conn;
            chain_of(db, 5).await;
            let (what, want): (&str, fn(&AuditError) -> bool) = match make {
                0 => {
                    exec(
                        db,
                        "UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 3",
                    )
                    .await;
                    ("edited", |e| *e == AuditError::Edited { seq: 3 })
                }
                1 => {
                    exec(db, "DELETE FROM audit_log WHERE seq = 2").await;
                    ("removed", |e| {
                        *e == AuditError::Missing {
                            expected: 2,
                            found: 3,
                        }
                    })
                }
                2 => {
                    // Swap entries 2 and 3, renumbered so the sequence looks whole.
                    exec(db, "UPDATE audit_log SET seq = 100 WHERE seq = 2").await;
                    exec(db, "UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
                    exec(db, "UPDATE audit_log SET seq = 3 WHERE seq = 100").await;
                    ("reordered", |e| {
                        matches!(e, AuditError::Unlinked { .. } | AuditError::Edited { .. })
                    })
                }
                3 => {
                    exec(db, "DELETE FROM audit_log WHERE seq = 5").await;
                    ("truncated", |e| {
                        *e == AuditError::Truncated { last: 4, head: 5 }
                    })
                }
                _ => {
                    // An edit with its own hash recomputed still breaks the next link.
                    let e3 = audit_entry::Entity::find_by_id(3i64)
                        .one(db)
                        .await
                        .unwrap()
                        .unwrap();
                    let forged = audit::entry_hash(
                        &e3.prev_hash,
                        3,
                        e3.at,
                        "user:mallory",
                        &e3.kind,
                        &e3.subject,
                        &e3.detail,
                    );
                    exec(db, &format!("UPDATE audit_log SET actor = 'user:mallory', hash = '{forged}' WHERE seq = 3")).await;
                    ("rehashed", |e| *e == AuditError::Unlinked { seq: 4 })
                }
            };
            let r = audit::verify(db).await;
            assert!(
                matches!(&r, Err(e) if want(e)),
                "{what} on {}: {r:?}",
                t.backend
            );
        }
    }
}

#[tokio::test]
async fn concurrent_appends_keep_one_chain() {
    for t in backends().await {
        let mut tasks = Vec::new();
        for w in 0..4u128 {
            let db = t.conn.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10u128 {
                    let txn = db.begin().await.unwrap();
                    propose(
                        &txn,
                        &block(Uuid::from_u128(w * 1000 + i), "203.0.113.1"),
                        Utc::now(),
                    )
                    .await
                    .unwrap();
                    txn.commit().await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(audit::verify(&t.conn).await, Ok(40), "{}", t.backend);
    }
}

#[tokio::test]
async fn many_at_once_propose_once_move_only_what_may_move_and_chain_the_audit() {
    for t in backends().await {
        let db = &t.conn;
        let alert = Uuid::from_u128(9);
        let existing = propose_now(db, &block(alert, "198.51.100.1"))
            .await
            .unwrap();
        // Already proposed, twice in the batch, and 449 new ones (more than a chunk).
        let mut news = vec![block(alert, "198.51.100.1")];
        for i in 0..449u32 {
            news.push(block(alert, &format!("10.9.{}.{}", i / 200, i % 200 + 1)));
        }
        news.push(block(alert, "10.9.0.1"));
        let refs: Vec<&NewAction> = news.iter().collect();
        let txn = db.begin().await.unwrap();
        let created = actions::propose_many(&txn, &refs, Utc::now())
            .await
            .unwrap();
        txn.commit().await.unwrap();
        assert_eq!(created.len(), 449, "{}", t.backend);
        assert!(!created.iter().any(|a| a.id == existing.id));

        // One of them rejected first: the bulk approval leaves it rejected.
        transition_now(
            db,
            &created[0].id,
            ActionState::Rejected,
            "user:bob",
            Change::default(),
            Utc::now(),
        )
        .await
        .unwrap();
        let moves: Vec<actions::Move> = created
            .iter()
            .map(|a| actions::Move {
                id: a.id.clone(),
                change: Change {
                    detail: Some("bulk".into()),
                    ..Change::default()
                },
            })
            .chain(std::iter::once(actions::Move {
                id: "no-such-action".into(),
                change: Change::default(),
            }))
            .collect();
        let txn = db.begin().await.unwrap();
        let moved = actions::transition_many(
            &txn,
            &moves,
            ActionState::Approved,
            "user:alice",
            Utc::now(),
        )
        .await
        .unwrap();
        txn.commit().await.unwrap();
        assert_eq!(moved.len(), 448, "{}", t.backend);
        assert!(moved
            .iter()
            .all(|a| a.state == "approved" && a.reason.as_deref() == Some("bulk")));
        let h = history(db, &created[1].id).await.unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].from_state.as_deref(), Some("proposed"));
        assert_eq!(h[1].actor, "user:alice");
        assert_eq!(history(db, &created[0].id).await.unwrap().len(), 2);
        // 1 + 449 proposals, 1 rejection, 448 approvals: each its entry, in one chain.
        assert_eq!(audit::verify(db).await, Ok(899), "{}", t.backend);
    }
}
