//! A mergeable latency sketch for p95: logarithmic buckets with 2 % relative
//! accuracy (the DDSketch idea), stored as JSON in the aggregate row so
//! hourly rows can be merged without the raw runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

const GAMMA: f64 = 1.04;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    /// bucket index → count; index 0 also holds latencies ≤ 1 µs.
    buckets: BTreeMap<i32, u64>,
}

impl Sketch {
    fn index(ms: f64) -> i32 {
        if ms <= 0.001 {
            i32::MIN / 2
        } else {
            (ms.ln() / GAMMA.ln()).ceil() as i32
        }
    }

    fn value(index: i32) -> f64 {
        if index == i32::MIN / 2 {
            return 0.0;
        }
        // The midpoint of the bucket, in log space.
        2.0 * GAMMA.powi(index) / (1.0 + GAMMA)
    }

    pub fn add(&mut self, ms: f64) {
        *self.buckets.entry(Self::index(ms)).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Sketch) {
        for (i, n) in &other.buckets {
            *self.buckets.entry(*i).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Self::value(*i);
            }
        }
        0.0
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// A corrupt sketch reads as empty rather than failing the write path.
    pub fn from_json(text: &str) -> Sketch {
        serde_json::from_str(text).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_is_within_accuracy_and_merges() {
        let mut a = Sketch::default();
        let mut b = Sketch::default();
        for i in 1..=50 {
            a.add(i as f64);
        }
        for i in 51..=100 {
            b.add(i as f64);
        }
        a.merge(&b);
        assert_eq!(a.count(), 100);
        let p95 = a.quantile(0.95);
        assert!((p95 - 95.0).abs() / 95.0 < 0.03, "{p95}");
        assert_eq!(Sketch::from_json(&a.to_json()), a);
    }
}
