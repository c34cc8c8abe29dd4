//! Walking a config value alongside its JSON Schema to find the leaves the
//! host treats specially (`x-templatable`, `x-secret`).

use serde_json::Value;

/// The marks that apply to a value at some place in a schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    pub templatable: bool,
    pub secret: bool,
}

/// Calls `visit` for every string leaf of `value` with the marks its schema
/// gives it (a mark on an object or array applies to every string below).
pub fn visit_strings(
    schema: &Value,
    value: &mut Value,
    visit: &mut dyn FnMut(&str, Marks, &mut String),
) {
    walk(schema, schema, value, Marks::default(), "", visit);
}

fn walk(
    root: &Value,
    schema: &Value,
    value: &mut Value,
    inherited: Marks,
    pointer: &str,
    visit: &mut dyn FnMut(&str, Marks, &mut String),
) {
    let parts = flatten(root, schema);
    let marks = Marks {
        templatable: inherited.templatable || parts.iter().any(|s| flag(s, "x-templatable")),
        secret: inherited.secret || parts.iter().any(|s| flag(s, "x-secret")),
    };
    match value {
        Value::String(s) => visit(pointer, marks, s),
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let child_schema = parts
                    .iter()
                    .find_map(|s| s.get("properties").and_then(|p| p.get(key)))
                    .or_else(|| {
                        parts
                            .iter()
                            .find_map(|s| s.get("additionalProperties").filter(|a| a.is_object()))
                    })
                    .unwrap_or(&Value::Null);
                walk(
                    root,
                    child_schema,
                    child,
                    marks,
                    &format!("{pointer}/{key}"),
                    visit,
                );
            }
        }
        Value::Array(items) => {
            let item_schema = parts
                .iter()
                .find_map(|s| s.get("items"))
                .unwrap_or(&Value::Null);
            for (i, child) in items.iter_mut().enumerate() {
                walk(
                    root,
                    item_schema,
                    child,
                    marks,
                    &format!("{pointer}/{i}"),
                    visit,
                );
            }
        }
        _ => {}
    }
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

/// The schema and everything it references or combines (`$ref`, `anyOf`,
/// `oneOf`, `allOf`), so properties and marks can be read from all of them.
fn flatten<'a>(root: &'a Value, schema: &'a Value) -> Vec<&'a Value> {
    let mut out = Vec::new();
    let mut stack = vec![schema];
    while let Some(s) = stack.pop() {
        if out.len() > 64 {
            break;
        }
        out.push(s);
        if let Some(target) = s
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| resolve(root, r))
        {
            stack.push(target);
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(Value::Array(subs)) = s.get(key) {
                stack.extend(subs.iter());
            }
        }
    }
    out
}

fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    root.pointer(reference.strip_prefix('#')?)
}

/// The schema node at a dotted result path (`body.status`), following
/// references; `None` when the schema does not describe that path.
pub fn schema_at<'a>(root: &'a Value, path: &[String]) -> Option<Vec<&'a Value>> {
    let mut current = flatten(root, root);
    for segment in path {
        // Below an open schema (`true`, `{}`) any path may exist.
        if is_open(&current) {
            return Some(current);
        }
        let next = current.iter().find_map(|s| {
            s.get("properties")
                .and_then(|p| p.get(segment))
                .or_else(|| segment.parse::<usize>().ok().and_then(|_| s.get("items")))
                .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
        })?;
        current = flatten(root, next);
    }
    Some(current)
}

/// Whether the schema at a place says nothing about shape (any value).
pub fn is_open(parts: &[&Value]) -> bool {
    parts
        .iter()
        .all(|s| s.get("type").is_none() && s.get("properties").is_none())
}

/// The JSON types a schema place allows (`"number"`, `"string"`...).
pub fn types_of(parts: &[&Value]) -> Vec<String> {
    let mut types = Vec::new();
    for s in parts {
        match s.get("type") {
            Some(Value::String(t)) => types.push(t.clone()),
            Some(Value::Array(ts)) => {
                types.extend(ts.iter().filter_map(Value::as_str).map(str::to_string))
            }
            _ => {}
        }
    }
    types
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn marks_follow_refs_maps_and_options() {
        let schema = json!({
            "properties": {
                "url": {"type": "string", "x-templatable": true},
                "headers": {"type": "object", "x-templatable": true, "additionalProperties": {"type": "string"}},
                "auth": {"anyOf": [{"$ref": "#/$defs/Auth"}, {"type": "null"}]},
                "plain": {"type": "string"}
            },
            "$defs": {"Auth": {"properties": {"password": {"type": "string", "x-secret": true}}}}
        });
        let mut value =
            json!({"url": "u", "headers": {"a": "h"}, "auth": {"password": "p"}, "plain": "x"});
        let mut seen = Vec::new();
        visit_strings(&schema, &mut value, &mut |ptr, marks, _| {
            seen.push((ptr.to_string(), marks))
        });
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        let t = Marks {
            templatable: true,
            secret: false,
        };
        let s = Marks {
            templatable: false,
            secret: true,
        };
        assert_eq!(
            seen,
            vec![
                ("/auth/password".into(), s),
                ("/headers/a".into(), t),
                ("/plain".into(), Marks::default()),
                ("/url".into(), t)
            ]
        );
    }
}
