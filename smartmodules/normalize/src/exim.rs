//! exim main log (raw or through syslog): authenticator failures and SMTP rejects.

use crate::ecs::{self, is_ip, FAILURE, NETWORK};
use soc_core::event::Event;

const DATASET: &str = "exim";

/// The client address: the first ` [IP]` (a bracket after a space; `([x])` is the HELO name).
fn client_ip(s: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(i) = s[from..].find(" [") {
        let open = from + i + 2;
        let close = open + s[open..].find(']')?;
        if is_ip(&s[open..close]) {
            return Some(&s[open..close]);
        }
        from = open;
    }
    None
}

fn client_port(s: &str, ip: &str) -> Option<u16> {
    let i = s.find(ip)? + ip.len();
    let p = s[i..].strip_prefix("]:")?;
    let n = p.bytes().take_while(u8::is_ascii_digit).count();
    p[..n].parse().ok()
}

pub fn apply(msg: &str, ev: &mut Event) -> bool {
    // Skip the process id (`[10099] `, log_selector +pid) and a message id
    // (`1q2w3e-0004Ab-Cd `) before the text.
    let msg = match msg.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => msg,
    };
    let text = match msg.split_once(' ') {
        Some((id, rest)) if id.len() >= 16 && id.bytes().filter(|b| *b == b'-').count() == 2 => {
            rest
        }
        _ => msg,
    };
    if let Some(i) = text.find(" authenticator failed for ") {
        let r = &text[i..];
        let Some(ip) = client_ip(r) else {
            return false;
        };
        ecs::auth(ev, DATASET, "smtp_auth_failure", FAILURE);
        ecs::service(ev, "smtp");
        let port = client_port(r, ip).map(|p| p.to_string());
        ecs::source(ev, ip, port.as_deref());
        if let Some(user) = r
            .split_once("(set_id=")
            .and_then(|(_, u)| u.split(')').next())
            .filter(|u| !u.is_empty())
        {
            ecs::user(ev, user);
        }
        return true;
    }
    // `SMTP protocol error in "AUTH LOGIN" H=(ylmf-pc) [IP] AUTH command used when not
    // advertised`: a password-spraying bot that does not wait to be offered AUTH.
    if text.starts_with("SMTP protocol error in \"")
        && text.contains("AUTH command used when not advertised")
    {
        let Some(ip) = client_ip(text) else {
            return false;
        };
        ecs::auth(ev, DATASET, "smtp_auth_not_advertised", FAILURE);
        ecs::service(ev, "smtp");
        let port = client_port(text, ip).map(|p| p.to_string());
        ecs::source(ev, ip, port.as_deref());
        return true;
    }
    if text.starts_with("H=") {
        let rejected = ["rejected ", "sender verify fail", "too many", "dropped"]
            .iter()
            .any(|k| text.contains(k));
        if !rejected {
            return false;
        }
        let Some(ip) = client_ip(text) else {
            return false;
        };
        ecs::mark(ev, DATASET, "smtp_reject", Some(NETWORK));
        ecs::outcome(ev, FAILURE);
        ecs::service(ev, "smtp");
        let port = client_port(text, ip).map(|p| p.to_string());
        ecs::source(ev, ip, port.as_deref());
        ev.event.reason = text.rsplit_once(": ").map(|(_, why)| why.to_string());
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(msg: &str) -> Option<Event> {
        let mut ev = Event::default();
        apply(msg, &mut ev).then_some(ev)
    }

    #[test]
    fn authenticator_failure_skips_the_helo_address() {
        let ev = run("dovecot_login authenticator failed for ([1.2.3.5]) [1.2.3.4]:55379: 535 Incorrect authentication data (set_id=abuse@test.com)")
            .expect("parsed");
        assert_eq!(ev.source_ip(), Some("1.2.3.4"));
        assert_eq!(ev.source.as_ref().and_then(|s| s.port), Some(55379));
        assert_eq!(ev.user_name(), Some("abuse@test.com"));
        assert_eq!(ev.event.action.as_deref(), Some("smtp_auth_failure"));
    }

    #[test]
    fn rejects() {
        let ev = run("H=(smtpclient.test) [1.136.28.14]:17125 X=TLS1.3:TLS_AES_128_GCM_SHA256:128 CV=no F=<i@t.au> rejected RCPT <t@t.au>: SMTP AUTH is required")
            .expect("parsed");
        assert_eq!(ev.source_ip(), Some("1.136.28.14"));
        assert_eq!(ev.event.action.as_deref(), Some("smtp_reject"));
        assert!(run("H=mail.example [1.2.3.4]:25 P=esmtps S=1234 id=x").is_none());
        assert!(run("Completed").is_none());
    }
}
