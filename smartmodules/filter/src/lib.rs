//! The `filter` SmartModule: drops noise chosen by init parameters, without recompiling.
//!
//! Parameters (comma-separated lists; empty or absent means "drop none"):
//! - `drop_kinds`: `event.kind` values, e.g. `unparsed`
//! - `drop_categories`: events whose `event.category` contains one of these
//! - `drop_outcomes`: `event.outcome` values, e.g. `success`
//! - `drop_datasets`: `event.dataset` values, e.g. `pam`
//! - `drop_actions`: `event.action` values, e.g. `session_opened,session_closed`
//!
//! A record that is not a normalized event (not JSON) is kept: the filter removes known
//! noise, it never loses what it does not understand.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct FilterConfig {
    pub drop_kinds: Vec<String>,
    pub drop_categories: Vec<String>,
    pub drop_outcomes: Vec<String>,
    pub drop_datasets: Vec<String>,
    pub drop_actions: Vec<String>,
    /// Each configured value as it would appear in JSON (`"value"`). An event in which none
    /// occurs cannot match, so it is kept without being parsed. `None` when a value would need
    /// escaping in JSON: then every event is parsed.
    needles: Option<Vec<Vec<u8>>>,
}

const KNOWN_PARAMS: [&str; 5] = [
    "drop_kinds",
    "drop_categories",
    "drop_outcomes",
    "drop_datasets",
    "drop_actions",
];

fn list(params: &BTreeMap<String, String>, key: &str) -> Vec<String> {
    params
        .get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl FilterConfig {
    /// Unknown parameters are refused, so a typo does not silently drop nothing.
    pub fn from_params(params: &BTreeMap<String, String>) -> Result<Self, String> {
        if let Some(unknown) = params.keys().find(|k| !KNOWN_PARAMS.contains(&k.as_str())) {
            return Err(format!(
                "unknown parameter `{unknown}`; known: {}",
                KNOWN_PARAMS.join(", ")
            ));
        }
        let mut config = FilterConfig {
            drop_kinds: list(params, "drop_kinds"),
            drop_categories: list(params, "drop_categories"),
            drop_outcomes: list(params, "drop_outcomes"),
            drop_datasets: list(params, "drop_datasets"),
            drop_actions: list(params, "drop_actions"),
            needles: None,
        };
        let values = config
            .drop_kinds
            .iter()
            .chain(&config.drop_categories)
            .chain(&config.drop_outcomes)
            .chain(&config.drop_datasets)
            .chain(&config.drop_actions);
        let plain = |v: &String| {
            v.bytes()
                .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
        };
        config.needles = values
            .map(|v| plain(v).then(|| format!("\"{v}\"").into_bytes()))
            .collect();
        Ok(config)
    }

    fn drops_nothing(&self) -> bool {
        self.drop_kinds.is_empty()
            && self.drop_categories.is_empty()
            && self.drop_outcomes.is_empty()
            && self.drop_datasets.is_empty()
            && self.drop_actions.is_empty()
    }

    /// Whether to keep a normalized event (its JSON bytes).
    pub fn keep(&self, value: &[u8]) -> bool {
        if self.drops_nothing() {
            return true;
        }
        if let Some(needles) = &self.needles {
            if !needles.iter().any(|n| contains(value, n)) {
                return true;
            }
        }
        let Ok(view) = serde_json::from_slice::<View>(value) else {
            return true;
        };
        let e = view.event;
        let hit = |list: &[String], v: &Option<String>| {
            v.as_ref().is_some_and(|v| list.iter().any(|x| x == v))
        };
        !(hit(&self.drop_kinds, &e.kind)
            || hit(&self.drop_outcomes, &e.outcome)
            || hit(&self.drop_datasets, &e.dataset)
            || hit(&self.drop_actions, &e.action)
            || e.category.iter().any(|c| self.drop_categories.contains(c)))
    }
}

/// Whether `needle` (which starts with `"`) occurs in `haystack`: compared only where a quote
/// stands, of which a JSON event has a few dozen.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    haystack
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == first)
        .any(|(i, _)| haystack.get(i..i + needle.len()) == Some(needle))
}

