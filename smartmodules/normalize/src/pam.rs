//! PAM module messages, whichever program logs them: `pam_unix(SERVICE:auth)` failures,
//! `pam_tally2` / `pam_faillock` lock-outs and session bookkeeping.

use crate::ecs::{self, is_ip, FAILURE};
use soc_core::event::Event;

const DATASET: &str = "pam";

/// The service a PAM service name stands for, in the names `service.name` uses elsewhere.
fn service_of(pam_service: &str) -> &str {
    match pam_service {
        "sshd" | "sshd-session" => "ssh",
        "vsftpd" | "proftpd" | "pure-ftpd" | "ftp" => "ftp",
        "dovecot" | "dovecot-auth" | "imap" => "imap",
        "pop" | "pop3" | "ipop3d" => "pop3",
        other => other,
    }
}

/// `MODULE(SERVICE:TYPE): MESSAGE`. Returns whether the message was recognized.
pub fn apply(msg: &str, ev: &mut Event) -> bool {
    if let Some(r) = msg.strip_prefix("PAM ") {
        return more_failures(r, ev);
    }
    // Older and terser forms, the service being the program that logs:
    // `(pam_unix) authentication failure; ...` (Red Hat's pam 0.7x), `pam_unix:
    // authentication failure; ...`, and PAM's bare message (vsftpd passes it on).
    let bare = msg
        .strip_prefix("(pam_unix) ")
        .or_else(|| msg.strip_prefix("pam_unix: "))
        .or_else(|| msg.starts_with("authentication failure;").then_some(msg));
    if let Some(text) = bare {
        let program = ev
            .process
            .as_ref()
            .and_then(|p| p.name.clone())
            .unwrap_or_default();
        let claimed = unix(&program, text, ev);
        if claimed {
            ev.event.provider = Some("pam_unix".to_string());
        }
        return claimed;
    }
    if !msg.starts_with("pam_") {
        return false;
    }
    let Some((module, rest)) = msg.split_once('(') else {
        return false;
    };
    let Some((service, text)) = rest.split_once("): ") else {
        return false;
    };
    let service = service.split(':').next().unwrap_or(service);
    let claimed = match module {
        "pam_unix" | "pam_sss" | "pam_ldap" | "pam_winbind" => unix(service, text, ev),
        "pam_tally2" | "pam_tally" | "pam_faillock" => lockout(service, text, ev),
        _ => false,
    };
    if claimed {
        ev.event.provider = Some(module.to_string());
    }
    claimed
}

fn unix(service: &str, text: &str, ev: &mut Event) -> bool {
    if let Some(fields) = text.strip_prefix("authentication failure;") {
        ecs::auth(ev, DATASET, "pam_authentication_failure", FAILURE);
        ev.event.reason = Some(format!("pam {service}"));
        ecs::service(ev, service_of(service));
        if let Some(host) = ecs::kv(fields, "rhost").filter(|h| is_ip(h)) {
            ecs::source(ev, host, None);
        }
        if let Some(user) = ecs::kv(fields, "user").filter(|u| !u.is_empty()) {
            ecs::user(ev, user);
        } else if let Some(user) = ecs::kv(fields, "logname").filter(|u| !u.is_empty()) {
            ecs::user(ev, user);
        }
        return true;
    }
    // `check pass; user unknown`: the account does not exist.
    if text.starts_with("check pass; user unknown") {
        ecs::auth(ev, DATASET, "pam_unknown_user", FAILURE);
        ecs::service(ev, service_of(service));
        return true;
    }
    // Sessions are bookkeeping, not security events: no category.
    if let Some(r) = text.strip_prefix("session opened for user ") {
        ecs::mark(ev, DATASET, "session_opened", None);
        let user = r.split([' ', '(']).next().unwrap_or("");
        ecs::user(ev, user);
        // `by alice(uid=1000)`: who opened it (su, sudo).
        if let Some(by) = r
            .split_once(" by ")
            .map(|(_, b)| b.split('(').next().unwrap_or(b))
        {
            if !by.is_empty() && by != user {
                ecs::target_user(ev, user);
                ecs::user(ev, by);
            }
        }
        return true;
    }
    if let Some(r) = text.strip_prefix("session closed for user ") {
        ecs::mark(ev, DATASET, "session_closed", None);
        ecs::user(ev, r.trim());
        return true;
    }
    false
}

