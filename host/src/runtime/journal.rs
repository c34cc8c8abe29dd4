//! What every store of one run records into: logs, policy denials, the
//! limit a guest crossed, and what the run cost.

use std::sync::{Arc, Mutex};

use super::limits::human_bytes;
use super::policy::Denial;

/// Why the host stopped a guest; recorded so the outcome can say so
/// precisely instead of reporting the trap the guest saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    Memory { limit: usize },
    HostMemory { limit: usize },
    Sockets { limit: usize },
    LogLines { limit: usize },
    LogBytes { limit: usize },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Memory { limit } => {
                write!(f, "memory limit {} exceeded", human_bytes(*limit))
            }
            Violation::HostMemory { limit } => {
                write!(f, "host memory budget {} exceeded", human_bytes(*limit))
            }
            Violation::Sockets { limit } => {
                write!(f, "socket limit exceeded: more than {limit} open at once")
            }
            Violation::LogLines { limit } => {
                write!(f, "log limit exceeded: more than {limit} lines")
            }
            Violation::LogBytes { limit } => {
                write!(f, "log limit exceeded: more than {}", human_bytes(*limit))
            }
        }
    }
}

impl std::error::Error for Violation {}

/// One line a guest logged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub plugin: String,
    pub level: &'static str,
    pub message: String,
}

/// What every store of one run records into.
#[derive(Debug, Default)]
pub struct RunJournal {
    pub logs: Vec<LogLine>,
    /// The run's first refused connection: the one the outcome names. A
    /// guest retrying a denied address makes no list grow.
    pub denial: Option<Denial>,
    pub violation: Option<Violation>,
    /// The plugin whose call crossed the cap, when the host knew it.
    pub violator: Option<String>,
    /// The largest linear memory any guest of the run asked for.
    pub memory_peak_bytes: usize,
    /// Time spent instantiating the run's guests.
    pub instantiate: std::time::Duration,
    /// Epoch ticks the run's guests' code ran through (roughly its CPU
    /// time in ticks; wasmtime's cheap stand-in for fuel).
    pub epoch_ticks: u64,
    /// Phases and requests, for traced runs only.
    pub timeline: Option<super::timeline::Timeline>,
}

pub type SharedJournal = Arc<Mutex<RunJournal>>;

impl RunJournal {
    pub fn deny(&mut self, denial: Denial) {
        self.denial.get_or_insert(denial);
    }
}

pub fn journal(shared: &SharedJournal) -> std::sync::MutexGuard<'_, RunJournal> {
    // A poisoned journal only means another guest's host call panicked; the
    // records are still valid.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}
