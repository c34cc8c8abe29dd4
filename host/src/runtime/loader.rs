//! Loading plugins: compile once (cached on disk as precompiled artifacts
//! keyed by content hash and engine compatibility), check the world and the
//! contract version, link once into an `InstancePre`, and ask the guest to
//! describe itself.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::digest::ComponentDigest;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::bindings::{CONTRACT_MAJOR, CONTRACT_PACKAGE, collector, strategy};
use super::sandbox::Sandbox;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Strategy,
    Collector,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Strategy => "strategy",
            PluginKind::Collector => "collector",
        })
    }
}

/// What a plugin says about itself, plus what the host learned loading it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    pub kind: PluginKind,
    pub world: String,
    pub contract_version: String,
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub config_schema: Value,
    pub config_version: u32,
    pub result_schema: Value,
    /// Collectors only: the strategies they ride on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub strategies: Vec<String>,
    pub allow_multiple: bool,
}

pub(crate) enum PluginPre {
    Strategy(strategy::StrategyPre<Sandbox>),
    Collector(collector::CollectorPre<Sandbox>),
}

/// A loaded, linked plugin, ready to instantiate cheaply for every run.
pub struct Plugin {
    pub path: PathBuf,
    pub info: PluginInfo,
    pub(crate) pre: PluginPre,
    /// Linear memory an instance starts with (its largest memory's initial
    /// size, the pre-initialised image for interpreted guests): what a run
    /// of it weighs against the runtime's guest memory budget.
    pub initial_memory_bytes: u64,
    /// The result fields it marks for aggregation and charts.
    pub result_fields: Vec<super::result_fields::ResultField>,
    /// The SHA-256 of the file's bytes as loaded.
    pub digest: ComponentDigest,
    /// Configs whose migration failed, by their JSON: a migration has no
    /// network and is deterministic by contract, so it fails the same way
    /// again, and a hanging one must not cost its timeout once per check.
    pub(crate) failed_migrations:
        std::sync::Mutex<std::collections::HashMap<String, super::MigrateError>>,
    /// Its config schema, compiled at first use: once per plugin, not once
    /// per check that uses it.
    config_validator: std::sync::OnceLock<Result<jsonschema::Validator, String>>,
}

impl Plugin {
    /// The validator of its config schema, or why the schema is unusable.
    pub fn config_validator(&self) -> Result<&jsonschema::Validator, &str> {
        self.config_validator
            .get_or_init(|| {
                jsonschema::validator_for(&self.info.config_schema).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("id", &self.info.id)
            .field("kind", &self.info.kind)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a WebAssembly file")]
    NotWasm { path: PathBuf },
    #[error(
        "{path}: is a core WebAssembly module, not a component; build it for wasm32-wasip2 \
         (or wrap it with `wasm-tools component new`) against world {CONTRACT_PACKAGE}/strategy or /collector"
    )]
    CoreModule { path: PathBuf },
    #[error("{path}: invalid component: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{path}: exports neither {CONTRACT_PACKAGE}/strategy-plugin nor \
         {CONTRACT_PACKAGE}/collector-plugin (expected world {CONTRACT_PACKAGE}@{CONTRACT_MAJOR}.x \
         strategy or collector; found exports: {found})"
    )]
    WrongWorld { path: PathBuf, found: String },
    #[error(
        "{path}: built against {found}, but this host implements \
         {CONTRACT_PACKAGE}@{CONTRACT_MAJOR}.x; rebuild the plugin with a compatible SDK"
    )]
    IncompatibleVersion { path: PathBuf, found: String },
    #[error(
        "{path}: digest mismatch: checkhost.lock pins {expected}, but the file's digest is \
         {actual}; refused. If the change is intended, run `checkhost plugin lock`"
    )]
    Digest {
        path: PathBuf,
        expected: ComponentDigest,
        actual: ComponentDigest,
    },
    #[error("{path}: cannot be linked: {message}")]
    Link { path: PathBuf, message: String },
    #[error("{path}: describe() failed: {message}")]
    Describe { path: PathBuf, message: String },
    #[error("{path}: plugin `{id}` has an invalid {which} schema: {message}")]
    Schema {
        path: PathBuf,
        id: String,
        which: &'static str,
        message: String,
    },
}

pub(crate) struct Loader<'a> {
    pub engine: &'a Engine,
    pub linker: &'a Linker<Sandbox>,
    pub cache_dir: Option<&'a Path>,
    /// How long `describe` may take, wall clock and CPU alike.
    pub call_timeout: std::time::Duration,
    /// The instance pool's slots; `describe` takes one like any run.
    pub slots: &'a tokio::sync::Semaphore,
}

const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
const CORE_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

