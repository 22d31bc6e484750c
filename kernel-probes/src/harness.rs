//! The decision function as an XDP program, run through
//! `BPF_PROG_TEST_RUN`: load the object, fill its maps from a policy's
//! tables and a container's rows, feed it events, read its verdicts.
//!
//! Needs root (or CAP_BPF and CAP_PERFMON) and a kernel with `bpf_loop`
//! and XDP frags (Linux 5.18 or later). A refused `bpf()` call is an
//! error that says so: callers (tests) fail on it, never skip.

use crate::abi::{
    DecisionResult, EventHead, EVENT_DIRECTORY, EVENT_HAS_PATH, KIND_FILE, KIND_PROCESS, NAME_BYTES, PATH_MAX,
};
use crate::maps::{self, MapError};
use crate::XDP_HARNESS_OBJECT;
use aya::programs::Xdp;
use aya::{Ebpf, EbpfLoader};
use d4c_artifact::eval::Tables;
use d4c_artifact::event::Event;
use d4c_artifact::ops::{Actions, Kind};
use std::os::fd::{AsFd, AsRawFd};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// `D4C_LIN_BYTES` of `xdp_harness.bpf.c`: a baseline pattern's bytes.
const LINEAR_PATTERN_BYTES: usize = 256;

/// `struct d4c_lin_pattern` of `xdp_harness.bpf.c`, a record of
/// `d4c_lin_pats`: form, length, operations, actions, then the pattern's
/// bytes, NUL padded.
#[derive(Clone, Copy, IntoBytes, Immutable)]
#[repr(C)]
struct LinearRecord {
    form: u32,
    len: u32,
    ops: u32,
    actions: u32,
    bytes: [u8; LINEAR_PATTERN_BYTES],
}

// The C struct's size (four `__u32`, then `__u8 bytes[D4C_LIN_BYTES]`, no
// padding): the map's value size, which the C side declares.
const _: () = assert!(size_of::<LinearRecord>() == 4 * 4 + LINEAR_PATTERN_BYTES);

/// The XDP program's name.
pub const PROGRAM: &str = "d4c_xdp_decide";

/// Why the harness failed.
#[derive(Debug)]
pub struct HarnessError(pub String);

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

impl From<MapError> for HarnessError {
    fn from(e: MapError) -> HarnessError {
        HarnessError(e.0)
    }
}

fn error(context: &str, e: impl std::error::Error) -> HarnessError {
    maps::error(context, e).into()
}

/// The kernel's verdict on one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The event's kind.
    pub kind: Kind,
    /// Its dynamic class.
    pub dyn_class: u32,
    /// The container's row entry.
    pub actions: Actions,
    /// `RESULT_*` bits.
    pub flags: u32,
    /// The file path class, or the executable class.
    pub path_class: u32,
    /// Process: the name class.
    pub name_class: u32,
    /// Automaton steps taken over the path.
    pub steps: u32,
    /// The kernel's mean duration of one run, in ns.
    pub duration_ns: u32,
}

/// The name of the linear-scan baseline program (benchmarks only).
pub const LINEAR_PROGRAM: &str = "d4c_xdp_linear";

/// One path pattern of the linear-scan baseline: `form` is 0 exact,
/// 1 prefix, 2 recursive, 3 children; `ops` has bit `op` set for each
/// operation (table index) it applies to; `bytes` at most 256.
#[derive(Clone, Debug)]
pub struct LinearPattern {
    /// 0 exact, 1 prefix, 2 recursive, 3 children.
    pub form: u32,
    /// Operations (table indices) as a bit mask.
    pub ops: u32,
    /// Actions bits OR-ed into the result on a match.
    pub actions: u32,
    /// The pattern's bytes (without its wildcard).
    pub bytes: Vec<u8>,
}

/// A loaded harness: the program and its maps, filled from one policy.
pub struct Harness {
    ebpf: Ebpf,
    verified_instructions: Option<u32>,
}

