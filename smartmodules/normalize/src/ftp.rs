//! FTP servers: vsftpd (syslog and `vsftpd.log`), proftpd (syslog and its own log) and
//! pure-ftpd. Failed logins become `ftp_login` with the client address (and the reason).

use crate::ecs::{self, is_ip, FAILURE, SUCCESS};
use soc_core::event::Event;

fn login(ev: &mut Event, dataset: &str, action: &str, outcome: &str, ip: &str, user: Option<&str>) {
    ecs::auth(ev, dataset, action, outcome);
    ecs::service(ev, "ftp");
    ecs::source(ev, ip, None);
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        ecs::user(ev, user);
    }
}

/// vsftpd: `[pid 27244] [user] FAIL LOGIN: Client "::ffff:1.2.3.4"` (the pid part only in
/// `vsftpd.log`).
pub fn vsftpd(msg: &str, ev: &mut Event) -> bool {
    let mut rest = msg.trim_start();
    if let Some(r) = rest.strip_prefix("[pid ") {
        rest = r.split_once("] ").map_or("", |(_, r)| r);
    }
    let mut user = None;
    if let Some(r) = rest.strip_prefix('[') {
        let Some((u, r)) = r.split_once("] ") else {
            return false;
        };
        user = Some(u);
        rest = r;
    }
    let client = |r: &str| -> Option<String> {
        let ip = r.strip_prefix("Client \"")?.split('"').next()?;
        is_ip(ip).then(|| ecs::unmap(ip).to_string())
    };
    if let Some(r) = rest.strip_prefix("FAIL LOGIN: ") {
        let Some(ip) = client(r) else {
            return false;
        };
        login(ev, "vsftpd", "ftp_login", FAILURE, &ip, user);
        return true;
    }
    if let Some(r) = rest.strip_prefix("OK LOGIN: ") {
        let Some(ip) = client(r) else {
            return false;
        };
        login(ev, "vsftpd", "ftp_login", SUCCESS, &ip, user);
        return true;
    }
    if let Some(r) = rest.strip_prefix("CONNECT: ") {
        let Some(ip) = client(r) else {
            return false;
        };
        ecs::mark(ev, "vsftpd", "ftp_connection", None);
        ecs::service(ev, "ftp");
        ecs::source(ev, &ip, None);
        return true;
    }
    false
}

/// proftpd: `SERVER (HOST[IP]) - USER x (Login failed): Incorrect password` (syslog) or
/// `SERVER (HOST[IP]): USER x: no such user found from ...` (its own log).
pub fn proftpd(msg: &str, ev: &mut Event) -> bool {
    let Some(open) = msg.find(" (") else {
        return false;
    };
    let r = &msg[open + 2..];
    let Some(close) = r.find(')') else {
        return false;
    };
    let client = &r[..close];
    let Some(ip) = client
        .rsplit_once('[')
        .and_then(|(_, ip)| ip.strip_suffix(']'))
        .filter(|ip| is_ip(ip))
    else {
        return false;
    };
    let text = r[close + 1..].trim_start_matches([':', ' ', '-']);
    let Some(r) = text.strip_prefix("USER ") else {
        return false;
    };
    let user_end = r.find([':', ' ']).unwrap_or(r.len());
    let user = &r[..user_end];
    let what = &r[user_end..];
    let lower = what.to_ascii_lowercase();
    if lower.contains("no such user") {
        // One attempt like a wrong password: the same kind of line, for counting.
        login(ev, "proftpd", "ftp_login", FAILURE, ip, Some(user));
        ev.event.reason = Some("no such user".to_string());
    } else if lower.contains("login failed") || lower.contains("incorrect password") {
        login(ev, "proftpd", "ftp_login", FAILURE, ip, Some(user));
    } else if lower.contains("login successful") {
        login(ev, "proftpd", "ftp_login", SUCCESS, ip, Some(user));
    } else {
        return false;
    }
    true
}

/// pure-ftpd: `(?@172.21.10.2) [WARNING] Authentication failed for user [root]`.
pub fn pureftpd(msg: &str, ev: &mut Event) -> bool {
    let Some(r) = msg.strip_prefix('(') else {
        return false;
    };
    let Some((who, text)) = r.split_once(") ") else {
        return false;
    };
    let Some(ip) = who
        .rsplit_once('@')
        .map(|(_, ip)| ip)
        .filter(|ip| is_ip(ip))
    else {
        return false;
    };
    let Some(r) = text
        .split_once("Authentication failed for user [")
        .map(|(_, r)| r)
    else {
        return false;
    };
    let user = r.strip_suffix(']').unwrap_or(r);
    login(ev, "pure-ftpd", "ftp_login", FAILURE, ip, Some(user));
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
    fn vsftpd_fail_login() {
        let ev = run(
            vsftpd,
            r#"[pid 27244] [user] FAIL LOGIN: Client "::ffff:93.24.101.89""#,
        )
        .expect("parsed");
        assert_eq!(ev.source_ip(), Some("93.24.101.89"));
        assert_eq!(ev.user_name(), Some("user"));
        assert_eq!(ev.event.outcome.as_deref(), Some("failure"));
        let ev = run(vsftpd, r#"[pid 1] CONNECT: Client "1.2.3.4""#).expect("parsed");
        assert!(ev.event.category.is_empty());
        assert!(run(
            vsftpd,
            r#"[pid 1] [w] FTP response: Client "1.2.3.4", "530""#
        )
        .is_none());
    }

    #[test]
    fn proftpd_both_layouts() {
        let ev = run(proftpd, "172.31.39.97 (1.1.1.1[1.1.1.1]) - USER sdf: no such user found from 1.1.1.1 [1.1.1.1] to 172.31.39.97:21")
            .expect("parsed");
        assert_eq!(
            (ev.user_name(), ev.source_ip()),
            (Some("sdf"), Some("1.1.1.1"))
        );
        assert_eq!(ev.event.action.as_deref(), Some("ftp_login"));
        assert_eq!(ev.event.reason.as_deref(), Some("no such user"));
        let ev = run(
            proftpd,
            "mantis (192.168.1.142[192.168.1.142]): USER seb (Login failed): Incorrect password",
        )
        .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("ftp_login"));
        assert_eq!(ev.user_name(), Some("seb"));
        assert!(run(proftpd, "mantis (1.2.3.4[1.2.3.4]) - FTP session opened.").is_none());
    }

    #[test]
    fn pureftpd_failure_only() {
        let ev = run(
            pureftpd,
            "(?@172.21.10.2) [WARNING] Authentication failed for user [root]",
        )
        .expect("parsed");
        assert_eq!(
            (ev.user_name(), ev.source_ip()),
            (Some("root"), Some("172.21.10.2"))
        );
        assert!(run(
            pureftpd,
            "(?@172.21.10.2) [INFO] user@test.com is now logged in"
        )
        .is_none());
    }
}
