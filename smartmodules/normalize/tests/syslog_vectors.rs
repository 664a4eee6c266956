//! rsyslog's parser test vectors (34 lenient readings of RFC 3164 / RFC 5424): our syslog
//! header parser against rsyslog's output, field by field, rendered with the vector's own
//! template. Two conventions of rsyslog are applied when rendering, not parsing:
//! a missing PRI is shown as rsyslog's default 13 (user.notice, RFC 3164 section 4.3.3), and a
//! missing host name as `$RS_HOSTNAME` (rsyslog fills in the receiving host; we leave
//! `host` empty). Messages are compared without leading spaces: rsyslog keeps the space
//! after the tag in `%msg%`, we drop it.

mod common;

use soc_normalize::normalize_line;
use soc_normalize::syslog::{self, SyslogLine};
use soc_normalize::time::{self, Receipt};

const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Our reading of `input`, rendered with rsyslog's template; `None` if not syslog to us.
fn render(input: &str, template: &str) -> Option<(String, String)> {
    let l: SyslogLine<'_> = syslog::parse(input, Receipt::at(common::RECEIVED_MS))?;
    let pri = l.priority.unwrap_or(13);
    let mut fields = Vec::new();
    for part in template.split(',') {
        let v = match part {
            "%PRI%" => pri.to_string(),
            "%syslogfacility-text%" => FACILITIES[(pri >> 3) as usize].to_string(),
            "%syslogseverity-text%" => SEVERITIES[(pri & 7) as usize].to_string(),
            "%timestamp%" => l
                .timestamp
                .map(|t| t.format("%b %e %H:%M:%S").to_string())
                .unwrap_or_default(),
            "%timestamp:::date-rfc3164-buggyday%" => l
                .timestamp
                .map(|t| t.format("%b %d %H:%M:%S").to_string())
                .unwrap_or_default(),
            "%hostname%" => l.hostname.unwrap_or("$RS_HOSTNAME").to_string(),
            "%programname%" => l.appname.unwrap_or("").to_string(),
            "%syslogtag%" => match (l.tag, l.appname, l.procid) {
                (Some(tag), _, _) => tag.to_string(),
                (None, Some(app), Some(pid)) => format!("{app}[{pid}]"),
                (None, Some(app), None) => app.to_string(),
                (None, None, _) => String::new(),
            },
            "%msg%" => continue,
            other => panic!("template field {other} not rendered"),
        };
        fields.push(v);
    }
    Some((fields.join(","), l.message.to_string()))
}

fn agrees(v: &serde_json::Value) -> (bool, String) {
    let input = v["input"].as_str().expect("input");
    let template = v["rsyslog_template"].as_str().expect("template");
    let expected = v["expected_line"].as_str().expect("expected_line");
    let Some((head, msg)) = render(input, template) else {
        return (false, "not syslog".to_string());
    };
    let ours = format!("{head},{msg}");
    let ok = expected
        .strip_prefix(&head)
        .and_then(|r| r.strip_prefix(','))
        .is_some_and(|m| m.trim_start() == msg.trim_start());
    (ok, ours)
}

#[test]
fn rsyslog_parser_vectors() {
    let Some(path) = common::corpus("syslog-vectors/rsyslog/parsertest_vectors.jsonl") else {
        return;
    };
    let vectors = common::read_jsonl(&path);
    assert_eq!(vectors.len(), 34, "the corpus has 34 vectors");
    let mut agreed = 0;
    for (i, v) in vectors.iter().enumerate() {
        let (ok, ours) = agrees(v);
        agreed += usize::from(ok);
        println!(
            "{:>2} {} {:?}\n     rsyslog: {}\n     ours:    {}",
            i,
            if ok { "agree " } else { "DIFFER" },
            v["input"].as_str().unwrap_or(""),
            v["expected_line"].as_str().unwrap_or(""),
            ours
        );
    }
    println!("syslog vectors: {agreed}/{} agree", vectors.len());
    assert!(agreed >= 32, "only {agreed}/34 rsyslog vectors agree");
}

/// Vector "This is a message!" (parsertest `no PRI, no timestamp`): rsyslog reads `This` as
/// the host and `is` as the program. We differ on purpose: a line with neither PRI nor a
/// timestamp is not syslog to us, or every raw log line (exim, JSON, access logs) would be
/// read as host + program. It is kept whole, tagged `unparsed`.
#[test]
fn plain_text_without_pri_or_timestamp_is_not_syslog() {
    assert!(syslog::parse("This is a message!", Receipt::at(common::RECEIVED_MS)).is_none());
    let ev = normalize_line("This is a message!", common::RECEIVED_MS);
    assert!(ev.is_unparsed());
    assert_eq!(ev.host, None);
    assert_eq!(ev.log.original.as_deref(), Some("This is a message!"));
}

/// Vectors `<14>Aug 30 23:00:05` and `<27>xapi: ...`: no host name in the line. rsyslog
/// reports its own host; our event has no `host` (the receiving host is the connector's
/// business, not the line's).
#[test]
fn missing_hostname_leaves_host_empty() {
    let ev = normalize_line("<14>Aug 30 23:00:05 ", common::RECEIVED_MS);
    assert_eq!(ev.host, None);
    assert_eq!(ev.timestamp.as_deref(), Some("2026-08-30T23:00:05.000Z"));
    let ev = normalize_line("<27>xapi: [error|xen3] died", common::RECEIVED_MS);
    assert_eq!(ev.host, None);
    assert_eq!(ev.process.and_then(|p| p.name).as_deref(), Some("xapi"));
}

/// RFC 5424 times keep their offset in the header and become UTC in `@timestamp`.
#[test]
fn rfc5424_time_becomes_utc() {
    let ev = normalize_line(
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% do-nuts",
        common::RECEIVED_MS,
    );
    assert_eq!(ev.timestamp.as_deref(), Some("2003-08-24T12:14:15.000Z"));
    assert_eq!(time::format_ms(0), None);
}
