//! The built SmartModules run in fluvio-smartengine: offsets survive the chain, parameters
//! reach the filter, and a long-lived chain does not leak (10 million records under a 32 MB
//! store limit; the macro-generated glue of fluvio-smartmodule 0.50 dies after ~300 thousand
//! at 64 MB).
#![cfg(feature = "embedded")]

use soc_core::stream::chain::ModuleRegistry;
use soc_core::stream::{ChainStep, Record};
use std::collections::BTreeMap;

fn registry() -> ModuleRegistry {
    let reg = ModuleRegistry::load(&soc_core::stream::shipped::smartmodules())
        .expect("embedded SmartModules");
    assert!(reg.wasm("normalize").is_some() && reg.wasm("filter").is_some());
    reg
}

fn step(name: &str, params: &[(&str, &str)]) -> ChainStep {
    ChainStep {
        name: name.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn records(lines: &[&str], first_offset: u64) -> Vec<Record> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| Record {
            partition: 0,
            offset: first_offset + i as u64,
            timestamp_ms: 1_795_000_000_000 + i as i64,
            key: None,
            value: l.as_bytes().to_vec(),
        })
        .collect()
}

#[test]
fn chain_normalizes_filters_and_keeps_offsets() {
    let reg = registry();
    let mut chain = reg
        .build_chain(
            &[
                step("normalize", &[]),
                step("filter", &[("drop_kinds", "unparsed")]),
            ],
            None,
        )
        .expect("chain");
    let out = chain
        .process(&records(
            &[
                "Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 35.188.49.176 port 53502",
                "complete garbage",
                r#"203.0.113.9 - - [10/Oct/2000:13:55:36 -0700] "GET /.env HTTP/1.1" 404 0 "-" "curl/8""#,
            ],
            100,
        ))
        .expect("process");
    assert_eq!(
        out.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![100, 102]
    );
    let ev: serde_json::Value = serde_json::from_slice(&out[0].value).expect("json");
    assert_eq!(ev["source"]["ip"], "35.188.49.176");
    assert_eq!(ev["event"]["outcome"], "failure");
    assert_eq!(ev["@timestamp"], "2026-02-12T14:10:21.000Z");
    assert_eq!(out[0].timestamp_ms, 1_795_000_000_000);
    let ev: serde_json::Value = serde_json::from_slice(&out[1].value).expect("json");
    assert_eq!(ev["url"]["path"], "/.env");
    assert_eq!(ev["http"]["response"]["status_code"], 404);
}

#[test]
fn unparsed_lines_are_kept_and_tagged_without_the_filter_param() {
    let reg = registry();
    let mut chain = reg
        .build_chain(&[step("normalize", &[]), step("filter", &[])], None)
        .expect("chain");
    let out = chain
        .process(&records(&["\u{1}\u{2} ???", ""], 0))
        .expect("process");
    assert_eq!(out.len(), 2);
    let ev: serde_json::Value = serde_json::from_slice(&out[0].value).expect("json");
    assert_eq!(ev["event"]["kind"], "unparsed");
    assert_eq!(ev["log"]["original"], "\u{1}\u{2} ???");
}

#[test]
fn a_bad_filter_parameter_fails_the_chain_at_build_time() {
    let reg = registry();
    let err = reg
        .build_chain(&[step("filter", &[("drop_everything", "yes")])], None)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("filter"), "{err}");
}

#[test]
fn ten_million_records_through_one_chain_in_32_mb() {
    let reg = registry();
    let mut chain = reg
        .build_chain(
            &[
                step("normalize", &[]),
                step("filter", &[("drop_actions", "session_opened")]),
            ],
            Some(32 << 20),
        )
        .expect("chain");
    let lines: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                "Feb 12 14:10:21 host sshd[{i}]: Failed password for root from 10.0.{}.{} port 22 ssh2",
                i / 256 % 256,
                i % 256
            )
        })
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let batch = records(&refs, 0);
    let mut total = 0usize;
    for _ in 0..1_000 {
        total += chain
            .process(&batch)
            .expect("no leak: the store limit holds")
            .len();
    }
    assert_eq!(total, 10_000_000);
}

/// A record the chain fails on (here one too large for the wasm store) is set aside in the
/// dead-letter topic with the reason, and every other record of its batch goes on.
#[tokio::test]
async fn a_record_the_chain_fails_on_is_set_aside_and_the_rest_go_on() {
    use soc_core::stream::embedded::EmbeddedLog;
    use soc_core::stream::{
        topics, ConsumerSpec, DeadLetter, LogStream, ProduceRecord, StartFrom, TopicSpec,
    };
    use std::time::Duration;

    let dir = tempfile::tempdir().expect("tempdir");
    // One batch for everything, so the poison shares it with good records.
    let log = EmbeddedLog::open(&dir.path().join("log.redb"), Some(registry()))
        .expect("log")
        .with_chain_memory_limit(16 << 20)
        .with_chain_batch_bytes(usize::MAX);
    for name in [topics::RAW_LOGS, topics::DEAD_LETTERS] {
        log.ensure_topic(&TopicSpec {
            name: name.into(),
            partitions: 1,
            retention_secs: None,
            max_partition_bytes: None,
        })
        .await
        .expect("topic");
    }
    let ssh = |i: u32| {
        format!("Mar 10 08:00:0{i} bastion sshd[42]: Failed password for root from 203.0.113.5 port 4{i}000 ssh2")
    };
    let mut lines: Vec<String> = (0..3).map(ssh).collect();
    lines.push(format!(
        "Mar 10 08:00:03 bastion sshd[42]: {}",
        "A".repeat(12 << 20)
    ));
    lines.extend((4..7).map(ssh));
    let recs = lines
        .iter()
        .map(|l| ProduceRecord {
            key: None,
            value: l.as_bytes().to_vec(),
            timestamp_ms: 1_795_000_000_000,
        })
        .collect();
    log.produce(topics::RAW_LOGS, recs, vec![])
        .await
        .expect("produce");

    let mut consumer = log
        .consumer(ConsumerSpec {
            topic: topics::RAW_LOGS.into(),
            partition: 0,
            consumer_id: "test".into(),
            chain: vec![step("normalize", &[]), step("filter", &[])],
            start: StartFrom::Beginning,
        })
        .await
        .expect("consumer");
    let mut offsets = Vec::new();
    for _ in 0..10 {
        let batch = consumer
            .next_batch(100, Duration::from_millis(200))
            .await
            .expect("the chain's failure does not stop the consumer");
        offsets.extend(batch.iter().map(|r| r.offset));
        if offsets.len() >= 6 {
            break;
        }
    }
    assert_eq!(
        offsets,
        vec![0, 1, 2, 4, 5, 6],
        "every good record, in order"
    );
    assert_eq!(log.dead_letters(), 1);
    let letters = log
        .read(topics::DEAD_LETTERS, 0, 0, 10)
        .expect("dead letters");
    assert_eq!(letters.len(), 1);
    let letter: DeadLetter = serde_json::from_slice(&letters[0].value).expect("json");
    assert_eq!(letter.reason, "chain_failed");
    assert_eq!(letter.source, "raw-logs/0@3");
    assert_eq!(letter.bytes, lines[3].len() as u64);
    assert!(letter
        .head
        .starts_with("Mar 10 08:00:03 bastion sshd[42]: AAAA"));
    assert!(letter.head.len() <= DeadLetter::HEAD);
}
