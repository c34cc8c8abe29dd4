//! The per-run budget every guest of a run shares.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits of one run. The defaults suit a probe; operators raise them per
/// check or globally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RunLimits {
    /// Wall-clock deadline for the whole run, blocking host calls included.
    pub timeout_ms: u64,
    /// Linear memory each guest instance may grow to.
    pub memory_mib: u64,
    /// Largest result JSON a collector may return.
    pub max_output_bytes: usize,
    /// Log lines and bytes (log import plus stdout/stderr) per guest.
    pub max_log_lines: usize,
    pub max_log_bytes: usize,
    /// Wasm tables and instances per store.
    pub max_tables: usize,
    pub max_instances: usize,
    /// Host memory the run's guests may make the host hold (wasi:http
    /// fields, requests and bodies, streams, resource tables), all guests
    /// of the run together.
    pub host_memory_mib: u64,
    /// Sockets and outgoing HTTP connections the run may hold open at once.
    pub max_sockets: usize,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            timeout_ms: 30_000,
            memory_mib: 64,
            max_output_bytes: 1024 * 1024,
            max_log_lines: 1_000,
            max_log_bytes: 64 * 1024,
            max_tables: 100,
            max_instances: 100,
            host_memory_mib: 64,
            max_sockets: 64,
        }
    }
}

impl RunLimits {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn memory_bytes(&self) -> usize {
        (self.memory_mib as usize).saturating_mul(1024 * 1024)
    }

    pub fn host_memory_bytes(&self) -> usize {
        (self.host_memory_mib as usize).saturating_mul(1024 * 1024)
    }
}

/// Formats a byte count the way limits are written: `1 MiB`, `64 KiB`.
pub fn human_bytes(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}
