//! nginx and apache error logs: authentication failures, rate limiting, forbidden and
//! missing files, with the client address. Dataset `http.error`.

use crate::ecs::{self, is_ip, AUTHENTICATION, FAILURE, WEB};
use crate::time::{self, parse_ctime};
use chrono::{NaiveDate, TimeZone, Utc};
use soc_core::event::{Event, Http, HttpRequest};

const DATASET: &str = "http.error";

/// What an error message says, as (action, category, user).
fn classify(msg: &str) -> (&'static str, Option<&'static str>, Option<&str>) {
    if msg.contains("password mismatch") || msg.contains("Password Mismatch") {
        return (
            "http_auth_failure",
            Some(AUTHENTICATION),
            quoted_user(msg).or_else(|| apache_user(msg)),
        );
    }
    // Apache 2.2 has no message ids: `user guest not found: /admin`.
    // Digest authentication: an unknown user (`user \`x' in realm \`r' not found`), and
    // the protocol failures of a client forging or replaying its answer (a stale or
    // foreign nonce, a realm, algorithm or qop the server did not offer).
    if msg.contains("' in realm `") && msg.contains("' not found") {
        return (
            "http_auth_failure",
            Some(AUTHENTICATION),
            apache_user(msg).or_else(|| digest_user(msg)),
        );
    }
    if ["AH01777", "AH01788", "AH01789", "AH01793"]
        .iter()
        .any(|id| msg.contains(id))
        || (msg.starts_with("Digest: ")
            && (msg.contains("invalid nonce")
                || msg.contains("realm mismatch")
                || msg.contains("unknown algorithm")
                || msg.contains("invalid qop")))
    {
        return ("http_auth_failure", Some(AUTHENTICATION), None);
    }
    // nginx's auth_pam module: `PAM: user 'x' - not authenticated: Authentication failure`.
    if msg.contains("- not authenticated") {
        let user = msg
            .split_once("user '")
            .and_then(|(_, r)| r.split('\'').next());
        return ("http_auth_failure", Some(AUTHENTICATION), user);
    }
    if msg.contains("was not found in")
        || msg.contains("AH01618")
        || (msg.starts_with("user ") && msg.contains(" not found"))
        || (msg.contains("AH01790") && msg.contains(" not found"))
    {
        return (
            "http_auth_failure",
            Some(AUTHENTICATION),
            quoted_user(msg).or_else(|| apache_user(msg)),
        );
    }
    if msg.contains("no user/password was provided") || msg.contains("AH01614") {
        return ("http_auth_missing", Some(AUTHENTICATION), None);
    }
    if msg.contains("client login failed") {
        return ("mail_auth_failure", Some(AUTHENTICATION), None);
    }
    if msg.contains("limiting requests") || msg.contains("limiting connections") {
        // `limit_req_dry_run`: nothing was refused, the operator is only measuring.
        if msg.contains(", dry run") {
            return ("http_rate_limit_dry_run", None, None);
        }
        return ("http_rate_limited", Some(WEB), None);
    }
    // ModSecurity (apache and nginx): `ModSecurity: Access denied with code 403 ...`.
    if msg.contains("ModSecurity: Access denied") {
        return ("http_waf_denied", Some(WEB), None);
    }
    if msg.contains("access forbidden by rule")
        || msg.contains("is forbidden")
        || msg.contains("client denied by server configuration")
        || msg.contains("(13)Permission denied")
    {
        return ("http_access_forbidden", Some(WEB), None);
    }
    // A script that is not there: apache's `script '/x.php' not found or unable to stat`,
    // PHP-FPM's `Primary script unknown` (both a scanner's favourite errors).
    if msg.contains("is not found")
        || msg.contains("No such file")
        || msg.contains("File does not exist")
        || msg.contains("not found or unable to stat")
        || msg.contains("Primary script unknown")
    {
        return ("http_not_found", Some(WEB), None);
    }
    if msg.contains("Invalid URI in request") || msg.contains("File name too long") {
        return ("http_bad_request", Some(WEB), None);
    }
    ("http_error", None, None)
}

/// `user \`x' in realm ...` (mod_auth_digest).
fn digest_user(msg: &str) -> Option<&str> {
    msg.split_once("user `")
        .and_then(|(_, r)| r.split('\'').next())
}

