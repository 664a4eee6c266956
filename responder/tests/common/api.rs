//! The gateway's API as the end-to-end tests drive it, the agent binary, and attacks
//! replayed into `soc up`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

impl Api {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let v = res.json().await.unwrap_or(Value::Null);
        (status, v)
    }

    pub async fn get(&self, path: &str, token: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, path, token, None).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// The action for `target`, once it is in `state`.
    pub async fn wait_action(
        &self,
        token: &str,
        target: &str,
        state: &str,
        within: Duration,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let list = self.get("/api/actions?limit=500", token).await;
            let found = list
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["target"] == target)
                .cloned();
            if let Some(a) = &found {
                if a["state"] == state {
                    return a.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "action on {target} never became {state}: {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first enrolled agent, once `check` holds for it.
    pub async fn wait_agent(
        &self,
        token: &str,
        what: &str,
        log: &Path,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let agents = self.get("/api/agents", token).await;
            if check(&agents[0]) {
                return agents[0].clone();
            }
            assert!(
                Instant::now() < deadline,
                "agent never {what}: {agents}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An agent set up in `dir` against `gateway`: its nft runs inside namespace `ns` (slowly,
/// 3 s a call, while `dir/slow` exists); `extra` adds lines to its config. Returns the
/// config file and the agent's state directory.
pub fn agent_setup(dir: &Path, gateway: &str, ns: &str, extra: &str) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let wrapper = dir.join("nft-in-victim.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ -e '{}' ]; then sleep 3; fi\nexec ip netns exec {ns} nft \"$@\"\n",
            dir.join("slow").display()
        ),
    )
    .expect("nft wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let state = dir.join("agent-state");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "gateway = \"{gateway}\"\nstate_dir = \"{}\"\nnft = [\"{}\"]\n\
             heartbeat_secs = 1\nmax_backoff_secs = 1\n{extra}",
            state.display(),
            wrapper.display()
        ),
    )
    .expect("agent config");
    (config, state)
}

pub fn agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_soc-agent")
}

/// `soc-agent enroll --token`; the command's output.
pub fn enroll_agent(config: &Path, token: &str) -> std::process::Output {
    Command::new(agent_bin())
        .args([
            "--config",
            &config.display().to_string(),
            "enroll",
            "--token",
            token,
        ])
        .output()
        .expect("soc-agent runs")
}

/// `soc-agent run`, its stderr appended to `log`.
pub fn spawn_agent(config: &Path, log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("agent log");
    Command::new(agent_bin())
        .args(["--config", &config.display().to_string(), "run"])
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("soc-agent runs")
}

/// Six failed SSH logins from `ip` on `host`, stamped now.
pub async fn attack(pipeline: &soc::embedded::Pipeline, dir: &Path, host: &str, ip: &str) {
    let now = chrono::Local::now();
    let lines: String = (0..6)
        .map(|i| {
            format!(
                "{} {host} sshd[{}]: Failed password for invalid user admin{i} from {ip} port {} ssh2\n",
                now.format("%b %e %H:%M:%S"),
                4000 + i,
                40000 + i
            )
        })
        .collect();
    let file = dir.join(format!("attack-{ip}.log"));
    std::fs::write(&file, lines).unwrap();
    soc_connectors::replay::replay(
        &pipeline.log,
        &soc_connectors::replay::ReplayConfig::new(&file),
    )
    .await
    .expect("replay");
}
