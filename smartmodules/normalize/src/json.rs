//! Generic JSON log lines: the object is kept whole under `json`, and the keys most loggers
//! use for time, message, host, client address, user and HTTP request are lifted into ECS
//! fields. Suricata EVE records get their own mapping (`suricata.rs`).

use crate::ecs::is_ip;
use crate::suricata;
use crate::time::{format, parse_rfc3339};
use serde_json::{Map, Value};
use soc_core::event::{
    Endpoint, Event, Host, Http, HttpRequest, HttpResponse, User, UserAgent, KIND_EVENT,
};

fn first_str<'a>(obj: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| lookup(obj, k).and_then(Value::as_str))
}

/// `a.b` looks up a nested key, or a literal dotted key.
fn lookup<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(v) = obj.get(key) {
        return Some(v);
    }
    let (head, tail) = key.split_once('.')?;
    lookup(obj.get(head)?.as_object()?, tail)
}

/// A status code written as a number or a string.
fn status(obj: &Map<String, Value>) -> Option<u16> {
    [
        "status",
        "status_code",
        "http.response.status_code",
        "response_status",
    ]
    .iter()
    .find_map(|k| match lookup(obj, k)? {
        Value::Number(n) => n.as_u64().and_then(|v| u16::try_from(v).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    })
    .filter(|s| (100..600).contains(s))
}

/// journald's `__REALTIME_TIMESTAMP`: microseconds since the epoch, as a string.
fn journal_time(obj: &Map<String, Value>) -> Option<String> {
    let us: i64 = obj.get("__REALTIME_TIMESTAMP")?.as_str()?.parse().ok()?;
    crate::time::format_ms(us / 1000)
}

pub fn parse(line: &str) -> Option<Event> {
    let obj: Map<String, Value> = serde_json::from_str(line).ok()?;
    let mut ev = Event::default();
    ev.event.kind = KIND_EVENT.to_string();
    ev.event.dataset = Some("json".to_string());
    ev.timestamp = first_str(&obj, &["@timestamp", "timestamp", "time", "ts"])
        .and_then(parse_rfc3339)
        .map(format)
        .or_else(|| journal_time(&obj));
    // `MESSAGE` and `_HOSTNAME`: `journalctl -o json`.
    ev.message = first_str(&obj, &["message", "msg", "log", "MESSAGE"]).map(str::to_string);
    ev.host = first_str(
        &obj,
        &[
            "host.hostname",
            "host.name",
            "hostname",
            "host",
            "_HOSTNAME",
        ],
    )
    .map(|h| Host {
        hostname: Some(h.to_string()),
    });
    if suricata::is_eve(&obj) {
        suricata::apply(&obj, &mut ev);
        ev.json = Some(obj);
        return Some(ev);
    }
    ev.source = first_str(
        &obj,
        &[
            "source.ip",
            "src_ip",
            "source_ip",
            "client_ip",
            "remote_addr",
            "remote_ip",
            "clientip",
            "ip",
        ],
    )
    .filter(|ip| is_ip(ip))
    .map(|ip| Endpoint {
        ip: Some(ip.to_string()),
        ..Default::default()
    });
    ev.user = first_str(&obj, &["user.name", "user", "username", "remote_user"])
        .filter(|u| !u.is_empty() && *u != "-")
        .map(|u| User {
            name: Some(u.to_string()),
            ..Default::default()
        });
    let target = first_str(
        &obj,
        &[
            "url.original",
            "request_uri",
            "uri",
            "path",
            "url",
            "request_path",
        ],
    );
    if let Some(target) = target {
        ev.url = Some(crate::ecs::url(target, None));
    }
    let method = first_str(&obj, &["http.request.method", "method", "request_method"]);
    let status = status(&obj);
    if method.is_some() || status.is_some() {
        ev.http = Some(Http {
            version: None,
            request: method.map(|m| HttpRequest {
                method: Some(m.to_string()),
                referrer: None,
            }),
            response: status.map(|s| HttpResponse {
                status_code: Some(s),
                bytes: None,
            }),
        });
    }
    ev.user_agent = first_str(
        &obj,
        &[
            "user_agent.original",
            "user_agent",
            "http_user_agent",
            "useragent",
        ],
    )
    .map(|ua| UserAgent {
        original: Some(ua.to_string()),
    });
    ev.json = Some(obj);
    Some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_keys_are_lifted_and_the_object_kept() {
        let ev = parse(r#"{"time":"2024-05-01T10:00:00+02:00","msg":"login failed","client_ip":"192.0.2.1","user":"eve","extra":{"a":1}}"#)
            .expect("parses");
        assert_eq!(ev.timestamp.as_deref(), Some("2024-05-01T08:00:00.000Z"));
        assert_eq!(ev.message.as_deref(), Some("login failed"));
        assert_eq!(ev.source_ip(), Some("192.0.2.1"));
        assert_eq!(ev.user.and_then(|u| u.name).as_deref(), Some("eve"));
        assert_eq!(
            ev.json.and_then(|j| j.get("extra").cloned()),
            Some(serde_json::json!({"a":1}))
        );
    }

    #[test]
    fn http_keys_are_lifted() {
        let ev = parse(r#"{"remote_addr":"198.51.100.1","request_uri":"/a?b=1","status":"404","request_method":"GET","http_user_agent":"curl/8"}"#)
            .expect("parses");
        assert_eq!(ev.url.as_ref().and_then(|u| u.path.as_deref()), Some("/a"));
        let http = ev.http.expect("http");
        assert_eq!(http.response.and_then(|r| r.status_code), Some(404));
        assert_eq!(http.request.and_then(|r| r.method).as_deref(), Some("GET"));
        assert_eq!(
            ev.user_agent.and_then(|u| u.original).as_deref(),
            Some("curl/8")
        );
        // Generic JSON is not a security event by itself.
        assert!(ev.event.category.is_empty());
    }

    #[test]
    fn arrays_and_bad_addresses_are_not_lifted() {
        assert!(parse("[1,2]").is_none());
        let ev = parse(r#"{"ip":"not-an-ip"}"#).expect("object");
        assert_eq!(ev.source, None);
    }
}
