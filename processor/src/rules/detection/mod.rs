//! The `detection` block of a rule: the common subset of Sigma.
//!
//! Named selections, each a map of `field|modifier: value(s)` (all fields must match; a list
//! of values matches when any does, or every one with `|all`), a list of such maps (any map),
//! or a list of keywords searched in the message. A `condition` combines them with `and`,
//! `or`, `not`, parentheses, `1 of <pattern>`, `all of <pattern>` and `them`.
//!
//! As in Sigma, strings compare case-insensitively and plain values may use the `*` and `?`
//! wildcards; `|cased` compares exactly and `|re` is a regular expression.

mod condition;
mod pattern;

pub use condition::ConditionError;
use condition::{parse_condition, Expr};
pub use pattern::wildcard_match;
pub use pattern::PatternError;
use pattern::{pattern, value_matches, Pattern};

use crate::fields::lowercase;
use serde_json::Value;
use serde_norway::Value as Yaml;
use std::collections::BTreeMap;

/// Fields a keyword list is searched in, first present wins.
const KEYWORD_FIELDS: [&str; 2] = ["message", "log.original"];

#[derive(Debug, Clone)]
pub struct Detection {
    selections: BTreeMap<String, Selection>,
    condition: Expr,
    /// The condition as written, for explanations.
    condition_text: String,
}

#[derive(Debug, Clone)]
enum Selection {
    /// Any of these maps; each map needs all its field matchers.
    Maps(Vec<Vec<FieldMatch>>),
    /// Any of these strings occurs in the message.
    Keywords(Vec<Pattern>),
}

#[derive(Debug, Clone)]
struct FieldMatch {
    path: Vec<String>,
    /// Every pattern must match (`|all`); otherwise any.
    all: bool,
    patterns: Vec<Pattern>,
}

/// Why a detection block was refused, for the loader to report with the file name.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DetectionError {
    #[error("detection must be a mapping")]
    NotAMapping,
    #[error("detection keys must be strings")]
    NonStringKey,
    #[error("condition must be one string")]
    ConditionNotAString,
    #[error("detection needs a condition")]
    NoCondition,
    #[error(transparent)]
    Condition(#[from] ConditionError),
    #[error("selection `{0}` must be a mapping, a list of mappings or a list of keywords")]
    BadSelection(String),
    #[error("selection `{0}`: bad keyword")]
    BadKeyword(String),
    #[error("selection `{0}`: field names must be strings")]
    NonStringField(String),
    #[error("selection `{selection}`: field `{field}` has no mapping to an event field")]
    UnmappedField { selection: String, field: String },
    #[error("selection `{selection}`, `{key}`: {source}")]
    Value {
        selection: String,
        key: String,
        source: PatternError,
    },
}

