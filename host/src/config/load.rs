//! Reading configuration files with errors that name file, line and column.

use std::path::{Path, PathBuf};

use super::model::ConfigFile;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A loaded configuration and the folder its relative paths start from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub file: ConfigFile,
    pub path: PathBuf,
    pub base_dir: PathBuf,
}

impl LoadedConfig {
    pub fn resolve(&self, relative: &Path) -> PathBuf {
        if relative.is_absolute() {
            relative.to_path_buf()
        } else {
            self.base_dir.join(relative)
        }
    }
}

/// Loads one YAML file, or every `*.yaml`/`*.yml` in a folder merged in
/// name order (lists are concatenated; scalars of later files win).
pub fn load_config(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut merged = ConfigFile::default();
    for file in &files {
        let part = parse(file, &read(file)?)?;
        merge(&mut merged, part);
    }
    let base_dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    Ok(LoadedConfig {
        file: merged,
        path: path.to_path_buf(),
        base_dir,
    })
}

/// One file's text as the configuration it holds, with errors that name
/// the file, line and column.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
    serde_yaml_ng::from_str(text).map_err(|e| match e.location() {
        Some(loc) => ConfigError::Syntax {
            path: path.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
            message: strip_location(&e.to_string()),
        },
        None => ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        },
    })
}

/// serde_yaml appends "at line X column Y"; the error already says where.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn merge(into: &mut ConfigFile, part: ConfigFile) {
    into.plugins = part.plugins.or(into.plugins.take());
    into.database = part.database.or(into.database.take());
    into.badges = part.badges.or(into.badges.take());
    if part.secrets.dir.is_some() || part.secrets.env_prefix != into.secrets.env_prefix {
        into.secrets = part.secrets;
    }
    into.environments.extend(part.environments);
    into.locations.extend(part.locations);
    if part.probes != Default::default() {
        into.probes = part.probes;
    }
    if part.metrics != Default::default() {
        into.metrics = part.metrics;
    }
    if part.traces != Default::default() {
        into.traces = part.traces;
    }
    if part.mcp != Default::default() {
        into.mcp = part.mcp;
    }
    into.systems.extend(part.systems);
    into.checks.extend(part.checks);
    into.assignments.extend(part.assignments);
    if part.api.token.is_some() || part.api.reads != Default::default() {
        into.api = part.api;
    }
    into.notifications
        .targets
        .extend(part.notifications.targets);
    into.notifications
        .maintenance
        .extend(part.notifications.maintenance);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(
            &file,
            "checks:\n  - id: a\n    strategy: {plugin: http}\n    bogus: 1\n",
        )
        .unwrap();
        let err = load_config(&file).unwrap_err().to_string();
        assert!(
            err.contains("bad.yaml:4:5: checks[0]: unknown field `bogus`"),
            "{err}"
        );
    }
}
