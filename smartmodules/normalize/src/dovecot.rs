//! dovecot: IMAP/POP3 login results (`rip=` is the client) and auth-worker failures
//! (`pam(user,IP): unknown user`, `sql(user,IP): Password mismatch`).

use crate::ecs::{self, FAILURE, SUCCESS};
use soc_core::event::Event;

const DATASET: &str = "dovecot";

/// `imap-login: ...` -> `imap`.
fn service_of(msg: &str) -> Option<&str> {
    let login = msg.split(": ").next()?.strip_suffix("-login")?;
    Some(match login {
        "submission" => "smtp",
        other => other,
    })
}

pub fn apply(msg: &str, ev: &mut Event) -> bool {
    if let Some(service) = service_of(msg) {
        return login(service, msg, ev);
    }
    auth_worker(msg, ev)
}

fn login(service: &str, msg: &str, ev: &mut Event) -> bool {
    let Some(ip) = ecs::kv(msg, "rip").filter(|ip| ecs::is_ip(ip)) else {
        return false;
    };
    let failed = msg.contains("(auth failed,");
    if failed {
        ecs::auth(ev, DATASET, "dovecot_auth_failure", FAILURE);
    } else if msg.contains(": Login: ") {
        ecs::auth(ev, DATASET, "dovecot_login", SUCCESS);
    } else {
        // Disconnects without a failed attempt are bookkeeping: no category.
        ecs::mark(ev, DATASET, "dovecot_disconnect", None);
    }
    ecs::service(ev, service);
    ecs::source(ev, ip, None);
    if let Some(lip) = ecs::kv(msg, "lip").filter(|ip| ecs::is_ip(ip)) {
        ecs::destination(ev, lip, None);
    }
    let user = ecs::kv(msg, "user")
        .and_then(|u| u.strip_prefix('<'))
        .and_then(|u| u.strip_suffix('>'))
        .filter(|u| !u.is_empty());
    if let Some(user) = user {
        ecs::user(ev, user);
    }
    true
}

/// `...: pam(toto,1.1.1.1,<session>): pam_authenticate() failed: ...` or
/// `...: sql(contact,1.2.3.4): unknown user`.
fn auth_worker(msg: &str, ev: &mut Event) -> bool {
    if !msg.starts_with("auth") {
        return false;
    }
    let lower_has = |needle: &str| msg.contains(needle);
    let reason = if lower_has("unknown user") {
        "unknown user"
    } else if lower_has("assword mismatch") || lower_has("pam_authenticate() failed") {
        "password mismatch"
    } else {
        return false;
    };
    // The last `driver(user,ip...)` group before the reason.
    let Some(end) = msg.rfind("): ") else {
        return false;
    };
    let Some(open) = msg[..end].rfind('(') else {
        return false;
    };
    let mut parts = msg[open + 1..end].split(',');
    let user = parts.next().unwrap_or("");
    let Some(ip) = parts.next().filter(|ip| ecs::is_ip(ip)) else {
        return false;
    };
    ecs::auth(ev, DATASET, "dovecot_auth_failure", FAILURE);
    ev.event.reason = Some(reason.to_string());
    ecs::source(ev, ip, None);
    if !user.is_empty() {
        ecs::user(ev, user);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(msg: &str) -> Option<Event> {
        let mut ev = Event::default();
        apply(msg, &mut ev).then_some(ev)
    }

    #[test]
    fn failed_imap_login() {
        let ev = run("imap-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 15 secs): user=<hess@test.fr>, method=PLAIN, rip=172.17.0.1, lip=172.17.0.2, TLS, session=<6wzJ>")
            .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("dovecot_auth_failure"));
        assert_eq!(ev.source_ip(), Some("172.17.0.1"));
        assert_eq!(ev.user_name(), Some("hess@test.fr"));
        assert_eq!(ev.service.and_then(|s| s.name).as_deref(), Some("imap"));
    }

    #[test]
    fn auth_worker_failures() {
        let ev = run("auth-worker(24058): pam(toto,1.1.1.1,<youpi>): pam_authenticate() failed: Authentication failure (password mismatch?)")
            .expect("parsed");
        assert_eq!(
            (ev.user_name(), ev.source_ip()),
            (Some("toto"), Some("1.1.1.1"))
        );
        let ev = run("auth-worker(63712): Info: conn unix:auth-worker (pid=58074,uid=109): auth-worker<4>: sql(contact,220.169.110.101): unknown user")
            .expect("parsed");
        assert_eq!(ev.source_ip(), Some("220.169.110.101"));
        assert_eq!(ev.event.reason.as_deref(), Some("unknown user"));
    }

    #[test]
    fn benign_disconnect_has_no_category() {
        let ev = run("pop3-login: Info: Disconnected: Too many bad commands (no auth attempts in 22 secs): user=<>, rip=172.17.0.1, lip=172.17.0.2, TLS, session=<H>")
            .expect("parsed");
        assert!(ev.event.category.is_empty());
        assert!(run("master: Dovecot v2.3 starting up").is_none());
    }
}
