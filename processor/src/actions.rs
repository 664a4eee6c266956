//! From a verdict's proposed actions to action records: one per (alert, kind, target),
//! written in the transaction that stores the alert or its verdict, and approved on the spot
//! when the response policy allows it (a self-lifting action, proposed by the rule's own
//! verdict, severe enough, response switched on, under the per-minute cap).

use crate::response::ResponsePolicy;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use soc_core::response::actions::{
    auto_approved_since, propose_many, switch_enabled, transition_many, Move, AUTO_APPROVER,
};
use soc_core::response::{ActionError, ActionState, Change, NewAction, ProposedBy};
use soc_core::{ActionKind, Alert, Severity, VerdictSource};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// An action to record, and whether the policy would approve it by itself.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub new: NewAction,
    pub id: Uuid,
    pub auto: bool,
    pub severity: Severity,
}

/// Turns verdicts into proposals, skipping those this process has already recorded (a
/// restart forgets them, and the database's unique key keeps the second attempt a no-op).
pub struct Proposer {
    policy: Arc<ResponsePolicy>,
    seen: HashSet<Uuid>,
}

/// Ids remembered at most; past it the set starts over.
const SEEN_MAX: usize = 100_000;

impl Proposer {
    pub fn new(policy: Arc<ResponsePolicy>) -> Self {
        Proposer {
            policy,
            seen: HashSet::new(),
        }
    }

    pub fn policy(&self) -> &ResponsePolicy {
        &self.policy
    }

    /// The proposals of these alerts' verdicts not yet recorded by this process.
    pub fn collect(&self, alerts: &[Alert]) -> Vec<Proposal> {
        alerts
            .iter()
            .flat_map(|a| proposals(&self.policy, a))
            .filter(|p| !self.seen.contains(&p.id))
            .collect()
    }

    /// Marks proposals as recorded once their transaction committed.
    pub fn recorded(&mut self, proposals: &[Proposal]) {
        if self.seen.len() + proposals.len() > SEEN_MAX {
            self.seen.clear();
        }
        self.seen.extend(proposals.iter().map(|p| p.id));
    }
}

/// The proposals in one alert's verdict, with typed commands.
pub fn proposals(policy: &ResponsePolicy, alert: &Alert) -> Vec<Proposal> {
    let Some(t) = &alert.triage else {
        return Vec::new();
    };
    // The rule's own verdict proposes by policy; anything the model touched is the model's.
    let (by, proposer) = match t.source {
        VerdictSource::Fallback => (ProposedBy::Policy, alert.rule_id.clone()),
        VerdictSource::Model | VerdictSource::Cache => (
            ProposedBy::Model,
            t.model.clone().unwrap_or_else(|| "model".into()),
        ),
    };
    let host = alert.host_name.clone().unwrap_or_default();
    let mut out = Vec::new();
    for p in &t.actions {
        let Some(action) = policy.command(p.action, &p.target, alert) else {
            continue;
        };
        let hosts = if p.action == ActionKind::IsolateHost {
            vec![(p.target.clone(), false)]
        } else {
            policy.hosts_for(p.action, &host)
        };
        for (target_host, routed) in hosts {
            let new = NewAction {
                alert_id: Some(alert.id),
                action: action.clone(),
                target: p.target.clone(),
                target_field: p.target_field.clone(),
                target_host,
                proposed_by: by,
                proposer: proposer.clone(),
                routed,
            };
            out.push(Proposal {
                auto: by == ProposedBy::Policy && policy.auto_approves(p.action, alert.severity),
                severity: alert.severity,
                id: new.id(),
                new,
            });
        }
    }
    out
}

