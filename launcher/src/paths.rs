//! Where the SmartModules, rules and deployment config are found: the flag or environment
//! variable, else the working directory's checkout layout, else the source tree this binary
//! was built from.

use crate::CommonPaths;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

const SOURCE_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn find(explicit: &Option<PathBuf>, relative: &str, what: &str, hint: &str) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if p.is_dir() {
            return Ok(p.clone());
        }
        bail!("{what} directory {} does not exist", p.display());
    }
    for base in [Path::new("."), Path::new(SOURCE_ROOT)] {
        let p = base.join(relative);
        if p.is_dir() {
            return Ok(p);
        }
    }
    bail!("no {what} directory found at ./{relative}; {hint}")
}

pub fn smartmodules_dir(p: &CommonPaths) -> Result<PathBuf> {
    let dir = find(
        &p.smartmodules,
        "smartmodules/dist",
        "SmartModule",
        "build them with scripts/build-smartmodules.sh or pass --smartmodules",
    )?;
    let has_wasm = std::fs::read_dir(&dir)?
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "wasm"));
    if !has_wasm {
        bail!(
            "{} has no .wasm files; build them with scripts/build-smartmodules.sh",
            dir.display()
        );
    }
    Ok(dir)
}

pub fn rules_dir(p: &CommonPaths) -> Result<PathBuf> {
    find(&p.rules_dir, "processor/rules", "rules", "pass --rules-dir")
}

/// The indicator lists: the flag, else `processor/ioc` of the checkout or source tree.
pub fn ioc_dir(p: &CommonPaths) -> Result<PathBuf> {
    find(
        &p.ioc_dir,
        "processor/ioc",
        "indicator list",
        "pass --ioc-dir",
    )
}

pub fn config_dir(p: &CommonPaths) -> Result<PathBuf> {
    find(
        &p.config_dir,
        "fluvio-config",
        "deployment config",
        "pass --config-dir",
    )
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://soc:s3cret@db:5432/soc"),
            "postgres://soc:***@db:5432/soc"
        );
        assert_eq!(
            super::redact_url("sqlite://data/soc.sqlite"),
            "sqlite://data/soc.sqlite"
        );
    }
}
