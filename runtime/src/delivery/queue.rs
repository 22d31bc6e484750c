//! The disk queue: documents wait here until the sink confirms them.
//!
//! In: documents from the producer ([`DiskQueue::append`]). Out: batches for
//! the sink ([`DiskQueue::read_into`]), released by [`DiskQueue::ack`] once
//! the sink has confirmed or dead-lettered every document of the batch.
//!
//! Layout under the queue directory (`<state dir>/queue`):
//!
//! ```text
//! lock                       flock(2)ed while a process owns the queue
//! alerts/00000000000000000007.seg   segments: see `record` for the bytes
//! alerts/cursor              acknowledged position (segment id, offset), CRC'd
//! logs/...                   the same for logs
//! ```
//!
//! Invariants:
//! - Alerts and logs are separate queues sharing one byte budget, so logs
//!   can be shed without touching alerts. The sink reads alerts first.
//! - Appends are whole records written at the tail's known length
//!   (`pwrite`), so a failed write is overwritten by the next one; readers
//!   only see lengths that were written completely.
//! - The cursor only moves forward, past records the sink confirmed. On
//!   start, reading resumes at the cursor: records after it are sent again,
//!   which the idempotent `_id`s make harmless. A cursor that was not yet
//!   on disk at a crash means more re-sending, never a loss.
//! - When an append would pass `max_bytes`, the oldest log segment that no
//!   batch is reading is deleted (its records counted `queue_full`) until
//!   the record fits; if none is left, the new record is refused and
//!   counted. Alerts already queued are never shed.
//! - Damage (CRC mismatch, torn tail after a crash) is skipped and counted
//!   `corrupt`, once per damaged region; it never stops the queue.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::delivery::config::FsyncPolicy;
use crate::delivery::error::DeliveryError;
use crate::delivery::record::{self, Decoded, SEGMENT_HEADER, SEGMENT_MAGIC};
use crate::delivery::stats::{DeliveryStats, DropReason};
use crate::document::{Class, Document};

const CURSOR_MAGIC: [u8; 8] = *b"D4CQCUR1";
const CURSOR_LEN: usize = 28;
/// Pending appends are written once they reach this size.
const WRITE_CHUNK: usize = 256 << 10;
/// The smallest read; a batch's remaining byte budget raises it.
const READ_CHUNK: u64 = 64 << 10;

/// The size and durability settings of a [`DiskQueue`].
#[derive(Debug, Clone, Copy)]
pub struct QueueOptions {
    /// Bytes on disk of both classes together.
    pub max_bytes: u64,
    /// Size past which a segment is sealed.
    pub segment_bytes: u64,
    /// When to fsync.
    pub fsync: FsyncPolicy,
}

/// A position in one class's queue: a segment id and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    segment: u64,
    offset: u64,
}

#[derive(Debug, Clone, Copy)]
struct Mark {
    end: Position,
    records: u64,
}

/// Limits of one batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// At most this many documents.
    pub max_documents: usize,
    /// At most this many bytes (see [`Batch::bytes`]), except that a batch
    /// always takes at least one document.
    pub max_bytes: usize,
}

/// Documents read from the queue and not yet acknowledged.
#[derive(Debug, Default)]
pub struct Batch {
    /// Alerts first, then logs, each in queue order.
    pub documents: Vec<Document>,
    /// Sum of stream, id and body lengths of `documents`.
    pub bytes: usize,
    marks: [Option<Mark>; 2],
}

impl Batch {
    /// Whether the batch reached one of its limits.
    pub fn is_full(&self, limits: BatchLimits) -> bool {
        self.documents.len() >= limits.max_documents || self.bytes >= limits.max_bytes
    }

    fn push(&mut self, slot: usize, document: Document, end: Position) {
        self.bytes += batch_cost(&document);
        self.documents.push(document);
        self.advance(slot, end, 1);
    }

    fn advance(&mut self, slot: usize, end: Position, records: u64) {
        if let Some(mark) = self.marks.get_mut(slot) {
            let before = mark.map_or(0, |m| m.records);
            *mark = Some(Mark { end, records: before + records });
        }
    }

    /// Whether acknowledging would move a cursor (documents were read, or
    /// damage was skipped).
    pub fn has_progress(&self) -> bool {
        self.marks.iter().any(Option::is_some)
    }
}

/// Where a byte budget of a document is counted in a batch.
fn batch_cost(document: &Document) -> usize {
    document.stream.len() + document.id.len() + document.body.len()
}