impl Harness {
    /// Loads the program with maps sized for `tables` and `max_rows` row
    /// entries, and fills the tables' maps.
    pub fn load(tables: &Tables, max_rows: usize) -> Result<Harness, HarnessError> {
        Harness::load_with_linear(tables, max_rows, &[])
    }

    /// [`Harness::load`], and when `linear` is not empty, also the
    /// linear-scan baseline program ([`LINEAR_PROGRAM`]) with those
    /// patterns, for [`Harness::run_linear`].
    pub fn load_with_linear(
        tables: &Tables,
        max_rows: usize,
        linear: &[LinearPattern],
    ) -> Result<Harness, HarnessError> {
        let mut loader = EbpfLoader::new();
        maps::size(&mut loader, tables, max_rows);
        loader.set_max_entries("d4c_lin_pats", maps::entries(linear.len()));
        let mut ebpf = loader.load(XDP_HARNESS_OBJECT).map_err(|e| error("cannot load the harness object", e))?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| HarnessError(format!("the object has no program `{PROGRAM}`")))?
            .try_into()
            .map_err(|e| error("the harness program is not XDP", e))?;
        program.load().map_err(|e| error("the verifier refused the harness program", e))?;
        let verified_instructions =
            program.info().map_err(|e| error("cannot read the program's info", e))?.verified_instruction_count();
        let mut harness = Harness { ebpf, verified_instructions };
        maps::fill(&mut harness.ebpf, tables)?;
        if !linear.is_empty() {
            harness.fill_linear(linear)?;
        }
        Ok(harness)
    }

    fn fill_linear(&mut self, linear: &[LinearPattern]) -> Result<(), HarnessError> {
        let mut records = Vec::with_capacity(linear.len());
        for p in linear {
            let too_long = || {
                HarnessError(format!("a baseline pattern of {} bytes, at most {LINEAR_PATTERN_BYTES}", p.bytes.len()))
            };
            let mut bytes = [0u8; LINEAR_PATTERN_BYTES];
            bytes.get_mut(..p.bytes.len()).ok_or_else(too_long)?.copy_from_slice(&p.bytes);
            let len = u32::try_from(p.bytes.len()).map_err(|_| too_long())?;
            records.push(LinearRecord { form: p.form, len, ops: p.ops, actions: p.actions, bytes });
        }
        maps::array::<{ size_of::<LinearRecord>() }>(&mut self.ebpf, "d4c_lin_pats", records.as_bytes())?;
        let count = maps::entries(linear.len()).to_ne_bytes();
        maps::array::<{ size_of::<u32>() }>(&mut self.ebpf, "d4c_lin_count", &count)?;
        let program: &mut Xdp = self
            .ebpf
            .program_mut(LINEAR_PROGRAM)
            .ok_or_else(|| HarnessError(format!("the object has no program `{LINEAR_PROGRAM}`")))?
            .try_into()
            .map_err(|e| error("the baseline program is not XDP", e))?;
        program.load().map_err(|e| error("the verifier refused the baseline program", e))
    }

    /// Runs the linear-scan baseline on `event`, `repeat` times: its
    /// `dyn_class` is the number of matching patterns.
    pub fn run_linear(&self, event: &Event, row: u32, repeat: u32) -> Result<Decision, HarnessError> {
        self.run_program(LINEAR_PROGRAM, &packet(event, row)?, repeat)
    }

    /// Writes a container's row for `kind` (from [`Tables::row`]) as row
    /// `row`, with its summary entry ([`maps::write_row`]).
    pub fn set_row(&mut self, row: u32, kind: Kind, actions: &[Actions]) -> Result<(), HarnessError> {
        Ok(maps::write_row(&mut self.ebpf, row, kind, actions)?)
    }

    /// The verifier's count of instructions processed for the program.
    pub fn verified_instructions(&self) -> Option<u32> {
        self.verified_instructions
    }

    /// Decides `event` in the container of row `row`.
    pub fn decide(&self, event: &Event, row: u32) -> Result<Decision, HarnessError> {
        self.decide_repeat(event, row, 1)
    }

    /// Decides `event` `repeat` times (the kernel reports the mean duration).
    pub fn decide_repeat(&self, event: &Event, row: u32, repeat: u32) -> Result<Decision, HarnessError> {
        let packet = packet(event, row)?;
        self.run(&packet, repeat)
    }

    /// Runs the program on a raw packet: an [`EventHead`] then path bytes.
    /// The program writes its result into room appended after the path, so
    /// that every one of `repeat` runs decides the same event.
    pub fn run(&self, packet: &[u8], repeat: u32) -> Result<Decision, HarnessError> {
        self.run_program(PROGRAM, packet, repeat)
    }

    fn run_program(&self, name: &str, packet: &[u8], repeat: u32) -> Result<Decision, HarnessError> {
        let program: &Xdp = self
            .ebpf
            .program(name)
            .ok_or_else(|| HarnessError(format!("no program `{name}`")))?
            .try_into()
            .map_err(|e| error("the harness program is not XDP", e))?;
        let fd = program.fd().map_err(|e| error("the program is not loaded", e))?;
        let room = std::mem::size_of::<DecisionResult>();
        let mut input = packet.to_vec();
        input.resize(packet.len() + room, 0);
        let mut out = vec![0u8; input.len()];
        let run = crate::sys::test_run(fd.as_fd().as_raw_fd(), &input, &mut out, repeat.max(1))
            .map_err(|e| error("BPF_PROG_TEST_RUN failed", e))?;
        // XDP_PASS is 2; anything else means the program gave up.
        if run.retval != 2 {
            return Err(HarnessError(format!("the program returned {} (XDP_ABORTED is 0)", run.retval)));
        }
        let end = run.data_out_len.min(out.len());
        let result = out
            .get(end.saturating_sub(room)..end)
            .and_then(|b| DecisionResult::read_from_prefix(b).ok())
            .map(|(r, _)| r)
            .ok_or_else(|| HarnessError("the program left a packet shorter than a result".into()))?;
        Ok(Decision {
            kind: if result.kind == KIND_PROCESS { Kind::Process } else { Kind::File },
            dyn_class: result.dyn_class,
            actions: Actions::from_bits(u8::try_from(result.actions).unwrap_or(u8::MAX)),
            flags: result.flags,
            path_class: result.path_class,
            name_class: result.name_class,
            steps: result.steps,
            duration_ns: run.duration_ns,
        })
    }
}

