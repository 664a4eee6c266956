//! Helpers shared by the corpus tests: where the third-party corpora live, and reading them.

use std::path::PathBuf;

/// `shared/corpora/<rel>` next to the repository, or `None` (with the reason printed) when
/// the corpora are not checked out: the tests then skip rather than fail.
pub fn corpus(rel: &str) -> Option<PathBuf> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpora/"
    ))
    .join(rel);
    if path.exists() {
        Some(path)
    } else {
        println!("skipped: corpus {} not found", path.display());
        None
    }
}

/// One JSON object per line.
pub fn read_jsonl(path: &PathBuf) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("corpus readable");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("corpus line is JSON"))
        .collect()
}

/// A fixed ingest time (2026-11-18) so lines without a year get one deterministically.
pub const RECEIVED_MS: i64 = 1_795_000_000_000;
