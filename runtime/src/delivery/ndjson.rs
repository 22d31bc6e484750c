//! NDJSON outputs: the embedded sink (standard output or a rotated file)
//! and the dead-letter file of the Elasticsearch sink. Blocking I/O, called
//! from blocking threads.
//!
//! Invariants: a unit (one document's line, or its action and body pair)
//! is never split across rotated files; a failed write is cut back to the
//! last whole unit, so a retry never leaves half a line. A failed batch of
//! the sink is cut back to where it began in the current file, and the
//! sink says how many of its documents (those rotated out before the
//! failure) are written, so a retry of the rest writes each document once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::delivery::bulk;
use crate::delivery::config::{NdjsonConfig, NdjsonFormat};
use crate::delivery::error::DeliveryError;
use crate::delivery::space::Space;
use crate::document::Document;

/// Written to the file once this much is buffered.
const WRITE_CHUNK: usize = 1 << 20;

/// An append-only file rotated by size: `path` is current, `path.1` the
/// newest rotated one, up to `path.<keep>`.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: File,
    /// Bytes of `file` written through this handle or found at open.
    size: u64,
    /// The length of `file` when the caller's batch began ([`Self::begin`]);
    /// 0 once the batch rotated it.
    mark: u64,
    buffer: Vec<u8>,
    space: Space,
}

fn open_append(path: &Path) -> Result<File, DeliveryError> {
    OpenOptions::new().create(true).append(true).open(path).map_err(|e| DeliveryError::io("open", path, e))
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl RotatingFile {
    /// Opens `path` for appending, creating it and its directory.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> Result<Self, DeliveryError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| DeliveryError::io("create the directory", parent, e))?;
        }
        let file = open_append(path)?;
        let size = file.metadata().map_err(|e| DeliveryError::io("read the size of", path, e))?.len();
        Ok(Self {
            path: path.to_owned(),
            max_bytes,
            keep,
            file,
            size,
            mark: size,
            buffer: Vec::new(),
            space: Space::default(),
        })
    }

    /// Starts a batch that [`Self::rollback`] can undo: drops what is
    /// buffered and marks the file's length.
    pub fn begin(&mut self) {
        self.buffer.clear();
        self.mark = self.size;
    }

    /// Appends one unit, rotating first if it would pass `max_bytes`.
    /// Returns whether it rotated: every unit appended before this one is
    /// then written whole to the rotated file.
    pub fn append(&mut self, unit: &[u8]) -> Result<bool, DeliveryError> {
        let total = self.size + self.buffer.len() as u64;
        let rotate = total > 0 && total + unit.len() as u64 > self.max_bytes;
        if rotate {
            self.flush()?;
            self.rotate()?;
        }
        self.buffer.extend_from_slice(unit);
        if self.buffer.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(rotate)
    }

    /// Writes what is buffered. On failure the file is cut back to its last
    /// whole unit and the buffer is kept for the next try.
    pub fn flush(&mut self) -> Result<(), DeliveryError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.space.append_all(&self.file, &self.buffer) {
            let _ = self.file.set_len(self.size);
            return Err(DeliveryError::io("write", &self.path, error));
        }
        self.size += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Drops what is buffered (after a failed flush the caller gives up on).
    pub fn discard(&mut self) {
        self.buffer.clear();
    }

    /// Undoes the batch since [`Self::begin`] in the current file: drops
    /// what is buffered and cuts the file back to the mark.
    ///
    /// Why cut back rather than resume: the file is opened in append mode,
    /// where every write lands at the file's end whatever its offset
    /// (`pwrite` included, on Linux). A write that failed part-way leaves
    /// a partial unit that no later write can overwrite, and chunks of the
    /// batch flushed before the failure stay too; the caller retries the
    /// whole rest of the batch, so both must go. After `set_len`, the next
    /// append lands exactly at the cut. (Units rotated into `path.1` are
    /// another file, perhaps already read; the caller counts them written.)
    pub fn rollback(&mut self) -> Result<(), DeliveryError> {
        self.buffer.clear();
        self.file.set_len(self.mark).map_err(|e| DeliveryError::io("cut back", &self.path, e))?;
        self.size = self.mark;
        Ok(())
    }

    /// Makes writes find room in `space` (tests fill the disk).
    #[cfg(test)]
    fn set_space(&mut self, space: Space) {
        self.space = space;
    }

    /// Forces the written data to disk.
    pub fn sync(&mut self) -> Result<(), DeliveryError> {
        self.flush()?;
        self.file.sync_data().map_err(|e| DeliveryError::io("fsync", &self.path, e))
    }

    fn rotate(&mut self) -> Result<(), DeliveryError> {
        let _ = self.file.sync_data();
        let shift = || -> io::Result<()> {
            if self.keep == 0 {
                return ignore_missing(fs::remove_file(&self.path));
            }
            ignore_missing(fs::remove_file(rotated(&self.path, self.keep)))?;
            for n in (1..self.keep).rev() {
                ignore_missing(fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1)))?;
            }
            fs::rename(&self.path, rotated(&self.path, 1))
        };
        shift().map_err(|e| DeliveryError::io("rotate", &self.path, e))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        self.mark = 0;
        Ok(())
    }
}

