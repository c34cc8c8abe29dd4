//! The result fields a plugin marks for aggregation and charts: on its
//! result schema's top-level properties, `x-aggregate` (`average`,
//! `min-max`, `counter`, `rate`, `last`), `x-chart` (`line`, `bar`,
//! `gauge`, `boolean`, `text`) and `x-unit`. Checked when the plugin loads,
//! so a bad mark names the plugin and the field instead of corrupting
//! stored buckets later. Rust plugins set them with schemars:
//! `#[schemars(extend("x-aggregate" = "average", "x-unit" = "ms"))]`.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Aggregate {
    /// The mean of the bucket's values.
    Average,
    /// The mean, the smallest and the largest.
    MinMax,
    /// The sum of the bucket's values.
    Counter,
    /// The share of runs where the value is true (or non-zero).
    Rate,
    /// The bucket's newest value.
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Chart {
    Line,
    Bar,
    Gauge,
    Boolean,
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    Number,
    Boolean,
}

/// One marked field of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultField {
    pub name: String,
    pub kind: FieldKind,
    pub aggregate: Aggregate,
    pub chart: Chart,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

const MARKS: [&str; 3] = ["x-aggregate", "x-chart", "x-unit"];

/// The largest magnitude a marked number may have: a quadrillion, so a
/// bucket's sum of them stays finite and exact enough to chart.
pub const MAX_MAGNITUDE: f64 = 1e15;

/// The marked fields of a result schema, by name; an error names the field
/// and what is wrong with its marks.
pub fn marked_fields(schema: &Value) -> Result<Vec<ResultField>, String> {
    let mut fields = Vec::new();
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, field) in properties.into_iter().flatten() {
        if let Some(nested) = nested_mark(field, name) {
            return Err(format!(
                "`{nested}` is marked for aggregation, but only top-level result fields can be"
            ));
        }
        if !MARKS.iter().any(|m| field.get(*m).is_some()) {
            continue;
        }
        let kind = kind_of(field).ok_or_else(|| {
            format!(
                "`{name}` has x-aggregate/x-chart marks, but it is neither a number nor a boolean"
            )
        })?;
        let text = |mark: &str| -> Result<Option<&str>, String> {
            match field.get(mark) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(other) => Err(format!("`{name}`: {mark} must be a string, not {other}")),
            }
        };
        let aggregate = match text("x-aggregate")? {
            None if kind == FieldKind::Boolean => Aggregate::Rate,
            None => Aggregate::Average,
            Some("average") => Aggregate::Average,
            Some("min-max") => Aggregate::MinMax,
            Some("counter") => Aggregate::Counter,
            Some("rate") => Aggregate::Rate,
            Some("last") => Aggregate::Last,
            Some(other) => {
                return Err(format!(
                    "`{name}`: x-aggregate `{other}` is not one of average, min-max, counter, rate, last"
                ));
            }
        };
        if kind == FieldKind::Boolean && !matches!(aggregate, Aggregate::Rate | Aggregate::Last) {
            return Err(format!(
                "`{name}` is a boolean: its x-aggregate must be rate or last"
            ));
        }
        let chart = match text("x-chart")? {
            None if kind == FieldKind::Boolean => Chart::Boolean,
            None => Chart::Line,
            Some("line") => Chart::Line,
            Some("bar") => Chart::Bar,
            Some("gauge") => Chart::Gauge,
            Some("boolean") => Chart::Boolean,
            Some("text") => Chart::Text,
            Some(other) => {
                return Err(format!(
                    "`{name}`: x-chart `{other}` is not one of line, bar, gauge, boolean, text"
                ));
            }
        };
        fields.push(ResultField {
            name: name.clone(),
            kind,
            aggregate,
            chart,
            unit: text("x-unit")?.map(str::to_string),
        });
    }
    Ok(fields)
}

/// What a result holds for a marked field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// A value to merge: a number, or 1 and 0 for a boolean.
    Value(f64),
    /// Absent or null: the collector did not measure it this time.
    Missing,
    /// A value of another type than the schema says: never merged, so a
    /// guest that breaks its own schema cannot corrupt stored buckets.
    Mismatch,
}

impl ResultField {
    /// The field's value in a collector's result.
    /// A number `rate` counts as 1 when non-zero. A magnitude beyond
    /// [`MAX_MAGNITUDE`] is a mismatch: sums of such values would overflow
    /// the stored bucket.
    pub fn sample(&self, result: &Value) -> Sample {
        let flag = |on: bool| Sample::Value(f64::from(u8::from(on)));
        match (self.kind, result.get(&self.name)) {
            (_, None | Some(Value::Null)) => Sample::Missing,
            (FieldKind::Number, Some(Value::Number(n))) => match n.as_f64() {
                Some(v) if v.abs() > MAX_MAGNITUDE => Sample::Mismatch,
                Some(v) if self.aggregate == Aggregate::Rate => flag(v != 0.0),
                Some(v) => Sample::Value(v),
                None => Sample::Mismatch,
            },
            (FieldKind::Boolean, Some(Value::Bool(b))) => flag(*b),
            _ => Sample::Mismatch,
        }
    }
}

