//! sshd and PAM authentication messages.

use soc_core::event::{Endpoint, Event, User};

/// What an sshd or PAM message says, applied onto an event that already has the syslog header.
pub fn apply(program: &str, message: &str, ev: &mut Event) -> bool {
    if program.starts_with("sshd") {
        if let Some(rest) = message.strip_prefix("pam_unix(") {
            return pam(rest, ev);
        }
        return sshd(message, ev);
    }
    if let Some(rest) = message.strip_prefix("pam_unix(") {
        return pam(rest, ev);
    }
    false
}

fn set_auth(ev: &mut Event, dataset: &str, action: &str, outcome: &str) {
    ev.event.kind = soc_core::event::KIND_EVENT.to_string();
    ev.event.category = vec!["authentication".to_string()];
    ev.event.kind_type = vec![if outcome == "success" {
        "start".to_string()
    } else {
        "info".to_string()
    }];
    ev.event.action = Some(action.to_string());
    ev.event.outcome = Some(outcome.to_string());
    ev.event.dataset = Some(dataset.to_string());
}

fn set_source(ev: &mut Event, ip: &str, port: Option<&str>) {
    ev.source = Some(Endpoint {
        ip: Some(ip.to_string()),
        port: port.and_then(|p| p.parse().ok()),
        domain: None,
    });
}

fn set_user(ev: &mut Event, name: &str) {
    ev.user = Some(User {
        name: Some(name.to_string()),
    });
}

/// `USER from IP port PORT...` where USER may contain spaces or be empty: split at the last
/// ` from ` so a hostile user name cannot move the source IP.
fn user_from_ip_port(s: &str) -> Option<(&str, &str, Option<&str>)> {
    let idx = s
        .rfind(" from ")
        .or_else(|| s.strip_prefix("from ").map(|_| 0))?;
    let (user, rest) = if idx == 0 && s.starts_with("from ") {
        ("", &s[5..])
    } else {
        (&s[..idx], &s[idx + 6..])
    };
    let (ip, port) = ip_port(rest)?;
    Some((user, ip, port))
}

/// `IP port PORT ...` or `IP ...`.
fn ip_port(s: &str) -> Option<(&str, Option<&str>)> {
    let mut it = s.split(' ');
    let ip = it.next()?;
    if !is_ip(ip) {
        return None;
    }
    let port = match it.next() {
        Some("port") => it.next(),
        _ => None,
    };
    Some((ip, port))
}

pub fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

