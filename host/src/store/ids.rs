//! Run ids made by the writer before the write:
//! `created_at << 20 | writer tag << 10 | sequence`. They sort by time,
//! carry the run's timestamp (no separate column or index), and stay the
//! same when a batch is retried, which makes the retry idempotent. A run
//! stamped more than two minutes behind the newest one this writer has seen
//! (back-filled data, say) could reuse an id; its batch then fails loudly.
//!
//! A run stamped a little behind the newest (it waited for the queue) takes
//! the newest stamp instead, so one writer's ids rise in commit order and the
//! event stream can resume from the last id a client saw.

use std::collections::BTreeMap;

const TAG_BITS: u32 = 10;
const SEQ_BITS: u32 = 10;
const TIME_SHIFT: u32 = TAG_BITS + SEQ_BITS;
const PER_MS: i64 = 1 << SEQ_BITS;
/// How far behind the newest stamp a run may be and still get a sequence
/// number that no earlier run of its millisecond has.
const WINDOW_MS: i64 = 120_000;
/// How far behind the newest stamp a run is moved up to it; older stamps
/// are back-filled data and keep their time.
const CLAMP_MS: i64 = 60_000;

/// Hands out run ids for one writer; the tag (from the database's `writers`
/// table) keeps concurrent writers of one database apart, and a sequence per
/// millisecond keeps this writer's runs apart.
pub struct RunIds {
    tag: i64,
    /// Next sequence number of each recent millisecond.
    next_seq: BTreeMap<i64, i64>,
    /// The newest millisecond handed out.
    newest: i64,
}

impl RunIds {
    pub fn new(writer_row_id: i64) -> RunIds {
        RunIds {
            tag: writer_row_id.rem_euclid(1 << TAG_BITS),
            next_seq: BTreeMap::new(),
            newest: i64::MIN,
        }
    }

    /// A millisecond that already holds 1,024 runs lends its ids from the
    /// next one, so ids stay unique and in time order.
    pub fn next(&mut self, at_ms: i64) -> i64 {
        let mut ms = if at_ms < self.newest && self.newest - at_ms <= CLAMP_MS {
            self.newest
        } else {
            at_ms
        };
        loop {
            let seq = self.next_seq.entry(ms).or_insert(0);
            if *seq < PER_MS {
                let id = (ms << TIME_SHIFT) | (self.tag << SEQ_BITS) | *seq;
                *seq += 1;
                self.newest = self.newest.max(ms);
                self.forget_before(ms - WINDOW_MS);
                return id;
            }
            ms += 1;
        }
    }

    fn forget_before(&mut self, ms: i64) {
        while let Some(entry) = self.next_seq.first_entry() {
            if *entry.key() >= ms {
                break;
            }
            entry.remove();
        }
    }
}

/// The timestamp a run id carries.
pub fn created_at(id: i64) -> i64 {
    id >> TIME_SHIFT
}

/// The first possible id at `at_ms`: runs before it are older.
pub fn first_id_at(at_ms: i64) -> i64 {
    // Times beyond what an id can carry (a query's far-off bound) saturate.
    at_ms.clamp(i64::MIN >> TIME_SHIFT, i64::MAX >> TIME_SHIFT) << TIME_SHIFT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_keep_writers_apart() {
        let mut a = RunIds::new(1);
        let mut b = RunIds::new(2);
        let (a1, b1, a2) = (a.next(1_000), b.next(1_000), a.next(1_001));
        assert!(a1 != b1 && a1 < a2 && b1 < a2);
        assert!(first_id_at(1_000) <= a1 && a1 < first_id_at(1_001));
        assert!(first_id_at(i64::MAX) > a1 && first_id_at(i64::MIN) < 0);
        assert_eq!(a1 >> TIME_SHIFT, 1_000);
    }

    #[test]
    fn out_of_order_stamps_never_collide_and_a_full_millisecond_lends() {
        let mut ids = RunIds::new(7);
        let mut seen = std::collections::HashSet::new();
        for round in 0..3 {
            for ms in [5, 3, 5, 4, 3] {
                for _ in 0..700 {
                    assert!(seen.insert(ids.next(ms * 10 + round)), "duplicate id");
                }
            }
        }
        let last = ids.next(1);
        assert!(last >> TIME_SHIFT >= 1, "{last}");
    }

    #[test]
    fn a_slightly_late_stamp_still_gets_a_higher_id_and_back_fill_keeps_its_time() {
        let mut ids = RunIds::new(3);
        let newest = ids.next(100_000);
        let late = ids.next(99_990);
        assert!(late > newest, "ids rise in the order runs are written");
        assert_eq!(created_at(late), 100_000);
        let back_filled = ids.next(100_000 - CLAMP_MS - 1);
        assert_eq!(created_at(back_filled), 100_000 - CLAMP_MS - 1);
    }
}