impl Detection {
    /// Parse a Sigma-style `detection` mapping. `map_field` renames fields (Sigma taxonomy to
    /// ECS); it returns `None` for a field the caller cannot supply.
    pub fn parse(
        block: &Yaml,
        map_field: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Detection, DetectionError> {
        let Yaml::Mapping(map) = block else {
            return Err(DetectionError::NotAMapping);
        };
        let mut selections = BTreeMap::new();
        let mut condition = None;
        for (k, v) in map {
            let Some(name) = k.as_str() else {
                return Err(DetectionError::NonStringKey);
            };
            match name {
                "condition" => {
                    let text = match v {
                        Yaml::String(s) => s.clone(),
                        Yaml::Sequence(items) if items.len() == 1 => items[0]
                            .as_str()
                            .ok_or(DetectionError::ConditionNotAString)?
                            .to_string(),
                        _ => return Err(DetectionError::ConditionNotAString),
                    };
                    condition = Some(text);
                }
                // Sigma's `timeframe` belongs to correlations; the rule's window replaces it.
                "timeframe" => {}
                _ => {
                    let sel = parse_selection(name, v, map_field)?;
                    selections.insert(name.to_string(), sel);
                }
            }
        }
        let text = condition.ok_or(DetectionError::NoCondition)?;
        let condition = parse_condition(&text, &selections)?;
        Ok(Detection {
            selections,
            condition,
            condition_text: text,
        })
    }

    pub fn matches(&self, event: &Value) -> bool {
        self.eval(&self.condition, event)
    }

    /// The values `field` must equal for the detection to match at all, when the condition
    /// requires it (a selection ANDed at the top whose every alternative pins the field with
    /// plain values). The detector uses it to skip rules that cannot match an event.
    pub fn required_values(&self, field: &str) -> Option<Vec<String>> {
        let names: Vec<&String> = match &self.condition {
            Expr::Sel(n) => vec![n],
            Expr::And(items) => items
                .iter()
                .filter_map(|e| match e {
                    Expr::Sel(n) => Some(n),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        'selections: for name in names {
            let Some(Selection::Maps(maps)) = self.selections.get(name) else {
                continue;
            };
            let mut values = Vec::new();
            for m in maps {
                let Some(f) = m.iter().find(|f| !f.all && f.path.join(".") == field) else {
                    continue 'selections;
                };
                for p in &f.patterns {
                    match p {
                        Pattern::Eq {
                            value,
                            cased: false,
                        } => values.push(value.clone()),
                        _ => continue 'selections,
                    }
                }
            }
            if !values.is_empty() {
                return Some(values);
            }
        }
        None
    }

    /// The condition as written.
    pub fn condition(&self) -> &str {
        &self.condition_text
    }

    /// Each selection of the detection against `event`: whether it matched and, when it did
    /// not, the first field that failed (for `soc explain`).
    pub fn explain(&self, event: &Value) -> Vec<SelectionCheck> {
        self.selections
            .iter()
            .map(|(name, sel)| {
                let matched = selection_matches(sel, event);
                let why_not = (!matched).then(|| why_not(sel, event));
                SelectionCheck {
                    name: name.clone(),
                    matched,
                    why_not,
                }
            })
            .collect()
    }

    fn eval(&self, expr: &Expr, event: &Value) -> bool {
        match expr {
            Expr::Sel(name) => self
                .selections
                .get(name)
                .is_some_and(|s| selection_matches(s, event)),
            Expr::Not(e) => !self.eval(e, event),
            Expr::And(es) => es.iter().all(|e| self.eval(e, event)),
            Expr::Or(es) => es.iter().any(|e| self.eval(e, event)),
            Expr::Of { all, names } => {
                let mut it = names
                    .iter()
                    .filter_map(|n| self.selections.get(n))
                    .map(|s| selection_matches(s, event));
                if *all {
                    it.all(|b| b)
                } else {
                    it.any(|b| b)
                }
            }
        }
    }
}

/// One selection of a detection checked against one event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SelectionCheck {
    pub name: String,
    pub matched: bool,
    /// What the event lacked, e.g. `event.outcome is "success", wants "failure"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
}

/// The first failing field of the closest alternative (the map with the most fields matched).
fn why_not(sel: &Selection, event: &Value) -> String {
    match sel {
        Selection::Keywords(pats) => {
            let wanted: Vec<String> = pats.iter().take(5).map(ToString::to_string).collect();
            let more = if pats.len() > 5 { ", ..." } else { "" };
            format!("message has none of {}{more}", wanted.join(", "))
        }
        Selection::Maps(maps) => {
            let closest = maps
                .iter()
                .max_by_key(|m| m.iter().filter(|f| field_matches(f, event)).count());
            let Some(failed) = closest.and_then(|m| m.iter().find(|f| !field_matches(f, event)))
            else {
                return "no alternative matched".to_string();
            };
            let field = failed.path.join(".");
            let have = match lookup(event, &failed.path) {
                None => "absent".to_string(),
                Some(Value::String(s)) => format!("{s:?}"),
                Some(v) => v.to_string(),
            };
            let mut wants: Vec<String> = failed
                .patterns
                .iter()
                .take(5)
                .map(ToString::to_string)
                .collect();
            if failed.patterns.len() > 5 {
                wants.push(format!("... ({} values)", failed.patterns.len()));
            }
            let join = if failed.all { " and " } else { " or " };
            format!("{field} is {have}, wants {}", wants.join(join))
        }
    }
}

fn parse_selection(
    name: &str,
    v: &Yaml,
    map_field: &dyn Fn(&str) -> Option<String>,
) -> Result<Selection, DetectionError> {
    match v {
        Yaml::Mapping(_) => Ok(Selection::Maps(vec![parse_map(name, v, map_field)?])),
        Yaml::Sequence(items) if items.iter().all(|i| matches!(i, Yaml::Mapping(_))) => {
            let maps = items
                .iter()
                .map(|i| parse_map(name, i, map_field))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Selection::Maps(maps))
        }
        Yaml::Sequence(items) => {
            let mut pats = Vec::new();
            for i in items {
                let s = scalar(i).ok_or_else(|| DetectionError::BadKeyword(name.to_string()))?;
                pats.push(Pattern::Contains {
                    value: s.to_lowercase(),
                    cased: false,
                });
            }
            Ok(Selection::Keywords(pats))
        }
        Yaml::String(s) => Ok(Selection::Keywords(vec![Pattern::Contains {
            value: s.to_lowercase(),
            cased: false,
        }])),
        _ => Err(DetectionError::BadSelection(name.to_string())),
    }
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_map(
    name: &str,
    v: &Yaml,
    map_field: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<FieldMatch>, DetectionError> {
    let Yaml::Mapping(map) = v else {
        return Err(DetectionError::BadSelection(name.to_string()));
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let key = k
            .as_str()
            .ok_or_else(|| DetectionError::NonStringField(name.to_string()))?;
        let mut parts = key.split('|');
        let field = parts.next().unwrap_or_default();
        let mapped = map_field(field).ok_or_else(|| DetectionError::UnmappedField {
            selection: name.to_string(),
            field: field.to_string(),
        })?;
        let mods: Vec<&str> = parts.collect();
        let values: Vec<&Yaml> = match v {
            Yaml::Sequence(items) => items.iter().collect(),
            other => vec![other],
        };
        let all = mods.contains(&"all");
        let mut patterns = Vec::new();
        for val in values {
            patterns.push(pattern(&mods, val).map_err(|source| DetectionError::Value {
                selection: name.to_string(),
                key: key.to_string(),
                source,
            })?);
        }
        out.push(FieldMatch {
            path: mapped.split('.').map(str::to_string).collect(),
            all,
            patterns,
        });
    }
    Ok(out)
}

fn lookup<'a>(event: &'a Value, path: &[String]) -> Option<&'a Value> {
    crate::fields::lookup_segments(event, path.iter().map(String::as_str)).filter(|v| !v.is_null())
}

fn selection_matches(sel: &Selection, event: &Value) -> bool {
    match sel {
        Selection::Maps(maps) => maps
            .iter()
            .any(|m| m.iter().all(|f| field_matches(f, event))),
        Selection::Keywords(pats) => {
            let text = KEYWORD_FIELDS
                .iter()
                .find_map(|f| crate::fields::lookup(event, f).and_then(Value::as_str));
            let Some(text) = text else { return false };
            let lower = lowercase(text);
            pats.iter().any(|p| p.matches_str(text, &lower))
        }
    }
}

fn field_matches(f: &FieldMatch, event: &Value) -> bool {
    let v = lookup(event, &f.path);
    let one = |p: &Pattern| match p {
        Pattern::Exists(want) => v.is_some() == *want,
        Pattern::Null => v.is_none_or(|v| v.as_str() == Some("")),
        _ => v.is_some_and(|v| value_matches(p, v)),
    };
    if f.all {
        return f.patterns.iter().all(one);
    }
    // The common case, a string against a list of patterns: lowercase it once, not per pattern.
    if let Some(Value::String(s)) = v {
        let lower = lowercase(s);
        return f.patterns.iter().any(|p| match p {
            Pattern::Exists(want) => *want,
            Pattern::Null => s.is_empty(),
            _ => p.matches_str(s, &lower),
        });
    }
    f.patterns.iter().any(one)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn det(yaml: &str) -> Detection {
        let v: Yaml = serde_norway::from_str(yaml).expect("yaml");
        Detection::parse(&v, &|f| Some(f.to_string())).expect("detection")
    }

    fn http(path: &str, ua: &str, status: u16) -> Value {
        json!({"event": {"dataset": "http.access", "category": ["web"]},
               "url": {"original": path}, "user_agent": {"original": ua},
               "http": {"response": {"status_code": status}}, "source": {"ip": "10.1.2.3"},
               "message": format!("GET {path}")})
    }

    #[test]
    fn modifiers_match_case_insensitively() {
        let d = det("sel:\n  url.original|contains: ['UNION SELECT', '../']\ncondition: sel");
        assert!(d.matches(&http("/x?id=1 union select 1", "", 200)));
        assert!(d.matches(&http("/a/../../etc", "", 200)));
        assert!(!d.matches(&http("/index.html", "", 200)));
        let d = det("sel:\n  url.original|startswith: /wp-\n  user_agent.original|endswith: bot\ncondition: sel");
        assert!(d.matches(&http("/WP-login.php", "EvilBot", 200)));
        assert!(!d.matches(&http("/WP-login.php", "Firefox", 200)));
        let d = det("sel:\n  url.original|cased|contains: UNION\ncondition: sel");
        assert!(!d.matches(&http("/union", "", 200)));
    }

    #[test]
    fn all_requires_every_value_and_lists_are_or() {
        let d = det("sel:\n  url.original|contains|all: [select, from]\ncondition: sel");
        assert!(d.matches(&http("/q?select+x+from+y", "", 200)));
        assert!(!d.matches(&http("/q?select+x", "", 200)));
    }

    #[test]
    fn wildcards_regex_numbers_and_cidr() {
        let d = det("sel:\n  url.original: '/cgi-bin/*.sh'\ncondition: sel");
        assert!(d.matches(&http("/cgi-bin/test.sh", "", 200)));
        assert!(!d.matches(&http("/cgi-bin/test.shx", "", 200)));
        let d = det("sel:\n  url.original: '/a?c'\ncondition: sel");
        assert!(d.matches(&http("/abc", "", 200)));
        assert!(!d.matches(&http("/abbc", "", 200)));
        let d = det("sel:\n  url.original|re: '\\$\\{jndi:'\ncondition: sel");
        assert!(d.matches(&http("/${jndi:ldap://x}", "", 200)));
        let d = det("sel:\n  http.response.status_code|gte: 400\ncondition: sel");
        assert!(d.matches(&http("/", "", 404)));
        assert!(!d.matches(&http("/", "", 200)));
        let d = det("sel:\n  http.response.status_code: 404\ncondition: sel");
        assert!(d.matches(&http("/", "", 404)));
        let d = det("sel:\n  source.ip|cidr: 10.0.0.0/8\ncondition: sel");
        assert!(d.matches(&http("/", "", 200)));
        let d = det("sel:\n  source.ip|cidr: 192.168.0.0/16\ncondition: sel");
        assert!(!d.matches(&http("/", "", 200)));
    }

    #[test]
    fn conditions_combine_selections() {
        let d = det(
            "sel_a:\n  url.original|contains: admin\nsel_b:\n  url.original|contains: login\nfilter:\n  user_agent.original: good\ncondition: (1 of sel_*) and not filter",
        );
        assert!(d.matches(&http("/admin", "bad", 200)));
        assert!(d.matches(&http("/login", "bad", 200)));
        assert!(!d.matches(&http("/login", "GOOD", 200)));
        assert!(!d.matches(&http("/home", "bad", 200)));
        let d = det(
            "a:\n  url.original|contains: x\nb:\n  user_agent.original|contains: y\ncondition: all of them",
        );
        assert!(d.matches(&http("/x", "y", 200)));
        assert!(!d.matches(&http("/x", "z", 200)));
        let d = det("a:\n  url.original: /a\nb:\n  url.original: /b\nc:\n  user_agent.original: u\ncondition: a or b and c");
        assert!(d.matches(&http("/a", "", 200)), "and binds tighter than or");
        assert!(!d.matches(&http("/b", "", 200)));
    }

    #[test]
    fn keywords_search_the_message_and_lists_of_maps_are_alternatives() {
        let d = det("keywords:\n  - 'GET /SECRET'\ncondition: keywords");
        assert!(d.matches(&http("/secret", "", 200)));
        let d = det("sel:\n  - url.original: /a\n  - user_agent.original: u\ncondition: sel");
        assert!(d.matches(&http("/a", "", 200)));
        assert!(d.matches(&http("/b", "U", 200)));
        assert!(!d.matches(&http("/b", "v", 200)));
    }

    #[test]
    fn null_and_exists() {
        let d = det("sel:\n  user.name: null\ncondition: sel");
        assert!(d.matches(&http("/", "", 200)));
        let d = det("sel:\n  user_agent.original|exists: true\ncondition: sel");
        assert!(d.matches(&http("/", "", 200)));
        let d = det("sel:\n  user.name|exists: true\ncondition: sel");
        assert!(!d.matches(&http("/", "", 200)));
    }

    #[test]
    fn bad_detections_are_refused_with_a_reason() {
        let parse = |y: &str| {
            let v: Yaml = serde_norway::from_str(y).expect("yaml");
            Detection::parse(&v, &|f| Some(f.to_string()))
                .expect_err("refused")
                .to_string()
        };
        assert!(
            parse("sel:\n  a|base64offset|contains: x\ncondition: sel").contains("base64offset")
        );
        assert!(parse("sel:\n  a: x\ncondition: sel and other").contains("other"));
        assert!(parse("sel:\n  a: x\ncondition: sel | count() > 5").contains("threshold"));
        assert!(parse("sel:\n  a|re: '('\ncondition: sel").contains("regex"));
        assert!(parse("sel:\n  a: x").contains("condition"));
    }

    #[test]
    fn required_values_are_found_only_when_the_condition_needs_them() {
        let d = det("http:\n  event.dataset: [http.access, HTTP.error]\nx:\n  url.original|contains: a\ncondition: http and x");
        assert_eq!(
            d.required_values("event.dataset"),
            Some(vec!["http.access".to_string(), "http.error".to_string()])
        );
        let d = det("http:\n  event.dataset: http.access\nx:\n  url.original|contains: a\ncondition: http or x");
        assert_eq!(d.required_values("event.dataset"), None);
        let d = det("sel:\n  - event.dataset: sshd\n  - user.name: root\ncondition: sel");
        assert_eq!(d.required_values("event.dataset"), None);
        let d = det("sel:\n  event.dataset|contains: ssh\ncondition: sel");
        assert_eq!(d.required_values("event.dataset"), None);
    }
}
