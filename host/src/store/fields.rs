//! Aggregates of the result fields plugins mark (`x-aggregate`): per slice,
//! collector and field, in hourly and daily buckets beside latency. One
//! row shape serves every aggregate kind (count, sum, min, max, newest), and
//! each column merges on its own, so a bucket is upserted without reading
//! it first and writers on several nodes stay exact.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{QueryBuilder, Transaction};

/// A field's values within one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldBucket {
    pub samples: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// The newest value, measured at `last_at`.
    pub last: f64,
    pub last_at: i64,
}

impl FieldBucket {
    pub fn new(value: f64, at_ms: i64) -> FieldBucket {
        FieldBucket {
            samples: 1,
            sum: value,
            min: value,
            max: value,
            last: value,
            last_at: at_ms,
        }
    }

    pub fn merge(&mut self, other: &FieldBucket) {
        self.samples += other.samples;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        // On equal times the larger value wins, so the order in which
        // writers merge does not matter.
        if (other.last_at, other.last) > (self.last_at, self.last) {
            self.last = other.last;
            self.last_at = other.last_at;
        }
    }
}

/// Which bucket of which field: (slice id, bucket start, collector, field).
pub type FieldKey = (i64, i64, String, String);

/// A stored row, as selected by [`COLUMNS`].
pub type FieldRow = (i64, i64, String, String, i64, f64, f64, f64, f64, i64);

pub const COLUMNS: &str = "slice_id, bucket, collector, field, samples, value_sum, value_min, value_max, value_last, last_at";

pub fn from_row(row: FieldRow) -> (FieldKey, FieldBucket) {
    let (slice, bucket, collector, field, samples, sum, min, max, last, last_at) = row;
    (
        (slice, bucket, collector, field),
        FieldBucket {
            samples,
            sum,
            min,
            max,
            last,
            last_at,
        },
    )
}

/// Merges `rows` into `table` (`field_aggregates_hourly` or `_daily`):
/// each key at most once per call.
pub async fn upsert<DB>(
    tx: &mut Transaction<'static, DB>,
    table: &str,
    rows: &BTreeMap<FieldKey, FieldBucket>,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let rows: Vec<_> = rows.iter().collect();
    // Ten parameters a row: well inside both engines' limits.
    for chunk in rows.chunks(500) {
        let mut q = QueryBuilder::<DB>::new(format!("INSERT INTO {table} ({COLUMNS}) "));
        q.push_values(chunk, |mut row, ((slice, bucket, collector, field), b)| {
            row.push_bind(*slice)
                .push_bind(*bucket)
                .push_bind(collector.as_str())
                .push_bind(field.as_str())
                .push_bind(b.samples)
                .push_bind(b.sum)
                .push_bind(b.min)
                .push_bind(b.max)
                .push_bind(b.last)
                .push_bind(b.last_at);
        });
        // CASE rather than MIN/GREATEST: the same text on both engines.
        q.push(format!(
            " ON CONFLICT (slice_id, bucket, collector, field) DO UPDATE SET
                samples = {table}.samples + excluded.samples,
                value_sum = {table}.value_sum + excluded.value_sum,
                value_min = CASE WHEN excluded.value_min < {table}.value_min
                    THEN excluded.value_min ELSE {table}.value_min END,
                value_max = CASE WHEN excluded.value_max > {table}.value_max
                    THEN excluded.value_max ELSE {table}.value_max END,
                value_last = CASE WHEN excluded.last_at > {table}.last_at
                    OR (excluded.last_at = {table}.last_at AND excluded.value_last > {table}.value_last)
                    THEN excluded.value_last ELSE {table}.value_last END,
                last_at = CASE WHEN excluded.last_at > {table}.last_at
                    THEN excluded.last_at ELSE {table}.last_at END"
        ));
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// A marked field over one history bucket, every aggregate at once: which
/// of them a chart shows is the plugin's `x-aggregate`.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldPoint {
    /// Runs that measured the field.
    pub samples: i64,
    /// The mean; for a boolean, the share of runs where it was true.
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    /// The sum (a counter's total).
    pub sum: f64,
    /// The newest value.
    pub last: f64,
}

impl From<&FieldBucket> for FieldPoint {
    fn from(b: &FieldBucket) -> FieldPoint {
        FieldPoint {
            samples: b.samples,
            avg: b.sum / b.samples.max(1) as f64,
            min: b.min,
            max: b.max,
            sum: b.sum,
            last: b.last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_is_exact_and_order_free() {
        let values = [(3.0, 10), (7.0, 30), (5.0, 20), (9.0, 30)];
        let fold = |order: &[usize]| {
            let mut b: Option<FieldBucket> = None;
            for &i in order {
                let (v, at) = values[i];
                let one = FieldBucket::new(v, at);
                match b.as_mut() {
                    Some(b) => b.merge(&one),
                    None => b = Some(one),
                }
            }
            b.unwrap()
        };
        let forward = fold(&[0, 1, 2, 3]);
        assert_eq!(forward, fold(&[3, 2, 1, 0]));
        assert_eq!(forward, fold(&[2, 0, 3, 1]));
        assert_eq!(
            (forward.samples, forward.sum, forward.min, forward.max),
            (4, 24.0, 3.0, 9.0)
        );
        // Two values at the newest time: the larger is kept, whatever came first.
        assert_eq!((forward.last, forward.last_at), (9.0, 30));
        let point = FieldPoint::from(&forward);
        assert_eq!(point.avg, 6.0);
    }
}
