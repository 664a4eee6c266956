//! The agent's configuration: defaults, then `/etc/soc-agent/agent.toml` (or `--config`),
//! then `SOC_AGENT_*` environment variables (`SOC_AGENT_GUARD__MAX_PREFIX_V4=16`).

use crate::guard::Guardrails;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = "/etc/soc-agent/agent.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSettings {
    /// The gateway's base URL, e.g. `https://soc.example.com:8080` (`http://` only on a
    /// trusted network: the agent's credential travels on it).
    pub gateway: String,
    /// A CA certificate (PEM) to trust for the gateway, besides the public roots.
    pub ca_cert: Option<PathBuf>,
    /// Where the identity, the journal and the block snapshot live (root-only).
    pub state_dir: PathBuf,
    /// Log what would be done; change nothing on the host.
    pub dry_run: bool,
    /// The host's own kill switch: false refuses every command.
    pub enabled: bool,
    /// How nft is run; a wrapper may go first.
    pub nft: Vec<String>,
    /// The nftables table the agent owns (and the `<table>_isolate` table).
    pub table: String,
    /// How usermod is run.
    pub usermod: Vec<String>,
    pub passwd: PathBuf,
    /// Seconds between heartbeats.
    pub heartbeat_secs: u64,
    /// Seconds between checks that the agent's table is still in the kernel.
    pub reassert_secs: u64,
    /// Longest wait between reconnection attempts, in seconds.
    pub max_backoff_secs: u64,
    /// What no command may touch on this host.
    pub guard: Guardrails,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            gateway: "http://127.0.0.1:8080".into(),
            ca_cert: None,
            state_dir: PathBuf::from("/var/lib/soc-agent"),
            dry_run: false,
            enabled: true,
            nft: vec!["nft".into()],
            table: "soc_agent".into(),
            usermod: vec!["usermod".into()],
            passwd: PathBuf::from("/etc/passwd"),
            heartbeat_secs: 10,
            reassert_secs: 30,
            max_backoff_secs: 60,
            guard: Guardrails::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl AgentSettings {
    /// Layers defaults, the file (when it exists, or always when named explicitly) and the
    /// environment.
    pub fn load(path: Option<&Path>) -> Result<AgentSettings, SettingsError> {
        let mut f = Figment::from(Serialized::defaults(AgentSettings::default()));
        match path {
            Some(p) => {
                if !p.exists() {
                    return Err(SettingsError::Invalid(format!(
                        "{} does not exist",
                        p.display()
                    )));
                }
                f = f.merge(Toml::file(p));
            }
            None => f = f.merge(Toml::file(DEFAULT_CONFIG)),
        }
        let s: AgentSettings = f
            .merge(Env::prefixed("SOC_AGENT_").split("__"))
            .extract()
            .map_err(Box::new)?;
        s.check()?;
        Ok(s)
    }

    pub fn check(&self) -> Result<(), SettingsError> {
        let url = url::Url::parse(&self.gateway)
            .map_err(|e| SettingsError::Invalid(format!("gateway `{}`: {e}", self.gateway)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(SettingsError::Invalid(format!(
                "gateway `{}`: an http:// or https:// URL with a host",
                self.gateway
            )));
        }
        if self.nft.is_empty() || self.usermod.is_empty() {
            return Err(SettingsError::Invalid(
                "`nft` and `usermod` name a program".into(),
            ));
        }
        if self.guard.max_validity_secs <= 0 || self.guard.max_validity_secs > 3600 {
            return Err(SettingsError::Invalid(
                "guard.max_validity_secs must be 1 to 3600".into(),
            ));
        }
        Ok(())
    }

    /// The WebSocket URL of the gateway's agent endpoint.
    pub fn ws_url(&self) -> String {
        let base = self.gateway.trim_end_matches('/');
        let base = base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
            .unwrap_or_else(|| base.to_string());
        format!("{base}/ws/agent")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_and_environment_layer_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "gateway = \"https://soc.example.com:8443\"\ndry_run = true\n[guard]\nmax_prefix_v4 = 16\n",
        )
        .unwrap();
        let s = AgentSettings::load(Some(&path)).unwrap();
        assert_eq!(s.ws_url(), "wss://soc.example.com:8443/ws/agent");
        assert!(s.dry_run);
        assert_eq!(s.guard.max_prefix_v4, 16);
        assert_eq!(s.guard.max_prefix_v6, 48);
        std::fs::write(&path, "gateway = \"ftp://x\"\n").unwrap();
        assert!(AgentSettings::load(Some(&path)).is_err());
        std::fs::write(&path, "gatway = \"http://x\"\n").unwrap();
        assert!(
            AgentSettings::load(Some(&path)).is_err(),
            "unknown keys are refused"
        );
    }
}
