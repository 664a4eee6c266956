//! Indicators of compromise: lists of known-bad IPs, networks, domains, file hashes and user
//! agents, matched on every event before the rules run.
//!
//! Lists are text files (`*.txt`) in the IOC directory, one indicator a line:
//! `<type> <value> [# note]` with type `ip`, `cidr`, `domain`, `md5`, `sha1`, `sha256` or
//! `user_agent` (the rest of the line, matched as a case-insensitive substring). The file
//! name is the list's name on the alert. A matching event carries the hit as
//! `threat.indicator` (ECS) for rules to read; the shipped rule `soc/ioc-match` turns it into
//! an alert, and any other alert raised by that event is raised one severity level.

use crate::error::{Error, Result};
use crate::net::{in_network, parse_cidr, parse_ip, CidrError};
use ipnet::IpNet;
use serde_json::{json, Value};
use soc_core::assets::Assets;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

/// Event fields holding addresses, domains and hashes, by indicator type.
const IP_FIELDS: [&str; 2] = ["source.ip", "destination.ip"];
const DOMAIN_FIELDS: [&str; 5] = [
    "url.domain",
    "destination.domain",
    "source.domain",
    "dns.question.name",
    "tls.client.server_name",
];
const HASH_FIELDS: [&str; 6] = [
    "file.hash.md5",
    "file.hash.sha1",
    "file.hash.sha256",
    "process.hash.md5",
    "process.hash.sha1",
    "process.hash.sha256",
];

/// The indicator lists compiled into the binary (`processor/ioc/*.txt`).
#[derive(rust_embed::RustEmbed)]
#[folder = "ioc/"]
#[include = "*.txt"]
struct ShippedIndicators;

/// The shipped indicator lists, used unless a directory replaces them.
pub fn shipped_indicators() -> Assets {
    Assets::from_embed::<ShippedIndicators>("indicator lists")
}

/// One indicator's origin, for the alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicator {
    pub kind: &'static str,
    pub value: String,
    pub list: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub indicator: Indicator,
    /// The event field that matched.
    pub field: String,
}

impl Hit {
    /// How the hit is listed on an alert.
    pub fn label(&self) -> String {
        format!(
            "{} {} ({})",
            self.indicator.kind, self.indicator.value, self.indicator.list
        )
    }
}

/// A bad line of an indicator list, by its 1-based number.
#[derive(Debug, Clone, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct IocError {
    pub line: usize,
    pub kind: IocErrorKind,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum IocErrorKind {
    #[error("`{0}`: expected `<type> <value>`")]
    NoValue(String),
    #[error("`{0}`: not an IP address")]
    NotAnIp(String),
    #[error("`{value}`: {source}")]
    Cidr { value: String, source: CidrError },
    #[error("`{value}`: not a {kind} hash")]
    NotAHash { value: String, kind: &'static str },
    #[error("unknown indicator type `{0}` (ip, cidr, domain, md5, sha1, sha256, user_agent)")]
    UnknownType(String),
}

#[derive(Debug, Default, Clone)]
pub struct IocSet {
    ips: HashMap<IpAddr, Indicator>,
    cidrs: Vec<(IpNet, Indicator)>,
    domains: HashMap<String, Indicator>,
    hashes: HashMap<String, Indicator>,
    user_agents: Vec<(String, Indicator)>,
}

fn lookup<'a>(event: &'a Value, path: &str) -> Option<&'a str> {
    crate::fields::lookup(event, path).and_then(Value::as_str)
}

