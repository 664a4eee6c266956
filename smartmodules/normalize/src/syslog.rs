//! RFC 3164 and RFC 5424 syslog headers, with or without an octet-count prefix.

use crate::time::{parse_bsd_timestamp, parse_rfc3339_local, Receipt};
use chrono::{DateTime, FixedOffset};

/// The parts of a syslog line that every program-specific parser builds on.
#[derive(Debug, Default, PartialEq)]
pub struct SyslogLine<'a> {
    pub priority: Option<u8>,
    /// As written, with the writer's offset (RFC 3164 times are read as UTC).
    pub timestamp: Option<DateTime<FixedOffset>>,
    pub hostname: Option<&'a str>,
    pub appname: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    pub structured_data: Option<&'a str>,
    /// The RFC 3164 tag as written (`sshd[42]:`), for tools that show it.
    pub tag: Option<&'a str>,
    pub message: &'a str,
    pub rfc5424: bool,
}

/// Strip an RFC 6587 octet-count prefix (`123 <34>...`) if the count matches what follows.
pub fn strip_octet_count(line: &str) -> &str {
    let digits = line.bytes().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 {
        return line;
    }
    let rest = &line[digits..];
    match rest.strip_prefix(' ') {
        Some(after) if after.starts_with('<') => after,
        _ => line,
    }
}

fn parse_pri(line: &str) -> Option<(u8, &str)> {
    let rest = line.strip_prefix('<')?;
    let end = rest.find('>')?;
    if end == 0 || end > 3 {
        return None;
    }
    let pri: u16 = rest[..end].parse().ok()?;
    if pri > 191 {
        return None;
    }
    Some((pri as u8, &rest[end + 1..]))
}

/// Parse a syslog line. `receipt` supplies the year RFC 3164 omits.
pub fn parse(line: &str, receipt: Receipt) -> Option<SyslogLine<'_>> {
    let line = strip_octet_count(line);
    let (priority, rest) = match parse_pri(line) {
        Some((p, rest)) => (Some(p), rest),
        None => (None, line),
    };
    if priority.is_some() {
        if let Some(v) = rest.strip_prefix("1 ") {
            return parse_5424(priority, v);
        }
    }
    parse_3164(priority, rest, receipt)
}

fn nil(field: &str) -> Option<&str> {
    if field == "-" || field.is_empty() {
        None
    } else {
        Some(field)
    }
}

fn split_field(s: &str) -> (&str, &str) {
    match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

fn parse_5424(priority: Option<u8>, s: &str) -> Option<SyslogLine<'_>> {
    let (ts, s) = split_field(s);
    let (host, s) = split_field(s);
    let (app, s) = split_field(s);
    let (procid, s) = split_field(s);
    let (msgid, s) = split_field(s);
    let (sd, msg) = split_structured_data(s);
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Some(SyslogLine {
        priority,
        timestamp: nil(ts).and_then(parse_rfc3339_local),
        hostname: nil(host),
        appname: nil(app),
        procid: nil(procid),
        msgid: nil(msgid),
        structured_data: nil(sd),
        tag: None,
        message: msg,
        rfc5424: true,
    })
}

/// Split `[id k="v"][..] msg` or `- msg` into structured data and message, honouring `\]`.
fn split_structured_data(s: &str) -> (&str, &str) {
    if let Some(rest) = s.strip_prefix('-') {
        return ("-", rest.strip_prefix(' ').unwrap_or(rest));
    }
    if !s.starts_with('[') {
        return ("-", s);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] == b'[' {
        let mut in_quotes = false;
        i += 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
        i += 1; // past ']'
    }
    let i = i.min(s.len());
    let (sd, rest) = s.split_at(i);
    (sd, rest.strip_prefix(' ').unwrap_or(rest))
}

