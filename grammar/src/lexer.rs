//! Stage 1: scenario text to tokens with byte spans.
//!
//! `logos` cuts the text ([`Raw`]); [`lex`] then turns each piece into a
//! [`Tok`] for the parser, decoding strings. Lexical problems (unknown
//! characters, unterminated strings, bad escapes) become [`ScenarioError`]s
//! and never stop the lexer: an unknown character is skipped, and an
//! unterminated string still yields a string token, so the parser sees the
//! rest of the line as written.

use logos::Logos;

use crate::ast::Span;
use crate::error::{visible, ScenarioError};

/// The pieces `logos` recognises. Newlines are plain whitespace.
#[derive(Logos, Debug, Clone, Copy, PartialEq, Eq)]
#[logos(skip r"\s+")]
// A byte order mark (an editor's, at the start) is invisible: read as space.
#[logos(skip "\u{FEFF}")]
// A comment runs to the end of its line, so the greedy repetition stops there.
#[logos(skip(r"#[^\n]*", allow_greedy = true))]
enum Raw {
    #[token("policy")]
    Policy,
    #[token("container")]
    Container,
    #[token("in")]
    In,
    #[token("as")]
    As,
    #[token("name")]
    Name,
    #[token("interactive")]
    Interactive,
    #[token("user")]
    User,
    #[token("image")]
    Image,
    #[token("namespace")]
    Namespace,
    #[token("pod")]
    Pod,
    #[token("label")]
    Label,
    #[token("cluster-id")]
    ClusterId,
    #[token("cluster-name")]
    ClusterName,
    #[token("volume")]
    Volume,
    #[token("file")]
    File,
    #[token("dir")]
    Dir,
    #[token("mode")]
    Mode,
    #[token("create")]
    Create,
    #[token("write")]
    Write,
    #[token("truncate")]
    Truncate,
    #[token("chmod")]
    Chmod,
    #[token("mknod")]
    Mknod,
    #[token("rename")]
    Rename,
    #[token("link")]
    Link,
    #[token("to")]
    To,
    #[token("unlink")]
    Unlink,
    #[token("exec")]
    Exec,
    #[token("fork")]
    Fork,
    #[token("memfd-exec")]
    MemfdExec,
    #[token("mkdir")]
    Mkdir,
    #[token("symlink")]
    Symlink,
    #[token("exchange")]
    Exchange,
    #[token("setfacl")]
    Setfacl,
    #[token("with")]
    With,
    #[token("allow")]
    Allow,
    #[token("log")]
    Log,
    #[token("alert")]
    Alert,
    #[token("block")]
    Block,
    /// A name that is not a keyword (`host` is one of these).
    #[regex(r"[A-Za-z_][A-Za-z0-9_-]*")]
    Ident,
    /// A word starting with a digit: an octal mode, a user id, or a
    /// selector name such as `1st-rule`. Its validity depends on where it
    /// stands.
    #[regex(r"[0-9][A-Za-z0-9_-]*")]
    Number,
    /// A bare absolute path.
    #[regex(r##"/[^\s"#,:\[\]{}=]*"##)]
    Path,
    /// A string closed on its own line.
    #[regex(r#""([^"\\\n]|\\[^\n])*""#)]
    Str,
    /// A string that the end of the line or of the text cuts off.
    #[regex(r#""([^"\\\n]|\\[^\n])*\\?"#)]
    UnterminatedStr,
    #[token("=>")]
    Arrow,
    #[token(":")]
    Colon,
    #[token(",")]
    Comma,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("=")]
    Eq,
}

