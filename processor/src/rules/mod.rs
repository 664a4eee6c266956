//! Detections are data: each rule is a YAML file under `processor/rules/`, named after its
//! id (`soc/ssh-bruteforce` lives in `ssh-bruteforce.yaml`), with its test cases beside it
//! in `<name>.tests/`.

pub mod detection;
pub mod detector;
pub mod sigma;

use crate::error::{Error, Result};
use crate::fields::{key_string, lookup};
pub use detection::{Detection, DetectionError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
pub use sigma::SigmaError;
use soc_core::assets::Assets;
use soc_core::Severity;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a rule file was refused; the loader reports it with the file's name.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("cannot read: {0}")]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Yaml(#[from] serde_norway::Error),
    #[error(transparent)]
    Sigma(#[from] SigmaError),
    #[error("detection: {0}")]
    Detection(#[from] DetectionError),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("group_by needs at least one field")]
    NoGroupBy,
    #[error("`{0}` is not an ATT&CK technique id (T1234 or T1234.001)")]
    NotATechnique(String),
    #[error("id `{id}` must end with the file name `{stem}`")]
    IdNotFileName { id: String, stem: String },
    #[error("duplicate rule id `{0}`")]
    DuplicateId(String),
}

/// Default window of a rule that sets none: matches closer than this are one incident.
pub const DEFAULT_WINDOW_SECS: u64 = 300;

/// A rule file as written (the native format). `detection` is Sigma's detection block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    id: String,
    title: String,
    #[serde(default)]
    description: String,
    severity: Severity,
    #[serde(default)]
    mitre: Vec<String>,
    detection: serde_norway::Value,
    #[serde(default = "default_group_by")]
    group_by: OneOrMany,
    #[serde(default = "one")]
    threshold: u64,
    #[serde(default = "default_window")]
    window_secs: u64,
    #[serde(default)]
    distinct: Option<String>,
    #[serde(default)]
    count: Count,
    #[serde(default)]
    covers: Vec<String>,
    #[serde(default)]
    references: Vec<String>,
}

/// What a threshold counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Count {
    /// Every matching line counts one.
    #[default]
    Events,
    /// Login attempts, not lines: a line counts the attempts it reports (`event.attempts`,
    /// default one), and lines of different kinds (`event.action`) from one connection
    /// (one process on one host, or one source address and port) report the same attempts
    /// again, so a connection counts the most any one kind reports. PAM's line and the
    /// daemon's own for one password guess count once.
    Attempts,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

fn default_group_by() -> OneOrMany {
    OneOrMany::One("source.ip".into())
}
const fn one() -> u64 {
    1
}
const fn default_window() -> u64 {
    DEFAULT_WINDOW_SECS
}

/// A detection: events matching `detection` are counted per `group_by` key; when `threshold`
/// of them (or of distinct `distinct` values) fall within `window_secs` of event time, one
/// incident opens, and later matches within the window update it. `threshold: 1` makes a
/// single-event rule whose repeats are grouped into one incident.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    /// MITRE ATT&CK technique ids.
    pub mitre: Vec<String>,
    pub detection: Detection,
    /// Dotted paths of the fields that key the window; the first one present is used.
    pub group_by: Vec<String>,
    pub threshold: u64,
    pub window_secs: u64,
    /// Count distinct values of this field instead of events.
    pub distinct: Option<String>,
    /// Count lines or login attempts.
    pub count: Count,
    /// Rules that detect the same thing (a Sigma rule for the same exploit): an event this
    /// rule counts, they do not, so one attack raises one alert.
    pub covers: Vec<String>,
    pub references: Vec<String>,
    /// `native` or `sigma`, and the Sigma rule's own id.
    pub format: RuleFormat,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleFormat {
    Native,
    Sigma { sigma_id: Option<String> },
}

impl Rule {
    pub fn matches(&self, event: &Value) -> bool {
        self.detection.matches(event)
    }

    /// The group key of an event and the field it came from, if it has one.
    pub fn key_of(&self, event: &Value) -> Option<(&str, String)> {
        self.group_by.iter().find_map(|f| {
            lookup(event, f)
                .and_then(key_string)
                .map(|k| (f.as_str(), k))
        })
    }

    /// The value counted by a `distinct` rule.
    pub fn distinct_of(&self, event: &Value) -> Option<String> {
        let f = self.distinct.as_deref()?;
        lookup(event, f).and_then(key_string)
    }

    fn validate(&self, file: &Path) -> std::result::Result<(), RuleError> {
        if self.threshold == 0 {
            return Err(RuleError::Zero("threshold"));
        }
        if self.window_secs == 0 {
            return Err(RuleError::Zero("window_secs"));
        }
        if self.group_by.is_empty() {
            return Err(RuleError::NoGroupBy);
        }
        if let Some(t) = self.mitre.iter().find(|t| !is_technique_id(t)) {
            return Err(RuleError::NotATechnique(t.clone()));
        }
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if self.id.rsplit('/').next() != Some(stem) {
            return Err(RuleError::IdNotFileName {
                id: self.id.clone(),
                stem: stem.to_string(),
            });
        }
        Ok(())
    }
}

pub fn is_technique_id(t: &str) -> bool {
    t.starts_with('T')
        && t[1..]
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Overrides of a rule's tuning, from configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
}

/// Every `*.yaml` rule under `dir`, recursively (test-case folders are skipped).
pub fn rule_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::Rule {
            file: d.clone(),
            source: e.into(),
        })?;
        for entry in entries.flatten() {
            let p = entry.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if p.is_dir() {
                if !name.ends_with(".tests") {
                    stack.push(p);
                }
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

pub fn load_rule(path: &Path) -> Result<Rule> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Rule {
        file: path.to_path_buf(),
        source: e.into(),
    })?;
    parse_rule(&text, path)
}

