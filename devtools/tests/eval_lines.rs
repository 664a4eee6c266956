//! The labelled vectors of devtools/eval/lines (`soc-dev eval-lines`): every failure line
//! recognised with its source and user, every attempt counted once, no look-alike counted.
//! These are the scores reached; a change that loses one fails here.

use soc_devtools::eval_lines::{read_files, shipped_vectors, LineEvaluator};

/// Families the vectors must cover, each with at least this many labelled lines.
const FAMILIES: &[(&str, u64)] = &[
    ("access", 20),
    ("dovecot", 20),
    ("exim", 10),
    ("formats", 25),
    ("ftp", 20),
    ("http-auth", 15),
    ("http-denied", 20),
    ("pam", 15),
    ("postfix", 10),
    ("ssh", 40),
];

#[test]
fn every_labelled_line_is_read_and_counted_as_labelled() {
    let files = read_files(&[shipped_vectors()], false).expect("vectors");
    let mut eval = LineEvaluator::new(&soc::settings::Settings::default()).expect("evaluator");
    let report = eval.run(&files).expect("runs");
    soc_devtools::eval_lines::print(&report, true);
    for (family, min_lines) in FAMILIES {
        let s = report
            .families
            .get(*family)
            .unwrap_or_else(|| panic!("no vectors for {family}"));
        assert!(
            s.failure_lines + s.benign_lines >= *min_lines,
            "{family}: {} lines",
            s.failure_lines + s.benign_lines
        );
    }
    let t = report.total;
    assert_eq!(t.recognised, t.failure_lines, "failure lines missed");
    assert_eq!(t.users_right, t.users_labelled, "users read wrong");
    assert_eq!(
        t.attempts_counted, t.attempts_expected,
        "attempts miscounted"
    );
    assert_eq!(t.sources_miscounted, 0);
    assert_eq!(t.false_positives, 0, "look-alike lines counted");
}
