//! The response policy: when an action may be proposed for an incident, what may be
//! approved without a person, the limits every action is held to, and what it may never
//! touch. Data, not code: `processor/policy/response.yaml` is shipped, and a file given by
//! configuration replaces it.

use crate::net::{in_network, parse_cidr, parse_ip, CidrError};
use crate::rules::detection::{Detection, DetectionError};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;
use soc_core::command::{valid_host_name, Action, IpTarget};
use soc_core::{ActionKind, Alert, Severity};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The policy shipped with `soc`.
const SHIPPED: &str = include_str!("../policy/response.yaml");

/// Why a response policy was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Yaml {
        path: PathBuf,
        source: serde_norway::Error,
    },
    #[error("{}: `{action}`: when: {source}", path.display())]
    When {
        path: PathBuf,
        action: &'static str,
        source: DetectionError,
    },
    #[error("{}: protected network `{network}`: {source}", path.display())]
    Network {
        path: PathBuf,
        network: String,
        source: CidrError,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    propose: BTreeMap<ActionKind, ProposeFile>,
    #[serde(default)]
    approve: ApproveFile,
    #[serde(default)]
    limits: Limits,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    protected: ProtectedFile,
    #[serde(default)]
    route: BTreeMap<ActionKind, RouteFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    hosts: Vec<String>,
    #[serde(default)]
    alert_host: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveFile {
    #[serde(default)]
    automatically: BTreeMap<ActionKind, AutoFile>,
    #[serde(default = "default_per_minute")]
    max_per_minute: u32,
}

impl Default for ApproveFile {
    fn default() -> Self {
        ApproveFile {
            automatically: BTreeMap::new(),
            max_per_minute: default_per_minute(),
        }
    }
}

fn default_per_minute() -> u32 {
    30
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoFile {
    min_severity: Severity,
}

pub use soc_core::response::Limits;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposeFile {
    #[serde(default)]
    when: Option<serde_norway::Value>,
    #[serde(default)]
    from_source: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtectedFile {
    #[serde(default)]
    networks: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
}

/// When one action kind may be proposed.
#[derive(Debug, Clone)]
struct Proposal {
    /// An event of the incident must match; the target is read from it.
    when: Option<Detection>,
    /// That event must come from the incident's source address.
    from_source: bool,
}

#[derive(Debug, Clone)]
pub struct ResponsePolicy {
    propose: BTreeMap<ActionKind, Proposal>,
    /// Kinds approved without a person, from this severity on.
    automatically: BTreeMap<ActionKind, Severity>,
    /// Most automatic approvals in any minute.
    pub max_auto_per_minute: u32,
    pub limits: Limits,
    /// Off: nothing is approved automatically and nothing is dispatched.
    pub enabled: bool,
    protected_networks: Vec<IpNet>,
    protected_users: Vec<String>,
    /// Kinds sent to named hosts' agents rather than (or besides) the alert's host.
    route: BTreeMap<ActionKind, Route>,
}

#[derive(Debug, Clone)]
struct Route {
    hosts: Vec<String>,
    alert_host: bool,
}

/// Only these mean the same on any host (a block is a block wherever the packet is
/// dropped), so only these may be routed to hosts other than the alert's. A process id, an
/// account or an isolation belongs to the host that was attacked.
const ROUTABLE: [ActionKind; 1] = [ActionKind::BlockIp];

/// Only these undo themselves (the kernel lifts a block when its TTL ends), so only these
/// may be approved without a person.
const SELF_REVERTING: [ActionKind; 1] = [ActionKind::BlockIp];

impl Default for ResponsePolicy {
    /// The shipped policy (a test holds it valid).
    fn default() -> Self {
        ResponsePolicy::parse(SHIPPED, Path::new("policy/response.yaml"))
            .expect("the shipped response policy is valid")
    }
}

impl ResponsePolicy {
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse a policy; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PolicyError> {
        let f: PolicyFile = serde_norway::from_str(text).map_err(|source| PolicyError::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
        let mut propose = BTreeMap::new();
        for (kind, p) in f.propose {
            let when = p
                .when
                .map(|w| Detection::parse(&w, &|field| Some(field.to_string())))
                .transpose()
                .map_err(|source| PolicyError::When {
                    path: path.to_path_buf(),
                    action: kind.as_str(),
                    source,
                })?;
            propose.insert(
                kind,
                Proposal {
                    when,
                    from_source: p.from_source,
                },
            );
        }
        let protected_networks = f
            .protected
            .networks
            .iter()
            .map(|n| {
                parse_cidr(n).map_err(|source| PolicyError::Network {
                    path: path.to_path_buf(),
                    network: n.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        let invalid = |message: String| PolicyError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut automatically = BTreeMap::new();
        for (kind, a) in f.approve.automatically {
            if !SELF_REVERTING.contains(&kind) {
                return Err(invalid(format!(
                    "approve.automatically: `{}` cannot be approved automatically; only \
                     actions that lift themselves can (block_ip)",
                    kind.as_str()
                )));
            }
            automatically.insert(kind, a.min_severity);
        }
        let l = &f.limits;
        if l.block_ttl_secs == 0 || l.block_ttl_secs > l.max_block_ttl_secs {
            return Err(invalid(format!(
                "limits: block_ttl_secs must be 1 to max_block_ttl_secs ({})",
                l.max_block_ttl_secs
            )));
        }
        if l.widest_prefix_v4 > 32 || l.widest_prefix_v6 > 128 {
            return Err(invalid(
                "limits: a prefix is at most /32 (IPv4) or /128 (IPv6)".into(),
            ));
        }
        let mut route = BTreeMap::new();
        for (kind, r) in f.route {
            if !ROUTABLE.contains(&kind) {
                return Err(invalid(format!(
                    "route: `{}` runs on the attacked host only; only block_ip can be routed \
                     to other hosts",
                    kind.as_str()
                )));
            }
            if r.hosts.is_empty() {
                return Err(invalid(format!(
                    "route.{}: `hosts` names at least one host",
                    kind.as_str()
                )));
            }
            if let Some(bad) = r.hosts.iter().find(|h| !valid_host_name(h)) {
                return Err(invalid(format!(
                    "route.{}: `{bad}` is not a host name",
                    kind.as_str()
                )));
            }
            route.insert(
                kind,
                Route {
                    hosts: r.hosts,
                    alert_host: r.alert_host,
                },
            );
        }
        Ok(ResponsePolicy {
            route,
            propose,
            automatically,
            max_auto_per_minute: f.approve.max_per_minute,
            limits: f.limits,
            enabled: f.enabled,
            protected_networks,
            protected_users: f.protected.users,
        })
    }

    /// The hosts whose agents carry out `kind` for an alert on `alert_host`, each with
    /// whether it is a host the policy named (rather than the alert's own).
    pub fn hosts_for(&self, kind: ActionKind, alert_host: &str) -> Vec<(String, bool)> {
        let Some(r) = self.route.get(&kind) else {
            return vec![(alert_host.to_string(), false)];
        };
        let mut out: Vec<(String, bool)> = Vec::new();
        if r.alert_host && !alert_host.is_empty() {
            out.push((alert_host.to_string(), false));
        }
        for h in &r.hosts {
            if !out.iter().any(|(o, _)| o == h) {
                out.push((h.clone(), h != alert_host));
            }
        }
        out
    }

    /// Networks no action may touch.
    pub fn protected_networks(&self) -> &[IpNet] {
        &self.protected_networks
    }

    /// Users no action may touch.
    pub fn protected_users(&self) -> &[String] {
        &self.protected_users
    }

    /// Whether the policy approves `kind` by itself for an alert of `severity` (the caller
    /// still applies the switch and the per-minute cap).
    pub fn auto_approves(&self, kind: ActionKind, severity: Severity) -> bool {
        self.enabled
            && self
                .automatically
                .get(&kind)
                .is_some_and(|min| severity >= *min)
    }

    /// The command an agent gets for a proposed action: typed parameters from the target
    /// and the incident's events. `None` for kinds no agent executes (`notify`).
    pub fn command(&self, kind: ActionKind, target: &str, alert: &Alert) -> Option<Action> {
        match kind {
            ActionKind::BlockIp => Some(Action::BlockIp {
                targets: vec![target.parse::<IpTarget>().ok()?],
                ttl_secs: self.limits.block_ttl_secs,
            }),
            ActionKind::LockUser => Some(Action::LockUser {
                user: target.to_string(),
            }),
            ActionKind::IsolateHost => Some(Action::IsolateHost),
            ActionKind::KillProcess => {
                let pid: u32 = target.parse().ok()?;
                // The earliest time the process was seen: a process that got the PID
                // later started after this one ended, so it fails the agent's check.
                let seen = alert
                    .evidence
                    .iter()
                    .filter(|e| {
                        e.pointer("/process/pid").is_some_and(|v| {
                            v.as_u64() == Some(u64::from(pid)) || v.as_str() == Some(target)
                        })
                    })
                    .filter_map(|e| {
                        e.get("@timestamp")?
                            .as_str()?
                            .parse::<chrono::DateTime<chrono::Utc>>()
                            .ok()
                    })
                    .min()
                    .unwrap_or(alert.first_seen);
                Some(Action::KillProcess {
                    pid,
                    started_not_after: seen,
                })
            }
            ActionKind::Notify => None,
        }
    }

    /// The target of `kind` for `alert` and the field it was read from, when the policy
    /// lets the action be proposed for this incident; `None` otherwise.
    pub fn target(&self, kind: ActionKind, alert: &Alert) -> Option<(String, String)> {
        let p = self.propose.get(&kind)?;
        let (target, field) = match &p.when {
            None => own_target(kind, alert)?,
            Some(when) => alert
                .evidence
                .iter()
                .filter(|e| when.matches(e))
                .filter(|e| !p.from_source || from_source(e, alert))
                .find_map(|e| event_target(kind, e))?,
        };
        (!self.is_protected(kind, &target)).then_some((target, field))
    }

    fn is_protected(&self, kind: ActionKind, target: &str) -> bool {
        match kind {
            ActionKind::BlockIp => parse_ip(target)
                .is_none_or(|ip| self.protected_networks.iter().any(|n| in_network(&ip, n))),
            ActionKind::LockUser => self
                .protected_users
                .iter()
                .any(|u| u.eq_ignore_ascii_case(target)),
            _ => false,
        }
    }
}

/// Does `event` come from the incident's source address?
fn from_source(event: &Value, alert: &Alert) -> bool {
    let ours = alert.source_ip.as_deref().and_then(parse_ip);
    let theirs = event
        .pointer("/source/ip")
        .and_then(Value::as_str)
        .and_then(parse_ip);
    ours.is_some() && ours == theirs
}

fn evidence_str<'a>(alert: &'a Alert, pointer: &str) -> Option<&'a str> {
    alert
        .evidence
        .iter()
        .find_map(|e| e.pointer(pointer).and_then(Value::as_str))
}

/// The incident's own target for `kind`: its source address or host.
fn own_target(kind: ActionKind, alert: &Alert) -> Option<(String, String)> {
    match kind {
        ActionKind::BlockIp => {
            let ip = alert
                .source_ip
                .as_deref()
                .or_else(|| evidence_str(alert, "/source/ip"))?;
            ip_target(ip)
        }
        ActionKind::IsolateHost => {
            let host = alert
                .host_name
                .as_deref()
                .or_else(|| evidence_str(alert, "/host/hostname"))?;
            host_target(host)
        }
        ActionKind::Notify => Some((String::new(), String::new())),
        // An account or a process is never the incident's own: it needs an event.
        ActionKind::LockUser | ActionKind::KillProcess => {
            alert.evidence.iter().find_map(|e| event_target(kind, e))
        }
    }
}

/// The target of `kind` in one event, when it has a well-formed one.
fn event_target(kind: ActionKind, e: &Value) -> Option<(String, String)> {
    let s = |p: &str| e.pointer(p).and_then(Value::as_str);
    match kind {
        ActionKind::BlockIp => ip_target(s("/source/ip")?),
        ActionKind::LockUser => {
            let user = s("/user/name")?;
            valid_name(user, 64).then(|| (user.to_string(), "user.name".into()))
        }
        ActionKind::IsolateHost => host_target(s("/host/hostname")?),
        ActionKind::KillProcess => {
            let v = e.pointer("/process/pid")?;
            let pid = v.as_u64().or_else(|| v.as_str()?.parse().ok())?;
            // PID 1 is init: killing it takes the host down.
            (pid > 1).then(|| (pid.to_string(), "process.pid".into()))
        }
        ActionKind::Notify => Some((String::new(), String::new())),
    }
}

fn ip_target(ip: &str) -> Option<(String, String)> {
    parse_ip(ip).map(|ip| (ip.to_string(), "source.ip".into()))
}

fn host_target(host: &str) -> Option<(String, String)> {
    (valid_name(host, 253) && !host.contains('@'))
        .then(|| (host.to_string(), "host.hostname".into()))
}

/// A name an agent can take as one argument: no option-like prefix, no separators.
fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '$'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use soc_core::Severity;

    fn alert(evidence: Vec<Value>) -> Alert {
        let now = chrono::Utc::now();
        Alert {
            id: uuid::Uuid::nil(),
            rule_id: "soc/ssh-bruteforce".into(),
            title: "t".into(),
            severity: Severity::High,
            mitre: vec![],
            group_by: "source.ip".into(),
            group_key: "203.0.113.9".into(),
            source_ip: Some("203.0.113.9".into()),
            host_name: Some("bastion".into()),
            count: evidence.len() as u64,
            first_seen: now,
            last_seen: now,
            evidence,
            revision: 1,
            indicators: vec![],
            incident_id: None,
            triage: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn failed(user: &str) -> Value {
        json!({"event": {"category": ["authentication"], "outcome": "failure", "action": "ssh_login"},
               "source": {"ip": "203.0.113.9"}, "user": {"name": user},
               "host": {"hostname": "bastion"}, "process": {"name": "sshd", "pid": 812}})
    }

    fn succeeded(user: &str, from: &str) -> Value {
        json!({"event": {"category": ["authentication"], "outcome": "success", "action": "ssh_login"},
               "source": {"ip": from}, "user": {"name": user},
               "host": {"hostname": "bastion"}, "process": {"name": "sshd", "pid": 813}})
    }

    fn kinds(p: &ResponsePolicy, a: &Alert) -> Vec<(ActionKind, String)> {
        ActionKind::ALL
            .into_iter()
            .filter_map(|k| p.target(k, a).map(|(t, _)| (k, t)))
            .collect()
    }

    #[test]
    fn an_attempt_blocks_the_source_and_touches_nothing_it_attacked() {
        let p = ResponsePolicy::default();
        let a = alert(vec![failed("alice"), failed("bob")]);
        assert_eq!(
            kinds(&p, &a),
            vec![
                (ActionKind::BlockIp, "203.0.113.9".into()),
                (ActionKind::Notify, String::new())
            ],
            "no account the attacker tried, no sshd pid, no attacked host"
        );
    }

    #[test]
    fn a_takeover_from_the_source_locks_that_account_and_isolates_its_host() {
        let p = ResponsePolicy::default();
        let a = alert(vec![failed("bob"), succeeded("alice", "203.0.113.9")]);
        let got = kinds(&p, &a);
        assert!(
            got.contains(&(ActionKind::LockUser, "alice".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&(ActionKind::IsolateHost, "bastion".into())),
            "{got:?}"
        );
        assert!(!got.iter().any(|(k, _)| *k == ActionKind::KillProcess));

        // A login by someone else, from elsewhere, is not this attacker's takeover.
        let a = alert(vec![failed("bob"), succeeded("alice", "192.0.2.50")]);
        let got = kinds(&p, &a);
        assert!(
            !got.iter()
                .any(|(k, _)| matches!(k, ActionKind::LockUser | ActionKind::IsolateHost)),
            "{got:?}"
        );
    }

    #[test]
    fn protected_targets_are_never_proposed() {
        let p = ResponsePolicy::default();
        let mut a = alert(vec![succeeded("root", "127.0.0.1")]);
        a.source_ip = Some("127.0.0.1".into());
        let got = kinds(&p, &a);
        assert!(
            !got.iter()
                .any(|(k, _)| matches!(k, ActionKind::BlockIp | ActionKind::LockUser)),
            "{got:?}"
        );
        a.source_ip = Some("::ffff:127.0.0.1".into());
        assert_eq!(
            p.target(ActionKind::BlockIp, &a),
            None,
            "mapped loopback too"
        );
    }

    #[test]
    fn only_a_process_event_can_be_killed() {
        let p = ResponsePolicy::default();
        let exec = json!({"event": {"category": ["process"], "action": "execve"},
                          "process": {"pid": 4711, "executable": "/tmp/x"}, "user": {"name": "www-data"}});
        let a = alert(vec![failed("bob"), exec]);
        assert_eq!(
            p.target(ActionKind::KillProcess, &a),
            Some(("4711".into(), "process.pid".into()))
        );
        let init = json!({"event": {"category": ["process"]}, "process": {"pid": 1}});
        assert_eq!(p.target(ActionKind::KillProcess, &alert(vec![init])), None);
    }

    #[test]
    fn only_self_lifting_actions_are_approved_automatically() {
        let p = ResponsePolicy::parse(
            "propose: {block_ip: {}}\napprove:\n  automatically:\n    block_ip: {min_severity: high}\n",
            Path::new("mine.yaml"),
        )
        .unwrap();
        assert!(p.auto_approves(ActionKind::BlockIp, Severity::Critical));
        assert!(!p.auto_approves(ActionKind::BlockIp, Severity::Medium));
        assert!(!p.auto_approves(ActionKind::LockUser, Severity::Critical));
        assert!(!ResponsePolicy::default().auto_approves(ActionKind::BlockIp, Severity::Critical));
        let err = ResponsePolicy::parse(
            "propose: {}\napprove:\n  automatically:\n    lock_user: {min_severity: low}\n",
            Path::new("mine.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("lock_user") && err.contains("cannot be approved"),
            "{err}"
        );
        let off = ResponsePolicy::parse(
            "enabled: false\npropose: {}\napprove: {automatically: {block_ip: {min_severity: low}}}\n",
            Path::new("mine.yaml"),
        )
        .unwrap();
        assert!(!off.auto_approves(ActionKind::BlockIp, Severity::Critical));
        assert!(ResponsePolicy::parse(
            "propose: {}\nlimits: {block_ttl_secs: 0}\n",
            Path::new("mine.yaml")
        )
        .is_err());
    }

    #[test]
    fn commands_take_typed_parameters_from_the_incident() {
        let p = ResponsePolicy::default();
        let mut exec = json!({"@timestamp": "2026-12-01T10:00:05Z", "event": {"category": ["process"]},
                              "process": {"pid": 4711}});
        let a = alert(vec![failed("bob"), exec.clone()]);
        assert_eq!(
            p.command(ActionKind::BlockIp, "203.0.113.9", &a),
            Some(Action::BlockIp {
                targets: vec!["203.0.113.9".parse().unwrap()],
                ttl_secs: 3600
            })
        );
        exec["@timestamp"] = json!("2026-12-01T10:00:01Z");
        let a = alert(vec![exec.clone(), failed("bob")]);
        match p.command(ActionKind::KillProcess, "4711", &a) {
            Some(Action::KillProcess {
                pid,
                started_not_after,
            }) => {
                assert_eq!(pid, 4711);
                assert_eq!(started_not_after.to_rfc3339(), "2026-12-01T10:00:01+00:00");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.command(ActionKind::Notify, "", &a), None);
        assert_eq!(p.command(ActionKind::BlockIp, "not an ip", &a), None);
    }

    #[test]
    fn a_policy_file_replaces_the_shipped_one_and_errors_name_it() {
        let p = ResponsePolicy::parse("propose:\n  notify: {}\n", Path::new("mine.yaml"))
            .expect("policy");
        let a = alert(vec![succeeded("alice", "203.0.113.9")]);
        assert_eq!(kinds(&p, &a), vec![(ActionKind::Notify, String::new())]);
        let err = ResponsePolicy::parse("propose:\n  reboot: {}\n", Path::new("mine.yaml"))
            .expect_err("unknown action")
            .to_string();
        assert!(err.contains("mine.yaml") && err.contains("reboot"), "{err}");
        let err = ResponsePolicy::parse(
            "propose: {}\nprotected: {networks: [10.0.0.0/40]}\n",
            Path::new("mine.yaml"),
        )
        .expect_err("bad network")
        .to_string();
        assert!(err.contains("10.0.0.0/40"), "{err}");
    }
}
