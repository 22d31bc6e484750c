//! The JSON Schema of the policy format, and YAML-to-JSON conversion.
//!
//! Input: the tables of [`crate::ast`] (conditions, legacy and unsupported
//! keys) and [`crate::model`] (operations, actions). Output: a draft 2020-12
//! JSON Schema for editors (yaml-language-server) and other tools, printed by
//! `d4cc schema`.
//!
//! Invariants:
//! - the schema is generated from those tables, never from a second list of
//!   keys, so a new condition, legacy key or operation reaches it unaided;
//! - the schema rejects only what the linter reports as an error, never what
//!   it merely warns about (legacy keys are accepted and marked `deprecated`,
//!   a value listed twice is accepted). It is coarser than the linter: it
//!   checks the shape of the document, names, value types, vocabularies and
//!   simple bounds, but not the pattern syntax, references between responses
//!   and selectors, exclusive conditions, or the limits per policy.

use crate::ast::{ConditionKey, PolicyKind, ValueSyntax, LEGACY_KEYS, ORCHESTRATOR_TYPE_KEY, UNSUPPORTED_KEYS};
use crate::limits::{MAX_PATH_BYTES, MAX_SELECTOR_NAME_BYTES, MAX_VALUE_BYTES};
use crate::model::{Actions, Operation};
use crate::yaml::{Node, NodeKind, ScalarType};
use d4c_artifact::net::Transport;
use d4c_artifact::patterns::TextSyntax;
use serde_json::{json, Map, Number, Value};

/// The schema's `$id`.
pub const SCHEMA_ID: &str = "https://example.invalid/d4c/policy.schema.json";

/// The JSON Schema dialect the schema is written in.
pub const SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The pattern of a selector name (the linter's `D4C0013` rule, as a regex).
pub const SELECTOR_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]*$";

/// The JSON Schema of a whole policy (draft 2020-12).
///
/// Every property carries a `description`, so that editors show it on hover.
/// Keys the linter rejects (unknown keys, [`UNSUPPORTED_KEYS`], conditions of
/// the other selector type) are rejected by `additionalProperties: false`;
/// legacy keys are accepted and marked `deprecated`.
pub fn policy_schema() -> Value {
    let mut defs = Map::new();
    for kind in PolicyKind::ALL {
        defs.insert(section_def(kind), section_schema(kind));
        defs.insert(selector_def(kind), selector_schema(kind));
    }
    defs.insert("response".into(), response_schema());
    defs.insert("selectorName".into(), selector_name_schema());
    defs.insert("selectorReferences".into(), selector_references_schema());
    json!({
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "d4c policy",
        "description": "A Defend-for-Containers policy: file and process selectors, and the responses (log, alert, block) to the operations they match. Checked fully by `d4cc lint`.",
        "type": "object",
        "properties": {
            "version": {
                "type": "string",
                "minLength": 1,
                "description": "An optional version string of the policy, chosen by its authors.",
            },
            "file": {
                "$ref": format!("#/$defs/{}", section_def(PolicyKind::File)),
                "description": "File selectors and responses: operations on files in containers.",
            },
            "process": {
                "$ref": format!("#/$defs/{}", section_def(PolicyKind::Process)),
                "description": "Process selectors and responses: fork and exec in containers.",
            },
            "network": {
                "$ref": format!("#/$defs/{}", section_def(PolicyKind::Network)),
                "description": "Network selectors and responses: connect, sendTo, bind and listen on IPv4 and IPv6 sockets in containers. Checked by `d4cc lint`; this version cannot compile it (D4C0044).",
            },
        },
        "additionalProperties": false,
        "anyOf": [{ "required": ["file"] }, { "required": ["process"] }, { "required": ["network"] }],
        "$defs": defs,
    })
}

/// The `$defs` name of a section of `kind`.
fn section_def(kind: PolicyKind) -> String {
    format!("{}Section", kind.as_str())
}

/// The `$defs` name of a selector of `kind`.
fn selector_def(kind: PolicyKind) -> String {
    format!("{}Selector", kind.as_str())
}

fn section_schema(kind: PolicyKind) -> Value {
    let k = kind.as_str();
    json!({
        "type": "object",
        "description": format!("The {k} selectors and the responses that use them."),
        "properties": {
            "selectors": {
                "type": "array",
                "minItems": 1,
                "items": { "$ref": format!("#/$defs/{}", selector_def(kind)) },
                "description": format!("{k} selectors: each a named conjunction of conditions (AND across conditions, OR within a list)."),
            },
            "responses": {
                "type": "array",
                "minItems": 1,
                "items": { "$ref": "#/$defs/response" },
                "description": format!("Responses: each fires when one of its `match` {k} selectors matches and none of its `exclude` selectors does. Every response is evaluated; the actions of those that fire are combined."),
            },
        },
        "required": ["selectors", "responses"],
        "additionalProperties": false,
    })
}