fn parse_3164(priority: Option<u8>, s: &str, receipt: Receipt) -> Option<SyslogLine<'_>> {
    let s = s.trim_start_matches(' ');
    let (timestamp, rest) = match parse_bsd_timestamp(s, receipt) {
        Some((ts, rest)) => (Some(ts.fixed_offset()), rest),
        None => {
            // High-precision (RFC 3339) timestamps, as rsyslog and journald forward them.
            let (first, rest) = split_field(s);
            match parse_rfc3339_local(first) {
                Some(ts) => (Some(ts), rest),
                None if first.len() == 3 => match crate::time::parse_short_full(s) {
                    Some((ts, rest)) => (Some(ts), rest),
                    None if priority.is_none() => return None,
                    None => (None, s),
                },
                // Without PRI, a line with no timestamp is not syslog.
                None if priority.is_none() => return None,
                None => (None, s),
            }
        }
    };
    let rest = rest.trim_start_matches(' ');
    // HOSTNAME is present unless the next token is already the tag (`prog[pid]:` or
    // `prog:`) or holds characters no host name has (rsyslog's rule too).
    let (first, after_first) = split_field(rest);
    let (hostname, tagged) = if first.ends_with(':') || !is_hostname(first) {
        (None, rest)
    } else {
        (nil(first), after_first)
    };
    let (appname, procid, message) = split_tag(tagged);
    let tag = appname.map(|_| {
        let consumed = tagged.len() - message.len();
        tagged[..consumed].trim_end_matches(' ')
    });
    Some(SyslogLine {
        priority,
        timestamp,
        hostname,
        appname,
        procid,
        msgid: None,
        structured_data: None,
        tag,
        message,
        rfc5424: false,
    })
}

/// A line with neither PRI nor timestamp: `[HOST ]PROG[PID]: MSG` or `[HOST ]PROG: MSG` (a
/// journal export without time, a message passed on by a program that dropped the header).
/// `None` unless a tag ended by a colon starts the line or follows its first word.
pub fn parse_headerless(line: &str) -> Option<SyslogLine<'_>> {
    let (first, after_first) = split_field(line);
    let (hostname, tagged) = if first.ends_with(':') {
        (None, line)
    } else if is_hostname(first) {
        (Some(first), after_first)
    } else {
        return None;
    };
    let (appname, procid, message) = split_tag(tagged);
    let appname = appname?;
    let tag = tagged[..tagged.len() - message.len()].trim_end_matches(' ');
    if !tag.ends_with(':') {
        return None;
    }
    Some(SyslogLine {
        hostname,
        appname: Some(appname),
        procid,
        tag: Some(tag),
        message,
        ..Default::default()
    })
}

fn is_hostname(token: &str) -> bool {
    token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
}

/// The longest tag read; a longer first word is message text, not a program name.
const MAX_TAG: usize = 128;

