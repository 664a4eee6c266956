//! The triage verdict carried by an alert: what an LLM (or, without one, the deterministic
//! fallback) concluded about an incident, and the response actions proposed for it.
//!
//! A verdict never changes what the rule raised: severity and status stay as the rule set
//! them, and the priority can only go up from the rule's own (P1 is the highest).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the triage concluded about an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    TruePositive,
    FalsePositive,
    Benign,
    Suspicious,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::TruePositive => "true_positive",
            Verdict::FalsePositive => "false_positive",
            Verdict::Benign => "benign",
            Verdict::Suspicious => "suspicious",
        }
    }

    /// How much concern a verdict expresses: benign and false positive 0, suspicious 1,
    /// true positive 2. A model may raise a rule alert's verdict along this order, never
    /// lower it.
    pub fn concern(self) -> u8 {
        match self {
            Verdict::Benign | Verdict::FalsePositive => 0,
            Verdict::Suspicious => 1,
            Verdict::TruePositive => 2,
        }
    }

    pub const ALL: [Verdict; 4] = [
        Verdict::TruePositive,
        Verdict::FalsePositive,
        Verdict::Benign,
        Verdict::Suspicious,
    ];
}

/// Which path produced a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictSource {
    /// The model answered for this incident.
    Model,
    /// A model verdict for an identical incident (same fingerprint) was reused.
    Cache,
    /// Computed from the rule's severity, indicator hits and counts.
    Fallback,
}

impl VerdictSource {
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictSource::Model => "model",
            VerdictSource::Cache => "cache",
            VerdictSource::Fallback => "fallback",
        }
    }
}

/// The closed vocabulary of response actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    BlockIp,
    KillProcess,
    LockUser,
    IsolateHost,
    Notify,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::BlockIp => "block_ip",
            ActionKind::KillProcess => "kill_process",
            ActionKind::LockUser => "lock_user",
            ActionKind::IsolateHost => "isolate_host",
            ActionKind::Notify => "notify",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub const ALL: [ActionKind; 5] = [
        ActionKind::BlockIp,
        ActionKind::KillProcess,
        ActionKind::LockUser,
        ActionKind::IsolateHost,
        ActionKind::Notify,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Waits for an analyst's approval.
    Pending,
    /// Approved by the configured auto-approval policy.
    Approved,
}

/// A proposed response. The target always comes from the incident's parsed events (or its
/// group key), never from model text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposedAction {
    pub action: ActionKind,
    /// The IP, user, host or PID the action applies to (empty for `notify`).
    pub target: String,
    /// The event field the target was read from, e.g. `source.ip`.
    pub target_field: String,
    pub status: ActionStatus,
}

/// An incident's triage. Stored with the alert and pushed again when it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Triage {
    pub source: VerdictSource,
    /// Why the fallback was used (`pending`, `no_key`, `disabled`, `breaker_open`,
    /// `unreachable`, `invalid_answer`, `queue_full`, `rate_limited`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub verdict: Verdict,
    /// 0.0 to 1.0.
    pub confidence: f32,
    pub needs_investigation: bool,
    /// 1 (act now) to 5; never lower (numerically higher) than the rule's own priority.
    pub priority: u8,
    /// 1 = triage only, 2 = investigated.
    pub stage: u8,
    /// The model's one-line reading of the incident (model text: display only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// 0 to 100, from the investigation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attack_chain: Vec<String>,
    /// ATT&CK techniques the investigation names (validated ids only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mitre: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ProposedAction>,
    /// Model that answered (model and cache verdicts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// What the model answered when that would have lowered the rule's verdict: shown, never
    /// applied. Only an analyst may call a rule's alert benign or a false positive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_verdict: Option<Verdict>,
    /// Identifies identical incidents for the verdict cache.
    pub fingerprint: String,
    pub decided_at: DateTime<Utc>,
}

