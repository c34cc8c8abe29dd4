//! The part of a run every guest store shares: limits, network policy,
//! journal, budget and deadline.

use std::sync::Arc;
use std::time::Instant;

use super::budget::RunBudget;
use super::host_memory::HostMemoryMeter;
use super::journal::SharedJournal;
use super::limits::RunLimits;
use super::policy::NetworkPolicy;
use super::timeline::{PhaseKind, Timeline, TraceParent};

/// Everything a store needs that is the same for all guests of one run.
#[derive(Clone)]
pub struct RunScope {
    pub limits: RunLimits,
    pub policy: Arc<NetworkPolicy>,
    pub journal: SharedJournal,
    pub budget: Arc<RunBudget>,
    pub deadline: Instant,
    /// The run's trace, when it is traced.
    pub trace: Option<TraceParent>,
}

impl RunScope {
    /// A scope with a fresh journal; `host_memory` charges it to a run's
    /// allocation group, `None` leaves host memory uncounted.
    pub fn new(
        limits: RunLimits,
        policy: Arc<NetworkPolicy>,
        host_memory: Option<HostMemoryMeter>,
        deadline: Instant,
    ) -> RunScope {
        let journal = SharedJournal::default();
        RunScope {
            budget: RunBudget::new(&limits, journal.clone(), host_memory),
            limits,
            policy,
            journal,
            deadline,
            trace: None,
        }
    }

    /// The scope of a traced run, admitted at `admitted`: its guests record
    /// their phases and requests into the journal's timeline.
    pub fn traced(mut self, trace: Option<TraceParent>, admitted: Instant) -> RunScope {
        if trace.is_some() {
            super::journal::journal(&self.journal).timeline = Some(Timeline {
                admitted: Some(admitted),
                ..Timeline::default()
            });
        }
        self.trace = trace;
        self
    }

    /// Records that `plugin` (the collector at `place`, or the strategy)
    /// spent `start..now` in phase `kind`, when the run is traced.
    pub fn phase(&self, kind: PhaseKind, plugin: &str, place: Option<usize>, start: Instant) {
        if self.trace.is_some()
            && let Some(timeline) = super::journal::journal(&self.journal).timeline.as_mut()
        {
            timeline.phase(kind, plugin, place, start);
        }
    }
}
