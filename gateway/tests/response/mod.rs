//! The gateway's side of response without an agent process: proposals announced to
//! dashboards exactly once, and agent reports stored in batches.

use crate::common::response;
use chrono::{Duration, Utc};
use sea_orm::{EntityTrait, TransactionTrait};
use soc_core::command::{Action, Report, ReportState};
use soc_core::db::{action, agent_command};
use soc_core::response::actions::{propose, transition_now};
use soc_core::response::{ActionState, Change, NewAction, ProposedBy};
use soc_gateway::hub::HubMessage;
use soc_gateway::response::{dispatch, reports};
use soc_gateway::AlertHub;
use soc_migrations::testing::TestDb;
use std::sync::Arc;
use tokio::sync::broadcast::Receiver;
use uuid::Uuid;

fn block(i: u32) -> NewAction {
    let ip = format!("198.18.{}.{}", i / 250, i % 250 + 1);
    NewAction {
        alert_id: Some(Uuid::from_u128(u128::from(i) + 1)),
        action: Action::BlockIp {
            targets: vec![ip.parse().unwrap()],
            ttl_secs: 600,
        },
        target: ip,
        target_field: "source.ip".into(),
        target_host: "web-1".into(),
        proposed_by: ProposedBy::Analyst,
        proposer: "alice".into(),
        routed: false,
    }
}

/// Records proposals as the processor does: one transaction, one time for all of them.
async fn record(db: &TestDb, range: std::ops::Range<u32>, at: chrono::DateTime<Utc>) {
    let txn = db.conn.begin().await.unwrap();
    for i in range {
        propose(&txn, &block(i), at).await.unwrap().expect("new");
    }
    txn.commit().await.unwrap();
}

fn announced(rx: &mut Receiver<HubMessage>) -> Vec<String> {
    let mut ids = Vec::new();
    while let Ok(m) = rx.try_recv() {
        let v: serde_json::Value = serde_json::from_str(&m.text).unwrap();
        if v["type"] == "action" {
            ids.push(v["action"]["id"].as_str().unwrap().to_string());
        }
    }
    ids
}

#[tokio::test]
async fn proposals_reach_dashboards_once_also_out_of_order_and_in_bulk() {
    let db = TestDb::sqlite().await;
    let hub = Arc::new(AlertHub::new(8192));
    let svc = response(&db, hub.clone());
    let mut rx = hub.subscribe();
    let t = Utc::now();

    record(&db, 0..1, t).await;
    dispatch::tick(&svc, t + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(announced(&mut rx).len(), 1);

    // Stamped before the one already announced, committed after it.
    record(&db, 1..2, t - Duration::seconds(5)).await;
    dispatch::tick(&svc, t + Duration::seconds(2))
        .await
        .unwrap();
    assert_eq!(announced(&mut rx), [block(1).id().to_string()]);

    // A storm: more than a page, all in one millisecond.
    record(&db, 2..2502, t + Duration::seconds(3)).await;
    dispatch::tick(&svc, t + Duration::seconds(4))
        .await
        .unwrap();
    let mut got = announced(&mut rx);
    assert_eq!(got.len(), 2500);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 2500, "each once");

    dispatch::tick(&svc, t + Duration::seconds(5))
        .await
        .unwrap();
    assert!(announced(&mut rx).is_empty(), "nothing twice");
}

