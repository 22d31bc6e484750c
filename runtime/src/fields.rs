//! The integration's field mappings, as facts the documents must keep
//! (`fields.txt`), and a check of a document against them.
//!
//! In: a document as JSON. Out: what in it breaks the table: a field the
//! table does not know, a value of the wrong JSON type for the field's
//! mapping (a string where a number is mapped), an array where one value
//! is written, a number out of its type's range (`short`), a date that is
//! not RFC 3339 UTC, an address that is not one.
//!
//! Invariant: the table is the one place these facts are kept; the tests
//! of the documents ([`crate::ecs`]'s, `tests/daemon.rs`, the VM suite's)
//! check every document they make with [`check`].

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

/// The table, as kept in the repository.
pub const TABLE: &str = include_str!("fields.txt");

/// The relatives whose fields `process.RELATIVE.*` rows stand for.
pub const RELATIVES: [&str; 4] = ["parent", "session_leader", "group_leader", "entry_leader"];

/// A field's mapped type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// `keyword`, `constant_keyword`: text.
    Keyword,
    /// `short`: an integer in -32768..=32767.
    Short,
    /// `long`: an integer.
    Long,
    /// `date`: RFC 3339 UTC text.
    Date,
    /// `boolean`.
    Boolean,
    /// `ip`: an IPv4 or IPv6 address as text.
    Ip,
    /// An object whose fields are rows of their own.
    Object,
}

/// One value or an array of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A single value.
    One,
    /// An array of values.
    Many,
}

/// The table, read: field to type and shape.
pub fn table() -> &'static HashMap<String, (Type, Shape)> {
    static TABLE_READ: OnceLock<HashMap<String, (Type, Shape)>> = OnceLock::new();
    TABLE_READ.get_or_init(|| read(TABLE).unwrap_or_default())
}

/// Reads a table's text; an error names the line that is not a row.
pub fn read(text: &str) -> Result<HashMap<String, (Type, Shape)>, String> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || format!("fields.txt line {}: `{line}` is not `field type one|many`", n + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        let &[field, kind, shape] = words.as_slice() else { return Err(bad()) };
        let kind = match kind {
            "keyword" | "constant_keyword" => Type::Keyword,
            "short" => Type::Short,
            "long" => Type::Long,
            "date" => Type::Date,
            "boolean" => Type::Boolean,
            "ip" => Type::Ip,
            "object" => Type::Object,
            _ => return Err(bad()),
        };
        let shape = match shape {
            "one" => Shape::One,
            "many" => Shape::Many,
            _ => return Err(bad()),
        };
        match field.strip_prefix("process.RELATIVE.") {
            Some(rest) => {
                for relative in RELATIVES {
                    out.insert(format!("process.{relative}.{rest}"), (kind, shape));
                }
            }
            None => {
                out.insert(field.to_owned(), (kind, shape));
            }
        }
    }
    Ok(out)
}

/// What in `document` breaks the table; empty when nothing does.
pub fn check(document: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    match document {
        Value::Object(members) => {
            for (key, value) in members {
                walk(key, value, &mut problems);
            }
        }
        other => problems.push(format!("a document is an object, not {other}")),
    }
    problems
}

/// Checks `value`, the field `path` (or an object of fields below it).
fn walk(path: &str, value: &Value, problems: &mut Vec<String>) {
    let Some(&(kind, shape)) = table().get(path) else {
        match value {
            // Not a field: an object of fields (`process`, `host.os`).
            Value::Object(members) => {
                for (key, inner) in members {
                    walk(&format!("{path}.{key}"), inner, problems);
                }
            }
            _ => problems.push(format!("`{path}` is in no row of fields.txt")),
        }
        return;
    };
    match (shape, value) {
        (Shape::One, Value::Array(_)) => problems.push(format!("`{path}` is an array, mapped as one value: {value}")),
        (Shape::Many, Value::Array(items)) => {
            for item in items {
                one(path, kind, item, problems);
            }
        }
        (Shape::Many, _) => problems.push(format!("`{path}` is one value, written as an array elsewhere: {value}")),
        (Shape::One, _) => one(path, kind, value, problems),
    }
}

