//! The keyring file: the command-signing keys as 32-byte seeds in hex, mode 0600, never
//! logged. `{"version": N, "active": "…", "previous": ["…"]}`; a file holding one hex seed
//! (as written before rotation existed) is a ring of that key at version 1. Created on
//! first start; `soc keys rotate` and `soc keys retire` rewrite it atomically, and a running
//! gateway picks the change up within a second ([`KeyringFile::reload_if_changed`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use soc_core::command::keys::Keyring;
use soc_core::command::CommandSigner;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("the random generator failed: {0}")]
    Random(String),
    #[error("{0}")]
    Refused(String),
}

/// The file's content. No `Debug`: it holds the secret seeds.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    version: u64,
    active: String,
    #[serde(default)]
    previous: Vec<String>,
    /// When each rotation or retirement happened, newest last (for people reading it).
    #[serde(default)]
    history: Vec<String>,
}

fn seed(hex_text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_text.trim()).ok()?;
    bytes.try_into().ok()
}

fn new_seed() -> Result<String, KeyringError> {
    let mut s = [0u8; 32];
    getrandom::getrandom(&mut s).map_err(|e| KeyringError::Random(e.to_string()))?;
    Ok(hex::encode(s))
}

impl Stored {
    fn read(path: &Path) -> Result<Option<Stored>, KeyringError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeyringError::Io {
                    path: path.into(),
                    source,
                })
            }
        };
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o600);
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the signing keys are readable by others; chmod 600 the file");
        }
        let bad = |message: String| KeyringError::Format {
            path: path.into(),
            message,
        };
        let stored = if text.trim_start().starts_with('{') {
            serde_json::from_str::<Stored>(&text).map_err(|e| bad(e.to_string()))?
        } else {
            Stored {
                version: 1,
                active: text.trim().to_string(),
                previous: Vec::new(),
                history: Vec::new(),
            }
        };
        stored.keyring().map_err(bad)?;
        Ok(Some(stored))
    }

    fn keyring(&self) -> Result<Keyring, String> {
        let signer = |h: &str| {
            seed(h)
                .map(|s| CommandSigner::from_seed(&s))
                .ok_or_else(|| "a key is not 64 hex digits".to_string())
        };
        if self.version == 0 {
            return Err("version must be at least 1".into());
        }
        let previous = self
            .previous
            .iter()
            .map(|h| signer(h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Keyring::new(self.version, signer(&self.active)?, previous))
    }

    /// Written beside the file, synced, then renamed over it: a crash leaves the old ring
    /// or the new one, never half of either.
    fn write(&self, path: &Path) -> Result<(), KeyringError> {
        let io = |source| KeyringError::Io {
            path: path.into(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| KeyringError::Format {
            path: path.into(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.write_all(b"\n").map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// Loads the ring, creating a single fresh key when the file does not exist.
pub fn load_or_create(path: &Path) -> Result<Keyring, KeyringError> {
    if let Some(s) = Stored::read(path)? {
        return s.keyring().map_err(|message| KeyringError::Format {
            path: path.into(),
            message,
        });
    }
    let stored = Stored {
        version: 1,
        active: new_seed()?,
        previous: Vec::new(),
        history: Vec::new(),
    };
    stored.write(path)?;
    let ring = stored.keyring().map_err(|message| KeyringError::Format {
        path: path.into(),
        message,
    })?;
    tracing::info!(path = %path.display(), key_id = ring.active().key_id(), "created the command-signing key");
    Ok(ring)
}

/// Loads an existing ring.
pub fn load(path: &Path) -> Result<Keyring, KeyringError> {
    let s = Stored::read(path)?.ok_or_else(|| KeyringError::Io {
        path: path.into(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    s.keyring().map_err(|message| KeyringError::Format {
        path: path.into(),
        message,
    })
}

fn change(
    path: &Path,
    f: impl FnOnce(&mut Stored) -> Result<String, KeyringError>,
    now: DateTime<Utc>,
) -> Result<Keyring, KeyringError> {
    let mut s = Stored::read(path)?.ok_or_else(|| KeyringError::Io {
        path: path.into(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let what = f(&mut s)?;
    s.version += 1;
    s.history.push(format!(
        "{} version {}: {what}",
        now.to_rfc3339(),
        s.version
    ));
    s.write(path)?;
    s.keyring().map_err(|message| KeyringError::Format {
        path: path.into(),
        message,
    })
}

/// A new active key; the old one stays trusted (as previous) until retired.
pub fn rotate(path: &Path, now: DateTime<Utc>) -> Result<Keyring, KeyringError> {
    change(
        path,
        |s| {
            let fresh = new_seed()?;
            let old = std::mem::replace(&mut s.active, fresh);
            s.previous.insert(0, old);
            Ok("rotated".into())
        },
        now,
    )
}

/// Stops trusting a previous key. The active key cannot be retired: rotate first.
pub fn retire(path: &Path, key_id: &str, now: DateTime<Utc>) -> Result<Keyring, KeyringError> {
    change(
        path,
        |s| {
            let id_of =
                |h: &String| seed(h).map(|x| CommandSigner::from_seed(&x).key_id().to_string());
            if id_of(&s.active).as_deref() == Some(key_id) {
                return Err(KeyringError::Refused(format!(
                    "key {key_id} is the active key; rotate first, then retire it"
                )));
            }
            let before = s.previous.len();
            s.previous.retain(|h| id_of(h).as_deref() != Some(key_id));
            if s.previous.len() == before {
                return Err(KeyringError::Refused(format!(
                    "no previous key has the id {key_id}"
                )));
            }
            Ok(format!("retired {key_id}"))
        },
        now,
    )
}

/// The ring's file as a running gateway watches it.
#[derive(Debug)]
pub struct KeyringFile {
    path: PathBuf,
    stamp: Mutex<Option<(SystemTime, u64)>>,
}

impl KeyringFile {
    pub fn new(path: PathBuf) -> Self {
        let stamp = Self::stamp_of(&path);
        KeyringFile {
            path,
            stamp: Mutex::new(stamp),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn stamp_of(path: &Path) -> Option<(SystemTime, u64)> {
        let m = std::fs::metadata(path).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    /// The ring, when the file changed since it was last read; `None` when it did not.
    pub fn reload_if_changed(&self) -> Result<Option<Keyring>, KeyringError> {
        let now = Self::stamp_of(&self.path);
        let mut last = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_none() || now == *last {
            return Ok(None);
        }
        let ring = load(&self.path)?;
        *last = now;
        Ok(Some(ring))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_rotated_retired_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/response-signing.key");
        let first = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(first.version(), 1);
        assert_eq!(
            load_or_create(&path).unwrap().active().key_id(),
            first.active().key_id()
        );

        let rotated = rotate(&path, Utc::now()).unwrap();
        assert_eq!(rotated.version(), 2);
        assert_ne!(rotated.active().key_id(), first.active().key_id());
        let ids: Vec<String> = rotated
            .public_keys()
            .into_iter()
            .map(|k| k.key_id)
            .collect();
        assert_eq!(
            ids,
            vec![
                rotated.active().key_id().to_string(),
                first.active().key_id().to_string()
            ]
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        assert!(matches!(
            retire(&path, rotated.active().key_id(), Utc::now()),
            Err(KeyringError::Refused(_))
        ));
        assert!(matches!(
            retire(&path, "0000000000000000", Utc::now()),
            Err(KeyringError::Refused(_))
        ));
        let retired = retire(&path, first.active().key_id(), Utc::now()).unwrap();
        assert_eq!(retired.version(), 3);
        assert_eq!(retired.public_keys().len(), 1);
        assert_eq!(load(&path).unwrap().version(), 3);
        let stored: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(!format!("{retired:?}").contains(stored["active"].as_str().unwrap()));
    }

    #[test]
    fn a_single_hex_key_is_version_one_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        let ring = load(&path).unwrap();
        assert_eq!(ring.version(), 1);
        assert_eq!(
            ring.active().key_id(),
            CommandSigner::from_seed(&[0xab; 32]).key_id()
        );
        std::fs::write(&path, "nonsense").unwrap();
        assert!(matches!(load(&path), Err(KeyringError::Format { .. })));
        std::fs::write(&path, r#"{"version": 2, "active": "zz"}"#).unwrap();
        assert!(matches!(load(&path), Err(KeyringError::Format { .. })));
    }

    #[test]
    fn a_running_gateway_sees_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        load_or_create(&path).unwrap();
        let watch = KeyringFile::new(path.clone());
        assert!(watch.reload_if_changed().unwrap().is_none());
        let rotated = rotate(&path, Utc::now()).unwrap();
        let seen = watch.reload_if_changed().unwrap().expect("a change");
        assert_eq!(seen.active().key_id(), rotated.active().key_id());
        assert!(watch.reload_if_changed().unwrap().is_none());
    }
}
