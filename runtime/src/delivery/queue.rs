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
//! - When an append would pass `max_bytes`, or a write finds the disk full
//!   (`ENOSPC`, `EDQUOT`), the oldest log segment that no batch is reading
//!   is deleted (its records counted `queue_full`) until the record fits;
//!   if none is left, the new record is refused and counted (`queue_full`
//!   at `max_bytes`, `io` on a full disk). Alerts already queued are never
//!   shed.
//! - Only what the queue could have written is read as a segment: a
//!   regular file named by a 20-digit id and `.seg`, at most `max_bytes`
//!   long, read a chunk or a record at a time. Anything else named `*.seg`
//!   is left alone with a warning naming it, and a new segment never takes
//!   (or truncates) an existing name. Ids from 2^63 on are renumbered from
//!   0 at open, so the next id never wraps.
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
use crate::delivery::record::{self, Decoded, RECORD_MAGIC, SEGMENT_HEADER, SEGMENT_MAGIC};
use crate::delivery::space::Space;
use crate::delivery::stats::{DeliveryStats, DropReason};
use crate::document::{Class, Document};

const CURSOR_MAGIC: [u8; 8] = *b"D4CQCUR1";
const CURSOR_LEN: usize = 28;
/// Pending appends are written once they reach this size.
const WRITE_CHUNK: usize = 256 << 10;
/// The smallest read; a batch's remaining byte budget raises it.
const READ_CHUNK: u64 = 64 << 10;
/// Segment ids from which the queue renumbers its segments at open. No
/// queue writes 2^63 segments, so only a name it did not write gets here
/// (`18446744073709551615.seg`, whose successor would wrap to 0); from 0
/// again, ids never run out.
const RENUMBER_FROM: u64 = 1 << 63;

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
    space: Space,
}

fn segment_name(id: u64) -> String {
    format!("{id:020}.seg")
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(segment_name(id))
}