/// Parse a rule's text; `path` names it in errors and must match its id.
pub fn parse_rule(text: &str, path: &Path) -> Result<Rule> {
    parse_rule_text(text, path).map_err(|source| Error::Rule {
        file: path.to_path_buf(),
        source,
    })
}

fn parse_rule_text(text: &str, path: &Path) -> std::result::Result<Rule, RuleError> {
    let doc: serde_norway::Value = serde_norway::from_str(text)?;
    // Sigma rules are recognised by their `logsource`; native rules have none.
    let rule = if doc.get("logsource").is_some() {
        sigma::from_sigma(&doc, path)?
    } else {
        let f: RuleFile = serde_norway::from_value(doc)?;
        let detection = Detection::parse(&f.detection, &|field| Some(field.to_string()))?;
        Rule {
            id: f.id,
            title: f.title,
            description: f.description,
            severity: f.severity,
            mitre: f.mitre,
            detection,
            group_by: match f.group_by {
                OneOrMany::One(s) => vec![s],
                OneOrMany::Many(v) => v,
            },
            threshold: f.threshold,
            window_secs: f.window_secs,
            distinct: f.distinct,
            count: f.count,
            covers: f.covers,
            references: f.references,
            format: RuleFormat::Native,
        }
    };
    rule.validate(path)?;
    Ok(rule)
}

/// The rules compiled into the binary: every `*.yaml` under `processor/rules/`, without
/// the test cases.
#[derive(rust_embed::RustEmbed)]
#[folder = "rules/"]
#[include = "*.yaml"]
#[include = "*.yml"]
#[exclude = "*.tests/*"]
struct ShippedRules;

/// The shipped rules, used unless a rules directory replaces them.
pub fn shipped_rules() -> Assets {
    Assets::from_embed::<ShippedRules>("rules")
}

/// Load every rule of `set` and apply overrides by rule id. Unknown override ids and
/// duplicate rule ids are errors, so a typo never silently disables tuning.
pub fn load_rules(set: &Assets, overrides: &BTreeMap<String, RuleOverride>) -> Result<Vec<Rule>> {
    Ok(load_rule_families(set, overrides)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// The rules with their family: the directory they live in (`ssh`, `http`, `sigma`, ...).
pub fn load_rule_families(
    set: &Assets,
    overrides: &BTreeMap<String, RuleOverride>,
) -> Result<Vec<(String, Rule)>> {
    let mut rules: Vec<(String, Rule)> = Vec::new();
    for f in set.files_with_extension("", &["yaml", "yml"])? {
        let path = set.describe(&f.name);
        let rule = parse_rule(&f.text(), &path)?;
        if rules.iter().any(|(_, r)| r.id == rule.id) {
            return Err(Error::Rule {
                file: path,
                source: RuleError::DuplicateId(rule.id),
            });
        }
        let family = match f.name.split_once('/') {
            Some((dir, _)) => dir.to_string(),
            None => "other".to_string(),
        };
        rules.push((family, rule));
    }
    for (id, o) in overrides {
        let (_, rule) = rules
            .iter_mut()
            .find(|(_, r)| &r.id == id)
            .ok_or_else(|| Error::UnknownRule { id: id.clone() })?;
        if let Some(t) = o.threshold {
            rule.threshold = t.max(1);
        }
        if let Some(w) = o.window_secs {
            rule.window_secs = w.max(1);
        }
    }
    // A covered rule left out of a rules directory of one's own is no error: nothing to do.
    for (_, r) in &rules {
        for c in &r.covers {
            if !rules.iter().any(|(_, x)| &x.id == c) {
                tracing::warn!(rule = %r.id, covers = %c, "covers a rule that is not loaded");
            }
        }
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn shipped_rules_load_and_validate() {
        let rules = load_rules(&shipped_rules(), &BTreeMap::new()).expect("rules load");
        assert!(rules.iter().any(|r| r.id == "soc/ssh-bruteforce"));
        for r in &rules {
            for c in &r.covers {
                assert!(
                    rules.iter().any(|x| &x.id == c),
                    "{} covers unknown {c}",
                    r.id
                );
            }
        }
    }

    #[test]
    fn overrides_apply_and_unknown_ids_fail() {
        let mut o = BTreeMap::new();
        o.insert(
            "soc/ssh-bruteforce".to_string(),
            RuleOverride {
                threshold: Some(3),
                window_secs: Some(30),
            },
        );
        let rules = load_rules(&shipped_rules(), &o).expect("rules load");
        let r = rules
            .iter()
            .find(|r| r.id == "soc/ssh-bruteforce")
            .expect("rule");
        assert_eq!((r.threshold, r.window_secs), (3, 30));
        o.insert("soc/nope".to_string(), RuleOverride::default());
        assert!(load_rules(&shipped_rules(), &o).is_err());
    }

    #[test]
    fn invalid_rules_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("bad.yaml");
        std::fs::write(
            &f,
            "id: soc/bad\ntitle: x\nseverity: high\nmitre: [X1]\ndetection: {sel: {a: b}, condition: sel}\n",
        )
        .expect("write");
        let err = load_rule(&f).expect_err("bad mitre id").to_string();
        assert!(err.contains("bad.yaml") && err.contains("X1"), "{err}");
    }
}