impl Loader<'_> {
    /// Reads and compiles the file; with `pinned`, only if its bytes have
    /// that digest (checked on the very bytes compiled).
    pub fn compile(
        &self,
        path: &Path,
        pinned: Option<ComponentDigest>,
    ) -> Result<(Component, ComponentDigest), LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let digest = ComponentDigest::of(&bytes);
        if let Some(expected) = pinned.filter(|e| *e != digest) {
            return Err(LoadError::Digest {
                path: path.to_path_buf(),
                expected,
                actual: digest,
            });
        }
        match bytes.get(..8) {
            Some(h) if h == COMPONENT_HEADER => {}
            Some(h) if h == CORE_HEADER => {
                return Err(LoadError::CoreModule {
                    path: path.to_path_buf(),
                });
            }
            _ => {
                return Err(LoadError::NotWasm {
                    path: path.to_path_buf(),
                });
            }
        }
        let invalid = |e: wasmtime::Error| LoadError::Invalid {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        };
        let Some(cache_dir) = self.cache_dir else {
            return Ok((
                Component::new(self.engine, &bytes).map_err(invalid)?,
                digest,
            ));
        };
        let cached = cache_dir.join(format!("{}.cwasm", self.cache_key(&bytes)));
        if cached.exists() {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash (part of the key) into
            // the host's own cache directory.
            if let Ok(component) = unsafe { Component::deserialize_file(self.engine, &cached) } {
                return Ok((component, digest));
            }
        }
        let component = Component::new(self.engine, &bytes).map_err(invalid)?;
        if let Ok(serialized) = component.serialize() {
            // The cache is an optimisation: failing to write it is not an error.
            let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::create_dir_all(cache_dir).is_ok()
                && std::fs::write(&tmp, serialized).is_ok()
            {
                let _ = std::fs::rename(&tmp, &cached);
            }
        }
        Ok((component, digest))
    }

    fn cache_key(&self, bytes: &[u8]) -> String {
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let mut digest = Sha256::new();
        digest.update(bytes);
        digest.update(engine_hash.finish().to_le_bytes());
        hex::encode(&digest.finalize()[..20])
    }

    pub async fn load(
        &self,
        path: &Path,
        pinned: Option<ComponentDigest>,
    ) -> Result<Plugin, LoadError> {
        let (component, digest) = self.compile(path, pinned)?;
        let kind = self.world_of(path, &component)?;
        let link = |e: wasmtime::Error| LoadError::Link {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(link)?;
        let pre = match kind {
            PluginKind::Strategy => {
                PluginPre::Strategy(strategy::StrategyPre::new(instance_pre).map_err(link)?)
            }
            PluginKind::Collector => {
                PluginPre::Collector(collector::CollectorPre::new(instance_pre).map_err(link)?)
            }
        };
        let info = self.describe(path, &pre).await?;
        check_schema(path, &info, "config", &info.config_schema)?;
        check_schema(path, &info, "result", &info.result_schema)?;
        let result_fields =
            super::result_fields::marked_fields(&info.result_schema).map_err(|message| {
                LoadError::Schema {
                    path: path.to_path_buf(),
                    id: info.id.clone(),
                    which: "result",
                    message,
                }
            })?;
        Ok(Plugin {
            path: path.to_path_buf(),
            info,
            pre,
            initial_memory_bytes: initial_memory_bytes(&component),
            result_fields,
            digest,
            failed_migrations: Default::default(),
            config_validator: Default::default(),
        })
    }

    /// Finds which contract world the component exports and refuses
    /// incompatible major versions, in exports and in imports alike.
    fn world_of(&self, path: &Path, component: &Component) -> Result<PluginKind, LoadError> {
        let ty = component.component_type();
        let names: Vec<String> = ty
            .exports(self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let imports: Vec<String> = ty
            .imports(self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        for name in names.iter().chain(&imports) {
            if let Some(version) = contract_version(name) {
                let major = version
                    .split('.')
                    .next()
                    .and_then(|m| m.parse::<u64>().ok());
                if major != Some(CONTRACT_MAJOR) {
                    return Err(LoadError::IncompatibleVersion {
                        path: path.to_path_buf(),
                        found: format!("{CONTRACT_PACKAGE}@{version}"),
                    });
                }
            }
        }
        let exports = |iface: &str| {
            names
                .iter()
                .any(|n| n.starts_with(&format!("{CONTRACT_PACKAGE}/{iface}@")))
        };
        if exports("strategy-plugin") {
            Ok(PluginKind::Strategy)
        } else if exports("collector-plugin") {
            Ok(PluginKind::Collector)
        } else {
            Err(LoadError::WrongWorld {
                path: path.to_path_buf(),
                found: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            })
        }
    }

    async fn describe(&self, path: &Path, pre: &PluginPre) -> Result<PluginInfo, LoadError> {
        let fail = |e: wasmtime::Error| LoadError::Describe {
            path: path.to_path_buf(),
            message: super::text::bounded(format!("{e:#}"), super::text::MAX_MESSAGE_BYTES),
        };
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| fail(wasmtime::format_err!("runtime is shutting down")))?;
        let (scope, allocations) = super::describe_scope(self.call_timeout);
        let mut store = super::sandbox::new_store(
            self.engine,
            Sandbox::new("describe", &[], &scope),
            super::epoch_ticks(scope.limits.timeout_ms),
        );
        let describe = async move {
            match pre {
                PluginPre::Strategy(pre) => {
                    let bindings = pre.instantiate_async(&mut store).await?;
                    let info = bindings
                        .checkhost_plugin_strategy_plugin()
                        .call_describe(&mut store)
                        .await?;
                    Ok::<_, wasmtime::Error>(Described::from(info))
                }
                PluginPre::Collector(pre) => {
                    let bindings = pre.instantiate_async(&mut store).await?;
                    let info = bindings
                        .checkhost_plugin_collector_plugin()
                        .call_describe(&mut store)
                        .await?;
                    Ok(Described::from(info))
                }
            }
        };
        let timeout_ms = scope.limits.timeout_ms;
        let d = tokio::time::timeout(
            scope.limits.timeout(),
            super::host_memory::Charged::new(describe, allocations),
        )
        .await
        .map_err(|_| fail(wasmtime::format_err!("timed out after {timeout_ms} ms")))?
        .map_err(|e| fail(super::failure::explain(e, &scope, "describe")))?;
        let kind = match pre {
            PluginPre::Strategy(_) => PluginKind::Strategy,
            PluginPre::Collector(_) => PluginKind::Collector,
        };
        let id = d.id;
        let parse = |which: &'static str, text: &str| {
            serde_json::from_str::<Value>(text).map_err(|e| LoadError::Schema {
                path: path.to_path_buf(),
                id: id.clone(),
                which,
                message: format!("not JSON: {e}"),
            })
        };
        Ok(PluginInfo {
            kind,
            world: format!("{CONTRACT_PACKAGE}/{kind}"),
            contract_version: super::bindings::CONTRACT_VERSION.to_string(),
            config_schema: parse("config", &d.config_schema)?,
            result_schema: parse("result", &d.result_schema)?,
            id: id.clone(),
            display_name: d.display_name,
            description: d.description,
            config_version: d.config_version,
            strategies: d.strategies,
            allow_multiple: d.allow_multiple,
        })
    }
}

