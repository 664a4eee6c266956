//! Suricata: EVE JSON records (alert, http, dns, tls, flow, fileinfo, anomaly, stats) and
//! `fast.log` alert lines. Alerts are `intrusion_detection`; HTTP transactions are `web`;
//! the other record types are kept with their fields and no category.

use crate::ecs::{self, INTRUSION_DETECTION, WEB};
use crate::time::{format, parse_rfc3339};
use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::{Map, Value};
use soc_core::event::{
    Dns, DnsQuestion, Event, File, Http, HttpRequest, HttpResponse, Network, Rule, Tls, TlsClient,
    UserAgent,
};

const EVE: &str = "suricata.eve";
const FAST: &str = "suricata.fast";

/// Whether a decoded JSON object is an EVE record.
pub fn is_eve(obj: &Map<String, Value>) -> bool {
    obj.get("event_type").is_some_and(Value::is_string)
        && (obj.contains_key("src_ip") || obj.contains_key("flow_id") || obj.contains_key("stats"))
}

fn s<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

fn port(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_u64).map(|p| p.to_string())
}

/// Suricata writes `+0000` offsets, which RFC 3339 spells `+00:00`.
fn eve_time(t: &str) -> Option<String> {
    if let Some(ts) = parse_rfc3339(t) {
        return Some(format(ts));
    }
    let cut = t.len().checked_sub(5)?;
    let (head, off) = (t.get(..cut)?, t.get(cut..)?);
    let fixed = format!("{head}{}:{}", off.get(..3)?, off.get(3..)?);
    parse_rfc3339(&fixed).map(format)
}

/// Fill `ev` (already a generic JSON event) from an EVE record.
pub fn apply(obj: &Map<String, Value>, ev: &mut Event) {
    let kind = s(obj, "event_type").unwrap_or("unknown");
    ecs::mark(ev, EVE, kind, None);
    if let Some(t) = s(obj, "timestamp").and_then(eve_time) {
        ev.timestamp = Some(t);
    }
    if let Some(ip) = s(obj, "src_ip").filter(|ip| ecs::is_ip(ip)) {
        ecs::source(ev, ip, port(obj, "src_port").as_deref());
    }
    if let Some(ip) = s(obj, "dest_ip").filter(|ip| ecs::is_ip(ip)) {
        ecs::destination(ev, ip, port(obj, "dest_port").as_deref());
    }
    let protocol = s(obj, "app_proto")
        .filter(|p| *p != "failed")
        .map(str::to_ascii_lowercase);
    if obj.contains_key("proto") || protocol.is_some() {
        ev.network = Some(Network {
            transport: s(obj, "proto").map(str::to_ascii_lowercase),
            protocol,
        });
    }
    let sub = |key: &str| obj.get(key).and_then(Value::as_object);
    if let Some(alert) = sub("alert") {
        if kind == "alert" {
            ecs::mark(ev, EVE, kind, Some(INTRUSION_DETECTION));
            ev.event.kind = "alert".to_string();
            ev.event.severity = alert
                .get("severity")
                .and_then(Value::as_u64)
                .map(|v| v.min(255) as u32);
            ev.rule = Some(Rule {
                id: alert
                    .get("signature_id")
                    .and_then(Value::as_u64)
                    .map(|v| v.to_string()),
                name: s(alert, "signature").map(str::to_string),
                category: s(alert, "category").map(str::to_string),
            });
            // `allowed` or `blocked` (IPS mode).
            ev.event.outcome = s(alert, "action")
                .map(|a| if a == "blocked" { "failure" } else { "success" }.to_string());
        }
    }
    if let Some(http) = sub("http") {
        if kind == "http" {
            ecs::mark(ev, EVE, kind, Some(WEB));
        }
        if let Some(target) = s(http, "url") {
            ev.url = Some(ecs::url(target, s(http, "hostname").map(str::to_string)));
        }
        ev.http = Some(Http {
            version: s(http, "protocol")
                .and_then(|p| p.strip_prefix("HTTP/"))
                .map(str::to_string),
            request: Some(HttpRequest {
                method: s(http, "http_method").map(str::to_string),
                referrer: s(http, "http_refer").map(str::to_string),
            }),
            response: Some(HttpResponse {
                status_code: http
                    .get("status")
                    .and_then(Value::as_u64)
                    .and_then(|v| u16::try_from(v).ok()),
                bytes: http.get("length").and_then(Value::as_u64),
            }),
        });
        if let Some(ua) = s(http, "http_user_agent") {
            ev.user_agent = Some(UserAgent {
                original: Some(ua.to_string()),
            });
        }
    }
    if let Some(dns) = sub("dns") {
        // EVE v1 has `rrname` at the top, v2 queries under `queries[0]`.
        let first_query = dns
            .get("queries")
            .and_then(Value::as_array)
            .and_then(|q| q.first())
            .and_then(Value::as_object);
        let q = first_query.unwrap_or(dns);
        ev.dns = Some(Dns {
            question: Some(DnsQuestion {
                name: s(q, "rrname").map(str::to_string),
                kind: s(q, "rrtype").map(str::to_string),
            }),
        });
    }
    if let Some(tls) = sub("tls") {
        ev.tls = Some(Tls {
            client: Some(TlsClient {
                server_name: s(tls, "sni").map(str::to_string),
            }),
        });
    }
    if let Some(fileinfo) = sub("fileinfo") {
        ev.file = s(fileinfo, "filename").map(|f| File {
            path: Some(f.to_string()),
        });
    }
}