/// A token as the parser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    Policy,
    Container,
    In,
    As,
    Name,
    Interactive,
    User,
    Image,
    Namespace,
    Pod,
    Label,
    ClusterId,
    ClusterName,
    Volume,
    File,
    Dir,
    Mode,
    Create,
    Write,
    Truncate,
    Chmod,
    Mknod,
    Rename,
    Link,
    To,
    Unlink,
    Exec,
    Fork,
    MemfdExec,
    Mkdir,
    Symlink,
    Exchange,
    Setfacl,
    With,
    Allow,
    Log,
    Alert,
    Block,
    Ident(&'a str),
    Number(&'a str),
    Path(&'a str),
    /// A decoded string.
    Str(String),
    Arrow,
    Colon,
    Comma,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Eq,
}

/// A token and its byte span, as lalrpop's external lexer interface wants it.
pub(crate) type Triple<'a> = (usize, Tok<'a>, usize);

/// Cuts `text` into tokens, appending every lexical problem to `errors`.
pub(crate) fn lex<'a>(text: &'a str, errors: &mut Vec<ScenarioError>) -> Vec<Triple<'a>> {
    let mut tokens = Vec::new();
    // Unknown characters in a row make one error.
    let mut unknown: Option<Span> = None;
    for (raw, span) in Raw::lexer(text).spanned() {
        let Ok(raw) = raw else {
            match &mut unknown {
                Some(run) if run.end == span.start => run.end = span.end,
                _ => {
                    flush_unknown(text, unknown.take(), errors);
                    unknown = Some(span);
                }
            }
            continue;
        };
        flush_unknown(text, unknown.take(), errors);
        let slice = text.get(span.clone()).unwrap_or("");
        let tok = match raw {
            Raw::Policy => Tok::Policy,
            Raw::Container => Tok::Container,
            Raw::In => Tok::In,
            Raw::As => Tok::As,
            Raw::Name => Tok::Name,
            Raw::Interactive => Tok::Interactive,
            Raw::User => Tok::User,
            Raw::Image => Tok::Image,
            Raw::Namespace => Tok::Namespace,
            Raw::Pod => Tok::Pod,
            Raw::Label => Tok::Label,
            Raw::ClusterId => Tok::ClusterId,
            Raw::ClusterName => Tok::ClusterName,
            Raw::Volume => Tok::Volume,
            Raw::File => Tok::File,
            Raw::Dir => Tok::Dir,
            Raw::Mode => Tok::Mode,
            Raw::Create => Tok::Create,
            Raw::Write => Tok::Write,
            Raw::Truncate => Tok::Truncate,
            Raw::Chmod => Tok::Chmod,
            Raw::Mknod => Tok::Mknod,
            Raw::Rename => Tok::Rename,
            Raw::Link => Tok::Link,
            Raw::To => Tok::To,
            Raw::Unlink => Tok::Unlink,
            Raw::Exec => Tok::Exec,
            Raw::Fork => Tok::Fork,
            Raw::MemfdExec => Tok::MemfdExec,
            Raw::Mkdir => Tok::Mkdir,
            Raw::Symlink => Tok::Symlink,
            Raw::Exchange => Tok::Exchange,
            Raw::Setfacl => Tok::Setfacl,
            Raw::With => Tok::With,
            Raw::Allow => Tok::Allow,
            Raw::Log => Tok::Log,
            Raw::Alert => Tok::Alert,
            Raw::Block => Tok::Block,
            Raw::Ident => Tok::Ident(slice),
            Raw::Number => Tok::Number(slice),
            Raw::Path => Tok::Path(slice),
            Raw::Str => {
                // Without the quotes: the regex guarantees both, one byte each.
                let body = slice.get(1..slice.len().saturating_sub(1)).unwrap_or("");
                Tok::Str(unescape(body, span.start + 1, errors))
            }
            Raw::UnterminatedStr => {
                errors.push(ScenarioError::with_help(
                    span.clone(),
                    "unterminated string",
                    "close it with `\"` on the same line",
                ));
                let body = slice.get(1..).unwrap_or("");
                let body = body.strip_suffix('\\').unwrap_or(body);
                Tok::Str(unescape(body, span.start + 1, errors))
            }
            Raw::Arrow => Tok::Arrow,
            Raw::Colon => Tok::Colon,
            Raw::Comma => Tok::Comma,
            Raw::LBracket => Tok::LBracket,
            Raw::RBracket => Tok::RBracket,
            Raw::LBrace => Tok::LBrace,
            Raw::RBrace => Tok::RBrace,
            Raw::Eq => Tok::Eq,
        };
        tokens.push((span.start, tok, span.end));
    }
    flush_unknown(text, unknown, errors);
    tokens
}

/// Reports a run of characters no token starts with.
fn flush_unknown(text: &str, run: Option<Span>, errors: &mut Vec<ScenarioError>) {
    let Some(span) = run else { return };
    let chars = text.get(span.clone()).unwrap_or("");
    let shown = visible(chars);
    let message = if chars.chars().nth(1).is_some() {
        format!("unexpected characters `{shown}`")
    } else {
        format!("unexpected character `{shown}`")
    };
    let help = if chars.starts_with('\'') {
        "strings are written in double quotes: `\"...\"`"
    } else if chars.starts_with(['.', '~']) {
        "a bare path starts with `/`; quote any other path: `\"../x\"`"
    } else {
        "outside quotes, a scenario has only names, `\"strings\"`, `/paths`, octal modes, \
         `=>`, `:`, `,`, `[`, `]`, `{`, `}`, `=` and `#` comments"
    };
    errors.push(ScenarioError::with_help(span, message, help));
}

/// Decodes the escapes of a string's body, which starts at byte `base`.
/// A bad escape is reported at its span and kept as written.
fn unescape(body: &str, base: usize, errors: &mut Vec<ScenarioError>) -> String {
    const ESCAPES: &str = "the escapes are `\\\"`, `\\\\`, `\\n`, `\\t`, `\\0` and `\\u{...}`";
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else {
            // A lone `\` at the end of an unterminated string, already reported.
            break;
        };
        match e {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            '0' => out.push('\0'),
            'u' => {
                // `\u{` 1 to 6 hex digits `}`, a Unicode scalar value.
                let mut end = at + 2;
                let mut digits = String::new();
                let mut closed = false;
                if chars.next_if(|&(_, c)| c == '{').is_some() {
                    end += 1;
                    while let Some((i, c)) = chars.next_if(|&(_, c)| c.is_ascii_hexdigit()) {
                        digits.push(c);
                        end = i + 1;
                    }
                    if let Some((i, _)) = chars.next_if(|&(_, c)| c == '}') {
                        closed = true;
                        end = i + 1;
                    }
                }
                let written = body.get(at..end).unwrap_or("");
                let value = if closed && (1..=6).contains(&digits.len()) {
                    u32::from_str_radix(&digits, 16).ok().and_then(char::from_u32)
                } else {
                    None
                };
                match value {
                    Some(c) => out.push(c),
                    None => {
                        errors.push(ScenarioError::with_help(
                            base + at..base + end,
                            format!("invalid unicode escape `{}`", visible(written)),
                            "write `\\u{` and 1 to 6 hex digits of a Unicode scalar value, then `}`",
                        ));
                        out.push_str(written);
                    }
                }
            }
            other => {
                let end = at + 1 + other.len_utf8();
                errors.push(ScenarioError::with_help(
                    base + at..base + end,
                    format!("unknown escape `\\{}`", visible(&other.to_string())),
                    ESCAPES,
                ));
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}
