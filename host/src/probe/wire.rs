//! What a probe and the server say to each other over HTTP, as JSON: the
//! work of a location (checks prepared and rendered, plugins named by
//! digest), heartbeats, and batches of runs.

use serde::{Deserialize, Serialize};

use crate::runtime::bindings::{CheckInfo, EnvironmentInfo, RunContext, SystemInfo};
use crate::runtime::digest::ComponentDigest;
use crate::runtime::{CollectorOutcome, PolicySpec, RunLimits};

/// Where the probe endpoints live under the server's address.
pub const WORK_PATH: &str = "/api/v1/probe/work";
pub const HEARTBEAT_PATH: &str = "/api/v1/probe/heartbeat";
pub const RUNS_PATH: &str = "/api/v1/probe/runs";
pub const COMPONENTS_PATH: &str = "/api/v1/probe/components";

/// The most runs one batch may carry; the server refuses larger ones.
pub const MAX_BATCH_RUNS: usize = 500;
/// The largest batch body the server reads.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// One slice a probe runs: `(system, check, environment)` at its location.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SliceRef {
    pub system: String,
    pub check: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl std::fmt::Display for SliceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.system,
            self.check,
            self.environment.as_deref().unwrap_or("-")
        )
    }
}

/// A plugin of a work item, fetched from the server by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginRef {
    pub id: String,
    pub digest: ComponentDigest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectorWork {
    pub plugin: PluginRef,
    /// Migrated and rendered, secrets resolved.
    pub config: String,
    /// Its `secretEnv`, resolved.
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

/// What the guests are told about the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextWire {
    pub check_id: String,
    pub check_name: String,
    pub interval_seconds: u32,
    pub system_id: String,
    pub system_name: String,
    #[serde(default)]
    pub system_metadata: Vec<(String, String)>,
    #[serde(default)]
    pub environment: Option<EnvironmentWire>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentWire {
    pub id: String,
    pub name: String,
    pub fields_json: String,
}

impl From<&RunContext> for ContextWire {
    fn from(c: &RunContext) -> Self {
        ContextWire {
            check_id: c.check.id.clone(),
            check_name: c.check.name.clone(),
            interval_seconds: c.check.interval_seconds,
            system_id: c.system.id.clone(),
            system_name: c.system.name.clone(),
            system_metadata: c.system.metadata.clone(),
            environment: c.environment.as_ref().map(|e| EnvironmentWire {
                id: e.id.clone(),
                name: e.name.clone(),
                fields_json: e.fields_json.clone(),
            }),
        }
    }
}

impl From<&ContextWire> for RunContext {
    fn from(c: &ContextWire) -> Self {
        RunContext {
            check: CheckInfo {
                id: c.check_id.clone(),
                name: c.check_name.clone(),
                interval_seconds: c.interval_seconds,
            },
            system: SystemInfo {
                id: c.system_id.clone(),
                name: c.system_name.clone(),
                metadata: c.system_metadata.clone(),
            },
            environment: c.environment.as_ref().map(|e| EnvironmentInfo {
                id: e.id.clone(),
                name: e.name.clone(),
                fields_json: e.fields_json.clone(),
            }),
        }
    }
}

/// One slice of the location, run on its interval.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkItem {
    pub slice: SliceRef,
    pub interval_ms: i64,
    #[serde(flatten)]
    pub task: Task,
}

/// What a probe does each interval for a slice.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "camelCase")]
pub enum Task {
    /// Run it in the sandbox.
    Run(Box<RunWork>),
    /// Report a failed run: the server cannot prepare it (a plugin missing,
    /// a secret unresolved, a template that does not render), and a slice
    /// that cannot run fails where it runs rather than going stale.
    Fail { error: String },
}

