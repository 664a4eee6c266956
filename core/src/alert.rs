//! The alert: what the processor raises, stores, publishes on the `alerts` topic and the
//! gateway streams to analysts and responders.

use crate::triage::Triage;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace for deterministic alert ids (UUID v5), so a replay after a crash upserts.
const ALERT_ID_NAMESPACE: Uuid = Uuid::from_bytes([
    0x6b, 0x2f, 0x51, 0x8e, 0x0c, 0x4d, 0x4a, 0x61, 0x9d, 0x3e, 0x57, 0x1a, 0x90, 0x2b, 0xc4, 0x11,
]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// One level up (critical stays critical).
    pub fn raised(self) -> Self {
        match self {
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// One incident raised by a rule: the same rule, key and incident start always give the same id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: Uuid,
    pub rule_id: String,
    pub title: String,
    pub severity: Severity,
    /// MITRE ATT&CK technique ids, e.g. `T1110`.
    pub mitre: Vec<String>,
    /// The field the rule groups by, e.g. `source.ip`.
    pub group_by: String,
    /// That field's value for this incident.
    pub group_key: String,
    pub source_ip: Option<String>,
    pub host_name: Option<String>,
    /// Matching events so far in this incident.
    pub count: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// A few of the matching events, as normalized.
    pub evidence: Vec<serde_json::Value>,
    /// Bumped on every update of the incident, so consumers keep the newest version.
    pub revision: u64,
    /// Indicators of compromise the incident's events matched, e.g. `ip 203.0.113.7 (feed)`.
    /// An alert with any is raised one severity level above its rule's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indicators: Vec<String>,
    /// The attacker's incident: alerts of several rules against one source (or key) close
    /// in time share it, so a scanner is one incident with many rule hits. Set when the
    /// alert is stored; absent on an alert not stored yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<Uuid>,
    /// The triage verdict: the deterministic fallback until a model's verdict arrives.
    /// Serialized with its `rank`, so clients keep the winner without knowing the rule.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::triage::serialize_with_rank"
    )]
    pub triage: Option<Triage>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Alert {
    /// The deterministic id of an incident.
    pub fn incident_id(rule_id: &str, group_key: &str, first_seen: DateTime<Utc>) -> Uuid {
        let name = format!(
            "{rule_id}\u{1f}{group_key}\u{1f}{}",
            first_seen.timestamp_millis()
        );
        Uuid::new_v5(&ALERT_ID_NAMESPACE, name.as_bytes())
    }
}

impl Alert {
    /// Who the alert is about, for grouping into incidents: the source address, else the
    /// rule's grouping key (a user, a host).
    pub fn attacker(&self) -> &str {
        self.source_ip.as_deref().unwrap_or(&self.group_key)
    }

    /// The deterministic id of the incident an attacker's alerts open at `first_seen`.
    pub fn attacker_incident_id(attacker: &str, first_seen: DateTime<Utc>) -> Uuid {
        let name = format!(
            "incident\u{1f}{attacker}\u{1f}{}",
            first_seen.timestamp_millis()
        );
        Uuid::new_v5(&ALERT_ID_NAMESPACE, name.as_bytes())
    }
}

/// Milliseconds since the epoch as a UTC time (the epoch itself when out of range).
pub fn time_from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_id_is_deterministic_and_distinct() {
        let t = DateTime::from_timestamp_millis(1_700_000_000_000).expect("valid time");
        let a = Alert::incident_id("soc/ssh-bruteforce", "1.2.3.4", t);
        assert_eq!(a, Alert::incident_id("soc/ssh-bruteforce", "1.2.3.4", t));
        assert_ne!(a, Alert::incident_id("soc/ssh-bruteforce", "1.2.3.5", t));
        let later = DateTime::from_timestamp_millis(1_700_000_000_001).expect("valid time");
        assert_ne!(
            a,
            Alert::incident_id("soc/ssh-bruteforce", "1.2.3.4", later)
        );
    }
}
