//! The guest side of d4c's VM suite: real syscalls in real containers,
//! made by containerd through the CRI, in Debian kernels booted under qemu
//! by `scripts/vmtest`.
//!
//! - [`bundle`]: a [`bundle::Container`] is made by containerd through
//!   the CRI, as a kubelet asks for it, from an image holding the agent
//!   (its command) and the spec's files; it stages actors that each
//!   perform one syscall.
//! - [`cri`]: the CRI client; [`node`]: the kubelet's part (pods, volume
//!   layouts, image imports); [`image`]: OCI image archives; [`link`]:
//!   the agents' connections to the harness.
//! - [`ops`]: what a staged actor performs ([`ops::AgentOp`]) and what
//!   came of it.
//! - [`agent`]: the container side (`d4c-vmtest-agent`): the agent, the
//!   staged actors, `noop`, `pause`.
//! - [`protocol`]: the lines between the guest, the agent and the actors.
//! - [`smoke`]: the infrastructure's own test.
//! - [`volumes`]: the probes on each kind of volume a kubelet mounts.
//! - [`guest`]: the scenario runner.
//! - [`evasion`]: ways around drift prevention that scenario files cannot
//!   write (second spellings of a path, files with no name, paths longer
//!   than PATH_MAX).
//! - [`runtime_check`]: the real `d4c-runtime` daemon end to end, with
//!   [`bulk_sink`] as its Elasticsearch.
//! - [`conformance`]: an intruder's session and benign activity for real
//!   in containers, under the real `d4c-runtime`, its documents printed
//!   for the conformance queries; [`session`]: the session's programs in
//!   the container.
//! - [`daemonset_check`]: the image users deploy (`deploy/Containerfile`,
//!   built by `scripts/build-image`), run as the DaemonSet's pod through
//!   the CRI; [`manifest`] reads the manifest as a kubelet does.
//! - `sys`: the few raw system calls; the only module with `unsafe`.
//!
//! The harness is one statically linked binary (`d4c-vmtest`); inside the
//! containers runs a second, small one (`d4c-vmtest-agent`: the agent,
//! the actors, `noop`, `pause`), hard-linked in each image as every
//! executable a step needs.

pub mod agent;
pub mod bulk_sink;
pub mod bundle;
pub mod conformance;
pub mod cri;
pub mod daemonset_check;
pub mod documents;
pub mod evasion;
pub mod guest;
pub mod image;
pub mod link;
pub mod manifest;
pub mod node;
pub mod ops;
pub mod protocol;
pub mod runtime_check;
pub mod session;
pub mod smoke;
mod sys;
pub mod volumes;