#[derive(Debug)]
struct Segment {
    id: u64,
    /// Bytes written completely.
    len: u64,
    /// Records after the cursor (the whole segment unless it is the head).
    records: u64,
}

#[derive(Debug)]
struct ClassQueue {
    class: Class,
    dir: PathBuf,
    segments: VecDeque<Segment>,
    next_id: u64,
    /// The file of `segments.back()` while it takes appends.
    tail: Option<File>,
    ack: Position,
    read: Position,
    reader: Option<(u64, File)>,
    /// Records after the cursor, on disk.
    unacked: u64,
    pending: Vec<u8>,
    pending_records: u64,
    tail_unsynced: bool,
    dir_unsynced: bool,
}

/// The disk queue of both classes. Not thread-safe by itself: the delivery
/// tasks share it behind a mutex and call it from blocking threads.
#[derive(Debug)]
pub struct DiskQueue {
    _lock: File,
    classes: [ClassQueue; 2],
    options: QueueOptions,
    last_sync: Instant,
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DeliveryError + 'a {
    move |source| DeliveryError::io(action, path, source)
}

impl DiskQueue {
    /// Opens (creating if needed) the queue in `root`, takes its lock,
    /// truncates a torn tail left by a crash (counted `corrupt`) and counts
    /// the records waiting. Fails with [`DeliveryError::Locked`] when another
    /// process holds the lock.
    pub fn open(root: &Path, options: QueueOptions, stats: &DeliveryStats) -> Result<Self, DeliveryError> {
        if options.segment_bytes <= SEGMENT_HEADER || options.max_bytes < options.segment_bytes {
            return Err(DeliveryError::Config(format!(
                "queue `segment_bytes` ({}) must be over {SEGMENT_HEADER} and at most `max_bytes` ({})",
                options.segment_bytes, options.max_bytes
            )));
        }
        fs::create_dir_all(root).map_err(io_err("create the queue directory", root))?;
        let lock_path = root.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open the queue lock", &lock_path))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => {
                return Err(DeliveryError::Locked { path: lock_path, waited: std::time::Duration::ZERO });
            }
            Err(errno) => return Err(DeliveryError::io("lock", &lock_path, errno.into())),
        }
        let classes = [
            ClassQueue::open(root.join("alerts"), Class::Alert, stats, options.max_bytes)?,
            ClassQueue::open(root.join("logs"), Class::Log, stats, options.max_bytes)?,
        ];
        let queue = Self { _lock: lock, classes, options, last_sync: Instant::now() };
        queue.publish(stats);
        Ok(queue)
    }

    /// Bytes on disk, both classes, pending writes included.
    pub fn disk_bytes(&self) -> u64 {
        self.classes.iter().map(ClassQueue::disk_bytes).sum()
    }

    /// Records not yet acknowledged, both classes.
    pub fn unacked_records(&self) -> u64 {
        self.classes.iter().map(|c| c.unacked).sum()
    }

    fn class_mut(&mut self, class: Class) -> Option<&mut ClassQueue> {
        self.classes.get_mut(class.index())
    }

    /// Appends `documents` in order, shedding logs when the budget is
    /// reached (see the module invariants). Every document not stored is
    /// counted in `stats`; the last I/O error, if any, is returned after
    /// every document was handled.
    pub fn append(&mut self, documents: Vec<Document>, stats: &DeliveryStats) -> Result<(), DeliveryError> {
        let mut failure = None;
        for document in documents {
            if let Err(error) = self.append_one(&document, stats) {
                // Not encoded: counted here, once.
                stats.dropped(document.class, DropReason::Io, 1);
                failure = Some(error);
                continue;
            }
            // Encoded: a failed write counts it with the rest it held.
            if let Some(queue) = self.class_mut(document.class).filter(|q| q.pending.len() >= WRITE_CHUNK) {
                if let Err(error) = queue.flush(stats) {
                    failure = Some(error);
                }
            }
        }
        for class in Class::ALL {
            if let Some(queue) = self.class_mut(class) {
                if let Err(error) = queue.flush(stats) {
                    failure = Some(error);
                }
            }
        }
        if self.options.fsync == FsyncPolicy::Always {
            if let Err(error) = self.sync() {
                failure = Some(error);
            }
        }
        self.publish(stats);
        failure.map_or(Ok(()), Err)
    }

    fn append_one(&mut self, document: &Document, stats: &DeliveryStats) -> Result<(), DeliveryError> {
        if !record::fits(document) {
            stats.dropped(document.class, DropReason::TooLarge, 1);
            return Ok(());
        }
        let len = record::encoded_len(document) as u64;
        let segment_bytes = self.options.segment_bytes;
        let needs_roll = self.class_mut(document.class).is_none_or(|q| q.needs_roll(len, segment_bytes));
        let need = len + if needs_roll { SEGMENT_HEADER } else { 0 };
        if self.disk_bytes().saturating_add(need) > self.options.max_bytes {
            self.shed_logs(need, stats)?;
            if self.disk_bytes() + need > self.options.max_bytes {
                stats.dropped(document.class, DropReason::QueueFull, 1);
                return Ok(());
            }
        }
        let fsync = self.options.fsync;
        let Some(queue) = self.class_mut(document.class) else { return Ok(()) };
        // Shedding may have removed the tail: ask again.
        if queue.needs_roll(len, segment_bytes) {
            queue.roll(fsync, stats)?;
        }
        if record::encode(document, &mut queue.pending) {
            queue.pending_records += 1;
        }
        Ok(())
    }

    /// Deletes the oldest unread log segments until `need` more bytes fit.
    fn shed_logs(&mut self, need: u64, stats: &DeliveryStats) -> Result<(), DeliveryError> {
        let logs_index = Class::Log.index();
        for queue in &mut self.classes {
            queue.flush(stats)?;
        }
        while self.disk_bytes() + need > self.options.max_bytes {
            let Some(logs) = self.classes.get_mut(logs_index) else { break };
            if !logs.evict_oldest_unread(stats) {
                break;
            }
        }
        Ok(())
    }

    /// Reads documents after those already read, alerts first, into `batch`
    /// until it is full or nothing more is written.
    pub fn read_into(
        &mut self,
        batch: &mut Batch,
        limits: BatchLimits,
        stats: &DeliveryStats,
    ) -> Result<(), DeliveryError> {
        for queue in &mut self.classes {
            queue.read_into(batch, limits, stats)?;
        }
        Ok(())
    }

    /// Releases everything `batch` read: moves the cursors, deletes
    /// finished segments and clears `batch`.
    pub fn ack(&mut self, batch: &mut Batch, stats: &DeliveryStats) -> Result<(), DeliveryError> {
        let fsync = self.options.fsync;
        let mut failure = None;
        for (queue, mark) in self.classes.iter_mut().zip(batch.marks.iter_mut()) {
            if let Some(mark) = mark.take() {
                if let Err(error) = queue.ack(mark, fsync) {
                    failure = Some(error);
                }
            }
        }
        batch.documents.clear();
        batch.bytes = 0;
        self.publish(stats);
        failure.map_or(Ok(()), Err)
    }

    /// fsyncs what the policy asks for if its interval has passed.
    pub fn sync_if_due(&mut self) -> Result<(), DeliveryError> {
        match self.options.fsync {
            FsyncPolicy::Interval(interval) if self.last_sync.elapsed() >= interval => self.sync(),
            _ => Ok(()),
        }
    }

    /// fsyncs the tails, the directories and the cursors now.
    pub fn sync(&mut self) -> Result<(), DeliveryError> {
        self.last_sync = Instant::now();
        for queue in &mut self.classes {
            queue.sync()?;
        }
        Ok(())
    }

    fn publish(&self, stats: &DeliveryStats) {
        for queue in &self.classes {
            stats.set_queue_depth(queue.class, queue.unacked, queue.unacked_bytes());
        }
    }
}

