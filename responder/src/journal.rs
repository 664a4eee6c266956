//! What the agent has accepted and how each command ended, on disk before anything runs.
//!
//! A nonce is recorded (and synced, once per batch) before its command executes, so a command is never run
//! twice, also across a crash: the same signed command delivered again is answered with its
//! recorded outcome; a different command reusing the nonce is a replay. When the agent died
//! between recording and finishing, the command runs again on redelivery: every action is
//! idempotent (adding a blocked address twice, locking a locked user), so it takes effect
//! once. Entries are dropped once their command has expired, since an expired command is
//! refused anyway.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use soc_core::command::ReportState;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Entry {
    Accepted {
        nonce: String,
        command: Uuid,
        digest: String,
        expires_at: DateTime<Utc>,
    },
    Done {
        command: Uuid,
        state: ReportState,
        #[serde(default)]
        reason: Option<String>,
    },
    /// The gateway stored the outcome.
    Acked { command: Uuid },
}

/// How a recorded command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub state: ReportState,
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
struct Accepted {
    command: Uuid,
    digest: String,
    expires_at: DateTime<Utc>,
    outcome: Option<Outcome>,
    acked: bool,
}

/// What the journal knows of a nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    New,
    /// The same command again; `None` when it never finished.
    Again(Option<Outcome>),
    /// Another command with a used nonce.
    Replayed,
}

pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    by_nonce: HashMap<String, Accepted>,
    nonce_of: HashMap<Uuid, String>,
}

