//! The `normalize` SmartModule (map): one raw log line in, one normalized ECS event out.
//!
//! Recognizes RFC 3164 / RFC 5424 syslog (with or without octet counting) and, inside it or
//! raw, the messages of sshd, PAM, sudo/su/pkexec, postfix, dovecot, exim, FTP servers,
//! netfilter and pf, nginx/apache (access and error logs), Suricata (EVE JSON and fast.log),
//! auditd, and generic JSON objects. A line it cannot parse is kept, tagged
//! `event.kind: "unparsed"` with the line in `log.original`: the map never returns an
//! error, so one bad line cannot stop the rest of its batch.
//!
//! `event.category` is set only for security-relevant events; benign lines a parser still
//! recognizes (session bookkeeping, flows) carry an `event.action` and no category.

pub mod access;
pub mod auditd;
pub mod dovecot;
pub mod ecs;
pub mod exim;
pub mod firewall;
pub mod ftp;
pub mod http_error;
pub mod json;
pub mod kernel;
pub mod pam;
pub mod postfix;
pub mod sshd;
pub mod sudo;
pub mod suricata;
pub mod syslog;
pub mod time;

use chrono::Utc;
use soc_core::event::{Code, Event, Host, Process, Syslog, KIND_EVENT};

use soc_sm_abi::Input;

/// Normalize one raw record. `received_ms` is the record's ingest time (ms since the epoch, 0
/// if unknown): it dates lines that carry no year or no time at all, unless the record's
/// trailer gives the year.
pub fn normalize_line(line: &str, received_ms: i64) -> Event {
    let (line, notes) = soc_core::event::split_notes(line);
    let trimmed = line.trim_end_matches(['\r', '\n']);
    let receipt = time::Receipt {
        ms: received_ms,
        year: notes.year.filter(|y| (1970..=9999).contains(y)),
    };
    let mut ev = parse(trimmed, receipt).unwrap_or_else(|| Event::unparsed(trimmed));
    ev.log.original = Some(trimmed.to_string());
    ev.log.truncated_bytes = notes.truncated_bytes;
    ev.log.source = notes.peer.map(|ip| soc_core::event::LogSource {
        address: Some(ip.to_string()),
    });
    ev.event.ingested = time::format_ms(received_ms);
    if ev.timestamp.is_none() {
        ev.timestamp = ev.event.ingested.clone();
    }
    ev
}

/// Formats recognized by their first bytes, before syslog is tried.
fn parse_raw(line: &str) -> Option<Event> {
    let b = line.as_bytes();
    match b.first()? {
        b'@' => tai64n(line),
        b'{' => json::parse(line).map(unwrap_envelope),
        b't' if line.starts_with("type=") => auditd::parse(line),
        b'n' if line.starts_with("node=") => auditd::parse(line),
        b'[' => access::parse(line).or_else(|| http_error::parse_apache(line)),
        b'0'..=b'9' => access::parse(line)
            .or_else(|| http_error::parse_nginx(line))
            .or_else(|| suricata::parse_fast(line))
            .or_else(|| raw_dated(line)),
        _ => access::parse(line).or_else(|| vsftpd_log(line)),
    }
}

/// A JSON envelope (journald export, container runtime) whose message is itself a log line
/// this module knows: the inner line is parsed, and the envelope kept under `json`.
fn unwrap_envelope(outer: Event) -> Event {
    if outer.event.action.is_some() {
        return outer;
    }
    let Some(msg) = outer.message.as_deref() else {
        return outer;
    };
    // A journal export names the program: its message is parsed as that program's.
    let field = |k: &str| {
        outer
            .json
            .as_ref()
            .and_then(|j| j.get(k))
            .and_then(serde_json::Value::as_str)
    };
    if let Some(program) = field("SYSLOG_IDENTIFIER").or_else(|| field("_COMM")) {
        let mut ev = outer.clone();
        ev.process = Some(Process {
            name: Some(program.to_string()),
            pid: field("SYSLOG_PID")
                .or_else(|| field("_PID"))
                .and_then(|p| p.parse().ok()),
            ..Default::default()
        });
        let msg = msg.to_string();
        if apply_program(program, &msg, &mut ev) {
            return ev;
        }
    }
    // The message may start with `HOST PROGRAM: ` (journald's syslog identifier).
    let candidates = [Some(msg), msg.split_once(": ").map(|(_, m)| m)];
    let inner = candidates
        .into_iter()
        .flatten()
        .filter(|m| !m.starts_with('{'))
        .find_map(|m| parse_raw(m.trim()).filter(|e| e.event.action.is_some()));
    match inner {
        Some(mut inner) => {
            inner.json = outer.json;
            inner.host = inner.host.or(outer.host);
            inner
        }
        None => outer,
    }
}

