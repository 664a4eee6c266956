//! Runs every rule's test cases, like `hubtest run --all`: `<rule>.tests/<case>.log` (raw
//! log lines, through the deployed SmartModule chain) or `<case>.ndjson` (normalized
//! events), each against `<case>.expect.yaml`, which lists the alerts the case raises:
//!
//! ```yaml
//! alerts:
//!   - group_key: 35.188.49.176
//!     severity: high
//!     mitre: [T1110, T1110.001]
//!     count: 6
//!     first_seen: "2026-02-12T14:10:21Z"
//!     last_seen: "2026-02-12T14:10:25Z"
//! ```
//!
//! `alerts: []` for a case that must not fire. Each expected alert states the severity and
//! the MITRE ATT&CK technique ids (`mitre: []` if the rule lists none) the alert carries, so
//! changing either in a rule fails its cases until they are updated; an expected alert that
//! leaves out either fails too. The severity is the rule's, one level up when the case's
//! events matched an indicator (the `*.txt` lists beside the cases). A rule without both a
//! case that fires and a case that does not fails this test. `SOC_BLESS=1` writes the
//! observed alerts of the cases that changed instead.

mod common;
use common::chain;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use soc_core::stream::chain::Chain;
use soc_core::stream::Record;
use soc_core::Severity;
use soc_processor::ioc::IocSet;
use soc_processor::rules::detector::Detector;
use soc_processor::rules::{load_rule, rule_files};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Expect {
    alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ExpectedAlert {
    group_key: String,
    /// Optional only so that an expectation without it is reported by name, not as a
    /// parse error; `unstated` refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<Severity>,
    /// As for `severity`; `Some(vec![])` is a rule without techniques.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mitre: Option<Vec<String>>,
    count: u64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

/// Receive time of raw case lines: syslog lines without a year take theirs from it, so
/// expectations do not change with the calendar.
const RECEIVED: &str = "2026-06-30T12:00:00Z";

/// The normalized events of a case file.
fn events_of(case: &Path, chain: &mut Chain) -> Vec<(serde_json::Value, i64)> {
    let text = std::fs::read_to_string(case).expect("case file");
    let lines = text.lines().filter(|l| !l.trim().is_empty());
    if case.extension().and_then(|e| e.to_str()) == Some("ndjson") {
        return lines
            .enumerate()
            .map(|(n, l)| {
                let v = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}:{}: {e}", case.display(), n + 1));
                (v, 0)
            })
            .collect();
    }
    let received = DateTime::parse_from_rfc3339(RECEIVED)
        .expect("time")
        .timestamp_millis();
    let records: Vec<Record> = lines
        .enumerate()
        .map(|(i, l)| Record {
            partition: 0,
            offset: i as u64,
            timestamp_ms: received,
            key: None,
            value: l.as_bytes().to_vec(),
        })
        .collect();
    chain
        .process(&records)
        .expect("chain runs")
        .into_iter()
        .map(|r| {
            let v = serde_json::from_slice(&r.value).expect("normalized JSON");
            (v, r.timestamp_ms)
        })
        .collect()
}

fn run_case(rule_file: &Path, case: &Path, chain: &mut Chain) -> Expect {
    let rule = load_rule(rule_file).expect("rule loads");
    // Indicator lists (`*.txt`) beside the cases are matched as in production.
    let iocs = IocSet::load_dir(case.parent().expect("case dir")).expect("indicator lists");
    let mut detector = Detector::new(vec![rule]).with_indicators(iocs);
    let mut latest: BTreeMap<String, ExpectedAlert> = BTreeMap::new();
    for (event, ts) in events_of(case, chain) {
        for a in detector.process(&event, ts, Utc::now()) {
            latest.insert(
                a.id.to_string(),
                ExpectedAlert {
                    group_key: a.group_key,
                    severity: Some(a.severity),
                    mitre: Some(a.mitre),
                    count: a.count,
                    first_seen: a.first_seen,
                    last_seen: a.last_seen,
                },
            );
        }
    }
    let mut alerts: Vec<ExpectedAlert> = latest.into_values().collect();
    alerts.sort_by(|a, b| (a.first_seen, &a.group_key).cmp(&(b.first_seen, &b.group_key)));
    Expect { alerts }
}

/// The expected alerts that do not say which severity or MITRE techniques they carry.
fn unstated(expect: &Expect) -> Vec<String> {
    expect
        .alerts
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let missing: Vec<&str> = [
                ("severity", a.severity.is_none()),
                ("mitre", a.mitre.is_none()),
            ]
            .into_iter()
            .filter_map(|(field, absent)| absent.then_some(field))
            .collect();
            (!missing.is_empty()).then(|| {
                format!(
                    "alert {} ({}) states no {}",
                    i + 1,
                    a.group_key,
                    missing.join(" and ")
                )
            })
        })
        .collect()
}

