//! Text from a policy or an artifact, made safe to show on a terminal.
//!
//! In: any string a policy author or an artifact's producer chose (a
//! policy name, a path pattern, a value). Out: the same text with every
//! control character written as a visible escape, so that a carriage
//! return cannot hide what comes before it, an escape sequence cannot
//! recolour or clear the screen, and a reviewer reads what the kernel
//! will match. Shared by the compiler (`d4cc`) and the runtime
//! (`d4c-runtime`): the one place this is decided.

use std::borrow::Cow;

/// Whether `c` is a control character: C0 (`U+0000`..`U+001F`), DEL, C1
/// (`U+0080`..`U+009F`), or a bidirectional override or isolate
/// (`U+202A`..`U+202E`, `U+2066`..`U+2069`), which reorder what a
/// terminal shows.
pub fn is_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character (see [`is_control`]) escaped:
/// `\t`, `\n`, `\r` and `\0` as such, any other as `\u{1b}`. Text without
/// one is returned as it is.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if is_control(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A report of several lines: each line as [`escape_control`] shows it,
/// the line breaks kept. For whole reports (`d4cc inspect`, `d4cc diff`)
/// whose lines hold text from an artifact.
pub fn escape_control_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && is_control(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.split('\n').map(escape_control).collect::<Vec<_>>().join("\n"))
}

/// The most characters of one piece of user text that a message echoes
/// (see [`shorten`]).
pub const MAX_ECHOED_CHARS: usize = 80;

/// `text` escaped (see [`escape_control`]) and, when longer than `max`
/// characters, cut to its first `max` followed by `…`, with the full
/// length in bytes: `aaaa… (10485760 bytes)`. For echoing user text in
/// messages, where a 10 MB value would bury everything else.
pub fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => escape_control(text),
        Some((cut, _)) => {
            let head = text.get(..cut).unwrap_or_default();
            Cow::Owned(format!("{}… ({} bytes)", escape_control(head), text.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_control("/x\r/etc/passwd"), "/x\\r/etc/passwd");
        assert_eq!(escape_control("a\u{1b}[2Jb\tc\n\0"), "a\\u{1b}[2Jb\\tc\\n\\0");
        assert_eq!(escape_control("\u{7f}\u{85}\u{202e}x"), "\\u{7f}\\u{85}\\u{202e}x");
        assert!(matches!(escape_control("/etc/pässwd"), Cow::Borrowed(_)));
    }

    #[test]
    fn lines_keep_their_breaks() {
        assert_eq!(escape_control_lines("a\rb\nc\u{1b}\n"), "a\\rb\nc\\u{1b}\n");
        assert!(matches!(escape_control_lines("a\nb\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn long_text_is_shortened_with_its_length() {
        let long = "é".repeat(100);
        assert_eq!(shorten(&long, 3), "ééé… (200 bytes)");
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("ab\rc", 3), "ab\\r… (4 bytes)");
    }
}
