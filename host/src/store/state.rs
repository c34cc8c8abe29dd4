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

    /// A status by its name; `None` for anything else.
    pub fn parse_known(text: &str) -> Option<Status> {
        [
            Status::Healthy,
            Status::Degraded,
            Status::Unhealthy,
            Status::Unknown,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
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
/// window, and enough to count a recovering streak of successes.
pub fn runs_needed(t: &Thresholds) -> u32 {
    let (window, healthy) = match *t {
        Thresholds::Consecutive {
            degraded,
            unhealthy,
            healthy,
        } => (degraded.max(unhealthy), healthy),
        Thresholds::Window { size, healthy, .. } => (size, healthy),
    };
    window.max(healthy)
}

/// Status of one slice from its recent runs, newest first (`true` = failed),
/// and its status before them. With `healthy: N` above one, a degraded or
/// unhealthy slice stays at least that bad until N runs in a row succeed.
pub fn slice_status(t: &Thresholds, newest_first: &[bool], previous: Status) -> Status {
    let status = judged(t, newest_first);
    let healthy = match *t {
        Thresholds::Consecutive { healthy, .. } | Thresholds::Window { healthy, .. } => healthy,
    };
    let streak = newest_first.iter().take_while(|failed| !**failed).count() as u32;
    let was_bad = matches!(previous, Status::Degraded | Status::Unhealthy);
    // With the default of one, the thresholds alone decide, as they always did.
    if healthy > 1 && was_bad && streak < healthy {
        status.max(previous)
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

/// A slice's stored outcomes, newest first: a run that passed, one that
/// failed, and a `no-probe` run (no probe of its location reported).
pub const PASSED: char = '0';
pub const FAILED: char = '1';
pub const NO_PROBE: char = 'n';

/// Status of a slice from its stored outcomes (newest first) and its
/// stored status. While its newest is a `no-probe` run it is degraded,
/// whatever the thresholds say: nobody measured it, so it is neither
/// healthy nor unhealthy. Thresholds count only the runs measured.
pub fn outcomes_status(t: &Thresholds, outcomes: &str, previous: Status) -> Status {
    if outcomes.starts_with(NO_PROBE) {
        return Status::Degraded;
    }
    let failed: Vec<bool> = outcomes
        .chars()
        .filter(|c| *c != NO_PROBE)
        .map(|c| c == FAILED)
        .collect();
    slice_status(t, &failed, previous)
}

/// Where a transition stands in its slice's flapping detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Flap {
    /// This change made the slice flapping: its notice says so, once.
    Started,
    /// The slice is still flapping: this change's notices are held back.
    Held,
}

/// An assignment's flapping rule as stored (`{changes, windowMs}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlapRule {
    pub changes: u32,
    pub window_ms: i64,
}

impl FlapRule {
    /// Where a change at `at_ms` stands, given the times of the slice's
    /// earlier changes (any order, at least the last two windows): it
    /// starts flapping when its window holds `changes` changes and the
    /// previous change's window did not; it is held when both did.
    pub fn judge(&self, at_ms: i64, earlier: &[i64]) -> Option<Flap> {
        let limit = usize::try_from(self.changes).unwrap_or(usize::MAX);
        let within = |end: i64| {
            earlier
                .iter()
                .filter(|t| **t <= end && **t > end - self.window_ms)
                .count()
        };
        if within(at_ms) + 1 < limit {
            return None;
        }
        let previous = earlier.iter().copied().filter(|t| *t <= at_ms).max();
        match previous {
            Some(previous) if within(previous) >= limit => Some(Flap::Held),
            _ => Some(Flap::Started),
        }
    }
}

/// "2 of 3 checks": of the checks that count in an entity (enabled and
/// measured), how many are healthy, each check judged worst-wins over its
/// slices in the entity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckCounts {
    pub healthy_checks: u32,
    pub total_checks: u32,
}

impl CheckCounts {
    /// As stored: NULL in rows written before they were kept.
    pub fn stored(healthy: Option<i32>, total: Option<i32>) -> Option<CheckCounts> {
        Some(CheckCounts {
            healthy_checks: u32::try_from(healthy?).ok()?,
            total_checks: u32::try_from(total?).ok()?,
        })
    }

    /// From `(check, status)` of the counting, measured slices in scope.
    pub fn of<'a>(slices: impl IntoIterator<Item = (&'a str, Status)>) -> CheckCounts {
        let mut checks: std::collections::HashMap<&str, Status> = Default::default();
        for (check, status) in slices {
            if status == Status::Unknown {
                continue;
            }
            let worst = checks.entry(check).or_insert(status);
            *worst = (*worst).max(status);
        }
        CheckCounts {
            healthy_checks: checks.values().filter(|s| **s == Status::Healthy).count() as u32,
            total_checks: checks.len() as u32,
        }
    }
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
        assert_eq!(slice_status(&t, &[true], Status::Unknown), Status::Healthy);
        assert_eq!(
            slice_status(&t, &[true, true], Status::Unknown),
            Status::Degraded
        );
        assert_eq!(
            slice_status(&t, &[true; 5], Status::Unknown),
            Status::Unhealthy
        );
        assert_eq!(
            slice_status(&t, &[false, true, true, true, true, true], Status::Unknown),
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
        assert_eq!(slice_status(&t, &runs, Status::Unknown), Status::Degraded);
        runs.extend([true, true, true, true]);
        assert_eq!(slice_status(&t, &runs, Status::Unknown), Status::Unhealthy);
        let old_failures: Vec<bool> = [false; 10].into_iter().chain([true; 10]).collect();
        assert_eq!(
            slice_status(&t, &old_failures, Status::Unknown),
            Status::Healthy
        );
    }

    #[test]
    fn recovery_needs_healthy_successes_in_a_row_in_both_modes() {
        let consecutive = Thresholds::Consecutive {
            degraded: 1,
            unhealthy: 2,
            healthy: 3,
        };
        let bad = Status::Unhealthy;
        // Newest first: two successes keep an unhealthy slice unhealthy, and
        // so does a single failure after them; three in a row recover it.
        assert_eq!(slice_status(&consecutive, &[false, false, true], bad), bad);
        assert_eq!(slice_status(&consecutive, &[true, false, false], bad), bad);
        assert_eq!(
            slice_status(&consecutive, &[false, false, false], bad),
            Status::Healthy
        );
        assert_eq!(
            slice_status(&consecutive, &[false], Status::Healthy),
            Status::Healthy
        );
        assert_eq!(runs_needed(&consecutive), 3);
        let window = Thresholds::Window {
            size: 4,
            degraded: 2,
            unhealthy: 3,
            healthy: 2,
        };
        assert_eq!(slice_status(&window, &[false, true, true, true], bad), bad);
        // Two in a row lift the hold; the window still counts its failures.
        assert_eq!(
            slice_status(&window, &[false, false, true, true], bad),
            Status::Degraded
        );
        assert_eq!(
            slice_status(&window, &[false, false, false, false], bad),
            Status::Healthy
        );
    }

    #[test]
    fn flapping_starts_once_and_holds_while_the_rate_stays_up() {
        let rule = FlapRule {
            changes: 3,
            window_ms: 60,
        };
        assert_eq!(rule.judge(20, &[0, 10]), Some(Flap::Started));
        assert_eq!(rule.judge(30, &[0, 10, 20]), Some(Flap::Held));
        // A steady change every 25: each window holds three, but only the
        // first of them starts flapping.
        assert_eq!(rule.judge(50, &[0, 25]), Some(Flap::Started));
        assert_eq!(rule.judge(75, &[0, 25, 50]), Some(Flap::Held));
        assert_eq!(rule.judge(100, &[25, 50, 75]), Some(Flap::Held));
        // Calm: fewer than three in the window is ordinary again.
        assert_eq!(rule.judge(300, &[0, 10, 20, 30]), None);
    }

    #[test]
    fn check_counts_judge_each_check_worst_wins() {
        let counts = CheckCounts::of([
            ("web", Status::Healthy),
            ("web", Status::Degraded),
            ("api", Status::Healthy),
            ("api", Status::Healthy),
            ("db", Status::Unknown),
        ]);
        assert_eq!(
            counts,
            CheckCounts {
                healthy_checks: 1,
                total_checks: 2
            }
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