/// Checks one value of the field `path`, of type `kind`.
fn one(path: &str, kind: Type, value: &Value, problems: &mut Vec<String>) {
    let fits = match (kind, value) {
        (Type::Keyword, Value::String(_)) | (Type::Boolean, Value::Bool(_)) => true,
        (Type::Short, Value::Number(n)) => n.as_i64().is_some_and(|n| i16::try_from(n).is_ok()),
        (Type::Long, Value::Number(n)) => n.as_i64().is_some(),
        (Type::Date, Value::String(s)) => is_date(s),
        (Type::Ip, Value::String(s)) => s.parse::<std::net::IpAddr>().is_ok(),
        (Type::Object, Value::Object(members)) => {
            for (key, inner) in members {
                walk(&format!("{path}.{key}"), inner, problems);
            }
            true
        }
        _ => false,
    };
    if !fits {
        problems.push(format!("`{path}` is {value}, which a {kind:?} mapping does not take"));
    }
}

/// Fails the test that made `body` (a document) when it breaks the table:
/// every document the runtime's unit tests make goes through here.
#[cfg(test)]
pub(crate) fn assert_conforms(body: &[u8]) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let problems = check(&value);
    assert!(problems.is_empty(), "a document breaks fields.txt: {problems:#?}\n{value:#}");
}

/// Whether `text` is RFC 3339 UTC as the documents write it:
/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| b.get(range).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let fixed = digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && at(10, b'T')
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19);
    let rest = b.get(19..).unwrap_or_default();
    let fraction = match rest.strip_prefix(b".") {
        Some(f) => f.strip_suffix(b"Z").is_some_and(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit)),
        None => rest == b"Z",
    };
    fixed && fraction
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_reads_whole() {
        let table = read(TABLE).unwrap_or_default();
        assert!(table.len() > 100, "{}", table.len());
        assert_eq!(table.get("cloud_defend.package_policy_revision"), Some(&(Type::Short, Shape::One)));
        assert_eq!(table.get("process.session_leader.interactive"), Some(&(Type::Boolean, Shape::One)));
        assert_eq!(table.get("host.ip"), Some(&(Type::Ip, Shape::Many)));
        assert!(read("x keyword twice\n").is_err_and(|e| e.contains("line 1")));
        assert!(read("x text one\n").is_err());
    }

    #[test]
    fn documents_that_break_the_table_are_told_why() {
        let good = json!({
            "@timestamp": "2026-11-18T11:06:40.123Z",
            "user": {"id": "0", "name": "root"},
            "process": {"pid": 4, "args": ["sh", "-c"], "previous": [{"executable": "/bin/sh", "args": []}],
                        "parent": {"same_as_process": false}},
            "host": {"ip": ["10.0.0.1", "::1"], "pid_ns_ino": "4026531836"},
            "cloud_defend": {"package_policy_revision": 32767, "hook_point": ["lsm__file_open"]},
        });
        assert_eq!(check(&good), Vec::<String>::new());
        let bad = json!({
            "@timestamp": "2026-11-18 11:06:40",
            "user": {"id": 0},
            "process": {"pid": "4", "args": "sh", "previous": [{"executable": ["/bin/sh"]}], "unheard_of": 1},
            "host": {"ip": ["10.0.0.300"], "pid_ns_ino": 4026531836u64},
            "cloud_defend": {"package_policy_revision": 32768, "hook_point": "lsm__file_open"},
            "event": {"type": ["start"], "created": null},
        });
        let problems = check(&bad);
        for field in [
            "@timestamp",
            "user.id",
            "process.pid",
            "process.args",
            "process.previous.executable",
            "process.unheard_of",
            "host.ip",
            "host.pid_ns_ino",
            "cloud_defend.package_policy_revision",
            "cloud_defend.hook_point",
            "event.created",
        ] {
            assert!(problems.iter().any(|p| p.starts_with(&format!("`{field}`"))), "{field}: {problems:#?}");
        }
        assert_eq!(problems.len(), 11, "{problems:#?}");
        assert!(!check(&json!([1])).is_empty());
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert!(is_date("1970-01-01T00:00:00.000Z") && is_date("2026-01-01T00:00:00Z"));
        for bad in ["2026-01-01T00:00:00", "2026-01-01 00:00:00Z", "2026-01-01T00:00:00.Z", "x"] {
            assert!(!is_date(bad), "{bad}");
        }
    }
}
