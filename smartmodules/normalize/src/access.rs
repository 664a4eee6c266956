//! nginx / apache access logs: common and combined formats, optionally prefixed by a virtual
//! host (`vhost:port` or `vhost`), with or without the ident field, and the two formats
//! nginx-proxy-manager writes (`[time] host client ...` and `[time] ... [Client IP] ...`).

use crate::ecs::{self, is_ip};
use crate::time::{format, parse_clf};
use chrono::{DateTime, Utc};
use soc_core::event::{
    Endpoint, Event, Http, HttpRequest, HttpResponse, User, UserAgent, KIND_EVENT,
};

/// Read one quoted field starting at `s[0] == '"'`, honouring `\"`; returns (content, rest).
fn quoted(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some((&body[..i], &body[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    Some(match s.find(' ') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    })
}

/// `[10/Oct/2000:13:55:36 -0700]` at the start of `s` (after spaces); returns the rest.
fn bracketed_time(s: &str) -> Option<(DateTime<Utc>, &str)> {
    let rest = s.trim_start_matches(' ').strip_prefix('[')?;
    let close = rest.find(']')?;
    Some((parse_clf(&rest[..close])?, &rest[close + 1..]))
}

/// The parts of one request line, as the formats below find them.
#[derive(Default)]
struct Access<'a> {
    vhost: Option<&'a str>,
    client: &'a str,
    user: Option<&'a str>,
    method: Option<&'a str>,
    target: Option<&'a str>,
    version: Option<&'a str>,
    status: u16,
    bytes: Option<&'a str>,
    referrer: Option<&'a str>,
    user_agent: Option<&'a str>,
}

/// `METHOD TARGET HTTP/x`. The target runs to the last ` HTTP/`, so a target with spaces
/// stays whole. Anything else (a TLS hello sent to a plain port, garbage) is kept whole as
/// the target, as the request was written.
fn split_request(request: &str) -> (Option<&str>, Option<&str>, Option<&str>) {
    let (method, rest) = request.split_once(' ').unwrap_or((request, ""));
    let (target, version) = match rest.rfind(" HTTP/") {
        Some(i) => (&rest[..i], Some(&rest[i + 6..])),
        None => (rest, None),
    };
    let well_formed = !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
        && !target.is_empty();
    if well_formed {
        (Some(method), Some(target), version)
    } else if request.is_empty() || request == "-" {
        (None, None, None)
    } else {
        (None, Some(request), None)
    }
}

pub fn parse(line: &str) -> Option<Event> {
    if line.starts_with('[') {
        return parse_npm(line);
    }
    let (first, rest) = token(line)?;
    // `vhost[:port] client ...` when the first token is not an address.
    let (vhost, client, rest) = if is_ip(first) {
        (None, first, rest)
    } else {
        let (second, rest2) = token(rest)?;
        if !is_ip(second) {
            return None;
        }
        (Some(first), second, rest2)
    };
    let (_ident, mut rest) = token(rest)?;
    // Some formats drop the ident or the user field: the time follows directly.
    let mut user = None;
    if !rest.trim_start().starts_with('[') {
        let (u, r) = token(rest)?;
        user = Some(u);
        rest = r;
    }
    let (time, rest) = bracketed_time(rest)?;
    let rest = rest.trim_start_matches(' ');
    let (request, rest) = quoted(rest)?;
    let (status, rest) = token(rest)?;
    let status: u16 = status.parse().ok()?;
    let (bytes, rest) = token(rest).unwrap_or(("-", ""));
    let rest = rest.trim_start_matches(' ');
    let (referrer, rest) = quoted(rest).unwrap_or(("-", rest));
    let rest = rest.trim_start_matches(' ');
    let user_agent = quoted(rest).map(|(ua, _)| ua);
    let (method, target, version) = split_request(request);
    Some(build(
        time,
        Access {
            vhost,
            client,
            user,
            method,
            target,
            version,
            status,
            bytes: Some(bytes),
            referrer: Some(referrer),
            user_agent,
        },
    ))
}

/// nginx-proxy-manager: `[time] HOST CLIENT RTIME "REQUEST" STATUS BYTES ...` (default host)
/// or `[time] CACHE UPSTREAM STATUS - METHOD SCHEME HOST "URI" [Client IP] ... "UA" "REF"`.
fn parse_npm(line: &str) -> Option<Event> {
    let (time, rest) = bracketed_time(line)?;
    let rest = rest.trim_start_matches(' ');
    if let Some(at) = rest.find(" [Client ") {
        let (head, uri_part) = rest[..at].split_once(" \"")?;
        let uri = uri_part.strip_suffix('"')?;
        let tokens: Vec<&str> = head.split(' ').filter(|t| !t.is_empty()).collect();
        // The status is the number just before the `-` that precedes the method.
        let dash = tokens.iter().rposition(|t| *t == "-")?;
        let status = tokens.get(dash.checked_sub(1)?)?.parse().ok()?;
        let method = tokens.get(dash + 1).copied();
        let host = tokens.get(dash + 3).copied();
        let after = &rest[at + 9..];
        let (client, after) = after.split_once(']')?;
        if !is_ip(client) {
            return None;
        }
        let bytes = after
            .split_once("[Length ")
            .and_then(|(_, r)| r.split(']').next());
        let mut quoted_fields = after
            .match_indices(" \"")
            .filter_map(|(i, _)| quoted(&after[i + 1..]));
        let user_agent = quoted_fields.next().map(|(ua, _)| ua);
        let referrer = quoted_fields.next().map(|(r, _)| r);
        return Some(build(
            time,
            Access {
                vhost: host,
                client,
                method,
                target: Some(uri),
                status,
                bytes,
                referrer,
                user_agent,
                ..Default::default()
            },
        ));
    }
    let (host, rest) = token(rest)?;
    let (client, rest) = token(rest)?;
    if !is_ip(client) {
        return None;
    }
    let (_rtime, rest) = token(rest)?;
    let (request, rest) = quoted(rest.trim_start_matches(' '))?;
    let (status, rest) = token(rest)?;
    let (bytes, rest) = token(rest).unwrap_or(("-", ""));
    // Then request length, a referrer (`-`) and the user agent, unquoted, to the end.
    let user_agent = token(rest)
        .and_then(|(_, r)| token(r))
        .map(|(_, ua)| ua.trim())
        .filter(|ua| !ua.is_empty());
    let (method, target, version) = split_request(request);
    Some(build(
        time,
        Access {
            vhost: (host != "_" && host != "-").then_some(host),
            client,
            method,
            target,
            version,
            status: status.parse().ok()?,
            bytes: Some(bytes),
            user_agent,
            ..Default::default()
        },
    ))
}

fn build(time: DateTime<Utc>, a: Access<'_>) -> Event {
    let mut ev = Event {
        timestamp: Some(format(time)),
        ..Default::default()
    };
    ev.event.kind = KIND_EVENT.to_string();
    ev.event.category = vec![ecs::WEB.to_string()];
    ev.event.kind_type = vec!["access".to_string()];
    ev.event.action = Some("http_request".to_string());
    ev.event.outcome = Some(if a.status < 400 { "success" } else { "failure" }.to_string());
    ev.event.dataset = Some("http.access".to_string());
    ecs::service(&mut ev, "http");
    ev.source = Some(Endpoint {
        ip: Some(a.client.to_string()),
        ..Default::default()
    });
    if let Some(user) = a.user.filter(|u| *u != "-" && !u.is_empty()) {
        ev.user = Some(User {
            name: Some(user.to_string()),
            ..Default::default()
        });
    }
    if let Some(target) = a.target {
        let domain = a
            .vhost
            .map(|v| v.split(':').next().unwrap_or(v).to_string());
        ev.url = Some(crate::ecs::url(target, domain));
    }
    ev.http = Some(Http {
        version: a.version.map(str::to_string),
        request: Some(HttpRequest {
            method: a.method.map(str::to_string),
            referrer: a
                .referrer
                .filter(|r| *r != "-" && !r.is_empty())
                .map(str::to_string),
        }),
        response: Some(HttpResponse {
            status_code: Some(a.status),
            bytes: a.bytes.and_then(|b| b.parse().ok()),
        }),
    });
    if let Some(ua) = a.user_agent.filter(|ua| *ua != "-" && !ua.is_empty()) {
        ev.user_agent = Some(UserAgent {
            original: Some(ua.to_string()),
        });
    }
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_line() {
        let ev = parse(r#"203.0.113.9 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?x=1 HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#)
            .expect("parses");
        assert_eq!(ev.source_ip(), Some("203.0.113.9"));
        assert_eq!(ev.timestamp.as_deref(), Some("2000-10-10T20:55:36.000Z"));
        let url = ev.url.as_ref().expect("url");
        assert_eq!(url.path.as_deref(), Some("/apache_pb.gif"));
        assert_eq!(url.query.as_deref(), Some("x=1"));
        let http = ev.http.as_ref().expect("http");
        assert_eq!(
            http.response.as_ref().and_then(|r| r.status_code),
            Some(200)
        );
        assert_eq!(
            http.request.as_ref().and_then(|r| r.method.as_deref()),
            Some("GET")
        );
        assert_eq!(http.version.as_deref(), Some("1.0"));
        assert_eq!(
            ev.user_agent.and_then(|u| u.original).as_deref(),
            Some("Mozilla/4.08 [en] (Win98; I ;Nav)")
        );
        assert_eq!(ev.user.and_then(|u| u.name).as_deref(), Some("frank"));
    }

    #[test]
    fn vhost_prefix_and_escaped_quote_in_agent() {
        let ev = parse(r#"shop.example.com:443 198.51.100.7 - - [01/Jan/2024:00:00:01 +0000] "POST /login HTTP/1.1" 401 12 "-" "curl \"x\"""#)
            .expect("parses");
        assert_eq!(
            ev.url.as_ref().and_then(|u| u.domain.as_deref()),
            Some("shop.example.com")
        );
        assert_eq!(ev.event.outcome.as_deref(), Some("failure"));
        assert_eq!(
            ev.user_agent.and_then(|u| u.original).as_deref(),
            Some(r#"curl \"x\""#)
        );
    }

    #[test]
    fn missing_ident_and_malformed_request() {
        let ev = parse(r#"192.168.1.1 - [08/Jun/2020:08:04:43 +0000] "GET /api/test HTTP/1.1" 200 100 "-" "curl/7.68.0""#)
            .expect("parses");
        assert_eq!(
            ev.url.as_ref().and_then(|u| u.original.as_deref()),
            Some("/api/test")
        );
        let ev = parse(
            r#"1.2.3.4 - - [17/Oct/2023:05:57:49 +1100] "\x16\x03\x01\x01 \x02" 400 226 "-" "-""#,
        )
        .expect("parses");
        assert_eq!(
            ev.url.as_ref().and_then(|u| u.original.as_deref()),
            Some(r"\x16\x03\x01\x01 \x02")
        );
        assert_eq!(ev.http.and_then(|h| h.request).and_then(|r| r.method), None);
    }

    #[test]
    fn proxy_manager_formats() {
        let ev = parse(r#"[10/Feb/2024:21:25:15 +0100] - 404 200 - GET http api.example.org "/v1/health" [Client 192.168.1.104] [Length 512] [Gzip 1.1] "curl/7.68.0" "-""#)
            .expect("parses");
        assert_eq!(ev.source_ip(), Some("192.168.1.104"));
        let http = ev.http.as_ref().expect("http");
        assert_eq!(
            http.response.as_ref().and_then(|r| r.status_code),
            Some(200)
        );
        assert_eq!(
            ev.user_agent.and_then(|u| u.original).as_deref(),
            Some("curl/7.68.0")
        );
        let ev = parse(r#"[10/Feb/2024:21:23:32 +0100] mx.example.org 192.168.1.100 0.227 "REPORT /SOGo/dav/ HTTP/2.0" 207 125 440 - Mozilla/5.0 (X11)"#)
            .expect("parses");
        assert_eq!(ev.source_ip(), Some("192.168.1.100"));
        assert_eq!(
            ev.url.as_ref().and_then(|u| u.domain.as_deref()),
            Some("mx.example.org")
        );
        assert_eq!(
            ev.user_agent.and_then(|u| u.original).as_deref(),
            Some("Mozilla/5.0 (X11)")
        );
    }

    #[test]
    fn not_an_access_line() {
        assert!(parse("Feb 12 14:10:21 host sshd[1]: hi").is_none());
        assert!(parse(r#"1.2.3.4 - - [garbage] "GET / HTTP/1.1" 200 1"#).is_none());
    }
}