/// The id of a segment file name, for the canonical name only (20 digits,
/// `.seg`): `5.seg` parses to the id of another file,
/// `00000000000000000005.seg`, which the queue would then open instead.
fn segment_id(name: &str) -> Option<u64> {
    let id = name.strip_suffix(".seg")?.parse::<u64>().ok()?;
    (segment_name(id) == name).then_some(id)
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
        let queue = Self { _lock: lock, classes, options, last_sync: Instant::now(), space: Space::default() };
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

    /// Makes the queue's writes find room in `space` (tests fill the disk).
    #[cfg(test)]
    pub(crate) fn set_space(&mut self, space: Space) {
        self.space = space;
    }

    /// Runs `write` on the queue of `class`; while it fails on a full disk,
    /// sheds the oldest unread log segment (as at `max_bytes`) and runs it
    /// again. `write` must be safe to run again after a failure. Returns
    /// the last error once nothing is left to shed.
    fn with_room(
        &mut self,
        class: Class,
        stats: &DeliveryStats,
        mut write: impl FnMut(&mut ClassQueue, &Space) -> Result<(), DeliveryError>,
    ) -> Result<(), DeliveryError> {
        loop {
            let Some(queue) = self.classes.get_mut(class.index()) else { return Ok(()) };
            let error = match write(queue, &self.space) {
                Err(error) if error.is_disk_full() => error,
                other => return other,
            };
            // Each round deletes a segment that holds records (see
            // `evict_oldest_unread`), so this ends.
            let shed = self.class_mut(Class::Log).is_some_and(|logs| logs.evict_oldest_unread(stats));
            if !shed {
                return Err(error);
            }
            tracing::warn!(%error, "disk full: shed the oldest unsent log segment to store newer documents");
        }
    }

    /// Writes the pending records of `class`, shedding logs on a full
    /// disk; if they cannot be written, they are dropped and counted `io`.
    fn flush(&mut self, class: Class, stats: &DeliveryStats) -> Result<(), DeliveryError> {
        let result = self.with_room(class, stats, ClassQueue::write_pending);
        if result.is_err() {
            if let Some(queue) = self.class_mut(class) {
                queue.drop_pending(stats);
            }
        }
        result
    }

    /// Seals the tail of `class` and starts a new segment, shedding logs on
    /// a full disk; pending records that cannot be written are dropped and
    /// counted `io`.
    fn roll(&mut self, class: Class, stats: &DeliveryStats) -> Result<(), DeliveryError> {
        let fsync = self.options.fsync;
        let result = self.with_room(class, stats, |queue, space| queue.roll(fsync, space));
        if result.is_err() {
            if let Some(queue) = self.class_mut(class) {
                queue.drop_pending(stats);
            }
        }
        result
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
            if self.class_mut(document.class).is_some_and(|q| q.pending.len() >= WRITE_CHUNK) {
                if let Err(error) = self.flush(document.class, stats) {
                    failure = Some(error);
                }
            }
        }
        for class in Class::ALL {
            if let Err(error) = self.flush(class, stats) {
                failure = Some(error);
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
        // Shedding may have removed the tail: ask again.
        if self.class_mut(document.class).is_some_and(|q| q.needs_roll(len, segment_bytes)) {
            self.roll(document.class, stats)?;
        }
        let Some(queue) = self.class_mut(document.class) else { return Ok(()) };
        if record::encode(document, &mut queue.pending) {
            queue.pending_records += 1;
        }
        Ok(())
    }

    /// Deletes the oldest unread log segments until `need` more bytes fit.
    fn shed_logs(&mut self, need: u64, stats: &DeliveryStats) -> Result<(), DeliveryError> {
        for class in Class::ALL {
            self.flush(class, stats)?;
        }
        while self.disk_bytes() + need > self.options.max_bytes {
            let Some(logs) = self.class_mut(Class::Log) else { break };
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

/// Replaces the cursor of the queue directory `dir` with `ack` (through a
/// rename: a crash leaves the old cursor or the new one), fsyncing the file
/// and the directory when `durable`.
fn store_cursor(dir: &Path, ack: Position, durable: bool) -> Result<(), DeliveryError> {
    let mut bytes = Vec::with_capacity(CURSOR_LEN);
    bytes.extend_from_slice(&CURSOR_MAGIC);
    bytes.extend_from_slice(&ack.segment.to_le_bytes());
    bytes.extend_from_slice(&ack.offset.to_le_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join("cursor.tmp");
    let path = dir.join("cursor");
    let file = File::create(&tmp).map_err(io_err("create the queue cursor", &tmp))?;
    file.write_all_at(&bytes, 0).map_err(io_err("write the queue cursor", &tmp))?;
    if durable {
        file.sync_data().map_err(io_err("fsync the queue cursor", &tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_err("replace the queue cursor", &path))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Renames the segments `ids` (sorted) of `dir` to 0, 1, 2... in order and
/// returns `cursor` in the new ids (the offset kept when its segment is
/// still there, else the start of the next one).
///
/// Crash-safe: the new cursor is stored first; the renames keep the order
/// of the segments and each one's index (new id `i` <= old id `i`, so no
/// rename meets a name still to be moved), so a second open, renumbering
/// again, maps every segment and the cursor to the same ids; a cursor it
/// cannot find resumes at the start of the next segment (a re-send, never
/// a loss). `RENAME_NOREPLACE`: an entry left alone is never replaced.
fn renumber(dir: &Path, ids: &mut [u64], cursor: Option<Position>) -> Result<Option<Position>, DeliveryError> {
    let moved = cursor.map(|c| match ids.binary_search(&c.segment) {
        Ok(index) => Position { segment: index as u64, offset: c.offset },
        Err(index) => Position { segment: index as u64, offset: SEGMENT_HEADER },
    });
    if let Some(position) = moved {
        store_cursor(dir, position, true)?;
    }
    for (new, old) in (0u64..).zip(ids.iter_mut()) {
        if *old != new {
            let (from, to) = (segment_path(dir, *old), segment_path(dir, new));
            rustix::fs::renameat_with(rustix::fs::CWD, &from, rustix::fs::CWD, &to, rustix::fs::RenameFlags::NOREPLACE)
                .map_err(|errno| DeliveryError::io("renumber the queue segment", &from, errno.into()))?;
            *old = new;
        }
    }
    sync_dir(dir)?;
    tracing::warn!(dir = %dir.display(), segments = ids.len(), "queue segment ids near the end of the range: renumbered from 0");
    Ok(moved)
}

fn sync_dir(dir: &Path) -> Result<(), DeliveryError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync the directory", dir))
}

impl ClassQueue {
    /// Opens the queue of `class` in `dir`: lists its segments (see
    /// [`list_segments`]), deletes those the cursor passed, and counts the
    /// records of the others, truncating a torn tail of the last one
    /// (counted `corrupt`). A segment over `max_bytes` (the whole queue's
    /// bound: the queue never wrote it) is left alone with a warning.
    fn open(dir: PathBuf, class: Class, stats: &DeliveryStats, max_bytes: u64) -> Result<Self, DeliveryError> {
        fs::create_dir_all(&dir).map_err(io_err("create the queue directory", &dir))?;
        let mut ids = list_segments(&dir)?;
        let mut cursor = read_cursor(&dir.join("cursor"));
        let high = |id: u64| id >= RENUMBER_FROM;
        if ids.last().copied().is_some_and(high) || cursor.is_some_and(|c| high(c.segment)) {
            cursor = renumber(&dir, &mut ids, cursor)?;
        }
        let first = ids.first().copied().unwrap_or(0);
        let ack = match cursor {
            Some(position) if ids.contains(&position.segment) => position,
            Some(position) => Position { segment: (position.segment + 1).max(first), offset: SEGMENT_HEADER },
            None => Position { segment: first, offset: SEGMENT_HEADER },
        };
        // Every id and the cursor's are under RENUMBER_FROM: no overflow.
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
            queue.open_segment(id, Some(id) == last, max_bytes, stats)?;
        }
        Ok(queue)
    }

    /// Checks the segment `id` and adds it to the queue: its records after
    /// the cursor are counted by reading it a chunk or a record at a time,
    /// never whole. One the cursor passed is deleted; one over `max_bytes`
    /// is left alone.
    fn open_segment(
        &mut self,
        id: u64,
        is_last: bool,
        max_bytes: u64,
        stats: &DeliveryStats,
    ) -> Result<(), DeliveryError> {
        let path = segment_path(&self.dir, id);
        // Regular (checked again on the open file: the entry may have changed).
        let file = d4c_artifact::input::open_regular(&path).map_err(io_err("open the queue segment", &path))?;
        let len = file.metadata().map_err(io_err("read the size of the queue segment", &path))?.len();
        if len > max_bytes {
            // A sparse or foreign file: reading it would cost its size in
            // time, and nothing the queue wrote is this large.
            tracing::warn!(path = %path.display(), bytes = len, max_bytes, "queue segment larger than the queue's `max_bytes`: not written by this queue; left alone, not read");
            return Ok(());
        }
        if id < self.ack.segment {
            // Acknowledged before a crash that kept the cursor but not the deletion.
            return remove(&path);
        }
        let mut reader = SegmentReader { file: &file, path: &path, len, start: 0, buf: Vec::new() };
        let head = reader.window(0, SEGMENT_HEADER)?;
        let head = head.get(..SEGMENT_MAGIC.len()).unwrap_or(head);
        if head != SEGMENT_MAGIC {
            // A segment whose header never reached the disk held nothing;
            // anything else is damage.
            if !SEGMENT_MAGIC.starts_with(head) {
                stats.dropped(self.class, DropReason::Corrupt, 1);
            }
            return remove(&path);
        }
        let start = if id == self.ack.segment { self.ack.offset.clamp(SEGMENT_HEADER, len) } else { SEGMENT_HEADER };
        if id == self.ack.segment {
            self.ack.offset = start;
            self.read.offset = start;
        }
        let (records, valid_end) = reader.count_records(start)?;
        let mut len = len;
        if is_last && valid_end < len {
            // A torn tail: the crash interrupted the last write.
            let file = OpenOptions::new().write(true).open(&path).map_err(io_err("open the queue segment", &path))?;
            file.set_len(valid_end).map_err(io_err("truncate the torn queue segment", &path))?;
            stats.dropped(self.class, DropReason::Corrupt, 1);
            len = valid_end;
        }
        self.unacked += records;
        self.segments.push_back(Segment { id, len, records });
        Ok(())
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

    /// Writes the pending records at the tail's length, first starting a
    /// segment if shedding deleted the tail. On failure they stay pending:
    /// running it again writes them at the same place, over whatever part
    /// of them reached the disk.
    fn write_pending(&mut self, space: &Space) -> Result<(), DeliveryError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.tail.is_none() {
            self.start_segment(space)?;
        }
        let (Some(file), Some(tail)) = (&self.tail, self.segments.back_mut()) else { return Ok(()) };
        space
            .write_all_at(file, &self.pending, tail.len)
            .map_err(io_err("write the queue segment", &segment_path(&self.dir, tail.id)))?;
        tail.len += self.pending.len() as u64;
        tail.records += self.pending_records;
        self.unacked += self.pending_records;
        self.tail_unsynced = true;
        self.pending.clear();
        self.pending_records = 0;
        Ok(())
    }

    /// Drops the pending records, counted `io`: their write failed for good.
    fn drop_pending(&mut self, stats: &DeliveryStats) {
        stats.dropped(self.class, DropReason::Io, self.pending_records);
        self.pending.clear();
        self.pending_records = 0;
    }

    /// Writes what is pending, seals the tail and starts a new segment.
    /// Safe to run again after a failure.
    fn roll(&mut self, fsync: FsyncPolicy, space: &Space) -> Result<(), DeliveryError> {
        self.write_pending(space)?;
        if let Some(file) = self.tail.take() {
            if fsync != FsyncPolicy::Never && self.tail_unsynced {
                if let Some(tail) = self.segments.back() {
                    let path = segment_path(&self.dir, tail.id);
                    file.sync_data().map_err(io_err("fsync the queue segment", &path))?;
                }
            }
            self.tail_unsynced = false;
        }
        self.start_segment(space)
    }

    /// Creates segment `next_id` (or the next free id) as the new tail.
    /// Never opens an existing file (`create_new`): a name the queue did
    /// not expect to be taken holds records, or something not its own, and
    /// is never truncated.
    fn start_segment(&mut self, space: &Space) -> Result<(), DeliveryError> {
        let (id, file) = loop {
            let id = self.next_id;
            let path = segment_path(&self.dir, id);
            // Ids stay far under u64::MAX (see RENUMBER_FROM); never wrap.
            let Some(next_id) = id.checked_add(1) else {
                let used_up = io::Error::other("segment ids are used up: move the queue's segments away");
                return Err(DeliveryError::io("create the queue segment", &path, used_up));
            };
            self.next_id = next_id;
            match OpenOptions::new().create_new(true).read(true).write(true).open(&path) {
                Ok(file) => break (id, file),
                // Something the queue left alone (see `list_segments`).
                Err(error) if error.kind() == ErrorKind::AlreadyExists => {
                    tracing::warn!(path = %path.display(), "the next queue segment's name is taken by something else: skipped");
                }
                Err(error) => return Err(DeliveryError::io("create the queue segment", &path, error)),
            }
        };
        let path = segment_path(&self.dir, id);
        if let Err(source) = space.write_all_at(&file, &SEGMENT_MAGIC, 0) {
            // Removed (and its id used again) so that the next try can create it.
            remove(&path)?;
            self.next_id = id;
            return Err(DeliveryError::io("write the queue segment", &path, source));
        }
        self.segments.push_back(Segment { id, len: SEGMENT_HEADER, records: 0 });
        self.tail = Some(file);
        self.dir_unsynced = true;
        Ok(())
    }

    /// Deletes the oldest segment that holds records and that no batch has
    /// read from. False when there is none. (An empty one frees nothing:
    /// deleting the tail just started would only start it again.)
    fn evict_oldest_unread(&mut self, stats: &DeliveryStats) -> bool {
        let read = self.read;
        let Some(index) = self.segments.iter().position(|s| {
            let unread = s.id > read.segment || (s.id == read.segment && read.offset <= SEGMENT_HEADER);
            unread && s.len > SEGMENT_HEADER
        }) else {
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
                let next = self.next_intact(id, len, self.read.offset + 1)?;
                let skip = next - self.read.offset;
                tracing::warn!(class = ?self.class, segment = id, offset = self.read.offset, skipped = skip, "damaged queue record skipped");
                self.read.offset = next;
                batch.advance(slot, self.read, 0);
            } else if at == 0 {
                // The batch is full.
                return Ok(());
            }
        }
    }

    /// The open file of segment `id` (opened once per segment read).
    fn reader(&mut self, id: u64, path: &Path) -> Result<&File, DeliveryError> {
        if self.reader.as_ref().is_none_or(|(open, _)| *open != id) {
            let file = File::open(path).map_err(io_err("open the queue segment", path))?;
            self.reader = Some((id, file));
        }
        match &self.reader {
            Some((_, file)) => Ok(file),
            None => Err(DeliveryError::io("open the queue segment", path, ErrorKind::NotFound.into())),
        }
    }

    fn read_at(&mut self, id: u64, offset: u64, len: u64) -> Result<Vec<u8>, DeliveryError> {
        let path = segment_path(&self.dir, id);
        let mut buf = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
        self.reader(id, &path)?.read_exact_at(&mut buf, offset).map_err(io_err("read the queue segment", &path))?;
        Ok(buf)
    }

    /// Where the next intact record at or after `from` starts in segment
    /// `id` of `len` bytes (`len` if none), read a chunk at a time.
    fn next_intact(&mut self, id: u64, len: u64, from: u64) -> Result<u64, DeliveryError> {
        let path = segment_path(&self.dir, id);
        let file = self.reader(id, &path)?;
        SegmentReader { file, path: &path, len, start: 0, buf: Vec::new() }.next_intact(from)
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
        let durable = fsync == FsyncPolicy::Always;
        store_cursor(&self.dir, self.ack, durable)?;
        if !durable {
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

/// The segments of the queue directory `dir`, sorted by id.
///
/// A segment is a regular file (not a link) with a canonical name. Any
/// other entry named `*.seg` is left alone, with a warning naming it: it
/// is not the queue's, and reading, deleting or truncating it could lose
/// what it is.
fn list_segments(dir: &Path) -> Result<Vec<u64>, DeliveryError> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list the queue directory", dir))? {
        let entry = entry.map_err(io_err("list the queue directory", dir))?;
        let path = entry.path();
        if path.extension().is_none_or(|extension| extension != "seg") {
            // The cursor and its temporary file.
            continue;
        }
        let kind = entry.file_type().map_err(io_err("read the type of", &path))?;
        match entry.file_name().to_str().and_then(segment_id) {
            None => {
                tracing::warn!(path = %path.display(), "not a queue segment name (20 digits, then `.seg`): left alone, not read")
            }
            Some(_) if !kind.is_file() => {
                tracing::warn!(path = %path.display(), "named like a queue segment but not a regular file: left alone, not read")
            }
            Some(id) => ids.push(id),
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Reads one segment file through a window of at most one chunk or one
/// record: memory stays bounded by the largest record, whatever the file.
struct SegmentReader<'a> {
    file: &'a File,
    path: &'a Path,
    /// The file's length.
    len: u64,
    /// The offset of `buf` in the file.
    start: u64,
    buf: Vec<u8>,
}

impl SegmentReader<'_> {
    /// The bytes from `at` on: at least `want` of them unless the file
    /// ends first, at most `want` or a chunk, whichever is more.
    fn window(&mut self, at: u64, want: u64) -> Result<&[u8], DeliveryError> {
        let at = at.min(self.len);
        let want = want.min(self.len - at);
        let held = at >= self.start && at + want <= self.start + self.buf.len() as u64;
        if !held {
            let len = want.max(READ_CHUNK).min(self.len - at);
            self.buf.resize(usize::try_from(len).unwrap_or(usize::MAX), 0);
            self.file.read_exact_at(&mut self.buf, at).map_err(io_err("read the queue segment", self.path))?;
            self.start = at;
        }
        Ok(self.buf.get(usize::try_from(at - self.start).unwrap_or(usize::MAX)..).unwrap_or_default())
    }

    /// The length of the record at `at` if it is whole and intact.
    fn record_len(&mut self, at: u64) -> Result<Option<u64>, DeliveryError> {
        let mut want = READ_CHUNK;
        loop {
            let window = self.window(at, want)?;
            let held = window.len() as u64;
            match record::decode(window) {
                Decoded::Record { len, .. } => return Ok(Some(len as u64)),
                // Bounded: `decode` never needs more than one record.
                Decoded::Incomplete { need } if need as u64 > held && at + need as u64 <= self.len => {
                    want = need as u64;
                }
                Decoded::Incomplete { .. } | Decoded::Corrupt => return Ok(None),
            }
        }
    }

    /// Where the next intact record at or after `from` starts, or the
    /// file's length if none does.
    fn next_intact(&mut self, from: u64) -> Result<u64, DeliveryError> {
        let mut at = from;
        while at < self.len {
            let window = self.window(at, READ_CHUNK)?;
            let Some(found) = window.windows(2).position(|pair| pair == RECORD_MAGIC) else {
                // The last byte may be the first of a magic the next window completes.
                at += (window.len() as u64).saturating_sub(1).max(1);
                continue;
            };
            let candidate = at + found as u64;
            if self.record_len(candidate)?.is_some() {
                return Ok(candidate);
            }
            at = candidate + 1;
        }
        Ok(self.len)
    }

    /// Counts the intact records from `start`, skipping damage, and returns
    /// the count and where intact data ends.
    fn count_records(&mut self, start: u64) -> Result<(u64, u64), DeliveryError> {
        let (mut at, mut records, mut valid_end) = (start, 0, start);
        while at < self.len {
            match self.record_len(at)? {
                Some(len) => {
                    records += 1;
                    at += len;
                    valid_end = at;
                }
                None => at = self.next_intact(at + 1)?,
            }
        }
        Ok((records, valid_end))
    }
}

fn remove(path: &Path) -> Result<(), DeliveryError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
        Err(error) => Err(DeliveryError::io("delete the queue segment", path, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(n: usize, class: Class) -> Document {
        let id = format!("{}-{n}", class.label());
        Document { stream: "logs-x".to_owned(), id, class, body: vec![b'x'; 100] }
    }

    /// A scratch directory and the queue root in it.
    fn scratch() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("queue");
        (dir, root)
    }

    fn options(max_bytes: u64, segment_bytes: u64) -> QueueOptions {
        QueueOptions { max_bytes, segment_bytes, fsync: FsyncPolicy::Never }
    }

    /// The ids of every document the queue holds, read and acknowledged.
    fn drain(queue: &mut DiskQueue, stats: &DeliveryStats) -> Vec<String> {
        let limits = BatchLimits { max_documents: 1 << 20, max_bytes: 1 << 30 };
        let mut ids = Vec::new();
        loop {
            let mut batch = Batch::default();
            queue.read_into(&mut batch, limits, stats).unwrap();
            if !batch.has_progress() {
                return ids;
            }
            ids.extend(batch.documents.iter().map(|d| d.id.clone()));
            queue.ack(&mut batch, stats).unwrap();
        }
    }

    /// Bytes of the segment files under the queue `root`: what a file
    /// system holding only the queue would have allocated.
    fn segment_bytes_on_disk(root: &Path) -> u64 {
        ["alerts", "logs"]
            .iter()
            .flat_map(|class| fs::read_dir(root.join(class)).into_iter().flatten().flatten())
            .filter(|entry| entry.path().extension().is_some_and(|e| e == "seg"))
            .map(|entry| entry.metadata().map_or(0, |m| m.len()))
            .sum()
    }

    /// A segment file holding `count` alerts.
    fn segment_of_alerts(count: usize) -> Vec<u8> {
        let mut bytes = SEGMENT_MAGIC.to_vec();
        for n in 0..count {
            assert!(record::encode(&document(n, Class::Alert), &mut bytes));
        }
        bytes
    }

    #[test]
    fn enospc_sheds_logs_for_alerts() {
        let (_dir, root) = scratch();
        let stats = DeliveryStats::default();
        // The budget is far away: only the disk (32 KiB) fills.
        let mut queue = DiskQueue::open(&root, options(1 << 30, 4 << 10), &stats).unwrap();
        let disk = root.clone();
        queue.set_space(Space::bounded(move || (32u64 << 10).saturating_sub(segment_bytes_on_disk(&disk))));
        // About 55 KiB of logs, as the writer appends them.
        for n in 0..400 {
            let _ = queue.append(vec![document(n, Class::Log)], &stats);
        }
        assert!(stats.snapshot().queue_records.log < 400, "the disk never filled: {:#?}", stats.snapshot());
        let shed_for_logs = stats.snapshot().dropped(DropReason::QueueFull).log;
        assert!(shed_for_logs > 0, "logs were not shed for logs: {:#?}", stats.snapshot());

        queue.append((0..50).map(|n| document(n, Class::Alert)).collect(), &stats).unwrap();
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.dropped_total().alert, 0, "{snapshot:#?}");
        assert_eq!(snapshot.dropped(DropReason::Io).log, 0, "{snapshot:#?}");
        assert!(snapshot.dropped(DropReason::QueueFull).log > shed_for_logs, "{snapshot:#?}");
        assert_eq!(snapshot.queue_records.alert, 50);
        assert_eq!(snapshot.queue_records.log + snapshot.dropped(DropReason::QueueFull).log, 400);
        let ids = drain(&mut queue, &stats);
        let alerts: Vec<String> = (0..50).map(|n| format!("alert-{n}")).collect();
        assert_eq!(ids.get(..50), Some(&alerts[..]));
        assert_eq!(ids.len() as u64, 50 + snapshot.queue_records.log);
    }

    #[test]
    fn stray_segment_named_file_is_skipped() {
        let (_dir, root) = scratch();
        let alerts = root.join("alerts");
        fs::create_dir_all(alerts.join("00000000000000000007.seg")).unwrap();
        fs::write(alerts.join("5.seg"), segment_of_alerts(2)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", alerts.join("00000000000000000009.seg")).unwrap();
        let stats = DeliveryStats::default();
        let mut queue = DiskQueue::open(&root, options(1 << 20, 64 << 10), &stats).unwrap();
        queue.append((0..3).map(|n| document(n, Class::Alert)).collect(), &stats).unwrap();
        assert_eq!(drain(&mut queue, &stats), ["alert-0", "alert-1", "alert-2"]);
        // Left alone: none of them was read, deleted or replaced.
        assert!(alerts.join("00000000000000000007.seg").is_dir());
        assert_eq!(fs::read(alerts.join("5.seg")).unwrap(), segment_of_alerts(2));
        assert!(fs::symlink_metadata(alerts.join("00000000000000000009.seg")).unwrap().is_symlink());
    }

    #[test]
    fn sparse_segment_is_not_read_whole() {
        let (_dir, root) = scratch();
        let stats = DeliveryStats::default();
        let mut queue = DiskQueue::open(&root, options(1 << 20, 64 << 10), &stats).unwrap();
        queue.append((0..3).map(|n| document(n, Class::Alert)).collect(), &stats).unwrap();
        drop(queue);
        // A valid header, then a 2 GiB hole: no disk space, but reading it
        // whole would take 2 GiB of memory.
        let sparse = root.join("alerts").join(segment_name(1000));
        fs::write(&sparse, SEGMENT_MAGIC).unwrap();
        File::options().write(true).open(&sparse).unwrap().set_len(2 << 30).unwrap();

        let mut queue = DiskQueue::open(&root, options(1 << 20, 64 << 10), &stats).unwrap();
        assert_eq!(queue.unacked_records(), 3);
        queue.append(vec![document(3, Class::Alert)], &stats).unwrap();
        assert_eq!(drain(&mut queue, &stats), ["alert-0", "alert-1", "alert-2", "alert-3"]);
        assert_eq!(fs::metadata(&sparse).unwrap().len(), 2 << 30, "left alone");
    }

    #[test]
    fn segment_within_the_bound_is_read_a_record_at_a_time() {
        let (_dir, root) = scratch();
        let alerts = root.join("alerts");
        fs::create_dir_all(&alerts).unwrap();
        // Two alerts, a 600 KiB run of damage (many chunks), two alerts.
        let mut bytes = segment_of_alerts(2);
        bytes.extend(std::iter::repeat_n(0xD4, 600 << 10));
        for n in 2..4 {
            record::encode(&document(n, Class::Alert), &mut bytes);
        }
        let path = alerts.join(segment_name(0));
        fs::write(&path, &bytes).unwrap();
        // Counted through one chunk's memory, not the file's.
        let file = File::open(&path).unwrap();
        let mut reader = SegmentReader { file: &file, path: &path, len: bytes.len() as u64, start: 0, buf: Vec::new() };
        assert_eq!(reader.count_records(SEGMENT_HEADER).unwrap(), (4, bytes.len() as u64));
        assert!(reader.buf.capacity() as u64 <= READ_CHUNK, "{} bytes held", reader.buf.capacity());

        let stats = DeliveryStats::default();
        let mut queue = DiskQueue::open(&root, options(1 << 20, 64 << 10), &stats).unwrap();
        assert_eq!(queue.unacked_records(), 4);
        assert_eq!(drain(&mut queue, &stats), ["alert-0", "alert-1", "alert-2", "alert-3"]);
        assert_eq!(stats.snapshot().dropped(DropReason::Corrupt).alert, 1);
    }

    #[test]
    fn segment_id_u64_max_does_not_wrap() {
        for id in [u64::MAX, u64::MAX - 1] {
            let (_dir, root) = scratch();
            let alerts = root.join("alerts");
            fs::create_dir_all(&alerts).unwrap();
            fs::write(alerts.join(segment_name(id)), segment_of_alerts(50)).unwrap();
            let stats = DeliveryStats::default();
            let mut queue = DiskQueue::open(&root, options(1 << 20, 64 << 10), &stats).unwrap();
            assert_eq!(queue.unacked_records(), 50);
            queue.append(vec![document(50, Class::Alert)], &stats).unwrap();
            let expected: Vec<String> = (0..51).map(|n| format!("alert-{n}")).collect();
            assert_eq!(drain(&mut queue, &stats), expected, "segment {id}");
        }
    }

    #[test]
    fn renumbering_keeps_the_cursor() {
        let (_dir, root) = scratch();
        let alerts = root.join("alerts");
        fs::create_dir_all(&alerts).unwrap();
        let one = segment_of_alerts(1).len() as u64;
        fs::write(alerts.join(segment_name(7)), segment_of_alerts(3)).unwrap();
        fs::write(alerts.join(segment_name(u64::MAX)), segment_of_alerts(3)).unwrap();
        // Acknowledged: segment 7 up to its second record.
        store_cursor(&alerts, Position { segment: 7, offset: one + (one - SEGMENT_HEADER) }, false).unwrap();
        let stats = DeliveryStats::default();
        let mut queue = DiskQueue::open(&root, options(1 << 20, 64 << 10), &stats).unwrap();
        assert_eq!(drain(&mut queue, &stats), ["alert-2", "alert-0", "alert-1", "alert-2"]);
    }
}
