//! PAM module messages, whichever program logs them: `pam_unix(SERVICE:auth)` failures,
//! `pam_tally2` / `pam_faillock` lock-outs and session bookkeeping.

use crate::ecs::{self, is_ip, FAILURE};
use soc_core::event::Event;

const DATASET: &str = "pam";

/// The service a PAM service name stands for, in the names `service.name` uses elsewhere.
fn service_of(pam_service: &str) -> &str {
    match pam_service {
        "sshd" => "ssh",
        "vsftpd" | "proftpd" | "pure-ftpd" | "ftp" => "ftp",
        "dovecot" => "imap",
        other => other,
    }
}

/// `MODULE(SERVICE:TYPE): MESSAGE`. Returns whether the message was recognized.
pub fn apply(msg: &str, ev: &mut Event) -> bool {
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
    match module {
        "pam_unix" | "pam_sss" | "pam_ldap" | "pam_winbind" => unix(service, text, ev),
        "pam_tally2" | "pam_tally" | "pam_faillock" => lockout(service, text, ev),
        _ => false,
    }
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
