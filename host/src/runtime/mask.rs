//! Secret masking: every resolved secret value of at least four characters
//! is replaced with `****` in whatever leaves the sandbox, and so are its
//! common encodings: base64 (standard and URL-safe, also where it sits
//! inside a longer encoded string, as in `Basic` credentials), hex and
//! percent-encoding. Guests are never trusted to do this themselves.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

pub const MASK: &str = "****";
const MIN_SECRET_LEN: usize = 4;
/// Encoded forms shorter than this are too likely to occur by chance.
const MIN_ENCODED_LEN: usize = 6;

/// What `encodeURIComponent` leaves as it is.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The forms a secret takes once encoded, besides itself.
fn encodings(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let mut forms = vec![
        STANDARD.encode(bytes),
        URL_SAFE.encode(bytes),
        hex::encode(bytes),
        hex::encode_upper(bytes),
        utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        utf8_percent_encode(secret, URI_COMPONENT).to_string(),
        form_urlencoded::byte_serialize(bytes).collect(),
    ];
    // Inside a longer base64 string the secret starts at one of three bit
    // offsets; the characters that encode only the secret's own bits are
    // the same wherever it sits.
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for offset in 0..3 {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let encoded = engine.encode(&shifted);
            let start = (offset * 8).div_ceil(6);
            let end = shifted.len() * 8 / 6;
            if end > start {
                forms.push(encoded[start..end].to_string());
            }
        }
    }
    forms.retain(|form| form.len() >= MIN_ENCODED_LEN && form != secret);
    forms
}

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
            .flat_map(|s| {
                let mut forms = encodings(&s);
                forms.push(s);
                forms
            })
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
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

    /// `text` masked, borrowed when no secret occurs in it.
    pub fn masked<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        if self
            .secrets
            .iter()
            .any(|secret| text.contains(secret.as_str()))
        {
            std::borrow::Cow::Owned(self.text(text))
        } else {
            std::borrow::Cow::Borrowed(text)
        }
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
        assert!(matches!(
            m.masked("clean"),
            std::borrow::Cow::Borrowed("clean")
        ));
        assert_eq!(m.masked("x=hunter2"), "x=****");
    }

    #[test]
    fn encoded_secrets_are_masked_too() {
        let secret = "s3cr3t/pa ss+word";
        let m = Masker::new([secret.to_string()]);
        for encoded in [
            STANDARD.encode(secret),
            URL_SAFE.encode(secret),
            hex::encode(secret),
            hex::encode_upper(secret),
            utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
            form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        ] {
            let masked = m.text(&format!("value={encoded};"));
            assert_eq!(masked, "value=****;", "{encoded}");
        }
        // Basic credentials: the password sits inside `user:password`.
        for user in ["a", "ab", "abc"] {
            let header = STANDARD.encode(format!("{user}:{secret}"));
            let masked = m.text(&header);
            assert!(masked.contains(MASK), "{user}: {header} -> {masked}");
            let left: String = masked.replace(MASK, "");
            assert!(left.len() <= 8, "{user}: only the edges stay: {masked}");
        }
    }
}
