//! Privilege changes: sudo, su and pkexec. `user.name` is the invoking user,
//! `user.target.name` the account switched to, `process.command_line` the command run.

use crate::ecs::{self, FAILURE, PROCESS, SUCCESS};
use soc_core::event::{Event, Process};

/// Dispatch on the syslog program name. Returns whether the message was recognized.
pub fn apply(program: &str, msg: &str, ev: &mut Event) -> bool {
    match program {
        "sudo" => sudo(msg, ev),
        "su" => su(msg, ev),
        "pkexec" => pkexec(msg, ev),
        _ => false,
    }
}

fn command(ev: &mut Event, cmd: &str) {
    let p = ev.process.get_or_insert_with(Process::default);
    p.command_line = Some(cmd.to_string());
}

/// `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls -la`, or with a
/// reason first: `alice : 3 incorrect password attempts ; TTY=...`.
fn sudo(msg: &str, ev: &mut Event) -> bool {
    let Some((user, rest)) = msg.trim_start().split_once(" : ") else {
        return false;
    };
    let user = user.trim();
    if user.is_empty() || user.contains(' ') {
        return false;
    }
    let mut reason = None;
    let (mut target, mut cmd) = (None, None);
    for (i, field) in rest.split(" ; ").enumerate() {
        if let Some(v) = field.strip_prefix("USER=") {
            target = Some(v);
        } else if let Some(v) = field.strip_prefix("COMMAND=") {
            cmd = Some(v);
        } else if i == 0 && !field.contains('=') {
            reason = Some(field.trim());
        }
    }
    if target.is_none() && cmd.is_none() {
        return false;
    }
    match reason {
        None => {
            ecs::mark(ev, "sudo", "sudo_command", Some(PROCESS));
            ecs::outcome(ev, SUCCESS);
        }
        Some(r) if r.contains("password") => {
            ecs::auth(ev, "sudo", "sudo_auth_failure", FAILURE);
        }
        Some(_) => {
            ecs::mark(ev, "sudo", "sudo_command_denied", Some(PROCESS));
            ecs::outcome(ev, FAILURE);
        }
    }
    ev.event.reason = reason.map(str::to_string);
    ecs::service(ev, "sudo");
    ecs::user(ev, user);
    if let Some(t) = target {
        ecs::target_user(ev, t);
    }
    if let Some(c) = cmd {
        command(ev, c);
    }
    true
}

fn su_result(ev: &mut Event, outcome: &str, user: &str, target: &str) -> bool {
    if user.is_empty() || target.is_empty() {
        return false;
    }
    ecs::auth(ev, "su", "su_login", outcome);
    ecs::service(ev, "su");
    ecs::user(ev, user);
    ecs::target_user(ev, target);
    true
}

fn su(msg: &str, ev: &mut Event) -> bool {
    let msg = msg.trim();
    // util-linux: `FAILED SU (to root) alice on pts/0` and `(to root) alice on pts/0`.
    let (outcome, rest) = match msg.strip_prefix("FAILED SU ") {
        Some(r) => (FAILURE, r),
        None => (SUCCESS, msg),
    };
    if let Some(r) = rest.strip_prefix("(to ") {
        let Some((target, r)) = r.split_once(") ") else {
            return false;
        };
        let user = r.split(' ').next().unwrap_or("");
        return su_result(ev, outcome, user, target);
    }
    // shadow-utils: `Successful su for root by alice`, `FAILED su for root by alice`.
    for (prefix, outcome) in [("Successful su for ", SUCCESS), ("FAILED su for ", FAILURE)] {
        if let Some(r) = msg.strip_prefix(prefix) {
            let Some((target, user)) = r.split_once(" by ") else {
                return false;
            };
            return su_result(ev, outcome, user.trim(), target);
        }
    }
    // BSD: `su root failed for lonvick on /dev/pts/8`.
    if let Some(r) = msg.strip_prefix("su ") {
        if let Some((target, r)) = r.split_once(" failed for ") {
            let user = r.split(' ').next().unwrap_or("");
            return su_result(ev, FAILURE, user, target);
        }
    }
    // Old shadow: `+ pts/0 alice:root` / `- pts/0 alice:root`.
    let outcome = match msg.as_bytes().first() {
        Some(b'+') => SUCCESS,
        Some(b'-') => FAILURE,
        _ => return false,
    };
    let Some((user, target)) = msg.rsplit(' ').next().and_then(|p| p.split_once(':')) else {
        return false;
    };
    su_result(ev, outcome, user, target)
}

