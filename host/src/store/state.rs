//! State evaluation: thresholds over a slice's recent runs, worst-wins over
//! slices, and the classification of transitions.

use serde::{Deserialize, Serialize};

use crate::config::Thresholds;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Unknown,
    Healthy,
    Degraded,
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
        }
    }

    pub fn parse(text: &str) -> Status {
        match text {
            "healthy" => Status::Healthy,
            "degraded" => Status::Degraded,
            "unhealthy" => Status::Unhealthy,
            _ => Status::Unknown,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many recent runs `slice_status` needs to see: the thresholds'
/// window, and before a recovering streak the runs that judged it.
pub fn runs_needed(t: &Thresholds) -> u32 {
    let (window, healthy) = match *t {
        Thresholds::Consecutive {
            degraded,
            unhealthy,
            healthy,
        } => (degraded.max(unhealthy), healthy),
        Thresholds::Window { size, healthy, .. } => (size, healthy),
    };
    window + healthy.saturating_sub(1)
}

/// Status of one slice from its recent runs, newest first (`true` = failed).
/// A degraded or unhealthy slice stays so until `healthy` runs in a row
/// succeed: a shorter streak of successes keeps the status it ended.
pub fn slice_status(t: &Thresholds, newest_first: &[bool]) -> Status {
    let status = judged(t, newest_first);
    let healthy = match *t {
        Thresholds::Consecutive { healthy, .. } | Thresholds::Window { healthy, .. } => healthy,
    };
    let streak = newest_first.iter().take_while(|failed| !**failed).count();
    if streak > 0 && (streak as u32) < healthy {
        status.max(judged(t, &newest_first[streak..]))
    } else {
        status
    }
}

/// The thresholds alone, without recovery.
fn judged(t: &Thresholds, newest_first: &[bool]) -> Status {
    if newest_first.is_empty() {
        return Status::Unknown;
    }
    let (failures, degraded, unhealthy) = match *t {
        Thresholds::Consecutive {
            degraded,
            unhealthy,
            ..
        } => {
            let streak = newest_first.iter().take_while(|failed| **failed).count() as u32;
            (streak, degraded, unhealthy)
        }
        Thresholds::Window {
            size,
            degraded,
            unhealthy,
            ..
        } => {
            let count = newest_first
                .iter()
                .take(size as usize)
                .filter(|f| **f)
                .count() as u32;
            (count, degraded, unhealthy)
        }
    };
    if failures >= unhealthy {
        Status::Unhealthy
    } else if failures >= degraded {
        Status::Degraded
    } else {
        Status::Healthy
    }
}

/// Status of a slice from its stored outcomes (`1` failed, newest first).
pub fn outcomes_status(t: &Thresholds, outcomes: &str) -> Status {
    let failed: Vec<bool> = outcomes.chars().map(|c| c == '1').collect();
    slice_status(t, &failed)
}

/// Worst of the measured statuses; `Unknown` only when nothing was measured.
pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
    statuses.into_iter().max().unwrap_or(Status::Unknown)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TransitionKind {
    Escalation,
    DeEscalation,
    Recovery,
}

impl TransitionKind {
    pub fn classify(from: Status, to: Status) -> TransitionKind {
        if to == Status::Healthy {
            TransitionKind::Recovery
        } else if to > from {
            TransitionKind::Escalation
        } else {
            TransitionKind::DeEscalation
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Escalation => "escalation",
            TransitionKind::DeEscalation => "de-escalation",
            TransitionKind::Recovery => "recovery",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_counts_the_leading_streak() {
        let t = Thresholds::default();
        assert_eq!(slice_status(&t, &[true]), Status::Healthy);
        assert_eq!(slice_status(&t, &[true, true]), Status::Degraded);
        assert_eq!(slice_status(&t, &[true; 5]), Status::Unhealthy);
        assert_eq!(
            slice_status(&t, &[false, true, true, true, true, true]),
            Status::Healthy
        );
    }

    #[test]
    fn window_counts_failures_in_the_last_n() {
        let t = Thresholds::Window {
            size: 10,
            degraded: 3,
            unhealthy: 7,
            healthy: 1,
        };
        let mut runs = vec![true, false, true, false, true];
        assert_eq!(slice_status(&t, &runs), Status::Degraded);
        runs.extend([true, true, true, true]);
        assert_eq!(slice_status(&t, &runs), Status::Unhealthy);
        let old_failures: Vec<bool> = [false; 10].into_iter().chain([true; 10]).collect();
        assert_eq!(slice_status(&t, &old_failures), Status::Healthy);
    }

    #[test]
    fn recovery_needs_healthy_successes_in_a_row_in_both_modes() {
        let consecutive = Thresholds::Consecutive {
            degraded: 1,
            unhealthy: 2,
            healthy: 3,
        };
        // Newest first: two successes after two failures stay unhealthy.
        assert_eq!(
            slice_status(&consecutive, &[false, false, true, true]),
            Status::Unhealthy
        );
        assert_eq!(
            slice_status(&consecutive, &[false, false, false, true, true]),
            Status::Healthy
        );
        assert_eq!(slice_status(&consecutive, &[false, true]), Status::Degraded);
        assert_eq!(
            slice_status(&consecutive, &[false]),
            Status::Healthy,
            "never bad"
        );
        assert_eq!(runs_needed(&consecutive), 4);
        let window = Thresholds::Window {
            size: 4,
            degraded: 2,
            unhealthy: 3,
            healthy: 2,
        };
        // One success after a bad window holds; two in a row recover only
        // as far as the window allows.
        assert_eq!(
            slice_status(&window, &[false, true, true, true]),
            Status::Unhealthy
        );
        assert_eq!(
            slice_status(&window, &[false, false, true, true, true]),
            Status::Degraded
        );
        assert_eq!(
            slice_status(&window, &[false, false, false, false, true]),
            Status::Healthy
        );
    }

    #[test]
    fn worst_wins_and_transitions_classify() {
        assert_eq!(worst([Status::Healthy, Status::Degraded]), Status::Degraded);
        assert_eq!(worst([]), Status::Unknown);
        assert_eq!(
            TransitionKind::classify(Status::Healthy, Status::Unhealthy),
            TransitionKind::Escalation
        );
        assert_eq!(
            TransitionKind::classify(Status::Unhealthy, Status::Degraded),
            TransitionKind::DeEscalation
        );
        assert_eq!(
            TransitionKind::classify(Status::Degraded, Status::Healthy),
            TransitionKind::Recovery
        );
    }
}
