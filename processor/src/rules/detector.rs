//! Windowed thresholds in event time, grouped into incidents.
//!
//! Per rule and group key: the timestamps (and a few samples) of recent matching events.
//! When `threshold` of them fall within `window_secs`, an incident opens with a deterministic
//! id (rule, key, first event time). Later matches within `window_secs` of the incident's last
//! event update it (count, last seen) under the same id; after a quiet window it closes.
//! Because only event time is read, a replayed file raises the same alerts as live traffic.

use super::{Count, Rule};
use crate::fields::lowercase;
use crate::ioc::{self, Hit, IocSet};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use soc_core::Alert;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use uuid::Uuid;

/// Samples kept as evidence on an alert.
pub const MAX_EVIDENCE: usize = 5;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyState {
    /// Matching events not yet part of an incident, in event-time order.
    pub window: VecDeque<Entry>,
    pub incident: Option<Incident>,
    /// Latest event time seen for this key.
    pub last_ms: i64,
    /// `count: attempts` rules: what each recent connection reported, by kind of line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<Connection>,
}

/// The attempts one connection's lines reported, per kind of line (`event.action`): the
/// connection made as many attempts as its most telling kind reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub id: String,
    pub last_ms: i64,
    pub kinds: Vec<(String, u64)>,
}

impl Connection {
    fn attempts(&self) -> u64 {
        self.kinds.iter().map(|(_, n)| *n).max().unwrap_or(0)
    }
}

/// Connections remembered per key: a guesser opens many, but only those within the window
/// can still share an attempt with a new line.
const MAX_CONNECTIONS: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: Uuid,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub count: u64,
    pub evidence: Vec<Value>,
    pub host_name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The `group_by` field the key came from.
    #[serde(default)]
    pub group_field: Option<String>,
    /// Indicators of compromise matched by the incident's events.
    #[serde(default)]
    pub indicators: Vec<String>,
}

/// One matching event in a window: what counting needs, and the event itself while it is
/// one of the few kept as evidence (the oldest and the newest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub ts: i64,
    /// The event, shared between the rules it matched so it is stored once in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<Arc<Value>>,
    /// The value a `distinct` rule counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<String>,
    /// The indicators of compromise the event matched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indicators: Vec<String>,
    /// What the event counts for (attempts it adds); one for a line-counting rule.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub weight: u64,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// The attempts `event` adds to `state` under a `count: attempts` rule: what it reports
/// (`event.attempts`, default one), less what its connection's other kinds of lines
/// already reported for the same attempts. A connection is one process on one host, else one source address and port, else the source address.
fn new_attempts(state: &mut KeyState, event: &Value, ts: i64, window_ms: i64) -> u64 {
    let reported = crate::fields::lookup(event, "event.attempts")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1);
    let str_of = |path: &str| crate::fields::lookup(event, path).and_then(Value::as_str);
    let num_of = |path: &str| crate::fields::lookup(event, path).and_then(Value::as_u64);
    let id = match (num_of("process.pid"), num_of("source.port")) {
        (Some(pid), _) => format!(
            "{}/{}/{pid}",
            str_of("host.hostname").unwrap_or(""),
            str_of("process.name").unwrap_or("")
        ),
        (None, Some(port)) => format!("{}:{port}", str_of("source.ip").unwrap_or("")),
        // Nothing tells connections apart: the kinds of line compare over the source.
        (None, None) => match str_of("source.ip") {
            Some(ip) => format!("from {ip}"),
            None => return reported,
        },
    };
    // A kind of line: what it reports (the action) and, where a program has several
    // writers that each report the attempt (PAM's modules), which one wrote it.
    let kind = match str_of("event.provider") {
        Some(p) => format!("{}/{p}", str_of("event.action").unwrap_or("")),
        None => str_of("event.action").unwrap_or("").to_string(),
    };
    let newest = state
        .connections
        .iter()
        .map(|c| c.last_ms)
        .max()
        .unwrap_or(ts)
        .max(ts);
    state.connections.retain(|c| c.last_ms > newest - window_ms);
    let pos = match state.connections.iter().position(|c| c.id == id) {
        Some(p) => p,
        None => {
            if state.connections.len() >= MAX_CONNECTIONS {
                let oldest =
                    (0..state.connections.len()).min_by_key(|&i| state.connections[i].last_ms);
                if let Some(i) = oldest {
                    state.connections.swap_remove(i);
                }
            }
            state.connections.push(Connection {
                id,
                last_ms: ts,
                kinds: Vec::new(),
            });
            state.connections.len() - 1
        }
    };
    let conn = &mut state.connections[pos];
    conn.last_ms = conn.last_ms.max(ts);
    let before = conn.attempts();
    match conn.kinds.iter_mut().find(|(k, _)| *k == kind) {
        Some((_, n)) => *n += reported,
        None => conn.kinds.push((kind, reported)),
    }
    conn.attempts() - before
}

