//! Packet filter logs: netfilter/iptables kernel lines (`IN=eth0 OUT= SRC=.. DST=.. PROTO=TCP
//! SPT=.. DPT=..`) and pf `filterlog` CSV (pfSense, OPNsense). Dataset `firewall`.

use crate::ecs::{self, is_ip, NETWORK};
use soc_core::event::{Event, Network};

const DATASET: &str = "firewall";

fn verdict(text: &str) -> &'static str {
    let up = text.to_ascii_uppercase();
    if ["DROP", "BLOCK", "REJECT", "DENY", "-D-", "-R-"]
        .iter()
        .any(|k| up.contains(k))
    {
        "firewall_drop"
    } else if ["ACCEPT", "ALLOW", "PASS", "-A-"]
        .iter()
        .any(|k| up.contains(k))
    {
        "firewall_pass"
    } else {
        "firewall_log"
    }
}

#[allow(clippy::too_many_arguments)]
fn fill(
    ev: &mut Event,
    action: &str,
    src: &str,
    dst: Option<&str>,
    sport: Option<&str>,
    dport: Option<&str>,
    transport: Option<&str>,
    iface: Option<&str>,
) {
    ecs::mark(ev, DATASET, action, Some(NETWORK));
    ev.event.kind_type = vec![
        "connection".to_string(),
        match action {
            "firewall_drop" => "denied",
            "firewall_pass" => "allowed",
            _ => "info",
        }
        .to_string(),
    ];
    ecs::source(ev, src, sport);
    if let Some(dst) = dst.filter(|d| is_ip(d)) {
        ecs::destination(ev, dst, dport);
    }
    ev.network = Some(Network {
        transport: transport.map(str::to_ascii_lowercase),
        protocol: None,
    });
    ev.event.reason = iface
        .filter(|i| !i.is_empty())
        .map(|i| format!("interface {i}"));
}

/// A netfilter line: needs `IN=` and an address in `SRC=`. The text before `IN=` is the
/// administrator's log prefix, which usually names the verdict.
pub fn iptables(msg: &str, ev: &mut Event) -> bool {
    let Some(at) = msg.find("IN=") else {
        return false;
    };
    if at > 0 && !matches!(msg.as_bytes()[at - 1], b' ' | b':' | b']') {
        return false;
    }
    let fields = &msg[at..];
    let get = |key: &str| {
        fields
            .split(' ')
            .find_map(|t| t.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
    };
    let Some(src) = get("SRC").filter(|s| is_ip(s)) else {
        return false;
    };
    let action = verdict(&msg[..at]);
    fill(
        ev,
        action,
        src,
        get("DST"),
        get("SPT"),
        get("DPT"),
        get("PROTO"),
        get("IN"),
    );
    true
}

/// pf `filterlog`: `rule,sub,anchor,tracker,iface,reason,action,dir,ipver,...`.
pub fn filterlog(msg: &str, ev: &mut Event) -> bool {
    let f: Vec<&str> = msg.trim().split(',').collect();
    if f.len() < 9 {
        return false;
    }
    let (iface, action, ipver) = (f[4], f[6], f[8]);
    // Where the addresses sit depends on the IP version.
    let (proto, src, dst, ports_at) = match ipver {
        "4" if f.len() >= 20 => (f[16], f[18], f[19], 20),
        "6" if f.len() >= 17 => (f[12], f[15], f[16], 17),
        _ => return false,
    };
    if !is_ip(src) {
        return false;
    }
    let (sport, dport) = if matches!(proto, "tcp" | "udp") && f.len() > ports_at + 1 {
        (Some(f[ports_at]), Some(f[ports_at + 1]))
    } else {
        (None, None)
    };
    let action = match action {
        "block" | "reject" => "firewall_drop",
        "pass" => "firewall_pass",
        _ => "firewall_log",
    };
    fill(
        ev,
        action,
        src,
        Some(dst),
        sport,
        dport,
        Some(proto),
        Some(iface),
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: fn(&str, &mut Event) -> bool, msg: &str) -> Option<Event> {
        let mut ev = Event::default();
        f(msg, &mut ev).then_some(ev)
    }

    #[test]
    fn iptables_drop() {
        let ev = run(iptables, "[  203.842973] IPTABLES-DROP: IN=lo OUT= MAC=00:00 SRC=127.0.0.1 DST=127.0.0.53 LEN=76 TOS=0x00 PREC=0x00 TTL=64 ID=25029 DF PROTO=UDP SPT=49007 DPT=53 LEN=56 ")
            .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("firewall_drop"));
        assert_eq!(ev.source_ip(), Some("127.0.0.1"));
        assert_eq!(ev.destination.as_ref().and_then(|d| d.port), Some(53));
        assert_eq!(ev.network.and_then(|n| n.transport).as_deref(), Some("udp"));
        assert!(run(iptables, "[1.0] XX=enp1s0 OUT= SRC=1.2.3.4 DST=5.6.7.8").is_none());
        assert!(run(iptables, "LOGIN=bob SRC=1.2.3.4").is_none());
    }

    #[test]
    fn filterlog_v4_and_v6() {
        let ev = run(filterlog, "53,,,1000000301,em0,match,block,in,4,0x0,,64,420,0,none,6,tcp,460,10.0.2.2,10.0.2.15,53742,22,420,PA,29633380:29633800,3617062173,65535,,")
            .expect("parsed");
        assert_eq!(ev.source_ip(), Some("10.0.2.2"));
        assert_eq!(ev.destination.as_ref().and_then(|d| d.port), Some(22));
        assert_eq!(ev.event.action.as_deref(), Some("firewall_drop"));
        let ev = run(filterlog, "98,,,64d2,re0,match,block,in,6,0x00,0x0ea87,51,udp,17,73,2008:8a0::1,2c02:2454::1738,6881,51918,73")
            .expect("parsed");
        assert_eq!(ev.source_ip(), Some("2008:8a0::1"));
        assert_eq!(ev.network.and_then(|n| n.transport).as_deref(), Some("udp"));
        assert!(run(filterlog, "a,b,c").is_none());
    }
}
