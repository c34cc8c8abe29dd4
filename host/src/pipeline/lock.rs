//! `checkhost.lock`: the plugin files a configuration uses, pinned by the
//! digest of their bytes. `checkhost plugin lock` writes it beside the
//! config; while it exists, only the files it lists are loaded, and each
//! only if its bytes still have the pinned digest.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runtime::{ComponentDigest, PluginKind};

pub const LOCK_FILE: &str = "checkhost.lock";
const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLock {
    pub version: u32,
    pub plugins: Vec<LockedPlugin>,
}

/// One pinned component file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPlugin {
    /// The file's name in the plugin folder.
    pub file: String,
    pub id: String,
    pub kind: PluginKind,
    pub digest: ComponentDigest,
    /// Where `checkhost plugin pull` fetched it from (`oci://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a checkhost lock file: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "{path}: lock version {found}, but this checkhost reads version {VERSION}; \
         run `checkhost plugin lock` again"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: lists `{file}` twice")]
    Duplicate { path: PathBuf, file: String },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: missing, but this configuration requires one (--require-lock, or a daemon \
         that started with it): write it with `checkhost plugin lock CONFIG --plugins DIR`"
    )]
    Missing { path: PathBuf },
}

impl PluginLock {
    pub fn new(mut plugins: Vec<LockedPlugin>) -> PluginLock {
        plugins.sort_by(|a, b| a.file.cmp(&b.file));
        PluginLock {
            version: VERSION,
            plugins,
        }
    }

    /// Where the lock of a config lives: beside a config file, inside a
    /// config folder.
    pub fn path_for(config: &Path) -> PathBuf {
        if config.is_dir() {
            config.join(LOCK_FILE)
        } else {
            config
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join(LOCK_FILE)
        }
    }

    /// The lock at `path`, or `None` when there is none.
    pub fn read(path: &Path) -> Result<Option<PluginLock>, LockError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LockError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let lock: PluginLock = serde_yaml_ng::from_str(&text).map_err(|e| LockError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if lock.version != VERSION {
            return Err(LockError::Version {
                path: path.to_path_buf(),
                found: lock.version,
            });
        }
        let mut files: Vec<&str> = lock.plugins.iter().map(|p| p.file.as_str()).collect();
        files.sort_unstable();
        if let Some(twice) = files.windows(2).find(|w| w[0] == w[1]) {
            return Err(LockError::Duplicate {
                path: path.to_path_buf(),
                file: twice[0].to_string(),
            });
        }
        Ok(Some(lock))
    }

    /// Writes the lock to `path` whole or not at all.
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        let failed = |source| LockError::Write {
            path: path.to_path_buf(),
            source,
        };
        let body = serde_yaml_ng::to_string(self)
            .map_err(|e| failed(std::io::Error::other(e.to_string())))?;
        let text = format!(
            "# The plugin files this configuration uses, pinned by digest: written by\n\
             # `checkhost plugin lock`, checked before every load. Commit it.\n{body}"
        );
        let tmp = path.with_extension(format!("lock.tmp{}", std::process::id()));
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(failed)
    }

    /// Pins `pin`, in place of what the lock said of its file.
    pub fn pin(&mut self, pin: LockedPlugin) {
        self.plugins.retain(|p| p.file != pin.file);
        self.plugins.push(pin);
        self.plugins.sort_by(|a, b| a.file.cmp(&b.file));
    }

    /// The pin of the file named `file`, if the lock lists it.
    pub fn pinned(&self, file: &str) -> Option<&LockedPlugin> {
        self.plugins.iter().find(|p| p.file == file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_round_trips_and_bad_ones_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        assert!(PluginLock::read(&path).unwrap().is_none());
        let lock = PluginLock::new(vec![LockedPlugin {
            file: "http.wasm".into(),
            id: "http".into(),
            kind: PluginKind::Strategy,
            digest: ComponentDigest::of(b"http"),
            source: Some("oci://127.0.0.1:5000/http:1".into()),
        }]);
        lock.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("digest: sha256:"), "{text}");
        let read = PluginLock::read(&path).unwrap().unwrap();
        assert_eq!(read.plugins, lock.plugins);

        std::fs::write(&path, text.replace("sha256:", "md5:")).unwrap();
        let err = PluginLock::read(&path).unwrap_err().to_string();
        assert!(err.contains("not a digest"), "{err}");
        std::fs::write(&path, text.replace("version: 1", "version: 9")).unwrap();
        let err = PluginLock::read(&path).unwrap_err().to_string();
        assert!(err.contains("lock version 9"), "{err}");
    }
}