/// The packet for `event` in row `row`: an [`EventHead`], then the path
/// bytes (at most [`PATH_MAX`]; `path_len` keeps the full length, so a
/// longer path is reported truncated).
pub fn packet(event: &Event, row: u32) -> Result<Vec<u8>, HarnessError> {
    let mut head = EventHead { row, ..EventHead::default() };
    let path: &[u8] = match event {
        Event::File(f) => {
            head.kind = KIND_FILE;
            head.op = f.operation.table_index() as u32;
            head.volume = f.volume.table_index() as u32;
            if f.path.is_some() {
                head.flags = EVENT_HAS_PATH;
            }
            if f.directory {
                head.flags |= EVENT_DIRECTORY;
            }
            f.path.as_deref().map_or(&[], str::as_bytes)
        }
        Event::Process(p) => {
            head.kind = KIND_PROCESS;
            head.op = p.operation.table_index() as u32;
            head.interactive = u32::from(p.interactive);
            let name = p.name.as_bytes();
            if name.len() > NAME_BYTES {
                return Err(HarnessError(format!("the process name `{}` is longer than {NAME_BYTES} bytes", p.name)));
            }
            head.name_len = name.len() as u32;
            head.name.iter_mut().zip(name).for_each(|(d, s)| *d = *s);
            p.executable.as_bytes()
        }
        Event::Network(_) => return Err(HarnessError("the kernel decides no network events yet (D4C0044)".into())),
    };
    head.path_len = u32::try_from(path.len()).map_err(|_| HarnessError("a path longer than 4 GiB".into()))?;
    let mut packet = head.as_bytes().to_vec();
    packet.extend_from_slice(path.get(..path.len().min(PATH_MAX)).unwrap_or(path));
    Ok(packet)
}
