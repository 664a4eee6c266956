//! The gateway's command-signing key: 32 random bytes in hex, created on first start with
//! mode 0600 and never logged. Agents get its public half when they enroll.

use anyhow::{Context, Result};
use soc_core::command::CommandSigner;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub fn load_or_create(path: &Path) -> Result<CommandSigner> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the signing key is readable by others; chmod 600 it");
            }
            let bytes = hex_seed(text.trim())
                .with_context(|| format!("{}: not a 64-digit hex key", path.display()))?;
            Ok(CommandSigner::from_seed(&bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed)
                .map_err(|e| anyhow::anyhow!("random generator: {e}"))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(f, "{hex}")?;
            f.sync_all()?;
            let signer = CommandSigner::from_seed(&seed);
            tracing::info!(path = %path.display(), key_id = signer.key_id(), "created the command-signing key");
            Ok(signer)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn hex_seed(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_private_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/response-signing.key");
        let a = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = load_or_create(&path).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        std::fs::write(&path, "nonsense").unwrap();
        assert!(load_or_create(&path).is_err());
    }
}
