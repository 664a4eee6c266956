//! Linux audit records, raw (`type=EXECVE msg=audit(1620000000.123:456): argc=2 a0="ls"`)
//! or forwarded by syslog (`audispd: node=h type=...`, `kernel: audit: type=1400 audit(..)`).
//! Dataset `auditd`; `event.action` is the record type in lowercase.

use crate::ecs::{self, is_ip, AUTHENTICATION, FAILURE, FILE, PROCESS, SUCCESS};
use crate::time;
use chrono::DateTime;
use soc_core::event::{Event, File, ParentProcess, Process, TargetUser, User};

const DATASET: &str = "auditd";

/// Numeric record types the kernel writes before auditd names them.
fn type_name(t: &str) -> &str {
    match t {
        "1300" => "SYSCALL",
        "1309" => "EXECVE",
        "1302" => "PATH",
        "1327" => "PROCTITLE",
        "1400" | "1107" => "AVC",
        "1701" => "ANOM_ABEND",
        "1100" => "USER_AUTH",
        "1112" => "USER_LOGIN",
        "1123" => "USER_CMD",
        other => other,
    }
}

/// Parse an audit record at the start of `s` (after an optional `node=NAME `).
pub fn parse(s: &str) -> Option<Event> {
    let mut ev = Event::default();
    apply(s, &mut ev).then_some(ev)
}

pub fn apply(s: &str, ev: &mut Event) -> bool {
    let s = s.trim_start();
    let s = s.strip_prefix("audit: ").unwrap_or(s);
    let s = match s.strip_prefix("node=") {
        Some(r) => r.split_once(' ').map_or("", |(_, r)| r),
        None => s,
    };
    let Some(r) = s.strip_prefix("type=") else {
        return false;
    };
    let Some((kind, r)) = r.split_once(' ') else {
        return false;
    };
    let r = r.strip_prefix("msg=").unwrap_or(r);
    let Some(r) = r.strip_prefix("audit(") else {
        return false;
    };
    let Some((stamp, body)) = r.split_once("):") else {
        return false;
    };
    let kind = type_name(kind);
    let (secs, serial) = stamp.split_once(':').unwrap_or((stamp, ""));
    ev.event.sequence = serial.parse().ok();
    if let Some(ms) = epoch_ms(secs) {
        ev.timestamp = DateTime::from_timestamp_millis(ms).map(time::format);
    }
    let body = body.trim_start();
    let action = kind.to_ascii_lowercase();
    match kind {
        "SYSCALL" => syscall(body, &action, ev),
        "EXECVE" => execve(body, &action, ev),
        "USER_AUTH" | "USER_LOGIN" | "USER_ACCT" | "USER_ERR" | "USER_CMD" | "USER_START"
        | "CRED_ACQ" | "CRED_DISP" | "CRED_REFR" | "USER_END" | "USER_CHAUTHTOK" => {
            user_record(kind, body, &action, ev)
        }
        "AVC" => avc(body, &action, ev),
        "ANOM_ABEND" | "ANOM_PROMISCUOUS" | "ANOM_LINK" => {
            ecs::mark(ev, DATASET, &action, Some(PROCESS));
            ecs::outcome(ev, FAILURE);
            process_fields(body, ev);
            ev.event.reason = ecs::kv(body, "sig").map(|s| format!("signal {s}"));
        }
        "PATH" => {
            ecs::mark(ev, DATASET, &action, None);
            if let Some(name) = value(body, "name") {
                ev.file = Some(File { path: Some(name) });
            }
        }
        "PROCTITLE" => {
            ecs::mark(ev, DATASET, &action, None);
            if let Some(t) = value(body, "proctitle") {
                let p = ev.process.get_or_insert_with(Process::default);
                p.command_line = Some(t.replace('\0', " ").trim_end().to_string());
            }
        }
        _ => ecs::mark(ev, DATASET, &action, None),
    }
    true
}

