//! A connector run as its own process on a Fluvio cluster, described the way Fluvio's
//! connector configs are written: `apiVersion`, a `meta` block (name, type, topic, the
//! secrets it reads) and then the connector's own section. Secret values are written
//! `${{ secrets.NAME }}` and read from the environment variable `NAME`, which `meta.secrets`
//! must list; they never appear in the file.
//!
//! ```yaml
//! apiVersion: 0.1.0
//! meta:
//!   version: 0.1.0
//!   name: syslog-tcp
//!   type: syslog-source
//!   topic: raw-logs
//! syslog:
//!   mode: tcp
//!   address: 0.0.0.0:5514
//! ```

use crate::http::HttpIngestConfig;
use crate::syslog::{SyslogConfig, SyslogMode};
use crate::tail::{ReadFrom, TailConfig};
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct File {
    #[allow(dead_code)]
    api_version: String,
    meta: Meta,
    #[serde(default)]
    syslog: Option<SyslogSection>,
    #[serde(default)]
    http: Option<HttpSection>,
    #[serde(default)]
    file: Option<FileSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    #[allow(dead_code)]
    version: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    topic: String,
    #[serde(default)]
    secrets: Vec<SecretRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRef {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum Mode {
    Udp,
    Tcp,
    Tls,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyslogSection {
    mode: Mode,
    address: SocketAddr,
    #[serde(default)]
    tls_cert: Option<PathBuf>,
    #[serde(default)]
    tls_key: Option<PathBuf>,
    #[serde(default)]
    max_line_bytes: Option<usize>,
    #[serde(default)]
    max_connections: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    address: SocketAddr,
    tokens: BTreeMap<String, String>,
    #[serde(default)]
    max_body_bytes: Option<usize>,
    #[serde(default)]
    max_line_bytes: Option<usize>,
    #[serde(default)]
    tls_cert: Option<PathBuf>,
    #[serde(default)]
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSection {
    include: Vec<String>,
    #[serde(default)]
    exclude: Option<Vec<String>>,
    #[serde(default)]
    read_from: Option<String>,
    #[serde(default)]
    poll_interval_ms: Option<u64>,
    #[serde(default)]
    max_line_bytes: Option<usize>,
}

/// What a connector file asks to run.
#[derive(Debug)]
pub enum ConnectorKind {
    Syslog(SyslogConfig),
    Http(HttpIngestConfig),
    File(TailConfig),
}

/// A connector file, read and checked.
#[derive(Debug)]
pub struct ConnectorDeployment {
    pub name: String,
    pub topic: String,
    pub kind: ConnectorKind,
}

impl ConnectorDeployment {
    /// Read a connector file; secrets come from `env` (the process environment in use).
    pub fn load(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ConnectorDeployment, DeploymentError> {
        let text = std::fs::read_to_string(path).map_err(|e| DeploymentError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, env).map_err(|reason| DeploymentError::Invalid {
            path: path.display().to_string(),
            reason,
        })
    }

    pub fn parse(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ConnectorDeployment, String> {
        let file: File = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        let meta = file.meta;
        let declared: Vec<&str> = meta.secrets.iter().map(|s| s.name.as_str()).collect();
        let kind = match meta.kind.as_str() {
            "syslog-source" => {
                let s = file
                    .syslog
                    .ok_or("a syslog-source needs a `syslog:` section")?;
                let mode = match s.mode {
                    Mode::Udp => SyslogMode::Udp,
                    Mode::Tcp => SyslogMode::Tcp,
                    Mode::Tls => SyslogMode::Tls {
                        cert: s.tls_cert.ok_or("mode tls needs tls_cert")?,
                        key: s.tls_key.ok_or("mode tls needs tls_key")?,
                    },
                };
                let mut config = SyslogConfig::new(mode, s.address);
                if let Some(n) = s.max_line_bytes {
                    config.max_line_bytes = n;
                }
                if let Some(n) = s.max_connections {
                    config.max_connections = n;
                }
                ConnectorKind::Syslog(config)
            }
            "http-source" => {
                let h = file.http.ok_or("an http-source needs an `http:` section")?;
                let mut tokens = BTreeMap::new();
                for (name, value) in h.tokens {
                    let token = resolve(&value, &declared, &env)?;
                    tokens.insert(name, SecretString::from(token));
                }
                let mut config = HttpIngestConfig::new(h.address, tokens);
                if let Some(n) = h.max_body_bytes {
                    config.max_body_bytes = n;
                }
                if let Some(n) = h.max_line_bytes {
                    config.max_line_bytes = n;
                }
                config.tls = match (h.tls_cert, h.tls_key) {
                    (Some(c), Some(k)) => Some((c, k)),
                    (None, None) => None,
                    _ => return Err("tls_cert and tls_key go together".into()),
                };
                ConnectorKind::Http(config)
            }
            "file-source" => {
                let f = file.file.ok_or("a file-source needs a `file:` section")?;
                let mut config = TailConfig::new(f.include);
                if let Some(x) = f.exclude {
                    config.exclude = x;
                }
                config.read_from = match f.read_from.as_deref() {
                    None | Some("beginning") => ReadFrom::Beginning,
                    Some("end") => ReadFrom::End,
                    Some(other) => {
                        return Err(format!("read_from `{other}`: beginning or end"));
                    }
                };
                if let Some(ms) = f.poll_interval_ms {
                    config.poll_interval = Duration::from_millis(ms.max(10));
                }
                if let Some(n) = f.max_line_bytes {
                    config.max_line_bytes = n;
                }
                ConnectorKind::File(config)
            }
            other => {
                return Err(format!(
                    "meta.type `{other}`: syslog-source, http-source or file-source"
                ))
            }
        };
        Ok(ConnectorDeployment {
            name: meta.name,
            topic: meta.topic,
            kind,
        })
    }
}

/// `${{ secrets.NAME }}` from the environment; anything else as written.
fn resolve(
    value: &str,
    declared: &[&str],
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let inner = value
        .trim()
        .strip_prefix("${{")
        .and_then(|v| v.strip_suffix("}}"))
        .map(str::trim);
    let Some(inner) = inner else {
        return Ok(value.to_string());
    };
    let name = inner
        .strip_prefix("secrets.")
        .ok_or_else(|| format!("`{value}`: only secrets.NAME can be substituted"))?;
    if !declared.contains(&name) {
        return Err(format!(
            "secret {name} is used but not listed in meta.secrets"
        ));
    }
    env(name).ok_or_else(|| format!("secret {name}: the environment variable {name} is not set"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fluvio-config/connectors");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("fluvio-config/connectors")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn every_shipped_connector_file_loads() {
        let env = |name: &str| (name == "SOC_INGEST_TOKEN_APPS").then(|| "t0ken".to_string());
        let mut kinds: Vec<&str> = Vec::new();
        for path in shipped() {
            let d = ConnectorDeployment::load(&path, env).expect("loads");
            assert_eq!(d.topic, "raw-logs", "{}", path.display());
            kinds.push(match d.kind {
                ConnectorKind::Syslog(c) => match c.mode {
                    SyslogMode::Udp => "syslog udp",
                    SyslogMode::Tcp => "syslog tcp",
                    SyslogMode::Tls { .. } => "syslog tls",
                },
                ConnectorKind::Http(c) => {
                    use secrecy::ExposeSecret;
                    assert_eq!(c.tokens["apps"].expose_secret(), "t0ken");
                    "http"
                }
                ConnectorKind::File(_) => "file",
            });
        }
        kinds.sort();
        assert_eq!(
            kinds,
            ["file", "http", "syslog tcp", "syslog tls", "syslog udp"]
        );
    }

    #[test]
    fn a_secret_must_be_declared_and_set() {
        let file = |secrets: &str| {
            format!(
                "apiVersion: 0.1.0\nmeta:\n  version: 0.1.0\n  name: h\n  type: http-source\n  topic: raw-logs\n{secrets}http:\n  address: 127.0.0.1:0\n  tokens:\n    a: ${{{{ secrets.TOK }}}}\n"
            )
        };
        let err =
            ConnectorDeployment::parse(&file(""), |_| Some("x".into())).expect_err("undeclared");
        assert!(err.contains("not listed in meta.secrets"), "{err}");
        let declared = file("  secrets:\n    - name: TOK\n");
        let err = ConnectorDeployment::parse(&declared, |_| None).expect_err("unset");
        assert!(err.contains("TOK is not set"), "{err}");
        ConnectorDeployment::parse(&declared, |_| Some("x".into())).expect("declared and set");
        let err =
            ConnectorDeployment::parse(&file("").replace("http-source", "kafka-source"), |_| None)
                .expect_err("unknown type");
        assert!(err.contains("kafka-source"), "{err}");
    }
}
