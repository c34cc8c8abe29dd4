//! Aggregates of the result fields plugins mark (`x-aggregate`), kept in
//! the `fields` column of the hourly and daily rows beside latency: the row
//! the writer already reads and rewrites under the entity locks, so they
//! cost no extra rows and stay exact across writers. One shape serves every
//! aggregate kind (count, sum, min, max, newest).

use std::collections::BTreeMap;

use serde::Serialize;

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

/// The marked fields of one bucket, by `<collector>.<field>`.
pub type FieldMap = BTreeMap<String, FieldBucket>;

/// Folds `other` into `map`.
pub fn merge(map: &mut FieldMap, other: &FieldMap) {
    for (key, bucket) in other {
        map.entry(key.clone())
            .and_modify(|b| b.merge(bucket))
            .or_insert(*bucket);
    }
}

/// The `fields` column: `{"request.statusCode": [samples, sum, min, max,
/// last, last_at], …}`, compact because every batch rewrites it.
pub fn to_json(map: &FieldMap) -> String {
    if map.is_empty() {
        return "{}".into();
    }
    let rows: BTreeMap<&str, Row> = map
        .iter()
        .map(|(key, b)| {
            (
                key.as_str(),
                (b.samples, b.sum, b.min, b.max, b.last, b.last_at),
            )
        })
        .collect();
    // A map of numbers always serialises.
    serde_json::to_string(&rows).unwrap_or_else(|_| "{}".into())
}

/// One entry of the column, as it is written.
type Row = (i64, f64, f64, f64, f64, i64);

fn bucket((samples, sum, min, max, last, last_at): Row) -> FieldBucket {
    FieldBucket {
        samples,
        sum,
        min,
        max,
        last,
        last_at,
    }
}

/// Reads the `fields` column; an entry that is not six numbers is dropped
/// rather than merged, so one bad row cannot spoil the others.
pub fn from_json(text: &str) -> FieldMap {
    if text == "{}" {
        return FieldMap::new();
    }
    // Typed first: every batch reads the column back.
    if let Ok(rows) = serde_json::from_str::<BTreeMap<String, Row>>(text) {
        return rows
            .into_iter()
            .map(|(key, row)| (key, bucket(row)))
            .collect();
    }
    let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(text)
    else {
        return FieldMap::new();
    };
    object
        .into_iter()
        .filter_map(|(key, row)| {
            let row = row.as_array()?;
            let number = |i: usize| row.get(i).and_then(serde_json::Value::as_f64);
            let bucket = FieldBucket {
                samples: row.first()?.as_i64()?,
                sum: number(1)?,
                min: number(2)?,
                max: number(3)?,
                last: number(4)?,
                last_at: row.get(5)?.as_i64()?,
            };
            Some((key, bucket))
        })
        .collect()
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

        let map = FieldMap::from([("request.statusCode".to_string(), forward)]);
        assert_eq!(from_json(&to_json(&map)), map);
        let mut broken = from_json(r#"{"a.b": [1, 2, 3, 4, 5, 6], "c.d": [1, "x"], "e.f": 7}"#);
        assert_eq!(broken.len(), 1, "the bad entries go, the good one stays");
        merge(&mut broken, &map);
        assert_eq!(broken.len(), 2);
        assert!(from_json("not json").is_empty());
    }
}
