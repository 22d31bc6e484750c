//! The daemon's configuration: a TOML file, then environment overrides,
//! then command-line flags (each later source wins).
//!
//! Environment overrides are one general rule, not a list: a variable
//! `D4C_A__B__C=value` sets the key `a.b.c` (lowercased; `__` separates
//! levels, a single `_` stays in the name). The value is read as a TOML
//! value when it is one (`true`, `42`, `["a","b"]`), else as a string. So
//! `D4C_DELIVERY__SINK__ELASTICSEARCH__AUTH__API_KEY=...` sets the Elasticsearch
//! API key from a Secret, and `D4C_ENFORCE=false` turns blocking off.
//! `NODE_NAME` (the downward API's usual name) sets `node_name`.
//!
//! Unknown keys are errors that name the key: a misspelt setting never
//! silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::delivery::config::DeliveryConfig;

/// What the daemon does with a container whose metadata has not arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PendingMode {
    /// Every action any container could get (blocking included).
    #[default]
    FailClosed,
    /// Only the selectors without container conditions apply.
    NoContainerConditions,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The artifact (`--artifact`).
    pub artifact: Option<PathBuf>,
    /// The public key (PEM) artifacts must be signed by; unset: digest
    /// checks only.
    pub trusted_key: Option<PathBuf>,
    /// Whether blocking responses refuse operations. Off: audit only.
    pub enforce: bool,
    /// Treatment of containers whose metadata is not yet known.
    pub pending: PendingMode,
    /// This node's name (`NODE_NAME`).
    pub node_name: Option<String>,
    /// `orchestrator.cluster.name`.
    pub cluster_name: Option<String>,
    /// `orchestrator.cluster.id`, when the Kubernetes API is not asked.
    pub cluster_id: Option<String>,
    /// `data_stream.namespace`.
    pub namespace: String,
    /// `agent.id`; default: the machine id.
    pub agent_id: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub listen: SocketAddr,
    /// The daemon's state (the disk queue).
    pub state_dir: PathBuf,
    /// The cgroup filesystem whose ids name containers (the unified
    /// mount, or the v1 memory mount); unset: found in
    /// `/proc/self/mountinfo`.
    pub cgroupfs: Option<PathBuf>,
    /// The host's `/proc`.
    pub proc_root: PathBuf,
    /// The host's root file system, for the node's facts (machine id,
    /// os-release): `/proc/1/root` reaches it from a DaemonSet pod with
    /// `hostPID`, and is `/` on a host.
    pub host_root: PathBuf,
    /// Where bundles are: patterns with `{id}`.
    pub bundle_patterns: Vec<String>,
    /// How often the cgroup tree is scanned for containers (besides the
    /// scans a pending container's event triggers).
    #[serde(deserialize_with = "crate::delivery::config::duration")]
    pub rescan_interval: std::time::Duration,
    /// How often the ring buffer is drained.
    #[serde(deserialize_with = "crate::delivery::config::duration")]
    pub drain_interval: std::time::Duration,
    /// How often the artifact file is checked for a change.
    #[serde(deserialize_with = "crate::delivery::config::duration")]
    pub reload_check_interval: std::time::Duration,
    /// Where the probes' links are pinned (a bpffs directory), so that
    /// enforcement outlives the daemon; empty string: not pinned.
    pub pin_dir: PathBuf,
    /// The most processes the process cache keeps.
    pub process_cache: usize,
    /// The most container rows (distinct container classes) in the kernel.
    pub max_rows: usize,
    /// Delivery: sink, queue, batching.
    pub delivery: DeliveryConfig,
    /// The Kubernetes API: pod labels, the cluster id, node facts.
    pub kubernetes: crate::kube::KubeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            artifact: None,
            trusted_key: None,
            enforce: true,
            pending: PendingMode::FailClosed,
            node_name: None,
            cluster_name: None,
            cluster_id: None,
            namespace: "default".into(),
            agent_id: None,
            listen: SocketAddr::from(([0, 0, 0, 0], 9464)),
            state_dir: PathBuf::from("/var/lib/d4c"),
            cgroupfs: None,
            proc_root: PathBuf::from("/proc"),
            host_root: PathBuf::from("/proc/1/root"),
            bundle_patterns: crate::containers::default_bundle_patterns(),
            rescan_interval: std::time::Duration::from_millis(250),
            drain_interval: std::time::Duration::from_millis(20),
            reload_check_interval: std::time::Duration::from_secs(2),
            pin_dir: PathBuf::from("/sys/fs/bpf/d4c"),
            process_cache: 65_536,
            max_rows: 64,
            delivery: DeliveryConfig::default(),
            kubernetes: crate::kube::KubeConfig::default(),
        }
    }
}

