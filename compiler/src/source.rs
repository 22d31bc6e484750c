//! Source files: bytes in, checked UTF-8 text out, and the one place where
//! the YAML parser's character positions become byte offsets.

use crate::codes::Code;
use crate::diag::Diagnostic;
use crate::limits::MAX_SOURCE_BYTES;
use crate::span::Span;

/// One policy file: its display name and its text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The name diagnostics show (a path, or `<stdin>`).
    pub name: String,
    /// The whole text, checked UTF-8.
    pub text: String,
}

impl SourceFile {
    /// Checks `bytes` and makes a source file of them.
    ///
    /// Fails with one diagnostic when the input is larger than
    /// [`MAX_SOURCE_BYTES`] (`D4C0003`) or is not UTF-8 (`D4C0001`, pointing
    /// at the first bad byte). The returned `SourceFile` in the error case
    /// holds the longest valid prefix, so that the diagnostic can be rendered
    /// against it.
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>) -> Result<SourceFile, Box<(SourceFile, Diagnostic)>> {
        let name = name.into();
        if bytes.len() > MAX_SOURCE_BYTES {
            let diagnostic = Diagnostic::new(
                Code::InputLimit,
                Span::point(0),
                format!("the file is larger than {MAX_SOURCE_BYTES} bytes, the most a policy may be"),
            )
            .help("split the policy, or generate it with fewer, broader patterns");
            return Err(Box::new((SourceFile { name, text: String::new() }, diagnostic)));
        }
        match String::from_utf8(bytes) {
            Ok(text) => Ok(SourceFile { name, text }),
            Err(err) => {
                let valid = err.utf8_error().valid_up_to();
                let bad_len = err.utf8_error().error_len().unwrap_or(1);
                let bytes = err.into_bytes();
                let shown = bytes.get(valid..valid + bad_len).unwrap_or_default();
                let hex: Vec<String> = shown.iter().map(|b| format!("0x{b:02x}")).collect();
                // Keep the valid prefix plus one replacement character so the
                // label has a character to underline.
                let mut text = String::from_utf8_lossy(bytes.get(..valid).unwrap_or_default()).into_owned();
                text.push('\u{FFFD}');
                let diagnostic = Diagnostic::new(
                    Code::InvalidUtf8,
                    Span::new(valid, valid + '\u{FFFD}'.len_utf8()),
                    format!("the file is not UTF-8: byte {} is {}", valid, hex.join(" ")),
                )
                .label("not UTF-8")
                .help("save the policy as UTF-8 text");
                Err(Box::new((SourceFile { name, text }, diagnostic)))
            }
        }
    }
}

/// Converts character indices (what `saphyr` reports) into byte offsets.
///
/// Built once per file in O(n); each conversion then walks at most
/// `STRIDE - 1` characters. ASCII files (the usual case) convert by identity.
pub struct CharToByte<'a> {
    text: &'a str,
    /// `checkpoints[k]` is the byte offset of character `k * STRIDE`;
    /// empty when the text is ASCII.
    checkpoints: Vec<usize>,
}

const STRIDE: usize = 256;

impl<'a> CharToByte<'a> {
    /// Indexes `text`.
    pub fn new(text: &'a str) -> Self {
        let checkpoints = if text.is_ascii() {
            Vec::new()
        } else {
            text.char_indices().step_by(STRIDE).map(|(byte, _)| byte).collect()
        };
        Self { text, checkpoints }
    }

    /// The byte offset of character `index`; the text's length when `index`
    /// is at or past its end.
    pub fn byte(&self, index: usize) -> usize {
        if self.checkpoints.is_empty() {
            return index.min(self.text.len());
        }
        let Some(&base) = self.checkpoints.get(index / STRIDE) else {
            return self.text.len();
        };
        let rest = self.text.get(base..).unwrap_or_default();
        match rest.char_indices().nth(index % STRIDE) {
            Some((offset, _)) => base + offset,
            None => self.text.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_to_byte_ascii_is_identity() {
        let c = CharToByte::new("abc");
        assert_eq!((c.byte(0), c.byte(2), c.byte(3), c.byte(99)), (0, 2, 3, 3));
    }

    #[test]
    fn char_to_byte_multibyte_across_checkpoints() {
        let text: String = "é".repeat(600) + "x";
        let c = CharToByte::new(&text);
        for i in [0, 1, 255, 256, 257, 511, 512, 599] {
            assert_eq!(c.byte(i), 2 * i, "char {i}");
        }
        assert_eq!(c.byte(600), 1200);
        assert_eq!(c.byte(601), 1201);
    }

    #[test]
    fn invalid_utf8_points_at_first_bad_byte() {
        let Err(err) = SourceFile::from_bytes("p.yaml", b"file:\n  \xff\xfe".to_vec()) else {
            unreachable!("invalid input accepted")
        };
        let (file, d) = *err;
        assert_eq!(d.code, Code::InvalidUtf8);
        assert_eq!(d.primary.span.start, 8);
        assert!(file.text.starts_with("file:\n  "));
        assert!(d.message.contains("0xff"), "{}", d.message);
    }

    #[test]
    fn oversized_input_is_refused_before_decoding() {
        let Err(err) = SourceFile::from_bytes("big", vec![b'a'; MAX_SOURCE_BYTES + 1]) else {
            unreachable!("oversized input accepted")
        };
        let d = err.1;
        assert_eq!(d.code, Code::InputLimit);
    }
}
