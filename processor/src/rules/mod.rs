//! Detections are data: each rule is a YAML file under `processor/rules/`, named after its
//! id (`soc/ssh-bruteforce` lives in `ssh-bruteforce.yaml`), with its test cases beside it
//! in `<name>.tests/`.

pub mod threshold;

use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use soc_core::Severity;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One condition on a field of the normalized event. An array field matches when any of its
/// elements does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Dotted ECS path, e.g. `event.outcome`.
    pub field: String,
    /// The field equals this value.
    #[serde(default)]
    pub equals: Option<String>,
    /// The field equals one of these values.
    #[serde(default)]
    pub any_of: Option<Vec<String>>,
    /// The field is present (true) or absent (false).
    #[serde(default)]
    pub exists: Option<bool>,
}

/// A windowed threshold rule: `threshold` matching events with the same `group_by` value
/// within `window_secs` of event time raise one incident.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub severity: Severity,
    /// MITRE ATT&CK technique ids.
    #[serde(default)]
    pub mitre: Vec<String>,
    /// Every condition must hold.
    pub filter: Vec<Condition>,
    /// Dotted path of the field that keys the window, e.g. `source.ip`.
    pub group_by: String,
    pub threshold: u64,
    pub window_secs: u64,
}

/// Look up a dotted path in a JSON object.
pub fn lookup<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(event, |v, key| v.get(key))
}

fn value_matches(v: &Value, pred: &dyn Fn(&str) -> bool) -> bool {
    match v {
        Value::String(s) => pred(s),
        Value::Number(n) => pred(&n.to_string()),
        Value::Bool(b) => pred(if *b { "true" } else { "false" }),
        Value::Array(items) => items.iter().any(|i| value_matches(i, pred)),
        _ => false,
    }
}

impl Condition {
    pub fn matches(&self, event: &Value) -> bool {
        let v = lookup(event, &self.field).filter(|v| !v.is_null());
        if let Some(want) = self.exists {
            if v.is_some() != want {
                return false;
            }
        }
        if let Some(eq) = &self.equals {
            match v {
                Some(v) if value_matches(v, &|s| s == eq) => {}
                _ => return false,
            }
        }
        if let Some(any) = &self.any_of {
            match v {
                Some(v) if value_matches(v, &|s| any.iter().any(|a| a == s)) => {}
                _ => return false,
            }
        }
        true
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.equals.is_none() && self.any_of.is_none() && self.exists.is_none() {
            return Err(format!(
                "condition on `{}` needs one of equals, any_of, exists",
                self.field
            ));
        }
        Ok(())
    }
}

impl Rule {
    pub fn matches(&self, event: &Value) -> bool {
        self.filter.iter().all(|c| c.matches(event))
    }

    /// The group key of an event, if it has one (string or number).
    pub fn key_of(&self, event: &Value) -> Option<String> {
        match lookup(event, &self.group_by)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn validate(&self, file: &Path) -> Result<()> {
        let bad = |reason: String| Error::Rule {
            file: file.to_path_buf(),
            reason,
        };
        if self.threshold == 0 {
            return Err(bad("threshold must be at least 1".into()));
        }
        if self.window_secs == 0 {
            return Err(bad("window_secs must be at least 1".into()));
        }
        if self.filter.is_empty() {
            return Err(bad("filter needs at least one condition".into()));
        }
        for c in &self.filter {
            c.validate().map_err(bad)?;
        }
        for t in &self.mitre {
            let ok = t.starts_with('T')
                && t[1..]
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                return Err(bad(format!(
                    "`{t}` is not an ATT&CK technique id (T1234 or T1234.001)"
                )));
            }
        }
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if self.id.rsplit('/').next() != Some(stem) {
            return Err(bad(format!(
                "id `{}` must end with the file name `{stem}`",
                self.id
            )));
        }
        Ok(())
    }
}

/// Overrides of a rule's tuning, from configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOverride {
    pub threshold: Option<u64>,
    pub window_secs: Option<u64>,
}

/// Every `*.yaml` rule under `dir`, recursively (test-case folders are skipped).
pub fn rule_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::Rule {
            file: d.clone(),
            reason: e.to_string(),
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
        reason: e.to_string(),
    })?;
    let rule: Rule = serde_yaml::from_str(&text).map_err(|e| Error::Rule {
        file: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    rule.validate(path)?;
    Ok(rule)
}

/// Load every rule under `dir` and apply overrides by rule id. Unknown override ids and
/// duplicate rule ids are errors, so a typo never silently disables tuning.
pub fn load_rules(dir: &Path, overrides: &BTreeMap<String, RuleOverride>) -> Result<Vec<Rule>> {
    let mut rules: Vec<Rule> = Vec::new();
    for f in rule_files(dir)? {
        let rule = load_rule(&f)?;
        if rules.iter().any(|r| r.id == rule.id) {
            return Err(Error::Rule {
                file: f,
                reason: format!("duplicate rule id `{}`", rule.id),
            });
        }
        rules.push(rule);
    }
    for (id, o) in overrides {
        let rule = rules
            .iter_mut()
            .find(|r| &r.id == id)
            .ok_or_else(|| Error::Config(format!("override for unknown rule `{id}`")))?;
        if let Some(t) = o.threshold {
            rule.threshold = t.max(1);
        }
        if let Some(w) = o.window_secs {
            rule.window_secs = w.max(1);
        }
    }
    Ok(rules)
}

/// The rules shipped with the processor.
pub fn default_rules_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_match_arrays_and_presence() {
        let ev = json!({"event": {"category": ["authentication"], "outcome": "failure"}, "source": {"ip": "1.2.3.4"}});
        let c = |yaml: &str| serde_yaml::from_str::<Condition>(yaml).expect("condition");
        assert!(c("{field: event.category, equals: authentication}").matches(&ev));
        assert!(!c("{field: event.category, equals: web}").matches(&ev));
        assert!(c("{field: event.outcome, any_of: [failure, unknown]}").matches(&ev));
        assert!(c("{field: source.ip, exists: true}").matches(&ev));
        assert!(!c("{field: user.name, exists: true}").matches(&ev));
        assert!(!c("{field: user.name, equals: root}").matches(&ev));
    }

    #[test]
    fn shipped_rules_load_and_validate() {
        let rules = load_rules(&default_rules_dir(), &BTreeMap::new()).expect("rules load");
        assert!(rules.iter().any(|r| r.id == "soc/ssh-bruteforce"));
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
        let rules = load_rules(&default_rules_dir(), &o).expect("rules load");
        let r = rules
            .iter()
            .find(|r| r.id == "soc/ssh-bruteforce")
            .expect("rule");
        assert_eq!((r.threshold, r.window_secs), (3, 30));
        o.insert("soc/nope".to_string(), RuleOverride::default());
        assert!(load_rules(&default_rules_dir(), &o).is_err());
    }

    #[test]
    fn invalid_rules_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("bad.yaml");
        std::fs::write(
            &f,
            "id: soc/bad\ntitle: x\nseverity: high\nmitre: [X1]\nfilter: [{field: a, equals: b}]\ngroup_by: a\nthreshold: 1\nwindow_secs: 1\n",
        )
        .expect("write");
        let err = load_rule(&f).expect_err("bad mitre id").to_string();
        assert!(err.contains("bad.yaml") && err.contains("X1"), "{err}");
    }
}
