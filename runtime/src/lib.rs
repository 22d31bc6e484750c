//! d4c-runtime: the node daemon (issue 5).
//!
//! Pipeline: the artifact is verified and read ([`load`]), its tables go
//! into the kernel probes, container metadata is discovered, kernel records
//! are decoded once into typed events ([`event`]) and become ECS
//! [`document::Document`]s ([`pipeline`]), and [`delivery`] ships them to
//! Elasticsearch or to NDJSON, through a disk queue.

/// Container identity from cgroup paths, kubepods roots and cgroup hierarchies.
pub mod cgroup;
pub mod config;
pub mod containers;
pub mod daemon;
pub mod delivery;
pub mod document;
pub mod ecs;
pub mod event;
pub mod facts;
pub mod fields;
pub mod inflight;
pub mod json;
pub mod kube;
pub mod load;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod pipeline;
pub mod process;
pub mod run;
pub mod server;
pub mod users;
pub mod watch;

pub use run::{check, run};
