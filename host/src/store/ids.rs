//! Run ids made by the writer before the write:
//! `created_at << 20 | writer tag << 10 | sequence`. They sort by time,
//! carry the run's timestamp (no separate column or index), and stay the
//! same when a batch is retried, which makes the retry idempotent.

const TAG_BITS: u32 = 10;
const SEQ_BITS: u32 = 10;
const TIME_SHIFT: u32 = TAG_BITS + SEQ_BITS;

/// Hands out run ids for one writer; the tag (from the database's `writers`
/// table) keeps concurrent writers of one database apart.
pub struct RunIds {
    tag: i64,
    seq: i64,
}

impl RunIds {
    pub fn new(writer_row_id: i64) -> RunIds {
        RunIds {
            tag: writer_row_id.rem_euclid(1 << TAG_BITS),
            seq: 0,
        }
    }

    /// Ids collide only if one writer made more than 1,024 runs stamped
    /// with the same millisecond.
    pub fn next(&mut self, at_ms: i64) -> i64 {
        let id =
            (at_ms << TIME_SHIFT) | (self.tag << SEQ_BITS) | (self.seq & ((1 << SEQ_BITS) - 1));
        self.seq = self.seq.wrapping_add(1);
        id
    }
}

/// The first possible id at `at_ms`: runs before it are older.
pub fn first_id_at(at_ms: i64) -> i64 {
    at_ms << TIME_SHIFT
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
        assert_eq!(a1 >> TIME_SHIFT, 1_000);
    }
}
