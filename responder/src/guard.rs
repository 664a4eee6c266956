//! The agent's own limits: what no command may touch, whoever signed it. They live in the
//! agent's configuration on the host, so a compromised gateway cannot lift them.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use soc_core::command::{Action, Refusal};
use std::net::IpAddr;

/// Never blocked, whatever the configuration says.
const ALWAYS_PROTECTED: &[&str] = &[
    "127.0.0.0/8",
    "::1/128",
    "0.0.0.0/8",
    "169.254.0.0/16",
    "fe80::/10",
    "224.0.0.0/4",
    "ff00::/8",
    "255.255.255.255/32",
    "::/128",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Guardrails {
    /// Networks no block may overlap: management networks, the gateway, jump hosts.
    /// Loopback, link-local and multicast are always protected.
    pub protected_networks: Vec<IpNet>,
    /// Users never locked. `root` (and every account with uid 0) always is.
    pub protected_users: Vec<String>,
    /// Accounts below this uid (system accounts) are never locked.
    pub min_uid: u32,
    /// Process names (`comm`) never killed. PID 1, the agent and its parent never are.
    pub protected_processes: Vec<String>,
    /// The widest IPv4 range one block may cover (24 means a /24 at most).
    pub max_prefix_v4: u8,
    pub max_prefix_v6: u8,
    /// The longest a block may last.
    pub max_ttl_secs: u32,
    /// The most addresses and ranges in one command.
    pub max_targets: usize,
    /// The longest a command may be valid; also how long its nonce is remembered.
    pub max_validity_secs: i64,
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails {
            protected_networks: Vec::new(),
            protected_users: Vec::new(),
            min_uid: 1000,
            protected_processes: vec!["sshd".into(), "systemd".into(), "init".into()],
            max_prefix_v4: 24,
            max_prefix_v6: 48,
            max_ttl_secs: 7 * 24 * 3600,
            max_targets: 10_000,
            max_validity_secs: 900,
        }
    }
}

/// A user as the host knows it.
pub struct Account {
    pub uid: u32,
}

impl Guardrails {
    fn protected_nets(&self, extra: &[IpAddr]) -> Vec<IpNet> {
        ALWAYS_PROTECTED
            .iter()
            .filter_map(|s| s.parse().ok())
            .chain(self.protected_networks.iter().copied())
            .chain(extra.iter().map(|a| IpNet::from(*a)))
            .collect()
    }

    /// Refuses an action that breaks a limit. `gateway` are the gateway's addresses (never
    /// blocked); `account` looks a user up on this host.
    pub fn check(
        &self,
        action: &Action,
        gateway: &[IpAddr],
        account: impl Fn(&str) -> Option<Account>,
    ) -> Result<(), Refusal> {
        match action {
            Action::BlockIp { targets, ttl_secs } => {
                if *ttl_secs == 0 || *ttl_secs > self.max_ttl_secs {
                    return Err(Refusal::Invalid(format!(
                        "ttl_secs must be 1 to {}",
                        self.max_ttl_secs
                    )));
                }
                self.check_targets(targets)?;
                let protected = self.protected_nets(gateway);
                for t in targets {
                    let net = t.net();
                    if let Some(p) = protected
                        .iter()
                        .find(|p| p.contains(&net) || net.contains(*p))
                    {
                        return Err(Refusal::Protected(format!("{t} overlaps {p}")));
                    }
                    let max = match net {
                        IpNet::V4(_) => self.max_prefix_v4,
                        IpNet::V6(_) => self.max_prefix_v6,
                    };
                    if net.prefix_len() < max {
                        return Err(Refusal::PrefixTooWide {
                            target: t.to_string(),
                            max,
                        });
                    }
                }
                Ok(())
            }
            // Unblocking never hurts a protected address; only the size is bounded.
            Action::UnblockIp { targets } => self.check_targets(targets),
            Action::LockUser { user } => {
                if !soc_core::command::valid_user_name(user) {
                    return Err(Refusal::Invalid(format!("`{user}` is not a user name")));
                }
                if user == "root" || self.protected_users.iter().any(|u| u == user) {
                    return Err(Refusal::Protected(format!("user {user}")));
                }
                match account(user) {
                    None => Err(Refusal::Invalid(format!("no user `{user}` on this host"))),
                    Some(a) if a.uid == 0 || a.uid < self.min_uid => Err(Refusal::Protected(
                        format!("user {user} (uid {} is below {})", a.uid, self.min_uid),
                    )),
                    Some(_) => Ok(()),
                }
            }
            Action::UnlockUser { user } => {
                if soc_core::command::valid_user_name(user) {
                    Ok(())
                } else {
                    Err(Refusal::Invalid(format!("`{user}` is not a user name")))
                }
            }
            Action::KillProcess { pid, .. } => {
                let me = std::process::id();
                let parent = std::os::unix::process::parent_id();
                if *pid <= 1 || *pid == me || *pid == parent {
                    return Err(Refusal::Protected(format!("pid {pid}")));
                }
                Ok(())
            }
            Action::IsolateHost | Action::ReleaseHost => Ok(()),
        }
    }

