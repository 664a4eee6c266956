//! Generic JSON log lines: the object is kept whole under `json`, and the keys most loggers
//! use for time, message, host, client address and user are lifted into ECS fields.

use crate::sshd::is_ip;
use crate::time::{format, parse_rfc3339};
use serde_json::{Map, Value};
use soc_core::event::{Endpoint, Event, Host, User, KIND_EVENT};

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

pub fn parse(line: &str) -> Option<Event> {
    let obj: Map<String, Value> = serde_json::from_str(line).ok()?;
    let mut ev = Event::default();
    ev.event.kind = KIND_EVENT.to_string();
    ev.event.dataset = Some("json".to_string());
    ev.timestamp = first_str(&obj, &["@timestamp", "timestamp", "time", "ts"])
        .and_then(parse_rfc3339)
        .map(format);
    ev.message = first_str(&obj, &["message", "msg"]).map(str::to_string);
    ev.host = first_str(&obj, &["host.hostname", "host.name", "hostname", "host"]).map(|h| Host {
        hostname: Some(h.to_string()),
    });
    ev.source = first_str(
        &obj,
        &[
            "source.ip",
            "src_ip",
            "source_ip",
            "client_ip",
            "remote_addr",
            "ip",
        ],
    )
    .filter(|ip| is_ip(ip))
    .map(|ip| Endpoint {
        ip: Some(ip.to_string()),
        ..Default::default()
    });
    ev.user = first_str(&obj, &["user.name", "user", "username"]).map(|u| User {
        name: Some(u.to_string()),
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
    fn arrays_and_bad_addresses_are_not_lifted() {
        assert!(parse("[1,2]").is_none());
        let ev = parse(r#"{"ip":"not-an-ip"}"#).expect("object");
        assert_eq!(ev.source, None);
    }
}
