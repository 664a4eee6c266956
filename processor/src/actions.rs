//! From a verdict's proposed actions to action records: one per (alert, kind, target),
//! written in the transaction that stores the alert or its verdict, and approved on the spot
//! when the response policy allows it (a self-lifting action, proposed by the rule's own
//! verdict, severe enough, response switched on, under the per-minute cap).

use crate::response::ResponsePolicy;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use soc_core::response::actions::{
    action_id, auto_approved_since, propose, switch_enabled, transition, AUTO_APPROVER,
};
use soc_core::response::{ActionError, ActionState, Change, NewAction, ProposedBy};
use soc_core::{ActionKind, Alert, Severity, VerdictSource};
use std::collections::HashSet;
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
    t.actions
        .iter()
        .filter_map(|p| {
            let action = policy.command(p.action, &p.target, alert)?;
            let target_host = if p.action == ActionKind::IsolateHost {
                p.target.clone()
            } else {
                host.clone()
            };
            let id = action_id(Some(alert.id), action.kind(), &p.target);
            Some(Proposal {
                auto: by == ProposedBy::Policy && policy.auto_approves(p.action, alert.severity),
                severity: alert.severity,
                id,
                new: NewAction {
                    alert_id: Some(alert.id),
                    action,
                    target: p.target.clone(),
                    target_field: p.target_field.clone(),
                    target_host,
                    proposed_by: by,
                    proposer: proposer.clone(),
                },
            })
        })
        .collect()
}

/// Records proposals in the caller's transaction and approves those the policy may;
/// returns how many were new and how many of them were approved.
pub async fn record<C: ConnectionTrait>(
    txn: &C,
    proposals: &[Proposal],
    max_auto_per_minute: u32,
    now: DateTime<Utc>,
) -> Result<(u64, u64), ActionError> {
    let (mut new, mut approved) = (0, 0);
    for p in proposals {
        let Some(created) = propose(txn, &p.new, now).await? else {
            continue;
        };
        new += 1;
        metrics::counter!("soc_actions_proposed_total", "kind" => p.new.action.kind(), "by" => p.new.proposed_by.as_str())
            .increment(1);
        if !p.auto || !switch_enabled(txn).await? {
            continue;
        }
        let recent = auto_approved_since(txn, now - chrono::Duration::seconds(60)).await?;
        if recent >= u64::from(max_auto_per_minute) {
            metrics::counter!("soc_actions_auto_approval_capped_total").increment(1);
            continue;
        }
        transition(
            txn,
            &created.id,
            ActionState::Approved,
            AUTO_APPROVER,
            Change {
                detail: Some(format!(
                    "{} alert; the response policy approves {} automatically",
                    p.severity.as_str(),
                    p.new.action.kind()
                )),
                ..Change::default()
            },
            now,
        )
        .await?;
        approved += 1;
        metrics::counter!("soc_actions_auto_approved_total", "kind" => p.new.action.kind())
            .increment(1);
    }
    Ok((new, approved))
}
