//! Stage 6: host-side assertions on a collector's result. Every outcome is
//! recorded with what was expected and what was found.

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use crate::config::{Assertion, Operator};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssertionOutcome {
    pub collector: String,
    pub target: String,
    pub operator: Operator,
    pub expected: Value,
    pub actual: Option<Value>,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl AssertionOutcome {
    /// `request: statusCode equals 200, got 500`; a long actual value (a
    /// body, up to the output cap) is cut so the line stays a line.
    pub fn describe(&self) -> String {
        let actual = self.actual.as_ref().map_or("nothing".to_string(), |v| {
            crate::runtime::text::bounded(v.to_string(), 256)
        });
        let mut text = format!(
            "{}: {} {:?} {}, got {actual}",
            self.collector, self.target, self.operator, self.expected
        );
        if let Some(m) = &self.message {
            text.push_str(&format!(" ({m})"));
        }
        text
    }
}

/// The path segments an assertion names: `field` is dotted, `jsonPath` is
/// `$.a.b[0]['c']`.
pub fn assertion_path(a: &Assertion) -> Result<Vec<String>, String> {
    match (&a.field, &a.json_path) {
        (Some(field), None) => Ok(field.split('.').map(str::to_string).collect()),
        (None, Some(path)) => parse_json_path(path),
        (Some(_), Some(_)) => Err("set either `field` or `jsonPath`, not both".into()),
        (None, None) => Err("an assertion needs `field` or `jsonPath`".into()),
    }
}

/// A JSONPath subset: `$`, `.name`, `[index]`, `['name']`.
pub fn parse_json_path(path: &str) -> Result<Vec<String>, String> {
    let rest = path
        .trim()
        .strip_prefix('$')
        .ok_or_else(|| format!("JSONPath `{path}` must start with `$`"))?;
    let mut segments = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if n == '.' || n == '[' {
                        break;
                    }
                    name.push(n);
                    chars.next();
                }
                if name.is_empty() {
                    return Err(format!("JSONPath `{path}` has an empty segment"));
                }
                segments.push(name);
            }
            '[' => {
                let inner: String = chars.by_ref().take_while(|&n| n != ']').collect();
                let inner = inner.trim();
                let name = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                match name {
                    Some(name) => segments.push(name.to_string()),
                    None if inner.parse::<usize>().is_ok() => segments.push(inner.to_string()),
                    None => {
                        return Err(format!("JSONPath `{path}`: unsupported selector [{inner}]"));
                    }
                }
            }
            other => return Err(format!("JSONPath `{path}`: unexpected `{other}`")),
        }
    }
    Ok(segments)
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |node, segment| match node {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

pub fn evaluate(collector: &str, assertion: &Assertion, result: &Value) -> AssertionOutcome {
    let target = assertion
        .field
        .clone()
        .or_else(|| assertion.json_path.clone())
        .unwrap_or_default();
    let mut outcome = AssertionOutcome {
        collector: collector.to_string(),
        target,
        operator: assertion.operator,
        expected: assertion.value.clone(),
        actual: None,
        passed: false,
        message: None,
    };
    let path = match assertion_path(assertion) {
        Ok(p) => p,
        Err(e) => {
            outcome.message = Some(e);
            return outcome;
        }
    };
    let actual = lookup(result, &path);
    outcome.actual = actual.cloned();
    match judge(assertion.operator, actual, &assertion.value) {
        Ok(passed) => outcome.passed = passed,
        Err(message) => outcome.message = Some(message),
    }
    outcome
}

fn judge(op: Operator, actual: Option<&Value>, expected: &Value) -> Result<bool, String> {
    use Operator::*;
    match op {
        Exists => return Ok(actual.is_some_and(|v| !v.is_null())),
        NotExists => return Ok(actual.is_none_or(Value::is_null)),
        _ => {}
    }
    let Some(actual) = actual else {
        return Err("field is absent from the result".into());
    };
    Ok(match op {
        Equals => loosely_equal(actual, expected),
        NotEquals => !loosely_equal(actual, expected),
        LessThan | LessThanOrEqual | GreaterThan | GreaterThanOrEqual => {
            let (a, e) = (number(actual)?, number(expected)?);
            match op {
                LessThan => a < e,
                LessThanOrEqual => a <= e,
                GreaterThan => a > e,
                _ => a >= e,
            }
        }
        Contains | NotContains | StartsWith | EndsWith | Matches => {
            let a = text(actual);
            let e = expected.as_str().ok_or("expected value must be a string")?;
            match op {
                Contains => a.contains(e),
                NotContains => !a.contains(e),
                StartsWith => a.starts_with(e),
                EndsWith => a.ends_with(e),
                _ => Regex::new(e)
                    .map_err(|err| format!("invalid regex: {err}"))?
                    .is_match(&a),
            }
        }
        IsTrue => actual.as_bool().ok_or("value is not a boolean")?,
        IsFalse => !actual.as_bool().ok_or("value is not a boolean")?,
        Exists | NotExists => unreachable!("handled above"),
    })
}

fn number(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| "number out of range".to_string()),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number")),
        other => Err(format!("{other} is not a number")),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `200` equals `"200"` and `200.0`: YAML authors should not have to care.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (number(a), number(b)) {
        (Ok(x), Ok(y)) if !a.is_boolean() && !b.is_boolean() => x == y,
        _ => text(a) == text(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(field: &str, operator: Operator, value: Value, result: &Value) -> AssertionOutcome {
        let a = Assertion {
            field: Some(field.into()),
            json_path: None,
            operator,
            value,
        };
        evaluate("c", &a, result)
    }

    #[test]
    fn operators_judge_and_record_actual_values() {
        let r = json!({"statusCode": 500, "body": {"status": "up", "items": [1, 2]}, "ok": true, "t": 12.5});
        assert!(check("statusCode", Operator::Equals, json!(500), &r).passed);
        let failed = check("statusCode", Operator::Equals, json!(200), &r);
        assert!(!failed.passed);
        assert_eq!(failed.actual, Some(json!(500)));
        assert_eq!(failed.describe(), "c: statusCode Equals 200, got 500");
        assert!(check("t", Operator::LessThan, json!(20), &r).passed);
        assert!(check("body.status", Operator::Matches, json!("^u.$"), &r).passed);
        assert!(check("body.status", Operator::StartsWith, json!("u"), &r).passed);
        assert!(check("ok", Operator::IsTrue, json!(null), &r).passed);
        assert!(check("body.items.1", Operator::Equals, json!(2), &r).passed);
        assert!(check("missing", Operator::NotExists, json!(null), &r).passed);
        let absent = check("missing", Operator::Equals, json!(1), &r);
        assert!(!absent.passed && absent.message.is_some());
        let by_path = Assertion {
            field: None,
            json_path: Some("$.body['items'][0]".into()),
            operator: Operator::Equals,
            value: json!(1),
        };
        assert!(evaluate("c", &by_path, &r).passed);
    }

    #[test]
    fn json_paths_parse() {
        assert_eq!(
            parse_json_path("$.a.b[0]['c d']").unwrap(),
            vec!["a", "b", "0", "c d"]
        );
        assert!(parse_json_path("a.b").is_err());
        assert!(parse_json_path("$.a[*]").is_err());
    }
}
