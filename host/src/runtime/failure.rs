//! Why the host stopped a guest call, worded for an operator: the limit it
//! crossed, the trap it hit (with a panic's message and a backtrace), the
//! deadline it ran out of.

use serde::Serialize;
use wasmtime::{Trap, WasmBacktrace};

use super::journal::{LogLine, RunJournal, journal};
use super::limits::RunLimits;
use super::scope::RunScope;

/// Why the host stopped a run. Each variant reads as an operator message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "kebab-case")]
pub enum Failure {
    #[error("timeout after {0} ms")]
    Timeout(u64),
    #[error("cpu budget exceeded after {0} ms")]
    CpuBudget(u64),
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Trap(String),
    #[error("{0}")]
    OutputTooLarge(String),
    #[error("{0}")]
    Host(String),
}

/// Failure of one guest call, before it is turned into an outcome.
pub(crate) struct GuestError {
    pub plugin: String,
    pub error: wasmtime::Error,
}

/// A guest call's error as the message an operator needs, for calls
/// outside runs (describe, migrate).
pub(crate) fn explain(error: wasmtime::Error, scope: &RunScope, plugin: &str) -> wasmtime::Error {
    let guest = GuestError {
        plugin: plugin.to_string(),
        error,
    };
    wasmtime::Error::new(classify(guest, &journal(&scope.journal), &scope.limits))
}

/// Turns a guest error into the message an operator needs.
pub(crate) fn classify(guest: GuestError, journal: &RunJournal, limits: &RunLimits) -> Failure {
    if let Some(violation) = &journal.violation {
        return Failure::Limit(format!("{}: {violation}", guest.plugin));
    }
    if let Some(failure) = guest.error.downcast_ref::<Failure>() {
        return failure.clone();
    }
    let plugin = &guest.plugin;
    match guest.error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::CpuBudget(limits.timeout_ms),
        Some(trap) => {
            let what = match trap {
                Trap::StackOverflow => "stack overflow".to_string(),
                other => other.to_string(),
            };
            let mut reason = format!("guest {plugin} trapped: {what}");
            if let Some(panic) = panic_message(&journal.logs, plugin) {
                reason.push_str(&format!(" ({panic})"));
            }
            if let Some(backtrace) = guest.error.downcast_ref::<WasmBacktrace>() {
                for frame in backtrace.to_string().lines().take(12) {
                    reason.push('\n');
                    reason.push_str(frame);
                }
            }
            Failure::Trap(reason)
        }
        None => Failure::Trap(format!("guest {plugin} failed: {:#}", guest.error)),
    }
}

/// A Rust guest's panic prints `thread '…' panicked at file:line:col:` and
/// the message on the next line; both tell the operator more than the trap.
fn panic_message(logs: &[LogLine], plugin: &str) -> Option<String> {
    let lines: Vec<&str> = logs
        .iter()
        .filter(|l| l.plugin == plugin && l.level == "stdout")
        .map(|l| l.message.trim())
        .collect();
    let at = lines.iter().rposition(|l| l.contains("panicked at"))?;
    let location = lines[at];
    Some(match lines.get(at + 1) {
        Some(message) if !message.starts_with("note:") => format!("{location} {message}"),
        _ => location.to_string(),
    })
}
