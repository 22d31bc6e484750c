//! The `_bulk` wire format: documents to an NDJSON body of `create`
//! actions (optionally gzip'd), and a bulk response to one outcome per
//! document.
//!
//! Invariant: the body has exactly two lines per document, in order, so the
//! response's `items[i]` is the outcome of `documents[i]`. A body containing
//! a raw newline (only possible as JSON whitespace) has it replaced by a
//! space so it cannot split the pair.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Deserialize;

use crate::document::Document;

/// Appends `{"create":{"_index":<stream>,"_id":<id>}}\n<body>\n` for each
/// document to `out`.
pub fn encode(documents: &[Document], out: &mut Vec<u8>) {
    // Reserved up front: growing a body of megabytes copies it each time.
    out.reserve(documents.iter().map(encoded_len).sum());
    for document in documents {
        encode_action(document, out);
        encode_body(document, out);
    }
}

/// Bytes [`encode`] writes for `document` when its stream and id need
/// no escape (an escape adds a few).
fn encoded_len(document: &Document) -> usize {
    // Two quoted strings in the action line; the body's newline.
    let action = ACTION_PREFIX.len() + ACTION_ID.len() + ACTION_END.len() + document.stream.len() + document.id.len();
    action + 4 + document.body.len() + 1
}

// The parts of an action line around its stream and id.
const ACTION_PREFIX: &[u8] = br#"{"create":{"_index":"#;
const ACTION_ID: &[u8] = br#","_id":"#;
const ACTION_END: &[u8] = b"}}\n";

/// Appends the action line of one document (newline included).
pub fn encode_action(document: &Document, out: &mut Vec<u8>) {
    out.extend_from_slice(ACTION_PREFIX);
    json_string(&document.stream, out);
    out.extend_from_slice(ACTION_ID);
    json_string(&document.id, out);
    out.extend_from_slice(ACTION_END);
}

/// Appends the body of one document as one line (newline included).
pub fn encode_body(document: &Document, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&document.body);
    // `memchr`: the standard library's byte search is not vectorised, and
    // every body of every request is searched.
    if memchr::memchr(b'\n', &document.body).is_some() {
        for byte in out.get_mut(start..).into_iter().flatten() {
            if *byte == b'\n' {
                *byte = b' ';
            }
        }
    }
    out.push(b'\n');
}

