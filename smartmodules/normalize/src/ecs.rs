//! Small setters and scanners shared by the program parsers, so every parser writes the same
//! ECS shape (category, outcome, service) and reads addresses the same way.

use soc_core::event::{Endpoint, Event, Service, TargetUser, Url, User, KIND_EVENT};

pub const AUTHENTICATION: &str = "authentication";
pub const NETWORK: &str = "network";
pub const WEB: &str = "web";
pub const PROCESS: &str = "process";
pub const FILE: &str = "file";
pub const INTRUSION_DETECTION: &str = "intrusion_detection";

pub const SUCCESS: &str = "success";
pub const FAILURE: &str = "failure";

/// Mark `ev` as recognized by `dataset` with `action`. `category` is `None` for lines that
/// are worth keeping but are not security events (session bookkeeping, flows, stats).
pub fn mark(ev: &mut Event, dataset: &str, action: &str, category: Option<&str>) {
    ev.event.kind = KIND_EVENT.to_string();
    ev.event.dataset = Some(dataset.to_string());
    ev.event.action = Some(action.to_string());
    ev.event.category = category.map(|c| vec![c.to_string()]).unwrap_or_default();
}

/// An authentication attempt: category `authentication`, type `start` on success.
pub fn auth(ev: &mut Event, dataset: &str, action: &str, outcome: &str) {
    mark(ev, dataset, action, Some(AUTHENTICATION));
    ev.event.kind_type = vec![if outcome == SUCCESS { "start" } else { "info" }.to_string()];
    ev.event.outcome = Some(outcome.to_string());
}

pub fn outcome(ev: &mut Event, outcome: &str) {
    ev.event.outcome = Some(outcome.to_string());
}

pub fn service(ev: &mut Event, name: &str) {
    ev.service = Some(Service {
        name: Some(name.to_string()),
    });
}

/// Set `source.ip` (an IPv4-mapped IPv6 address is written as the IPv4 address) and port.
pub fn source(ev: &mut Event, ip: &str, port: Option<&str>) {
    ev.source = Some(endpoint(ip, port));
}

pub fn destination(ev: &mut Event, ip: &str, port: Option<&str>) {
    ev.destination = Some(endpoint(ip, port));
}

fn endpoint(ip: &str, port: Option<&str>) -> Endpoint {
    Endpoint {
        ip: Some(unmap(ip).to_string()),
        port: port.and_then(|p| p.parse().ok()),
        domain: None,
    }
}

/// `::ffff:1.2.3.4` -> `1.2.3.4`, so one client has one address whatever the socket family.
pub fn unmap(ip: &str) -> &str {
    match ip.strip_prefix("::ffff:") {
        Some(v4) if v4.contains('.') => v4,
        _ => ip,
    }
}

pub fn user(ev: &mut Event, name: &str) {
    ev.user.get_or_insert_with(User::default).name = Some(name.to_string());
}

pub fn target_user(ev: &mut Event, name: &str) {
    ev.user.get_or_insert_with(User::default).target = Some(TargetUser {
        name: Some(name.to_string()),
        id: None,
    });
}

/// `url.*` from a request target as sent (path and query split at the first `?`).
pub fn url(target: &str, domain: Option<String>) -> Url {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    Url {
        original: Some(target.to_string()),
        path: Some(path.to_string()),
        query,
        domain,
    }
}

pub fn is_ip(s: &str) -> bool {
    // Cheap first-byte check: most tokens tested are words, and parsing an address is not free.
    match s.as_bytes().first() {
        Some(b) if b.is_ascii_hexdigit() || *b == b':' => s.parse::<std::net::IpAddr>().is_ok(),
        _ => false,
    }
}

/// The value of `key` in a `k1=v1 k2=v2` or `k1=v1, k2=v2` list; `"quoted"` values lose
/// their quotes. The key must start the list or follow a space or comma.
pub fn kv<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    kv_quoted(s, key).map(|(_, v)| v)
}

/// Like [`kv`], also telling whether the value was quoted.
pub fn kv_quoted<'a>(s: &'a str, key: &str) -> Option<(bool, &'a str)> {
    let mut from = 0;
    while let Some(i) = s[from..].find(key) {
        let at = from + i;
        let end = at + key.len();
        let boundary = at == 0 || matches!(s.as_bytes()[at - 1], b' ' | b',' | b'(' | b'\t');
        if boundary && s.as_bytes().get(end) == Some(&b'=') {
            let v = &s[end + 1..];
            if let Some(q) = v.strip_prefix('"') {
                return Some((true, q.find('"').map_or(q, |j| &q[..j])));
            }
            let stop = v.find([' ', ',', '\t']).unwrap_or(v.len());
            return Some((false, &v[..stop]));
        }
        from = end;
    }
    None
}

/// The first `[IP]` in `s` preceded by `before` (e.g. `unknown[1.2.3.4]` with `before` any
/// character), as postfix and exim write client addresses.
pub fn bracketed_ip(s: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(i) = s[from..].find('[') {
        let open = from + i + 1;
        let close = open + s[open..].find(']')?;
        let inner = &s[open..close];
        let inner = inner.strip_prefix("IPv6:").unwrap_or(inner);
        if is_ip(inner) {
            return Some(unmap(inner));
        }
        from = open;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_respects_boundaries_and_quotes() {
        let s = r#"logname= uid=0 euid=0 rhost=1.2.3.4  user=root exe="/usr/bin/a b""#;
        assert_eq!(kv(s, "uid"), Some("0"));
        assert_eq!(kv(s, "user"), Some("root"));
        assert_eq!(kv(s, "rhost"), Some("1.2.3.4"));
        assert_eq!(kv(s, "exe"), Some("/usr/bin/a b"));
        assert_eq!(kv(s, "logname"), Some(""));
        assert_eq!(kv(s, "name"), None);
        assert_eq!(kv("user=<a>, rip=1.2.3.4, lip=5", "rip"), Some("1.2.3.4"));
    }

    #[test]
    fn bracketed_ip_skips_names() {
        assert_eq!(
            bracketed_ip("unknown[192.168.1.1]: 554"),
            Some("192.168.1.1")
        );
        assert_eq!(
            bracketed_ip("H=x [ok] [::ffff:1.2.3.4]:25"),
            Some("1.2.3.4")
        );
        assert_eq!(bracketed_ip("no [address] here"), None);
        assert_eq!(bracketed_ip("broken [1.2.3.4"), None);
    }
}