fn selector_schema(kind: PolicyKind) -> Value {
    let k = kind.as_str();
    let mut properties = Map::new();
    properties.insert(
        "name".into(),
        json!({
            "$ref": "#/$defs/selectorName",
            "description": "The selector's name, unique among the selectors of its type; responses refer to it.",
        }),
    );
    let applies = |key: &ConditionKey| key.applies().to(kind);
    for key in ConditionKey::ALL.iter().copied().filter(applies) {
        let mut schema = condition_schema(kind, key);
        set(&mut schema, "description", Value::String(key.doc().into()));
        properties.insert(key.key().into(), schema);
    }
    for &(legacy, modern) in LEGACY_KEYS.iter().filter(|(_, modern)| applies(modern)) {
        let mut schema = condition_schema(kind, modern);
        let description =
            format!("Deprecated: the old name of `{}` (`d4cc fix` renames it). {}", modern.key(), modern.doc());
        set(&mut schema, "description", Value::String(description));
        set(&mut schema, "deprecated", Value::Bool(true));
        properties.insert(legacy.into(), schema);
    }
    properties.insert(
        ORCHESTRATOR_TYPE_KEY.into(),
        json!({
            "type": "array",
            "minItems": 1,
            "items": { "enum": ["kubernetes"] },
            "deprecated": true,
            "description": "Deprecated and always true: every container d4c protects is a Kubernetes pod. Remove it.",
        }),
    );
    let unsupported: Vec<String> = UNSUPPORTED_KEYS.iter().map(|(key, why)| format!("`{key}` ({why})")).collect();
    json!({
        "type": "object",
        "description": format!(
            "A {k} selector: a name and at least one condition. Older keys that d4c does not support are rejected: {}.",
            unsupported.join("; "),
        ),
        "properties": properties,
        "required": ["name"],
        "minProperties": 2,
        "additionalProperties": false,
    })
}

/// The value schema of condition `key` in a selector of `kind`.
fn condition_schema(kind: PolicyKind, key: ConditionKey) -> Value {
    let item = match key.syntax() {
        ValueSyntax::Flag => return json!({ "type": "boolean" }),
        ValueSyntax::Operation => {
            let names: Vec<&str> = Operation::ALL.iter().filter(|o| o.kind() == kind).map(|o| o.name()).collect();
            json!({ "enum": names })
        }
        // Character counts never exceed byte counts, so these bounds accept
        // everything the linter's byte limits do.
        ValueSyntax::Path => json!({ "type": "string", "minLength": 1, "maxLength": MAX_PATH_BYTES, "pattern": "^/" }),
        // An image name is a repository's last component (`D4C0038`): no
        // `/`, nor a tag or digest.
        ValueSyntax::Text(TextSyntax::ImageName) => json!({
            "type": "string",
            "minLength": 1,
            "maxLength": d4c_artifact::normalize::IMAGE_NAME_BYTES + 1,
            "pattern": "^[^/:@]+$",
        }),
        // A uid, as a YAML integer or as decimal text without a leading
        // zero (`D4C0038`) or a wildcard.
        ValueSyntax::Text(TextSyntax::UserId) => json!({
            "anyOf": [
                { "type": "integer", "minimum": 0, "maximum": d4c_artifact::patterns::MAX_USER_ID },
                { "type": "string", "pattern": "^(0|[1-9][0-9]{0,9})$" },
            ],
        }),
        ValueSyntax::Label | ValueSyntax::Text(_) => {
            json!({ "type": "string", "minLength": 1, "maxLength": MAX_VALUE_BYTES })
        }
        // The shape only (digits, dots, colons, hex, a prefix length): the
        // linter checks the numbers' ranges and the host bits (`D4C0043`).
        ValueSyntax::Address => json!({
            "type": "string",
            "minLength": 2,
            "maxLength": MAX_VALUE_BYTES,
            "pattern": "^([0-9]{1,3}(\\.[0-9]{1,3}){3}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)(/[0-9]{1,3})?$",
        }),
        ValueSyntax::Port => json!({
            "anyOf": [
                { "type": "integer", "minimum": 0, "maximum": u16::MAX },
                { "type": "string", "pattern": "^[0-9]{1,5}(-[0-9]{1,5})?$" },
            ],
        }),
        ValueSyntax::Transport => json!({ "enum": Transport::ALL.iter().map(|t| t.name()).collect::<Vec<_>>() }),
    };
    // No `uniqueItems`: a value listed twice is only a warning (`D4C0023`).
    json!({ "type": "array", "minItems": 1, "items": item })
}

