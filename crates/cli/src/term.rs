//! Text from documents and models printed for a person: control characters would reach the
//! terminal raw (escape sequences can rewrite the screen, set the title, or hide text), and
//! bidi overrides reorder what is shown. They are printed as visible escapes instead.

use std::borrow::Cow;

fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character but newline and tab, and every bidi override,
/// written as `\u{..}`.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_bidi_overrides_become_visible() {
        assert_eq!(safe("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(safe("\x1b]0;pwned\x07red"), "\\u{1b}]0;pwned\\u{7}red");
        assert_eq!(safe("a\u{202E}b\u{9b}c"), "a\\u{202e}b\\u{9b}c");
    }
}
