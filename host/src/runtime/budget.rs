//! The host resources one run may make the host hold, all its guests
//! together: host memory (see `host_memory`) and open sockets plus outgoing
//! HTTP connections. Going over a cap records a violation that fails the
//! run, even when the guest catches the refused call and returns a result,
//! and every later host call of the run traps.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::host_memory::HostMemoryMeter;
use super::journal::{SharedJournal, Violation, journal};
use super::limits::RunLimits;

pub struct RunBudget {
    journal: SharedJournal,
    tripped: AtomicBool,
    host_memory: Option<HostMemoryMeter>,
    host_memory_limit: usize,
    host_memory_peak: AtomicUsize,
    max_sockets: usize,
    /// Live sockets in each guest's resource table, as counted when that
    /// guest last created one (a guest that closed some since is counted
    /// high until its next creation, never low).
    guest_sockets: Mutex<Vec<usize>>,
    http_connections: AtomicUsize,
}

impl RunBudget {
    pub fn new(
        limits: &RunLimits,
        journal: SharedJournal,
        host_memory: Option<HostMemoryMeter>,
    ) -> Arc<RunBudget> {
        Arc::new(RunBudget {
            journal,
            tripped: AtomicBool::new(false),
            host_memory,
            host_memory_limit: limits.host_memory_bytes(),
            host_memory_peak: AtomicUsize::new(0),
            max_sockets: limits.max_sockets,
            guest_sockets: Mutex::new(Vec::new()),
            http_connections: AtomicUsize::new(0),
        })
    }

    /// Records the run's first violation, and the plugin whose call crossed
    /// the cap when known; the run fails with it.
    pub fn trip(&self, violation: Violation, plugin: Option<&str>) -> Violation {
        let mut record = journal(&self.journal);
        if record.violation.is_none() {
            record.violator = plugin.map(str::to_string);
        }
        let first = record.violation.get_or_insert(violation).clone();
        self.tripped.store(true, Ordering::Release);
        first
    }

    /// Called on every entry to and exit from a host call: traps the guest
    /// once any cap of the run has been crossed.
    pub fn check(&self, plugin: &str) -> Result<(), Violation> {
        self.check_as(Some(plugin))
    }

    /// The check once the run's guests are done: work they handed to tasks
    /// of their own may have crossed the budget after the last host call.
    pub fn check_after(&self) -> Result<(), Violation> {
        self.check_as(None)
    }

    /// What the host allocates for this run's own tasks is charged here.
    pub fn meter(&self) -> Option<HostMemoryMeter> {
        self.host_memory
    }

    fn check_as(&self, plugin: Option<&str>) -> Result<(), Violation> {
        if let Some(meter) = &self.host_memory {
            let live = meter.live_bytes();
            self.host_memory_peak.fetch_max(live, Ordering::Relaxed);
            if live > self.host_memory_limit {
                let limit = self.host_memory_limit;
                return Err(self.trip(Violation::HostMemory { limit }, plugin));
            }
        }
        if self.tripped.load(Ordering::Acquire) {
            let record = journal(&self.journal);
            if let Some(violation) = &record.violation {
                return Err(violation.clone());
            }
        }
        Ok(())
    }

    /// The most host memory the run held at a host-call boundary.
    pub fn host_memory_peak(&self) -> usize {
        self.host_memory_peak.load(Ordering::Relaxed)
    }

    /// A number for a new guest of this run in the socket ledger.
    pub fn register_guest(&self) -> usize {
        let mut guests = self.guest_sockets.lock().unwrap_or_else(|e| e.into_inner());
        guests.push(0);
        guests.len() - 1
    }

    /// Whether guest `guest` may hold `held` sockets, the one it asks for
    /// included. A refusal trips the run.
    pub fn admit_socket(&self, guest: usize, held: usize, plugin: &str) -> bool {
        let total = {
            let mut guests = self.guest_sockets.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = guests.get_mut(guest) {
                *count = held;
            }
            guests.iter().sum::<usize>() + self.http_connections.load(Ordering::Relaxed)
        };
        self.admit(total, plugin)
    }

    /// Opens an outgoing HTTP connection under the cap; the guard closes it.
    pub fn open_http(self: &Arc<Self>, plugin: &str) -> Option<HttpConnection> {
        let open = self.http_connections.fetch_add(1, Ordering::AcqRel);
        let guests: usize = self
            .guest_sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .sum();
        let connection = HttpConnection(self.clone());
        self.admit(open + 1 + guests, plugin).then_some(connection)
    }

    /// Whether `open` sockets, the new one included, fit under the cap.
    fn admit(&self, open: usize, plugin: &str) -> bool {
        if open <= self.max_sockets {
            return true;
        }
        let limit = self.max_sockets;
        self.trip(Violation::Sockets { limit }, Some(plugin));
        false
    }
}

/// One outgoing HTTP connection counted against its run's socket cap.
pub struct HttpConnection(Arc<RunBudget>);

impl Drop for HttpConnection {
    fn drop(&mut self) {
        self.0.http_connections.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_sockets: usize) -> Arc<RunBudget> {
        let limits = RunLimits {
            max_sockets,
            ..RunLimits::default()
        };
        RunBudget::new(&limits, Default::default(), None)
    }

    #[test]
    fn sockets_and_http_connections_share_one_cap() {
        let run = budget(3);
        let guest = run.register_guest();
        assert!(run.admit_socket(guest, 1, "p"));
        assert!(run.admit_socket(guest, 2, "p"));
        let http = run.open_http("p").expect("the third is within the cap");
        assert!(run.check("p").is_ok());
        assert!(!run.admit_socket(guest, 3, "p"), "a fourth is over");
        assert_eq!(
            run.check("p").unwrap_err().to_string(),
            "socket limit exceeded: more than 3 open at once"
        );
        drop(http);
    }

    #[test]
    fn closed_connections_make_room() {
        let run = budget(1);
        drop(run.open_http("p").expect("one fits"));
        assert!(run.open_http("p").is_some(), "the first was closed");
        assert!(run.check("p").is_ok());
    }
}