/// Indicators kept on one incident.
const MAX_INDICATORS: usize = 20;

fn add_indicators(inc: &mut Incident, labels: &[String]) {
    for l in labels {
        if inc.indicators.len() < MAX_INDICATORS && !inc.indicators.contains(l) {
            inc.indicators.push(l.clone());
        }
    }
}

/// Key of a state entry: (rule index, group key).
type StateKey = (usize, String);

pub struct Detector {
    rules: Vec<Rule>,
    /// By `event.dataset` value: the rules an event of that dataset can match (those that
    /// require it, and those that match any dataset), in rule order.
    by_dataset: HashMap<String, Vec<usize>>,
    /// Rules that may match any dataset.
    any_dataset: Vec<usize>,
    /// For each rule, the rules that cover it (`covers`): when one of them matches an
    /// event too, this rule does not count it.
    covered_by: Vec<Vec<usize>>,
    iocs: IocSet,
    states: HashMap<StateKey, KeyState>,
    dirty: HashSet<StateKey>,
    removed: HashSet<StateKey>,
    /// Saved state of rules no longer loaded, (rule id, group key): deleted at the next commit.
    stale: Vec<(String, String)>,
    /// Highest event time seen: windows older than it by more than their length are closed.
    watermark_ms: i64,
    /// Per host, the last event a rule counted: what BSD syslogd's `last message repeated N
    /// times` repeats. Kept in memory only: a repeat read first after a restart is lost.
    last_counted: HashMap<String, Arc<Value>>,
}

/// Hosts whose last counted event is remembered; beyond, the memory starts over.
const MAX_REPEAT_HOSTS: usize = 4096;

/// What changed in one batch, to be written atomically with the batch's checkpoint.
#[derive(Debug, Default)]
pub struct StateChanges {
    /// (rule id, group key, state JSON)
    pub upserts: Vec<(String, String, String)>,
    /// (rule id, group key)
    pub deletes: Vec<(String, String)>,
}

fn event_time_ms(event: &Value, fallback_ms: i64) -> i64 {
    event
        .get("@timestamp")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis())
        .unwrap_or(fallback_ms)
}

fn host_of(event: &Value) -> Option<String> {
    crate::fields::lookup(event, "host.hostname")
        .and_then(Value::as_str)
        .map(str::to_string)
}

