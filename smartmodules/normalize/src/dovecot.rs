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
    let failed = msg.find("(auth failed, ");
    if failed.is_none()
        && (msg.contains("(proxy dest auth failed)") || msg.contains("plaintext auth)"))
    {
        // A proxy's backend refused the login; or a client sent a password in clear where
        // that is refused, which bots do and mail clients do not.
        ecs::auth(ev, DATASET, "dovecot_auth_failure", FAILURE);
    } else if let Some(at) = failed {
        ecs::auth(ev, DATASET, "dovecot_auth_failure", FAILURE);
        // `(auth failed, 3 attempts in 12 secs)`
        let n = msg[at + 14..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok());
        ev.event.attempts = n.filter(|n| *n > 1);
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
    let reason = if lower_has("unknown user") || lower_has("User not known") {
        "unknown user"
    } else if lower_has("assword mismatch")
        || lower_has("pam_authenticate() failed")
        || lower_has("invalid credentials")
        || lower_has("Authentication failure")
    {
        "password mismatch"
    } else {
        return false;
    };
    // The last `driver(user,ip...)` group: `pam(toto,1.1.1.1,<s>): ...`, or dovecot 2.3's
    // prefix `auth(user,ip,sasl:login)<session>: Info: sql: Password mismatch`.
    let group = msg.rmatch_indices('(').find_map(|(open, _)| {
        let inner = &msg[open + 1..];
        let close = inner.find(')')?;
        let mut parts = inner[..close].split(',');
        let user = parts.next()?;
        let ip = parts.next().filter(|ip| ecs::is_ip(ip))?;
        Some((user, ip))
    });
    let Some((user, ip)) = group else {
        return false;
    };
    // `...: 2 Time(s)`: dovecot folded repeated lines into one.
    if let Some(n) = msg
        .strip_suffix(" Time(s)")
        .and_then(|m| m.rsplit_once(": "))
        .and_then(|(_, n)| n.parse::<u32>().ok())
    {
        ev.event.attempts = Some(n).filter(|n| *n > 1);
    }
    // The worker's line for an attempt the login process reports again: another kind.
    ecs::auth(ev, DATASET, "dovecot_auth_rejected", FAILURE);
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
