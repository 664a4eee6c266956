//! Line-by-line agreement with the CrowdSec hub's parser tests, for the parsers this module
//! covers. A line the hub rejects must not become a security event (no `event.category`);
//! a line it accepts must be recognized (an `event.action`) with the asserted fields equal:
//! `source_ip` = `source.ip`, `target_user` = `user.name`, `http_status` =
//! `http.response.status_code`, `http_path` = `url.original`, `service` as mapped below.

mod common;

use serde_json::Value;
use soc_core::event::Event;
use soc_normalize::normalize_line;
use std::collections::{BTreeMap, HashMap};

/// Hub parsers in scope, and the lowest agreement rate (%) each must keep. nginx-logs stays
/// below 100% on purpose: see `absolute_form_request_target_is_kept_as_written`. The hub
/// asserts no vsftpd lines (its vsftpd tests assert scenarios only); `ftp.rs` tests them.
const FLOORS: [(&str, f64); 15] = [
    ("sshd-logs", 100.0),
    ("sshd-success-logs", 100.0),
    ("pam-logs", 100.0),
    ("pkexec-logs", 100.0),
    ("postfix-logs", 100.0),
    ("dovecot-logs", 100.0),
    ("exim-logs", 100.0),
    ("proftpd-logs", 100.0),
    ("pureftpd-logs", 100.0),
    ("nginx-logs", 97.0),
    ("apache2-logs", 100.0),
    ("suricata-logs", 100.0),
    ("auditd-logs", 100.0),
    ("iptables-logs", 100.0),
    ("pf-logs", 100.0),
];

fn parser_name(p: &str) -> String {
    p.rsplit('/')
        .next()
        .unwrap_or(p)
        .trim_end_matches(".yaml")
        .to_string()
}

/// The hub's `service` value compared with what we set.
fn service_agrees(hub: &str, ev: &Event) -> bool {
    let service = ev.service.as_ref().and_then(|s| s.name.as_deref());
    let dataset = ev.event.dataset.as_deref().unwrap_or("");
    match hub {
        "tcp" | "udp" | "icmp" => {
            ev.network.as_ref().and_then(|n| n.transport.as_deref()) == Some(hub)
        }
        "suricata" => dataset.starts_with("suricata"),
        "pam" => dataset == "pam",
        "pureftpd" | "ftp" => service == Some("ftp"),
        "postfix" | "exim" => service == Some("smtp"),
        other => service == Some(other),
    }
}

