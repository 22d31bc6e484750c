//! The node's facts for `host.*` and `agent.id`, and the clock that turns
//! the probes' boot-time stamps into wall-clock time.
//!
//! Everything is read once at start from files every Linux node has; a
//! file that cannot be read leaves its field out (and the start-up report
//! says which). Every read is bounded ([`MAX_FACT_BYTES`]). `agent.id` is
//! the host's machine id or, without one, a UUID kept in the state
//! directory ([`agent_id`]): stable across restarts, and never shared by
//! two nodes (every `process.entity_id` is built on it).

use std::io::Read as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::kube::NodeInfo;

/// The most bytes read of any one file of the node's facts.
pub const MAX_FACT_BYTES: u64 = 64 * 1024;

/// The most network interfaces whose addresses make `host.mac`.
pub const MAX_MACS: usize = 16;

/// What was read of the node.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// `host.hostname` / `host.name`.
    pub hostname: Option<String>,
    /// `host.id`: `/etc/machine-id`, when it is one (32 hex digits).
    pub machine_id: Option<String>,
    /// `host.boot.id`.
    pub boot_id: Option<String>,
    /// `host.os.kernel`.
    pub kernel: Option<String>,
    /// `host.architecture`, as the original (a Go program) names it:
    /// `amd64`, `arm64`.
    pub architecture: String,
    /// `/etc/os-release`'s `ID`, `NAME`, `VERSION_ID`, `PRETTY_NAME`.
    pub os: [Option<String>; 4],
    /// `host.mac`: the network interfaces' hardware addresses
    /// (`32:a9:cc:26:4c:e5`, as the original writes them), sorted.
    pub macs: Vec<String>,
    /// `host.pid_ns_ino`: the inode number of the host's pid namespace.
    pub pid_ns_ino: Option<String>,
}

/// The text of `path` (at most [`MAX_FACT_BYTES`]), trimmed; `None` when
/// it cannot be read or is empty.
fn read_text(path: &Path) -> Option<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).ok()?.take(MAX_FACT_BYTES).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// The architecture as the Go toolchain names it (the original's agent
/// reports `GOARCH`): `amd64` for x86-64, `arm64` for AArch64.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl Node {
    /// Reads the node's facts below `root` (`/`, or the host's root
    /// mounted into the daemon's container).
    pub fn read(root: &Path) -> Node {
        let text = |p: &str| read_text(&root.join(p));
        let os_release = text("etc/os-release").or_else(|| text("usr/lib/os-release")).unwrap_or_default();
        let field = |key: &str| {
            os_release
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(|v| v.trim_matches('"').to_owned())
        };
        // The host's pid namespace: pid 1's, as the host's /proc shows it.
        let pid_ns = ["proc/1/ns/pid", "proc/self/ns/pid"].iter().find_map(|p| {
            let link = std::fs::read_link(root.join(p)).ok()?;
            let text = link.to_string_lossy();
            let inode = text.strip_prefix("pid:[")?.strip_suffix(']')?;
            inode.parse::<u64>().ok().map(|n| n.to_string())
        });
        Node {
            hostname: text("proc/sys/kernel/hostname").filter(|h| h != "(none)"),
            machine_id: text("etc/machine-id").filter(|id| is_machine_id(id)),
            boot_id: text("proc/sys/kernel/random/boot_id"),
            kernel: text("proc/sys/kernel/osrelease"),
            architecture: go_arch(std::env::consts::ARCH).to_owned(),
            os: [field("ID"), field("NAME"), field("VERSION_ID"), field("PRETTY_NAME")],
            macs: macs(&root.join("sys/class/net")),
            pid_ns_ino: pid_ns,
        }
    }

    /// `host.*` as an object (`node_name`, the Kubernetes node, wins as
    /// `host.name` when given). `api`, the node's object when the
    /// Kubernetes API gave it, adds `host.ip` (its internal and external
    /// addresses) and fills the host name where the node's files did not.
    pub fn host_fields(&self, node_name: Option<&str>, api: Option<&NodeInfo>) -> Value {
        let [id, name, version, full] = &self.os;
        let hostname = self.hostname.clone().or_else(|| api.and_then(NodeInfo::hostname).map(str::to_owned));
        let mut host = json!({
            "hostname": hostname,
            "name": node_name.map(str::to_owned).or_else(|| hostname.clone()),
            "id": self.machine_id,
            "boot": {"id": self.boot_id},
            "architecture": self.architecture,
            "mac": self.macs,
            "pid_ns_ino": self.pid_ns_ino,
            "os": {
                "type": "linux",
                "family": id,
                "name": name,
                "version": version,
                "full": full,
                "kernel": self.kernel,
                "platform": id,
            },
        });
        if let (Some(ips), Some(object)) = (api.map(NodeInfo::ips).filter(|ips| !ips.is_empty()), host.as_object_mut())
        {
            object.insert("ip".into(), json!(ips));
        }
        host
    }
}