/// Where the NDJSON sink writes.
#[derive(Debug)]
enum Output {
    Stdout,
    File(RotatingFile),
}

/// The embedded sink: documents as NDJSON lines.
#[derive(Debug)]
pub struct NdjsonSink {
    output: Output,
    format: NdjsonFormat,
    unit: Vec<u8>,
}

impl NdjsonSink {
    /// Opens the output the configuration names.
    pub fn open(config: &NdjsonConfig) -> Result<Self, DeliveryError> {
        let output = match &config.path {
            Some(path) => Output::File(RotatingFile::open(path, config.max_bytes, config.keep)?),
            None => Output::Stdout,
        };
        Ok(Self { output, format: config.format, unit: Vec::new() })
    }

    /// Writes and flushes every document, in order. On failure, the first
    /// [`PartialWrite::written`] documents are in the output once, whole,
    /// and the others not at all: the caller retries only those.
    pub fn write(&mut self, documents: &[Document]) -> Result<(), PartialWrite> {
        let Output::File(file) = &mut self.output else {
            // Standard output cannot be cut back: a retry may repeat lines.
            return self.write_all(documents, &mut 0).map_err(|error| PartialWrite { written: 0, error });
        };
        file.begin();
        let mut written = 0;
        let result = self.write_all(documents, &mut written);
        let Err(error) = result else { return Ok(()) };
        if let Output::File(file) = &mut self.output {
            if let Err(cut) = file.rollback() {
                // The rest of the batch may be in the file in part: the
                // retry may repeat some of it (never lose it).
                tracing::warn!(error = %cut, "NDJSON output: cannot undo a failed batch; its retry may repeat lines");
            }
        }
        Err(PartialWrite { written, error })
    }

    /// Writes `documents`; `written` is raised to the number of them known
    /// to be written whole before a failure (those rotated out).
    fn write_all(&mut self, documents: &[Document], written: &mut usize) -> Result<(), DeliveryError> {
        match &mut self.output {
            Output::Stdout => {
                let mut out = Vec::new();
                for document in documents {
                    encode_unit(self.format, document, &mut out);
                }
                let mut stdout = io::stdout().lock();
                stdout
                    .write_all(&out)
                    .and_then(|()| stdout.flush())
                    .map_err(|e| DeliveryError::io("write", "<stdout>", e))
            }
            Output::File(file) => {
                for (n, document) in documents.iter().enumerate() {
                    self.unit.clear();
                    encode_unit(self.format, document, &mut self.unit);
                    if file.append(&self.unit)? {
                        *written = n;
                    }
                }
                file.flush()
            }
        }
    }

    /// Makes the file's writes find room in `space` (tests fill the disk).
    #[cfg(test)]
    pub(crate) fn set_space(&mut self, space: Space) {
        if let Output::File(file) = &mut self.output {
            file.set_space(space);
        }
    }