/// `alice: Executing command [USER=root] [TTY=unknown] [CWD=/home/alice] [COMMAND=/bin/x]`.
fn pkexec(msg: &str, ev: &mut Event) -> bool {
    let Some((user, rest)) = msg.trim_start().split_once(": ") else {
        return false;
    };
    if user.is_empty() || user.contains(' ') {
        return false;
    }
    let Some(open) = rest.find(" [USER=") else {
        return false;
    };
    let (text, fields) = rest.split_at(open);
    let bracket = |key: &str| {
        let i = fields.find(key)?;
        let v = &fields[i + key.len()..];
        // COMMAND is last and may contain brackets: it runs to the final `]`.
        let end = if key == "[COMMAND=" {
            v.rfind(']')?
        } else {
            v.find(']')?
        };
        Some(&v[..end])
    };
    if text.starts_with("Executing command") {
        ecs::mark(ev, "pkexec", "pkexec_command", Some(PROCESS));
        ecs::outcome(ev, SUCCESS);
    } else if text.contains("Not authorized") {
        ecs::auth(ev, "pkexec", "pkexec_auth_failure", FAILURE);
    } else {
        // e.g. `The value for the SHELL variable was not found the /etc/shells file`,
        // the trace CVE-2021-4034 exploits leave.
        ecs::mark(ev, "pkexec", "pkexec_error", Some(PROCESS));
        ecs::outcome(ev, FAILURE);
    }
    ev.event.reason = Some(text.to_string());
    ecs::service(ev, "pkexec");
    ecs::user(ev, user);
    if let Some(t) = bracket("[USER=") {
        ecs::target_user(ev, t);
    }
    if let Some(c) = bracket("[COMMAND=") {
        command(ev, c);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(program: &str, msg: &str) -> Option<Event> {
        let mut ev = Event::default();
        apply(program, msg, &mut ev).then_some(ev)
    }

    fn target(ev: &Event) -> Option<&str> {
        ev.user.as_ref()?.target.as_ref()?.name.as_deref()
    }

    fn cmd(ev: &Event) -> Option<&str> {
        ev.process.as_ref()?.command_line.as_deref()
    }

    #[test]
    fn sudo_command_and_failure() {
        let ev = run(
            "sudo",
            "    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id -u",
        )
        .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("sudo_command"));
        assert_eq!(ev.event.category, vec!["process"]);
        assert_eq!((ev.user_name(), target(&ev)), (Some("alice"), Some("root")));
        assert_eq!(cmd(&ev), Some("/usr/bin/id -u"));

        let ev = run(
            "sudo",
            "alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/bash",
        )
        .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("sudo_auth_failure"));
        assert_eq!(ev.event.outcome.as_deref(), Some("failure"));
        let ev = run(
            "sudo",
            "bob : user NOT in sudoers ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/sh",
        )
        .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("sudo_command_denied"));
        assert!(run("sudo", "unrelated text").is_none());
    }

    #[test]
    fn su_variants() {
        let ev = run("su", "FAILED SU (to root) alice on pts/0").expect("parsed");
        assert_eq!(ev.event.outcome.as_deref(), Some("failure"));
        assert_eq!((ev.user_name(), target(&ev)), (Some("alice"), Some("root")));
        let ev = run("su", "(to root) alice on pts/0").expect("parsed");
        assert_eq!(ev.event.outcome.as_deref(), Some("success"));
        let ev = run("su", "su root failed for lonvick on /dev/pts/8").expect("parsed");
        assert_eq!(
            (ev.user_name(), target(&ev)),
            (Some("lonvick"), Some("root"))
        );
        let ev = run("su", "Successful su for root by alice").expect("parsed");
        assert_eq!(ev.event.outcome.as_deref(), Some("success"));
        assert!(run("su", "pam_authenticate: Authentication failure").is_none());
    }

    #[test]
    fn pkexec_exploit_trace() {
        let ev = run("pkexec", "srcuser: The value for the SHELL variable was not found the /etc/shells file [USER=root] [TTY=/dev/pts/3] [CWD=/tmp/poc] [COMMAND=GCONV_PATH=./gconv PATH=GCONV_PATH=. SHELL=/fake/shell CHARSET=payload]")
            .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("pkexec_error"));
        assert_eq!(
            (ev.user_name(), target(&ev)),
            (Some("srcuser"), Some("root"))
        );
        assert_eq!(
            cmd(&ev),
            Some("GCONV_PATH=./gconv PATH=GCONV_PATH=. SHELL=/fake/shell CHARSET=payload")
        );
        assert!(run("pkexec", "alice: no fields here").is_none());
    }
}
