//! Plain-text tables for terminal output. Text that guests or targets
//! control reaches a terminal only through `inert`.

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

/// Renders rows under a header, columns padded to their widest cell; each
/// cell is made `inert`.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| inert(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

/// Shortens text to `max` characters for a table cell, on one line.
pub fn clip(text: &str, max: usize) -> String {
    let one_line = inert(&text.replace('\n', " "));
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_columns() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\nxxx  y");
        assert_eq!(clip("abcdef", 4), "abc…");
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
        let t = table(&["a"], &[vec![hostile.into()]]);
        assert!(!t.contains('\x1b'), "{t:?}");
        assert_eq!(inert("plain é text"), "plain é text");
    }
}
