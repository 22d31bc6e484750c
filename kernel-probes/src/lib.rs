//! The d4c kernel probes: the in-kernel decision function and its ABI.
//!
//! In: a policy's decision tables ([`d4c_artifact::eval::Tables`]) and
//! events. Out: the kernel's verdicts. The decision is one C function,
//! `d4c_decide` in `src/decide.bpf.h`, which computes exactly what
//! [`Tables::dynamic_class`](d4c_artifact::eval::Tables::dynamic_class)
//! computes and then reads the container's row entry.
//!
//! - [`abi`]: the records shared with the C side (`include/d4c_abi.h`),
//!   with compile-time size and offset checks.
//! - `harness` (feature `harness`, test support: off by default, so the
//!   daemon does not embed it): loads the decision function compiled as an
//!   XDP program and runs it through `BPF_PROG_TEST_RUN`, so that it can be
//!   checked on kernels that refuse LSM programs. This crate's tests and
//!   examples turn it on (a dev-dependency on the crate itself).
//!
//! Invariants: the C header and [`abi`] agree (tests check the constants
//! and the compiled object's BTF); the kernel's class equals the table
//! evaluator's for every event (the agreement tests).

pub mod abi;
#[cfg(feature = "harness")]
pub mod harness;
pub mod maps;
pub mod probes;
mod sys;

/// The compiled XDP harness object (`src/xdp_harness.bpf.c`), aligned so
/// that its ELF headers can be read in place.
#[cfg(feature = "harness")]
pub static XDP_HARNESS_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp_harness.bpf.o"));

/// The compiled probes object (`src/probes.bpf.c`): the LSM hooks and
/// tracepoints, CO-RE, relocated against the running kernel's BTF at load.
pub static PROBES_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/probes.bpf.o"));
