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

/// How a policy embedded in a string of the file (a Fleet package
/// policy's `configuration`) is written there: what a fix's replacement
/// text must be encoded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringStyle {
    /// Written verbatim (plain or quoted on one line, no escapes): a
    /// replacement with a line break or a quote cannot be written there.
    Verbatim,
    /// A double-quoted (JSON) string: replacements are escaped as JSON.
    DoubleQuoted,
    /// A block literal (`|`): each line break of a replacement is followed
    /// by the block's indentation.
    Literal {
        /// The block's indentation, in spaces.
        indent: usize,
    },
    /// Decoded by rules d4cc does not map character by character (folded
    /// blocks, multi-line quoted strings): every byte of the policy maps to
    /// the whole string, and no fix is offered.
    Opaque,
}

/// One run of the decoded text and the bytes of the file it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    /// Where the run starts in the decoded text.
    decoded: usize,
    /// Where it starts in the file.
    file: usize,
    /// Its length in the decoded text.
    decoded_len: usize,
    /// Its length in the file.
    file_len: usize,
    /// Whether it was written verbatim and maps byte for byte; otherwise
    /// (an escape) every byte of the run maps to all of its bytes in the file.
    linear: bool,
}

/// Where each byte of a string's decoded text was written in the file: the
/// one place, with [`CharToByte`], where positions of the text a stage read
/// become positions of the file as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Embedding {
    /// The string's span in the file, quotes or block header included.
    pub whole: Span,
    /// How the string is written.
    pub style: StringStyle,
    /// Runs in decoded order, covering the decoded text without gaps.
    runs: Vec<Run>,
    /// The decoded text's length.
    decoded_len: usize,
    /// Where the decoded text ends in the file (before a closing quote).
    file_end: usize,
}

impl Embedding {
    /// A map built from runs; see [`EmbeddingBuilder`].
    fn new(whole: Span, style: StringStyle, runs: Vec<Run>, decoded_len: usize, file_end: usize) -> Self {
        Self { whole, style, runs, decoded_len, file_end }
    }

    /// A map that sends every byte to the whole string (`Opaque`).
    pub fn opaque(whole: Span, decoded_len: usize) -> Self {
        Self::new(whole, StringStyle::Opaque, Vec::new(), decoded_len, whole.end)
    }

    /// The file bytes of decoded byte `at`: one byte when written verbatim,
    /// the whole escape otherwise.
    fn unit(&self, at: usize) -> Option<Span> {
        let index = self.runs.partition_point(|r| r.decoded + r.decoded_len <= at);
        let run = self.runs.get(index)?;
        if at < run.decoded {
            return None;
        }
        if run.linear {
            let file = run.file + (at - run.decoded);
            Some(Span::new(file, file + 1))
        } else {
            Some(Span::new(run.file, run.file + run.file_len))
        }
    }

    /// Where the decoded position `at` (between bytes) is in the file.
    fn point(&self, at: usize) -> usize {
        if at >= self.decoded_len {
            return self.file_end;
        }
        self.unit(at).map_or(self.whole.start, |u| u.start)
    }

    /// The file's span of the decoded span `span`.
    pub fn to_file(&self, span: Span) -> Span {
        if self.style == StringStyle::Opaque {
            return self.whole;
        }
        if span.end <= span.start {
            return Span::point(self.point(span.start));
        }
        let start = self.point(span.start);
        let end = self.unit(span.end - 1).map_or(self.file_end, |u| u.end);
        Span::new(start, end.max(start))
    }

    /// `replacement` (decoded text) as it must be written in the file at
    /// `span` (a file span made by [`Embedding::to_file`]), or `None` when it
    /// cannot be written there faithfully.
    pub fn encode(&self, replacement: &str) -> Option<String> {
        match self.style {
            StringStyle::Opaque => None,
            StringStyle::Verbatim => {
                (!replacement.contains(['\n', '\r', '"', '\'', '\\'])).then(|| replacement.to_string())
            }
            StringStyle::DoubleQuoted => {
                let quoted = serde_json::to_string(replacement).ok()?;
                quoted.get(1..quoted.len().saturating_sub(1)).map(str::to_string)
            }
            StringStyle::Literal { indent } => {
                let pad = " ".repeat(indent);
                Some(replacement.split('\n').collect::<Vec<_>>().join(&format!("\n{pad}")))
            }
        }
    }
}

/// Builds an [`Embedding`] while a string is decoded.
pub struct EmbeddingBuilder {
    runs: Vec<Run>,
    decoded: usize,
}

impl Default for EmbeddingBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EmbeddingBuilder {
    /// An empty map.
    pub fn new() -> Self {
        Self { runs: Vec::new(), decoded: 0 }
    }

    /// `len` decoded bytes written verbatim at file byte `file`.
    pub fn verbatim(&mut self, file: usize, len: usize) {
        if len == 0 {
            return;
        }
        if let Some(last) = self.runs.last_mut() {
            if last.linear && last.file + last.file_len == file {
                last.decoded_len += len;
                last.file_len += len;
                self.decoded += len;
                return;
            }
        }
        self.runs.push(Run { decoded: self.decoded, file, decoded_len: len, file_len: len, linear: true });
        self.decoded += len;
    }

    /// `decoded_len` decoded bytes written as the `file_len` bytes at `file`
    /// (an escape, or a line break with the next line's indentation).
    pub fn escape(&mut self, file: usize, file_len: usize, decoded_len: usize) {
        if decoded_len == 0 {
            return;
        }
        self.runs.push(Run { decoded: self.decoded, file, decoded_len, file_len, linear: false });
        self.decoded += decoded_len;
    }

    /// Keeps the first `len` decoded bytes (a block's chomping).
    pub fn truncate(&mut self, len: usize) {
        self.runs.retain(|r| r.decoded < len);
        if let Some(last) = self.runs.last_mut() {
            if last.decoded + last.decoded_len > len && last.linear {
                last.decoded_len = len - last.decoded;
                last.file_len = last.decoded_len;
            }
        }
        self.decoded = self.decoded.min(len);
    }

    /// The file byte after the last run, if any.
    pub fn end(&self) -> Option<usize> {
        self.runs.last().map(|r| r.file + r.file_len)
    }

    /// The map of a string spanning `whole`, whose decoded text ends at file
    /// byte `file_end`.
    pub fn finish(self, whole: Span, style: StringStyle, file_end: usize) -> Embedding {
        Embedding::new(whole, style, self.runs, self.decoded, file_end)
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