/// `prog[pid]: msg`, `prog: msg` or `prog msg` -> (prog, pid, msg), as rsyslog reads the tag:
/// the first word, ended by a colon or a space. A line that starts with a space, a colon or
/// a bracket has no tag.
fn split_tag(s: &str) -> (Option<&str>, Option<&str>, &str) {
    let end = s
        .bytes()
        .take(MAX_TAG + 1)
        .position(|b| b == b':' || b == b' ');
    let (token, msg) = match end {
        Some(i) => {
            let after = &s[i + 1..];
            let msg = if s.as_bytes()[i] == b':' {
                after.strip_prefix(' ').unwrap_or(after)
            } else {
                after
            };
            (&s[..i], msg)
        }
        None if s.len() <= MAX_TAG => (s, ""),
        None => return (None, None, s),
    };
    // `[sshd]:` or `[sshd] `, as some devices write the program.
    if let Some(name) = token.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
        if !name.is_empty() && plain {
            return (Some(name), None, msg);
        }
    }
    if token.is_empty() || token.starts_with('[') || token.len() > MAX_TAG {
        return (None, None, s);
    }
    match token.find('[') {
        Some(open) if token.ends_with(']') => (
            Some(&token[..open]),
            Some(&token[open + 1..token.len() - 1]),
            msg,
        ),
        _ => (Some(token), None, msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_2026: Receipt = Receipt {
        ms: 1_795_000_000_000, // 2026-11-18
        year: None,
    };

    #[test]
    fn rfc3164_with_pri_and_pid() {
        let l = parse(
            "<38>Feb 12 14:10:21 sd-126005 sshd[16378]: Invalid user pascal from 35.188.49.176 port 53502",
            NOV_2026,
        )
        .expect("parses");
        assert_eq!(l.priority, Some(38));
        assert_eq!(l.hostname, Some("sd-126005"));
        assert_eq!(l.appname, Some("sshd"));
        assert_eq!(l.procid, Some("16378"));
        assert_eq!(
            l.message,
            "Invalid user pascal from 35.188.49.176 port 53502"
        );
        assert_eq!(
            l.timestamp.expect("ts").to_rfc3339(),
            "2026-02-12T14:10:21+00:00"
        );
        assert_eq!(
            l.message,
            "Invalid user pascal from 35.188.49.176 port 53502"
        );
    }

    #[test]
    fn rfc3164_without_pri_is_a_file_line() {
        let l = parse("Jan  3 04:05:06 web1 CRON[42]: (root) CMD (x)", NOV_2026).expect("parses");
        assert_eq!(l.priority, None);
        assert_eq!(l.hostname, Some("web1"));
        assert_eq!(l.appname, Some("CRON"));
    }

    #[test]
    fn december_line_received_in_january_is_last_year() {
        let jan_2027 = Receipt::at(1_798_800_000_000); // 2027-01-01T22:40Z
        let l = parse("Dec 31 23:59:59 h app: m", jan_2027).expect("parses");
        assert_eq!(
            l.timestamp.expect("ts").to_rfc3339(),
            "2026-12-31T23:59:59+00:00"
        );
    }

    #[test]
    fn rfc5424_with_structured_data_and_bom() {
        let l = parse(
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\"] \u{feff}An application event",
            NOV_2026,
        )
        .expect("parses");
        assert!(l.rfc5424);
        assert_eq!(l.priority, Some(165));
        assert_eq!(l.hostname, Some("mymachine.example.com"));
        assert_eq!(l.appname, Some("evntslog"));
        assert_eq!(l.procid, None);
        assert_eq!(l.msgid, Some("ID47"));
        assert_eq!(
            l.structured_data,
            Some("[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"]")
        );
        assert_eq!(l.message, "An application event");
    }

    #[test]
    fn octet_counted_frame() {
        let l = parse("40 <13>1 - host app - - - hello", NOV_2026).expect("parses");
        assert_eq!(l.priority, Some(13));
        assert_eq!(l.timestamp, None);
        assert_eq!(l.message, "hello");
    }

    #[test]
    fn tag_without_colon_and_missing_hostname() {
        let l = parse("<167>AUG 10 22:18:24 host tag This msg", NOV_2026).expect("parses");
        assert_eq!(
            (l.hostname, l.appname, l.message),
            (Some("host"), Some("tag"), "This msg")
        );
        let l = parse("<27>xapi: [error|xen3] died", NOV_2026).expect("parses");
        assert_eq!((l.hostname, l.appname), (None, Some("xapi")));
        assert_eq!(l.message, "[error|xen3] died");
        let l = parse("<175>Oct 16 23:47:31 #001 MSWinEventLog 0", NOV_2026).expect("parses");
        assert_eq!((l.hostname, l.appname), (None, Some("#001")));
        let l = parse("<14>Aug 30 23:00:05 ", NOV_2026).expect("parses");
        assert_eq!((l.hostname, l.appname, l.message), (None, None, ""));
    }

    #[test]
    fn rfc5424_keeps_the_writers_offset() {
        let l = parse(
            "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% do-nuts",
            NOV_2026,
        )
        .expect("parses");
        let ts = l.timestamp.expect("ts");
        assert_eq!(ts.to_rfc3339(), "2003-08-24T05:14:15.000003-07:00");
        assert_eq!(l.procid, Some("8710"));
        assert_eq!(l.message, "%% do-nuts");
    }

    #[test]
    fn plain_text_is_not_syslog() {
        assert_eq!(parse("hello world", NOV_2026), None);
        assert_eq!(parse("", NOV_2026), None);
    }
}