/// `host.mac`: the hardware addresses of the interfaces below `class_net`
/// (`/sys/class/net`). The node's own network cards (those with a
/// `device`: physical or paravirtual) when it has any, else every interface
/// but the loopback (a pod's veth pairs have no device: a node of 100 pods
/// would list 100 more); all-zero addresses left out; at most [`MAX_MACS`],
/// sorted and without repeats.
pub fn macs(class_net: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(class_net) else { return Vec::new() };
    let mut cards = Vec::new();
    let mut others = Vec::new();
    for entry in entries.flatten().take(4096) {
        let dir = entry.path();
        let Some(address) = read_text(&dir.join("address")) else { continue };
        let address = address.to_ascii_lowercase();
        let octets: Vec<&str> = address.split(':').collect();
        let mac = octets.len() == 6 && octets.iter().all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
        if !mac || octets.iter().all(|o| *o == "00") {
            continue;
        }
        if dir.join("device").exists() {
            cards.push(address);
        } else {
            others.push(address);
        }
    }
    let mut out = if cards.is_empty() { others } else { cards };
    out.sort_unstable();
    out.dedup();
    out.truncate(MAX_MACS);
    out
}

/// Whether `id` is a machine id (machine-id(5): 32 lowercase hex digits,
/// not all zero; `uninitialized` and empty files are not).
pub fn is_machine_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id.bytes().any(|b| b != b'0')
}

/// `agent.id`: the configured one; else the host's machine id; else the
/// UUID kept in `state_dir/agent-id`, made once (when two daemons race,
/// the first to link its file wins and both use it). Errors name the file.
pub fn agent_id(configured: Option<&str>, node: &Node, state_dir: &Path) -> Result<String, String> {
    if let Some(id) = configured.map(str::trim).filter(|id| !id.is_empty()) {
        return Ok(id.to_owned());
    }
    if let Some(id) = &node.machine_id {
        return Ok(id.clone());
    }
    kept_uuid(state_dir)
}

/// The UUID in `state_dir/agent-id`, made when there is none: written to
/// a file of its own, flushed, then hard-linked into place (a link never
/// replaces a file: of two racing daemons the first wins) and the
/// directory flushed.
fn kept_uuid(state_dir: &Path) -> Result<String, String> {
    let path = state_dir.join("agent-id");
    let read = |path: &Path| -> Result<Option<String>, String> {
        match read_text(path) {
            Some(id) if is_uuid(&id) => Ok(Some(id)),
            Some(other) => Err(format!(
                "`{}` holds `{}`, not a UUID: remove it to have a new agent id made",
                path.display(),
                other.chars().take(64).collect::<String>()
            )),
            None if path.exists() => Err(format!("`{}` cannot be read, or is empty", path.display())),
            None => Ok(None),
        }
    };
    if let Some(id) = read(&path)? {
        return Ok(id);
    }
    let fail =
        |what: &str, e: std::io::Error| format!("cannot keep an agent id in `{}`: {what}: {e}", state_dir.display());
    std::fs::create_dir_all(state_dir).map_err(|e| fail("cannot create the directory", e))?;
    let id = new_uuid().ok_or_else(|| fail("no random UUID", std::io::Error::other("/proc/sys/kernel/random/uuid")))?;
    let temporary = state_dir.join(format!(".agent-id.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temporary)?;
        std::io::Write::write_all(&mut file, format!("{id}\n").as_bytes())?;
        file.sync_all()
    })();
    let linked = written.and_then(|()| match std::fs::hard_link(&temporary, &path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = std::fs::remove_file(&temporary);
    linked.map_err(|e| fail("cannot write `agent-id`", e))?;
    if let Ok(dir) = std::fs::File::open(state_dir) {
        let _ = dir.sync_all();
    }
    read(&path)?.ok_or_else(|| format!("`{}` vanished as it was made", path.display()))
}

/// A random (version 4) UUID, from the kernel.
fn new_uuid() -> Option<String> {
    read_text(Path::new("/proc/sys/kernel/random/uuid")).filter(|id| is_uuid(id))
}

/// Whether `id` is a UUID's text (`8-4-4-4-12` hex digits).
pub fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `cloud.*` from the node's object: `region` and `availability_zone`
/// from the well-known topology labels (`topology.kubernetes.io/region`,
/// `/zone`), `provider` and the instance from `spec.providerID` (the
/// scheme, and the last path segment: `aws:///<zone>/<instance id>`,
/// `gce://<project>/<zone>/<instance name>`, `azure://.../virtualMachines/<name>`).
/// `None` when the node says none of these.
pub fn cloud_fields(api: &NodeInfo) -> Option<Value> {
    let mut cloud = serde_json::Map::new();
    let label = |key: &str| api.labels.get(key).filter(|v| !v.is_empty());
    if let Some(region) = label("topology.kubernetes.io/region") {
        cloud.insert("region".into(), json!(region));
    }
    if let Some(zone) = label("topology.kubernetes.io/zone") {
        cloud.insert("availability_zone".into(), json!(zone));
    }
    if let Some((scheme, rest)) = api.provider_id.as_deref().and_then(|p| p.split_once("://")) {
        let provider = match scheme {
            "aws" => "aws",
            "gce" => "gcp",
            "azure" => "azure",
            other => other,
        };
        cloud.insert("provider".into(), json!(provider));
        if let Some(last) = rest.rsplit('/').next().filter(|l| !l.is_empty()) {
            // AWS and Azure name the instance by id, GCE by name.
            let key = if scheme == "gce" { "name" } else { "id" };
            cloud.insert("instance".into(), json!({ key: last }));
        }
        if scheme == "gce" {
            if let Some(project) = rest.split('/').next().filter(|p| !p.is_empty()) {
                cloud.insert("project".into(), json!({"id": project}));
            }
        }
    }
    (!cloud.is_empty()).then_some(Value::Object(cloud))
}

/// Wall-clock nanoseconds since the Unix epoch at boot: `CLOCK_REALTIME -
/// CLOCK_BOOTTIME`, read back to back. Recomputed now and then, it follows
/// wall-clock steps (NTP).
pub fn boot_epoch_ns() -> u64 {
    use rustix::time::{clock_gettime, ClockId};
    let as_ns =
        |t: rustix::time::Timespec| (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64);
    let real = as_ns(clock_gettime(ClockId::Realtime));
    let boot = as_ns(clock_gettime(ClockId::Boottime));
    real.saturating_sub(boot)
}

/// Wall-clock nanoseconds since the Unix epoch (`CLOCK_REALTIME`).
pub fn realtime_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64)
}

