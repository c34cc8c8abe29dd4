//! Config as code: a check applied or removed by editing the YAML in place,
//! or by adding a file of its own when the config is a folder. `yamlpath`
//! (a tree-sitter parse) finds each list item's exact span, and only those
//! spans are rewritten: every comment and line elsewhere stays as written.
//! By hand because the patch crates rewrite flow mappings (`{system: a,
//! check: b}`, common in configs) wrongly or refuse them. Nothing is
//! written unless every edited file still reads as a configuration.

use std::path::{Path, PathBuf};

use serde_json::Value;
use yamlpath::{Component, FeatureKind, Route};

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is read-only: the configuration cannot be changed from here")]
    ReadOnly { path: PathBuf },
    #[error("{path}: cannot edit in place: {message}")]
    Patch { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("no file of {config} defines check `{check}`")]
    NoSuchCheck { config: PathBuf, check: String },
}

/// One file's text before and after an edit; `None` before: a new file.
#[derive(Debug, Clone)]
pub struct FileEdit {
    pub path: PathBuf,
    pub before: Option<String>,
    pub after: String,
}

/// Where a check and its assignments stand in one file.
struct Places {
    path: PathBuf,
    text: String,
    /// The check's index in `checks:`, and the item as it stands.
    check: Option<(usize, Value)>,
    /// The check's assignments: index in `assignments:`, system, item.
    assignments: Vec<(usize, String, Value)>,
}

fn config_files(config: &Path) -> Result<Vec<PathBuf>, EditError> {
    if !config.is_dir() {
        return Ok(vec![config.to_path_buf()]);
    }
    let read_error = |source| EditError::Read {
        path: config.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(config)
        .map_err(read_error)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    Ok(files)
}

fn places(path: &Path, check_id: &str) -> Result<Places, EditError> {
    let text = std::fs::read_to_string(path).map_err(|source| EditError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap_or_default();
    let list = |key: &str| doc.get(key).and_then(|v| v.as_sequence()).cloned();
    let field = |item: &serde_yaml_ng::Value, key: &str| {
        item.get(key).and_then(|v| v.as_str()).map(str::to_string)
    };
    let checks = list("checks");
    let assignments = list("assignments");
    let json = |item: &serde_yaml_ng::Value| serde_json::to_value(item).unwrap_or_default();
    Ok(Places {
        check: checks
            .unwrap_or_default()
            .iter()
            .enumerate()
            .find_map(|(i, c)| (field(c, "id").as_deref() == Some(check_id)).then(|| (i, json(c)))),
        assignments: assignments
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(_, a)| field(a, "check").as_deref() == Some(check_id))
            .map(|(i, a)| (i, field(a, "system").unwrap_or_default(), json(a)))
            .collect(),
        path: path.to_path_buf(),
        text,
    })
}

/// One change to a file's top-level list `list`.
#[derive(Debug, Clone)]
enum Change {
    Replace(usize, Value),
    Remove(usize),
    Append(Value),
}

fn route(list: &str, index: Option<usize>) -> Route<'_> {
    let mut components = vec![Component::from(list)];
    components.extend(index.map(Component::from));
    Route::from(components)
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// The end of the line holding `at`, past its newline.
fn line_end(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |i| at + i + 1)
}

/// The end of the line a span ending at `to` ends on, past its newline.
fn span_line_end(text: &str, to: usize) -> usize {
    if text[..to].ends_with('\n') {
        to
    } else {
        line_end(text, to)
    }
}

/// `to` pulled back past the comment and blank lines a parsed span ends
/// with: they belong to what follows, and stay.
fn without_trailing_comments(text: &str, from: usize, to: usize) -> usize {
    let mut to = to;
    loop {
        let body = text[from..to].trim_end_matches([' ', '\t', '\n', '\r']);
        let end = from + body.len();
        let start = line_start(text, end).max(from);
        let last = &text[start..end];
        if start > from && last.trim_start().starts_with('#') {
            to = start;
        } else {
            return end;
        }
    }
}

