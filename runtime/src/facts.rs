//! The node's facts for `host.*` and `agent.id`, and the clock that turns
//! the probes' boot-time stamps into wall-clock time.
//!
//! Everything is read once at start from files every Linux node has; a
//! file that cannot be read leaves its field out (and the start-up report
//! says which).

use std::path::Path;

use serde_json::{json, Value};

use crate::kube::NodeInfo;

/// What was read of the node.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// `host.hostname` / `host.name`.
    pub hostname: Option<String>,
    /// `host.id`: `/etc/machine-id`.
    pub machine_id: Option<String>,
    /// `host.boot.id`.
    pub boot_id: Option<String>,
    /// `host.os.kernel`.
    pub kernel: Option<String>,
    /// `host.architecture`.
    pub architecture: String,
    /// `/etc/os-release`'s `ID`, `NAME`, `VERSION_ID`, `PRETTY_NAME`.
    pub os: [Option<String>; 4],
}

impl Node {
    /// Reads the node's facts below `root` (`/`, or the host's root
    /// mounted into the daemon's container).
    pub fn read(root: &Path) -> Node {
        let text =
            |p: &str| std::fs::read_to_string(root.join(p)).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        let os_release = text("etc/os-release").or_else(|| text("usr/lib/os-release")).unwrap_or_default();
        let field = |key: &str| {
            os_release
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(|v| v.trim_matches('"').to_owned())
        };
        Node {
            hostname: text("proc/sys/kernel/hostname"),
            machine_id: text("etc/machine-id"),
            boot_id: text("proc/sys/kernel/random/boot_id"),
            kernel: text("proc/sys/kernel/osrelease"),
            architecture: std::env::consts::ARCH.to_owned(),
            os: [field("ID"), field("NAME"), field("VERSION_ID"), field("PRETTY_NAME")],
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
        std::fs::write(root.path().join("etc/machine-id"), "abc123\n")?;
        std::fs::write(root.path().join("proc/sys/kernel/hostname"), "node-a\n")?;
        std::fs::write(
            root.path().join("etc/os-release"),
            "ID=debian\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n",
        )?;
        let node = Node::read(root.path());
        assert_eq!(node.machine_id.as_deref(), Some("abc123"));
        assert_eq!(node.boot_id, None);
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

    #[test]
    fn the_boot_epoch_is_in_the_past_and_stable() {
        let a = boot_epoch_ns();
        let b = boot_epoch_ns();
        assert!(a > 1_600_000_000_000_000_000);
        assert!(a.abs_diff(b) < 1_000_000_000);
    }
}
