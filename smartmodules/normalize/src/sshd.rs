//! sshd messages: logins, invalid users, pre-authentication disconnects and the protocol
//! failures scanners cause (key exchange, banner, identification, timeouts).

use crate::ecs::{self, is_ip, FAILURE, NETWORK};
use crate::pam;
use soc_core::event::Event;

const DATASET: &str = "sshd";

/// Whether `program` is the OpenSSH daemon (`sshd`, `sshd-session`, `sshd(pam_unix)`).
pub fn is_sshd(program: &str) -> bool {
    program.starts_with("sshd")
}

/// What an sshd (or PAM) message says, applied onto an event that already has the syslog
/// header. Returns whether the message was recognized.
pub fn apply(program: &str, message: &str, ev: &mut Event) -> bool {
    let claimed = if is_sshd(program) {
        pam::apply(message, ev) || sshd(message, ev)
    } else {
        pam::apply(message, ev)
    };
    if claimed && is_sshd(program) {
        ecs::service(ev, "ssh");
    }
    claimed
}

fn auth(
    ev: &mut Event,
    action: &str,
    outcome: &str,
    user: Option<&str>,
    ip: &str,
    port: Option<&str>,
) {
    ecs::auth(ev, DATASET, action, outcome);
    if let Some(user) = user {
        ecs::user(ev, user);
    }
    ecs::source(ev, ip, port);
}

/// A connection-level failure (no credentials involved): category `network`.
fn refused(ev: &mut Event, action: &str, ip: &str, port: Option<&str>) {
    ecs::mark(ev, DATASET, action, Some(NETWORK));
    ecs::outcome(ev, FAILURE);
    ecs::source(ev, ip, port);
}

/// `USER from IP port PORT...` where USER may contain spaces or be empty: split at the last
/// ` from ` so a hostile user name cannot move the source IP.
/// Text after the address (an old sshd's `ssh1: ruser from HOST`) is no more trusted than
/// the user name: of several ` from ADDR`, the last one followed by ` port N` wins, else the
/// last one.
fn user_from_ip_port(s: &str) -> Option<(&str, &str, Option<&str>)> {
    let candidates: Vec<usize> = s.match_indices(" from ").map(|(i, _)| i).collect();
    let with_port = candidates
        .iter()
        .rev()
        .find(|&&i| ip_port(&s[i + 6..]).is_some_and(|(_, port)| port.is_some()));
    let (user, rest) = match with_port.or(candidates.last()) {
        Some(&idx) => (&s[..idx], &s[idx + 6..]),
        None => ("", s.strip_prefix("from ")?),
    };
    let (ip, port) = ip_port(rest)?;
    Some((user, ip, port))
}

/// `IP port PORT ...`, `IP:` or `IP ...`.
fn ip_port(s: &str) -> Option<(&str, Option<&str>)> {
    let mut it = s.split(' ');
    let ip = it.next()?.trim_end_matches([':', ',']);
    if !is_ip(ip) {
        return None;
    }
    let port = match it.next() {
        Some("port") => it.next().map(|p| p.trim_end_matches([':', ','])),
        _ => None,
    };
    Some((ip, port))
}

/// `[USER ]IP port PORT` where the address is the token before the last ` port `.
fn user_ip_before_port(r: &str) -> Option<(&str, &str, Option<&str>)> {
    let port_idx = r.rfind(" port ")?;
    let head = &r[..port_idx];
    let (user, ip) = match head.rfind(' ') {
        Some(i) => (&head[..i], &head[i + 1..]),
        None => ("", head),
    };
    if !is_ip(ip) {
        return None;
    }
    let port = r[port_idx + 6..]
        .split([' ', ':'])
        .next()
        .filter(|p| !p.is_empty());
    Some((user, ip, port))
}

