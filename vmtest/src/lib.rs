//! The guest side of d4c's VM suite: real syscalls in real runc containers,
//! in Debian kernels booted under qemu by `scripts/vmtest`.
//!
//! - [`bundle`]: OCI bundles and runc; a [`bundle::Container`] is started
//!   as a kubelet-managed containerd would start it, with an agent as its
//!   init process, and stages actors that each perform one syscall.
//! - [`cri`]: a CRI client with the kubelet's requests; [`node`]: the
//!   kubelet's part (pods, volume layouts, image imports); [`image`]: OCI
//!   image archives built in the guest.
//! - [`ops`]: what a staged actor performs ([`ops::AgentOp`]) and what
//!   came of it.
//! - [`agent`]: the container side (`d4c-vmtest-agent`): the agent, the
//!   staged actors, `noop`, `pause`; [`link`]: the agents' connections to
//!   the harness.
//! - [`protocol`]: the lines between the guest, the agent and the actors.
//! - [`smoke`]: the infrastructure's own test.
//! - [`guest`]: the scenario runner.
//! - [`evasion`]: ways around drift prevention that scenario files cannot
//!   write (second spellings of a path, files with no name, paths longer
//!   than PATH_MAX).
//! - [`runtime_check`]: the real `d4c-runtime` daemon end to end, with
//!   [`bulk_sink`] as its Elasticsearch.
//! - `sys`: the few raw system calls; the only module with `unsafe`.
//!
//! Everything runs as one statically linked binary (`d4c-vmtest`), copied
//! into each container as the agent and as every executable a step needs.

pub mod agent;
pub mod bulk_sink;
pub mod bundle;
pub mod cri;
pub mod documents;
pub mod evasion;
pub mod guest;
pub mod image;
pub mod link;
pub mod node;
pub mod ops;
pub mod protocol;
pub mod runtime_check;
pub mod smoke;
mod sys;