fn json_string(text: &str, out: &mut Vec<u8>) {
    if !crate::json::needs_escape(text) {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// The gzip'd [`encode`] of `documents` at `level` (0..=9), without the
/// plain body: documents are encoded a few at a time into a small staging
/// buffer that the compressor reads, so a request of megabytes is never
/// held (nor its pages touched) twice. Decompressed, the output is
/// byte-identical to [`encode`]'s.
pub fn encode_gzip(documents: &[Document], level: u32) -> Vec<u8> {
    // Compressed documents are about a tenth of their size; a quarter
    // leaves room without growing the output in the common case.
    let plain: usize = documents.iter().map(encoded_len).sum();
    let mut encoder = GzEncoder::new(Vec::with_capacity(plain / 4 + 64), Compression::new(level.min(9)));
    let mut staging = Vec::with_capacity(STAGING_BYTES + STAGING_BYTES / 2);
    for document in documents {
        encode_action(document, &mut staging);
        encode_body(document, &mut staging);
        if staging.len() >= STAGING_BYTES {
            // Writing into a Vec cannot fail.
            let _ = encoder.write_all(&staging);
            staging.clear();
        }
    }
    let _ = encoder.write_all(&staging);
    encoder.finish().unwrap_or_default()
}

/// How much plain body [`encode_gzip`] gathers before the compressor reads
/// it: small enough to stay in a core's cache, large enough that the
/// per-call cost of the compressor does not show.
const STAGING_BYTES: usize = 64 * 1024;

/// What Elasticsearch did with one document of a bulk request.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    /// 2xx: indexed now.
    Created,
    /// 409: a document with this `_id` is already there, from an earlier
    /// attempt whose response was lost.
    AlreadyPresent,
    /// 429 or 5xx: try again later.
    Retry {
        /// The item's status.
        status: u16,
    },
    /// Any other status: the document itself is refused (mapping error,
    /// bad JSON...). It goes to the dead-letter file.
    Rejected {
        /// The item's status.
        status: u16,
        /// The item's `error` object as Elasticsearch sent it.
        error: serde_json::Value,
    },
}

impl ItemOutcome {
    fn from_status(status: u16, error: Option<serde_json::Value>) -> Self {
        match status {
            200..=299 => Self::Created,
            409 => Self::AlreadyPresent,
            429 | 500..=599 => Self::Retry { status },
            _ => Self::Rejected { status, error: error.unwrap_or(serde_json::Value::Null) },
        }
    }
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    items: Vec<BulkItem>,
}

#[derive(Deserialize)]
struct BulkItem {
    #[serde(alias = "index", alias = "update", alias = "delete")]
    create: ItemResult,
}

#[derive(Deserialize)]
struct ItemResult {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// The outcome of each of `expected` documents from a 2xx bulk response.
/// Errors when the body is not a bulk response or has another item count.
pub fn parse_response(body: &[u8], expected: usize) -> Result<Vec<ItemOutcome>, String> {
    let response: BulkResponse = serde_json::from_slice(body).map_err(|e| format!("not a bulk response: {e}"))?;
    if response.items.len() != expected {
        return Err(format!("{} items for {expected} documents", response.items.len()));
    }
    Ok(response.items.into_iter().map(|item| ItemOutcome::from_status(item.create.status, item.create.error)).collect())
}

/// `error.type` and `error.reason` of an error response, when present.
pub fn error_summary(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    struct ErrorResponse {
        error: serde_json::Value,
    }
    let Ok(response) = serde_json::from_slice::<ErrorResponse>(body) else {
        let text = String::from_utf8_lossy(body.get(..200).unwrap_or(body)).trim().to_owned();
        return (None, (!text.is_empty()).then_some(text));
    };
    match response.error {
        serde_json::Value::String(reason) => (None, Some(reason)),
        error => (
            error.get("type").and_then(|t| t.as_str()).map(str::to_owned),
            error.get("reason").and_then(|t| t.as_str()).map(str::to_owned),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Class;

    fn doc(id: &str, body: &str) -> Document {
        Document {
            stream: "logs-cloud_defend.process-default".into(),
            id: id.into(),
            class: Class::Log,
            body: body.into(),
        }
    }

    #[test]
    fn two_lines_per_document_with_escaped_ids() {
        let mut out = Vec::new();
        encode(&[doc("a\"b", "{\"x\":\n1}"), doc("c", "{}")], &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\"create\":{\"_index\":\"logs-cloud_defend.process-default\",\"_id\":\"a\\\"b\"}}\n{\"x\": 1}\n\
             {\"create\":{\"_index\":\"logs-cloud_defend.process-default\",\"_id\":\"c\"}}\n{}\n"
        );
    }

    #[test]
    fn encode_gzip_is_the_gzip_of_encode() {
        // Enough documents to fill the staging buffer several times, one
        // with a newline to replace and one with an id to escape.
        let mut documents: Vec<Document> =
            (0..1000).map(|n| doc(&format!("id-{n}"), &"{\"k\":\"v\"}".repeat(n % 100 + 1))).collect();
        documents.push(doc("a\"b", "{\"x\":\n1}"));
        let mut plain = Vec::new();
        encode(&documents, &mut plain);
        assert!(plain.len() > 3 * STAGING_BYTES);
        let mut unzipped = Vec::new();
        let zipped = encode_gzip(&documents, 1);
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut unzipped).unwrap();
        assert_eq!(unzipped, plain);
        let mut empty = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&encode_gzip(&[], 1)[..]), &mut empty).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn item_statuses_map_to_outcomes() {
        let body = br#"{"took":3,"errors":true,"items":[
            {"create":{"_index":"x","_id":"1","status":201}},
            {"create":{"_index":"x","_id":"2","status":409,"error":{"type":"version_conflict_engine_exception"}}},
            {"create":{"_index":"x","_id":"3","status":429,"error":{"type":"es_rejected_execution_exception"}}},
            {"create":{"_index":"x","_id":"4","status":503}},
            {"create":{"_index":"x","_id":"5","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}]}"#;
        let outcomes = parse_response(body, 5).unwrap();
        assert_eq!(outcomes[0], ItemOutcome::Created);
        assert_eq!(outcomes[1], ItemOutcome::AlreadyPresent);
        assert_eq!(outcomes[2], ItemOutcome::Retry { status: 429 });
        assert_eq!(outcomes[3], ItemOutcome::Retry { status: 503 });
        assert!(matches!(&outcomes[4], ItemOutcome::Rejected { status: 400, error } if error["reason"] == "bad"));
        assert!(parse_response(body, 4).is_err());
        assert!(parse_response(b"<html>", 1).is_err());
    }

    #[test]
    fn error_summary_reads_type_and_reason() {
        let body = br#"{"error":{"type":"security_exception","reason":"missing authentication"},"status":401}"#;
        assert_eq!(
            error_summary(body),
            (Some("security_exception".to_owned()), Some("missing authentication".to_owned()))
        );
        assert_eq!(error_summary(b"Bad Gateway"), (None, Some("Bad Gateway".to_owned())));
    }
}
