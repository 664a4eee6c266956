//! The `normalize` SmartModule (map): one raw log line in, one normalized ECS event out.
//!
//! Recognizes RFC 3164 / RFC 5424 syslog (with or without octet counting), sshd and PAM
//! authentication messages, nginx/apache access lines and JSON objects. A line it cannot
//! parse is kept, tagged `event.kind: "unparsed"` with the line in `log.original`: the map
//! never returns an error, so one bad line cannot stop the rest of its batch.

pub mod access;
pub mod json;
pub mod sshd;
pub mod syslog;
pub mod time;

use soc_core::event::{Code, Event, Host, Process, Syslog, KIND_EVENT};
use soc_sm_abi::Input;

/// Normalize one line. `received_ms` is the record's ingest time (ms since the epoch, 0 if
/// unknown): it dates lines that carry no year or no time at all.
pub fn normalize_line(line: &str, received_ms: i64) -> Event {
    let trimmed = line.trim_end_matches(['\r', '\n']);
    let mut ev = parse(trimmed, received_ms).unwrap_or_else(|| Event::unparsed(trimmed));
    ev.log.original = Some(trimmed.to_string());
    ev.event.ingested = time::format_ms(received_ms);
    if ev.timestamp.is_none() {
        ev.timestamp = ev.event.ingested.clone();
    }
    ev
}

fn parse(line: &str, received_ms: i64) -> Option<Event> {
    let start = line.trim_start();
    if start.starts_with('{') {
        return json::parse(start);
    }
    if let Some(ev) = access::parse(start) {
        return Some(ev);
    }
    let sl = syslog::parse(start, received_ms)?;
    let mut ev = Event {
        timestamp: sl.timestamp.map(time::format),
        message: Some(sl.message.to_string()),
        ..Default::default()
    };
    ev.event.kind = KIND_EVENT.to_string();
    ev.event.dataset = Some("syslog".to_string());
    ev.host = sl.hostname.map(|h| Host {
        hostname: Some(h.to_string()),
    });
    ev.process = sl.appname.map(|name| Process {
        name: Some(name.to_string()),
        pid: sl.procid.and_then(|p| p.parse().ok()),
    });
    ev.log.syslog = Some(Syslog {
        priority: sl.priority,
        facility: sl.priority.map(|p| Code { code: p >> 3 }),
        severity: sl.priority.map(|p| Code { code: p & 7 }),
        appname: sl.appname.map(str::to_string),
        procid: sl.procid.map(str::to_string),
        msgid: sl.msgid.map(str::to_string),
        structured_data: sl.structured_data.map(str::to_string),
        version: Some(if sl.rfc5424 { "rfc5424" } else { "rfc3164" }.to_string()),
    });
    if let Some(program) = sl.appname {
        sshd::apply(program, sl.message, &mut ev);
    }
    Some(ev)
}

/// The map body: bytes in, normalized JSON bytes out. Invalid UTF-8 is replaced, not refused.
pub fn map_record(input: &Input<'_>) -> Vec<u8> {
    let line = String::from_utf8_lossy(input.value);
    let ev = normalize_line(&line, input.timestamp_ms);
    // Serializing plain strings and numbers cannot fail; fall back to a tagged record anyway.
    serde_json::to_vec(&ev)
        .unwrap_or_else(|_| serde_json::to_vec(&Event::unparsed(&line)).unwrap_or_default())
}

soc_sm_abi::export_map!(crate::map_record);

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_2026: i64 = 1_795_000_000_000;

    #[test]
    fn sshd_line_becomes_an_authentication_failure() {
        let ev = normalize_line(
            "Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 35.188.49.176 port 53502\n",
            NOV_2026,
        );
        assert_eq!(ev.event.kind, "event");
        assert_eq!(ev.event.category, vec!["authentication"]);
        assert_eq!(ev.event.outcome.as_deref(), Some("failure"));
        assert_eq!(ev.source_ip(), Some("35.188.49.176"));
        assert_eq!(ev.timestamp.as_deref(), Some("2026-02-12T14:10:21.000Z"));
        assert_eq!(
            ev.host.and_then(|h| h.hostname).as_deref(),
            Some("sd-126005")
        );
        assert_eq!(ev.process.and_then(|p| p.pid), Some(16378));
        assert_eq!(
            ev.log.original.as_deref(),
            Some("Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 35.188.49.176 port 53502")
        );
    }

    #[test]
    fn garbage_is_kept_and_tagged() {
        for line in [
            "",
            "\u{0}\u{1}binary",
            "just words",
            "{not json",
            "<999>bad pri",
        ] {
            let ev = normalize_line(line, NOV_2026);
            assert_eq!(ev.event.kind, "unparsed", "{line:?}");
            assert_eq!(ev.log.original.as_deref(), Some(line));
            assert!(ev.timestamp.is_some(), "dated by ingest time");
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let out = map_record(&Input {
            value: b"Feb 12 14:10:21 h sshd[1]: Invalid user \xff\xfe from 1.2.3.4 port 1",
            timestamp_ms: NOV_2026,
        });
        let ev: Event = serde_json::from_slice(&out).expect("json");
        assert_eq!(ev.source_ip(), Some("1.2.3.4"));
    }

    #[test]
    fn syslog_priority_is_split_into_facility_and_severity() {
        let ev = normalize_line("<38>Feb 12 14:10:21 h app: hello", NOV_2026);
        let sl = ev.log.syslog.expect("syslog");
        assert_eq!(sl.facility.map(|c| c.code), Some(4));
        assert_eq!(sl.severity.map(|c| c.code), Some(6));
        assert_eq!(ev.message.as_deref(), Some("hello"));
    }
}