impl Detector {
    pub fn new(rules: Vec<Rule>) -> Self {
        let mut by_dataset: HashMap<String, Vec<usize>> = HashMap::new();
        let mut any_dataset = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            match r.detection.required_values("event.dataset") {
                Some(values) => {
                    for v in values {
                        by_dataset.entry(v).or_default().push(i);
                    }
                }
                None => any_dataset.push(i),
            }
        }
        for list in by_dataset.values_mut() {
            list.extend_from_slice(&any_dataset);
            list.sort_unstable();
            list.dedup();
        }
        let covered_by = rules
            .iter()
            .map(|r| {
                (0..rules.len())
                    .filter(|&j| rules[j].covers.contains(&r.id))
                    .collect()
            })
            .collect();
        Detector {
            rules,
            by_dataset,
            any_dataset,
            covered_by,
            iocs: IocSet::default(),
            states: HashMap::new(),
            dirty: HashSet::new(),
            removed: HashSet::new(),
            stale: Vec::new(),
            watermark_ms: i64::MIN,
            last_counted: HashMap::new(),
        }
    }

    /// Match these indicators on every event.
    pub fn with_indicators(mut self, iocs: IocSet) -> Self {
        self.iocs = iocs;
        self
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Restore a saved state entry; entries of rules no longer loaded are dropped.
    pub fn restore(&mut self, rule_id: &str, key: &str, state_json: &str) -> bool {
        let Some(idx) = self.rules.iter().position(|r| r.id == rule_id) else {
            self.stale.push((rule_id.to_string(), key.to_string()));
            return false;
        };
        match serde_json::from_str::<KeyState>(state_json) {
            Ok(s) => {
                self.watermark_ms = self.watermark_ms.max(s.last_ms);
                self.states.insert((idx, key.to_string()), s);
                true
            }
            Err(_) => false,
        }
    }

    /// Feed one event; returns the alerts it raised or updated.
    pub fn process(&mut self, event: &Value, record_ts_ms: i64, now: DateTime<Utc>) -> Vec<Alert> {
        if crate::fields::lookup(event, "event.action").and_then(Value::as_str)
            == Some(soc_core::event::ACTION_REPEATED)
        {
            return self.repeat(event, record_ts_ms, now);
        }
        let hits = self.iocs.matches(event);
        let annotated;
        let event = if hits.is_empty() {
            event
        } else {
            annotated = ioc::annotate(event, &hits);
            &annotated
        };
        let labels: Vec<String> = hits.iter().map(Hit::label).collect();
        let ts = event_time_ms(event, record_ts_ms);
        self.watermark_ms = self.watermark_ms.max(ts);
        let mut out = Vec::new();
        // Only the rules that can match this event's dataset, in rule order.
        let candidates = crate::fields::lookup(event, "event.dataset")
            .and_then(Value::as_str)
            .and_then(|d| self.by_dataset.get(&*lowercase(d)))
            .unwrap_or(&self.any_dataset);
        // One copy of the event for every window it enters.
        let mut shared: Option<Arc<Value>> = None;
        let matched: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| self.rules[i].matches(event))
            .collect();
        for &idx in &matched {
            // Another rule that detects the same thing counts this event.
            if self.covered_by[idx].iter().any(|j| matched.contains(j)) {
                continue;
            }
            let rule = &self.rules[idx];
            let Some((group_field, key)) = rule.key_of(event) else {
                continue;
            };
            let group_field = group_field.to_string();
            let window_ms = (rule.window_secs as i64) * 1000;
            let threshold = rule.threshold;
            let sk = (idx, key);
            let state = self.states.entry(sk.clone()).or_default();
            self.removed.remove(&sk);
            self.dirty.insert(sk.clone());
            state.last_ms = state.last_ms.max(ts);

            let weight = if rule.count == Count::Attempts && rule.distinct.is_none() {
                new_attempts(state, event, ts, window_ms)
            } else {
                1
            };
            if weight == 0 {
                // A line about an attempt already counted: evidence at most.
                if let Some(inc) = state.incident.as_mut() {
                    if ts <= inc.last_seen_ms + window_ms && inc.evidence.len() < MAX_EVIDENCE {
                        inc.evidence.push(event.clone());
                    }
                }
                continue;
            }
            if let Some(inc) = state.incident.as_mut() {
                if ts <= inc.last_seen_ms + window_ms {
                    inc.count += weight;
                    inc.last_seen_ms = inc.last_seen_ms.max(ts);
                    inc.first_seen_ms = inc.first_seen_ms.min(ts);
                    if inc.evidence.len() < MAX_EVIDENCE {
                        inc.evidence.push(event.clone());
                    }
                    add_indicators(inc, &labels);
                    out.push(to_alert(rule, &sk.1, inc, now));
                    continue;
                }
                state.incident = None;
            }
            if rule.distinct.is_some() {
                // One entry per distinct value (the latest), so the window's length is the
                // number of distinct values and memory stays bounded by the threshold.
                let Some(value) = rule.distinct_of(event) else {
                    continue;
                };
                state
                    .window
                    .retain(|e| e.distinct.as_deref() != Some(value.as_str()));
            }
            // Full events are kept only as evidence (the oldest few and the newest); the
            // rest shrink to what counting needs, so a wide window costs little memory.
            let samples = state.window.iter().filter(|e| e.sample.is_some()).count();
            if samples >= MAX_EVIDENCE {
                if let Some(last) = state.window.back_mut() {
                    last.sample = None;
                }
            }
            // Kept in event-time order, and trimmed against the newest event, so lines that
            // arrive out of order count as they happened.
            let pos = state.window.partition_point(|e| e.ts <= ts);
            let shared = shared
                .get_or_insert_with(|| Arc::new(event.clone()))
                .clone();
            state.window.insert(
                pos,
                Entry {
                    ts,
                    sample: Some(shared),
                    distinct: rule.distinct_of(event),
                    indicators: labels.clone(),
                    weight,
                },
            );
            let newest = state.window.back().map_or(ts, |e| e.ts);
            state.window.retain(|e| e.ts > newest - window_ms);
            // Below the threshold until now (it fires and clears when reached), so the
            // window holds fewer than `threshold` entries plus this one.
            let total: u64 = state.window.iter().map(|e| e.weight).sum();
            if total >= threshold {
                let first_seen_ms = state.window.front().map_or(ts, |e| e.ts);
                let last_seen_ms = state.window.back().map_or(ts, |e| e.ts);
                let first_seen = soc_core::time_from_millis(first_seen_ms);
                let evidence: Vec<Value> = state
                    .window
                    .iter()
                    .filter_map(|e| e.sample.as_deref())
                    .take(MAX_EVIDENCE)
                    .cloned()
                    .collect();
                let mut inc = Incident {
                    id: Alert::incident_id(&rule.id, &sk.1, first_seen),
                    first_seen_ms,
                    last_seen_ms,
                    count: total,
                    host_name: evidence.first().and_then(host_of),
                    evidence,
                    created_at: now,
                    group_field: Some(group_field),
                    indicators: Vec::new(),
                };
                let earlier: Vec<String> = state
                    .window
                    .iter()
                    .flat_map(|e| e.indicators.iter().cloned())
                    .collect();
                add_indicators(&mut inc, &earlier);
                add_indicators(&mut inc, &labels);
                state.window.clear();
                out.push(to_alert(rule, &sk.1, &inc, now));
                state.incident = Some(inc);
            }
        }
        if let Some(host) = host_of(event) {
            if matched.is_empty() {
                self.last_counted.remove(&host);
            } else {
                if self.last_counted.len() >= MAX_REPEAT_HOSTS {
                    self.last_counted.clear();
                }
                let copy = shared.unwrap_or_else(|| Arc::new(event.clone()));
                self.last_counted.insert(host, copy);
            }
        }
        out
    }

    /// BSD syslogd's `last message repeated N times`: the host's last counted event again,
    /// standing for N times what it stood for, at the repeat's time.
    fn repeat(&mut self, event: &Value, record_ts_ms: i64, now: DateTime<Utc>) -> Vec<Alert> {
        let Some(prev) = host_of(event).and_then(|h| self.last_counted.get(&h).cloned()) else {
            return Vec::new();
        };
        let times = crate::fields::lookup(event, "event.attempts")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let each = crate::fields::lookup(&prev, "event.attempts")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let mut again = (*prev).clone();
        if let Some(obj) = again.as_object_mut() {
            if let Some(t) = event.get("@timestamp") {
                obj.insert("@timestamp".into(), t.clone());
            }
            if let Some(info) = obj.get_mut("event").and_then(Value::as_object_mut) {
                info.insert("attempts".into(), Value::from(times.saturating_mul(each)));
            }
        }
        self.process(&again, record_ts_ms, now)
    }

    /// Forget keys whose windows and incidents ended before the watermark.
    pub fn expire(&mut self) {
        let wm = self.watermark_ms;
        let rules = &self.rules;
        let mut gone = Vec::new();
        for (sk, st) in &self.states {
            let window_ms = (rules[sk.0].window_secs as i64) * 1000;
            if st.last_ms + window_ms < wm {
                gone.push(sk.clone());
            }
        }
        for sk in gone {
            self.states.remove(&sk);
            self.dirty.remove(&sk);
            self.removed.insert(sk);
        }
    }

    /// The state changes since the last call, for the checkpoint transaction.
    pub fn take_changes(&mut self) -> StateChanges {
        let mut changes = StateChanges::default();
        for sk in self.dirty.drain() {
            if let Some(st) = self.states.get(&sk) {
                if let Ok(json) = serde_json::to_string(st) {
                    changes
                        .upserts
                        .push((self.rules[sk.0].id.clone(), sk.1.clone(), json));
                }
            }
        }
        for (idx, key) in self.removed.drain() {
            changes.deletes.push((self.rules[idx].id.clone(), key));
        }
        changes.deletes.append(&mut self.stale);
        changes
    }

    pub fn open_keys(&self) -> usize {
        self.states.len()
    }
}

