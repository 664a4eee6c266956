//! Runs every rule's test cases (`<rule>.tests/<case>.ndjson` against
//! `<case>.expect.yaml`), like `hubtest run --all`. A rule without both a case that fires and
//! a case that does not fails this test. `SOC_BLESS=1` writes the observed alerts instead.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use soc_processor::rules::threshold::Detector;
use soc_processor::rules::{default_rules_dir, load_rule, rule_files};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Expect {
    alerts: Vec<ExpectedAlert>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ExpectedAlert {
    group_key: String,
    count: u64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

fn run_case(rule_file: &Path, events_file: &Path) -> Expect {
    let rule = load_rule(rule_file).expect("rule loads");
    let mut detector = Detector::new(vec![rule]);
    let mut latest: BTreeMap<String, ExpectedAlert> = BTreeMap::new();
    let text = std::fs::read_to_string(events_file).expect("events");
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", events_file.display(), n + 1));
        for a in detector.process(&event, 0, Utc::now()) {
            latest.insert(
                a.id.to_string(),
                ExpectedAlert {
                    group_key: a.group_key,
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

#[test]
fn every_rule_passes_its_cases() {
    let bless = std::env::var("SOC_BLESS").is_ok_and(|v| v == "1");
    let files = rule_files(&default_rules_dir()).expect("rules dir");
    assert!(!files.is_empty(), "no rules found");
    let mut failures = Vec::new();
    for rule_file in files {
        let stem = rule_file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name");
        let tests_dir = rule_file.with_file_name(format!("{stem}.tests"));
        let mut fires = false;
        let mut quiet = false;
        let cases = std::fs::read_dir(&tests_dir)
            .unwrap_or_else(|_| panic!("{} has no {}", rule_file.display(), tests_dir.display()));
        for case in cases.flatten() {
            let events = case.path();
            if events.extension().and_then(|e| e.to_str()) != Some("ndjson") {
                continue;
            }
            let expect_file = events.with_extension("expect.yaml");
            let observed = run_case(&rule_file, &events);
            if bless {
                let yaml = serde_yaml::to_string(&observed).expect("yaml");
                std::fs::write(&expect_file, yaml).expect("bless");
                continue;
            }
            let expected: Expect = serde_yaml::from_str(
                &std::fs::read_to_string(&expect_file)
                    .unwrap_or_else(|_| panic!("missing {}", expect_file.display())),
            )
            .expect("expect yaml");
            if expected.alerts.is_empty() {
                quiet = true;
            } else {
                fires = true;
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