/// Records proposals in the caller's transaction and approves those the policy may;
/// returns how many were new and how many of them were approved. Written in bulk: an
/// attack storm proposes hundreds in one batch.
pub async fn record<C: ConnectionTrait>(
    txn: &C,
    proposals: &[Proposal],
    max_auto_per_minute: u32,
    now: DateTime<Utc>,
) -> Result<(u64, u64), ActionError> {
    let news: Vec<&NewAction> = proposals.iter().map(|p| &p.new).collect();
    let created = propose_many(txn, &news, now).await?;
    let by_id: HashMap<Uuid, &Proposal> = proposals.iter().map(|p| (p.id, p)).collect();
    let mut moves = Vec::new();
    for a in &created {
        let Some(p) = a.id.parse().ok().and_then(|id: Uuid| by_id.get(&id)) else {
            continue;
        };
        metrics::counter!("soc_actions_proposed_total", "kind" => p.new.action.kind(), "by" => p.new.proposed_by.as_str())
            .increment(1);
        if p.auto {
            moves.push((a.id.clone(), *p));
        }
    }
    let new = created.len() as u64;
    if moves.is_empty() || !switch_enabled(txn).await? {
        return Ok((new, 0));
    }
    // Read under the audit lock (taken by the proposals above): no other writer moves it.
    let recent = auto_approved_since(txn, now - chrono::Duration::seconds(60)).await?;
    let room = u64::from(max_auto_per_minute).saturating_sub(recent) as usize;
    if moves.len() > room {
        metrics::counter!("soc_actions_auto_approval_capped_total")
            .increment((moves.len() - room) as u64);
        moves.truncate(room);
    }
    let moves: Vec<Move> = moves
        .into_iter()
        .map(|(id, p)| Move {
            id,
            change: Change {
                detail: Some(format!(
                    "{} alert; the response policy approves {} automatically",
                    p.severity.as_str(),
                    p.new.action.kind()
                )),
                ..Change::default()
            },
        })
        .collect();
    let approved = transition_many(txn, &moves, ActionState::Approved, AUTO_APPROVER, now).await?;
    for a in &approved {
        metrics::counter!("soc_actions_auto_approved_total", "kind" => a.kind.clone()).increment(1);
    }
    Ok((new, approved.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triage::TriageSettings;
    use serde_json::json;
    use std::path::Path;

    fn brute_force() -> Alert {
        let now = chrono::Utc::now();
        let ev = json!({"event": {"category": ["authentication"], "outcome": "failure"},
                        "source": {"ip": "203.0.113.9"}, "user": {"name": "root"},
                        "host": {"hostname": "bastion"}});
        let mut a = Alert {
            id: Uuid::from_u128(7),
            rule_id: "soc/ssh-bruteforce".into(),
            title: "t".into(),
            severity: Severity::Critical,
            mitre: vec![],
            group_by: "source.ip".into(),
            group_key: "203.0.113.9".into(),
            source_ip: Some("203.0.113.9".into()),
            host_name: Some("bastion".into()),
            count: 50,
            first_seen: now,
            last_seen: now,
            evidence: vec![ev; 5],
            revision: 1,
            indicators: vec![],
            incident_id: None,
            triage: None,
            created_at: now,
            updated_at: now,
        };
        a.triage = Some(crate::triage::verdict::fallback(
            &a,
            "test",
            &TriageSettings::default(),
        ));
        a
    }

    fn blocks(policy: &ResponsePolicy) -> Vec<(String, Uuid)> {
        proposals(policy, &brute_force())
            .into_iter()
            .filter(|p| p.new.action.kind() == "block_ip")
            .map(|p| (p.new.target_host, p.id))
            .collect()
    }

    #[test]
    fn a_block_goes_to_the_alert_host_or_to_the_hosts_the_policy_names() {
        let own = blocks(&ResponsePolicy::default());
        assert_eq!(own.len(), 1, "{own:?}");
        assert_eq!(own[0].0, "bastion");

        let text = include_str!("../policy/response.yaml");
        let edge = ResponsePolicy::parse(
            &format!("{text}\nroute:\n  block_ip: {{hosts: [edge-fw-1, edge-fw-2]}}\n"),
            Path::new("edge.yaml"),
        )
        .unwrap();
        let got = blocks(&edge);
        let hosts: Vec<&str> = got.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(hosts, ["edge-fw-1", "edge-fw-2"]);
        assert_ne!(got[0].1, got[1].1, "each host its own action");
        assert!(!got.iter().any(|(_, id)| *id == own[0].1));

        let both = ResponsePolicy::parse(
            &format!("{text}\nroute:\n  block_ip: {{hosts: [edge-fw-1], alert_host: true}}\n"),
            Path::new("both.yaml"),
        )
        .unwrap();
        let got = blocks(&both);
        assert_eq!(got.len(), 2);
        // The alert host's action keeps its id: a policy change proposes it no second time.
        assert_eq!(got[0], own[0]);
        assert_eq!(got[1].0, "edge-fw-1");
    }

    #[test]
    fn only_blocks_are_routed_and_only_to_host_names() {
        let text = include_str!("../policy/response.yaml");
        for (route, why) in [
            ("lock_user: {hosts: [dc-1]}", "only block_ip"),
            ("block_ip: {hosts: []}", "at least one host"),
            ("block_ip: {hosts: ['-rf']}", "not a host name"),
        ] {
            let err = ResponsePolicy::parse(
                &format!("{text}\nroute:\n  {route}\n"),
                Path::new("bad.yaml"),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(why), "{route}: {err}");
        }
    }
}
