//! Container discovery and metadata.
//!
//! A container is found by its cgroup (below a kubepods root) and described
//! by its runtime's bundle: the OCI `config.json` that containerd and CRI-O
//! write before the container's first process starts, whose annotations name
//! the image, the pod, its namespace and uid, and the container. Pod labels
//! and cluster facts come from the Kubernetes API ([`crate::kube`]) and are
//! merged in by the caller.
//!
//! Invariants: nothing here blocks on the network; a bundle that cannot be
//! read yet is "not yet" (the container stays pending in the kernel, which
//! fails closed), never an error that drops the container.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::cgroup::{self, ContainerCgroup, KubepodsRoot, Runtime};
use d4c_artifact::event::Container;
use d4c_artifact::normalize::{self, Facts};
use serde_json::Value;

/// What is known of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The runtime's container id (64 hex digits).
    pub id: String,
    /// The runtime that named the cgroup, when its name says.
    pub runtime: Option<&'static str>,
    /// The container's name in its pod.
    pub name: Option<String>,
    /// The image reference as the runtime was given it.
    pub image: Option<String>,
    /// The pod's name.
    pub pod_name: Option<String>,
    /// The pod's namespace.
    pub namespace: Option<String>,
    /// The pod's uid.
    pub pod_uid: Option<String>,
    /// The pod's labels (from the Kubernetes API).
    pub labels: BTreeMap<String, String>,
    /// The pod's annotations (from the Kubernetes API).
    pub pod_annotations: BTreeMap<String, String>,
    /// The pod's IP addresses (from the Kubernetes API).
    pub pod_ips: Vec<String>,
    /// The pod's owner kind, e.g. `ReplicaSet` (from the Kubernetes API).
    pub parent_type: Option<String>,
    /// Its root file system (from the bundle), where its `/etc/passwd` is.
    pub rootfs: Option<PathBuf>,
    /// Its `/etc/passwd`'s `(id, name)` lines (see `users::read_passwd`),
    /// read at registration and again while the policy has user names.
    pub passwd: Vec<(u32, String)>,
}

impl Metadata {
    /// The selector-facing view of the container, with the cluster's
    /// identity: normalised by `d4c_artifact::normalize`, the code the
    /// linter uses to tell which values can match.
    pub fn selector_view(&self, cluster_id: Option<&str>, cluster_name: Option<&str>) -> Container {
        normalize::container(&Facts {
            image: self.image.as_deref(),
            namespace: self.namespace.as_deref(),
            pod_name: self.pod_name.as_deref(),
            labels: self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            cluster_id,
            cluster_name,
        })
    }
}

/// The annotations each runtime writes into the bundle, by field.
const ANNOTATIONS: &[(Field, &[&str])] = &[
    (Field::Name, &["io.kubernetes.cri.container-name", "io.kubernetes.container.name"]),
    (Field::Image, &["io.kubernetes.cri.image-name", "io.kubernetes.cri-o.ImageName"]),
    (Field::PodName, &["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"]),
    (Field::Namespace, &["io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace"]),
    (Field::PodUid, &["io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"]),
];

#[derive(Clone, Copy)]
enum Field {
    Name,
    Image,
    PodName,
    Namespace,
    PodUid,
}