/// daemontools' `multilog t`: `@4000000063b1c0a80f3f1a2c PROGRAM: MESSAGE` (TAI64N: 2^62
/// plus the TAI seconds, then nanoseconds, in hex).
fn tai64n(line: &str) -> Option<Event> {
    let label = line.get(1..25)?;
    let rest = line.get(25..)?.strip_prefix(' ')?;
    let secs = u64::from_str_radix(label.get(..16)?, 16)
        .ok()?
        .checked_sub(1 << 62)?;
    let nanos = u32::from_str_radix(label.get(16..)?, 16).ok()?;
    // TAI runs ahead of UTC by the leap seconds (37 s since 2017; 10 s as multilog assumes).
    let ms = (secs as i64 - 10) * 1000 + i64::from(nanos / 1_000_000);
    let mut ev = headerless(rest)?;
    ev.timestamp = time::format_ms(ms);
    Some(ev)
}

/// `YYYY-MM-DD HH:MM:SS[,fff] ...`: exim's main log, or proftpd's own log
/// (`host proftpd[pid] server (client[IP]): ...`).
fn raw_dated(line: &str) -> Option<Event> {
    let (t, rest) = time::parse_iso_space(line)?;
    let mut ev = Event {
        timestamp: Some(time::format(t)),
        ..Default::default()
    };
    if rest.starts_with("auth-worker(") || rest.starts_with("auth(") || rest.contains("-login: ") {
        // dovecot's own log file with an ISO date.
        return dovecot::apply(rest, &mut ev).then_some(ev);
    }
    let claimed = match rest.split_once(' ') {
        Some((host, r)) if r.starts_with("proftpd[") => {
            let (tag, msg) = r.split_once(' ').unwrap_or((r, ""));
            ev.host = Some(Host {
                hostname: Some(host.to_string()),
            });
            ev.process = Some(Process {
                name: Some("proftpd".to_string()),
                pid: tag
                    .strip_prefix("proftpd[")
                    .and_then(|p| p.strip_suffix(']'))
                    .and_then(|p| p.parse().ok()),
                ..Default::default()
            });
            ftp::proftpd(msg, &mut ev)
        }
        _ => exim::apply(rest, &mut ev),
    };
    claimed.then_some(ev)
}

/// vsftpd's own log: `Mon Jun  8 12:08:53 2020 [pid 27244] [user] FAIL LOGIN: Client "IP"`.
fn vsftpd_log(line: &str) -> Option<Event> {
    let (t, rest) = time::parse_ctime(line)?;
    let mut ev = Event {
        timestamp: Some(time::format(t)),
        ..Default::default()
    };
    ftp::vsftpd(rest, &mut ev).then_some(ev)
}

fn parse(line: &str, receipt: time::Receipt) -> Option<Event> {
    let start = line.trim_start();
    if let Some(ev) = parse_raw(start) {
        return Some(ev);
    }
    match syslog::parse(start, receipt) {
        Some(sl) => Some(from_syslog(&sl)),
        None => headerless(start),
    }
}

/// A message that arrived without a syslog header: `host prog[pid]: msg`, `prog[pid]: msg`
/// (a journal export without time) or a bare sshd or PAM message (`journalctl -o cat`). It
/// is taken only when a program's parser recognizes it; the time comes from the receipt.
fn headerless(line: &str) -> Option<Event> {
    if let Some(sl) = syslog::parse_headerless(line) {
        let ev = from_syslog(&sl);
        if ev.event.action.is_some() {
            return Some(ev);
        }
    }
    let mut ev = Event::default();
    if sshd::apply("sshd", line, &mut ev) {
        ev.event.kind = KIND_EVENT.to_string();
        return Some(ev);
    }
    None
}