fn read_cursor(path: &Path) -> Option<Position> {
    let bytes = d4c_artifact::input::read_regular(path, CURSOR_LEN as u64).ok()?;
    if bytes.len() != CURSOR_LEN || bytes.get(..8)? != CURSOR_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(bytes.get(24..28)?.try_into().ok()?);
    if crc32fast::hash(bytes.get(..24)?) != crc {
        return None;
    }
    Some(Position {
        segment: u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?),
        offset: u64::from_le_bytes(bytes.get(16..24)?.try_into().ok()?),
    })
}

fn sync_dir(dir: &Path) -> Result<(), DeliveryError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync the directory", dir))
}

impl ClassQueue {
    /// Opens the queue of `class` in `dir`; no segment over `max_bytes`
    /// (the whole queue's bound) is read.
    fn open(dir: PathBuf, class: Class, stats: &DeliveryStats, max_bytes: u64) -> Result<Self, DeliveryError> {
        fs::create_dir_all(&dir).map_err(io_err("create the queue directory", &dir))?;
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("list the queue directory", &dir))? {
            let entry = entry.map_err(io_err("list the queue directory", &dir))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".seg")).and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            ids.push(id);
        }
        ids.sort_unstable();
        let cursor = read_cursor(&dir.join("cursor"));
        let first = ids.first().copied().unwrap_or(0);
        let ack = match cursor {
            Some(position) if ids.contains(&position.segment) => position,
            Some(position) => {
                Position { segment: position.segment.saturating_add(1).max(first), offset: SEGMENT_HEADER }
            }
            None => Position { segment: first, offset: SEGMENT_HEADER },
        };
        let next_id = ids.last().map_or(ack.segment, |last| last + 1).max(ack.segment);
        let mut queue = Self {
            class,
            dir,
            segments: VecDeque::new(),
            next_id,
            tail: None,
            ack,
            read: ack,
            reader: None,
            unacked: 0,
            pending: Vec::new(),
            pending_records: 0,
            tail_unsynced: false,
            dir_unsynced: false,
        };
        let last = ids.last().copied();
        for id in ids {
            let path = segment_path(&queue.dir, id);
            if id < ack.segment {
                // Acknowledged before a crash that kept the cursor but not the deletion.
                remove(&path)?;
                continue;
            }
            // A regular file within the queue's bound: a segment linked to
            // /dev/zero or a sparse one is refused, not read to its end.
            let bytes =
                d4c_artifact::input::read_regular(&path, max_bytes).map_err(io_err("read the queue segment", &path))?;
            if bytes.get(..8) != Some(&SEGMENT_MAGIC[..]) {
                // A segment whose header never reached the disk held nothing;
                // anything else is damage.
                let empty = SEGMENT_MAGIC.starts_with(&bytes);
                if !empty {
                    stats.dropped(class, DropReason::Corrupt, 1);
                }
                remove(&path)?;
                continue;
            }
            let start =
                if id == ack.segment { ack.offset.clamp(SEGMENT_HEADER, bytes.len() as u64) } else { SEGMENT_HEADER };
            if id == ack.segment {
                queue.ack.offset = start;
                queue.read.offset = start;
            }
            let (records, valid_end) = count_records(&bytes, start);
            let mut len = bytes.len() as u64;
            if Some(id) == last && valid_end < len {
                // A torn tail: the crash interrupted the last write.
                let file =
                    OpenOptions::new().write(true).open(&path).map_err(io_err("open the queue segment", &path))?;
                file.set_len(valid_end).map_err(io_err("truncate the torn queue segment", &path))?;
                stats.dropped(class, DropReason::Corrupt, 1);
                len = valid_end;
            }
            queue.unacked += records;
            queue.segments.push_back(Segment { id, len, records });
        }
        Ok(queue)
    }

    fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum::<u64>() + self.pending.len() as u64
    }

    fn unacked_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| if s.id == self.ack.segment { s.len.saturating_sub(self.ack.offset) } else { s.len })
            .sum()
    }

    fn needs_roll(&self, len: u64, segment_bytes: u64) -> bool {
        match (&self.tail, self.segments.back()) {
            (Some(_), Some(tail)) => {
                let used = tail.len + self.pending.len() as u64;
                used > SEGMENT_HEADER && used + len > segment_bytes
            }
            _ => true,
        }
    }

    /// Writes pending records at the tail's length.
    fn flush(&mut self, stats: &DeliveryStats) -> Result<(), DeliveryError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (Some(file), Some(tail)) = (&self.tail, self.segments.back_mut()) else {
            stats.dropped(self.class, DropReason::Io, self.pending_records);
            self.pending.clear();
            self.pending_records = 0;
            return Ok(());
        };
        let result = file.write_all_at(&self.pending, tail.len);
        match result {
            Ok(()) => {
                tail.len += self.pending.len() as u64;
                tail.records += self.pending_records;
                self.unacked += self.pending_records;
                self.tail_unsynced = true;
                self.pending.clear();
                self.pending_records = 0;
                Ok(())
            }
            Err(source) => {
                let path = segment_path(&self.dir, tail.id);
                stats.dropped(self.class, DropReason::Io, self.pending_records);
                self.pending.clear();
                self.pending_records = 0;
                Err(DeliveryError::io("write the queue segment", path, source))
            }
        }
    }

    /// Seals the tail and starts a new segment.
    fn roll(&mut self, fsync: FsyncPolicy, stats: &DeliveryStats) -> Result<(), DeliveryError> {
        self.flush(stats)?;
        if let Some(file) = self.tail.take() {
            if fsync != FsyncPolicy::Never && self.tail_unsynced {
                if let Some(tail) = self.segments.back() {
                    let path = segment_path(&self.dir, tail.id);
                    file.sync_data().map_err(io_err("fsync the queue segment", &path))?;
                }
            }
            self.tail_unsynced = false;
        }
        let id = self.next_id;
        let path = segment_path(&self.dir, id);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err("create the queue segment", &path))?;
        file.write_all_at(&SEGMENT_MAGIC, 0).map_err(io_err("write the queue segment", &path))?;
        self.next_id += 1;
        self.segments.push_back(Segment { id, len: SEGMENT_HEADER, records: 0 });
        self.tail = Some(file);
        self.dir_unsynced = true;
        Ok(())
    }

    /// Deletes the oldest segment no batch has read from. False when there
    /// is none.
    fn evict_oldest_unread(&mut self, stats: &DeliveryStats) -> bool {
        let read = self.read;
        let Some(index) = self
            .segments
            .iter()
            .position(|s| s.id > read.segment || (s.id == read.segment && read.offset <= SEGMENT_HEADER))
        else {
            return false;
        };
        let Some(segment) = self.segments.remove(index) else { return false };
        if index == self.segments.len() {
            // It was the tail.
            self.tail = None;
            self.tail_unsynced = false;
        }
        if self.reader.as_ref().is_some_and(|(id, _)| *id == segment.id) {
            self.reader = None;
        }
        let path = segment_path(&self.dir, segment.id);
        if let Err(error) = remove(&path) {
            tracing::warn!(%error, "shedding a log segment");
        }
        self.dir_unsynced = true;
        stats.dropped(self.class, DropReason::QueueFull, segment.records);
        self.unacked = self.unacked.saturating_sub(segment.records);
        tracing::warn!(class = ?self.class, records = segment.records, "disk queue full: shed the oldest unsent log segment");
        true
    }

    fn read_into(
        &mut self,
        batch: &mut Batch,
        limits: BatchLimits,
        stats: &DeliveryStats,
    ) -> Result<(), DeliveryError> {
        let slot = self.class.index();
        loop {
            if batch.is_full(limits) {
                return Ok(());
            }
            let Some(index) = self.segments.iter().position(|s| s.id >= self.read.segment) else { return Ok(()) };
            let Some(segment) = self.segments.get(index) else { return Ok(()) };
            let (id, len, is_last) = (segment.id, segment.len, index + 1 == self.segments.len());
            if id != self.read.segment {
                self.read = Position { segment: id, offset: SEGMENT_HEADER };
            }
            if self.read.offset >= len {
                if is_last {
                    return Ok(());
                }
                self.read = Position { segment: id + 1, offset: SEGMENT_HEADER };
                continue;
            }
            let budget = limits.max_bytes.saturating_sub(batch.bytes) as u64;
            let want = budget.max(READ_CHUNK).min(len - self.read.offset);
            let chunk = self.read_at(id, self.read.offset, want)?;
            let mut at = 0usize;
            let mut damaged = false;
            while !batch.is_full(limits) {
                let Some(rest) = chunk.get(at..) else { break };
                if rest.is_empty() {
                    break;
                }
                let decoded = match record::decode(rest) {
                    Decoded::Incomplete { need } if at == 0 && self.read.offset + need as u64 <= len => {
                        // One record larger than the chunk: read it whole.
                        record::decode(&self.read_at(id, self.read.offset, need as u64)?)
                    }
                    decoded => decoded,
                };
                match decoded {
                    Decoded::Record { document, len: used } => {
                        if !batch.documents.is_empty() && batch.bytes + batch_cost(&document) > limits.max_bytes {
                            break;
                        }
                        at += used;
                        let end = Position { segment: id, offset: self.read.offset + at as u64 };
                        batch.push(slot, document, end);
                    }
                    // The rest of the record is in the next chunk.
                    Decoded::Incomplete { need } if self.read.offset + (at + need) as u64 <= len => break,
                    Decoded::Incomplete { .. } | Decoded::Corrupt => {
                        damaged = true;
                        break;
                    }
                }
            }
            self.read.offset += at as u64;
            if damaged {
                stats.dropped(self.class, DropReason::Corrupt, 1);
                let rest = self.read_at(id, self.read.offset, len - self.read.offset)?;
                let skip = record::resync(&rest, 1).unwrap_or(rest.len());
                tracing::warn!(class = ?self.class, segment = id, offset = self.read.offset, skipped = skip, "damaged queue record skipped");
                self.read.offset += skip as u64;
                batch.advance(slot, self.read, 0);
            } else if at == 0 {
                // The batch is full.
                return Ok(());
            }
        }
    }

    fn read_at(&mut self, id: u64, offset: u64, len: u64) -> Result<Vec<u8>, DeliveryError> {
        let path = segment_path(&self.dir, id);
        if self.reader.as_ref().is_none_or(|(open, _)| *open != id) {
            let file = File::open(&path).map_err(io_err("open the queue segment", &path))?;
            self.reader = Some((id, file));
        }
        let mut buf = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
        if let Some((_, file)) = &self.reader {
            file.read_exact_at(&mut buf, offset).map_err(io_err("read the queue segment", &path))?;
        }
        Ok(buf)
    }

    fn ack(&mut self, mark: Mark, fsync: FsyncPolicy) -> Result<(), DeliveryError> {
        self.ack = self.ack.max(mark.end);
        self.unacked = self.unacked.saturating_sub(mark.records);
        // Records counted per segment are only needed for shedding, which
        // never touches a segment the cursor is in; keep the head's count
        // roughly right for the depth anyway.
        while let Some(front) = self.segments.front() {
            let finished =
                front.id < self.ack.segment || (front.id == self.ack.segment && self.ack.offset >= front.len);
            let is_tail = self.tail.is_some() && self.segments.len() == 1;
            if !finished || is_tail {
                break;
            }
            let id = front.id;
            self.segments.pop_front();
            if self.reader.as_ref().is_some_and(|(open, _)| *open == id) {
                self.reader = None;
            }
            remove(&segment_path(&self.dir, id))?;
            self.dir_unsynced = true;
        }
        self.write_cursor(fsync)
    }

    fn write_cursor(&mut self, fsync: FsyncPolicy) -> Result<(), DeliveryError> {
        let mut bytes = Vec::with_capacity(CURSOR_LEN);
        bytes.extend_from_slice(&CURSOR_MAGIC);
        bytes.extend_from_slice(&self.ack.segment.to_le_bytes());
        bytes.extend_from_slice(&self.ack.offset.to_le_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let tmp = self.dir.join("cursor.tmp");
        let path = self.dir.join("cursor");
        let file = File::create(&tmp).map_err(io_err("create the queue cursor", &tmp))?;
        file.write_all_at(&bytes, 0).map_err(io_err("write the queue cursor", &tmp))?;
        if fsync == FsyncPolicy::Always {
            file.sync_data().map_err(io_err("fsync the queue cursor", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err("replace the queue cursor", &path))?;
        if fsync == FsyncPolicy::Always {
            sync_dir(&self.dir)?;
        } else {
            self.dir_unsynced = true;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), DeliveryError> {
        if self.tail_unsynced {
            if let (Some(file), Some(tail)) = (&self.tail, self.segments.back()) {
                let path = segment_path(&self.dir, tail.id);
                file.sync_data().map_err(io_err("fsync the queue segment", &path))?;
            }
            self.tail_unsynced = false;
        }
        if self.dir_unsynced {
            let cursor = self.dir.join("cursor");
            if let Ok(file) = File::open(&cursor) {
                file.sync_data().map_err(io_err("fsync the queue cursor", &cursor))?;
            }
            sync_dir(&self.dir)?;
            self.dir_unsynced = false;
        }
        Ok(())
    }
}

/// Counts the intact records of a segment's bytes from `start`, skipping
/// damage, and returns the count and where intact data ends.
fn count_records(bytes: &[u8], start: u64) -> (u64, u64) {
    let mut at = usize::try_from(start).unwrap_or(usize::MAX);
    let mut records = 0;
    let mut valid_end = at;
    while let Some(rest) = bytes.get(at..) {
        if rest.is_empty() {
            break;
        }
        match record::decode(rest) {
            Decoded::Record { len, .. } => {
                records += 1;
                at += len;
                valid_end = at;
            }
            Decoded::Incomplete { .. } | Decoded::Corrupt => match record::resync(bytes, at + 1) {
                Some(next) => at = next,
                None => break,
            },
        }
    }
    (records, valid_end as u64)
}

fn remove(path: &Path) -> Result<(), DeliveryError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
        Err(error) => Err(DeliveryError::io("delete the queue segment", path, error)),
    }
}
