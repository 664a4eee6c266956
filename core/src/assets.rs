//! Files the product ships with (SmartModules, rules, indicator lists, deployment config):
//! compiled into the binary, or read from a directory that replaces them.
//!
//! Loaders take an [`Assets`] rather than a path, so the same code reads the embedded
//! defaults of an installed binary and an operator's own directory.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
}

/// One file: its name relative to the set's root (`/`-separated) and its bytes.
#[derive(Clone)]
pub struct AssetFile {
    pub name: String,
    pub data: Cow<'static, [u8]>,
}

impl std::fmt::Debug for AssetFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssetFile")
            .field("name", &self.name)
            .field("len", &self.data.len())
            .finish()
    }
}

impl AssetFile {
    /// The file name without directories.
    pub fn file_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    /// The file name without its extension (`rules/ssh/ssh-bruteforce.yaml` → `ssh-bruteforce`).
    pub fn stem(&self) -> &str {
        let name = self.file_name();
        name.rsplit_once('.').map_or(name, |(stem, _)| stem)
    }

    pub fn has_extension(&self, exts: &[&str]) -> bool {
        self.file_name()
            .rsplit_once('.')
            .is_some_and(|(_, ext)| exts.contains(&ext))
    }

    /// The contents as text; invalid UTF-8 is replaced rather than refused, and the parser
    /// that reads it names the problem.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.data)
    }
}

/// A set of shipped files.
#[derive(Clone)]
pub enum Assets {
    /// Compiled into the binary; `what` names the set in messages.
    Embedded {
        what: &'static str,
        files: Arc<[AssetFile]>,
    },
    /// Read from this directory when asked.
    Dir(PathBuf),
}

impl std::fmt::Debug for Assets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.origin())
    }
}

impl Assets {
    /// The files of a `rust_embed` folder.
    pub fn from_embed<E: rust_embed::RustEmbed>(what: &'static str) -> Assets {
        let files = E::iter()
            .filter_map(|name| {
                let file = E::get(&name)?;
                Some(AssetFile {
                    name: name.into_owned(),
                    data: file.data,
                })
            })
            .collect();
        Assets::embedded(what, files)
    }

    pub fn embedded(what: &'static str, mut files: Vec<AssetFile>) -> Assets {
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Assets::Embedded {
            what,
            files: files.into(),
        }
    }

    /// A directory given by the operator; it must exist.
    pub fn dir(path: impl Into<PathBuf>) -> Result<Assets, AssetError> {
        let path = path.into();
        if !path.is_dir() {
            return Err(AssetError::NotADirectory { path });
        }
        Ok(Assets::Dir(path))
    }

    /// Where the files come from, for messages: `embedded rules` or the directory.
    pub fn origin(&self) -> String {
        match self {
            Assets::Embedded { what, .. } => format!("embedded {what}"),
            Assets::Dir(p) => p.display().to_string(),
        }
    }

    /// The files under `prefix` (a `/`-separated directory, `""` for all), recursively,
    /// sorted by name, with the prefix removed from their names. Directories whose name
    /// ends in `.tests` hold rule test cases and are skipped.
    pub fn files_under(&self, prefix: &str) -> Result<Vec<AssetFile>, AssetError> {
        let prefix = prefix.trim_matches('/');
        match self {
            Assets::Embedded { files, .. } => Ok(files
                .iter()
                .filter_map(|f| {
                    let rest = if prefix.is_empty() {
                        f.name.as_str()
                    } else {
                        f.name.strip_prefix(prefix)?.strip_prefix('/')?
                    };
                    let skipped = rest.split('/').rev().skip(1).any(|d| d.ends_with(".tests"));
                    (!skipped).then(|| AssetFile {
                        name: rest.to_string(),
                        data: f.data.clone(),
                    })
                })
                .collect()),
            Assets::Dir(root) => {
                let base = if prefix.is_empty() {
                    root.clone()
                } else {
                    root.join(prefix)
                };
                let mut out = Vec::new();
                read_tree(&base, "", &mut out)?;
                out.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(out)
            }
        }
    }

    /// Every file with one of `exts` (without the dot), as [`Assets::files_under`].
    pub fn files_with_extension(
        &self,
        prefix: &str,
        exts: &[&str],
    ) -> Result<Vec<AssetFile>, AssetError> {
        Ok(self
            .files_under(prefix)?
            .into_iter()
            .filter(|f| f.has_extension(exts))
            .collect())
    }

    /// One file by its `/`-separated name; `None` when there is none.
    pub fn file(&self, name: &str) -> Result<Option<AssetFile>, AssetError> {
        match self {
            Assets::Embedded { files, .. } => Ok(files.iter().find(|f| f.name == name).cloned()),
            Assets::Dir(root) => {
                let path = root.join(name);
                match std::fs::read(&path) {
                    Ok(data) => Ok(Some(AssetFile {
                        name: name.to_string(),
                        data: Cow::Owned(data),
                    })),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(AssetError::Read { path, source }),
                }
            }
        }
    }

    /// A file's path for messages: on disk when it is, else `embedded <what>: <name>`.
    pub fn describe(&self, name: &str) -> PathBuf {
        match self {
            Assets::Embedded { what, .. } => PathBuf::from(format!("(embedded {what})/{name}")),
            Assets::Dir(root) => root.join(name),
        }
    }
}

fn read_tree(dir: &Path, rel: &str, out: &mut Vec<AssetFile>) -> Result<(), AssetError> {
    let read = |source| AssetError::Read {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let rel_name = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        if path.is_dir() {
            if !name.ends_with(".tests") {
                read_tree(&path, &rel_name, out)?;
            }
        } else {
            let data = std::fs::read(&path).map_err(|source| AssetError::Read {
                path: path.clone(),
                source,
            })?;
            out.push(AssetFile {
                name: rel_name,
                data: Cow::Owned(data),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &'static str) -> AssetFile {
        AssetFile {
            name: name.into(),
            data: Cow::Borrowed(text.as_bytes()),
        }
    }

    #[test]
    fn embedded_and_directory_sets_list_the_same_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("ssh/a.tests")).expect("mkdir");
        std::fs::write(dir.path().join("ssh/a.yaml"), "a").expect("write");
        std::fs::write(dir.path().join("ssh/a.tests/case.yaml"), "t").expect("write");
        std::fs::write(dir.path().join("ssh/a.md"), "doc").expect("write");
        std::fs::write(dir.path().join("top.yaml"), "b").expect("write");
        let embedded = Assets::embedded(
            "rules",
            vec![
                file("top.yaml", "b"),
                file("ssh/a.yaml", "a"),
                file("ssh/a.tests/case.yaml", "t"),
                file("ssh/a.md", "doc"),
            ],
        );
        let on_disk = Assets::dir(dir.path()).expect("dir");
        for set in [&embedded, &on_disk] {
            let names: Vec<String> = set
                .files_with_extension("", &["yaml", "yml"])
                .expect("files")
                .into_iter()
                .map(|f| f.name)
                .collect();
            assert_eq!(names, ["ssh/a.yaml", "top.yaml"], "{set:?}");
            let under: Vec<String> = set
                .files_under("ssh")
                .expect("files")
                .into_iter()
                .map(|f| f.name)
                .collect();
            assert_eq!(under, ["a.md", "a.yaml"], "{set:?}");
            assert_eq!(
                set.file("top.yaml").expect("read").expect("some").text(),
                "b"
            );
            assert!(set.file("nope.yaml").expect("read").is_none());
        }
        assert!(Assets::dir(dir.path().join("missing")).is_err());
    }
}
