//! The demo log compiled into `soc`, so `soc up --demo` shows alerts on any machine.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// `demo/auth.log`: SSH brute force from two addresses, user enumeration, benign traffic.
pub const AUTH_LOG: &str = include_str!("../../demo/auth.log");

/// Write the demo log under `data_dir` (unchanged when already there, so a replay resumes
/// from its checkpoint after a restart) and return its path.
pub fn write(data_dir: &Path) -> Result<PathBuf> {
    let dir = data_dir.join("demo");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("auth.log");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(AUTH_LOG) {
        std::fs::write(&path, AUTH_LOG).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(path)
}
