//! Following files through appends, rename-and-create and copytruncate rotations, with
//! restarts in between: every line exactly once.

mod support;

use soc_connectors::sink::SinkConfig;
use soc_connectors::tail::{FileTail, TailConfig};
use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use support::Harness;

fn append(path: &Path, from: usize, to: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    for i in from..to {
        writeln!(f, "line {i}").expect("write");
    }
}

fn tail(h: &Harness, pattern: &str) -> FileTail {
    let config = TailConfig::new(vec![pattern.to_string()]);
    FileTail::new(config, h.stream()).expect("tail")
}

/// One pass, waiting until what it read is durable.
async fn poll(t: &mut FileTail, sink: &soc_connectors::sink::Sink) {
    let mut in_flight = VecDeque::new();
    t.poll(sink, &mut in_flight).await.expect("poll");
    for r in in_flight {
        r.durable().await.expect("durable");
    }
}

fn numbers(h: &Harness) -> Vec<usize> {
    h.lines()
        .iter()
        .map(|l| {
            l.strip_prefix("line ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
        })
        .collect()
}

#[tokio::test]
async fn every_line_once_through_rotations_and_restarts() {
    let h = Harness::new().await;
    let logs = h.dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    let file = logs.join("app.log");
    let pattern = format!("{}/app.log*", logs.display());
    let sink = h.sink(SinkConfig::default());

    // Appends, read as they come; a line still being written waits for its newline.
    append(&file, 0, 10);
    let mut t = tail(&h, &pattern);
    poll(&mut t, &sink).await;
    append(&file, 10, 20);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .expect("open")
        .write_all(b"line 2")
        .expect("partial");
    poll(&mut t, &sink).await;
    assert_eq!(numbers(&h), (0..20).collect::<Vec<_>>());
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .expect("open")
        .write_all(b"0\n")
        .expect("rest of the line");
    append(&file, 21, 30);

    // Restart before reading them: the new tail resumes at the checkpoint.
    drop(t);
    let mut t = tail(&h, &pattern);
    poll(&mut t, &sink).await;
    assert_eq!(numbers(&h), (0..30).collect::<Vec<_>>());

    // Rename and create (logrotate's default): lines written to the old file after the last
    // read are read under its new name; the new file from its start.
    append(&file, 30, 35);
    std::fs::rename(&file, logs.join("app.log.1")).expect("rotate");
    append(&file, 35, 40);
    poll(&mut t, &sink).await;
    assert_eq!(numbers(&h), (0..40).collect::<Vec<_>>());

    // copytruncate: the copy keeps the old first line and resumes at the old position;
    // the truncated file, once written again, is new.
    append(&file, 40, 45);
    std::fs::copy(&file, logs.join("app.log.2")).expect("copy");
    std::fs::rename(logs.join("app.log.1"), logs.join("app.log.3")).expect("age");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    poll(&mut t, &sink).await;
    // Restart in between.
    drop(t);
    append(&file, 45, 50);
    let mut t = tail(&h, &pattern);
    poll(&mut t, &sink).await;
    poll(&mut t, &sink).await;
    assert_eq!(numbers(&h), (0..50).collect::<Vec<_>>());

    // A followed file deleted: what it gained before is still read, nothing after fails.
    let other = logs.join("app.log.tmp");
    append(&other, 50, 55);
    poll(&mut t, &sink).await;
    std::fs::remove_file(&other).expect("delete");
    poll(&mut t, &sink).await;
    assert_eq!(numbers(&h), (0..55).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_file_renamed_out_of_the_pattern_is_read_to_its_end() {
    let h = Harness::new().await;
    let logs = h.dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    let file = logs.join("auth.log");
    // Only the live name: the rotated one is not matched.
    let pattern = format!("{}/auth.log", logs.display());
    let sink = h.sink(SinkConfig::default());
    append(&file, 0, 5);
    let mut t = tail(&h, &pattern);
    poll(&mut t, &sink).await;
    append(&file, 5, 8);
    std::fs::rename(&file, logs.join("auth.log.1")).expect("rotate");
    append(&file, 8, 10);
    poll(&mut t, &sink).await;
    assert_eq!(numbers(&h), (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn compressed_rotations_and_long_lines() {
    let h = Harness::new().await;
    let logs = h.dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    std::fs::write(logs.join("app.log.2.gz"), b"\x1f\x8b\x08binary\n").expect("gz");
    let mut config = TailConfig::new(vec![format!("{}/app.log*", logs.display())]);
    config.max_line_bytes = 16;
    std::fs::write(
        logs.join("app.log"),
        format!("short\n{}\nafter\n", "y".repeat(5_000)),
    )
    .expect("write");
    let mut t = FileTail::new(config, h.stream()).expect("tail");
    let sink = h.sink(SinkConfig::default());
    poll(&mut t, &sink).await;
    let raw = h.raw();
    assert_eq!(raw.len(), 3, "{raw:?}");
    let (line, notes) = soc_core::event::split_notes(&raw[1]);
    assert_eq!((line.len(), notes.truncated_bytes), (16, Some(5_000)));
    assert_eq!(h.read(soc_core::stream::topics::DEAD_LETTERS).len(), 1);
}