/// Nanoseconds since boot (`CLOCK_BOOTTIME`), the probes' clock.
pub fn boot_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_come_from_the_given_root_and_missing_ones_are_left_out() -> Result<(), std::io::Error> {
        let root = tempfile::tempdir()?;
        std::fs::create_dir_all(root.path().join("etc"))?;
        std::fs::create_dir_all(root.path().join("proc/sys/kernel"))?;
        std::fs::write(root.path().join("etc/machine-id"), "0123456789abcdef0123456789abcdef\n")?;
        std::fs::write(root.path().join("proc/sys/kernel/hostname"), "node-a\n")?;
        std::fs::write(
            root.path().join("etc/os-release"),
            "ID=debian\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n",
        )?;
        let node = Node::read(root.path());
        assert_eq!(node.machine_id.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(node.boot_id, None);
        assert_eq!(node.architecture, go_arch(std::env::consts::ARCH));
        let host = node.host_fields(Some("k8s-node-a"), None);
        assert_eq!(host["name"], "k8s-node-a");
        assert_eq!(host["hostname"], "node-a");
        assert_eq!(host["os"]["name"], "Debian GNU/Linux");
        assert_eq!(host["os"]["version"], "12");
        assert!(host.get("ip").is_none());
        Ok(())
    }

    #[test]
    fn the_node_object_adds_addresses_and_topology() {
        use crate::kube::NodeAddress;
        let address = |kind: &str, address: &str| NodeAddress { kind: kind.into(), address: address.into() };
        let api = NodeInfo {
            name: "k8s-node-a".into(),
            addresses: vec![
                address("Hostname", "ip-10-0-0-7"),
                address("InternalIP", "10.0.0.7"),
                address("ExternalIP", "203.0.113.7"),
            ],
            labels: [("topology.kubernetes.io/zone".to_owned(), "eu-west-1a".to_owned())].into(),
            ..NodeInfo::default()
        };
        // The node's own files win; the API fills what they lack.
        let read = Node { hostname: Some("node-a".into()), ..Node::default() };
        let host = read.host_fields(None, Some(&api));
        assert_eq!(host["hostname"], "node-a");
        assert_eq!(host["ip"], json!(["10.0.0.7", "203.0.113.7"]));
        let host = Node::default().host_fields(None, Some(&api));
        assert_eq!(host["hostname"], "ip-10-0-0-7");
        assert_eq!(host["name"], "ip-10-0-0-7");
        assert_eq!(cloud_fields(&api), Some(json!({"availability_zone": "eu-west-1a"})));
        assert_eq!(cloud_fields(&NodeInfo::default()), None);
        let provided = |id: &str| NodeInfo { provider_id: Some(id.into()), ..NodeInfo::default() };
        assert_eq!(
            cloud_fields(&provided("aws:///eu-west-1a/i-0abc123")),
            Some(json!({"provider": "aws", "instance": {"id": "i-0abc123"}}))
        );
        assert_eq!(
            cloud_fields(&provided("gce://my-project/europe-west1-b/node-7")),
            Some(json!({"provider": "gcp", "instance": {"name": "node-7"}, "project": {"id": "my-project"}}))
        );
        assert_eq!(
            cloud_fields(&provided(
                "azure:///subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm-3"
            )),
            Some(json!({"provider": "azure", "instance": {"id": "vm-3"}}))
        );
        assert_eq!(
            cloud_fields(&provided("kind://docker/kind/kind-control-plane")).map(|c| c["provider"].clone()),
            Some(json!("kind"))
        );
    }

    /// Issue 12: on a node without `/etc/machine-id`, `agent.id` was the
    /// kernel's default host name `(none)`, and every `process.entity_id`
    /// built on it collided with those of other such nodes.
    #[test]
    fn regression_agent_id_without_machine_id() -> Result<(), String> {
        let root = tempfile::tempdir().map_err(|e| e.to_string())?;
        let hostname = root.path().join("proc/sys/kernel");
        std::fs::create_dir_all(&hostname).map_err(|e| e.to_string())?;
        std::fs::write(hostname.join("hostname"), "(none)\n").map_err(|e| e.to_string())?;
        std::fs::create_dir_all(root.path().join("etc")).map_err(|e| e.to_string())?;
        std::fs::write(root.path().join("etc/machine-id"), "uninitialized\n").map_err(|e| e.to_string())?;
        let node = Node::read(root.path());
        assert_eq!((node.hostname.as_deref(), node.machine_id.as_deref()), (None, None));
        let (a, b) = (root.path().join("state-a"), root.path().join("state-b"));
        let first = agent_id(None, &node, &a)?;
        assert!(is_uuid(&first) && first != "(none)", "{first}");
        // Kept: the same on every start; another node's is another.
        assert_eq!(agent_id(None, &node, &a)?, first);
        assert_ne!(agent_id(None, &node, &b)?, first);
        let entries: Vec<_> = std::fs::read_dir(&a).map_err(|e| e.to_string())?.flatten().collect();
        assert_eq!(entries.len(), 1, "no temporary file left: {entries:?}");
        // The machine id wins, the configured id over both.
        let with_id = Node { machine_id: Some("0123456789abcdef0123456789abcdef".into()), ..node.clone() };
        assert_eq!(agent_id(None, &with_id, &a)?, "0123456789abcdef0123456789abcdef");
        assert_eq!(agent_id(Some("node-7"), &with_id, &a)?, "node-7");
        // A file that is not a UUID is an error naming it, never replaced.
        std::fs::write(b.join("agent-id"), "garbage").map_err(|e| e.to_string())?;
        let error = agent_id(None, &node, &b).err().unwrap_or_default();
        assert!(error.contains("agent-id") && error.contains("garbage"), "{error}");
        assert!(!is_machine_id("00000000000000000000000000000000") && !is_uuid("(none)"));
        Ok(())
    }

    #[test]
    fn macs_are_the_nodes_cards_and_the_pid_namespace_is_the_hosts() -> Result<(), std::io::Error> {
        let net = tempfile::tempdir()?;
        let iface = |name: &str, address: &str, device: bool| -> std::io::Result<()> {
            let dir = net.path().join(name);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("address"), format!("{address}\n"))?;
            if device {
                std::fs::create_dir_all(dir.join("device"))?;
            }
            Ok(())
        };
        iface("lo", "00:00:00:00:00:00", false)?;
        iface("veth1", "7a:ec:f0:3e:29:ee", false)?;
        iface("eth1", "32:A9:CC:26:4C:E5", true)?;
        iface("eth0", "02:42:ac:11:00:02", true)?;
        iface("tun0", "not-a-mac", true)?;
        assert_eq!(macs(net.path()), ["02:42:ac:11:00:02", "32:a9:cc:26:4c:e5"]);
        std::fs::remove_dir_all(net.path().join("eth0"))?;
        std::fs::remove_dir_all(net.path().join("eth1"))?;
        // No card: every interface but the loopback.
        assert_eq!(macs(net.path()), ["7a:ec:f0:3e:29:ee"]);
        assert!(macs(&net.path().join("absent")).is_empty());
        let node = Node::read(Path::new("/"));
        assert!(node.pid_ns_ino.as_deref().is_some_and(|n| n.parse::<u64>().is_ok()), "{:?}", node.pid_ns_ino);
        let host = node.host_fields(None, None);
        assert!(host["pid_ns_ino"].is_string());
        Ok(())
    }

    #[test]
    fn the_boot_epoch_is_in_the_past_and_stable() {
        let a = boot_epoch_ns();
        let b = boot_epoch_ns();
        assert!(a > 1_600_000_000_000_000_000);
        assert!(a.abs_diff(b) < 1_000_000_000);
    }
}
