//! nginx / apache access logs: common and combined formats, optionally prefixed by a virtual
//! host (`vhost:port` or `vhost`).

use crate::sshd::is_ip;
use crate::time::{format, parse_clf};
use soc_core::event::{
    Endpoint, Event, Http, HttpRequest, HttpResponse, Url, User, UserAgent, KIND_EVENT,
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

pub fn parse(line: &str) -> Option<Event> {
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
    let (_ident, rest) = token(rest)?;
    let (user, rest) = token(rest)?;
    let rest = rest.trim_start_matches(' ');
    let rest = rest.strip_prefix('[')?;
    let close = rest.find(']')?;
    let time = parse_clf(&rest[..close])?;
    let rest = rest[close + 1..].trim_start_matches(' ');
    let (request, rest) = quoted(rest)?;
    let (status, rest) = token(rest)?;
    let status: u16 = status.parse().ok()?;
    let (bytes, rest) = token(rest).unwrap_or(("-", ""));
    let rest = rest.trim_start_matches(' ');
    let (referrer, rest) = quoted(rest).unwrap_or(("-", rest));
    let rest = rest.trim_start_matches(' ');
    let user_agent = quoted(rest).map(|(ua, _)| ua);

    let mut parts = request.splitn(3, ' ');
    let method = parts.next().filter(|m| !m.is_empty());
    let target = parts.next();
    let version = parts.next().and_then(|v| v.strip_prefix("HTTP/"));

    let mut ev = Event {
        timestamp: Some(format(time)),
        ..Default::default()
    };
    ev.event.kind = KIND_EVENT.to_string();
    ev.event.category = vec!["web".to_string()];
    ev.event.kind_type = vec!["access".to_string()];
    ev.event.action = Some("http_request".to_string());
    ev.event.outcome = Some(if status < 400 { "success" } else { "failure" }.to_string());
    ev.event.dataset = Some("http.access".to_string());
    ev.source = Some(Endpoint {
        ip: Some(client.to_string()),
        ..Default::default()
    });
    if user != "-" {
        ev.user = Some(User {
            name: Some(user.to_string()),
        });
    }
    if let Some(target) = target {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (target, None),
        };
        ev.url = Some(Url {
            original: Some(target.to_string()),
            path: Some(path.to_string()),
            query,
            domain: vhost.map(|v| v.split(':').next().unwrap_or(v).to_string()),
        });
    }
    ev.http = Some(Http {
        version: version.map(str::to_string),
        request: Some(HttpRequest {
            method: method.map(str::to_string),
            referrer: (referrer != "-").then(|| referrer.to_string()),
        }),
        response: Some(HttpResponse {
            status_code: Some(status),
            bytes: bytes.parse().ok(),
        }),
    });
    if let Some(ua) = user_agent.filter(|ua| *ua != "-") {
        ev.user_agent = Some(UserAgent {
            original: Some(ua.to_string()),
        });
    }
    Some(ev)
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
    fn not_an_access_line() {
        assert!(parse("Feb 12 14:10:21 host sshd[1]: hi").is_none());
        assert!(parse(r#"1.2.3.4 - - [garbage] "GET / HTTP/1.1" 200 1"#).is_none());
    }
}
