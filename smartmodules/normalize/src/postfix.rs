//! postfix smtpd: SASL authentication failures, NOQUEUE rejects (RCPT, HELO, relay) and
//! protocol abuse (pipelining, non-SMTP commands).

use crate::ecs::{self, FAILURE, NETWORK};
use soc_core::event::Event;

const DATASET: &str = "postfix";

pub fn is_postfix(program: &str) -> bool {
    program.starts_with("postfix")
}

fn client(ev: &mut Event, s: &str) -> bool {
    match ecs::bracketed_ip(s) {
        Some(ip) => {
            ecs::source(ev, ip, None);
            ecs::service(ev, "smtp");
            true
        }
        None => false,
    }
}

pub fn apply(msg: &str, ev: &mut Event) -> bool {
    // `warning: unknown[1.2.3.4]: SASL LOGIN authentication failed: authentication failure`
    if let Some(r) = msg.strip_prefix("warning: ") {
        if let Some(i) = r.find(": SASL ") {
            if r[i..].contains("authentication failed") {
                let mut probe = Event::default();
                if !client(&mut probe, &r[..i]) {
                    return false;
                }
                // The server could not check (its SASL backend is down) or the client asked
                // for a mechanism not offered: no password was judged wrong.
                let tail = &r[i..];
                if tail.contains("Connection lost to authentication server")
                    || tail.contains("Invalid authentication mechanism")
                {
                    ecs::mark(ev, DATASET, "smtp_auth_error", None);
                    ev.source = probe.source;
                    ev.service = probe.service;
                    ev.event.reason = tail.rsplit_once(": ").map(|(_, why)| why.to_string());
                    return true;
                }
                ecs::auth(ev, DATASET, "smtp_auth_failure", FAILURE);
                ev.source = probe.source;
                ev.service = probe.service;
                ev.event.reason = r[i + 2..].split(':').next().map(str::to_string);
                // Newer postfix names the account tried: `..., sasl_username=user@example.org`.
                if let Some(user) = r.rsplit_once("sasl_username=").map(|(_, u)| u.trim()) {
                    if !user.is_empty() && !user.contains(' ') {
                        ecs::user(ev, user);
                    }
                }
                return true;
            }
        }
        // `non-SMTP command from unknown[1.2.3.4]: GET / HTTP/1.1`
        if let Some(from) = r.strip_prefix("non-SMTP command from ") {
            return violation(ev, from, "non-SMTP command");
        }
        return false;
    }
    // `disconnect from unknown[1.2.3.4] ehlo=1 auth=0/3 quit=1 commands=2/5`: the session's
    // AUTH commands, succeeded/sent. A failed one is an attempt even where the SASL warning
    // line is not logged.
    if let Some(r) = msg.strip_prefix("disconnect from ") {
        let mut words = r.split(' ');
        let host = words.next().unwrap_or("");
        let Some((ok, sent)) = words
            .find_map(|w| w.strip_prefix("auth="))
            .and_then(|a| a.split_once('/'))
            .and_then(|(ok, sent)| Some((ok.parse::<u32>().ok()?, sent.parse::<u32>().ok()?)))
        else {
            return false;
        };
        if sent <= ok || !client(ev, host) {
            return false;
        }
        ecs::auth(ev, DATASET, "smtp_auth_summary", FAILURE);
        ecs::service(ev, "smtp");
        ev.event.attempts = Some(sent - ok).filter(|n| *n > 1);
        return true;
    }
    // `improper command pipelining after CONNECT from unknown[1.2.3.4]: ...`
    if let Some(r) = msg.strip_prefix("improper command pipelining after ") {
        let from = r.split_once(" from ").map_or(r, |(_, f)| f);
        return violation(ev, from, "improper command pipelining");
    }
    // `NOQUEUE: reject: RCPT from unknown[1.2.3.4]: 554 5.7.1 <x>: Relay access denied; ...`
    if let Some(r) = msg
        .strip_prefix("NOQUEUE: reject: ")
        .or_else(|| msg.split_once(": reject: ").map(|(_, r)| r))
    {
        let Some((_, from)) = r.split_once(" from ") else {
            return false;
        };
        let head = from.split(": ").next().unwrap_or(from);
        if !client(ev, head) {
            return false;
        }
        ecs::mark(ev, DATASET, "smtp_reject", Some(NETWORK));
        ecs::outcome(ev, FAILURE);
        ev.event.reason = reject_reason(from);
        return true;
    }
    false
}

