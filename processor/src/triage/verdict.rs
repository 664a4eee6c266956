//! Turning answers into verdicts, and the verdict used when there is no answer.
//!
//! Whatever the model says, the rule's alert stands: severity and status are never touched,
//! the priority can only move towards P1, and actions are the model's *choice of action
//! types* only, with targets read from the incident's parsed events.

use super::prompt::sanitize;
use super::settings::TriageSettings;
use serde::Deserialize;
use serde_json::Value;
use soc_core::{
    ActionKind, ActionStatus, Alert, ProposedAction, Severity, Triage, Verdict, VerdictSource,
};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// The answer did not follow the schema.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid answer: {0}")]
pub struct InvalidAnswer(pub String);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer<T> {
    results: Vec<T>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageItem {
    #[serde(rename = "ref")]
    pub reference: String,
    pub verdict: Verdict,
    pub confidence: f64,
    pub needs_investigation: bool,
    pub summary: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvestigationItem {
    #[serde(rename = "ref")]
    pub reference: String,
    pub risk: i64,
    pub priority: String,
    pub attack_chain: Vec<String>,
    pub mitre: Vec<String>,
    pub actions: Vec<String>,
    pub rationale: String,
}

/// Models asked for `json_object` sometimes wrap the object in a Markdown fence.
fn strip_fence(content: &str) -> &str {
    let t = content.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

fn parse_results<T: for<'de> Deserialize<'de>>(
    content: &str,
    refs: &[String],
    reference: impl Fn(&T) -> &str,
) -> Result<HashMap<String, T>, InvalidAnswer> {
    let answer: Answer<T> = serde_json::from_str(strip_fence(content))
        .map_err(|e| InvalidAnswer(format!("does not match the schema: {e}")))?;
    let wanted: HashSet<&str> = refs.iter().map(String::as_str).collect();
    let mut out = HashMap::new();
    for item in answer.results {
        let r = reference(&item).to_string();
        if !wanted.contains(r.as_str()) {
            return Err(InvalidAnswer(format!(
                "answers unknown incident `{}`",
                sanitize(&r, 40)
            )));
        }
        if out.insert(r.clone(), item).is_some() {
            return Err(InvalidAnswer(format!("answers incident `{r}` twice")));
        }
    }
    Ok(out)
}

/// Triage results by incident ref. Incidents the answer leaves out are simply absent.
pub fn parse_triage(
    content: &str,
    refs: &[String],
) -> Result<HashMap<String, TriageItem>, InvalidAnswer> {
    let items = parse_results(content, refs, |i: &TriageItem| &i.reference)?;
    for i in items.values() {
        if !(0.0..=1.0).contains(&i.confidence) {
            return Err(InvalidAnswer(format!(
                "confidence {} outside 0..1",
                i.confidence
            )));
        }
    }
    Ok(items)
}

pub fn parse_investigation(
    content: &str,
    refs: &[String],
) -> Result<HashMap<String, InvestigationItem>, InvalidAnswer> {
    let items = parse_results(content, refs, |i: &InvestigationItem| &i.reference)?;
    for i in items.values() {
        if !(0..=100).contains(&i.risk) {
            return Err(InvalidAnswer(format!("risk {} outside 0..100", i.risk)));
        }
        if parse_priority(&i.priority).is_none() {
            return Err(InvalidAnswer(format!(
                "priority `{}`",
                sanitize(&i.priority, 10)
            )));
        }
        if let Some(bad) = i.actions.iter().find(|a| ActionKind::parse(a).is_none()) {
            return Err(InvalidAnswer(format!(
                "action `{}` is not in the vocabulary",
                sanitize(bad, 40)
            )));
        }
    }
    Ok(items)
}

fn parse_priority(p: &str) -> Option<u8> {
    match p {
        "P1" => Some(1),
        "P2" => Some(2),
        "P3" => Some(3),
        "P4" => Some(4),
        "P5" => Some(5),
        _ => None,
    }
}

/// An ATT&CK technique id: `T` and four digits, optionally `.` and three.
fn is_technique(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => b[0] == b'T' && digits(&b[1..]),
        9 => b[0] == b'T' && digits(&b[1..5]) && b[5] == b'.' && digits(&b[6..]),
        _ => false,
    }
}

/// The rule's own priority: severity, one step up for an indicator hit and for a large
/// incident. The model can only move a verdict's priority below (more urgent than) this.
pub fn rule_priority(alert: &Alert) -> u8 {
    let mut p: u8 = match alert.severity {
        Severity::Critical => 1,
        Severity::High => 2,
        Severity::Medium => 3,
        Severity::Low => 4,
    };
    if !alert.indicators.is_empty() {
        p = p.saturating_sub(1);
    }
    if alert.count >= 100 {
        p = p.saturating_sub(1);
    }
    p.max(1)
}

/// Identical incidents share a fingerprint: same rule, severity, indicator hits (by list),
/// size class, and the same event actions in their samples. Addresses, hosts and times are
/// left out on purpose, so a storm of one attack from many sources costs one call.
pub fn fingerprint(alert: &Alert) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    alert.rule_id.hash(&mut h);
    alert.severity.hash(&mut h);
    let lists: std::collections::BTreeSet<&str> = alert
        .indicators
        .iter()
        .map(|i| i.rsplit_once('(').map_or("", |(_, l)| l))
        .collect();
    lists.hash(&mut h);
    let size_class = match alert.count {
        0..=1 => 0,
        2..=9 => 1,
        10..=99 => 2,
        _ => 3,
    };
    size_class.hash(&mut h);
    let actions: std::collections::BTreeSet<&str> = alert
        .evidence
        .iter()
        .filter_map(|e| e.pointer("/event/action").and_then(Value::as_str))
        .collect();
    actions.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Proposals for these action types, where the response policy allows them for this
/// incident, with targets from its events and the approval the settings grant; duplicates
/// and actions the policy refuses are dropped.
pub fn propose(
    kinds: &[ActionKind],
    alert: &Alert,
    settings: &TriageSettings,
) -> Vec<ProposedAction> {
    let mut seen = HashSet::new();
    kinds
        .iter()
        .filter(|k| seen.insert(**k))
        .filter_map(|&kind| {
            let (target, target_field) = settings.response.target(kind, alert)?;
            Some(ProposedAction {
                action: kind,
                target,
                target_field,
                status: if settings.response.auto_approves(kind, alert.severity) {
                    ActionStatus::Approved
                } else {
                    ActionStatus::Pending
                },
            })
        })
        .collect()
}

/// What the rule's alert stands for on its own: a verdict, its confidence, and whether it
/// is urgent. The model may raise this, never lower it.
pub struct RuleFloor {
    pub verdict: Verdict,
    pub confidence: f32,
    pub urgent: bool,
}

/// The rule's floor: from its severity, indicator hits and counts.
pub fn rule_floor(alert: &Alert) -> RuleFloor {
    let ioc = !alert.indicators.is_empty();
    let (verdict, confidence) = if ioc {
        (Verdict::TruePositive, 0.9)
    } else {
        match alert.severity {
            Severity::Critical => (Verdict::TruePositive, 0.8),
            Severity::High => (Verdict::Suspicious, 0.7),
            Severity::Medium => (Verdict::Suspicious, 0.6),
            Severity::Low => (Verdict::Suspicious, 0.5),
        }
    };
    RuleFloor {
        verdict,
        confidence,
        urgent: ioc || alert.severity >= Severity::High,
    }
}

/// Hold a model's verdict at or above the rule's floor: a lower one is kept only as
/// `model_verdict`, for the analyst to see.
fn hold_floor(t: &mut Triage, alert: &Alert) {
    let floor = rule_floor(alert);
    t.needs_investigation |= floor.urgent;
    if t.verdict.concern() < floor.verdict.concern() {
        t.model_verdict = Some(t.verdict);
        t.verdict = floor.verdict;
        t.confidence = floor.confidence;
    }
}

/// The deterministic verdict: the rule's floor, with the actions the policy proposes for
/// an urgent incident.
pub fn fallback(alert: &Alert, reason: &str, settings: &TriageSettings) -> Triage {
    let RuleFloor {
        verdict,
        confidence,
        urgent,
    } = rule_floor(alert);
    let kinds: &[ActionKind] = if urgent {
        &[ActionKind::BlockIp, ActionKind::Notify]
    } else {
        &[]
    };
    Triage {
        source: VerdictSource::Fallback,
        reason: Some(reason.to_string()),
        verdict,
        confidence,
        needs_investigation: urgent,
        priority: rule_priority(alert),
        stage: 1,
        summary: None,
        risk: None,
        attack_chain: Vec::new(),
        mitre: Vec::new(),
        actions: propose(kinds, alert, settings),
        model: None,
        model_verdict: None,
        fingerprint: fingerprint(alert),
        decided_at: chrono::Utc::now(),
    }
}

/// A stage-one verdict from the model, held at the rule's floor.
pub fn from_triage(alert: &Alert, item: &TriageItem, model: &str) -> Triage {
    let mut t = Triage {
        source: VerdictSource::Model,
        reason: None,
        verdict: item.verdict,
        confidence: item.confidence as f32,
        needs_investigation: item.needs_investigation,
        priority: rule_priority(alert),
        stage: 1,
        summary: Some(sanitize(&item.summary, 400)).filter(|s| !s.is_empty()),
        risk: None,
        attack_chain: Vec::new(),
        mitre: Vec::new(),
        actions: Vec::new(),
        model: Some(sanitize(model, 80)),
        model_verdict: None,
        fingerprint: fingerprint(alert),
        decided_at: chrono::Utc::now(),
    };
    hold_floor(&mut t, alert);
    t
}

/// The stage-one verdict completed by the investigation.
pub fn with_investigation(
    mut t: Triage,
    alert: &Alert,
    item: &InvestigationItem,
    settings: &TriageSettings,
) -> Triage {
    let model_priority = parse_priority(&item.priority).unwrap_or(5);
    t.priority = model_priority.min(rule_priority(alert));
    t.stage = 2;
    t.risk = Some(item.risk.clamp(0, 100) as u8);
    t.attack_chain = item
        .attack_chain
        .iter()
        .take(10)
        .map(|s| sanitize(s, 200))
        .filter(|s| !s.is_empty())
        .collect();
    t.mitre = item
        .mitre
        .iter()
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| is_technique(m))
        .take(10)
        .collect();
    let kinds: Vec<ActionKind> = item
        .actions
        .iter()
        .filter_map(|a| ActionKind::parse(a))
        .collect();
    t.actions = propose(&kinds, alert, settings);
    let rationale = sanitize(&item.rationale, 400);
    if !rationale.is_empty() {
        t.summary = Some(match t.summary.take() {
            Some(s) => format!("{s} {rationale}"),
            None => rationale,
        });
    }
    t.decided_at = chrono::Utc::now();
    t
}

/// A cached verdict applied to another incident with the same fingerprint: the model's
/// verdict held at this incident's own floors, with its own action targets. The model's
/// text described the other incident (whose untrusted values this one does not share), so
/// it is not carried over.
pub fn from_cache(cached: &Triage, alert: &Alert, settings: &TriageSettings) -> Triage {
    let mut t = cached.clone();
    t.source = VerdictSource::Cache;
    t.reason = None;
    // What the model answered for the other incident, before its floor.
    if let Some(v) = t.model_verdict.take() {
        t.verdict = v;
    }
    hold_floor(&mut t, alert);
    t.summary = None;
    t.attack_chain.clear();
    t.priority = t.priority.min(rule_priority(alert));
    let kinds: Vec<ActionKind> = cached.actions.iter().map(|a| a.action).collect();
    t.actions = propose(&kinds, alert, settings);
    t.decided_at = chrono::Utc::now();
    t
}

/// A verdict held for an alert, refreshed for a newer revision of it: the priority floor
/// follows the counts.
pub fn refresh(t: &Triage, alert: &Alert) -> Triage {
    let mut t = t.clone();
    if t.source != VerdictSource::Fallback {
        if let Some(v) = t.model_verdict.take() {
            t.verdict = v;
        }
        hold_floor(&mut t, alert);
    }
    t.priority = t.priority.min(rule_priority(alert));
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn alert(severity: Severity, count: u64) -> Alert {
        let now = chrono::Utc::now();
        Alert {
            id: uuid::Uuid::nil(),
            rule_id: "soc/ssh-bruteforce".into(),
            title: "t".into(),
            severity,
            mitre: vec!["T1110".into()],
            group_by: "source.ip".into(),
            group_key: "203.0.113.9".into(),
            source_ip: Some("203.0.113.9".into()),
            host_name: Some("web-1".into()),
            count,
            first_seen: now,
            last_seen: now,
            evidence: vec![json!({
                "event": {"action": "ssh_login_failed"},
                "source": {"ip": "203.0.113.9"},
                "user": {"name": "root"},
                "process": {"pid": 4242}
            })],
            revision: count,
            indicators: vec![],
            incident_id: None,
            triage: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn answers_must_follow_the_schema() {
        let refs = vec!["i1".to_string(), "i2".to_string()];
        let ok = r#"{"results":[{"ref":"i1","verdict":"true_positive","confidence":0.9,"needs_investigation":true,"summary":"x"}]}"#;
        let got = parse_triage(ok, &refs).expect("valid");
        assert_eq!(got["i1"].verdict, Verdict::TruePositive);
        assert!(!got.contains_key("i2"));
        let fenced = format!("```json\n{ok}\n```");
        assert!(parse_triage(&fenced, &refs).is_ok());
        for bad in [
            r#"{"results":[{"ref":"i1","verdict":"close_alert","confidence":0.9,"needs_investigation":true,"summary":"x"}]}"#,
            r#"{"results":[{"ref":"i1","verdict":"benign","confidence":7,"needs_investigation":true,"summary":"x"}]}"#,
            r#"{"results":[{"ref":"i9","verdict":"benign","confidence":0.1,"needs_investigation":true,"summary":"x"}]}"#,
            r#"{"results":[{"ref":"i1","verdict":"benign","confidence":0.1,"needs_investigation":true,"summary":"x","severity":"low"}]}"#,
            r#"{"results":"none"}"#,
            "not json",
        ] {
            assert!(parse_triage(bad, &refs).is_err(), "{bad}");
        }
        let inv = r#"{"results":[{"ref":"i2","risk":80,"priority":"P1","attack_chain":["a"],"mitre":["T1110.001","bogus"],"actions":["block_ip","delete_logs"],"rationale":"r"}]}"#;
        assert!(
            parse_investigation(inv, &refs).is_err(),
            "unknown action accepted"
        );
    }

    #[test]
    fn the_model_cannot_lower_the_rules_priority() {
        let a = alert(Severity::High, 5);
        let t = from_triage(
            &a,
            &TriageItem {
                reference: "i1".into(),
                verdict: Verdict::Benign,
                confidence: 1.0,
                needs_investigation: true,
                summary: "fine".into(),
            },
            "m",
        );
        let s = TriageSettings::default();
        let item = |p: &str| InvestigationItem {
            reference: "i1".into(),
            risk: 10,
            priority: p.into(),
            attack_chain: vec![],
            mitre: vec!["T1110.001".into(), "drop table".into()],
            actions: vec!["block_ip".into(), "lock_user".into(), "block_ip".into()],
            rationale: "r".into(),
        };
        let low = with_investigation(t.clone(), &a, &item("P5"), &s);
        assert_eq!(
            low.priority, 2,
            "P5 from the model must not lower a high alert"
        );
        let urgent = with_investigation(t, &a, &item("P1"), &s);
        assert_eq!(urgent.priority, 1);
        assert_eq!(urgent.mitre, vec!["T1110.001"]);
        let targets: Vec<_> = urgent
            .actions
            .iter()
            .map(|a| (a.action, a.target.as_str()))
            .collect();
        assert_eq!(
            targets,
            vec![(ActionKind::BlockIp, "203.0.113.9")],
            "root was only tried, never logged into: the policy locks no account for that"
        );
        assert!(urgent
            .actions
            .iter()
            .all(|a| a.status == ActionStatus::Pending));
    }

    #[test]
    fn policy_approves_only_what_it_names() {
        let a = alert(Severity::Critical, 5);
        let s = TriageSettings {
            response: std::sync::Arc::new(
                crate::response::ResponsePolicy::parse(
                    &include_str!("../../policy/response.yaml").replace(
                        "automatically: {}",
                        "automatically: {block_ip: {min_severity: high}}",
                    ),
                    std::path::Path::new("test.yaml"),
                )
                .expect("policy"),
            ),
            ..TriageSettings::default()
        };
        let p = propose(&[ActionKind::BlockIp, ActionKind::Notify], &a, &s);
        assert_eq!(
            (p[0].action, p[0].status),
            (ActionKind::BlockIp, ActionStatus::Approved)
        );
        assert_eq!(
            (p[1].action, p[1].status),
            (ActionKind::Notify, ActionStatus::Pending)
        );
        let sshd = propose(&[ActionKind::KillProcess], &a, &s);
        assert!(
            sshd.is_empty(),
            "the attacked daemon's pid is not killed: {sshd:?}"
        );
    }

    #[test]
    fn malformed_targets_are_not_proposed() {
        let mut a = alert(Severity::High, 5);
        a.source_ip = Some("1.2.3.4; rm -rf /".into());
        a.evidence =
            vec![json!({"user": {"name": "root$(reboot)"}, "source": {"ip": "not-an-ip"}})];
        a.host_name = Some("-oProxyCommand=x".into());
        let p = propose(
            &[
                ActionKind::BlockIp,
                ActionKind::LockUser,
                ActionKind::IsolateHost,
            ],
            &a,
            &TriageSettings::default(),
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn fallback_follows_severity_indicators_and_counts() {
        let s = TriageSettings::default();
        let low = fallback(&alert(Severity::Low, 3), "no_key", &s);
        assert_eq!(
            (low.verdict, low.priority, low.needs_investigation),
            (Verdict::Suspicious, 4, false)
        );
        assert!(low.actions.is_empty());
        let mut hit = alert(Severity::Medium, 200);
        hit.indicators = vec!["ip 203.0.113.9 (feed)".into()];
        let t = fallback(&hit, "no_key", &s);
        assert_eq!((t.verdict, t.priority), (Verdict::TruePositive, 1));
        assert_eq!(t.source, VerdictSource::Fallback);
        assert_eq!(t.reason.as_deref(), Some("no_key"));
        assert_eq!(t.actions[0].target, "203.0.113.9");
    }

    #[test]
    fn fingerprints_ignore_the_source_but_not_the_attack() {
        let a = alert(Severity::High, 5);
        let mut b = a.clone();
        b.source_ip = Some("198.51.100.1".into());
        b.group_key = "198.51.100.1".into();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        let mut c = a.clone();
        c.rule_id = "soc/other".into();
        assert_ne!(fingerprint(&a), fingerprint(&c));
        let big = alert(Severity::High, 500);
        assert_ne!(fingerprint(&a), fingerprint(&big));
    }
}