#[test]
fn an_expected_alert_must_state_severity_and_mitre() {
    let unstated_in = |extra: &str| {
        let yaml = concat!(
            "alerts:\n",
            "  - group_key: 203.0.113.9\n",
            "    count: 5\n",
            "    first_seen: 2026-03-10T10:00:00Z\n",
            "    last_seen: 2026-03-10T10:00:05Z\n",
        )
        .to_string()
            + extra;
        unstated(&serde_norway::from_str(&yaml).expect("yaml"))
    };
    assert_eq!(
        unstated_in(""),
        ["alert 1 (203.0.113.9) states no severity and mitre"]
    );
    assert_eq!(
        unstated_in("    severity: high\n"),
        ["alert 1 (203.0.113.9) states no mitre"]
    );
    assert_eq!(
        unstated_in("    mitre: [T1110]\n"),
        ["alert 1 (203.0.113.9) states no severity"]
    );
    assert!(
        unstated_in("    severity: high\n    mitre: []\n").is_empty(),
        "`mitre: []` states that the alert has no techniques"
    );
    let quiet: Expect = serde_norway::from_str("alerts: []\n").expect("yaml");
    assert!(unstated(&quiet).is_empty());
}

#[test]
fn every_rule_passes_its_cases() {
    let bless = std::env::var("SOC_BLESS").is_ok_and(|v| v == "1");
    let rules_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let files = rule_files(&rules_dir).expect("rules dir");
    assert!(!files.is_empty(), "no rules found");
    let mut failures = Vec::new();
    let mut chain = chain();
    for rule_file in files {
        let stem = rule_file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name");
        let tests_dir = rule_file.with_file_name(format!("{stem}.tests"));
        let mut fires = false;
        let mut quiet = false;
        let Ok(cases) = std::fs::read_dir(&tests_dir) else {
            failures.push(format!(
                "{} has no {}",
                rule_file.display(),
                tests_dir.display()
            ));
            continue;
        };
        for case in cases.flatten() {
            let events = case.path();
            if !matches!(
                events.extension().and_then(|e| e.to_str()),
                Some("ndjson" | "log")
            ) {
                continue;
            }
            let expect_file = events.with_extension("expect.yaml");
            let observed = run_case(&rule_file, &events, &mut chain);
            if bless {
                // Only cases whose result changed are rewritten, so comments elsewhere stay.
                let current = std::fs::read_to_string(&expect_file)
                    .ok()
                    .and_then(|t| serde_norway::from_str::<Expect>(&t).ok());
                if current.as_ref() != Some(&observed) {
                    let yaml = serde_norway::to_string(&observed).expect("yaml");
                    std::fs::write(&expect_file, yaml).expect("bless");
                }
                continue;
            }
            let expected: Expect = serde_norway::from_str(
                &std::fs::read_to_string(&expect_file)
                    .unwrap_or_else(|_| panic!("missing {}", expect_file.display())),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", expect_file.display()));
            if expected.alerts.is_empty() {
                quiet = true;
            } else {
                fires = true;
            }
            for problem in unstated(&expected) {
                failures.push(format!("{}: {problem}", expect_file.display()));
            }
            if observed != expected {
                failures.push(format!(
                    "{}: expected {:?}, observed {:?}",
                    events.display(),
                    expected,
                    observed
                ));
            }
        }
        if !(bless || fires && quiet) {
            failures.push(format!(
                "{} needs a case that fires and a case that does not",
                rule_file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
