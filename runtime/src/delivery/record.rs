//! The byte layout of the disk queue; only this module knows it.
//!
//! A segment file is an 8-byte header, `D4CQSEG1`, then records back to back.
//! A record is a 12-byte header and a payload, integers little-endian:
//!
//! ```text
//! 0  magic   2 bytes  D4 C7
//! 2  class   1 byte   0 alert, 1 log
//! 3  flags   1 byte   0
//! 4  length  4 bytes  payload length, at most MAX_PAYLOAD
//! 8  crc     4 bytes  CRC-32 (IEEE) of bytes 2..8 and of the payload
//! 12 payload: stream length (u16), stream, id length (u16), id, body
//! ```
//!
//! The magic lets a reader find the next record after a damaged one
//! ([`resync`]); the CRC makes a torn or flipped record visible.

use crate::document::{Class, Document};

/// The first bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"D4CQSEG1";
/// Length of the segment header.
pub const SEGMENT_HEADER: u64 = 8;
/// The first bytes of every record.
pub const RECORD_MAGIC: [u8; 2] = [0xD4, 0xC7];
/// Length of a record header.
pub const RECORD_HEADER: usize = 12;
/// The largest payload a record may claim; larger lengths are damage.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole, intact record of `len` bytes (header included).
    Record {
        /// The document.
        document: Document,
        /// Bytes the record takes.
        len: usize,
    },
    /// The buffer ends inside a record that looks intact so far; `need`
    /// bytes would hold it whole.
    Incomplete {
        /// Bytes needed from the start of the buffer.
        need: usize,
    },
    /// Not a record: wrong magic, impossible length, CRC mismatch or a
    /// malformed payload.
    Corrupt,
}

/// Whether a document fits in a record.
pub fn fits(document: &Document) -> bool {
    document.stream.len() <= usize::from(u16::MAX)
        && document.id.len() <= usize::from(u16::MAX)
        && payload_len(document) <= MAX_PAYLOAD
}

fn payload_len(document: &Document) -> usize {
    4 + document.stream.len() + document.id.len() + document.body.len()
}

/// Bytes the record of `document` takes.
pub fn encoded_len(document: &Document) -> usize {
    RECORD_HEADER + payload_len(document)
}

/// Appends the record of `document` to `out`. Returns false, writing
/// nothing, when it does not [`fits`].
pub fn encode(document: &Document, out: &mut Vec<u8>) -> bool {
    let (Ok(stream_len), Ok(id_len), Ok(len)) =
        (u16::try_from(document.stream.len()), u16::try_from(document.id.len()), u32::try_from(payload_len(document)))
    else {
        return false;
    };
    if payload_len(document) > MAX_PAYLOAD {
        return false;
    }
    let class = match document.class {
        Class::Alert => 0u8,
        Class::Log => 1u8,
    };
    let start = out.len();
    out.reserve(encoded_len(document));
    out.extend_from_slice(&RECORD_MAGIC);
    out.push(class);
    out.push(0);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&stream_len.to_le_bytes());
    out.extend_from_slice(document.stream.as_bytes());
    out.extend_from_slice(&id_len.to_le_bytes());
    out.extend_from_slice(document.id.as_bytes());
    out.extend_from_slice(&document.body);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(out.get(start + 2..start + 8).unwrap_or_default());
    hasher.update(out.get(start + RECORD_HEADER..).unwrap_or_default());
    if let Some(crc) = out.get_mut(start + 8..start + 12) {
        crc.copy_from_slice(&hasher.finalize().to_le_bytes());
    }
    true
}

fn u16_at(buf: &[u8], at: usize) -> Option<usize> {
    let bytes = buf.get(at..at + 2)?;
    Some(usize::from(u16::from_le_bytes([*bytes.first()?, *bytes.get(1)?])))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

/// Reads the record at the start of `buf`.
pub fn decode(buf: &[u8]) -> Decoded {
    let Some(header) = buf.get(..RECORD_HEADER) else {
        // A prefix of a header: incomplete if what is there is plausible.
        let plausible = buf.iter().zip(RECORD_MAGIC).all(|(a, b)| *a == b);
        return if plausible { Decoded::Incomplete { need: RECORD_HEADER } } else { Decoded::Corrupt };
    };
    if header.get(..2) != Some(&RECORD_MAGIC[..]) || header.get(3) != Some(&0) {
        return Decoded::Corrupt;
    }
    let class = match header.get(2) {
        Some(0) => Class::Alert,
        Some(1) => Class::Log,
        _ => return Decoded::Corrupt,
    };
    let (Some(len), Some(crc)) = (u32_at(header, 4), u32_at(header, 8)) else { return Decoded::Corrupt };
    let Ok(len) = usize::try_from(len) else { return Decoded::Corrupt };
    if !(4..=MAX_PAYLOAD).contains(&len) {
        return Decoded::Corrupt;
    }
    let total = RECORD_HEADER + len;
    let Some(payload) = buf.get(RECORD_HEADER..total) else { return Decoded::Incomplete { need: total } };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header.get(2..8).unwrap_or_default());
    hasher.update(payload);
    if hasher.finalize() != crc {
        return Decoded::Corrupt;
    }
    match split_payload(payload, class) {
        Some(document) => Decoded::Record { document, len: total },
        None => Decoded::Corrupt,
    }
}