#[tokio::test]
async fn reports_arriving_together_are_stored_together_and_only_for_the_sender() {
    let db = TestDb::sqlite().await;
    let svc = response(&db, Arc::new(AlertHub::default()));
    let now = Utc::now();
    record(&db, 0..3, now).await;
    let actions: Vec<action::Model> = action::Entity::find().all(&db.conn).await.unwrap();
    let mut commands = Vec::new();
    for (i, a) in actions.iter().enumerate() {
        let agent = if i == 2 { "agt-other" } else { "agt-mine" };
        for to in [ActionState::Approved, ActionState::Dispatched] {
            transition_now(&db.conn, &a.id, to, "test", Change::default(), now)
                .await
                .unwrap();
        }
        let cmd = agent_command::Model {
            id: Uuid::new_v4().to_string(),
            action_id: a.id.clone(),
            agent_id: agent.into(),
            purpose: "apply".into(),
            signed: "{}".into(),
            state: "pending".into(),
            reason: None,
            created_at: now,
            expires_at: now + Duration::minutes(5),
            delivered_at: Some(now),
            reported_at: None,
        };
        agent_command::Entity::insert(agent_command::ActiveModel::from(cmd.clone()))
            .exec(&db.conn)
            .await
            .unwrap();
        commands.push(cmd);
    }
    let report = |c: &agent_command::Model, state| Report {
        command: c.id.parse().unwrap(),
        state,
        reason: None,
        dry_run: false,
        at: now,
    };
    let stranger = Uuid::new_v4();
    let batch = vec![
        report(&commands[0], ReportState::Accepted),
        report(&commands[1], ReportState::Accepted),
        report(&commands[0], ReportState::Applied),
        // Another agent's command: acknowledged (nothing to resend), not applied.
        report(&commands[2], ReportState::Applied),
        Report {
            command: stranger,
            ..report(&commands[0], ReportState::Applied)
        },
    ];
    let acked = reports::handle_batch(&svc, "agt-mine", &batch, now)
        .await
        .unwrap();
    assert_eq!(acked.len(), batch.len());
    assert!(acked.contains(&stranger));
    let state = |id: String| {
        let db = db.conn.clone();
        async move {
            agent_command::Entity::find_by_id(id)
                .one(&db)
                .await
                .unwrap()
                .unwrap()
                .state
        }
    };
    assert_eq!(state(commands[0].id.clone()).await, "applied");
    assert_eq!(state(commands[1].id.clone()).await, "accepted");
    assert_eq!(state(commands[2].id.clone()).await, "pending");
    // The action of the applied command moved on; the others did not.
    for (c, want) in commands.iter().zip(["applied", "dispatched", "dispatched"]) {
        let a = action::Entity::find_by_id(c.action_id.clone())
            .one(&db.conn)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.state, want, "{}", c.agent_id);
    }
    // The same applied again (after a reconnect) changes nothing.
    let again = reports::handle_batch(&svc, "agt-mine", &batch[2..3], now)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(state(commands[0].id.clone()).await, "applied");
    let n = soc_core::response::audit::verify(&db.conn).await.unwrap();
    assert!(n >= 3, "{n}");
}

/// A command waiting for its agent is signed again when its key was retired meanwhile (the
/// agent would refuse it), and left as it is while its key is still trusted.
#[tokio::test]
async fn a_waiting_command_is_signed_again_once_its_key_is_retired() {
    use soc_core::command::keys::Keyring;
    use soc_core::command::{Command, CommandSigner, SignedCommand};
    let db = TestDb::sqlite().await;
    let svc = response(&db, Arc::new(AlertHub::default()));
    let now = Utc::now();
    record(&db, 0..1, now).await;
    let a = action::Entity::find().one(&db.conn).await.unwrap().unwrap();
    let old = CommandSigner::from_seed(&[9; 32]);
    let new = CommandSigner::from_seed(&[10; 32]);
    let id = Uuid::new_v4();
    let signed = old.sign(&Command {
        id,
        action_id: a.id.parse().unwrap(),
        agent: "agt-1".into(),
        action: Action::BlockIp {
            targets: vec!["198.18.0.1".parse().unwrap()],
            ttl_secs: 600,
        },
        issued_at: now,
        expires_at: now + Duration::minutes(5),
        nonce: "0123456789abcdef0123".into(),
    });
    agent_command::Entity::insert(agent_command::ActiveModel::from(agent_command::Model {
        id: id.to_string(),
        action_id: a.id.clone(),
        agent_id: "agt-1".into(),
        purpose: "apply".into(),
        signed: serde_json::to_string(&signed).unwrap(),
        state: "pending".into(),
        reason: None,
        created_at: now,
        expires_at: now + Duration::minutes(5),
        delivered_at: None,
        reported_at: None,
    }))
    .exec(&db.conn)
    .await
    .unwrap();
    let stored = || async {
        let row = agent_command::Entity::find_by_id(id.to_string())
            .one(&db.conn)
            .await
            .unwrap()
            .unwrap();
        serde_json::from_str::<SignedCommand>(&row.signed).unwrap()
    };

    // Rotated: the old key is still trusted, the command stays as signed.
    svc.replace_keys(Keyring::new(
        2,
        CommandSigner::from_seed(&[10; 32]),
        vec![CommandSigner::from_seed(&[9; 32])],
    ));
    dispatch::resend(&svc, "agt-1", now).await.unwrap();
    assert_eq!(stored().await, signed);

    // Retired: signed again with the active key, the same command with a fresh nonce.
    svc.replace_keys(Keyring::new(
        3,
        CommandSigner::from_seed(&[10; 32]),
        Vec::new(),
    ));
    dispatch::resend(&svc, "agt-1", now).await.unwrap();
    let again = stored().await;
    assert_eq!(again.key_id, new.key_id());
    let c: Command = serde_json::from_str(&again.payload).unwrap();
    assert_eq!(c.id, id);
    assert_ne!(c.nonce, "0123456789abcdef0123");
}