fn from_syslog(sl: &syslog::SyslogLine<'_>) -> Event {
    let mut ev = Event {
        timestamp: sl.timestamp.map(|t| time::format(t.with_timezone(&Utc))),
        message: Some(sl.message.to_string()),
        ..Default::default()
    };
    ev.event.kind = KIND_EVENT.to_string();
    ev.event.dataset = Some("syslog".to_string());
    ev.host = sl.hostname.map(|h| Host {
        hostname: Some(h.to_string()),
    });
    // `sshd(pam_unix)[42]`: the program, and the PAM module that wrote the message.
    let (program, module) = match sl.appname {
        Some(a) => match a.split_once('(') {
            Some((p, m)) if m.ends_with(')') && !p.is_empty() => (p, Some(&m[..m.len() - 1])),
            _ => (a, None),
        },
        None => ("", None),
    };
    ev.process = sl.appname.map(|_| Process {
        name: Some(program.to_string()),
        pid: sl.procid.and_then(|p| p.parse().ok()),
        ..Default::default()
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
    if let Some(n) = bsd_repeat(program, sl.message) {
        ecs::mark(&mut ev, "syslog", soc_core::event::ACTION_REPEATED, None);
        ev.event.attempts = Some(n);
        ev.process = None;
        return ev;
    }
    let (msg, repeats) = message_body(sl.message);
    let claimed = match module {
        Some(m) if m.starts_with("pam_") => {
            pam::apply(&format!("{m}({program}:auth): {msg}"), &mut ev)
        }
        // dovecot 2.3's own log: `auth(user,ip,sasl:login)<session>: Info: ...`, whose
        // colon the tag split cut in two.
        _ if program.starts_with("auth(") || program.starts_with("auth-worker(") => {
            dovecot::apply(&format!("{}{msg}", sl.tag.unwrap_or("")), &mut ev)
        }
        _ => apply_program(program, msg, &mut ev),
    };
    if claimed {
        if ev.service.is_none() && sshd::is_sshd(program) {
            ecs::service(&mut ev, "ssh");
        }
    } else if let Some(inner) = embedded(program, msg) {
        ev = graft(inner, ev);
    }
    if let Some(n) = repeats {
        ev.event.attempts = Some(n.saturating_mul(ev.event.attempts.unwrap_or(1)));
    }
    ev
}

/// BSD syslogd's `last message repeated 3 times` (and FreeBSD's `--- last message repeated
/// 3 times ---`), read as a tag and a message: how many times.
fn bsd_repeat(program: &str, msg: &str) -> Option<u32> {
    let n = match program {
        "last" => msg
            .strip_prefix("message repeated ")?
            .strip_suffix(" times")?,
        "---" => msg
            .strip_prefix("last message repeated ")?
            .strip_suffix(" times ---")?,
        _ => return None,
    };
    n.parse().ok()
}

/// The message without what syslog daemons put before it: Solaris' `[ID 800047 auth.info]`,
/// macOS' `<Notice>:` level, and rsyslog's `message repeated 3 times: [ MSG]` (the message,
/// and how many times it stands for).
fn message_body(msg: &str) -> (&str, Option<u32>) {
    let mut msg = msg;
    if let Some(rest) = msg.strip_prefix("[ID ") {
        if let Some((id, after)) = rest.split_once(']') {
            if id
                .split(' ')
                .next()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            {
                msg = after.trim_start();
            }
        }
    }
    if let Some(rest) = msg.strip_prefix('<') {
        if let Some((level, after)) = rest.split_once(">:") {
            if !level.is_empty() && level.bytes().all(|b| b.is_ascii_alphabetic()) {
                msg = after.trim_start();
            }
        }
    }
    if let Some(rest) = msg.strip_prefix("message repeated ") {
        if let Some((n, inner)) = rest.split_once(" times: [") {
            if let Ok(n) = n.parse::<u32>() {
                let inner = inner.strip_suffix(']').unwrap_or(inner);
                return (inner.trim(), Some(n));
            }
        }
    }
    (msg, None)
}

/// Program-specific parsing of a syslog message, by program name first and then by what
/// the message looks like (netfilter lines come from `kernel` or from a firewall's own tag).
fn apply_program(program: &str, msg: &str, ev: &mut Event) -> bool {
    let by_name = match program {
        p if sshd::is_sshd(p) => sshd::apply(p, msg, ev),
        "sudo" | "su" | "pkexec" => pam::apply(msg, ev) || sudo::apply(program, msg, ev),
        p if postfix::is_postfix(p) => postfix::apply(msg, ev),
        "dovecot" => dovecot::apply(msg, ev),
        "exim" | "exim4" => exim::apply(msg, ev),
        "vsftpd" => pam::apply(msg, ev) || ftp::vsftpd(msg, ev),
        "proftpd" => ftp::proftpd(msg, ev),
        "pure-ftpd" | "pure-ftpd-mysql" | "pure-ftpd-ldap" => ftp::pureftpd(msg, ev),
        "filterlog" => firewall::filterlog(msg, ev),
        "audispd" | "auditd" | "audit" => auditd::apply(msg, ev),
        "login" => pam::apply(msg, ev) || pam::shadow_login(msg, ev),
        // dovecot's own log file names its processes, not `dovecot`.
        "auth" | "auth-worker" | "imap-login" | "pop3-login" | "submission-login"
        | "managesieve-login" => {
            dovecot::apply(&format!("{program}: {msg}"), ev) || pam::apply(msg, ev)
        }
        _ => pam::apply(msg, ev),
    };
    by_name
        // PAM's lines under the program's own name (`proftpd: (pam_unix) ...`).
        || pam::apply(msg, ev)
        || (msg.contains("SRC=") && firewall::iptables(msg, ev))
        || (program == "kernel" && msg.starts_with("audit: ") && auditd::apply(msg, ev))
        || (program == "kernel" && kernel::apply(msg, ev))
}

/// A whole raw log line carried inside a syslog message (nginx or apache logging to syslog,
/// Suricata EVE over syslog).
fn embedded(program: &str, msg: &str) -> Option<Event> {
    let msg = msg.trim_start();
    match program {
        "nginx" | "apache" | "apache2" | "suricata" => parse_raw(msg),
        // `httpd/backend1`: a named instance.
        p if p.starts_with("httpd") => parse_raw(msg),
        _ if msg.starts_with('{') => parse_raw(msg).filter(|e| e.event.action.is_some()),
        _ => None,
    }
}

/// The inner event, with the syslog envelope's host, process and header kept.
fn graft(mut inner: Event, outer: Event) -> Event {
    inner.host = inner.host.or(outer.host);
    if inner.timestamp.is_none() {
        inner.timestamp = outer.timestamp;
    }
    if inner.process.is_none() {
        inner.process = outer.process;
    }
    inner.log.syslog = outer.log.syslog;
    inner
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
    fn a_cut_line_is_parsed_and_says_it_was_cut() {
        let line = "Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 35.188.49.176 port 53502";
        let raw = soc_core::event::truncated_record(line.as_bytes(), 1 << 20);
        let ev = normalize_line(&String::from_utf8_lossy(&raw), NOV_2026);
        assert_eq!(ev.event.kind, "event");
        assert_eq!(ev.source_ip(), Some("35.188.49.176"));
        assert_eq!(ev.log.original.as_deref(), Some(line));
        assert_eq!(ev.log.truncated_bytes, Some(1 << 20));
        // A line cannot hold the trailer, so log text cannot claim it; an uncut line has none.
        let plain = normalize_line("app: soc.truncated_bytes=5", NOV_2026);
        assert_eq!(plain.log.truncated_bytes, None);
    }

    #[test]
    fn a_received_line_names_its_sender_apart_from_the_host_it_speaks_of() {
        let line = "<38>Feb 12 14:10:21 web-1 sshd[7]: Failed password for root from 198.51.100.4 port 2 ssh2";
        let raw =
            soc_core::event::with_peer(line.as_bytes().to_vec(), "10.0.0.9".parse().expect("ip"));
        let ev = normalize_line(&String::from_utf8_lossy(&raw), NOV_2026);
        assert_eq!(ev.log.original.as_deref(), Some(line));
        let sender = ev.log.source.as_ref().and_then(|s| s.address.as_deref());
        assert_eq!(sender, Some("10.0.0.9"));
        assert_eq!(ev.source_ip(), Some("198.51.100.4"));
        assert_eq!(
            ev.host.as_ref().and_then(|h| h.hostname.as_deref()),
            Some("web-1")
        );
        let plain = normalize_line(line, NOV_2026);
        assert_eq!(plain.log.source, None);
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

    fn summary(ev: &Event) -> (String, String, String) {
        (
            ev.event.dataset.clone().unwrap_or_default(),
            ev.event.action.clone().unwrap_or_default(),
            ev.event.category.join(","),
        )
    }

    #[test]
    fn each_format_reaches_its_parser() {
        let cases = [
            ("Dec  7 14:53:04 h sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id", "sudo", "sudo_command", "process"),
            ("Jun  8 14:34:33 h kernel: [5.0] IN=eth0 OUT= SRC=195.54.160.107 DST=10.0.0.1 PROTO=TCP SPT=1 DPT=22", "firewall", "firewall_log", "network"),
            ("Mon Jun  8 12:08:53 2020 [pid 27244] [user] FAIL LOGIN: Client \"::ffff:93.24.101.89\"", "vsftpd", "ftp_login", "authentication"),
            ("2022-06-29 16:04:05 dovecot_plain authenticator failed for (mail.test.com) [202.137.142.181]:47807: 535 Incorrect authentication data (set_id=dave)", "exim", "smtp_auth_failure", "authentication"),
            ("2021-05-28 18:08:34,399 mantis proftpd[498819] mantis (192.168.1.142[192.168.1.142]): USER seb (Login failed): Incorrect password", "proftpd", "ftp_login", "authentication"),
            ("type=ANOM_ABEND msg=audit(1696431255.037:1): auid=1000 uid=1000 ses=1 pid=99 comm=\"sudo\" exe=\"/usr/bin/sudo\" sig=11 res=1", "auditd", "anom_abend", "process"),
            ("{\"timestamp\":\"2022-07-10T23:50:05.533101+0000\",\"flow_id\":1,\"event_type\":\"alert\",\"src_ip\":\"1.2.3.4\",\"dest_ip\":\"10.0.0.1\",\"proto\":\"TCP\",\"alert\":{\"signature_id\":1,\"signature\":\"x\",\"severity\":2}}", "suricata.eve", "alert", "intrusion_detection"),
            ("<171>1 2025-11-05T20:47:03+00:00 fw nginx - - - 2025/11/05 20:47:03 [error] 1#1: *9 open() \"/x\" failed (2: No such file or directory), client: 10.0.0.9, server: , request: \"GET /x HTTP/1.1\"", "http.error", "http_not_found", "web"),
            ("May 11 04:02:36 host1 postfix/smtpd[26897]: warning: unknown[192.168.1.1]: SASL LOGIN authentication failed: authentication failure", "postfix", "smtp_auth_failure", "authentication"),
        ];
        for (line, dataset, action, category) in cases {
            let ev = normalize_line(line, NOV_2026);
            assert_eq!(
                summary(&ev),
                (
                    dataset.to_string(),
                    action.to_string(),
                    category.to_string()
                ),
                "{line}"
            );
        }
    }

    /// (action, source, user, attempts) of a line.
    fn failure_of(line: &str) -> (String, String, String, Option<u32>) {
        let ev = normalize_line(line, NOV_2026);
        assert_eq!(
            ev.event.outcome.as_deref(),
            Some("failure"),
            "{line}: {ev:?}"
        );
        (
            ev.event.action.clone().unwrap_or_default(),
            ev.source_ip().unwrap_or_default().to_string(),
            ev.user_name().unwrap_or_default().to_string(),
            ev.event.attempts,
        )
    }

    #[test]
    fn header_variants_reach_the_sshd_parser() {
        let want = |action: &str, ip: &str, user: &str| {
            (action.to_string(), ip.to_string(), user.to_string(), None)
        };
        for (line, expected) in [
            // A PAM module named in the tag, the message without its `pam_unix(...)`.
            ("Mar 10 09:00:20 bastion sshd(pam_unix)[6202]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=198.51.100.80  user=admin",
             want("pam_authentication_failure", "198.51.100.80", "admin")),
            // Solaris' message id and facility.level.
            ("Mar 10 09:00:21 sol10 sshd[811]: [ID 800047 auth.info] Failed password for root from 198.51.100.81 port 22 ssh2",
             want("ssh_login", "198.51.100.81", "root")),
            // macOS' level after the tag.
            ("Mar 10 09:00:22 mac sshd[99] <Error>: error: PAM: authentication error for illegal user bob from 198.51.100.82",
             want("ssh_pam_failure", "198.51.100.82", "bob")),
            // No timestamp: a journal export, a relay that dropped the header.
            ("web-1 sshd[5]: Invalid user oracle from 198.51.100.83 port 4000",
             want("ssh_invalid_user", "198.51.100.83", "oracle")),
            ("sshd[5]: Failed password for invalid user pi from 198.51.100.84 port 4001 ssh2",
             want("ssh_login", "198.51.100.84", "pi")),
            // The bare message, as `journalctl -o cat` prints it.
            ("Failed keyboard-interactive/pam for root from 198.51.100.85 port 4002 ssh2",
             want("ssh_login", "198.51.100.85", "root")),
            ("Mar 10 09:00:23 h sshd-session[77]: Failed password for root from 2001:db8::7 port 4003 ssh2",
             want("ssh_login", "2001:db8::7", "root")),
        ] {
            assert_eq!(failure_of(line), expected, "{line}");
        }
        let ev = normalize_line(
            "web-1 sshd[5]: Invalid user oracle from 198.51.100.83 port 4000",
            NOV_2026,
        );
        assert_eq!(
            ev.timestamp, ev.event.ingested,
            "no header: the receipt dates it"
        );
        assert_eq!(ev.process.and_then(|p| p.pid), Some(5));
        // Words that merely look like a tag are not claimed.
        for line in [
            "hello: world",
            "note sshd[1]: nothing we know",
            "Failed to start foo.service",
        ] {
            assert_eq!(
                normalize_line(line, NOV_2026).event.kind,
                "unparsed",
                "{line}"
            );
        }
    }

    #[test]
    fn repeated_messages_count_their_repeats() {
        let line = "Mar 10 09:00:09 bastion sshd[6201]: message repeated 3 times: [ Failed password for root from 198.51.100.80 port 51000 ssh2]";
        assert_eq!(
            failure_of(line),
            (
                "ssh_login".into(),
                "198.51.100.80".into(),
                "root".into(),
                Some(3)
            )
        );
        let line = "Mar 10 09:00:10 bastion sshd[6201]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.80  user=root";
        let ev = normalize_line(line, NOV_2026);
        assert_eq!(ev.event.attempts, Some(2));
        assert_eq!(ev.service.and_then(|s| s.name).as_deref(), Some("ssh"));
        // A repeated line that is not a failure stays what it is.
        let ev = normalize_line(
            "Mar 10 09:00:11 h CRON[1]: message repeated 2 times: [ (root) CMD (true)]",
            NOV_2026,
        );
        assert!(ev.event.category.is_empty());
    }

    #[test]
    fn bsd_repeats_name_their_count_not_their_line() {
        for line in [
            "Mar 10 10:00:30 oldbsd last message repeated 3 times",
            "Mar 10 10:00:30 oldbsd --- last message repeated 3 times ---",
        ] {
            let ev = normalize_line(line, NOV_2026);
            assert_eq!(
                ev.event.action.as_deref(),
                Some(soc_core::event::ACTION_REPEATED),
                "{line}"
            );
            assert_eq!(ev.event.attempts, Some(3), "{line}");
            assert!(
                ev.event.category.is_empty() && ev.process.is_none(),
                "{line}"
            );
            assert_eq!(ev.host.and_then(|h| h.hostname).as_deref(), Some("oldbsd"));
        }
        // A program that happens to be called `last` is not a repeat.
        let ev = normalize_line("Mar 10 10:00:30 h last: message repeated often", NOV_2026);
        assert_ne!(
            ev.event.action.as_deref(),
            Some(soc_core::event::ACTION_REPEATED)
        );
    }

    #[test]
    fn failure_phrasings_of_sshd() {
        for (line, action, ip, user) in [
            ("Mar 10 09:00:01 h sshd[1]: error: PAM: Authentication failure for alice from 198.51.100.7", "ssh_pam_failure", "198.51.100.7", "alice"),
            ("Mar 10 09:00:01 h sshd[1]: error: PAM: User not known to the underlying authentication module for illegal user zz from 198.51.100.8", "ssh_pam_failure", "198.51.100.8", "zz"),
            ("Mar 10 09:00:01 h sshd[1]: Illegal user test from 198.51.100.9", "ssh_invalid_user", "198.51.100.9", "test"),
            ("Mar 10 09:00:01 h sshd[1]: Disconnecting invalid user admin 198.51.100.10 port 4 : Too many authentication failures [preauth]", "ssh_max_auth_attempts", "198.51.100.10", "admin"),
            ("Mar 10 09:00:01 h sshd[1]: Disconnecting authenticating user root 198.51.100.11 port 5: Too many authentication failures [preauth]", "ssh_max_auth_attempts", "198.51.100.11", "root"),
            ("Mar 10 09:00:01 h sshd[1]: Failed publickey for git from 198.51.100.12 port 6 ssh2: RSA SHA256:x", "ssh_publickey_failed", "198.51.100.12", "git"),
            ("Mar 10 09:00:01 h sshd[1]: Connection closed by 198.51.100.13 port 7 [preauth]", "ssh_preauth_close", "198.51.100.13", ""),
            ("Mar 10 09:00:01 h sshd[1]: Received disconnect from 198.51.100.14 port 8:3: com.jcraft.jsch.JSchException: Auth fail [preauth]", "ssh_client_auth_failed", "198.51.100.14", ""),
        ] {
            let (a, i, u, _) = failure_of(line);
            assert_eq!((a.as_str(), i.as_str(), u.as_str()), (action, ip, user), "{line}");
        }
    }

    #[test]
    fn benign_lines_carry_no_category() {
        for line in [
            "Jun 29 16:53:37 my-vps sshd[3685002]: Close session: user ansible from 192.168.1.1 port 34928 id 0",
            "Jun 29 16:53:37 my-vps sshd[1]: Received disconnect from 192.168.1.1 port 34928:11: disconnected by user",
            "Jun 29 16:53:37 my-vps sshd[1]: pam_unix(sshd:session): session opened for user bob(uid=1000) by (uid=0)",
            "Jun 29 16:53:37 my-vps CRON[2]: (root) CMD (run-parts /etc/cron.hourly)",
            "Jan  7 14:20:06 ftpcdr pure-ftpd: (?@172.21.10.2) [INFO] user@test.com is now logged in",
            r#"{"timestamp":"2022-07-11T05:52:18.378379+0000","flow_id":8,"event_type":"flow","src_ip":"1.2.3.6","dest_ip":"127.0.0.1","proto":"TCP","flow":{}}"#,
        ] {
            let ev = normalize_line(line, NOV_2026);
            assert!(ev.event.category.is_empty(), "{line}: {:?}", ev.event);
        }
    }

    #[test]
    fn json_envelope_carrying_an_access_line() {
        let ev = normalize_line(
            r#"{"type":"log.journald","message":"frontend.0 nginx: 203.0.113.1 - - [29/Aug/2025:19:13:03 +0000] \"GET /x HTTP/1.1\" 502 1535 \"-\" \"ua\""}"#,
            NOV_2026,
        );
        assert_eq!(ev.event.dataset.as_deref(), Some("http.access"));
        assert_eq!(ev.source_ip(), Some("203.0.113.1"));
        assert!(ev.json.is_some());
    }
}