/// Keys an operator writes first, in this order; the rest follow by name.
const KEY_ORDER: [&str; 20] = [
    "id",
    "name",
    "system",
    "check",
    "environments",
    "interval",
    "timeout",
    "plugin",
    "strategy",
    "config",
    "network",
    "allow",
    "deny",
    "secretEnv",
    "collectors",
    "field",
    "jsonPath",
    "operator",
    "value",
    "assertions",
];

/// `value` with its keys in the order an operator writes them (`id`
/// first), as JSON maps keep none.
pub fn ordered(value: &Value) -> serde_yaml_ng::Value {
    match value {
        Value::Object(map) => {
            let rank = |key: &str| {
                KEY_ORDER
                    .iter()
                    .position(|k| *k == key)
                    .unwrap_or(KEY_ORDER.len())
            };
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| (rank(k), k.as_str()));
            serde_yaml_ng::Value::Mapping(
                keys.into_iter()
                    .map(|k| (serde_yaml_ng::Value::String(k.clone()), ordered(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => serde_yaml_ng::Value::Sequence(items.iter().map(ordered).collect()),
        other => serde_yaml_ng::to_value(other).unwrap_or_default(),
    }
}

/// `value` as a block at `column`: its first line goes where the old item
/// began, the others indented to match.
fn block(value: &Value, column: usize) -> String {
    let text = serde_yaml_ng::to_string(&ordered(value)).unwrap_or_default();
    let pad = " ".repeat(column);
    let mut lines = text.trim_end().lines();
    let mut out = lines.next().unwrap_or_default().to_string();
    for line in lines {
        out.push('\n');
        out.push_str(&pad);
        out.push_str(line);
    }
    out
}

/// `value` on one line, for items and lists written in flow style.
fn flow(value: &Value) -> String {
    serde_json::to_string(&ordered(value)).unwrap_or_default()
}

/// Applies one change to `text`, leaving everything outside the list item
/// it touches as it was.
fn change(path: &Path, text: &str, list: &str, change: Change) -> Result<String, EditError> {
    let fail = |message: String| EditError::Patch {
        path: path.to_path_buf(),
        message,
    };
    let doc = yamlpath::Document::new(text).map_err(|e| fail(e.to_string()))?;
    let found = if doc.query_exists(&route(list, None)) {
        doc.query_exact(&route(list, None))
            .map_err(|e| fail(e.to_string()))?
    } else {
        None
    };
    let Some(items) = found else {
        // No list (or an empty `list:`): one is added at the end.
        let Change::Append(value) = change else {
            return Err(fail(format!("no `{list}:` list to change")));
        };
        let mut out = text.to_string();
        if doc.query_exists(&route(list, None)) {
            return Err(fail(format!(
                "`{list}:` is empty: write `{list}: []` first"
            )));
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{list}:\n  - {}\n", block(&value, 4)));
        return Ok(out);
    };
    let (start, end) = items.location.byte_span;
    let end = without_trailing_comments(text, start, end);
    if items.kind() == FeatureKind::FlowSequence {
        // A list written `[…]` is written again on one line.
        let current: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text[start..end]).map_err(|e| fail(e.to_string()))?;
        let mut current: Vec<Value> = serde_json::to_value(current)
            .and_then(serde_json::from_value)
            .map_err(|e| fail(format!("`{list}` cannot be rewritten: {e}")))?;
        match change {
            Change::Replace(i, value) if i < current.len() => current[i] = value,
            Change::Remove(i) if i < current.len() => {
                current.remove(i);
            }
            Change::Append(value) => current.push(value),
            _ => return Err(fail(format!("`{list}` has no such item"))),
        }
        return Ok(format!(
            "{}{}{}",
            &text[..start],
            flow(&Value::Array(current)),
            &text[end..]
        ));
    }
    let item = |i: usize| -> Result<(usize, usize, usize), EditError> {
        let feature = doc
            .query_exact(&route(list, Some(i)))
            .map_err(|e| fail(e.to_string()))?
            .ok_or_else(|| fail(format!("`{list}[{i}]` is empty")))?;
        let (from, to) = feature.location.byte_span;
        Ok((
            from,
            without_trailing_comments(text, from, to),
            feature.location.point_span.0.1,
        ))
    };
    let count = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
        .ok()
        .and_then(|d| d.get(list).and_then(|l| l.as_sequence()).map(Vec::len))
        .unwrap_or(0);
    Ok(match change {
        Change::Replace(i, value) => {
            let (from, to, column) = item(i)?;
            let old = &text[from..to];
            let new = if old.starts_with('{') && !old.contains('\n') {
                flow(&value)
            } else {
                block(&value, column)
            };
            format!("{}{new}{}", &text[..from], &text[to..])
        }
        // The last item out: the list stays, empty, where it was.
        Change::Remove(_) if count == 1 => format!("{}[]{}", &text[..start], &text[end..]),
        Change::Remove(i) => {
            let (from, to, _) = item(i)?;
            format!(
                "{}{}",
                &text[..line_start(text, from)],
                &text[span_line_end(text, to)..]
            )
        }
        Change::Append(value) => {
            let (from, to, column) = item(count.saturating_sub(1))?;
            let dash = text[line_start(text, from)..from].rfind('-').unwrap_or(0);
            let at = span_line_end(text, to);
            let mut out = text[..at].to_string();
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!(
                "{}- {}\n",
                " ".repeat(dash),
                block(&value, column)
            ));
            out.push_str(&text[at..]);
            out
        }
    })
}

fn changed(path: &Path, text: &str, changes: &[(&str, Change)]) -> Result<String, EditError> {
    let mut text = text.to_string();
    for (list, c) in changes {
        text = change(path, &text, list, c.clone())?;
    }
    Ok(text)
}

/// The fields of a check a proposal states; the others (memory, sockets,
/// locations, trace propagation) stay as the operator wrote them.
const CHECK_FIELDS: [&str; 7] = [
    "id",
    "name",
    "interval",
    "timeout",
    "strategy",
    "network",
    "collectors",
];
/// The fields of an assignment a proposal states; the others (paused,
/// notify, flapping, locations, dependsOn) stay.
const ASSIGNMENT_FIELDS: [&str; 5] = ["system", "check", "environments", "thresholds", "slo"];

/// `new` over the item as it stands: the fields a proposal states come
/// from it (absent ones go), the rest stay.
fn kept(old: &Value, new: &Value, stated: &[&str]) -> Value {
    let mut item = match old {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    item.retain(|key, _| !stated.contains(&key.as_str()));
    if let Value::Object(map) = new {
        item.extend(map.clone());
    }
    Value::Object(item)
}

/// The edits that put `check` and its assignment to `system` into the
/// configuration: each replaced where it stands, or added to the file
/// that holds the check (a single file), or to a new file of the folder.
pub fn plan_apply(
    config: &Path,
    check_id: &str,
    system: &str,
    check: &Value,
    assignment: &Value,
    new_file_text: &str,
) -> Result<Vec<FileEdit>, EditError> {
    let files = config_files(config)?
        .iter()
        .map(|f| places(f, check_id))
        .collect::<Result<Vec<_>, _>>()?;
    let holder = files
        .iter()
        .position(|f| f.check.is_some())
        .or((!config.is_dir()).then_some(0));
    let Some(holder) = holder else {
        // A folder without the check: a file of its own.
        let path = config.join(format!("{check_id}.yaml"));
        if path.exists() {
            return Err(EditError::Invalid(format!(
                "{} exists and does not define check `{check_id}`: remove it or choose another id",
                path.display()
            )));
        }
        return Ok(vec![FileEdit {
            path,
            before: None,
            after: new_file_text.to_string(),
        }]);
    };
    let assigned = files
        .iter()
        .position(|f| f.assignments.iter().any(|(_, s, _)| s == system));
    let mut edits = Vec::new();
    for (n, file) in files.iter().enumerate() {
        let mut changes = Vec::new();
        if n == holder {
            changes.push(match &file.check {
                Some((i, old)) => (
                    "checks",
                    Change::Replace(*i, kept(old, check, &CHECK_FIELDS)),
                ),
                None => ("checks", Change::Append(check.clone())),
            });
        }
        if assigned == Some(n) {
            for (i, _, old) in file.assignments.iter().filter(|(_, s, _)| s == system) {
                let new = kept(old, assignment, &ASSIGNMENT_FIELDS);
                changes.push(("assignments", Change::Replace(*i, new)));
            }
        } else if assigned.is_none() && n == holder {
            changes.push(("assignments", Change::Append(assignment.clone())));
        }
        if !changes.is_empty() {
            edits.push(FileEdit {
                path: file.path.clone(),
                after: changed(&file.path, &file.text, &changes)?,
                before: Some(file.text.clone()),
            });
        }
    }
    Ok(edits)
}

/// The edits that take `check_id` and every assignment of it out.
pub fn plan_remove(config: &Path, check_id: &str) -> Result<Vec<FileEdit>, EditError> {
    let mut edits = Vec::new();
    let mut found = false;
    for path in config_files(config)? {
        let file = places(&path, check_id)?;
        found |= file.check.is_some();
        // From the back, so each index still points at its item.
        let mut changes: Vec<(&str, Change)> = file
            .assignments
            .iter()
            .rev()
            .map(|(i, _, _)| ("assignments", Change::Remove(*i)))
            .collect();
        if let Some((i, _)) = file.check {
            changes.push(("checks", Change::Remove(i)));
        }
        if !changes.is_empty() {
            edits.push(FileEdit {
                after: changed(&file.path, &file.text, &changes)?,
                before: Some(file.text),
                path,
            });
        }
    }
    if !found {
        return Err(EditError::NoSuchCheck {
            config: config.to_path_buf(),
            check: check_id.to_string(),
        });
    }
    Ok(edits)
}

/// Refuses edits of a file or folder that may not be written, and edits
/// whose result no longer reads as a configuration.
pub fn check(edits: &[FileEdit]) -> Result<(), EditError> {
    for edit in edits {
        let guarded = match &edit.before {
            Some(_) => edit.path.clone(),
            None => edit
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        let meta = std::fs::metadata(&guarded).map_err(|source| EditError::Read {
            path: guarded.clone(),
            source,
        })?;
        if meta.permissions().readonly() {
            return Err(EditError::ReadOnly { path: guarded });
        }
        crate::config::parse_text(&edit.path, &edit.after)
            .map_err(|e| EditError::Invalid(format!("the edit would break the file: {e}")))?;
    }
    Ok(())
}

/// Writes each file whole or not at all (a temporary file renamed over
/// it, with the old file's permissions), so a reload never reads half; a
/// symlinked config is written where the link points. A file changed
/// since the edit was planned is left alone and the edit refused.
pub fn write(edits: &[FileEdit]) -> Result<(), EditError> {
    for edit in edits {
        let path = std::fs::canonicalize(&edit.path).unwrap_or_else(|_| edit.path.clone());
        let fail = |source| EditError::Write {
            path: path.clone(),
            source,
        };
        let now = std::fs::read_to_string(&path).ok();
        if now != edit.before {
            return Err(EditError::Invalid(format!(
                "{} changed while the edit was made: call the tool again",
                edit.path.display()
            )));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        std::io::Write::write_all(&mut temp, edit.after.as_bytes()).map_err(fail)?;
        if edit.before.is_some() {
            let permissions = std::fs::metadata(&path).map_err(fail)?.permissions();
            std::fs::set_permissions(temp.path(), permissions).map_err(fail)?;
        }
        temp.persist(&path).map_err(|e| fail(e.error))?;
    }
    Ok(())
}

/// The edits undone: each file as it was before, a new file removed.
pub fn undo(edits: &[FileEdit]) -> Result<(), EditError> {
    for edit in edits {
        match &edit.before {
            Some(before) => write(&[FileEdit {
                path: edit.path.clone(),
                before: Some(edit.after.clone()),
                after: before.clone(),
            }])?,
            None => std::fs::remove_file(&edit.path).map_err(|source| EditError::Write {
                path: edit.path.clone(),
                source,
            })?,
        }
    }
    Ok(())
}

/// The edits as a unified diff, file by file.
pub fn diff(edits: &[FileEdit]) -> String {
    let mut out = String::new();
    for edit in edits {
        let name = edit.path.display().to_string();
        let before = edit.before.as_deref().unwrap_or("");
        let text = similar::TextDiff::from_lines(before, &edit.after);
        let from = if edit.before.is_some() {
            name.clone()
        } else {
            "/dev/null".into()
        };
        out.push_str(&text.unified_diff().header(&from, &name).to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CONFIG: &str = "\
# The shop's checks.
systems:
  - id: shop   # the storefront
checks:
  # Health first.
  - id: health
    strategy: {plugin: http}
assignments:
  - {system: shop, check: health}
";

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkhost.yaml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_new_check_joins_the_file_and_its_comments_stay() {
        let (_dir, path) = file(CONFIG);
        let check = json!({"id": "api", "strategy": {"plugin": "http"}});
        let assignment = json!({"system": "shop", "check": "api"});
        let edits = plan_apply(&path, "api", "shop", &check, &assignment, "").unwrap();
        assert_eq!(edits.len(), 1);
        let after = &edits[0].after;
        for comment in [
            "# The shop's checks.",
            "# the storefront",
            "# Health first.",
        ] {
            assert!(after.contains(comment), "{comment} lost:\n{after}");
        }
        let parsed = crate::config::parse_text(&path, after).unwrap();
        let ids: Vec<&str> = parsed.checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["health", "api"]);
        assert_eq!(parsed.assignments.len(), 2);
        check_edits(&edits);
    }

    fn check_edits(edits: &[FileEdit]) {
        super::check(edits).unwrap();
    }

    #[test]
    fn an_existing_check_is_replaced_where_it_stands_and_then_removed() {
        let (_dir, path) = file(CONFIG);
        let check = json!({"id": "health", "interval": "10s", "strategy": {"plugin": "http"}});
        let assignment = json!({"system": "shop", "check": "health", "environments": []});
        let edits = plan_apply(&path, "health", "shop", &check, &assignment, "").unwrap();
        write(&edits).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = crate::config::parse_text(&path, &text).unwrap();
        assert_eq!(parsed.checks.len(), 1);
        assert_eq!(parsed.checks[0].interval.to_string(), "10s");
        assert_eq!(parsed.assignments.len(), 1);
        assert!(text.contains("# Health first."), "{text}");

        let removed = plan_remove(&path, "health").unwrap();
        let diff = diff(&removed);
        assert!(diff.contains("-  - id: health"), "{diff}");
        write(&removed).unwrap();
        let parsed =
            crate::config::parse_text(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(parsed.checks.is_empty() && parsed.assignments.is_empty());
        assert!(matches!(
            plan_remove(&path, "health"),
            Err(EditError::NoSuchCheck { .. })
        ));
    }

    #[test]
    fn lists_written_in_flow_style_are_edited_too() {
        let (_dir, path) = file(
            "# Flow style.\nsystems: [{id: shop}]\nchecks: [{id: a, strategy: {plugin: http}}]\n\
             assignments: [{system: shop, check: a}]  # one\n",
        );
        let check = json!({"id": "b", "strategy": {"plugin": "http"}});
        let assignment = json!({"system": "shop", "check": "b"});
        write(&plan_apply(&path, "b", "shop", &check, &assignment, "").unwrap()).unwrap();
        let replaced = json!({"id": "a", "interval": "5s", "strategy": {"plugin": "http"}});
        let a = json!({"system": "shop", "check": "a"});
        write(&plan_apply(&path, "a", "shop", &replaced, &a, "").unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = crate::config::parse_text(&path, &text).unwrap();
        let ids: Vec<&str> = parsed.checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(parsed.checks[0].interval.to_string(), "5s");
        assert_eq!(parsed.assignments.len(), 2);
        assert!(
            text.starts_with("# Flow style.") && text.contains("# one"),
            "{text}"
        );
        for id in ["a", "b"] {
            write(&plan_remove(&path, id).unwrap()).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = crate::config::parse_text(&path, &text).unwrap();
        assert!(
            parsed.checks.is_empty() && parsed.assignments.is_empty(),
            "{text}"
        );
    }

    #[test]
    fn comments_between_items_stay_and_other_text_is_safe_to_cut() {
        let (_dir, path) = file(
            "systems: [{id: shop}]\nchecks:\n  - id: a\n    name: Café\n    strategy: {plugin: http}\n\
             # About b.\n  - id: b\n    strategy: {plugin: http}\n    memoryMib: 32\n\
             # Assignments below.\nassignments:\n  - {system: shop, check: a}\n  - {system: shop, check: b, paused: true}   # é",
        );
        let b = json!({"id": "b", "interval": "5s", "strategy": {"plugin": "http"}});
        let assignment = json!({"system": "shop", "check": "b"});
        write(&plan_apply(&path, "b", "shop", &b, &assignment, "").unwrap()).unwrap();
        write(&plan_remove(&path, "a").unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for comment in ["# About b.", "# Assignments below.", "# é"] {
            assert!(text.contains(comment), "{comment} lost:\n{text}");
        }
        let parsed = crate::config::parse_text(&path, &text).unwrap();
        assert_eq!(parsed.checks.len(), 1);
        assert_eq!(parsed.checks[0].interval.to_string(), "5s");
        assert_eq!(
            parsed.checks[0].memory_mib,
            Some(32),
            "what a proposal does not state stays"
        );
        assert!(
            parsed.assignments[0].paused,
            "a paused assignment stays paused:\n{text}"
        );
        write(&plan_remove(&path, "b").unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# Assignments below."), "{text}");
        let parsed = crate::config::parse_text(&path, &text).unwrap();
        assert!(
            parsed.checks.is_empty() && parsed.assignments.is_empty(),
            "{text}"
        );
    }

    #[test]
    fn an_edit_of_a_file_changed_meanwhile_is_refused_and_undo_puts_it_back() {
        let (_dir, path) = file(CONFIG);
        let edits = plan_remove(&path, "health").unwrap();
        std::fs::write(&path, format!("{CONFIG}# edited by hand\n")).unwrap();
        assert!(matches!(write(&edits), Err(EditError::Invalid(_))));
        std::fs::write(&path, CONFIG).unwrap();
        write(&edits).unwrap();
        undo(&edits).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), CONFIG);
    }

    #[test]
    fn a_config_without_lists_gets_them() {
        let (_dir, path) = file("systems:\n  - id: shop\n");
        let check =
            json!({"id": "b", "strategy": {"plugin": "http", "config": {"baseUrl": "http://x"}}});
        let assignment = json!({"system": "shop", "check": "b"});
        let edits = plan_apply(&path, "b", "shop", &check, &assignment, "").unwrap();
        let parsed = crate::config::parse_text(&path, &edits[0].after).unwrap();
        assert_eq!(
            parsed.checks[0].strategy.config["baseUrl"], "http://x",
            "{}",
            edits[0].after
        );
        assert_eq!(parsed.assignments[0].check, "b");
    }

    #[test]
    fn a_folder_gets_a_file_of_its_own_and_a_read_only_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.yaml"), CONFIG).unwrap();
        let check = json!({"id": "api", "strategy": {"plugin": "http"}});
        let assignment = json!({"system": "shop", "check": "api"});
        let edits = plan_apply(
            dir.path(),
            "api",
            "shop",
            &check,
            &assignment,
            "checks: []\n",
        )
        .unwrap();
        assert_eq!(edits[0].path, dir.path().join("api.yaml"));
        assert!(edits[0].before.is_none());

        let (_file_dir, path) = file(CONFIG);
        let mut permissions = std::fs::metadata(&path).unwrap().permissions();
        permissions.set_readonly(true);
        std::fs::set_permissions(&path, permissions).unwrap();
        let edits = plan_apply(&path, "api", "shop", &check, &assignment, "").unwrap();
        assert!(matches!(
            super::check(&edits),
            Err(EditError::ReadOnly { .. })
        ));
    }
}