/// libpam's summary when a service gives up: `PAM 2 more authentication failures;
/// logname= uid=0 euid=0 tty=ssh ruser= rhost=IP user=USER`: that many failures after the
/// first, which PAM logged on its own line.
fn more_failures(r: &str, ev: &mut Event) -> bool {
    let Some((n, fields)) = r.split_once(" more authentication failure") else {
        return false;
    };
    let Ok(n) = n.parse::<u32>() else {
        return false;
    };
    let fields = fields.split_once(';').map_or("", |(_, f)| f);
    ecs::auth(ev, DATASET, "pam_authentication_failure", FAILURE);
    ev.event.attempts = Some(n);
    let service = ev
        .process
        .as_ref()
        .and_then(|p| p.name.clone())
        .unwrap_or_default();
    if !service.is_empty() {
        ecs::service(ev, service_of(&service));
    }
    if let Some(host) = ecs::kv(fields, "rhost").filter(|h| is_ip(h)) {
        ecs::source(ev, host, None);
    }
    if let Some(user) = ecs::kv(fields, "user").filter(|u| !u.is_empty()) {
        ecs::user(ev, user);
    }
    true
}

/// shadow's `login`: `FAILED LOGIN (2) on '/dev/pts/1' from '192.0.2.90' FOR 'root',
/// Authentication failure` (older: `FAILED LOGIN 2 FROM host FOR root, ...`) and `TOO MANY
/// LOGIN TRIES (3) on ... FOR 'root'`, which reports all of the session's tries.
pub fn shadow_login(msg: &str, ev: &mut Event) -> bool {
    let (action, rest) = if let Some(r) = msg.strip_prefix("FAILED LOGIN ") {
        ("login_failure", r)
    } else if let Some(r) = msg.strip_prefix("TOO MANY LOGIN TRIES ") {
        ("login_too_many_tries", r)
    } else {
        return false;
    };
    let count: Option<u32> = rest
        .trim_start_matches('(')
        .split([')', ' '])
        .next()
        .and_then(|n| n.parse().ok());
    let quoted_after = |key: &str| {
        let (_, r) = rest.split_once(key)?;
        let r = r.trim_start();
        match r.strip_prefix('\'') {
            Some(q) => q.split('\'').next(),
            None => r.split([' ', ',']).next(),
        }
    };
    let user = quoted_after(" FOR ").filter(|u| !u.is_empty());
    let from = quoted_after(" from ").or_else(|| quoted_after(" FROM "));
    ecs::auth(ev, "login", action, FAILURE);
    ecs::service(ev, "login");
    if let Some(ip) = from.filter(|h| is_ip(h)) {
        ecs::source(ev, ip, None);
    }
    if let Some(u) = user {
        ecs::user(ev, u);
    }
    if action == "login_too_many_tries" {
        ev.event.attempts = count.filter(|n| *n > 1);
    }
    true
}

/// `user zbadguy (4001) tally 6, deny 5` / `Consecutive login failures for user x account
/// temporarily locked`: too many failures, the account is locked.
fn lockout(service: &str, text: &str, ev: &mut Event) -> bool {
    let user = if let Some(r) = text.strip_prefix("user ") {
        r.split(' ').next()
    } else {
        text.split_once("for user ")
            .and_then(|(_, r)| r.split(' ').next())
    };
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return false;
    };
    ecs::auth(ev, DATASET, "pam_account_locked", FAILURE);
    ecs::service(ev, service_of(service));
    ecs::user(ev, user);
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
    fn sudo_auth_failure_names_the_user() {
        let ev = run("pam_unix(sudo:auth): authentication failure; logname=zbadguy uid=4001 euid=0 tty=/dev/pts/12 ruser=zbadguy rhost=  user=zbadguy")
            .expect("parsed");
        assert_eq!(
            ev.event.action.as_deref(),
            Some("pam_authentication_failure")
        );
        assert_eq!(ev.user_name(), Some("zbadguy"));
        assert_eq!(ev.source, None);
        assert_eq!(ev.service.and_then(|s| s.name).as_deref(), Some("sudo"));
    }

    #[test]
    fn tally_lockout() {
        let ev = run("pam_tally2(sudo:auth): user zbadguy (4001) tally 6, deny 5").expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("pam_account_locked"));
        assert_eq!(ev.user_name(), Some("zbadguy"));
        assert_eq!(ev.event.category, vec!["authentication"]);
    }

    #[test]
    fn sessions_carry_no_category() {
        let ev =
            run("pam_unix(su:session): session opened for user root(uid=0) by alice(uid=1000)")
                .expect("parsed");
        assert!(ev.event.category.is_empty());
        assert_eq!(ev.user_name(), Some("alice"));
        assert_eq!(
            ev.user
                .and_then(|u| u.target)
                .and_then(|t| t.name)
                .as_deref(),
            Some("root")
        );
        assert!(run("pam_unix(cron:session): something else").is_none());
        assert!(run("pam_env(sshd:session): Unable to open env file").is_none());
    }
}
