//! Secret masking: every resolved secret value of at least four characters
//! is replaced with `****` in whatever leaves the sandbox. Guests are never
//! trusted to do this themselves.

use serde_json::Value;

pub const MASK: &str = "****";
const MIN_SECRET_LEN: usize = 4;

#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so a secret containing another is masked whole.
    secrets: Vec<String>,
}

impl Masker {
    pub fn new<I: IntoIterator<Item = String>>(secrets: I) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.chars().count() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Masker { secrets }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn text(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |acc, secret| {
            acc.replace(secret.as_str(), MASK)
        })
    }

    pub fn in_place(&self, text: &mut String) {
        if !self.is_empty() {
            *text = self.text(text);
        }
    }

    /// Masks every string in a JSON value, object keys included.
    pub fn json(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => self.in_place(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    self.json(&mut v);
                    map.insert(self.text(&key), v);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_strings_keys_and_overlapping_secrets() {
        let m = Masker::new([
            "hunter2-long".to_string(),
            "hunter2".to_string(),
            "abc".to_string(),
        ]);
        assert_eq!(
            m.text("pw=hunter2-long;x=hunter2;abc"),
            "pw=****;x=****;abc"
        );
        let mut v = json!({"hunter2": ["a hunter2 b", 1], "n": null});
        m.json(&mut v);
        assert_eq!(v, json!({"****": ["a **** b", 1], "n": null}));
    }
}