/// Why `ev` disagrees with the hub's verdict on one line, or `None` if it agrees.
fn disagreement(
    accepted: bool,
    meta: &serde_json::Map<String, Value>,
    ev: &Event,
) -> Option<String> {
    if !accepted {
        return (!ev.event.category.is_empty())
            .then(|| format!("hub rejects, we say {:?}", ev.event.action));
    }
    if ev.event.action.is_none() {
        return Some("hub accepts, we do not recognize it".to_string());
    }
    let get = |k: &str| meta.get(k).and_then(Value::as_str);
    let mut why = Vec::new();
    if let Some(ip) = get("source_ip") {
        if ev.source_ip() != Some(ip) {
            why.push(format!("source.ip {:?} != {ip}", ev.source_ip()));
        }
    }
    if let Some(user) = get("target_user") {
        if ev.user_name() != Some(user) {
            why.push(format!("user.name {:?} != {user}", ev.user_name()));
        }
    }
    if let Some(status) = get("http_status") {
        let ours = ev
            .http
            .as_ref()
            .and_then(|h| h.response.as_ref())
            .and_then(|r| r.status_code)
            .map(|s| s.to_string());
        if ours.as_deref() != Some(status) {
            why.push(format!("status {ours:?} != {status}"));
        }
    }
    if let Some(path) = get("http_path") {
        let ours = ev.url.as_ref().and_then(|u| u.original.as_deref());
        if ours != Some(path) {
            why.push(format!("url.original {ours:?} != {path}"));
        }
    }
    if let Some(service) = get("service") {
        if !service_agrees(service, ev) {
            why.push(format!(
                "service {:?}/{:?} != {service}",
                ev.service.as_ref().and_then(|s| s.name.as_deref()),
                ev.event.dataset
            ));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

#[test]
fn hub_parser_agreement() {
    let (Some(lines), Some(index)) = (
        common::corpus("crowdsec-hub/parser_lines.jsonl"),
        common::corpus("crowdsec-hub/tests_index.jsonl"),
    ) else {
        return;
    };
    let tests: HashMap<String, Vec<String>> = common::read_jsonl(&index)
        .into_iter()
        .filter_map(|t| {
            let name = t["test"].as_str()?.to_string();
            let parsers = t["parsers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(parser_name)
                        .collect()
                })
                .unwrap_or_default();
            Some((name, parsers))
        })
        .collect();
    let floors: HashMap<&str, f64> = FLOORS.iter().copied().collect();
    // parser -> (log type, lines, agreed)
    let mut table: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    let mut disagreements = Vec::new();
    // Outside our scope, lines the hub rejects should not become security events either.
    let (mut rejected_elsewhere, mut flagged_elsewhere) = (0, 0);
    for rec in common::read_jsonl(&lines) {
        let Some(accepted) = rec["s01_success"].as_bool() else {
            continue;
        };
        let test = rec["test"].as_str().unwrap_or("");
        let ok_parsers: Vec<String> = rec["parsers_ok"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(parser_name)
                    .collect()
            })
            .unwrap_or_default();
        let in_scope = tests
            .get(test)
            .into_iter()
            .flatten()
            .chain(ok_parsers.iter())
            .find(|p| floors.contains_key(p.as_str()))
            .cloned();
        let line = rec["line"].as_str().unwrap_or("");
        let Some(parser) = in_scope else {
            if !accepted {
                rejected_elsewhere += 1;
                let ev = normalize_line(line, common::RECEIVED_MS);
                flagged_elsewhere += usize::from(!ev.event.category.is_empty());
            }
            continue;
        };
        let ev = normalize_line(line, common::RECEIVED_MS);
        let empty = serde_json::Map::new();
        let meta = rec["meta"].as_object().unwrap_or(&empty);
        let log_type = rec["log_type"].as_str().unwrap_or("").to_string();
        let row = table.entry((parser.clone(), log_type)).or_default();
        row.0 += 1;
        match disagreement(accepted, meta, &ev) {
            None => row.1 += 1,
            Some(why) => disagreements.push(format!("{parser} [{test}] {why}\n    {line:.160}")),
        }
    }
    println!(
        "{:<20} {:<18} {:>5} {:>6} {:>7}",
        "parser", "log type", "lines", "agreed", "rate"
    );
    let mut per_parser: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for ((parser, log_type), (n, ok)) in &table {
        println!(
            "{parser:<20} {log_type:<18} {n:>5} {ok:>6} {:>6.1}%",
            100.0 * *ok as f64 / *n as f64
        );
        let p = per_parser.entry(parser.clone()).or_default();
        p.0 += n;
        p.1 += ok;
    }
    let (total, agreed) = per_parser
        .values()
        .fold((0, 0), |(t, a), (n, ok)| (t + n, a + ok));
    println!("total: {agreed}/{total}");
    println!(
        "out of scope: {flagged_elsewhere} of {rejected_elsewhere} hub-rejected lines got a category"
    );
    println!("disagreements ({}):", disagreements.len());
    for d in disagreements.iter().take(40) {
        println!("  {d}");
    }
    let mut below = Vec::new();
    for (parser, (n, ok)) in &per_parser {
        let rate = 100.0 * *ok as f64 / *n as f64;
        let floor = floors.get(parser.as_str()).copied().unwrap_or(100.0);
        if rate + 1e-9 < floor {
            below.push(format!("{parser}: {rate:.1}% < {floor}%"));
        }
    }
    assert!(below.is_empty(), "below floor: {below:?}");
}

/// Test `nginx_req_limit_exceeded`: for `request: "POST https://example.com/"` the hub's
/// grok yields `http_path: //example.com/`. We keep the absolute-form target as the client
/// sent it (RFC 9112 section 3.2.2), which is what ECS `url.original` means.
#[test]
fn absolute_form_request_target_is_kept_as_written() {
    let ev = normalize_line(
        r#"2022/07/28 16:37:00 [error] 2118161#2118161: *1 limiting requests, excess: 5.459 by zone "z", client: 192.168.1.1, server: example.com, request: "POST https://example.com/", host: "example.com""#,
        common::RECEIVED_MS,
    );
    assert_eq!(ev.event.action.as_deref(), Some("http_rate_limited"));
    assert_eq!(
        ev.url.and_then(|u| u.original).as_deref(),
        Some("https://example.com/")
    );
}

/// Rough throughput of `normalize_line` over the in-scope corpus lines. Run it in release:
/// `cargo test --release --test hub_parser_agreement -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let Some(lines) = common::corpus("crowdsec-hub/parser_lines.jsonl") else {
        return;
    };
    let lines: Vec<String> = common::read_jsonl(&lines)
        .iter()
        .filter_map(|r| r["line"].as_str().map(str::to_string))
        .collect();
    let rounds = 50;
    let start = std::time::Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        for l in &lines {
            let ev = normalize_line(l, common::RECEIVED_MS);
            bytes += serde_json::to_vec(&ev).map(|v| v.len()).unwrap_or(0);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} lines in {secs:.2}s: {:.0} lines/s ({bytes} bytes out)",
        lines.len() * rounds,
        (lines.len() * rounds) as f64 / secs
    );
}