/// Only the fields the filter reads; the rest of the event is skipped by the parser.
#[derive(Deserialize)]
struct View {
    #[serde(default)]
    event: EventView,
}

#[derive(Deserialize, Default)]
struct EventView {
    kind: Option<String>,
    #[serde(default)]
    category: Vec<String>,
    outcome: Option<String>,
    dataset: Option<String>,
    action: Option<String>,
}

static CONFIG: OnceLock<FilterConfig> = OnceLock::new();

pub fn init(params: &BTreeMap<String, String>) -> Result<(), String> {
    let config = FilterConfig::from_params(params)?;
    // A chain instance is initialized once; a second init keeps the first config.
    let _ = CONFIG.set(config);
    Ok(())
}

pub fn filter_record(input: &soc_sm_abi::Input<'_>) -> bool {
    match CONFIG.get() {
        Some(c) => c.keep(input.value),
        None => true,
    }
}

soc_sm_abi::export_init!(crate::init);
soc_sm_abi::export_filter!(crate::filter_record);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<FilterConfig, String> {
        FilterConfig::from_params(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    const FAIL: &[u8] =
        br#"{"event":{"kind":"event","category":["authentication"],"outcome":"failure","dataset":"sshd"}}"#;
    const SESSION: &[u8] =
        br#"{"event":{"kind":"event","category":["session"],"action":"session_opened","dataset":"pam"}}"#;
    const UNPARSED: &[u8] = br#"{"event":{"kind":"unparsed"},"log":{"original":"x"}}"#;

    #[test]
    fn no_params_keeps_everything() {
        let c = config(&[]).expect("valid");
        assert!(c.keep(FAIL) && c.keep(SESSION) && c.keep(UNPARSED) && c.keep(b"not json"));
    }

    #[test]
    fn drops_by_category_action_kind_and_outcome() {
        let c = config(&[("drop_categories", "session")]).expect("valid");
        assert!(c.keep(FAIL));
        assert!(!c.keep(SESSION));
        let c = config(&[("drop_actions", "session_closed, session_opened")]).expect("valid");
        assert!(!c.keep(SESSION));
        let c = config(&[("drop_kinds", "unparsed")]).expect("valid");
        assert!(!c.keep(UNPARSED) && c.keep(FAIL));
        let c = config(&[("drop_outcomes", "failure")]).expect("valid");
        assert!(!c.keep(FAIL) && c.keep(SESSION));
        let c = config(&[("drop_datasets", "pam")]).expect("valid");
        assert!(!c.keep(SESSION) && c.keep(FAIL));
    }

    #[test]
    fn the_substring_shortcut_never_changes_a_verdict() {
        let c =
            config(&[("drop_actions", "session_opened"), ("drop_datasets", "pam")]).expect("valid");
        assert!(c.needles.is_some());
        // The value appears, but not in the field the filter reads: parsed, and kept.
        let decoy =
            br#"{"event":{"kind":"event","action":"ssh_login"},"message":"session_opened"}"#;
        assert!(c.keep(decoy));
        assert!(!c.keep(SESSION));
        assert!(c.keep(FAIL));
        // A value that JSON would escape disables the shortcut instead of missing a match.
        let c = config(&[("drop_actions", "we\"ird")]).expect("valid");
        assert!(c.needles.is_none());
        assert!(!c.keep(br#"{"event":{"action":"we\"ird"}}"#));
    }

    #[test]
    fn non_json_is_kept_when_filtering() {
        let c = config(&[("drop_kinds", "unparsed")]).expect("valid");
        assert!(c.keep(b"\xff\x00"));
    }

    #[test]
    fn unknown_params_are_refused() {
        let err = config(&[("drop_categorys", "x")]).expect_err("typo refused");
        assert!(err.contains("drop_categorys"));
    }
}