/// Fills `metadata` from an OCI `config.json`'s annotations (containerd's
/// `io.kubernetes.cri.*` or CRI-O's `io.kubernetes.*` keys). Returns whether
/// the bundle is a pod sandbox (pause) rather than an application
/// container; sandboxes are registered too (their processes are container
/// processes) but have no image of interest.
///
/// An error, naming what is missing or wrong, when the bundle does not
/// describe a Kubernetes container: no `annotations` object, a known key
/// whose value is not a string, no pod name or namespace, or (an
/// application container) no image. Such a container is left pending, as
/// one without a bundle is: registered with its id only, the rules scoped
/// to its namespace or image would miss it (issue 14), while the pending
/// row fails closed.
pub fn apply_annotations(metadata: &mut Metadata, config: &Value) -> Result<bool, String> {
    let annotations = config
        .get("annotations")
        .ok_or("it has no `annotations`")?
        .as_object()
        .ok_or("its `annotations` is not an object")?;
    let get = |key: &str| -> Result<Option<String>, String> {
        match annotations.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(format!("its annotation `{key}` is not a string")),
        }
    };
    let first = |keys: &[&str]| -> Result<Option<String>, String> {
        for key in keys {
            if let Some(value) = get(key)? {
                return Ok(Some(value));
            }
        }
        Ok(None)
    };
    const KIND: &[&str] = &["io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType"];
    // Every known key's type first: a wrong one is the problem to name,
    // not a missing field it hides.
    for key in ANNOTATIONS.iter().flat_map(|(_, keys)| keys.iter()).chain(KIND) {
        get(key)?;
    }
    let kind = first(KIND)?;
    let sandbox = kind.as_deref() == Some("sandbox");
    // Filled on a copy: an undescribable bundle leaves `metadata` as it was.
    let mut filled = metadata.clone();
    for (field, keys) in ANNOTATIONS {
        let value = first(keys)?;
        let required = match field {
            Field::PodName | Field::Namespace => true,
            Field::Image => !sandbox,
            Field::Name | Field::PodUid => false,
        };
        if value.is_none() && required {
            return Err(format!("it names no {} (annotation `{}`)", field.what(), keys.join("` or `")));
        }
        let slot = match field {
            Field::Name => &mut filled.name,
            Field::Image => &mut filled.image,
            Field::PodName => &mut filled.pod_name,
            Field::Namespace => &mut filled.namespace,
            Field::PodUid => &mut filled.pod_uid,
        };
        if value.is_some() {
            *slot = value;
        }
    }
    *metadata = filled;
    Ok(sandbox)
}

impl Field {
    /// What the field is, for messages.
    fn what(self) -> &'static str {
        match self {
            Field::Name => "container name",
            Field::Image => "image",
            Field::PodName => "pod name",
            Field::Namespace => "namespace",
            Field::PodUid => "pod uid",
        }
    }
}

/// Where runtimes keep bundles: patterns with `{id}` for the container id.
/// The defaults are containerd's (`k8s.io` namespace) and CRI-O's state
/// directories; a DaemonSet mounts them read-only at the same paths.
pub fn default_bundle_patterns() -> Vec<String> {
    vec![
        "/run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}/config.json".into(),
        "/run/containers/storage/overlay-containers/{id}/userdata/config.json".into(),
    ]
}

/// The largest bundle `config.json` read: runc's are some kilobytes, with
/// every annotation a kubelet and containerd write.
pub const MAX_BUNDLE_BYTES: u64 = 4 << 20;

/// A container's bundle: its `config.json`, and the directory holding it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The parsed `config.json`.
    pub config: Value,
    /// The bundle directory.
    pub dir: PathBuf,
}

impl Bundle {
    /// The container's root file system: the bundle's `root.path`
    /// (relative to the bundle directory, or absolute); `None` when the
    /// bundle names none.
    pub fn rootfs(&self) -> Option<PathBuf> {
        let root = self.config.get("root")?.get("path")?.as_str()?;
        Some(self.dir.join(root))
    }
}