impl IocSet {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.ips.len()
            + self.cidrs.len()
            + self.domains.len()
            + self.hashes.len()
            + self.user_agents.len()
    }

    /// Every `*.txt` list of `set` (not its subdirectories); the list is named after its file.
    pub fn load(set: &Assets) -> Result<IocSet> {
        let mut set_out = IocSet::default();
        for f in set.files_with_extension("", &["txt"])? {
            if f.name.contains('/') {
                continue;
            }
            set_out
                .add_list(f.stem(), &f.text())
                .map_err(|source| Error::Ioc {
                    file: set.describe(&f.name),
                    source,
                })?;
        }
        Ok(set_out)
    }

    /// Every `*.txt` list in `dir`; a missing directory is an empty set.
    pub fn load_dir(dir: &Path) -> Result<IocSet> {
        if !dir.is_dir() {
            return Ok(IocSet::default());
        }
        IocSet::load(&Assets::Dir(dir.to_path_buf()))
    }

    /// Parse one list; an error names the line.
    pub fn add_list(&mut self, list: &str, text: &str) -> std::result::Result<(), IocError> {
        for (n, raw) in text.lines().enumerate() {
            let bad = |kind| IocError { line: n + 1, kind };
            let line = raw.split(" #").next().unwrap_or_default().trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (kind, value) = line
                .split_once(char::is_whitespace)
                .map(|(k, v)| (k, v.trim()))
                .ok_or_else(|| bad(IocErrorKind::NoValue(line.to_string())))?;
            let ind = |kind: &'static str, value: String| Indicator {
                kind,
                value,
                list: list.to_string(),
            };
            match kind {
                "ip" => {
                    let ip =
                        parse_ip(value).ok_or_else(|| bad(IocErrorKind::NotAnIp(value.into())))?;
                    self.ips.insert(ip, ind("ip", value.to_string()));
                }
                "cidr" => {
                    let net = parse_cidr(value).map_err(|source| {
                        bad(IocErrorKind::Cidr {
                            value: value.into(),
                            source,
                        })
                    })?;
                    self.cidrs.push((net, ind("cidr", value.to_string())));
                }
                "domain" => {
                    let d = value.trim_end_matches('.').to_lowercase();
                    self.domains.insert(d.clone(), ind("domain", d));
                }
                "md5" | "sha1" | "sha256" => {
                    let (kind, want) = match kind {
                        "md5" => ("md5", 32),
                        "sha1" => ("sha1", 40),
                        _ => ("sha256", 64),
                    };
                    if value.len() != want || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(bad(IocErrorKind::NotAHash {
                            value: value.into(),
                            kind,
                        }));
                    }
                    let h = value.to_lowercase();
                    self.hashes.insert(h.clone(), ind(kind, h));
                }
                "user_agent" => {
                    self.user_agents
                        .push((value.to_lowercase(), ind("user_agent", value.to_string())));
                }
                other => return Err(bad(IocErrorKind::UnknownType(other.to_string()))),
            }
        }
        Ok(())
    }

    /// The indicators an event matches.
    pub fn matches(&self, event: &Value) -> Vec<Hit> {
        let mut hits = Vec::new();
        if self.is_empty() {
            return hits;
        }
        for f in IP_FIELDS {
            let Some(ip) = lookup(event, f).and_then(parse_ip) else {
                continue;
            };
            if let Some(i) = self.ips.get(&ip) {
                hits.push(Hit {
                    indicator: i.clone(),
                    field: f.to_string(),
                });
            }
            for (net, i) in &self.cidrs {
                if in_network(&ip, net) {
                    hits.push(Hit {
                        indicator: i.clone(),
                        field: f.to_string(),
                    });
                }
            }
        }
        for f in DOMAIN_FIELDS {
            let Some(d) = lookup(event, f) else { continue };
            let d = d.trim_end_matches('.').to_lowercase();
            // The domain itself or any subdomain of it.
            let mut rest = d.as_str();
            loop {
                if let Some(i) = self.domains.get(rest) {
                    hits.push(Hit {
                        indicator: i.clone(),
                        field: f.to_string(),
                    });
                    break;
                }
                match rest.split_once('.') {
                    Some((_, parent)) if parent.contains('.') => rest = parent,
                    _ => break,
                }
            }
        }
        for f in HASH_FIELDS {
            if let Some(i) = lookup(event, f).and_then(|h| self.hashes.get(&h.to_lowercase())) {
                hits.push(Hit {
                    indicator: i.clone(),
                    field: f.to_string(),
                });
            }
        }
        if let Some(ua) = lookup(event, "user_agent.original") {
            let ua = ua.to_lowercase();
            for (needle, i) in &self.user_agents {
                if ua.contains(needle.as_str()) {
                    hits.push(Hit {
                        indicator: i.clone(),
                        field: "user_agent.original".to_string(),
                    });
                }
            }
        }
        hits
    }
}

/// The event with its first hit as ECS `threat.indicator`, for rules to match on.
pub fn annotate(event: &Value, hits: &[Hit]) -> Value {
    let mut out = event.clone();
    if let (Some(first), Some(obj)) = (hits.first(), out.as_object_mut()) {
        obj.insert(
            "threat".to_string(),
            json!({"indicator": {
                "type": first.indicator.kind,
                "value": first.indicator.value,
                "list": first.indicator.list,
                "field": first.field,
                "matches": hits.len(),
            }}),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> IocSet {
        let mut s = IocSet::default();
        s.add_list("feed", text).expect("list parses");
        s
    }

    #[test]
    fn every_indicator_type_matches_its_fields() {
        let s = set("ip 203.0.113.7\ncidr 198.51.100.0/24 # scanners\ndomain evil.example\nsha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nuser_agent Sqlmap/1.\n");
        assert_eq!(s.len(), 5);
        let hit = |v: Value| s.matches(&v).iter().map(Hit::label).collect::<Vec<_>>();
        assert_eq!(
            hit(json!({"source": {"ip": "::ffff:203.0.113.7"}})),
            vec!["ip 203.0.113.7 (feed)"]
        );
        assert_eq!(
            hit(json!({"destination": {"ip": "198.51.100.99"}})),
            vec!["cidr 198.51.100.0/24 (feed)"]
        );
        assert_eq!(
            hit(json!({"dns": {"question": {"name": "a.b.EVIL.example."}}})),
            vec!["domain evil.example (feed)"]
        );
        assert!(hit(json!({"dns": {"question": {"name": "notevil.example"}}})).is_empty());
        assert_eq!(
            hit(
                json!({"file": {"hash": {"sha256": "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"}}})
            ),
            vec!["sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 (feed)"]
        );
        assert_eq!(
            hit(json!({"user_agent": {"original": "sqlmap/1.7.2#stable"}})),
            vec!["user_agent Sqlmap/1. (feed)"]
        );
        assert!(hit(json!({"source": {"ip": "192.0.2.1"}})).is_empty());
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let mut s = IocSet::default();
        let err = s
            .add_list("x", "ip 1.2.3.4\nip nope\n")
            .expect_err("bad ip");
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(s.add_list("x", "md5 abc").is_err());
        assert!(s.add_list("x", "url http://x").is_err());
        assert!(s.add_list("x", "cidr 10.0.0.0/33").is_err());
    }

    #[test]
    fn annotation_exposes_the_first_hit_to_rules() {
        let s = set("ip 203.0.113.7");
        let ev = json!({"source": {"ip": "203.0.113.7"}});
        let out = annotate(&ev, &s.matches(&ev));
        assert_eq!(out["threat"]["indicator"]["value"], "203.0.113.7");
        assert_eq!(out["threat"]["indicator"]["field"], "source.ip");
    }
}