fn sshd(msg: &str, ev: &mut Event) -> bool {
    let msg = msg.trim_end();
    let msg = msg.strip_suffix(" [preauth]").unwrap_or(msg);
    let (method_rest, outcome) = if let Some(r) = msg.strip_prefix("Failed ") {
        (Some(r), "failure")
    } else if let Some(r) = msg.strip_prefix("Accepted ") {
        (Some(r), "success")
    } else {
        (None, "")
    };
    if let Some(r) = method_rest {
        // `password for [invalid user ]USER from IP port N ssh2`
        let Some((method, r)) = r.split_once(" for ") else {
            return false;
        };
        let (invalid, r) = match r.strip_prefix("invalid user ") {
            Some(r) => (true, r),
            None => (false, r),
        };
        let Some((user, ip, port)) = user_from_ip_port(r) else {
            return false;
        };
        set_auth(ev, "sshd", "ssh_login", outcome);
        ev.event.reason = Some(if invalid {
            format!("{method}, invalid user")
        } else {
            method.to_string()
        });
        set_user(ev, user);
        set_source(ev, ip, port);
        return true;
    }
    if let Some(r) = msg.strip_prefix("Invalid user ") {
        let r = if r.starts_with("from ") {
            r
        } else {
            r.strip_prefix(' ').unwrap_or(r)
        };
        if let Some((user, ip, port)) = user_from_ip_port(r) {
            set_auth(ev, "sshd", "ssh_invalid_user", "failure");
            set_user(ev, user);
            set_source(ev, ip, port);
            return true;
        }
        if let Some(user_ip) = r.strip_prefix("from ") {
            if let Some((ip, port)) = ip_port(user_ip) {
                set_auth(ev, "sshd", "ssh_invalid_user", "failure");
                set_user(ev, "");
                set_source(ev, ip, port);
                return true;
            }
        }
        return false;
    }
    if let Some(r) = msg.strip_prefix("error: maximum authentication attempts exceeded for ") {
        let r = r.strip_prefix("invalid user ").unwrap_or(r);
        if let Some((user, ip, port)) = user_from_ip_port(r) {
            set_auth(ev, "sshd", "ssh_max_auth_attempts", "failure");
            set_user(ev, user);
            set_source(ev, ip, port);
            return true;
        }
        return false;
    }
    // `Connection closed by authenticating user root 1.2.3.4 port 22`
    // `Disconnected from invalid user admin 1.2.3.4 port 22`
    for prefix in [
        "Connection closed by authenticating user ",
        "Connection closed by invalid user ",
        "Disconnected from authenticating user ",
        "Disconnected from invalid user ",
        "Connection reset by authenticating user ",
        "Connection reset by invalid user ",
    ] {
        if let Some(r) = msg.strip_prefix(prefix) {
            // The user name may be empty or contain spaces: the IP is the token before `port`.
            let Some(port_idx) = r.rfind(" port ") else {
                return false;
            };
            let head = &r[..port_idx];
            let (user, ip) = match head.rfind(' ') {
                Some(i) => (&head[..i], &head[i + 1..]),
                None => ("", head),
            };
            if !is_ip(ip) {
                return false;
            }
            let port = r[port_idx + 6..].split(' ').next();
            set_auth(ev, "sshd", "ssh_preauth_disconnect", "failure");
            set_user(ev, user);
            set_source(ev, ip, port);
            return true;
        }
    }
    if let Some(r) = msg.strip_prefix("Did not receive identification string from ") {
        if let Some((ip, port)) = ip_port(r) {
            ev.event.kind = soc_core::event::KIND_EVENT.to_string();
            ev.event.category = vec!["network".to_string()];
            ev.event.action = Some("ssh_no_identification".to_string());
            ev.event.outcome = Some("failure".to_string());
            ev.event.dataset = Some("sshd".to_string());
            set_source(ev, ip, port);
            return true;
        }
    }
    for (prefix, action) in [
        ("Received disconnect from ", "ssh_disconnect"),
        ("Disconnected from ", "ssh_disconnect"),
        ("Connection closed by ", "ssh_disconnect"),
        ("Connection from ", "ssh_connection"),
    ] {
        if let Some(r) = msg.strip_prefix(prefix) {
            let r = r
                .strip_prefix("user ")
                .map_or(r, |u| u.split_once(' ').map_or(u, |(_, rest)| rest));
            if let Some((ip, port)) = ip_port(r) {
                ev.event.kind = soc_core::event::KIND_EVENT.to_string();
                ev.event.category = vec!["network".to_string()];
                ev.event.action = Some(action.to_string());
                ev.event.dataset = Some("sshd".to_string());
                set_source(ev, ip, port);
                return true;
            }
        }
    }
    false
}