fn response_schema() -> Value {
    let all = Actions::LOG.union(Actions::ALERT).union(Actions::BLOCK).names();
    let block = Actions::BLOCK.names();
    let alert = Actions::ALERT.names();
    json!({
        "type": "object",
        "description": "A response: fires when a `match` selector matches and no `exclude` selector does.",
        "properties": {
            "match": {
                "$ref": "#/$defs/selectorReferences",
                "description": "Names of selectors of the same type; the response fires when any of them matches (OR).",
            },
            "exclude": {
                "anyOf": [{ "$ref": "#/$defs/selectorReferences" }, { "type": "array", "maxItems": 0 }],
                "description": "Names of selectors of the same type; the response does not fire when any of them matches. An empty list, as Kibana's editor saves it, excludes nothing (a warning).",
            },
            "actions": {
                "type": "array",
                "minItems": 1,
                "items": { "enum": all },
                "description": "What to do: log (a document to the file or process data stream), alert (a document to the alerts data stream), block (refuse the operation; needs alert).",
                "if": { "contains": { "enum": block } },
                "then": { "contains": { "enum": alert } },
            },
        },
        "required": ["match", "actions"],
        "additionalProperties": false,
    })
}

fn selector_name_schema() -> Value {
    json!({
        "type": "string",
        "pattern": SELECTOR_NAME_PATTERN,
        "maxLength": MAX_SELECTOR_NAME_BYTES,
        "description": "A selector name: letters, digits, `_` and `-`, starting with a letter or digit.",
    })
}

fn selector_references_schema() -> Value {
    json!({
        "type": "array",
        "minItems": 1,
        "items": { "type": "string", "minLength": 1 },
    })
}

/// Sets `key` of `schema` when it is an object.
fn set(schema: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = schema {
        map.insert(key.into(), value);
    }
}

/// Converts a parsed YAML node to JSON by the YAML 1.2 core schema.
///
/// Strings, booleans and null map to themselves. An integer becomes a JSON
/// number when it fits an `i64` (decimal, `0x` hex or `0o` octal), else its
/// text; a float becomes a number when finite, else its text (`.inf`,
/// `.nan`). Map keys become their text (a collection key its JSON text); a
/// later duplicate key overwrites an earlier one, as most YAML loaders do.
pub fn yaml_to_json(node: &Node) -> Value {
    match &node.kind {
        NodeKind::Scalar(scalar) => match scalar.ty {
            ScalarType::Str => Value::String(scalar.value.clone()),
            ScalarType::Bool(b) => Value::Bool(b),
            ScalarType::Null => Value::Null,
            ScalarType::Int => parse_int(&scalar.value)
                .map_or_else(|| Value::String(scalar.value.clone()), |i| Value::Number(i.into())),
            ScalarType::Float => scalar
                .value
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map_or_else(|| Value::String(scalar.value.clone()), Value::Number),
        },
        NodeKind::Seq(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        NodeKind::Map(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let key = match &key.kind {
                    NodeKind::Scalar(scalar) => scalar.value.clone(),
                    NodeKind::Seq(_) | NodeKind::Map(_) => yaml_to_json(key).to_string(),
                };
                map.insert(key, yaml_to_json(value));
            }
            Value::Object(map)
        }
    }
}