impl Triage {
    /// Which verdict wins, as one number: of two verdicts on the same alert the higher rank
    /// is kept. A model or cached verdict beats the fallback, an investigation beats a
    /// triage, then the newer wins. This is the only place the order is defined: the store
    /// compares it in SQL (`alerts.verdict_rank`), and the API and WebSocket carry it as
    /// `triage.rank` for the dashboard to compare. It stays below 2^53, exact in JavaScript.
    pub fn rank(&self) -> i64 {
        let model = i64::from(self.source != VerdictSource::Fallback);
        let stage = i64::from(self.stage.min(7));
        let at_ms = self.decided_at.timestamp_millis().clamp(0, (1 << 47) - 1);
        (model << 50) | (stage << 47) | at_ms
    }

    /// Whether `self` should replace `other` where both describe the same alert.
    pub fn supersedes(&self, other: &Triage) -> bool {
        self.rank() >= other.rank()
    }

    /// `P1`..`P5`.
    pub fn priority_label(&self) -> String {
        format!("P{}", self.priority)
    }
}

/// A verdict as clients see it: its fields and its [`Triage::rank`].
#[derive(Serialize)]
pub struct WithRank<'a>(#[serde(serialize_with = "serialize_ranked")] pub &'a Triage);

fn serialize_ranked<S: serde::Serializer>(t: &&Triage, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Ranked<'a> {
        #[serde(flatten)]
        triage: &'a Triage,
        rank: i64,
    }
    Ranked {
        triage: t,
        rank: t.rank(),
    }
    .serialize(s)
}

/// For `#[serde(serialize_with)]` on an `Option<Triage>` field: the verdict with its rank.
pub fn serialize_with_rank<S: serde::Serializer>(
    t: &Option<Triage>,
    s: S,
) -> Result<S::Ok, S::Error> {
    t.as_ref().map(WithRank).serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triage(source: VerdictSource, stage: u8, at_ms: i64) -> Triage {
        Triage {
            source,
            reason: None,
            verdict: Verdict::Suspicious,
            confidence: 0.5,
            needs_investigation: false,
            priority: 3,
            stage,
            summary: None,
            risk: None,
            attack_chain: vec![],
            mitre: vec![],
            actions: vec![],
            model: None,
            model_verdict: None,
            fingerprint: "f".into(),
            decided_at: crate::time_from_millis(at_ms),
        }
    }

    #[test]
    fn a_later_fallback_never_replaces_a_model_verdict() {
        let model = triage(VerdictSource::Model, 1, 1_000);
        let late_fallback = triage(VerdictSource::Fallback, 1, 9_000);
        assert!(!late_fallback.supersedes(&model));
        assert!(model.supersedes(&late_fallback));
        let investigated = triage(VerdictSource::Model, 2, 500);
        assert!(investigated.supersedes(&model));
        assert!(!model.supersedes(&investigated));
        let cached = triage(VerdictSource::Cache, 1, 2_000);
        assert!(
            cached.supersedes(&model),
            "the newer of two stage-1 model verdicts"
        );
        assert!(!triage(VerdictSource::Fallback, 1, 1_000).supersedes(&late_fallback));
        assert!(
            investigated.rank() < 1 << 53,
            "exact as a JavaScript number"
        );
    }

    #[test]
    fn the_rank_reaches_clients_with_the_verdict() {
        let t = triage(VerdictSource::Model, 2, 1_700_000_000_000);
        let json = serde_json::to_value(WithRank(&t)).expect("json");
        assert_eq!(json["rank"], t.rank());
        assert_eq!(json["stage"], 2);
        let back: Triage = serde_json::from_value(json).expect("the rank is ignored on read");
        assert_eq!(back, t);
    }

    #[test]
    fn action_names_round_trip() {
        for a in ActionKind::ALL {
            assert_eq!(ActionKind::parse(a.as_str()), Some(a));
        }
        assert_eq!(ActionKind::parse("delete_logs"), None);
    }
}