/// A slice ready to run in the probe's sandbox as the server would.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunWork {
    pub strategy: PluginRef,
    pub strategy_config: String,
    pub collectors: Vec<CollectorWork>,
    pub context: ContextWire,
    pub limits: RunLimits,
    pub network: PolicySpec,
    /// Secret values the run must mask out of what it returns.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Collectors that fail without running (their `secretEnv` did not
    /// resolve), by their place among the check's collectors: the probe
    /// reports them in that place, and their siblings still run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_collectors: Vec<(usize, CollectorOutcome)>,
    /// The check's `propagateTrace`: the probe's traced runs send a
    /// `traceparent` with their requests.
    #[serde(default)]
    pub propagate_trace: bool,
}

/// `GET /api/v1/probe/work`: everything the probe's location runs now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Work {
    /// Changes whenever the work does: the heartbeat reply carries it.
    pub version: String,
    pub location: String,
    pub probe: String,
    pub heartbeat_ms: i64,
    pub items: Vec<WorkItem>,
}

/// `POST /api/v1/probe/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    pub version: String,
    /// The probe's clock when it sent this (Unix ms).
    pub clock_ms: i64,
    /// Runs waiting in its spool, and runs it dropped for room.
    pub spool_depth: i64,
    pub spool_dropped: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatReply {
    /// The current work's version: a probe holding another refetches.
    pub work_version: String,
    pub server_ms: i64,
    /// How far the probe's clock is from the server's (probe − server).
    pub clock_skew_ms: i64,
}

/// One finished run, as measured by the probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRun {
    /// Rises with every run the probe makes: with the probe's id it makes
    /// a retried batch idempotent.
    pub seq: i64,
    pub slice: SliceRef,
    /// When the run started, by the probe's clock (Unix ms).
    pub at_ms: i64,
    pub latency_ms: f64,
    /// The run's own failure (deadline, limit, connect error), if any.
    #[serde(default)]
    pub error: Option<String>,
    pub collectors: Vec<CollectorOutcome>,
}

/// `POST /api/v1/probe/runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    pub runs: Vec<ProbeRun>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchReply {
    /// Runs stored now.
    pub stored: usize,
    /// Runs stored before (a retried batch): skipped.
    pub duplicates: usize,
    /// Runs refused (not the probe's slice, misdated, not fitting their
    /// check): dropped, the first few said why.
    #[serde(default)]
    pub refused: usize,
    #[serde(default)]
    pub refusals: Vec<String>,
}

/// A probe token as the operator hands it over: `chp_<probe id>_<secret>`.
/// The server keeps the SHA-256 of the secret only.
#[derive(Clone, PartialEq, Eq)]
pub struct ProbeToken {
    pub probe: String,
    pub secret: String,
}

impl ProbeToken {
    pub fn parse(text: &str) -> Option<ProbeToken> {
        let rest = text.trim().strip_prefix("chp_")?;
        let (probe, secret) = rest.split_once('_')?;
        let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
        (ok(probe) && ok(secret)).then(|| ProbeToken {
            probe: probe.to_string(),
            secret: secret.to_string(),
        })
    }

    /// A new token with random id and secret, from the system's CSPRNG.
    pub fn generate() -> Result<ProbeToken, getrandom::Error> {
        let mut id = [0u8; 6];
        let mut secret = [0u8; 24];
        getrandom::fill(&mut id)?;
        getrandom::fill(&mut secret)?;
        Ok(ProbeToken {
            probe: format!("p{}", hex::encode(id)),
            secret: hex::encode(secret),
        })
    }

    pub fn secret_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }
}

/// Names the probe, never the secret.
impl std::fmt::Debug for ProbeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProbeToken({}, secret hidden)", self.probe)
    }
}

impl std::fmt::Display for ProbeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "chp_{}_{}", self.probe, self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_other_forms() {
        let token = ProbeToken::generate().unwrap();
        assert_eq!(ProbeToken::parse(&token.to_string()), Some(token.clone()));
        assert_eq!(token.secret_hash().len(), 64);
        for bad in [
            "",
            "chp_",
            "chp_abc",
            "chp__x",
            "xyz_a_b",
            "chp_a_b c",
            "chp_a-b_c",
        ] {
            assert_eq!(ProbeToken::parse(bad), None, "{bad}");
        }
    }
}