fn to_alert(rule: &Rule, key: &str, inc: &Incident, now: DateTime<Utc>) -> Alert {
    let source_ip = inc
        .evidence
        .first()
        .and_then(|e| crate::fields::lookup(e, "source.ip"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let group_by = inc
        .group_field
        .clone()
        .or_else(|| rule.group_by.first().cloned())
        .unwrap_or_default();
    Alert {
        id: inc.id,
        rule_id: rule.id.clone(),
        title: format!("{}: {} = {}", rule.title, group_by, key),
        severity: if inc.indicators.is_empty() {
            rule.severity
        } else {
            rule.severity.raised()
        },
        mitre: rule.mitre.clone(),
        group_by,
        group_key: key.to_string(),
        source_ip,
        host_name: inc.host_name.clone(),
        count: inc.count,
        first_seen: soc_core::time_from_millis(inc.first_seen_ms),
        last_seen: soc_core::time_from_millis(inc.last_seen_ms),
        evidence: inc.evidence.clone(),
        revision: inc.count,
        indicators: inc.indicators.clone(),
        incident_id: None,
        triage: None,
        created_at: inc.created_at,
        updated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(threshold: u64, window_secs: u64) -> Rule {
        crate::rules::parse_rule(
            &format!(
                "id: soc/t\ntitle: T\nseverity: high\nmitre: [T1110]\ndetection: {{sel: {{event.outcome: failure}}, condition: sel}}\ngroup_by: source.ip\nthreshold: {threshold}\nwindow_secs: {window_secs}\n"
            ),
            std::path::Path::new("t.yaml"),
        )
        .expect("rule")
    }

    fn fail(ip: &str, secs: i64) -> Value {
        let t = DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time");
        json!({"@timestamp": t.to_rfc3339(), "event": {"outcome": "failure"}, "source": {"ip": ip}})
    }

    fn run(d: &mut Detector, events: &[Value]) -> Vec<Alert> {
        events
            .iter()
            .flat_map(|e| d.process(e, 0, Utc::now()))
            .collect()
    }

    #[test]
    fn fires_at_threshold_within_window_and_groups_the_rest() {
        let mut d = Detector::new(vec![rule(3, 10)]);
        let alerts = run(
            &mut d,
            &[
                fail("a", 0),
                fail("a", 1),
                fail("b", 1),
                fail("a", 2),
                fail("a", 3),
            ],
        );
        assert_eq!(alerts.len(), 2, "raised at the 3rd, updated at the 4th");
        assert_eq!(alerts[0].id, alerts[1].id);
        assert_eq!(alerts[0].count, 3);
        assert_eq!(alerts[1].count, 4);
        assert_eq!(alerts[1].group_key, "a");
        assert_eq!(alerts[0].mitre, vec!["T1110"]);
    }

    #[test]
    fn slow_attempts_outside_the_window_do_not_fire() {
        let mut d = Detector::new(vec![rule(3, 10)]);
        let alerts = run(
            &mut d,
            &[fail("a", 0), fail("a", 6), fail("a", 12), fail("a", 18)],
        );
        assert!(alerts.is_empty());
    }

    #[test]
    fn a_quiet_window_closes_the_incident() {
        let mut d = Detector::new(vec![rule(2, 10)]);
        let alerts = run(
            &mut d,
            &[fail("a", 0), fail("a", 1), fail("a", 100), fail("a", 101)],
        );
        assert_eq!(alerts.len(), 2);
        assert_ne!(
            alerts[0].id, alerts[1].id,
            "a new incident after the quiet window"
        );
    }

    #[test]
    fn replay_gives_the_same_ids_whatever_the_wall_clock() {
        let events = [fail("a", 0), fail("a", 1), fail("a", 2)];
        let mut d1 = Detector::new(vec![rule(3, 10)]);
        let mut d2 = Detector::new(vec![rule(3, 10)]);
        let a1 = run(&mut d1, &events);
        let a2: Vec<Alert> = events
            .iter()
            .flat_map(|e| d2.process(e, 0, Utc::now() + chrono::Duration::days(3)))
            .collect();
        assert_eq!(a1[0].id, a2[0].id);
    }

    #[test]
    fn state_round_trips_through_changes() {
        let mut d = Detector::new(vec![rule(3, 10)]);
        run(&mut d, &[fail("a", 0), fail("a", 1)]);
        let changes = d.take_changes();
        assert_eq!(changes.upserts.len(), 1);
        let mut restored = Detector::new(vec![rule(3, 10)]);
        for (r, k, s) in &changes.upserts {
            assert!(restored.restore(r, k, s));
        }
        let alerts = run(&mut restored, &[fail("a", 2)]);
        assert_eq!(alerts.len(), 1, "the window survived the restart");
        assert_eq!(alerts[0].count, 3);
    }

    #[test]
    fn state_of_a_removed_rule_is_deleted() {
        let mut d = Detector::new(vec![rule(3, 10)]);
        assert!(!d.restore("soc/gone", "1.2.3.4", "{}"));
        let changes = d.take_changes();
        assert_eq!(
            changes.deletes,
            vec![("soc/gone".to_string(), "1.2.3.4".to_string())]
        );
        assert!(d.take_changes().deletes.is_empty(), "deleted once");
    }

    #[test]
    fn expired_keys_are_deleted() {
        let mut d = Detector::new(vec![rule(3, 10)]);
        run(&mut d, &[fail("a", 0), fail("b", 100)]);
        d.take_changes();
        d.expire();
        let changes = d.take_changes();
        assert_eq!(
            changes.deletes,
            vec![("soc/t".to_string(), "a".to_string())]
        );
        assert_eq!(d.open_keys(), 1);
    }

    #[test]
    fn distinct_rules_count_distinct_values_not_events() {
        let r = crate::rules::parse_rule(
            "id: soc/d\ntitle: D\nseverity: medium\ndetection: {sel: {http.response.status_code: 404}, condition: sel}\ndistinct: url.path\nthreshold: 3\nwindow_secs: 10\n",
            std::path::Path::new("d.yaml"),
        )
        .expect("rule");
        let ev = |path: &str, secs: i64| {
            let t = DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time");
            json!({"@timestamp": t.to_rfc3339(), "source": {"ip": "a"}, "url": {"path": path},
                   "http": {"response": {"status_code": 404}}})
        };
        let mut d = Detector::new(vec![r]);
        let same = run(
            &mut d,
            &[ev("/x", 0), ev("/x", 1), ev("/x", 2), ev("/y", 3)],
        );
        assert!(same.is_empty(), "two distinct paths are below 3");
        let alerts = run(&mut d, &[ev("/z", 4)]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].count, 3);
    }

    #[test]
    fn group_by_falls_back_to_the_next_field_present() {
        let r = crate::rules::parse_rule(
            "id: soc/g\ntitle: G\nseverity: low\ndetection: {sel: {event.action: x}, condition: sel}\ngroup_by: [source.ip, user.name]\n",
            std::path::Path::new("g.yaml"),
        )
        .expect("rule");
        let mut d = Detector::new(vec![r]);
        let alerts = run(
            &mut d,
            &[json!({"event": {"action": "x"}, "user": {"name": "bob"}})],
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].group_by, "user.name");
        assert_eq!(alerts[0].group_key, "bob");
    }

    #[test]
    fn an_indicator_hit_raises_the_alert_and_is_listed() {
        let mut iocs = IocSet::default();
        iocs.add_list("feed", "ip 203.0.113.9").expect("list");
        let mut d = Detector::new(vec![rule(2, 10)]).with_indicators(iocs);
        let plain = run(&mut d, &[fail("192.0.2.1", 0), fail("192.0.2.1", 1)]);
        assert_eq!(plain[0].severity, soc_core::Severity::High);
        assert!(plain[0].indicators.is_empty());
        let listed = run(&mut d, &[fail("203.0.113.9", 0), fail("203.0.113.9", 1)]);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].severity, soc_core::Severity::Critical);
        assert_eq!(listed[0].indicators, vec!["ip 203.0.113.9 (feed)"]);
    }

    #[test]
    fn wide_windows_keep_few_full_events_but_count_all() {
        let mut d = Detector::new(vec![rule(50, 100)]);
        let events: Vec<Value> = (0..49).map(|i| fail("a", i)).collect();
        assert!(run(&mut d, &events).is_empty());
        let changes = d.take_changes();
        let state: KeyState = serde_json::from_str(&changes.upserts[0].2).expect("state");
        assert_eq!(state.window.len(), 49);
        let full = state.window.iter().filter(|e| e.sample.is_some()).count();
        assert_eq!(full, MAX_EVIDENCE, "the oldest four and the newest");
        let alerts = run(&mut d, &[fail("a", 49)]);
        assert_eq!(alerts[0].count, 50);
        assert_eq!(alerts[0].evidence.len(), MAX_EVIDENCE);
        assert_eq!(alerts[0].source_ip.as_deref(), Some("a"));
    }

    #[test]
    fn out_of_order_events_count_by_their_own_time() {
        let mut d = Detector::new(vec![rule(3, 10)]);
        // Two events 100 s apart arrive first, then two old ones: no three within 10 s.
        let alerts = run(
            &mut d,
            &[fail("a", 100), fail("a", 101), fail("a", 0), fail("a", 1)],
        );
        assert!(alerts.is_empty(), "{alerts:?}");
        let alerts = run(&mut d, &[fail("a", 99)]);
        assert_eq!(alerts.len(), 1, "99, 100 and 101 are within 10 s");
    }

    fn attempts_rule(threshold: u64) -> Rule {
        crate::rules::parse_rule(
            &format!(
                "id: soc/t\ntitle: T\nseverity: high\ndetection: {{sel: {{event.outcome: failure}}, condition: sel}}\ngroup_by: source.ip\nthreshold: {threshold}\nwindow_secs: 600\ncount: attempts\n"
            ),
            std::path::Path::new("t.yaml"),
        )
        .expect("rule")
    }

    /// A line of sshd (or of PAM inside sshd) in connection `pid`.
    fn line(action: &str, pid: u32, port: Option<u16>, secs: i64, attempts: Option<u32>) -> Value {
        let mut ev = fail("203.0.113.9", secs);
        ev["event"]["action"] = json!(action);
        ev["host"] = json!({"hostname": "web-1"});
        ev["process"] = json!({"name": "sshd", "pid": pid});
        if let Some(p) = port {
            ev["source"]["port"] = json!(p);
        }
        if let Some(n) = attempts {
            ev["event"]["attempts"] = json!(n);
        }
        ev
    }

    fn last_count(alerts: &[Alert]) -> Option<u64> {
        alerts.last().map(|a| a.count)
    }

    #[test]
    fn an_attempt_logged_twice_counts_once() {
        // `Invalid user` then `Failed password for invalid user`: one guess per connection.
        let mut d = Detector::new(vec![attempts_rule(3)]);
        let mut events = Vec::new();
        for c in 0..4u32 {
            let s = i64::from(c) * 10;
            events.push(line("ssh_invalid_user", 100 + c, Some(40000), s, None));
            events.push(line("ssh_login", 100 + c, Some(40000), s, None));
        }
        let alerts = run(&mut d, &events);
        assert_eq!(last_count(&alerts), Some(4), "{alerts:?}");
        // Counted as lines, the same log says eight.
        let mut lines = Detector::new(vec![rule(3, 600)]);
        assert_eq!(last_count(&run(&mut lines, &events)), Some(8));
    }

    #[test]
    fn pam_and_sshd_report_the_same_three_guesses() {
        // PAM's first failure, sshd's three `Failed password`, PAM's `2 more` at the end.
        let mut d = Detector::new(vec![attempts_rule(3)]);
        let alerts = run(
            &mut d,
            &[
                line("pam_authentication_failure", 7, None, 0, None),
                line("ssh_login", 7, Some(5555), 0, None),
                line("ssh_login", 7, Some(5555), 3, None),
                line("ssh_login", 7, Some(5555), 6, None),
                line("pam_authentication_failure", 7, None, 7, Some(2)),
            ],
        );
        assert_eq!(last_count(&alerts), Some(3), "{alerts:?}");
        // Where sshd's own lines are missing, PAM's alone count all three.
        let mut d = Detector::new(vec![attempts_rule(3)]);
        let alerts = run(
            &mut d,
            &[
                line("pam_authentication_failure", 8, None, 0, None),
                line("pam_authentication_failure", 8, None, 7, Some(2)),
            ],
        );
        assert_eq!(last_count(&alerts), Some(3), "{alerts:?}");
    }

    #[test]
    fn a_repeated_line_counts_its_repeats() {
        // `Failed password ...` then `message repeated 4 times: [ Failed password ...]`.
        let mut d = Detector::new(vec![attempts_rule(5)]);
        let alerts = run(
            &mut d,
            &[
                line("ssh_login", 9, Some(1), 0, None),
                line("ssh_login", 9, Some(1), 20, Some(4)),
            ],
        );
        assert_eq!(last_count(&alerts), Some(5), "{alerts:?}");
        // Lines with no connection to tell them apart count what each reports.
        let mut d = Detector::new(vec![attempts_rule(5)]);
        let bare = |secs, n| {
            let mut ev = fail("203.0.113.9", secs);
            ev["event"]["attempts"] = json!(n);
            ev
        };
        let alerts = run(&mut d, &[bare(0, 2), bare(1, 3)]);
        assert_eq!(last_count(&alerts), Some(5), "{alerts:?}");
    }

    #[test]
    fn remembered_connections_are_bounded() {
        let mut d = Detector::new(vec![attempts_rule(1_000_000)]);
        let events: Vec<Value> = (0..500u32)
            .map(|c| line("ssh_login", c, Some(1), i64::from(c), None))
            .collect();
        run(&mut d, &events);
        let changes = d.take_changes();
        let state: KeyState = serde_json::from_str(&changes.upserts[0].2).expect("state");
        assert_eq!(state.connections.len(), MAX_CONNECTIONS);
        assert_eq!(state.window.iter().map(|e| e.weight).sum::<u64>(), 500);
    }

    #[test]
    fn a_rule_that_covers_another_counts_the_event_alone() {
        let parse = |text: &str| {
            crate::rules::parse_rule(
                text,
                std::path::Path::new(&format!(
                    "{}.yaml",
                    text.lines()
                        .next()
                        .unwrap_or("")
                        .rsplit('/')
                        .next()
                        .unwrap_or("")
                )),
            )
            .expect("rule")
        };
        let own = parse("id: soc/own\ntitle: Own\nseverity: high\ndetection: {sel: {event.outcome: failure}, condition: sel}\ncovers: [soc/other]\n");
        let other = parse("id: soc/other\ntitle: Other\nseverity: high\ndetection: {sel: {source.ip: a}, condition: sel}\n");
        let mut d = Detector::new(vec![other, own]);
        // Both match: only the covering rule raises.
        let alerts = run(&mut d, &[fail("a", 0)]);
        let rules: Vec<&str> = alerts.iter().map(|a| a.rule_id.as_str()).collect();
        assert_eq!(rules, vec!["soc/own"]);
        // The covered rule still counts what the covering one does not match.
        let mut ok = fail("a", 1);
        ok["event"]["outcome"] = json!("success");
        let alerts = run(&mut d, &[ok]);
        let rules: Vec<&str> = alerts.iter().map(|a| a.rule_id.as_str()).collect();
        assert_eq!(rules, vec!["soc/other"]);
    }

    #[test]
    fn a_bsd_repeat_counts_the_hosts_last_counted_line_again() {
        let mut d = Detector::new(vec![attempts_rule(5)]);
        let repeat = |secs: i64, n: u64| {
            let t = DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time");
            json!({"@timestamp": t.to_rfc3339(), "host": {"hostname": "web-1"},
                   "event": {"action": soc_core::event::ACTION_REPEATED, "attempts": n}})
        };
        let alerts = run(
            &mut d,
            &[
                line("ssh_login", 9, Some(1), 0, None),
                line("ssh_login", 9, Some(1), 2, None),
                repeat(30, 3),
            ],
        );
        assert_eq!(last_count(&alerts), Some(5), "{alerts:?}");
        // A repeat of a line no rule counted, or of an unknown host, counts nothing.
        let mut d = Detector::new(vec![attempts_rule(1)]);
        let mut other = line("ssh_login", 9, Some(1), 0, None);
        other["event"]["outcome"] = json!("success");
        assert!(run(&mut d, &[other, repeat(1, 3)]).is_empty());
    }
}