    /// fsyncs the file (nothing for standard output).
    pub fn sync(&mut self) -> Result<(), DeliveryError> {
        match &mut self.output {
            Output::Stdout => Ok(()),
            Output::File(file) => file.sync(),
        }
    }
}

/// A failed [`NdjsonSink::write`].
#[derive(Debug)]
pub struct PartialWrite {
    /// How many documents, from the first, are written (once, whole).
    pub written: usize,
    /// Why the rest are not.
    pub error: DeliveryError,
}

fn encode_unit(format: NdjsonFormat, document: &Document, out: &mut Vec<u8>) {
    if format == NdjsonFormat::Bulk {
        bulk::encode_action(document, out);
    }
    bulk::encode_body(document, out);
}

/// A document Elasticsearch refused, with why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The refused document.
    pub document: Document,
    /// The item's HTTP status.
    pub status: u16,
    /// The item's `error` object.
    pub error: serde_json::Value,
}

/// The dead-letter file: one JSON object per refused document,
/// `{"failed_at", "index", "_id", "status", "error", "document"}`, where
/// `document` is the `_source` as sent (or, if it was not valid JSON,
/// `document_text`, the body as a string).
#[derive(Debug)]
pub struct DeadLetterFile {
    file: RotatingFile,
    line: Vec<u8>,
}

impl DeadLetterFile {
    /// Opens (creating) the file.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> Result<Self, DeliveryError> {
        Ok(Self { file: RotatingFile::open(path, max_bytes, keep)?, line: Vec::new() })
    }

    /// Appends and fsyncs one line per letter.
    pub fn write(&mut self, letters: &[DeadLetter]) -> Result<(), DeliveryError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let failed_at = crate::ecs::format_unix_ns(u64::try_from(now.as_nanos()).unwrap_or(u64::MAX));
        for letter in letters {
            self.line.clear();
            let head = serde_json::json!({
                "failed_at": failed_at,
                "index": letter.document.stream,
                "_id": letter.document.id,
                "status": letter.status,
                "error": letter.error,
            });
            // Serialising a Value into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut self.line, &head);
            self.line.pop(); // the closing brace
            if serde_json::from_slice::<serde::de::IgnoredAny>(&letter.document.body).is_ok() {
                self.line.extend_from_slice(b",\"document\":");
                bulk::encode_body(&letter.document, &mut self.line);
                self.line.pop(); // the newline
            } else {
                self.line.extend_from_slice(b",\"document_text\":");
                let _ = serde_json::to_writer(&mut self.line, &String::from_utf8_lossy(&letter.document.body));
            }
            self.line.extend_from_slice(b"}\n");
            self.file.append(&self.line)?;
        }
        let result = self.file.sync();
        if result.is_err() {
            self.file.discard();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Class;

    #[test]
    fn dead_letters_are_valid_json_lines_even_for_bad_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.ndjson");
        let mut file = DeadLetterFile::open(&path, 1 << 20, 1).unwrap();
        let letter = |body: &str| DeadLetter {
            document: Document { stream: "logs-x".into(), id: "1".into(), class: Class::Log, body: body.into() },
            status: 400,
            error: serde_json::json!({"type": "mapper_parsing_exception", "reason": "bad"}),
        };
        file.write(&[letter(r#"{"a":1}"#), letter("{not json")]).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["document"]["a"], 1);
        assert_eq!(lines[0]["error"]["type"], "mapper_parsing_exception");
        assert_eq!(lines[1]["document_text"], "{not json");
    }

    #[test]
    fn rotation_keeps_n_files_and_whole_units() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let mut file = RotatingFile::open(&path, 25, 2).unwrap();
        for n in 0..10 {
            file.append(format!("{{\"n\":{n}}}\n").as_bytes()).unwrap();
        }
        file.flush().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"n\":9}\n");
        assert_eq!(fs::read_to_string(rotated(&path, 1)).unwrap(), "{\"n\":6}\n{\"n\":7}\n{\"n\":8}\n");
        assert_eq!(fs::read_to_string(rotated(&path, 2)).unwrap(), "{\"n\":3}\n{\"n\":4}\n{\"n\":5}\n");
        assert!(!rotated(&path, 3).exists());
    }
}
