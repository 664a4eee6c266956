//! The detections against the CrowdSec hub's tests (`soc-dev eval`): recall and precision on the
//! in-scope log types must not fall below what they have reached.

use soc_devtools::eval::{Evaluator, Mapping};
use std::path::Path;

/// Floor of the in-scope precision over every alert, parser tests' alerts included
/// (corroborated ones right, unscored ones spurious).
const STRICT_FLOOR: f64 = 0.963;

/// Floors, per log type and overall: (log type, min recall, min precision). They are the
/// scores reached; raise them when detections improve, never lower them to pass.
const FLOORS: &[(&str, f64, f64)] = &[
    ("in scope", 0.980, 0.986),
    ("nginx", 1.0, 0.986),
    ("apache2", 1.0, 1.0),
    ("syslog", 0.928, 0.975),
    ("suricata-evelogs", 1.0, 1.0),
    ("auditd", 1.0, 1.0),
    ("proftpd", 1.0, 1.0),
    ("vsftpd", 1.0, 1.0),
    ("exim", 1.0, 1.0),
];

#[test]
fn hub_scores_do_not_regress() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/crowdsec-hub");
    if !corpus.join("tests_index.jsonl").exists() {
        eprintln!("skipped: {} not found", corpus.display());
        return;
    }
    let mapping = Mapping::crowdsec_hub().expect("mapping");
    let mut eval = Evaluator::new(&soc::settings::Settings::default(), mapping).expect("evaluator");
    let report = eval.run(&corpus, None).expect("eval runs");
    soc_devtools::eval::print(&report, false);
    let mut failures = Vec::new();
    for (name, min_recall, min_precision) in FLOORS {
        let score = if *name == "in scope" {
            report.in_scope
        } else {
            *report
                .by_log_type
                .get(*name)
                .unwrap_or_else(|| panic!("no in-scope tests of type {name}"))
        };
        if score.recall() < *min_recall || score.precision() < *min_precision {
            failures.push(format!(
                "{name}: recall {:.3} (floor {min_recall}), precision {:.3} (floor {min_precision})",
                score.recall(),
                score.precision()
            ));
        }
    }
    let strict = report.in_scope.strict_precision();
    if strict < STRICT_FLOOR {
        failures.push(format!(
            "in scope: strict precision {strict:.3} (floor {STRICT_FLOOR})"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