/// Reads the configuration: `file` (if any), then the environment `env`
/// (name, value pairs), then `overrides` (`key.path`, TOML value text)
/// from the command line.
pub fn read(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &[(String, String)],
) -> Result<Config, String> {
    let mut table = match file {
        Some(path) => {
            // A regular file of at most 1 MiB (`--config /dev/zero` hung).
            let text = d4c_artifact::input::read_regular_text(path, 1 << 20)
                .map_err(|e| format!("cannot read the configuration `{}`: {e}", path.display()))?;
            text.parse::<toml::Table>().map_err(|e| format!("configuration `{}`: {e}", path.display()))?
        }
        None => toml::Table::new(),
    };
    for (name, value) in env {
        let key = if name == "NODE_NAME" {
            "node_name".to_owned()
        } else if let Some(rest) = name.strip_prefix("D4C_") {
            rest.to_lowercase().replace("__", ".")
        } else {
            continue;
        };
        // D4C_LOG is the log filter and D4C_CONFIG the file's path
        // (`--config`), not settings.
        if key == "log" || key == "config" {
            continue;
        }
        set(&mut table, &key, &value).map_err(|e| format!("environment variable `{name}`: {e}"))?;
    }
    for (key, value) in overrides {
        set(&mut table, key, value)?;
    }
    let source = file.map_or_else(|| "the configuration".to_owned(), |p| format!("configuration `{}`", p.display()));
    Config::deserialize(toml::Value::Table(table)).map_err(|e| format!("{source}: {e}"))
}

/// Sets `key` (dotted) in `table` to `value` read as TOML, or as a string.
fn set(table: &mut toml::Table, key: &str, value: &str) -> Result<(), String> {
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().filter(|l| !l.is_empty()).ok_or_else(|| format!("`{key}` is not a setting's name"))?;
    let mut current = table;
    for part in parts {
        let entry = current.entry(part.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| format!("`{key}`: `{part}` is not a section"))?;
    }
    current.insert(last.to_owned(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Regression (issue 14, fault 6): `--config /dev/zero` hung.
    #[test]
    fn a_configuration_that_is_not_a_regular_file_is_refused() -> Result<(), String> {
        let error = read(Some(Path::new("/dev/zero")), env(&[]), &[]).map(|_| ()).err().ok_or("it was read")?;
        assert!(error.contains("`/dev/zero`: not a regular file (a character device)"), "{error}");
        Ok(())
    }

    #[test]
    fn defaults_then_file_then_environment_then_flags() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("runtime.toml");
        std::fs::write(&path, "namespace = \"prod\"\nenforce = true\ncluster_name = \"eu-1\"\n")
            .map_err(|e| e.to_string())?;
        let config = read(
            Some(&path),
            env(&[("D4C_ENFORCE", "false"), ("NODE_NAME", "node-7"), ("HOME", "/root")]),
            &[("cluster_name".into(), "eu-2".into())],
        )?;
        assert_eq!(config.namespace, "prod");
        assert!(!config.enforce);
        assert_eq!(config.node_name.as_deref(), Some("node-7"));
        assert_eq!(config.cluster_name.as_deref(), Some("eu-2"));
        assert_eq!(config.rescan_interval, std::time::Duration::from_millis(250));
        Ok(())
    }

    #[test]
    fn nested_environment_overrides_reach_the_delivery_section() -> Result<(), String> {
        let config = read(None, env(&[("D4C_DELIVERY__CHANNEL_CAPACITY", "99")]), &[])?;
        assert_eq!(config.delivery.channel_capacity, 99);
        Ok(())
    }

    #[test]
    fn the_deployed_configuration_is_read_whole() -> Result<(), String> {
        // deploy/kubernetes/base/configmap.yaml holds runtime.toml as a
        // literal block: read it out and through the same parser.
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kubernetes/base/configmap.yaml");
        let text = std::fs::read_to_string(manifest).map_err(|e| format!("{manifest}: {e}"))?;
        let (_, block) = text.split_once("runtime.toml: |").ok_or("no runtime.toml in the ConfigMap")?;
        let indent = block.lines().nth(1).map_or(0, |l| l.len() - l.trim_start().len());
        let toml: String = block
            .lines()
            .skip(1)
            .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
            .map(|l| format!("{}\n", l.get(indent..).unwrap_or("")))
            .collect();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("runtime.toml");
        std::fs::write(&path, toml).map_err(|e| e.to_string())?;
        let config = read(Some(&path), env(&[("NODE_NAME", "n1"), ("D4C_LOG", "debug"), ("D4C_CONFIG", "/x")]), &[])?;
        assert_eq!(config.state_dir, PathBuf::from("/var/lib/d4c"));
        assert_eq!(config.node_name.as_deref(), Some("n1"));
        Ok(())
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let error = read(None, env(&[("D4C_ENFORCEMENT", "false")]), &[]).err().unwrap_or_default();
        assert!(error.contains("enforcement"), "{error}");
        let error = read(None, Vec::new(), &[("rescan_interval".into(), "\"soon\"".into())]).err().unwrap_or_default();
        assert!(error.contains("soon") || error.contains("duration"), "{error}");
    }
}
