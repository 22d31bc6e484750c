//! The node's facts for `host.*` and `agent.id`, and the clock that turns
//! the probes' boot-time stamps into wall-clock time.
//!
//! Everything is read once at start from files every Linux node has; a
//! file that cannot be read leaves its field out (and the start-up report
//! says which).

use std::path::Path;

use serde_json::{json, Value};

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
    /// `host.name` when given).
    pub fn host_fields(&self, node_name: Option<&str>) -> Value {
        let [id, name, version, full] = &self.os;
        json!({
            "hostname": self.hostname,
            "name": node_name.map(str::to_owned).or_else(|| self.hostname.clone()),
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
        })
    }
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
        let host = node.host_fields(Some("k8s-node-a"));
        assert_eq!(host["name"], "k8s-node-a");
        assert_eq!(host["hostname"], "node-a");
        assert_eq!(host["os"]["name"], "Debian GNU/Linux");
        assert_eq!(host["os"]["version"], "12");
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
