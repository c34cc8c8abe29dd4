//! Text a guest controls (errors, messages, log lines) is cut to a fixed
//! size before it leaves the runtime, so one run cannot fill the store, a
//! webhook or a terminal, and the cut is marked so nobody mistakes it for
//! the whole message; `inert` makes it safe to print.

/// The most of one error or message a run keeps, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `text` with every control character (C0, DEL, C1) and bidirectional
/// override written as a visible escape, so no guest text can move the
/// cursor, clear the screen, set the title, write the clipboard or reorder
/// what a terminal shows.
pub fn inert(text: &str) -> String {
    let dangerous =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(dangerous) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if dangerous(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `text` cut to `max` bytes (at a character boundary) and marked
/// `… [truncated: N bytes]` with the original size; shorter text unchanged.
pub fn bounded(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut text = text;
    mask_and_bound(&mut text, max, |_| {});
    text
}

/// Applies `mask` to `text` and bounds it to `max` bytes, marked with its
/// size as it came. A first, unmarked cut well above `max` keeps masking
/// cheap; masking comes before the final cut so no cut can leave part of a
/// secret behind.
pub fn mask_and_bound(text: &mut String, max: usize, mask: impl FnOnce(&mut String)) {
    let original = text.len();
    cut(text, max.saturating_mul(16));
    mask(text);
    if original > max.saturating_mul(16) || text.len() > max {
        cut(text, max);
        text.push_str(&format!("… [truncated: {original} bytes]"));
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary, unmarked.
fn cut(text: &mut String, max: usize) {
    if text.len() > max {
        let mut at = max;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary_and_marked() {
        assert_eq!(bounded("short".into(), 8), "short");
        assert_eq!(
            bounded("abcdefghij".into(), 4),
            "abcd… [truncated: 10 bytes]"
        );
        // "é" is two bytes: a cut inside it moves back to the boundary.
        assert_eq!(bounded("aé".repeat(3), 4), "aéa… [truncated: 9 bytes]");
    }

    #[test]
    fn masking_before_the_cut_never_marks_a_short_text() {
        let mut text = "token=secret-value".to_string();
        mask_and_bound(&mut text, 8, |t| *t = t.replace("secret-value", "****"));
        assert_eq!(text, "token=**… [truncated: 18 bytes]");
        let mut short = "a secret-value".to_string();
        mask_and_bound(&mut short, 12, |t| *t = t.replace("secret-value", "****"));
        assert_eq!(short, "a ****");
    }

    #[test]
    fn guest_text_cannot_drive_the_terminal() {
        // Clear screen, cursor up, a window title, the clipboard (OSC 52).
        let hostile = "\x1b[2J\x1b[1Aok\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07\u{9b}31m\u{202e}";
        let shown = inert(hostile);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert_eq!(
            shown,
            "\\u{1b}[2J\\u{1b}[1Aok\\u{1b}]0;pwned\\u{7}\\u{1b}]52;c;ZXZpbA==\\u{7}\\u{9b}31m\\u{202e}"
        );
        assert_eq!(inert("plain é text"), "plain é text");
    }
}