/// `07/11/2022-10:29:01.860293  [**] [1:2200074:2] SIG [**] [Classification: C]
/// [Priority: 3] {TCP} 2.57.122.209:28487 -> 172.31.18.55:80`
pub fn parse_fast(line: &str) -> Option<Event> {
    let b = line.as_bytes();
    if b.len() < 27 || b[2] != b'/' || b[5] != b'/' || b[10] != b'-' {
        return None;
    }
    let (stamp, rest) = line.split_once(' ')?;
    let rest = rest.trim_start().strip_prefix("[**] [")?;
    let (ids, rest) = rest.split_once("] ")?;
    let (name, rest) = rest.split_once(" [**]")?;
    let mut ev = Event::default();
    ecs::mark(&mut ev, FAST, "alert", Some(INTRUSION_DETECTION));
    ev.event.kind = "alert".to_string();
    ev.timestamp = fast_time(stamp);
    let category = rest
        .split_once("[Classification: ")
        .and_then(|(_, c)| c.split(']').next());
    ev.event.severity = rest
        .split_once("[Priority: ")
        .and_then(|(_, p)| p.split(']').next())
        .and_then(|p| p.parse().ok());
    ev.rule = Some(Rule {
        id: ids.split(':').nth(1).map(str::to_string),
        name: Some(name.to_string()),
        category: category.map(str::to_string),
    });
    let (proto, flow) = rest.split_once('{')?.1.split_once("} ")?;
    let (src, dst) = flow.trim().split_once(" -> ")?;
    let split = |a: &str| match a.rsplit_once(':') {
        Some((ip, p)) if ecs::is_ip(ip) => Some((ip.to_string(), Some(p.to_string()))),
        _ => ecs::is_ip(a).then(|| (a.to_string(), None)),
    };
    let (sip, sport) = split(src)?;
    ecs::source(&mut ev, &sip, sport.as_deref());
    if let Some((dip, dport)) = split(dst) {
        ecs::destination(&mut ev, &dip, dport.as_deref());
    }
    ev.network = Some(Network {
        transport: Some(proto.to_ascii_lowercase()),
        protocol: None,
    });
    Some(ev)
}