/// The reason of a reject, after the client, the status codes and the address the reject
/// is about: `unknown[1.2.3.4]: 504 5.5.2 <pc1>: Helo command rejected: need fully-qualified
/// hostname; from=<..>` gives `Helo command rejected: need fully-qualified hostname`.
fn reject_reason(from: &str) -> Option<String> {
    let rest = from.split_once("]: ").map_or(from, |(_, r)| r);
    let mut why = rest.split("; from=").next().unwrap_or(rest).trim();
    for _ in 0..2 {
        match why.split_once(' ') {
            Some((code, r)) if code.bytes().all(|b| b.is_ascii_digit() || b == b'.') => why = r,
            _ => break,
        }
    }
    if why.starts_with('<') {
        if let Some((_, r)) = why.split_once(">: ") {
            why = r;
        }
    }
    (!why.is_empty()).then(|| why.to_string())
}

fn violation(ev: &mut Event, from: &str, reason: &str) -> bool {
    let head = from.split(": ").next().unwrap_or(from);
    if !client(ev, head) {
        return false;
    }
    ecs::mark(ev, DATASET, "smtp_protocol_violation", Some(NETWORK));
    ecs::outcome(ev, FAILURE);
    ev.event.reason = Some(reason.to_string());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sasl_error_that_judged_no_password_is_not_a_failure() {
        let mut ev = Event::default();
        assert!(apply(
            "warning: unknown[192.0.2.5]: SASL LOGIN authentication failed: Connection lost to authentication server",
            &mut ev
        ));
        assert_eq!(ev.event.action.as_deref(), Some("smtp_auth_error"));
        assert!(ev.event.category.is_empty() && ev.event.outcome.is_none());
        assert_eq!(ev.source_ip(), Some("192.0.2.5"));
    }

    fn run(msg: &str) -> Option<Event> {
        let mut ev = Event::default();
        apply(msg, &mut ev).then_some(ev)
    }

    #[test]
    fn sasl_failure_and_rejects() {
        let ev = run("warning: unknown[192.168.1.1]: SASL LOGIN authentication failed: authentication failure")
            .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("smtp_auth_failure"));
        assert_eq!(ev.source_ip(), Some("192.168.1.1"));
        assert_eq!(ev.event.category, vec!["authentication"]);
        let ev = run("NOQUEUE: reject: RCPT from static.example[192.168.1.2]: 454 4.7.1 <a@b.c>: Relay access denied; from=<s@d.t> to=<s@d.t> proto=ESMTP helo=<W>")
            .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("smtp_reject"));
        assert_eq!(ev.source_ip(), Some("192.168.1.2"));
        assert_eq!(ev.event.reason.as_deref(), Some("Relay access denied"));
        // The whole reason, not only its last clause.
        let ev = run("NOQUEUE: reject: RCPT from unknown[192.168.1.1]: 504 5.5.2 <WIN-9QL4SDRB93L>: Helo command rejected: need fully-qualified hostname; from=<a@b.c> to=<d@e.f> proto=ESMTP helo=<WIN-9QL4SDRB93L>")
            .expect("parsed");
        assert_eq!(
            ev.event.reason.as_deref(),
            Some("Helo command rejected: need fully-qualified hostname")
        );
        let ev = run("NOQUEUE: reject: RCPT from unknown[192.168.1.4]: 554 5.7.1 Service unavailable; Client host [192.168.1.4] blocked using zen.spamhaus.org; from=<a@b.c>")
            .expect("parsed");
        assert_eq!(
            ev.event.reason.as_deref(),
            Some("Service unavailable; Client host [192.168.1.4] blocked using zen.spamhaus.org")
        );
        let ev = run("warning: non-SMTP command from unknown[192.168.1.3]: GET / HTTP/1.1")
            .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("smtp_protocol_violation"));
        let ev = run("improper command pipelining after CONNECT from unknown[10.0.0.9]: \\r\\n")
            .expect("parsed");
        assert_eq!(ev.source_ip(), Some("10.0.0.9"));
    }

    #[test]
    fn benign_lines_are_not_claimed() {
        assert!(run("connect from unknown[192.168.1.1]").is_none());
        assert!(run("4F2A: client=unknown[192.168.1.1]").is_none());
        assert!(run("warning: hostname x does not resolve to address 1.2.3.4").is_none());
    }

    #[test]
    fn sasl_failure_names_the_account_when_postfix_logs_it() {
        let ev = run("warning: unknown[203.0.113.10]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=postmaster@example.org")
            .expect("parsed");
        assert_eq!(ev.user_name(), Some("postmaster@example.org"));
        assert_eq!(ev.source_ip(), Some("203.0.113.10"));
        let ev =
            run("warning: unknown[203.0.113.10]: SASL LOGIN authentication failed: UGFzc3dvcmQ6")
                .expect("parsed");
        assert_eq!(ev.user_name(), None);
    }
}