fn sshd(msg: &str, ev: &mut Event) -> bool {
    let msg = msg.trim_end();
    let (msg, preauth) = match msg.strip_suffix(" [preauth]") {
        Some(m) => (m, true),
        None => (msg, false),
    };
    let (method_rest, outcome) = if let Some(r) = msg.strip_prefix("Failed ") {
        (Some(r), FAILURE)
    } else if let Some(r) = msg.strip_prefix("Accepted ") {
        (Some(r), ecs::SUCCESS)
    } else {
        (None, "")
    };
    if let Some(r) = method_rest {
        // `password for [invalid user ]USER from IP port N ssh2`
        let Some((method, r)) = r.split_once(" for ") else {
            return false;
        };
        let (invalid, r) = match r
            .strip_prefix("invalid user ")
            .or_else(|| r.strip_prefix("illegal user "))
        {
            Some(r) => (true, r),
            None => (false, r),
        };
        let Some((user, ip, port)) = user_from_ip_port(r) else {
            return false;
        };
        // A rejected key is not a password guess: scanners offer keys by the dozen.
        let action = if outcome == FAILURE && method == "publickey" {
            "ssh_publickey_failed"
        } else {
            "ssh_login"
        };
        auth(ev, action, outcome, Some(user), ip, port);
        ev.event.reason = Some(if invalid {
            format!("{method}, invalid user")
        } else {
            method.to_string()
        });
        return true;
    }
    // sshd's PAM layer: `error: PAM: Authentication failure for [illegal user ]USER from
    // HOST` (and `User not known to the underlying authentication module`, ...).
    if let Some(r) = msg.strip_prefix("error: PAM: ") {
        let Some((why, r)) = r.split_once(" for ") else {
            return false;
        };
        let r = r.strip_prefix("illegal user ").unwrap_or(r);
        // macOS: `... for james from HOSTNAME via 192.168.1.201`: the address is after `via`.
        let via = r
            .rsplit_once(" via ")
            .filter(|(_, ip)| is_ip(ip))
            .and_then(|(head, ip)| Some((head.rsplit_once(" from ")?.0, ip, None)));
        let Some((user, ip, port)) = via.or_else(|| user_from_ip_port(r)) else {
            return false;
        };
        auth(ev, "ssh_pam_failure", FAILURE, Some(user), ip, port);
        ev.event.reason = Some(why.to_string());
        return true;
    }
    // `Disconnecting invalid user USER IP port P: Too many authentication failures`, and
    // the older `Disconnecting: Too many authentication failures for USER` (no address).
    for prefix in [
        "Disconnecting invalid user ",
        "Disconnecting authenticating user ",
    ] {
        if let Some(r) = msg.strip_prefix(prefix) {
            let (head, why) = r.split_once(": ").unwrap_or((r, ""));
            let Some((user, ip, port)) = user_ip_before_port(head) else {
                return false;
            };
            let action = if why.starts_with("Too many authentication failures") {
                "ssh_max_auth_attempts"
            } else {
                "ssh_preauth_disconnect"
            };
            auth(ev, action, FAILURE, Some(user), ip, port);
            ev.event.reason = Some(why.to_string()).filter(|w| !w.is_empty());
            return true;
        }
    }
    // `Received disconnect from IP port P:3: com.jcraft.jsch.JSchException: Auth fail`: the
    // client gave up after its credentials were refused.
    // `ROOT LOGIN REFUSED FROM ADDR [port N]`: PermitRootLogin no, and a client tried root.
    if let Some(r) = msg.strip_prefix("ROOT LOGIN REFUSED FROM ") {
        let Some((ip, port)) = ip_port(r) else {
            return false;
        };
        auth(ev, "ssh_root_refused", FAILURE, Some("root"), ip, port);
        return true;
    }
    if let Some(r) = msg
        .strip_prefix("Received disconnect from ")
        .or_else(|| msg.strip_prefix("error: Received disconnect from "))
    {
        if r.contains("Auth fail") || r.contains("Auth cancel") {
            if let Some((ip, port)) = ip_port(r) {
                auth(ev, "ssh_client_auth_failed", FAILURE, None, ip, port);
                return true;
            }
        }
    }
    if let Some(r) = msg
        .strip_prefix("Invalid user ")
        .or_else(|| msg.strip_prefix("Illegal user "))
    {
        // An empty user name leaves `Invalid user  from` or `Invalid user from`.
        let r = r.strip_prefix(' ').unwrap_or(r);
        let Some((user, ip, port)) = user_from_ip_port(r) else {
            return false;
        };
        auth(ev, "ssh_invalid_user", FAILURE, Some(user), ip, port);
        return true;
    }
    if let Some(r) = msg.strip_prefix("error: maximum authentication attempts exceeded for ") {
        let r = r.strip_prefix("invalid user ").unwrap_or(r);
        let Some((user, ip, port)) = user_from_ip_port(r) else {
            return false;
        };
        auth(ev, "ssh_max_auth_attempts", FAILURE, Some(user), ip, port);
        return true;
    }
    // `User root from 1.2.3.4 not allowed because not listed in AllowUsers`
    if let Some(r) = msg.strip_prefix("User ") {
        if let Some((head, _why)) = r.split_once(" not allowed because ") {
            let Some((user, ip, port)) = user_from_ip_port(head) else {
                return false;
            };
            auth(ev, "ssh_user_not_allowed", FAILURE, Some(user), ip, port);
            return true;
        }
        return false;
    }
    // `Connection closed by authenticating user root 1.2.3.4 port 22 [preauth]`
    for prefix in [
        "Connection closed by authenticating user ",
        "Connection closed by invalid user ",
        "Disconnected from authenticating user ",
        "Disconnected from invalid user ",
        "Connection reset by authenticating user ",
        "Connection reset by invalid user ",
    ] {
        if let Some(r) = msg.strip_prefix(prefix) {
            let Some((user, ip, port)) = user_ip_before_port(r) else {
                return false;
            };
            auth(ev, "ssh_preauth_disconnect", FAILURE, Some(user), ip, port);
            return true;
        }
    }
    // Newer sshd writes some of these with a level prefix.
    let msg = msg
        .strip_prefix("fatal: ")
        .or_else(|| msg.strip_prefix("error: kex_exchange_identification: "))
        .unwrap_or(msg);
    if let Some(r) = msg.strip_prefix("Did not receive identification string from ") {
        let Some((ip, port)) = ip_port(r) else {
            return false;
        };
        refused(ev, "ssh_no_identification", ip, port);
        return true;
    }
    if let Some(r) = msg.strip_prefix("Unable to negotiate with ") {
        let Some((ip, port)) = ip_port(r) else {
            return false;
        };
        refused(ev, "ssh_bad_key_exchange", ip, port);
        ev.event.reason = r.split_once(": ").map(|(_, why)| why.to_string());
        return true;
    }
    if let Some(r) = msg.strip_prefix("banner exchange: Connection from ") {
        let Some((ip, port)) = ip_port(r) else {
            return false;
        };
        refused(ev, "ssh_bad_banner", ip, port);
        return true;
    }
    for prefix in [
        "fatal: Timeout before authentication for ",
        "Timeout before authentication for ",
    ] {
        if let Some(r) = msg.strip_prefix(prefix) {
            let Some((ip, port)) = ip_port(r) else {
                return false;
            };
            refused(ev, "ssh_auth_timeout", ip, port);
            return true;
        }
    }
    // `ssh_dispatch_run_fatal: Connection from [authenticating user x ]IP port P: ...`
    if let Some(r) = msg.strip_prefix("ssh_dispatch_run_fatal: Connection from ") {
        let head = r.split(": ").next().unwrap_or(r);
        let Some((_, ip, port)) = user_ip_before_port(head) else {
            return false;
        };
        refused(ev, "ssh_dispatch_fatal", ip, port);
        return true;
    }
    // `Bad protocol version identification 'x' from IP port P`, `Magic value check failed
    // (N) on obfuscated handshake from IP port P`, `Protocol major versions differ for IP`.
    for prefix in [
        "Bad protocol version identification ",
        "Magic value check failed ",
        "Protocol major versions differ for ",
    ] {
        if let Some(r) = msg.strip_prefix(prefix) {
            let found = match r.rfind(" from ") {
                Some(i) => ip_port(&r[i + 6..]),
                None => ip_port(r),
            };
            let Some((ip, port)) = found else {
                return false;
            };
            refused(ev, "ssh_bad_protocol", ip, port);
            return true;
        }
    }
    // tcp_wrappers: `refused connect from host (IP)`.
    if let Some(r) = msg.strip_prefix("refused connect from ") {
        let ip = r
            .rsplit_once('(')
            .and_then(|(_, ip)| ip.strip_suffix(')'))
            .filter(|ip| is_ip(ip));
        let Some(ip) = ip else {
            return false;
        };
        refused(ev, "ssh_refused_connect", ip, None);
        return true;
    }
    // `Connection closed by IP port P [preauth]`: the client left before authenticating,
    // without naming a user; not a password guess (scanners, key probes, health checks).
    for prefix in [
        "Connection closed by ",
        "Disconnected from ",
        "Connection reset by ",
    ] {
        if let Some(r) = msg.strip_prefix(prefix) {
            if preauth {
                if let Some((ip, port)) = ip_port(r) {
                    auth(ev, "ssh_preauth_close", FAILURE, None, ip, port);
                    return true;
                }
            }
        }
    }
    // `Received disconnect from IP port P:11: Bye Bye [preauth]`: the client left before
    // authenticating, like a bare preauth close.
    if preauth {
        if let Some(r) = msg.strip_prefix("Received disconnect from ") {
            if let Some((ip, port)) = ip_port(r) {
                auth(ev, "ssh_preauth_close", FAILURE, None, ip, port);
                return true;
            }
        }
    }
    // Session bookkeeping: recognized, but not security events (no category).
    for (prefix, action) in [
        ("Received disconnect from ", "ssh_disconnect"),
        ("Disconnected from ", "ssh_disconnect"),
        ("Connection closed by ", "ssh_disconnect"),
        ("Connection reset by ", "ssh_disconnect"),
        ("Connection from ", "ssh_connection"),
    ] {
        if let Some(r) = msg.strip_prefix(prefix) {
            let r = r
                .strip_prefix("user ")
                .map_or(r, |u| u.split_once(' ').map_or(u, |(_, rest)| rest));
            if let Some((ip, port)) = ip_port(r) {
                ecs::mark(ev, DATASET, action, None);
                ecs::source(ev, ip, port);
                return true;
            }
        }
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
