//! Actions on the host itself: processes and accounts. No shell: programs with argument
//! vectors, and the kernel's pidfd so a checked process is the one signalled.

use crate::guard::Guardrails;
use chrono::{DateTime, Utc};
use std::process::Stdio;

/// Kills `pid` if it started no later than `started_not_after`. The process is pinned with
/// a pidfd first, then checked, then signalled through the pidfd: a PID reused between the
/// check and the kill cannot be hit.
pub fn kill_process(
    pid: u32,
    started_not_after: DateTime<Utc>,
    guard: &Guardrails,
) -> Result<(), String> {
    let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    let rpid = rustix::process::Pid::from_raw(raw).ok_or_else(|| format!("pid {pid}"))?;
    let fd = rustix::process::pidfd_open(rpid, rustix::process::PidfdFlags::empty())
        .map_err(|e| format!("no process {pid}: {e}"))?;
    let proc = procfs::process::Process::new(raw).map_err(|e| format!("pid {pid}: {e}"))?;
    let stat = proc.stat().map_err(|e| format!("pid {pid}: {e}"))?;
    if guard.process_protected(&stat.comm) {
        return Err(format!("protected: process {} ({pid})", stat.comm));
    }
    // Kernel threads have no user space to kill and must not be touched.
    if stat.ppid == 2 || pid == 2 {
        return Err(format!("protected: kernel thread {pid}"));
    }
    let boot = procfs::boot_time_secs().map_err(|e| format!("boot time: {e}"))?;
    let ticks = procfs::ticks_per_second().max(1);
    let started_ms = boot as i64 * 1000 + (stat.starttime * 1000 / ticks) as i64;
    // The start time has tick resolution; allow one second for rounding.
    if started_ms > started_not_after.timestamp_millis() + 1000 {
        return Err(format!(
            "pid {pid} is a newer process ({}), not the one seen",
            stat.comm
        ));
    }
    rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL)
        .map_err(|e| format!("kill {pid}: {e}"))
}

/// Runs usermod with these arguments.
pub async fn usermod(program: &[String], args: &[&str]) -> Result<(), String> {
    let (cmd, pre) = match program.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => ("usermod", &[][..]),
    };
    let out = tokio::process::Command::new(cmd)
        .args(pre)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_started_after_it_was_seen_is_not_killed() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let g = Guardrails::default();
        let before = Utc::now() - chrono::Duration::seconds(60);
        let e = kill_process(pid, before, &g).unwrap_err();
        assert!(e.contains("newer process"), "{e}");
        assert!(child.try_wait().unwrap().is_none(), "still running");

        kill_process(pid, Utc::now(), &g).unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));

        let e = kill_process(pid, Utc::now(), &g).unwrap_err();
        assert!(e.contains("no process"), "{e}");
    }
}
