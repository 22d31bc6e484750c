//! d4c-runtime: the node daemon (issue 5).
//!
//! Pipeline: the artifact is verified and read ([`load`]), its tables go
//! into the kernel probes, container metadata is discovered, kernel records
//! become ECS [`document::Document`]s, and [`delivery`] ships them to
//! Elasticsearch or to NDJSON, through a disk queue.

pub mod config;
pub mod containers;
pub mod daemon;
pub mod delivery;
pub mod document;
pub mod ecs;
pub mod facts;
pub mod json;
pub mod kube;
pub mod load;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod process;
pub mod run;
pub mod server;
pub mod watch;

pub use run::{check, run};
