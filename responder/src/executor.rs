//! From a signed command to a report: every check, then the action, each step recorded.
//!
//! Order matters: the signature first (nothing unsigned is parsed as a command), then the
//! kill switch, the address and validity, the nonce, and the guard rails; only then is the
//! command journalled as accepted and run. Whatever fails a check is refused with its reason
//! and runs nothing.

use crate::firewall::{Firewall, FirewallError};
use crate::guard::{lookup_account, Guardrails};
use crate::journal::{digest, Journal, Outcome, Seen};
use crate::spans::{Family, Span};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use soc_core::command::{
    check_validity, Action, Refusal, Report, ReportState, SignedCommand, TrustedKeys,
};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use tokio::sync::Mutex;
use tracing::{info, warn};
use uuid::Uuid;

/// What the executor needs to know about its host and its gateway.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    pub agent_id: String,
    pub keys: TrustedKeys,
    pub guard: Guardrails,
    /// Log what would be done; change nothing.
    pub dry_run: bool,
    /// The agent's own kill switch: when false every command is refused.
    pub enabled: bool,
    /// The gateway's address: never blocked, and kept reachable by `isolate_host`.
    pub gateway: Vec<SocketAddr>,
    /// Where the journal and the block snapshot live.
    pub state_dir: PathBuf,
    /// The command that runs usermod.
    pub usermod: Vec<String>,
    pub passwd: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("state directory {}: {source}", path.display())]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Firewall(#[from] FirewallError),
}

/// A command that passed every check and is journalled as accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub id: Uuid,
    pub action: Action,
}

/// What the checks made of a command.
#[derive(Debug)]
pub enum Checked {
    /// Answered without running anything: refused, or its recorded outcome.
    Done(Vec<Report>),
    Run(Accepted),
}

pub struct Executor {
    cfg: ExecutorConfig,
    /// The gateway keys trusted now: `cfg.keys` at start, then each key set adopted.
    keys: std::sync::RwLock<TrustedKeys>,
    firewall: Firewall,
    journal: Mutex<Journal>,
}

/// A blocked span as remembered across a ruleset flush or a reboot.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered {
    v6: bool,
    start: u128,
    end: u128,
    until: DateTime<Utc>,
}

impl Executor {
    /// Opens the journal, puts the agent's table in place and restores remembered blocks
    /// that the kernel lost (after a reboot or `nft flush ruleset`).
    pub async fn open(
        cfg: ExecutorConfig,
        firewall: Firewall,
        now: DateTime<Utc>,
    ) -> Result<Executor, ExecutorError> {
        let state = |source| ExecutorError::State {
            path: cfg.state_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&cfg.state_dir).map_err(state)?;
        let journal = Journal::open(&cfg.state_dir.join("journal.jsonl"), now).map_err(state)?;
        let ex = Executor {
            keys: std::sync::RwLock::new(cfg.keys.clone()),
            cfg,
            firewall,
            journal: Mutex::new(journal),
        };
        if !ex.cfg.dry_run {
            ex.reassert(now).await?;
        }
        Ok(ex)
    }

    pub fn firewall(&self) -> &Firewall {
        &self.firewall
    }