fn epoch_ms(secs: &str) -> Option<i64> {
    let (s, frac) = secs.split_once('.').unwrap_or((secs, "0"));
    let s: i64 = s.parse().ok()?;
    let mut ms: i64 = frac.get(..frac.len().min(3))?.parse().ok()?;
    for _ in frac.len()..3 {
        ms *= 10;
    }
    s.checked_mul(1000)?.checked_add(ms)
}

/// Audit writes a value quoted when it is printable, as hex otherwise (`a1=2D6C61`).
fn decode(v: &str) -> String {
    let hex = v.len() >= 2
        && v.len().is_multiple_of(2)
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    if !hex {
        return v.to_string();
    }
    let bytes: Vec<u8> = (0..v.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&v[i..i + 2], 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A value as written: `"quoted"` when printable, bare hex otherwise (`a1=2D6C61`); only
/// bare values are decoded, so `a0="CAFE"` stays `CAFE`.
fn value(body: &str, key: &str) -> Option<String> {
    let (quoted, v) = ecs::kv_quoted(body, key)?;
    if v == "(null)" || v == "?" {
        return None;
    }
    Some(if quoted { v.to_string() } else { decode(v) })
}

fn process_fields(body: &str, ev: &mut Event) {
    let p = ev.process.get_or_insert_with(Process::default);
    p.pid = ecs::kv(body, "pid").and_then(|v| v.parse().ok());
    if let Some(ppid) = ecs::kv(body, "ppid").and_then(|v| v.parse().ok()) {
        p.parent = Some(ParentProcess { pid: Some(ppid) });
    }
    if let Some(exe) = value(body, "exe") {
        p.executable = Some(exe);
    }
    if let Some(comm) = value(body, "comm") {
        p.name = Some(comm);
    }
    let uid = ecs::kv(body, "uid").filter(|u| *u != "4294967295");
    // Enriched records (`log_format=ENRICHED`) add the names in upper case.
    let name = ecs::kv(body, "UID");
    if uid.is_some() || name.is_some() {
        let u = ev.user.get_or_insert_with(User::default);
        u.id = uid.map(str::to_string);
        u.name = name.map(str::to_string);
    }
    // 4294967295 is "unset" (-1): no login session, or a daemon.
    let other = |id_key: &str, name_key: &str| {
        let id = ecs::kv(body, id_key).filter(|u| *u != "4294967295");
        let name = ecs::kv(body, name_key);
        (id.is_some() || name.is_some()).then(|| TargetUser {
            id: id.map(str::to_string),
            name: name.map(str::to_string),
        })
    };
    let effective = other("euid", "EUID").filter(|e| uid.is_none() || e.id.as_deref() != uid);
    let audit = other("auid", "AUID");
    if effective.is_some() || audit.is_some() {
        let u = ev.user.get_or_insert_with(User::default);
        u.effective = effective;
        u.audit = audit;
    }
}

fn syscall(body: &str, action: &str, ev: &mut Event) {
    ecs::mark(ev, DATASET, action, Some(PROCESS));
    match ecs::kv(body, "success") {
        Some("yes") => ecs::outcome(ev, SUCCESS),
        Some("no") => ecs::outcome(ev, FAILURE),
        _ => {}
    }
    // x86_64 execve / execveat, or the enriched name.
    let exec = matches!(ecs::kv(body, "syscall"), Some("59" | "322"))
        || matches!(ecs::kv(body, "SYSCALL"), Some("execve" | "execveat"));
    if exec {
        ev.event.kind_type = vec!["start".to_string()];
        ev.event.reason = Some("execve".to_string());
    }
    process_fields(body, ev);
}

fn execve(body: &str, action: &str, ev: &mut Event) {
    ecs::mark(ev, DATASET, action, Some(PROCESS));
    ev.event.kind_type = vec!["start".to_string()];
    let argc: usize = ecs::kv(body, "argc")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // A hostile record cannot make us allocate more than the line holds.
    let argc = argc.min(body.len() / 4 + 1);
    let mut args = Vec::with_capacity(argc);
    for i in 0..argc {
        let key = format!("a{i}");
        let Some(v) = value(body, &key) else {
            break;
        };
        args.push(v);
    }
    let p = ev.process.get_or_insert_with(Process::default);
    if let Some(first) = args.first() {
        p.name = Some(first.rsplit('/').next().unwrap_or(first).to_string());
    }
    if !args.is_empty() {
        p.command_line = Some(args.join(" "));
    }
    p.args = args;
}

/// User-space records: `pid=1 uid=0 auid=4294967295 ses=1 msg='op=PAM:authentication
/// acct="root" exe="/usr/sbin/sshd" hostname=1.2.3.4 addr=1.2.3.4 terminal=ssh res=failed'`.
fn user_record(kind: &str, body: &str, action: &str, ev: &mut Event) {
    let category = match kind {
        "USER_AUTH" | "USER_LOGIN" | "USER_ERR" | "USER_ACCT" | "USER_CHAUTHTOK" => {
            Some(AUTHENTICATION)
        }
        "USER_CMD" => Some(PROCESS),
        _ => None,
    };
    ecs::mark(ev, DATASET, action, category);
    match ecs::kv(body, "res").map(|r| r.trim_end_matches('\'')) {
        Some("success") => ecs::outcome(ev, SUCCESS),
        Some("failed") => ecs::outcome(ev, FAILURE),
        _ => {}
    }
    process_fields(body, ev);
    if let Some(acct) = value(body, "acct") {
        ecs::user(ev, &acct);
    }
    if let Some(addr) = ecs::kv(body, "addr").filter(|a| is_ip(a)) {
        ecs::source(ev, addr, None);
    }
    if let Some(cmd) = value(body, "cmd") {
        let p = ev.process.get_or_insert_with(Process::default);
        p.command_line = Some(cmd);
    }
}

/// SELinux `avc:  denied  { read } for pid=1 comm="x" name="y" ... tclass=file` or
/// AppArmor `apparmor="DENIED" operation="open" name="/etc/x" pid=1 comm="x"`.
fn avc(body: &str, action: &str, ev: &mut Event) {
    let denied = body.contains("denied") || body.contains("\"DENIED\"");
    let path = value(body, "path").or_else(|| value(body, "name"));
    ecs::mark(
        ev,
        DATASET,
        action,
        Some(if path.is_some() { FILE } else { PROCESS }),
    );
    ecs::outcome(ev, if denied { FAILURE } else { SUCCESS });
    process_fields(body, ev);
    if let Some(path) = path {
        ev.file = Some(File { path: Some(path) });
    }
    ev.event.reason = body
        .split_once('{')
        .and_then(|(_, r)| r.split_once('}'))
        .map(|(perm, _)| perm.trim().to_string())
        .or_else(|| ecs::kv(body, "operation").map(str::to_string));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execve_decodes_hex_arguments() {
        let ev = parse(
            r#"type=EXECVE msg=audit(1620000000.123:456): argc=3 a0="ls" a1=2D6C61 a2="/tmp/x y""#,
        )
        .expect("parsed");
        assert_eq!(ev.event.action.as_deref(), Some("execve"));
        assert_eq!(ev.timestamp.as_deref(), Some("2021-05-03T00:00:00.123Z"));
        let p = ev.process.expect("process");
        assert_eq!(p.args, vec!["ls", "-la", "/tmp/x y"]);
        assert_eq!(p.command_line.as_deref(), Some("ls -la /tmp/x y"));
        assert_eq!(p.name.as_deref(), Some("ls"));
    }

    #[test]
    fn syscall_execve_from_the_hub() {
        let ev = parse(r#"type=SYSCALL msg=audit(1684329817.587:2997): arch=c000003e syscall=59 success=no exit=-2 a0=7ffd9f580560 items=1 ppid=26843 pid=27032 auid=1000 uid=1000 gid=1000 tty=pts2 ses=106985 comm="perl" exe="/usr/bin/perl" key=(null)"#)
            .expect("parsed");
        assert_eq!(ev.event.category, vec!["process"]);
        assert_eq!(ev.event.outcome.as_deref(), Some("failure"));
        let p = ev.process.as_ref().expect("process");
        assert_eq!(
            (p.pid, p.parent.as_ref().and_then(|pp| pp.pid)),
            (Some(27032), Some(26843))
        );
        assert_eq!(p.executable.as_deref(), Some("/usr/bin/perl"));
        assert_eq!(ev.event.sequence, Some(2997));
        let u = ev.user.expect("user");
        assert_eq!(u.id.as_deref(), Some("1000"));
        assert_eq!(u.audit.and_then(|a| a.id).as_deref(), Some("1000"));
        assert_eq!(u.effective, None, "no euid in the record");
    }

    #[test]
    fn a_user_running_as_root_shows_effective_and_login_ids() {
        // A setuid binary run by uid 1000, who logged in as 1000 and is now euid 0.
        let ev = parse(r#"type=SYSCALL msg=audit(1700000000.123:4242): arch=c000003e syscall=59 success=yes exit=0 ppid=100 pid=101 auid=1000 uid=1000 gid=1000 euid=0 suid=0 fsuid=0 egid=0 tty=pts0 ses=3 comm="bash" exe="/usr/bin/bash" AUID="alice" UID="alice" EUID="root""#)
            .expect("parsed");
        let u = ev.user.expect("user");
        assert_eq!(
            (u.id.as_deref(), u.name.as_deref()),
            (Some("1000"), Some("alice"))
        );
        let eff = u.effective.expect("effective");
        assert_eq!(
            (eff.id.as_deref(), eff.name.as_deref()),
            (Some("0"), Some("root"))
        );
        let audit = u.audit.expect("audit");
        assert_eq!(
            (audit.id.as_deref(), audit.name.as_deref()),
            (Some("1000"), Some("alice"))
        );
        // The EXECVE record of the same syscall carries the same serial to join on.
        let exec = parse(r#"type=EXECVE msg=audit(1700000000.123:4242): argc=2 a0="id" a1="-u""#)
            .expect("parsed");
        assert_eq!(exec.event.sequence, Some(4242));
        assert_eq!(exec.timestamp, ev.timestamp);
    }

    #[test]
    fn an_unset_login_id_is_left_out() {
        let ev = parse(r#"type=SYSCALL msg=audit(1700000000.000:7): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2 auid=4294967295 uid=0 euid=0 comm="cron" exe="/usr/sbin/cron""#)
            .expect("parsed");
        let u = ev.user.expect("user");
        assert_eq!(u.audit, None, "4294967295 means no login session");
        assert_eq!(u.effective, None, "euid equals uid");
    }

    #[test]
    fn failed_user_auth_and_avc() {
        let ev = parse(r#"type=USER_AUTH msg=audit(1620000000.000:1): pid=5 uid=0 auid=4294967295 ses=4294967295 msg='op=PAM:authentication grantors=? acct="root" exe="/usr/sbin/sshd" hostname=203.0.113.5 addr=203.0.113.5 terminal=ssh res=failed'"#)
            .expect("parsed");
        assert_eq!(ev.event.category, vec!["authentication"]);
        assert_eq!(ev.event.outcome.as_deref(), Some("failure"));
        assert_eq!(
            (ev.user_name(), ev.source_ip()),
            (Some("root"), Some("203.0.113.5"))
        );
        let ev = parse(r#"type=AVC msg=audit(1620000000.000:2): avc:  denied  { read } for  pid=42 comm="httpd" name="shadow" dev="dm-0" ino=1 tclass=file permissive=0"#)
            .expect("parsed");
        assert_eq!(ev.file.and_then(|f| f.path).as_deref(), Some("shadow"));
        assert_eq!(ev.event.reason.as_deref(), Some("read"));
    }

    #[test]
    fn not_audit() {
        assert!(parse("type=foo").is_none());
        assert!(parse("types of things").is_none());
        assert!(parse("type=SYSCALL msg=audit(garbage").is_none());
        let ev = parse("type=EXECVE msg=audit(1.0:1): argc=99999999 a0=\"x\"").expect("parsed");
        assert_eq!(ev.process.map(|p| p.args), Some(vec!["x".to_string()]));
    }
}