/// A core-schema integer: `[-+]?[0-9]+`, `0x[0-9a-fA-F]+` or `0o[0-7]+`;
/// `None` when it does not fit an `i64`.
fn parse_int(text: &str) -> Option<i64> {
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok();
    }
    text.parse::<i64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Diagnostics;
    use crate::source::SourceFile;
    use crate::yaml;

    fn selector(kind: PolicyKind) -> Value {
        policy_schema()["$defs"][selector_def(kind)].clone()
    }

    fn yaml(text: &str) -> Value {
        let source = SourceFile::from_bytes("t.yaml", text.as_bytes().to_vec()).unwrap();
        let mut diagnostics = Diagnostics::default();
        let node = yaml::parse(&source, &mut diagnostics).unwrap();
        yaml_to_json(&node)
    }

    #[test]
    fn every_condition_key_is_a_property_of_its_selector_types_only() {
        for kind in PolicyKind::ALL {
            let properties = &selector(kind)["properties"];
            for key in ConditionKey::ALL {
                let property = &properties[key.key()];
                if key.applies().to(kind) {
                    assert_eq!(property["description"], key.doc(), "{} in {}", key.key(), kind.as_str());
                } else {
                    assert!(property.is_null(), "{} must not be a {} condition", key.key(), kind.as_str());
                }
            }
        }
    }

    #[test]
    fn every_legacy_key_is_deprecated_with_its_modern_value_schema() {
        for &(legacy, modern) in LEGACY_KEYS {
            let mut seen = false;
            for kind in PolicyKind::ALL {
                let properties = &selector(kind)["properties"];
                let property = &properties[legacy];
                if !modern.applies().to(kind) {
                    assert!(property.is_null());
                    continue;
                }
                seen = true;
                assert_eq!(property["deprecated"], true, "{legacy}");
                assert!(property["description"].as_str().unwrap().contains(&format!("`{}`", modern.key())), "{legacy}");
                let mut modern_schema = properties[modern.key()].clone();
                let mut legacy_schema = property.clone();
                for s in [&mut modern_schema, &mut legacy_schema] {
                    let map = s.as_object_mut().unwrap();
                    map.remove("description");
                    map.remove("deprecated");
                }
                assert_eq!(legacy_schema, modern_schema, "{legacy}");
            }
            assert!(seen, "{legacy} maps to no selector type");
        }
    }

    #[test]
    fn orchestrator_type_is_deprecated_and_unsupported_keys_are_absent() {
        for kind in PolicyKind::ALL {
            let schema = selector(kind);
            assert_eq!(schema["properties"][ORCHESTRATOR_TYPE_KEY]["deprecated"], true);
            assert_eq!(schema["additionalProperties"], false);
            for (key, _) in UNSUPPORTED_KEYS {
                assert!(schema["properties"][key].is_null(), "{key}");
                assert!(schema["description"].as_str().unwrap().contains(key), "{key}");
            }
        }
    }

    #[test]
    fn operation_enums_are_per_type() {
        let ops = |kind| selector(kind)["properties"]["operation"]["items"]["enum"].clone();
        assert_eq!(
            ops(PolicyKind::File),
            json!(["createExecutable", "modifyExecutable", "createFile", "modifyFile", "deleteFile", "execMemFd"])
        );
        assert_eq!(ops(PolicyKind::Process), json!(["fork", "exec"]));
        assert_eq!(ops(PolicyKind::Network), json!(["connect", "sendTo", "bind", "listen"]));
    }

    #[test]
    fn every_property_has_a_description() {
        fn walk(value: &Value, path: &str) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::Object(properties)) = map.get("properties") {
                        for (key, property) in properties {
                            assert!(property["description"].is_string(), "{path}/{key} has no description");
                        }
                    }
                    for (key, child) in map {
                        walk(child, &format!("{path}/{key}"));
                    }
                }
                Value::Array(items) => items.iter().for_each(|item| walk(item, path)),
                _ => {}
            }
        }
        let schema = policy_schema();
        assert_eq!(schema["$schema"], SCHEMA_DIALECT);
        assert_eq!(schema["$id"], SCHEMA_ID);
        walk(&schema, "");
    }

    #[test]
    fn actions_are_the_model_vocabulary() {
        let schema = policy_schema();
        assert_eq!(
            schema["$defs"]["response"]["properties"]["actions"]["items"]["enum"],
            json!(["log", "alert", "block"])
        );
    }

    #[test]
    fn yaml_scalars_follow_the_core_schema() {
        let value = yaml(
            "s: text\nq: '12'\nb: true\nn: ~\ne:\ni: -42\nh: 0x1F\no: 0o17\nbig: 99999999999999999999\nf: 1.5\ninf: .inf\nnan: .nan\nl: [1, a]\n",
        );
        assert_eq!(
            value,
            json!({
                "s": "text", "q": "12", "b": true, "n": null, "e": null, "i": -42, "h": 31, "o": 15,
                "big": "99999999999999999999", "f": 1.5, "inf": ".inf", "nan": ".nan", "l": [1, "a"],
            })
        );
    }

    #[test]
    fn yaml_keys_are_text_and_later_duplicates_win() {
        assert_eq!(yaml("1: a\ntrue: b\nx: 1\nx: 2\n"), json!({ "1": "a", "true": "b", "x": 2 }));
        assert_eq!(yaml("? [a, 1]\n: v\n"), json!({ "[\"a\",1]": "v" }));
    }
}
