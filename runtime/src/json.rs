//! A streaming JSON writer for the documents: members are written straight
//! into one `String`, with no tree of values in between (building
//! `serde_json::Value` trees cost three quarters of the pipeline's time in
//! allocations). Absent values (`None`, empty lists) are left out, as ECS
//! documents leave unknown fields out.
//!
//! Invariant: the output is well-formed JSON when every `open*` is matched
//! by its `close*` (the writer does not check it; the tests of the
//! documents parse every output).

use std::fmt::Write as _;

/// The writer.
#[derive(Debug, Default)]
pub struct Json {
    out: String,
    /// Per open object or array: whether a member was written in it.
    written: Vec<bool>,
}

impl Json {
    /// A writer with `capacity` bytes reserved.
    pub fn with_capacity(capacity: usize) -> Json {
        Json { out: String::with_capacity(capacity), written: Vec::with_capacity(8) }
    }

    /// The text written.
    pub fn finish(self) -> String {
        self.out
    }

    /// Goes on writing into `text`, an object opened with members in it
    /// (one level deep).
    pub fn resume(text: String) -> Json {
        Json { out: text, written: depths(true) }
    }

    /// A writer of bare members (`"a":1,"b":2`, no braces), with
    /// `capacity` bytes reserved: text for [`Json::raw_members`].
    pub fn members(capacity: usize) -> Json {
        Json { out: String::with_capacity(capacity), written: depths(false) }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        &self.out
    }

    fn separate(&mut self) {
        if let Some(written) = self.written.last_mut() {
            if *written {
                self.out.push(',');
            }
            *written = true;
        }
    }

    fn key(&mut self, key: &str) {
        self.separate();
        string(&mut self.out, key);
        self.out.push(':');
    }

    /// Opens the top-level object (or an object in an array).
    pub fn open(&mut self) -> &mut Self {
        self.separate();
        self.out.push('{');
        self.written.push(false);
        self
    }

    /// Opens the object member `key`.
    pub fn object(&mut self, key: &str) -> &mut Self {
        self.begin(key, '{')
    }

    /// Closes an object.
    pub fn close(&mut self) -> &mut Self {
        self.end('}')
    }

    /// Opens the array member `key`.
    pub fn array(&mut self, key: &str) -> &mut Self {
        self.begin(key, '[')
    }

    /// Closes an array.
    pub fn close_array(&mut self) -> &mut Self {
        self.end(']')
    }

    /// Opens the member `key`, an object or an array by its `bracket`.
    fn begin(&mut self, key: &str, bracket: char) -> &mut Self {
        self.key(key);
        self.out.push(bracket);
        self.written.push(false);
        self
    }

    /// Closes the innermost object or array with `bracket`.
    fn end(&mut self, bracket: char) -> &mut Self {
        self.written.pop();
        self.out.push(bracket);
        self
    }

    /// `key: "value"`.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        string(&mut self.out, value);
        self
    }

    /// `key: "value"` when there is one.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.str(key, value);
        }
        self
    }

    /// `key: n`.
    pub fn num(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        self.key(key);
        let _ = write!(self.out, "{value}");
        self
    }

    /// `key: n`, an unsigned integer, written without the formatting
    /// machinery (several per document).
    pub fn uint(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        push_uint(&mut self.out, value);
        self
    }

    /// `key: true|false`.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    /// `key: ["a", ...]`, empty or not.
    pub fn all_strs<S: AsRef<str>>(&mut self, key: &str, values: &[S]) -> &mut Self {
        self.array(key);
        for value in values {
            self.separate();
            string(&mut self.out, value.as_ref());
        }
        self.close_array()
    }

    /// `key: ["a", ...]`, left out when empty.
    pub fn strs<S: AsRef<str>>(&mut self, key: &str, values: &[S]) -> &mut Self {
        if values.is_empty() {
            return self;
        }
        self.all_strs(key, values)
    }

    /// Members already serialised (`"a":1,"b":2`, no braces), spliced in.
    pub fn raw_members(&mut self, members: &str) -> &mut Self {
        if !members.is_empty() {
            self.separate();
            self.out.push_str(members);
        }
        self
    }
}

/// The open levels' flags, room for the documents' depth made up front
/// (one level open, `written` or not).
fn depths(written: bool) -> Vec<bool> {
    let mut depths = Vec::with_capacity(8);
    depths.push(written);
    depths
}

/// Appends `n` in decimal.
pub(crate) fn push_uint(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    for &d in digits.get(at..).unwrap_or_default() {
        out.push(char::from(d));
    }
}

/// Whether `value` holds a byte a JSON string must escape: a control
/// character, `"` or `\\`. The check has no early exit, so that it is
/// vectorised (many bytes at a time): most strings hold none.
pub(crate) fn needs_escape(value: &str) -> bool {
    value.bytes().fold(false, |any, b| any | (b < 0x20) | (b == b'"') | (b == b'\\'))
}

/// Appends `value` as a JSON string.
fn string(out: &mut String, value: &str) {
    out.push('"');
    // Most strings need no escape: one check, then one copy.
    if !needs_escape(value) {
        out.push_str(value);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, b) in value.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(value.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(value.get(start..).unwrap_or_default());
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_parses_back_with_every_escape() {
        let nasty = "a\"b\\c\nd\te\u{1}f\u{7f}é☃";
        let mut j = Json::default();
        j.open().str("s", nasty).num("n", 42).bool("b", true).opt_str("none", None).strs::<&str>("empty", &[]);
        j.uint("zero", 0).uint("max", u64::MAX).uint("pid", 4_194_304);
        j.object("o").strs("list", &["x", nasty]).close();
        j.raw_members("\"raw\":[1,2]").all_strs::<&str>("kept", &[]);
        j.array("objects").open().num("a", 1).close().open().close().close_array();
        let mut members = Json::members(16);
        members.num("m", 1).str("m2", "x");
        j.raw_members(members.as_str()).close();
        let text = j.finish();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(value["s"], nasty);
        assert_eq!(value["n"], 42);
        assert_eq!(
            (&value["zero"], &value["max"], &value["pid"]),
            (&serde_json::json!(0), &serde_json::json!(u64::MAX), &serde_json::json!(4_194_304))
        );
        assert_eq!(value["o"]["list"][1], nasty);
        assert_eq!(value["raw"][1], 2);
        assert_eq!(value["kept"], serde_json::json!([]));
        assert_eq!(value["objects"], serde_json::json!([{"a": 1}, {}]));
        assert_eq!((&value["m"], &value["m2"]), (&serde_json::json!(1), &serde_json::json!("x")));
        assert!(value.get("none").is_none() && value.get("empty").is_none());
    }
}