/// Reads the first bundle of `id` found under `patterns`. `Ok(None)` when no
/// bundle exists (yet); an error names the file that exists but is not a
/// JSON document.
pub fn read_bundle(patterns: &[String], id: &str) -> Result<Option<Bundle>, String> {
    for pattern in patterns {
        let path = PathBuf::from(pattern.replace("{id}", id));
        // A regular file of bounded size: a bundle linked to /dev/zero or a
        // FIFO would grow or block the daemon.
        match d4c_artifact::input::read_regular(&path, MAX_BUNDLE_BYTES) {
            Ok(bytes) => {
                let config = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("the bundle `{}` is not a JSON document: {e}", path.display()))?;
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                return Ok(Some(Bundle { config, dir }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read the bundle `{}`: {e}", path.display())),
        }
    }
    Ok(None)
}

/// A container cgroup found on the cgroup filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its cgroup id (the directory's inode).
    pub cgroup_id: u64,
    /// Its directory.
    pub path: PathBuf,
    /// What its name says.
    pub cgroup: ContainerCgroup,
}

/// Finds every container cgroup below `roots` (a container's own cgroup,
/// not its children) in the hierarchy mounted at `mount`. Cgroups that
/// vanish during the walk are skipped.
///
/// An error when the tree cannot be read whole: a root or a directory
/// below one that exists but cannot be listed (EMFILE, EACCES, ENOTDIR,
/// EIO); a directory removed during the walk is not an error (its
/// containers are gone). The caller then keeps what it knew: an empty
/// result here means "no containers", never "could not look" (issue 14:
/// at the descriptor limit every container was deregistered).
pub fn scan(mount: &Path, roots: &[KubepodsRoot]) -> Result<Vec<Found>, String> {
    let mut found = Vec::new();
    let unreadable =
        |dir: &Path, e: std::io::Error| format!("cannot read the cgroup directory `{}`: {e}", dir.display());
    // kubepods / qos / pod / container: three levels below a root at most.
    let mut stack: Vec<(PathBuf, u32)> = roots.iter().map(|r| (r.path.clone(), 0)).collect();
    while let Some((dir, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Removed since it was found (a pod or QoS cgroup since its
            // parent was listed, a root since the roots were found): what
            // was below it is gone too. Only a directory that exists and
            // cannot be read is a failure to look.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(unreadable(&dir, e)),
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(unreadable(&dir, e)),
            };
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            let Some(relative) = path.strip_prefix(mount).ok().and_then(Path::to_str).map(|r| format!("/{r}")) else {
                continue;
            };
            match cgroup::parse_container_path(&relative) {
                Some(parsed) if parsed.depth_below_container == 0 => {
                    if let Ok(cgroup_id) = cgroup::cgroup_id(&path) {
                        found.push(Found { cgroup_id, path, cgroup: parsed });
                    }
                }
                Some(_) => {}
                None if depth < 3 => stack.push((path, depth + 1)),
                None => {}
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// The runtime's name for the documents (`container.runtime`).
pub fn runtime_name(runtime: Option<Runtime>) -> Option<&'static str> {
    runtime.map(|r| match r {
        Runtime::Containerd => "containerd",
        Runtime::CriO => "cri-o",
        Runtime::Docker => "docker",
    })
}

/// The containers registered with the kernel, by cgroup id.
#[derive(Debug, Default)]
pub struct Registry {
    containers: HashMap<u64, Metadata>,
}

impl Registry {
    /// The metadata of the container with cgroup `id`.
    pub fn get(&self, cgroup_id: u64) -> Option<&Metadata> {
        self.containers.get(&cgroup_id)
    }

    /// Records `metadata` for `cgroup_id`; returns the previous metadata.
    pub fn insert(&mut self, cgroup_id: u64, metadata: Metadata) -> Option<Metadata> {
        self.containers.insert(cgroup_id, metadata)
    }

    /// Forgets the containers whose cgroup is not in `present`; returns
    /// their cgroup ids.
    pub fn retain_present(&mut self, present: &[Found]) -> Vec<u64> {
        let keep: std::collections::HashSet<u64> = present.iter().map(|f| f.cgroup_id).collect();
        let gone: Vec<u64> = self.containers.keys().copied().filter(|id| !keep.contains(id)).collect();
        for id in &gone {
            self.containers.remove(id);
        }
        gone
    }

    /// The registered containers.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Metadata)> {
        self.containers.iter()
    }

    /// How many are registered.
    pub fn len(&self) -> usize {
        self.containers.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Regression (issue 14, fault 6): a bundle `config.json` linked to
    /// `/dev/zero` grew the daemon by 2 GB/s, and a FIFO blocked its main
    /// loop. Each is an error naming the file, read no further.
    #[test]
    fn a_bundle_linked_to_dev_zero_or_a_fifo_is_refused_not_read() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let zero = dir.path().join("zero");
        std::fs::create_dir_all(&zero).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink("/dev/zero", zero.join("config.json")).map_err(|e| e.to_string())?;
        let fifo = dir.path().join("fifo");
        std::fs::create_dir_all(&fifo).map_err(|e| e.to_string())?;
        let made = std::process::Command::new("mkfifo").arg(fifo.join("config.json")).status();
        assert!(made.map_err(|e| e.to_string())?.success());
        for (id, what) in [("zero", "a character device"), ("fifo", "a FIFO")] {
            let pattern = format!("{}/{{id}}/config.json", dir.path().display());
            let error = read_bundle(&[pattern], id).map(|_| ()).err().ok_or("the bundle was read")?;
            assert!(error.contains(&format!("{id}/config.json`: not a regular file ({what})")), "{error}");
        }
        Ok(())
    }

    #[test]
    fn containerd_and_crio_annotations_fill_the_same_fields() {
        let containerd = json!({"annotations": {
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": "web",
            "io.kubernetes.cri.image-name": "nginx:1.25",
            "io.kubernetes.cri.sandbox-name": "web-7d9f",
            "io.kubernetes.cri.sandbox-namespace": "prod",
            "io.kubernetes.cri.sandbox-uid": "0d3c8a52-7f0b-4a1b-9f8e-2f4c9a1b2c3d"
        }});
        let crio = json!({"annotations": {
            "io.kubernetes.cri-o.ContainerType": "container",
            "io.kubernetes.container.name": "web",
            "io.kubernetes.cri-o.ImageName": "nginx:1.25",
            "io.kubernetes.pod.name": "web-7d9f",
            "io.kubernetes.pod.namespace": "prod",
            "io.kubernetes.pod.uid": "0d3c8a52-7f0b-4a1b-9f8e-2f4c9a1b2c3d"
        }});
        let mut a = Metadata::default();
        let mut b = Metadata::default();
        assert_eq!(apply_annotations(&mut a, &containerd), Ok(false));
        assert_eq!(apply_annotations(&mut b, &crio), Ok(false));
        assert_eq!(a, b);
        assert_eq!(a.namespace.as_deref(), Some("prod"));
        let view = a.selector_view(Some("uid-1"), Some("prod-eu"));
        assert_eq!(view.image_full_name.as_deref(), Some("docker.io/library/nginx"));
        assert_eq!(view.image_tag.as_deref(), Some("1.25"));
        assert_eq!(view.pod_name.as_deref(), Some("web-7d9f"));
        assert_eq!(view.cluster_name.as_deref(), Some("prod-eu"));
    }

    #[test]
    fn a_sandbox_is_told_apart() {
        let pause = json!({"annotations": {
            "io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.sandbox-name": "web-7d9f",
            "io.kubernetes.cri.sandbox-namespace": "prod"
        }});
        assert_eq!(apply_annotations(&mut Metadata::default(), &pause), Ok(true));
    }

    /// Regression (issue 14, fault 3): a bundle `{}`, or one whose
    /// annotations had the wrong type, registered the container with its id
    /// only, so the rules scoped to its namespace missed it. Each is now an
    /// error naming what is wrong (the container stays pending, which fails
    /// closed), and the metadata is left as it was.
    #[test]
    fn undescribable_bundle_is_pending_not_registered() {
        let cases = [
            (json!({}), "no `annotations`"),
            (json!({"annotations": ["io.kubernetes.pod.namespace"]}), "`annotations` is not an object"),
            (
                json!({"annotations": {"io.kubernetes.pod.namespace": 7}}),
                "`io.kubernetes.pod.namespace` is not a string",
            ),
            (
                json!({"annotations": {"io.kubernetes.cri.sandbox-name": "web", "io.kubernetes.cri.image-name": "nginx"}}),
                "no namespace",
            ),
            (
                json!({"annotations": {"io.kubernetes.cri.sandbox-name": "web", "io.kubernetes.cri.sandbox-namespace": "prod"}}),
                "no image",
            ),
        ];
        for (bundle, problem) in cases {
            let mut metadata = Metadata { id: "a".repeat(64), ..Metadata::default() };
            let before = metadata.clone();
            let error = apply_annotations(&mut metadata, &bundle).err().unwrap_or_default();
            assert!(error.contains(problem), "{bundle}: {error}");
            assert_eq!(metadata, before);
        }
    }

    #[test]
    fn bundles_are_found_by_pattern_and_bad_ones_named() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let id = "a".repeat(64);
        let patterns = vec![
            format!("{}/missing/{{id}}/config.json", dir.path().display()),
            format!("{}/k8s.io/{{id}}/config.json", dir.path().display()),
        ];
        assert_eq!(read_bundle(&patterns, &id)?, None);
        let bundle = dir.path().join("k8s.io").join(&id);
        std::fs::create_dir_all(&bundle).map_err(|e| e.to_string())?;
        std::fs::write(bundle.join("config.json"), br#"{"annotations":{}}"#).map_err(|e| e.to_string())?;
        assert_eq!(read_bundle(&patterns, &id)?.map(|b| b.config), Some(json!({"annotations": {}})));
        std::fs::write(bundle.join("config.json"), b"{not json").map_err(|e| e.to_string())?;
        let error = read_bundle(&patterns, &id).err().unwrap_or_default();
        assert!(error.contains("config.json") && error.contains("not a JSON document"), "{error}");
        // The root file system is the bundle's `root.path`, below its directory.
        std::fs::write(bundle.join("config.json"), br#"{"root":{"path":"rootfs"}}"#).map_err(|e| e.to_string())?;
        let read = read_bundle(&patterns, &id)?.ok_or("no bundle")?;
        assert_eq!(read.rootfs(), Some(bundle.join("rootfs")));
        Ok(())
    }

    /// Regression (issue 14, fault 2): at the descriptor limit the scan
    /// could not open the cgroup tree, returned no container, and the
    /// daemon deregistered them all. A tree that cannot be read is now an
    /// error (the daemon then keeps its registry: `tests/daemon.rs` checks
    /// that part on a real cgroup tree), never an empty result.
    #[test]
    fn failed_container_scan_keeps_the_registry() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mount = dir.path();
        let id = "3".repeat(64);
        std::fs::create_dir_all(
            mount.join(format!("kubepods/besteffort/pod0d3c8a52-7f0b-4a1b-9f8e-2f4c9a1b2c3d/{id}")),
        )
        .map_err(|e| e.to_string())?;
        let roots = cgroup::find_kubepods_roots(mount, cgroup::DEFAULT_MAX_DEPTH)?;
        let found = scan(mount, &roots)?;
        let mut registry = Registry::default();
        for f in &found {
            registry.insert(f.cgroup_id, Metadata { id: f.cgroup.container_id.clone(), ..Metadata::default() });
        }
        assert_eq!(registry.len(), 1);
        // The root can no longer be listed (as at EMFILE; here ENOTDIR):
        // an error naming it, so nothing is taken as gone.
        std::fs::remove_dir_all(mount.join("kubepods")).map_err(|e| e.to_string())?;
        std::fs::write(mount.join("kubepods"), b"").map_err(|e| e.to_string())?;
        let error = scan(mount, &roots).err().ok_or("an unreadable tree scanned as empty")?;
        assert!(error.contains("cannot read the cgroup directory") && error.contains("kubepods"), "{error}");
        Ok(())
    }

    #[test]
    fn scan_finds_container_cgroups_of_both_drivers() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mount = dir.path();
        let id1 = "1".repeat(64);
        let id2 = "2".repeat(64);
        let uid = "0d3c8a52_7f0b_4a1b_9f8e_2f4c9a1b2c3d";
        let systemd = format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{id1}.scope"
        );
        let cgroupfs = format!("kubepods/besteffort/pod{}/{id2}/child", uid.replace('_', "-"));
        for d in [&systemd, &cgroupfs, &"system.slice/containerd.service".to_string()] {
            std::fs::create_dir_all(mount.join(d)).map_err(|e| e.to_string())?;
        }
        let roots = cgroup::find_kubepods_roots(mount, cgroup::DEFAULT_MAX_DEPTH)?;
        let found = scan(mount, &roots)?;
        let ids: Vec<&str> = found.iter().map(|f| f.cgroup.container_id.as_str()).collect();
        assert_eq!(ids, [id2.as_str(), id1.as_str()]);
        assert!(found.iter().all(|f| f.cgroup.depth_below_container == 0));
        let mut registry = Registry::default();
        for f in &found {
            registry.insert(f.cgroup_id, Metadata { id: f.cgroup.container_id.clone(), ..Metadata::default() });
        }
        registry.insert(12345, Metadata::default());
        assert_eq!(registry.retain_present(&found), [12345]);
        assert_eq!(registry.len(), 2);
        Ok(())
    }
}
