//! What each plugin file provides, remembered from its last load (by path,
//! size and modification time) beside the compile cache, so that `run`
//! loads only the files its checks use. A missing or stale entry costs
//! only a load: the file is loaded and its entry written again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::runtime::PluginKind;

const FILE: &str = "plugin-index.json";

/// A file as last loaded: its stamp, and the plugin it provided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(flatten)]
    stamp: Stamp,
    kind: PluginKind,
    id: String,
}

/// A file's size and modification time, which its entry must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stamp {
    size: u64,
    modified_ns: u64,
}

impl Stamp {
    pub fn of(file: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(file).ok()?;
        let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        Some(Stamp {
            size: meta.len(),
            modified_ns: u64::try_from(modified.as_nanos()).ok()?,
        })
    }
}

/// Saves of one process go through files of their own.
static SAVES: AtomicU64 = AtomicU64::new(0);

/// The index of one cache directory; without one, it knows nothing.
#[derive(Debug, Default)]
pub struct PluginIndex {
    path: Option<PathBuf>,
    entries: BTreeMap<PathBuf, Entry>,
    changed: bool,
}

/// Entries are by absolute path: a relative one depends on where a
/// command runs.
fn key(file: &Path) -> PathBuf {
    std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf())
}

impl PluginIndex {
    /// Reads the index of `cache_dir`; an unreadable one is empty.
    pub fn open(cache_dir: Option<&Path>) -> PluginIndex {
        let Some(dir) = cache_dir else {
            return PluginIndex::default();
        };
        let path = dir.join(FILE);
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        PluginIndex {
            path: Some(path),
            entries,
            changed: false,
        }
    }

    /// The plugin `file` provided when it was last loaded, if it has not
    /// changed since.
    pub fn lookup(&self, file: &Path) -> Option<(PluginKind, String)> {
        let entry = self.entries.get(&key(file))?;
        (Stamp::of(file)? == entry.stamp).then(|| (entry.kind, entry.id.clone()))
    }

    /// Notes what `file` provided when loaded with `stamp`, unless it has
    /// changed since.
    pub fn remember(&mut self, file: &Path, stamp: Stamp, kind: PluginKind, id: &str) {
        if Stamp::of(file) != Some(stamp) {
            return;
        }
        let entry = Entry {
            stamp,
            kind,
            id: id.to_string(),
        };
        let key = key(file);
        if self.entries.get(&key) != Some(&entry) {
            self.entries.insert(key, entry);
            self.changed = true;
        }
    }

    /// Writes the index if it changed. The index is an optimisation:
    /// failing to write it is not an error.
    pub fn save(&self) {
        let Some(path) = self.path.as_ref().filter(|_| self.changed) else {
            return;
        };
        let Ok(json) = serde_json::to_vec(&self.entries) else {
            return;
        };
        let save = SAVES.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}-{save}", std::process::id()));
        if path
            .parent()
            .is_some_and(|d| std::fs::create_dir_all(d).is_ok())
            && std::fs::write(&tmp, json).is_ok()
        {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_holds_while_its_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("http.wasm");
        std::fs::write(&file, b"one").unwrap();
        let mut index = PluginIndex::open(Some(dir.path()));
        let stamp = Stamp::of(&file).unwrap();
        index.remember(&file, stamp, PluginKind::Strategy, "http");
        index.save();
        let index = PluginIndex::open(Some(dir.path()));
        assert_eq!(
            index.lookup(&file),
            Some((PluginKind::Strategy, "http".into()))
        );
        std::fs::write(&file, b"other bytes").unwrap();
        assert_eq!(index.lookup(&file), None, "a changed file is loaded again");
        let mut index = PluginIndex::open(Some(dir.path()));
        index.remember(&file, stamp, PluginKind::Strategy, "http");
        assert!(
            !index.changed,
            "a file replaced after its load is not learnt"
        );
        assert_eq!(index.lookup(&dir.path().join("gone.wasm")), None);
        std::fs::write(dir.path().join(FILE), b"not json").unwrap();
        assert_eq!(PluginIndex::open(Some(dir.path())).lookup(&file), None);
    }
}