/// `pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root`
fn pam(rest: &str, ev: &mut Event) -> bool {
    let Some((service, msg)) = rest.split_once("): ") else {
        return false;
    };
    let service = service.split(':').next().unwrap_or(service);
    if let Some(fields) = msg.strip_prefix("authentication failure;") {
        set_auth(ev, "pam", "pam_authentication_failure", "failure");
        ev.event.reason = Some(format!("pam {service}"));
        for kv in fields.split_whitespace() {
            if let Some(host) = kv.strip_prefix("rhost=") {
                if is_ip(host) {
                    set_source(ev, host, None);
                }
            } else if let Some(user) = kv.strip_prefix("user=") {
                set_user(ev, user);
            }
        }
        return true;
    }
    if let Some(r) = msg.strip_prefix("session opened for user ") {
        ev.event.kind = soc_core::event::KIND_EVENT.to_string();
        ev.event.category = vec!["session".to_string()];
        ev.event.action = Some("session_opened".to_string());
        ev.event.dataset = Some("pam".to_string());
        let user = r.split([' ', '(']).next().unwrap_or("");
        set_user(ev, user);
        return true;
    }
    if let Some(r) = msg.strip_prefix("session closed for user ") {
        ev.event.kind = soc_core::event::KIND_EVENT.to_string();
        ev.event.category = vec!["session".to_string()];
        ev.event.action = Some("session_closed".to_string());
        ev.event.dataset = Some("pam".to_string());
        set_user(ev, r.trim());
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(program: &str, msg: &str) -> Option<Event> {
        let mut ev = Event::default();
        apply(program, msg, &mut ev).then_some(ev)
    }

    fn summary(ev: &Event) -> (String, String, String, String) {
        (
            ev.event.action.clone().unwrap_or_default(),
            ev.event.outcome.clone().unwrap_or_default(),
            ev.user
                .as_ref()
                .and_then(|u| u.name.clone())
                .unwrap_or_default(),
            ev.source_ip().unwrap_or_default().to_string(),
        )
    }

    #[test]
    fn failed_password_for_invalid_user() {
        let ev = run(
            "sshd",
            "Failed password for invalid user admin from 1.2.3.4 port 4242 ssh2",
        )
        .expect("parsed");
        assert_eq!(
            summary(&ev),
            (
                "ssh_login".into(),
                "failure".into(),
                "admin".into(),
                "1.2.3.4".into()
            )
        );
        assert_eq!(ev.source.as_ref().and_then(|s| s.port), Some(4242));
        assert_eq!(ev.event.category, vec!["authentication"]);
    }

    #[test]
    fn accepted_publickey() {
        let ev = run(
            "sshd",
            "Accepted publickey for bob from 2001:db8::1 port 50000 ssh2: ED25519 SHA256:abc",
        )
        .expect("parsed");
        assert_eq!(
            summary(&ev),
            (
                "ssh_login".into(),
                "success".into(),
                "bob".into(),
                "2001:db8::1".into()
            )
        );
    }

    #[test]
    fn invalid_user_line_from_the_hub_corpus() {
        let ev = run("sshd", "Invalid user pascal from 35.188.49.176 port 53502").expect("parsed");
        assert_eq!(
            summary(&ev),
            (
                "ssh_invalid_user".into(),
                "failure".into(),
                "pascal".into(),
                "35.188.49.176".into()
            )
        );
    }

    #[test]
    fn hostile_user_name_cannot_spoof_the_source() {
        let ev = run(
            "sshd",
            "Invalid user x from 9.9.9.9 port 1 from 35.188.49.176 port 53502",
        )
        .expect("parsed");
        assert_eq!(ev.source_ip(), Some("35.188.49.176"));
        assert_eq!(
            ev.user.and_then(|u| u.name).as_deref(),
            Some("x from 9.9.9.9 port 1")
        );
    }

    #[test]
    fn preauth_disconnect_and_max_attempts() {
        let ev = run(
            "sshd",
            "Connection closed by authenticating user root 10.0.0.5 port 22 [preauth]",
        )
        .expect("parsed");
        assert_eq!(
            summary(&ev),
            (
                "ssh_preauth_disconnect".into(),
                "failure".into(),
                "root".into(),
                "10.0.0.5".into()
            )
        );
        let ev = run(
            "sshd",
            "error: maximum authentication attempts exceeded for root from 10.0.0.6 port 22 ssh2 [preauth]",
        )
        .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("ssh_max_auth_attempts"));
        assert_eq!(ev.source_ip(), Some("10.0.0.6"));
    }

    #[test]
    fn pam_failure_carries_rhost_and_user() {
        let ev = run(
            "sshd",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.6.7.8  user=root",
        )
        .expect("parsed");
        assert_eq!(
            summary(&ev),
            (
                "pam_authentication_failure".into(),
                "failure".into(),
                "root".into(),
                "5.6.7.8".into()
            )
        );
        assert_eq!(ev.event.dataset.as_deref(), Some("pam"));
    }

    #[test]
    fn unrelated_messages_are_not_claimed() {
        assert!(run("sshd", "Server listening on 0.0.0.0 port 22.").is_none());
        assert!(run("cron", "Failed password for root from 1.2.3.4 port 1 ssh2").is_none());
    }
}