pub fn digest(payload: &str) -> String {
    Sha256::digest(payload.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Journal {
    /// Opens (or creates) the journal, dropping what expired before `now`. A torn last line
    /// (a crash mid-write) is ignored: its command had not started.
    pub fn open(path: &Path, now: DateTime<Utc>) -> std::io::Result<Journal> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut by_nonce: HashMap<String, Accepted> = HashMap::new();
        let mut nonce_of = HashMap::new();
        for line in text.lines() {
            match serde_json::from_str::<Entry>(line) {
                Ok(Entry::Accepted {
                    nonce,
                    command,
                    digest,
                    expires_at,
                }) => {
                    nonce_of.insert(command, nonce.clone());
                    by_nonce.insert(
                        nonce,
                        Accepted {
                            command,
                            digest,
                            expires_at,
                            outcome: None,
                            acked: false,
                        },
                    );
                }
                Ok(Entry::Acked { command }) => {
                    if let Some(a) = nonce_of.get(&command).and_then(|n| by_nonce.get_mut(n)) {
                        a.acked = true;
                    }
                }
                Ok(Entry::Done {
                    command,
                    state,
                    reason,
                }) => {
                    if let Some(a) = nonce_of.get(&command).and_then(|n| by_nonce.get_mut(n)) {
                        a.outcome = Some(Outcome { state, reason });
                    }
                }
                Err(_) => continue,
            }
        }
        by_nonce.retain(|_, a| a.expires_at > now);
        nonce_of.retain(|_, n| by_nonce.contains_key(n));
        // Rewrite without the expired entries, atomically.
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            for (nonce, a) in &by_nonce {
                let mut lines = vec![Entry::Accepted {
                    nonce: nonce.clone(),
                    command: a.command,
                    digest: a.digest.clone(),
                    expires_at: a.expires_at,
                }];
                if let Some(o) = &a.outcome {
                    lines.push(Entry::Done {
                        command: a.command,
                        state: o.state,
                        reason: o.reason.clone(),
                    });
                }
                if a.acked {
                    lines.push(Entry::Acked { command: a.command });
                }
                for e in lines {
                    writeln!(f, "{}", serde_json::to_string(&e)?)?;
                }
            }
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            by_nonce,
            nonce_of,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn seen(&self, nonce: &str, digest: &str) -> Seen {
        match self.by_nonce.get(nonce) {
            None => Seen::New,
            Some(a) if a.digest == digest => Seen::Again(a.outcome.clone()),
            Some(_) => Seen::Replayed,
        }
    }

    /// Writes an entry; it is on disk after the next [`Journal::sync`].
    fn append(&mut self, e: &Entry) -> std::io::Result<()> {
        let line = serde_json::to_string(e)?;
        self.file.write_all(format!("{line}\n").as_bytes())
    }

    /// Puts every entry written so far on disk. Callers sync once per batch of commands,
    /// and before any of them runs: one sync each made the agent's disk the bottleneck of
    /// an attack storm.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Records a command as accepted; on disk after the next [`Journal::sync`], which must
    /// come before the command runs.
    pub fn accept(
        &mut self,
        nonce: &str,
        command: Uuid,
        digest: &str,
        expires_at: DateTime<Utc>,
    ) -> std::io::Result<()> {
        if self.by_nonce.contains_key(nonce) {
            return Ok(());
        }
        self.append(&Entry::Accepted {
            nonce: nonce.to_string(),
            command,
            digest: digest.to_string(),
            expires_at,
        })?;
        self.nonce_of.insert(command, nonce.to_string());
        self.by_nonce.insert(
            nonce.to_string(),
            Accepted {
                command,
                digest: digest.to_string(),
                expires_at,
                outcome: None,
                acked: false,
            },
        );
        Ok(())
    }

    /// Records that the gateway stored a command's outcome. Never synced on its own: a lost
    /// acknowledgement only makes the agent send the outcome again, which the gateway takes
    /// as a repeat.
    pub fn acknowledge(&mut self, command: Uuid) -> std::io::Result<()> {
        let Some(nonce) = self.nonce_of.get(&command).cloned() else {
            return Ok(());
        };
        if self.by_nonce.get(&nonce).is_none_or(|a| a.acked) {
            return Ok(());
        }
        self.append(&Entry::Acked { command })?;
        if let Some(a) = self.by_nonce.get_mut(&nonce) {
            a.acked = true;
        }
        Ok(())
    }

    /// Finished commands whose outcome the gateway has not acknowledged.
    pub fn unacknowledged(&self) -> Vec<(Uuid, Outcome)> {
        let mut out: Vec<(Uuid, Outcome)> = self
            .by_nonce
            .values()
            .filter(|a| !a.acked)
            .filter_map(|a| Some((a.command, a.outcome.clone()?)))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Records how an accepted command ended (on disk after the next sync).
    pub fn finish(&mut self, command: Uuid, outcome: &Outcome) -> std::io::Result<()> {
        self.append(&Entry::Done {
            command,
            state: outcome.state,
            reason: outcome.reason.clone(),
        })?;
        if let Some(a) = self
            .nonce_of
            .get(&command)
            .and_then(|n| self.by_nonce.get_mut(n))
        {
            a.outcome = Some(outcome.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_survive_a_restart_and_expire_with_their_commands() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let now = Utc::now();
        let later = now + chrono::Duration::seconds(60);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        {
            let mut j = Journal::open(&path, now).unwrap();
            j.accept("nonce-a", a, "d1", later).unwrap();
            j.finish(
                a,
                &Outcome {
                    state: ReportState::Applied,
                    reason: None,
                },
            )
            .unwrap();
            j.accept("nonce-b", b, "d2", later).unwrap();
            // A crash now: b accepted, never finished; and a torn line.
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap()
                .write_all(b"{\"t\":\"done\",\"comm")
                .unwrap();
        }
        let j = Journal::open(&path, now).unwrap();
        assert_eq!(
            j.seen("nonce-a", "d1"),
            Seen::Again(Some(Outcome {
                state: ReportState::Applied,
                reason: None
            }))
        );
        assert_eq!(j.seen("nonce-a", "other"), Seen::Replayed);
        assert_eq!(j.seen("nonce-b", "d2"), Seen::Again(None));
        assert_eq!(j.seen("nonce-c", "d3"), Seen::New);
        // a finished and was never acknowledged; b never finished.
        assert_eq!(j.unacknowledged().len(), 1);
        let mut j = j;
        j.acknowledge(a).unwrap();
        assert!(j.unacknowledged().is_empty());
        drop(j);
        let j = Journal::open(&path, now).unwrap();
        assert!(j.unacknowledged().is_empty(), "acks survive a restart");
        drop(j);
        let j = Journal::open(&path, later + chrono::Duration::seconds(1)).unwrap();
        assert_eq!(j.seen("nonce-a", "d1"), Seen::New);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }
}