/// `MM/DD/YYYY-hh:mm:ss.ffffff`, local time of the sensor: read as UTC.
fn fast_time(t: &str) -> Option<String> {
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<u32>().ok();
    let date = NaiveDate::from_ymd_opt(n(6..10)? as i32, n(0..2)?, n(3..5)?)?;
    let micros = t.get(20..).and_then(|f| f.parse::<u32>().ok()).unwrap_or(0);
    let dt = date.and_hms_micro_opt(n(11..13)?, n(14..16)?, n(17..19)?, micros.min(999_999))?;
    Some(format(Utc.from_utc_datetime(&dt)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eve(line: &str) -> Event {
        let obj: Map<String, Value> = serde_json::from_str(line).expect("json");
        let mut ev = Event::default();
        apply(&obj, &mut ev);
        ev
    }

    #[test]
    fn eve_alert() {
        let ev = eve(
            r#"{"timestamp":"2022-07-11T06:09:52.602489+0000","flow_id":1,"event_type":"alert","src_ip":"1.2.3.7","src_port":36288,"dest_ip":"127.0.0.1","dest_port":80,"proto":"TCP","alert":{"action":"allowed","gid":1,"signature_id":2034125,"rev":4,"signature":"ET EXPLOIT Apache Path Traversal","category":"Attempted Administrator Privilege Gain","severity":1},"http":{"hostname":"h","url":"/cgi-bin/.%2e/x?y=1","http_method":"POST","status":400}}"#,
        );
        assert_eq!(ev.event.kind, "alert");
        assert_eq!(ev.event.category, vec!["intrusion_detection"]);
        assert_eq!(ev.event.severity, Some(1));
        assert_eq!(ev.timestamp.as_deref(), Some("2022-07-11T06:09:52.602Z"));
        let rule = ev.rule.as_ref().expect("rule");
        assert_eq!(rule.id.as_deref(), Some("2034125"));
        assert_eq!(ev.source_ip(), Some("1.2.3.7"));
        assert_eq!(ev.destination.as_ref().and_then(|d| d.port), Some(80));
        assert_eq!(
            ev.url.as_ref().and_then(|u| u.path.as_deref()),
            Some("/cgi-bin/.%2e/x")
        );
        assert_eq!(ev.network.and_then(|n| n.transport).as_deref(), Some("tcp"));
    }

    #[test]
    fn eve_dns_tls_and_flow() {
        let ev = eve(
            r#"{"timestamp":"2022-07-11T06:09:52.602489+0000","event_type":"dns","src_ip":"10.0.0.1","dest_ip":"10.0.0.53","proto":"UDP","dns":{"type":"query","rrname":"example.com","rrtype":"A"}}"#,
        );
        assert!(ev.event.category.is_empty());
        assert_eq!(
            ev.dns
                .and_then(|d| d.question)
                .and_then(|q| q.name)
                .as_deref(),
            Some("example.com")
        );
        let ev = eve(
            r#"{"event_type":"tls","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","tls":{"sni":"a.example"}}"#,
        );
        assert_eq!(
            ev.tls
                .and_then(|t| t.client)
                .and_then(|c| c.server_name)
                .as_deref(),
            Some("a.example")
        );
        let ev = eve(
            r#"{"event_type":"flow","src_ip":"1.2.3.6","dest_ip":"127.0.0.1","proto":"TCP","flow":{}}"#,
        );
        assert!(ev.event.category.is_empty());
        assert_eq!(ev.event.action.as_deref(), Some("flow"));
    }

    #[test]
    fn fast_log_alert() {
        let ev = parse_fast("07/11/2022-10:29:32.251216  [**] [1:2008578:4] ET SCAN Sipvicious Scan [**] [Classification: Attempted Information Leak] [Priority: 2] {UDP} 89.248.163.216:5116 -> 172.31.18.55:5060")
            .expect("parsed");
        assert_eq!(ev.source_ip(), Some("89.248.163.216"));
        assert_eq!(ev.event.severity, Some(2));
        assert_eq!(ev.timestamp.as_deref(), Some("2022-07-11T10:29:32.251Z"));
        assert_eq!(
            ev.rule.and_then(|r| r.name).as_deref(),
            Some("ET SCAN Sipvicious Scan")
        );
        assert!(parse_fast("07/11/2022 not a fast line at all, no").is_none());
    }
}