/// What `describe` returned, whichever world answered.
struct Described {
    id: String,
    display_name: String,
    description: String,
    config_schema: String,
    config_version: u32,
    result_schema: String,
    strategies: Vec<String>,
    allow_multiple: bool,
}

impl From<super::bindings::StrategyInfo> for Described {
    fn from(i: super::bindings::StrategyInfo) -> Self {
        Described {
            id: i.id,
            display_name: i.display_name,
            description: i.description,
            config_schema: i.config_schema,
            config_version: i.config_version,
            result_schema: i.result_schema,
            strategies: Vec::new(),
            allow_multiple: false,
        }
    }
}

impl From<super::bindings::CollectorInfo> for Described {
    fn from(i: super::bindings::CollectorInfo) -> Self {
        Described {
            id: i.id,
            display_name: i.display_name,
            description: i.description,
            config_schema: i.config_schema,
            config_version: i.config_version,
            result_schema: i.result_schema,
            strategies: i.strategies,
            allow_multiple: i.allow_multiple,
        }
    }
}

/// The largest initial linear memory among the component's core modules
/// (64 KiB wasm pages); components that wasmtime cannot size statically
/// count as one page.
fn initial_memory_bytes(component: &Component) -> u64 {
    let pages = component
        .resources_required()
        .and_then(|r| r.max_initial_memory_size)
        .unwrap_or(1)
        .max(1);
    pages.saturating_mul(super::WASM_PAGE_BYTES)
}

/// `checkhost:plugin/log@1.0.0` → `1.0.0`
fn contract_version(name: &str) -> Option<&str> {
    name.strip_prefix(CONTRACT_PACKAGE)
        .filter(|rest| rest.starts_with('/'))
        .and_then(|rest| rest.split_once('@'))
        .map(|(_, version)| version)
}

/// A field marked both `x-templatable` and `x-secret` would render a secret
/// reference as a template: refuse the plugin.
fn check_schema(
    path: &Path,
    info: &PluginInfo,
    which: &'static str,
    schema: &Value,
) -> Result<(), LoadError> {
    fn walk(node: &Value, pointer: &str) -> Option<String> {
        match node {
            Value::Object(map) => {
                let marked = |k: &str| map.get(k).and_then(Value::as_bool) == Some(true);
                if marked("x-templatable") && marked("x-secret") {
                    return Some(if pointer.is_empty() {
                        "/".into()
                    } else {
                        pointer.into()
                    });
                }
                map.iter().find_map(|(k, v)| {
                    walk(
                        v,
                        &format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1")),
                    )
                })
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, &format!("{pointer}/{i}"))),
            _ => None,
        }
    }
    match walk(schema, "") {
        None => Ok(()),
        Some(at) => Err(LoadError::Schema {
            path: path.to_path_buf(),
            id: info.id.clone(),
            which,
            message: format!("field at {at} is marked both x-templatable and x-secret"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_versions_are_read_from_interface_names() {
        assert_eq!(
            contract_version("checkhost:plugin/log@1.0.0"),
            Some("1.0.0")
        );
        assert_eq!(
            contract_version("checkhost:plugin/collector-plugin@2.1.0"),
            Some("2.1.0")
        );
        assert_eq!(contract_version("wasi:cli/stdout@0.2.6"), None);
        assert_eq!(contract_version("checkhost:pluginx/log@1.0.0"), None);
    }
}