/// nginx: `user "x" was not found in ...` / `user "x": password mismatch`.
fn quoted_user(msg: &str) -> Option<&str> {
    msg.split_once("user \"")
        .and_then(|(_, r)| r.split('"').next())
}

/// apache: `AH01618: user sss not found: /` / `AH01617: user bob: authentication failure`.
fn apache_user(msg: &str) -> Option<&str> {
    let r = msg
        .split_once(": user ")
        .map(|(_, r)| r)
        .or_else(|| msg.strip_prefix("user "))?;
    let end = r.find([' ', ':'])?;
    // mod_auth_digest quotes it: ``backup'`.
    Some(r[..end].trim_matches(['`', '\'']))
}

fn finish(
    ev: &mut Event,
    msg: &str,
    ip: &str,
    port: Option<&str>,
    target: Option<&str>,
    method: Option<&str>,
) {
    let (action, category, user) = classify(msg);
    ecs::mark(ev, DATASET, action, category);
    if category.is_some() {
        ecs::outcome(ev, FAILURE);
    }
    ecs::service(ev, "http");
    ecs::source(ev, ip, port);
    if let Some(u) = user.filter(|u| !u.is_empty()) {
        ecs::user(ev, u);
    }
    if let Some(target) = target {
        ev.url = Some(crate::ecs::url(target, None));
    }
    if let Some(m) = method {
        ev.http = Some(Http {
            request: Some(HttpRequest {
                method: Some(m.to_string()),
                referrer: None,
            }),
            ..Default::default()
        });
    }
    ev.message = Some(msg.to_string());
}

/// `2021/12/01 13:53:33 [error] 31#31: *46 MESSAGE, client: IP, server: S, request: "GET / HTTP/1.1", host: "h"`
pub fn parse_nginx(line: &str) -> Option<Event> {
    let b = line.as_bytes();
    if b.len() < 21 || b[4] != b'/' || b[7] != b'/' || b[10] != b' ' || b[19] != b' ' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| line.get(r)?.parse::<u32>().ok();
    let date = NaiveDate::from_ymd_opt(n(0..4)? as i32, n(5..7)?, n(8..10)?)?;
    let t = date.and_hms_opt(n(11..13)?, n(14..16)?, n(17..19)?)?;
    let rest = line.get(20..)?.strip_prefix('[')?;
    let (_level, rest) = rest.split_once("] ")?;
    // `PID#TID: *CONN ` then the message.
    let (_pid, rest) = rest.split_once(": ")?;
    let rest = match rest.strip_prefix('*') {
        Some(r) => r.split_once(' ').map_or("", |(_, m)| m),
        None => rest,
    };
    let (msg, fields) = rest.split_once(", client: ")?;
    let client = fields.split(',').next()?.trim();
    // Usually the address alone; some builds append `:PORT`.
    let ip = if is_ip(client) {
        client
    } else {
        client
            .rsplit_once(':')
            .map(|(ip, _)| ip)
            .filter(|ip| is_ip(ip))?
    };
    let request = fields
        .split_once("request: \"")
        .and_then(|(_, r)| r.split('"').next());
    let mut parts = request.unwrap_or("").splitn(3, ' ');
    let method = parts.next().filter(|m| !m.is_empty());
    let target = parts.next();
    let mut ev = Event {
        timestamp: Some(time::format(Utc.from_utc_datetime(&t))),
        ..Default::default()
    };
    finish(&mut ev, msg, ip, None, target, method);
    if ev.user.is_none() {
        if let Some(login) = fields
            .split_once("login: \"")
            .and_then(|(_, r)| r.split('"').next())
        {
            ecs::user(&mut ev, login);
        }
    }
    if let Some(host) = fields
        .split_once("host: \"")
        .and_then(|(_, r)| r.split('"').next())
    {
        if let Some(url) = ev.url.as_mut() {
            url.domain = Some(host.to_string());
        }
    }
    Some(ev)
}

