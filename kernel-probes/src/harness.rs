//! The decision function as an XDP program, run through
//! `BPF_PROG_TEST_RUN`: load the object, fill its maps from a policy's
//! tables and a container's rows, feed it events, read its verdicts.
//!
//! Needs root (or CAP_BPF and CAP_PERFMON) and a kernel with `bpf_loop`
//! and XDP frags (Linux 5.18 or later). A refused `bpf()` call is an
//! error that says so: callers (tests) fail on it, never skip.

use crate::abi::{DecisionResult, EventHead, RowKey, EVENT_HAS_PATH, KIND_FILE, KIND_PROCESS, NAME_BYTES, PATH_MAX};
use crate::XDP_HARNESS_OBJECT;
use aya::maps::{Array, HashMap, MapData};
use aya::programs::Xdp;
use aya::{Ebpf, EbpfLoader};
use d4c_artifact::eval::{component_records, Tables};
use d4c_artifact::event::Event;
use d4c_artifact::ops::{Actions, Kind};
use std::os::fd::{AsFd, AsRawFd};
use zerocopy::{FromBytes, IntoBytes};

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

fn error(context: &str, e: impl std::fmt::Display) -> HarnessError {
    let text = e.to_string();
    let hint = if text.contains("Operation not permitted") || text.contains("EPERM") || text.contains("os error 1)") {
        " (the bpf() system call was refused: the harness needs root, or CAP_BPF and CAP_PERFMON)"
    } else {
        ""
    };
    HarnessError(format!("{context}: {text}{hint}"))
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

fn bytes<const N: usize>(record: &[u8]) -> Result<[u8; N], HarnessError> {
    <[u8; N]>::try_from(record).map_err(|_| HarnessError(format!("a record of {} bytes, want {N}", record.len())))
}

fn count(n: usize) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
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
        let (short_keys, short_ids, long_keys, long_ids) = component_records(&tables.components);
        let mut loader = EbpfLoader::new();
        loader
            .set_max_entries("d4c_states", count(tables.states.len()))
            .set_max_entries("d4c_comp_short", count(short_keys.len()))
            .set_max_entries("d4c_comp_long", count(long_keys.len()))
            .set_max_entries("d4c_edges", count(tables.edges.len()))
            .set_max_entries("d4c_pedges", count(tables.prefix_edges.len()))
            .set_max_entries("d4c_file_cls", count(tables.file_classes.len()))
            .set_max_entries("d4c_proc_a", count(tables.process_classes_a.len()))
            .set_max_entries("d4c_proc_d", count(tables.process_classes_d.len()))
            .set_max_entries("d4c_rows", count(max_rows))
            .set_max_entries("d4c_lin_pats", count(linear.len()));
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
        harness.fill(tables, (&short_keys, &short_ids), (&long_keys, &long_ids))?;
        if !linear.is_empty() {
            harness.fill_linear(linear)?;
        }
        Ok(harness)
    }

    fn array<const N: usize>(&mut self, name: &str, records: &[u8]) -> Result<(), HarnessError> {
        let map: &mut aya::maps::Map =
            self.ebpf.map_mut(name).ok_or_else(|| HarnessError(format!("no map `{name}`")))?;
        let mut array: Array<&mut MapData, [u8; N]> = Array::try_from(map).map_err(|e| error(name, e))?;
        for (i, record) in (0u32..).zip(records.chunks_exact(N)) {
            array.set(i, bytes::<N>(record)?, 0).map_err(|e| error(name, e))?;
        }
        Ok(())
    }

    fn hash<const N: usize>(&mut self, name: &str, keys: &[u8], values: &[u32]) -> Result<(), HarnessError> {
        let map: &mut aya::maps::Map =
            self.ebpf.map_mut(name).ok_or_else(|| HarnessError(format!("no map `{name}`")))?;
        let mut hash: HashMap<&mut MapData, [u8; N], u32> = HashMap::try_from(map).map_err(|e| error(name, e))?;
        for (key, value) in keys.chunks_exact(N).zip(values) {
            hash.insert(bytes::<N>(key)?, value, 0).map_err(|e| error(name, e))?;
        }
        Ok(())
    }

    fn fill(
        &mut self,
        tables: &Tables,
        short: (&[d4c_artifact::tables::ComponentKeyShort], &[u32]),
        long: (&[d4c_artifact::tables::ComponentKeyLong], &[u32]),
    ) -> Result<(), HarnessError> {
        self.array::<40>("d4c_roots", tables.roots.as_bytes())?;
        self.array::<24>("d4c_states", tables.states.as_bytes())?;
        self.hash::<32>("d4c_comp_short", short.0.as_bytes(), short.1)?;
        self.hash::<260>("d4c_comp_long", long.0.as_bytes(), long.1)?;
        let keys = |edges: &[(d4c_artifact::tables::EdgeKey, u32)]| edges.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        let values = |edges: &[(d4c_artifact::tables::EdgeKey, u32)]| edges.iter().map(|(_, v)| *v).collect::<Vec<_>>();
        self.hash::<8>("d4c_edges", keys(&tables.edges).as_bytes(), &values(&tables.edges))?;
        self.hash::<8>("d4c_pedges", keys(&tables.prefix_edges).as_bytes(), &values(&tables.prefix_edges))?;
        self.array::<4>("d4c_file_cls", tables.file_classes.as_bytes())?;
        self.array::<4>("d4c_proc_a", tables.process_classes_a.as_bytes())?;
        self.array::<4>("d4c_proc_d", tables.process_classes_d.as_bytes())?;
        Ok(())
    }

    fn fill_linear(&mut self, linear: &[LinearPattern]) -> Result<(), HarnessError> {
        let mut records = Vec::with_capacity(linear.len() * 272);
        for p in linear {
            if p.bytes.len() > 256 {
                return Err(HarnessError(format!("a baseline pattern of {} bytes, at most 256", p.bytes.len())));
            }
            let len = p.bytes.len() as u32;
            for word in [p.form, len, p.ops, p.actions] {
                records.extend_from_slice(&word.to_ne_bytes());
            }
            records.extend_from_slice(&p.bytes);
            records.resize(records.len() + 256 - p.bytes.len(), 0);
        }
        self.array::<272>("d4c_lin_pats", &records)?;
        self.array::<4>("d4c_lin_count", &count(linear.len()).to_ne_bytes())?;
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

    /// Writes a container's row for `kind` (from [`Tables::row`]) as row `row`.
    pub fn set_row(&mut self, row: u32, kind: Kind, actions: &[Actions]) -> Result<(), HarnessError> {
        let kind = kind_code(kind);
        let keys: Vec<RowKey> = (0u32..).zip(actions).map(|(dyn_class, _)| RowKey { row, kind, dyn_class }).collect();
        let values: Vec<u32> = actions.iter().map(|a| u32::from(a.bits())).collect();
        self.hash::<12>("d4c_rows", keys.as_bytes(), &values)
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

fn kind_code(kind: Kind) -> u32 {
    match kind {
        Kind::File => KIND_FILE,
        Kind::Process => KIND_PROCESS,
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
    };
    head.path_len = u32::try_from(path.len()).map_err(|_| HarnessError("a path longer than 4 GiB".into()))?;
    let mut packet = head.as_bytes().to_vec();
    packet.extend_from_slice(path.get(..path.len().min(PATH_MAX)).unwrap_or(path));
    Ok(packet)
}
