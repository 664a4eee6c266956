//! Kernel messages about processes: `[123.456] su[4545]: segfault at 7f00deadb000 ip
//! 00007f00deab0d7d sp 00007ffd00000000 error 6 in ld-linux-x86-64.so.2[7f00dea9e000+25000]`.
//! Dataset `kernel`; the crashed program and pid become `process.*`, the object the fault
//! happened in is the reason (`segfault in ld-linux-x86-64.so.2`).

use crate::ecs::{self, FAILURE, PROCESS};
use soc_core::event::{Event, Process};

const DATASET: &str = "kernel";

pub fn apply(msg: &str, ev: &mut Event) -> bool {
    // The uptime stamp is optional (`dmesg -t`, some syslog daemons strip it).
    let msg = msg.trim_start();
    let msg = match msg.strip_prefix('[') {
        Some(r) => r.split_once("] ").map_or(msg, |(_, r)| r),
        None => msg,
    };
    let Some((head, rest)) = msg.split_once(": segfault at ") else {
        return false;
    };
    // `name[pid]`; a name may itself hold brackets or spaces, so split on the last `[`.
    let Some((name, pid)) = head.strip_suffix(']').and_then(|h| h.rsplit_once('[')) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if name.is_empty() {
        return false;
    }
    ecs::mark(ev, DATASET, "segfault", Some(PROCESS));
    ev.event.kind_type = vec!["end".to_string()];
    ecs::outcome(ev, FAILURE);
    ev.process = Some(Process {
        name: Some(name.to_string()),
        pid: Some(pid),
        ..Process::default()
    });
    // `... error 6 in ld-linux-x86-64.so.2[7f00dea9e000+25000]`; `in` may be missing when the
    // fault was outside any mapping.
    let object = rest
        .split_once(" in ")
        .map(|(_, o)| o.split(['[', ' ']).next().unwrap_or(o))
        .filter(|o| !o.is_empty());
    ev.event.reason = Some(match object {
        Some(o) => format!("segfault in {o}"),
        None => "segfault".to_string(),
    });
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
    fn names_the_program_pid_and_faulting_object() {
        let ev = run("[123.456] su[4545]: segfault at 7f00deadb000 ip 00007f00deab0d7d sp 00007ffd00000000 error 6 in ld-linux-x86-64.so.2[7f00dea9e000+25000] likely on CPU 1 (core 1, socket 0)")
            .expect("parsed");
        assert_eq!(ev.event.dataset.as_deref(), Some("kernel"));
        assert_eq!(ev.event.action.as_deref(), Some("segfault"));
        let p = ev.process.expect("process");
        assert_eq!((p.name.as_deref(), p.pid), (Some("su"), Some(4545)));
        assert_eq!(
            ev.event.reason.as_deref(),
            Some("segfault in ld-linux-x86-64.so.2")
        );
    }

    #[test]
    fn odd_names_and_missing_parts() {
        let ev = run("Web Content[999]: segfault at 0 ip 0 sp 0 error 4").expect("parsed");
        assert_eq!(
            ev.process.and_then(|p| p.name).as_deref(),
            Some("Web Content")
        );
        assert_eq!(ev.event.reason.as_deref(), Some("segfault"));
        assert!(run("[1.0] x[abc]: segfault at 0 ip 0").is_none());
        assert!(run("[1.0] [12]: segfault at 0 ip 0").is_none());
        assert!(run("[1.0] eth0: link up").is_none());
    }
}