/// `[Thu Oct 13 12:24:49.880562 2022] [auth_basic:error] [pid 10:tid 1] [client 31.33.58.75:50229] AH01618: user sss not found: /`
pub fn parse_apache(line: &str) -> Option<Event> {
    let inner = line.strip_prefix('[')?;
    // Sent to syslog, the line has no time of its own: `[authz_core:error] [pid 1] ...`.
    let (t, rest) = match parse_ctime(inner) {
        Some((t, rest)) => (Some(t), rest.strip_prefix("] ")?),
        None if inner.split(']').next()?.contains(':') => (None, line),
        None => return None,
    };
    // `[remote ADDR]`: mod_remoteip's name for a client seen through a proxy.
    let at = rest.find("[client ").or_else(|| rest.find("[remote "))?;
    let client = &rest[at + 8..];
    // `[client [2001:db8::1]:51548]`: an IPv6 address in brackets, then the port.
    let skip = if client.starts_with('[') {
        client.find("]:").map_or(0, |i| i + 1)
    } else {
        0
    };
    let close = skip + client[skip..].find(']')?;
    let addr = &client[..close];
    let (ip, port) = if is_ip(addr) {
        (addr, None)
    } else {
        let (ip, port) = addr.rsplit_once(':')?;
        (ip.trim_start_matches('[').trim_end_matches(']'), Some(port))
    };
    if !is_ip(ip) {
        return None;
    }
    let msg = client[close + 1..].trim_start();
    // `... not found: /path` and `... for "/path": Password Mismatch` name the request path.
    let target = msg
        .split_once("[uri \"")
        .or_else(|| msg.split_once(" for \""))
        .and_then(|(_, r)| r.split('"').next())
        .or_else(|| {
            msg.split_once("script '")
                .and_then(|(_, r)| r.split('\'').next())
        })
        .or_else(|| {
            msg.rsplit_once(": /")
                .map(|(_, p)| &msg[msg.len() - p.len() - 1..])
        });
    let mut ev = Event {
        timestamp: t.map(time::format),
        ..Default::default()
    };
    finish(&mut ev, msg, ip, port, target, None);
    Some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_rate_limit_and_basic_auth() {
        let ev = parse_nginx(r#"2021/12/02 11:53:15 [error] 4065777#4065777: *42952950 limiting requests, excess: 5.428 by zone "default_root_zone", client: ::1, server: , request: "GET / HTTP/1.1", host: "la03.d.sb""#)
            .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("http_rate_limited"));
        assert_eq!(ev.source_ip(), Some("::1"));
        assert_eq!(
            ev.url.as_ref().and_then(|u| u.original.as_deref()),
            Some("/")
        );
        assert_eq!(ev.timestamp.as_deref(), Some("2021-12-02T11:53:15.000Z"));
        let ev = parse_nginx(r#"2023/01/01 12:00:00 [error] 123#0: *1 user "admin" was not found in "/etc/nginx/.htpasswd", client: 192.0.2.7, server: x, request: "GET /admin HTTP/1.1", host: "x""#)
            .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("http_auth_failure"));
        assert_eq!(ev.user_name(), Some("admin"));
        assert_eq!(ev.event.category, vec!["authentication"]);
        assert!(parse_nginx("2023/01/01 12:00:00 [notice] 1#1: signal process started").is_none());
    }

    #[test]
    fn apache_auth_errors() {
        let ev = parse_apache("[Thu Oct 13 12:24:49.880562 2022] [auth_basic:error] [pid 10:tid 140120579262208] [client 31.33.58.75:50229] AH01618: user sss not found: /")
            .expect("parsed");
        assert_eq!(
            (ev.source_ip(), ev.user_name()),
            (Some("31.33.58.75"), Some("sss"))
        );
        assert_eq!(
            ev.url.as_ref().and_then(|u| u.original.as_deref()),
            Some("/")
        );
        let ev = parse_apache(r#"[Sat Oct 15 10:00:00.000000 2022] [auth_basic:error] [pid 1] [client 198.51.100.2:4000] AH01617: user bob: authentication failure for "/private": Password Mismatch"#)
            .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("http_auth_failure"));
        assert_eq!(ev.user_name(), Some("bob"));
        assert_eq!(ev.url.and_then(|u| u.original).as_deref(), Some("/private"));
        let ev = parse_apache("[Wed Apr 16 16:09:40.056610 2025] [ssl:info] [pid 120974:tid 120974] (70014)End of file found: [client 192.168.1.1:17036] AH02006: SSL handshake stopped: connection was closed")
            .expect("parsed");
        assert!(ev.event.category.is_empty());
        assert!(parse_apache(
            "[Wed Apr 16 16:09:40 2025] [mpm_event:notice] [pid 1] AH00489: resuming"
        )
        .is_none());
    }
}