    /// The gateway keys commands are checked against now.
    pub fn trusted_keys(&self) -> TrustedKeys {
        // Replaced whole, never left half-written: a poisoned lock still holds a valid set.
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the trusted keys (a key set the caller verified and stored).
    pub fn set_keys(&self, keys: TrustedKeys) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    pub fn config(&self) -> &ExecutorConfig {
        &self.cfg
    }

    fn snapshot_path(&self) -> PathBuf {
        self.cfg.state_dir.join("blocks.json")
    }

    /// Re-creates the table's chains and rules and re-adds remembered blocks that are still
    /// due. Safe to call at any time; returns whether the table had gone.
    pub async fn reassert(&self, now: DateTime<Utc>) -> Result<bool, ExecutorError> {
        let was_present = self.firewall.present().await?;
        self.firewall.ensure().await?;
        let remembered: Vec<Remembered> = std::fs::read(self.snapshot_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for fam in [Family::V4, Family::V6] {
            let spans: Vec<Span> = remembered
                .iter()
                .filter(|r| r.v6 == (fam == Family::V6) && r.until > now)
                .map(|r| Span {
                    start: r.start,
                    end: r.end,
                    expires: (r.until - now).num_seconds().clamp(1, u32::MAX as i64) as u32,
                })
                .collect();
            if !spans.is_empty() {
                self.firewall.restore(fam, &spans).await?;
            }
        }
        if !was_present && remembered.iter().any(|r| r.until > now) {
            warn!(
                table = self.firewall.table(),
                "firewall table was missing; restored with its blocks"
            );
        } else if !was_present {
            info!(table = self.firewall.table(), "firewall table created");
        }
        Ok(!was_present)
    }

    async fn remember(&self, now: DateTime<Utc>) -> Result<(), ExecutorError> {
        let spans = self.firewall.blocked().await?;
        let list: Vec<Remembered> = spans
            .into_iter()
            .map(|(f, s)| Remembered {
                v6: f == Family::V6,
                start: s.start,
                end: s.end,
                until: now + chrono::Duration::seconds(i64::from(s.expires)),
            })
            .collect();
        let path = self.snapshot_path();
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            std::fs::write(&tmp, serde_json::to_vec(&list)?)?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| ExecutorError::State {
            path: path.clone(),
            source,
        })
    }

    fn report(
        &self,
        command: Uuid,
        state: ReportState,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Report {
        Report {
            command,
            state,
            reason,
            dry_run: self.cfg.dry_run,
            at: now,
        }
    }

    fn refuse(&self, command: Uuid, r: Refusal, now: DateTime<Utc>) -> Checked {
        warn!(command = %command, reason = r.code(), detail = %r, "command refused");
        metrics::counter!("soc_agent_commands_total", "outcome" => "refused", "reason" => r.code())
            .increment(1);
        Checked::Done(vec![self.report(
            command,
            ReportState::Refused,
            Some(format!("{}: {r}", r.code())),
            now,
        )])
    }

    /// Every check, in order; a command that passes is journalled as accepted and returned
    /// to run. A refusal, or the recorded outcome of a command delivered again, is answered
    /// at once.
    pub async fn check(&self, signed: &SignedCommand, now: DateTime<Utc>) -> Checked {
        self.check_many(std::slice::from_ref(signed), now)
            .await
            .pop()
            .unwrap_or(Checked::Done(Vec::new()))
    }

    /// [`Executor::check`] for commands that arrived together, one answer each, in order:
    /// the accepted ones go on disk with one sync before any of them is returned to run.
    pub async fn check_many(&self, signed: &[SignedCommand], now: DateTime<Utc>) -> Vec<Checked> {
        let keys = self.trusted_keys();
        let gateway: Vec<IpAddr> = self.cfg.gateway.iter().map(|s| s.ip()).collect();
        let passwd = std::fs::read_to_string(&self.cfg.passwd).unwrap_or_default();
        let mut journal = self.journal.lock().await;
        let mut out = Vec::with_capacity(signed.len());
        let mut recorded = Vec::new();
        for s in signed {
            let checked = self.check_one(&keys, &mut journal, &gateway, &passwd, s, now);
            if let Checked::Run(a) = &checked {
                recorded.push(a.id);
            }
            out.push(checked);
        }
        if !recorded.is_empty() {
            if let Err(e) = journal.sync() {
                // Without the record a crash could run them twice: run none of them.
                warn!(error = %e, commands = recorded.len(), "cannot sync the journal");
                for c in &mut out {
                    if let Checked::Run(a) = c {
                        *c = Checked::Done(vec![self.report(
                            a.id,
                            ReportState::Failed,
                            Some(format!("cannot record the command: {e}")),
                            now,
                        )]);
                    }
                }
            }
        }
        out
    }

    fn check_one(
        &self,
        keys: &TrustedKeys,
        journal: &mut Journal,
        gateway: &[IpAddr],
        passwd: &str,
        signed: &SignedCommand,
        now: DateTime<Utc>,
    ) -> Checked {
        let command = match keys.verify(signed) {
            Ok(c) => c,
            Err(r) => return self.refuse(signed.claimed_id(), r, now),
        };
        if !self.cfg.enabled {
            return self.refuse(command.id, Refusal::Disabled, now);
        }
        if let Err(r) = check_validity(
            &command,
            &self.cfg.agent_id,
            now,
            self.cfg.guard.max_validity_secs,
        ) {
            return self.refuse(command.id, r, now);
        }
        let d = digest(&signed.payload);
        let rerun = match journal.seen(&command.nonce, &d) {
            Seen::Replayed => return self.refuse(command.id, Refusal::Replayed, now),
            Seen::Again(Some(o)) => {
                info!(command = %command.id, "command delivered again; answering its outcome");
                return Checked::Done(vec![self.report(command.id, o.state, o.reason, now)]);
            }
            Seen::Again(None) => true,
            Seen::New => false,
        };
        if let Err(r) = self
            .cfg
            .guard
            .check(&command.action, gateway, |u| lookup_account(passwd, u))
        {
            return self.refuse(command.id, r, now);
        }
        if !rerun {
            if let Err(e) = journal.accept(&command.nonce, command.id, &d, command.expires_at) {
                // Without the record a crash could run it twice: do not run it.
                return Checked::Done(vec![self.report(
                    command.id,
                    ReportState::Failed,
                    Some(format!("cannot record the command: {e}")),
                    now,
                )]);
            }
        }
        Checked::Run(Accepted {
            id: command.id,
            action: command.action,
        })
    }

    /// The `accepted` report of a command about to run.
    pub fn accepted(&self, a: &Accepted, now: DateTime<Utc>) -> Report {
        self.report(a.id, ReportState::Accepted, None, now)
    }

    /// Runs accepted commands: every block among them in one nftables transaction, the rest
    /// one by one. Returns one report per command, in order.
    pub async fn run(&self, batch: Vec<Accepted>, now: DateTime<Utc>) -> Vec<Report> {
        let mut outcomes: Vec<Option<Result<(), String>>> = vec![None; batch.len()];
        let blocks: Vec<(usize, ipnet::IpNet, u32)> = batch
            .iter()
            .enumerate()
            .flat_map(|(i, a)| match &a.action {
                Action::BlockIp { targets, ttl_secs } => targets
                    .iter()
                    .map(|t| (i, t.net(), *ttl_secs))
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect();
        if !blocks.is_empty() {
            let r = if self.cfg.dry_run {
                info!(addresses = blocks.len(), "dry run: would block");
                Ok(())
            } else {
                let nets: Vec<(ipnet::IpNet, u32)> =
                    blocks.iter().map(|(_, n, t)| (*n, *t)).collect();
                match self.firewall.block(&nets).await {
                    Ok(()) => self.remember(now).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            };
            for (i, _, _) in &blocks {
                outcomes[*i] = Some(r.clone());
            }
        }
        for (i, a) in batch.iter().enumerate() {
            if outcomes[i].is_none() {
                outcomes[i] = Some(self.execute(&a.action, now).await);
            }
        }
        let mut journal = self.journal.lock().await;
        let reports = batch
            .iter()
            .zip(outcomes)
            .map(|(a, r)| {
                let outcome = match r.unwrap_or(Ok(())) {
                    Ok(()) => Outcome {
                        state: ReportState::Applied,
                        reason: None,
                    },
                    Err(e) => Outcome {
                        state: ReportState::Failed,
                        reason: Some(e),
                    },
                };
                info!(
                    command = %a.id,
                    action = a.action.kind(),
                    state = ?outcome.state,
                    dry_run = self.cfg.dry_run,
                    reason = outcome.reason.as_deref().unwrap_or(""),
                    "command done"
                );
                let label = if outcome.state == ReportState::Applied {
                    "applied"
                } else {
                    "failed"
                };
                metrics::counter!("soc_agent_commands_total", "outcome" => label, "reason" => "")
                    .increment(1);
                if let Err(e) = journal.finish(a.id, &outcome) {
                    warn!(command = %a.id, error = %e, "cannot record a command's outcome");
                }
                self.report(a.id, outcome.state, outcome.reason, now)
            })
            .collect();
        // Unsynced outcomes lost in a crash only make their commands run again on
        // redelivery, and every action is idempotent.
        if let Err(e) = journal.sync() {
            warn!(error = %e, "cannot sync the commands' outcomes");
        }
        reports
    }

    /// Checks a command and, when it passes, runs it. Returns the reports to send, in
    /// order: `refused`; or `accepted` then `applied` or `failed`; or, for a command
    /// delivered again, its recorded outcome.
    pub async fn handle(&self, signed: &SignedCommand, now: DateTime<Utc>) -> Vec<Report> {
        match self.check(signed, now).await {
            Checked::Done(r) => r,
            Checked::Run(a) => {
                let mut out = vec![self.accepted(&a, now)];
                out.extend(self.run(vec![a], now).await);
                out
            }
        }
    }

    /// The gateway stored the report on this command.
    pub async fn acknowledged(&self, command: Uuid) {
        if let Err(e) = self.journal.lock().await.acknowledge(command) {
            warn!(command = %command, error = %e, "cannot record an acknowledgement");
        }
    }

    /// Outcomes the gateway has not acknowledged yet (sent again on every connect).
    pub async fn unacknowledged(&self, now: DateTime<Utc>) -> Vec<Report> {
        self.journal
            .lock()
            .await
            .unacknowledged()
            .into_iter()
            .map(|(id, o)| self.report(id, o.state, o.reason, now))
            .collect()
    }

    async fn execute(&self, action: &Action, now: DateTime<Utc>) -> Result<(), String> {
        if self.cfg.dry_run {
            info!(action = ?action, "dry run: would execute");
            return Ok(());
        }
        match action {
            Action::BlockIp { targets, ttl_secs } => {
                let nets: Vec<_> = targets.iter().map(|t| (t.net(), *ttl_secs)).collect();
                self.firewall
                    .block(&nets)
                    .await
                    .map_err(|e| e.to_string())?;
                self.remember(now).await.map_err(|e| e.to_string())
            }
            Action::UnblockIp { targets } => {
                let nets: Vec<_> = targets.iter().map(|t| t.net()).collect();
                self.firewall
                    .unblock(&nets)
                    .await
                    .map_err(|e| e.to_string())?;
                self.remember(now).await.map_err(|e| e.to_string())
            }
            Action::KillProcess {
                pid,
                started_not_after,
            } => crate::host::kill_process(*pid, *started_not_after, &self.cfg.guard),
            Action::LockUser { user } => {
                crate::host::usermod(&self.cfg.usermod, &["--lock", "--expiredate", "1", user])
                    .await
            }
            Action::UnlockUser { user } => {
                crate::host::usermod(&self.cfg.usermod, &["--unlock", "--expiredate", "", user])
                    .await
            }
            Action::IsolateHost => self
                .firewall
                .isolate(&self.cfg.gateway)
                .await
                .map_err(|e| e.to_string()),
            Action::ReleaseHost => self.firewall.release().await.map_err(|e| e.to_string()),
        }
    }
}