fn split_payload(payload: &[u8], class: Class) -> Option<Document> {
    let stream_len = u16_at(payload, 0)?;
    let stream = payload.get(2..2 + stream_len)?;
    let id_at = 2 + stream_len;
    let id_len = u16_at(payload, id_at)?;
    let id = payload.get(id_at + 2..id_at + 2 + id_len)?;
    let body = payload.get(id_at + 2 + id_len..)?;
    Some(Document {
        stream: String::from_utf8(stream.to_vec()).ok()?,
        id: String::from_utf8(id.to_vec()).ok()?,
        class,
        body: body.to_vec(),
    })
}

/// The offset, at or after `from`, of the next whole intact record in `buf`,
/// if any: where reading resumes after damage.
pub fn resync(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(rest) = buf.get(at..) {
        let found = rest.windows(2).position(|w| w == RECORD_MAGIC)?;
        at += found;
        if let Some(candidate) = buf.get(at..) {
            if matches!(decode(candidate), Decoded::Record { .. }) {
                return Some(at);
            }
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, class: Class) -> Document {
        Document {
            stream: "logs-cloud_defend.alerts-default".to_owned(),
            id: id.to_owned(),
            class,
            body: br#"{"event":{"kind":"alert"}}"#.to_vec(),
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        assert!(encode(&doc("a", Class::Alert), &mut buf));
        assert!(encode(&doc("b", Class::Log), &mut buf));
        let Decoded::Record { document, len } = decode(&buf) else { panic!("not a record") };
        assert_eq!(document, doc("a", Class::Alert));
        assert_eq!(len, encoded_len(&document));
        let Decoded::Record { document, .. } = decode(&buf[len..]) else { panic!("not a record") };
        assert_eq!(document, doc("b", Class::Log));
    }

    #[test]
    fn torn_record_is_incomplete_and_flipped_byte_is_corrupt() {
        let mut buf = Vec::new();
        encode(&doc("a", Class::Alert), &mut buf);
        for cut in 0..buf.len() {
            assert!(matches!(decode(&buf[..cut]), Decoded::Incomplete { .. }), "cut at {cut}");
        }
        for at in 0..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x40;
            assert!(!matches!(decode(&bad), Decoded::Record { .. }), "flip at {at}");
        }
    }

    #[test]
    fn resync_finds_the_next_record_after_damage() {
        let mut buf = Vec::new();
        encode(&doc("a", Class::Alert), &mut buf);
        let second = buf.len();
        encode(&doc("b", Class::Alert), &mut buf);
        // A flipped CRC byte: the record is damaged, the next one intact.
        buf[9] ^= 0xff;
        assert_eq!(decode(&buf), Decoded::Corrupt);
        assert_eq!(resync(&buf, 1), Some(second));
        assert_eq!(resync(&buf, second + 1), None);
    }

    proptest::proptest! {
        /// Whatever a crash or a bad disk leaves, reading never panics, and
        /// resynchronising only ever lands on an intact record.
        #[test]
        fn damaged_bytes_never_panic(garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..200), cut in 0usize..400, flip in 0usize..400) {
            let mut buf = Vec::new();
            encode(&doc("a", Class::Log), &mut buf);
            buf.extend_from_slice(&garbage);
            encode(&doc("b", Class::Alert), &mut buf);
            if let Some(byte) = buf.get_mut(flip) {
                *byte ^= 0x5a;
            }
            buf.truncate(cut.max(1));
            let _ = decode(&buf);
            let mut at = 0;
            while let Some(next) = resync(&buf, at) {
                let intact = matches!(decode(&buf[next..]), Decoded::Record { .. });
                proptest::prop_assert!(intact, "resync landed on a damaged record at {}", next);
                at = next + 1;
            }
        }
    }
}
