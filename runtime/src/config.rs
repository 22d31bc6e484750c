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
//! silently falls back to a default. A text setting given a number or a
//! boolean by the environment (`NODE_NAME=123`) takes its text.
//!
//! [`validate`] is the one check of a configuration's values, run by
//! `--check` and by the daemon's start alike: what one accepts, the other
//! does (issue 14: `--check` said "ok" to zero intervals the daemon then
//! panicked on). It returns every problem, each naming its key.

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
    #[serde(deserialize_with = "crate::delivery::config::optional_text")]
    pub node_name: Option<String>,
    /// `orchestrator.cluster.name`.
    #[serde(deserialize_with = "crate::delivery::config::optional_text")]
    pub cluster_name: Option<String>,
    /// `orchestrator.cluster.id`, when the Kubernetes API is not asked.
    #[serde(deserialize_with = "crate::delivery::config::optional_text")]
    pub cluster_id: Option<String>,
    /// `data_stream.namespace`.
    #[serde(deserialize_with = "crate::delivery::config::text")]
    pub namespace: String,
    /// `agent.id`; default: the machine id.
    #[serde(deserialize_with = "crate::delivery::config::optional_text")]
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

/// The longest `data_stream.namespace` Elasticsearch allows, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 100;

/// Every problem of `config`'s values that would make the daemon refuse to
/// start, fail or panic, one per line, each naming its key (dotted, as in
/// the file); `Ok` when there is none. The one check both `--check` and
/// the daemon's start run. The artifact and trusted key are checked by
/// reading them ([`crate::load::load_configured`]), not here.
pub fn validate(config: &Config) -> Result<(), String> {
    let mut problems = Vec::new();
    for (key, value) in [
        ("drain_interval", config.drain_interval),
        ("rescan_interval", config.rescan_interval),
        ("reload_check_interval", config.reload_check_interval),
    ] {
        if value.is_zero() {
            problems.push(format!("`{key}`: must be longer than 0 (it is how often the main loop turns)"));
        }
    }
    if let Err(reason) = namespace_problem(&config.namespace) {
        problems.push(format!("`namespace`: `{}` {reason}", config.namespace));
    }
    for (key, value) in [("node_name", &config.node_name), ("cluster_name", &config.cluster_name)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            problems.push(format!("`{key}`: is empty; leave it unset instead"));
        }
    }
    if config.max_rows == 0 {
        problems.push("`max_rows`: must be at least 1".to_owned());
    }
    if config.process_cache == 0 {
        problems.push("`process_cache`: must be at least 1".to_owned());
    }
    if config.bundle_patterns.iter().any(|p| !p.contains("{id}")) {
        problems.push("`bundle_patterns`: every pattern must contain `{id}` (the container id)".to_owned());
    }
    config.delivery.problems("delivery", &mut problems);
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!("the configuration has {} problem(s):\n  {}", problems.len(), problems.join("\n  ")))
}

/// Why `namespace` cannot be a data stream's namespace (Elasticsearch's
/// index name rules: the namespace is the last part of every index name).
fn namespace_problem(namespace: &str) -> Result<(), &'static str> {
    if namespace.is_empty() {
        return Err("is empty");
    }
    if namespace.len() > MAX_NAMESPACE_BYTES {
        return Err("is longer than 100 bytes");
    }
    if namespace.chars().any(char::is_uppercase) {
        return Err("must be lowercase (index names are)");
    }
    if namespace.chars().any(|c| "\\/*?\"<>| ,#:".contains(c)) {
        return Err("must not contain `\\ / * ? \" < > | , # :` or a space (index names cannot)");
    }
    Ok(())
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
        // What is deployed passes the check the daemon starts with.
        validate(&config)?;
        Ok(())
    }

    /// Regression (issue 14, fault 8): `--check` said "configuration: ok"
    /// to configurations the daemon then refused or panicked on, and
    /// refused good ones with an error naming another key. `--check` now
    /// runs [`validate`], as the daemon's start does, and lists every
    /// problem with its key.
    #[test]
    fn check_and_daemon_share_one_validation() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let artifact = crate::load::testing::compile(
            dir.path(),
            "process:\n  selectors:\n    - name: all\n      operation: [exec]\n  responses:\n    - match: [all]\n      actions: [log]\n",
        )?;
        let artifact = artifact.to_string_lossy().into_owned();
        let check = |pairs: &[(&str, &str)]| {
            let mut overrides = vec![("artifact".to_owned(), format!("{artifact:?}"))];
            overrides.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            read(None, Vec::new(), &overrides).and_then(|config| crate::run::check(&config))
        };
        assert!(check(&[])?.contains("configuration: ok"));
        let es = "delivery.sink.elasticsearch";
        // Each: the settings given, and the keys the error must name.
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (&[("drain_interval", "0"), ("rescan_interval", "\"0s\"")], &["`drain_interval`", "`rescan_interval`"]),
            (&[("reload_check_interval", "0")], &["`reload_check_interval`"]),
            (&[(&format!("{es}.urls"), "[]")], &["`delivery.sink.elasticsearch.urls`: is empty"]),
            (
                &[(&format!("{es}.urls"), "[\"ftp://es:21\"]")],
                &["`delivery.sink.elasticsearch.urls[0]`: `ftp://es:21`"],
            ),
            (&[("delivery.queue.segment_bytes", "1")], &["`delivery.queue.segment_bytes`"]),
            (&[("delivery.channel_capacity", "0")], &["`delivery.channel_capacity`"]),
            (
                &[(&format!("{es}.ca_file"), "\"/nonexistent/ca.pem\"")],
                &["`delivery.sink.elasticsearch.ca_file`: cannot read"],
            ),
            (&[("namespace", "\"Prod EU/*\"")], &["`namespace`: `Prod EU/*` must be lowercase"]),
        ];
        for (pairs, keys) in cases {
            let error = check(pairs).err().ok_or_else(|| format!("{pairs:?} passed --check"))?;
            for key in *keys {
                assert!(error.contains(key), "{pairs:?}: {error}");
            }
            assert!(error.contains(&format!("{} problem(s)", keys.len())), "{pairs:?}: {error}");
        }
        // Text settings given numbers by the environment take their text.
        let password = "D4C_DELIVERY__SINK__ELASTICSEARCH__AUTH__BASIC__PASSWORD";
        let config = read(
            None,
            env(&[
                ("NODE_NAME", "123"),
                ("D4C_DELIVERY__SINK__ELASTICSEARCH__AUTH__BASIC__USERNAME", "u"),
                (password, "314159"),
            ]),
            &[],
        )?;
        assert_eq!(config.node_name.as_deref(), Some("123"));
        let crate::delivery::SinkConfig::Elasticsearch(es) = &config.delivery.sink else {
            return Err("no sink".into());
        };
        assert!(
            matches!(&es.auth, Some(crate::delivery::config::Auth::Basic { password, .. }) if password == "314159")
        );
        // A fractional duration says what a duration is, and where.
        let error = read(None, Vec::new(), &[("rescan_interval".into(), "1.5".into())]).err().unwrap_or_default();
        assert!(error.contains("rescan_interval") && error.contains("whole milliseconds"), "{error}");
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