    fn check_targets(&self, targets: &[soc_core::command::IpTarget]) -> Result<(), Refusal> {
        if targets.is_empty() {
            return Err(Refusal::Invalid("no targets".into()));
        }
        if targets.len() > self.max_targets {
            return Err(Refusal::Invalid(format!(
                "{} targets, at most {}",
                targets.len(),
                self.max_targets
            )));
        }
        Ok(())
    }

    pub fn process_protected(&self, comm: &str) -> bool {
        self.protected_processes.iter().any(|p| p == comm)
    }
}

/// Looks a user up in a passwd file.
pub fn lookup_account(passwd: &str, user: &str) -> Option<Account> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let uid = f.nth(1)?.parse().ok()?;
        (name == user).then_some(Account { uid })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(t: &str) -> Action {
        Action::BlockIp {
            targets: vec![t.parse().unwrap()],
            ttl_secs: 60,
        }
    }

    fn none(_: &str) -> Option<Account> {
        None
    }

    #[test]
    fn protected_networks_and_wide_ranges_are_refused() {
        let g = Guardrails {
            protected_networks: vec!["192.0.2.0/24".parse().unwrap()],
            ..Default::default()
        };
        let gw: Vec<IpAddr> = vec!["198.51.100.10".parse().unwrap()];
        let check = |t: &str| g.check(&block(t), &gw, none).map_err(|r| r.code());
        assert_eq!(check("203.0.113.7"), Ok(()));
        assert_eq!(check("203.0.113.0/24"), Ok(()));
        assert_eq!(check("127.0.0.1"), Err("protected"));
        assert_eq!(check("192.0.2.77"), Err("protected"));
        // A range holding a protected network overlaps it too.
        assert_eq!(check("192.0.0.0/16"), Err("protected"));
        assert_eq!(check("198.51.100.10"), Err("protected"));
        assert_eq!(check("203.0.0.0/16"), Err("prefix_too_wide"));
        assert_eq!(check("2001:db8::/32"), Err("prefix_too_wide"));
        assert_eq!(check("::1"), Err("protected"));
        let long = Action::BlockIp {
            targets: vec!["203.0.113.7".parse().unwrap()],
            ttl_secs: 365 * 24 * 3600,
        };
        assert_eq!(
            g.check(&long, &gw, none).map_err(|r| r.code()),
            Err("invalid")
        );
    }

    #[test]
    fn root_system_and_listed_users_are_never_locked() {
        let passwd = "root:x:0:0::/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\nwww-data:x:33:33::/:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n";
        let g = Guardrails {
            protected_users: vec!["bob".into()],
            ..Default::default()
        };
        let lock = |u: &str| {
            g.check(&Action::LockUser { user: u.into() }, &[], |name| {
                lookup_account(passwd, name)
            })
            .map_err(|r| r.code())
        };
        assert_eq!(lock("alice"), Ok(()));
        assert_eq!(lock("root"), Err("protected"));
        assert_eq!(lock("toor"), Err("protected"));
        assert_eq!(lock("www-data"), Err("protected"));
        assert_eq!(lock("bob"), Err("protected"));
        assert_eq!(lock("mallory"), Err("invalid"));
        assert_eq!(lock("-alice"), Err("invalid"));
        assert_eq!(lock("a;b"), Err("invalid"));
    }

    #[test]
    fn pid_1_and_the_agent_are_never_killed() {
        let g = Guardrails::default();
        let kill = |pid| {
            g.check(
                &Action::KillProcess {
                    pid,
                    started_not_after: chrono::Utc::now(),
                },
                &[],
                none,
            )
            .map_err(|r| r.code())
        };
        assert_eq!(kill(1), Err("protected"));
        assert_eq!(kill(0), Err("protected"));
        assert_eq!(kill(std::process::id()), Err("protected"));
        assert_eq!(kill(4_000_000), Ok(()));
    }
}