/// `number`/`integer` or `boolean`, alone or beside `null`.
fn kind_of(field: &Value) -> Option<FieldKind> {
    let kind = |t: &str| match t {
        "number" | "integer" => Some(FieldKind::Number),
        "boolean" => Some(FieldKind::Boolean),
        _ => None,
    };
    match field.get("type")? {
        Value::String(t) => kind(t),
        Value::Array(types) => {
            let named: Vec<&str> = types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            match named.as_slice() {
                [one] => kind(one),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The dotted path of a mark below `field`, if any.
fn nested_mark(field: &Value, at: &str) -> Option<String> {
    let properties = field.get("properties").and_then(Value::as_object)?;
    properties.iter().find_map(|(name, inner)| {
        let path = format!("{at}.{name}");
        if MARKS.iter().any(|m| inner.get(*m).is_some()) {
            Some(path)
        } else {
            nested_mark(inner, &path)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn marks_are_read_with_defaults_for_their_kind() {
        let schema = json!({"properties": {
            "statusCode": {"type": "integer", "x-aggregate": "last", "x-chart": "bar"},
            "responseTimeMs": {"type": "number", "x-unit": "ms"},
            "ok": {"type": ["boolean", "null"], "x-chart": "boolean"},
            "body": {"type": "string"},
        }});
        let fields = marked_fields(&schema).unwrap();
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["ok", "responseTimeMs", "statusCode"]);
        let [ok, time, code] = fields.as_slice() else {
            unreachable!()
        };
        assert_eq!((code.aggregate, code.chart), (Aggregate::Last, Chart::Bar));
        assert_eq!(
            (time.aggregate, time.chart),
            (Aggregate::Average, Chart::Line)
        );
        assert_eq!(time.unit.as_deref(), Some("ms"));
        assert_eq!(
            (ok.kind, ok.aggregate),
            (FieldKind::Boolean, Aggregate::Rate)
        );
    }

    #[test]
    fn samples_take_only_the_schema_type() {
        let fields = marked_fields(&json!({"properties": {
            "code": {"type": "integer", "x-aggregate": "last"},
            "ok": {"type": "boolean", "x-aggregate": "rate"},
        }}))
        .unwrap();
        let [code, ok] = fields.as_slice() else {
            unreachable!()
        };
        let result = json!({"code": 503, "ok": false});
        assert_eq!(code.sample(&result), Sample::Value(503.0));
        assert_eq!(ok.sample(&result), Sample::Value(0.0));
        assert_eq!(ok.sample(&json!({"ok": true})), Sample::Value(1.0));
        assert_eq!(code.sample(&json!({"code": "503"})), Sample::Mismatch);
        assert_eq!(ok.sample(&json!({"ok": 1})), Sample::Mismatch);
        assert_eq!(code.sample(&json!({"code": null})), Sample::Missing);
        assert_eq!(code.sample(&json!({"code": 1e300})), Sample::Mismatch);
        let rate = marked_fields(&json!({"properties": {
            "errors": {"type": "integer", "x-aggregate": "rate"},
        }}))
        .unwrap();
        assert_eq!(rate[0].sample(&json!({"errors": 3})), Sample::Value(1.0));
        assert_eq!(rate[0].sample(&json!({"errors": 0})), Sample::Value(0.0));
        assert_eq!(code.sample(&json!({})), Sample::Missing);
    }

    #[test]
    fn bad_marks_name_the_field() {
        let refused =
            |field: Value| marked_fields(&json!({"properties": {"f": field}})).unwrap_err();
        assert!(refused(json!({"type": "string", "x-aggregate": "last"})).contains("`f` has"));
        assert!(
            refused(json!({"type": "boolean", "x-aggregate": "average"})).contains("rate or last")
        );
        assert!(refused(json!({"type": "number", "x-aggregate": "median"})).contains("`median`"));
        assert!(refused(json!({"type": "number", "x-chart": "pie"})).contains("`pie`"));
        assert!(
            refused(json!({"type": "number", "x-unit": 5})).contains("x-unit must be a string")
        );
        let nested = json!({"type": "object", "properties": {"ms": {"type": "number", "x-aggregate": "average"}}});
        assert!(refused(nested).contains("`f.ms`"));
    }
}
