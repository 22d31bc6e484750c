//! The container control plane: which cgroups are containers, what each
//! is, and the kernel rows that say so.
//!
//! Input: the cgroup tree below the kubepods roots (scanned, and watched
//! with inotify), each container's OCI bundle and `/etc/passwd`, and the
//! Kubernetes API's view when enabled. Output: the [`Registry`] of
//! containers, each container's rows written to the probes, the node's
//! facts the API gives, and the [`Changes`] the records' path must know
//! (processes to learn, user names to forget).
//! Invariants: a container is registered only when it can be described
//! (else it stays pending, which fails closed); a scan that cannot read
//! the tree keeps what it knew; every write of a container's row uses the
//! same selector view ([`ControlPlane::rows_of`]).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use crate::cgroup::{self, KubepodsRoot};
use d4c_artifact::eval::Tables;
use d4c_artifact::event::User;
use d4c_kernel_probes::probes::{CgroupMode, Probes};

use crate::config::Config;
use crate::containers::{self, Metadata, Registry};
use crate::ecs::Facts;
use crate::facts::Node;

use super::Counters;

/// How often registered containers' `/etc/passwd` files are read again
/// when user names decide (boot clock): a second.
pub const PASSWD_REFRESH_NS: u64 = 1_000_000_000;

/// What a scan changed that the records' path must know.
#[derive(Debug, Default)]
pub struct Changes {
    /// Containers registered, with their cgroup directory (their
    /// processes so far are learnt while they run).
    pub registered: Vec<(u64, PathBuf)>,
    /// Containers whose user names changed, or that are gone: the names
    /// cached for their documents are read again.
    pub users_changed: Vec<u64>,
}

/// The containers known and how they are found.
pub struct ControlPlane {
    /// The node's facts (read at start; the API may add to them).
    node: Node,
    /// The cgroup filesystem whose ids name containers, and its mode.
    cgroupfs: PathBuf,
    cgroup_mode: CgroupMode,
    /// The kubepods roots registered.
    roots: Vec<KubepodsRoot>,
    /// The containers registered.
    registry: Registry,
    /// Cgroups found whose bundle is not readable yet, with when they
    /// were first seen pending (boot ns).
    waiting: BTreeMap<u64, u64>,
    /// A scan is due now (a pending container was seen).
    scan_due: bool,
    /// New cgroups below the kubepods roots, as they are made (`None` when
    /// inotify is unavailable: the periodic scan alone finds them).
    watch: Option<crate::watch::CgroupWatch>,
    /// The Kubernetes API's view (pod labels, cluster id), when enabled.
    kube: Option<crate::kube::Kube>,
    /// The Kubernetes view's generation last applied to the registry.
    kube_generation: u64,
    /// When the Kubernetes view was started (boot ns): a pod's labels are
    /// waited for from then at the earliest (containers older than the
    /// daemon get the whole wait too).
    kube_since: u64,
    /// When containers' `/etc/passwd` files were last read again (boot
    /// clock): at most every [`PASSWD_REFRESH_NS`].
    passwd_read_at: u64,
    /// The rate limit of the logs of conditions that repeat every scan.
    throttle: crate::logging::Throttle,
}

impl ControlPlane {
    /// The control plane of `config`'s cgroup hierarchy, before its first
    /// scan; starts the Kubernetes view and the cgroup watch.
    pub fn new(config: &Config, node: Node) -> Result<ControlPlane, String> {
        let (cgroupfs, cgroup_mode) = cgroup_hierarchy(config)?;
        Ok(ControlPlane {
            node,
            cgroupfs,
            cgroup_mode,
            roots: Vec::new(),
            registry: Registry::default(),
            waiting: BTreeMap::new(),
            scan_due: false,
            watch: match crate::watch::CgroupWatch::new() {
                Ok(watch) => Some(watch),
                Err(error) => {
                    tracing::warn!(%error, "no inotify: new containers are found by the periodic scan only");
                    None
                }
            },
            kube: start_kube(config),
            kube_generation: 0,
            kube_since: crate::facts::boot_ns(),
            passwd_read_at: 0,
            throttle: crate::logging::Throttle::default(),
        })
    }

    /// The cgroup mode of the hierarchy whose ids name containers.
    pub fn cgroup_mode(&self) -> CgroupMode {
        self.cgroup_mode
    }

    /// The cgroup filesystem whose ids name containers.
    pub fn cgroupfs(&self) -> &std::path::Path {
        &self.cgroupfs
    }

    /// The node's facts.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The containers registered.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// How many containers were found and are not registered yet.
    pub fn pending(&self) -> usize {
        self.waiting.len()
    }

    /// The kubepods roots registered.
    pub fn roots(&self) -> &[KubepodsRoot] {
        &self.roots
    }

    /// Replaces the kubepods roots scanned (tests: roots that cannot be
    /// read make a scan fail).
    pub fn set_roots(&mut self, roots: Vec<KubepodsRoot>) {
        self.roots = roots;
    }

    /// Whether the kubepods tree is watched for new cgroups.
    pub fn watching(&self) -> bool {
        self.watch.as_ref().is_some_and(|w| !w.is_empty())
    }

    /// Whether the Kubernetes view is enabled and has synced.
    pub fn kube_synced(&self) -> bool {
        self.kube.as_ref().is_some_and(crate::kube::Kube::synced)
    }

    /// Whether the Kubernetes view is enabled.
    pub fn kube_enabled(&self) -> bool {
        self.kube.is_some()
    }

    /// Log lines held back by the rate limit.
    pub fn suppressed_logs(&self) -> u64 {
        self.throttle.suppressed
    }

    /// Whether a scan is due now: a pending container was seen, or the
    /// watch saw a cgroup made below a kubepods root.
    pub fn scan_due(&mut self) -> bool {
        let made = self.watch.as_mut().is_some_and(crate::watch::CgroupWatch::read);
        made || self.scan_due
    }

    /// A record found a container pending (its cgroup, and when): a scan
    /// is due, and its registration window starts then at the latest.
    pub fn saw_pending(&mut self, cgroup_id: u64, ktime_ns: u64) {
        if !self.scan_due {
            self.scan_due = true;
            self.waiting.entry(cgroup_id).or_insert(ktime_ns);
        }
    }

    /// Finds and registers the kubepods roots with `probes`.
    pub fn find_roots(&mut self, probes: &mut Probes) -> Result<(), String> {
        let roots = cgroup::find_kubepods_roots(&self.cgroupfs, cgroup::DEFAULT_MAX_DEPTH)?;
        for root in &roots {
            probes.add_kubepods_root(root.id).map_err(|e| e.to_string())?;
            if let Some(watch) = &mut self.watch {
                watch.watch_tree(&root.path);
            }
        }
        self.roots = roots;
        Ok(())
    }

    /// Gives `probes` (new ones, of a reload) every root and every
    /// registered container's rows.
    pub fn populate(&self, probes: &mut Probes, facts: &Facts) -> Result<(), String> {
        for root in &self.roots {
            probes.add_kubepods_root(root.id).map_err(|e| e.to_string())?;
        }
        for (cgroup_id, metadata) in self.registry.iter() {
            rows_of(probes, *cgroup_id, metadata, facts).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Scans the cgroup tree: registers new containers whose bundle can be
    /// read (their rows written to `probes`), forgets the ones gone, and
    /// applies what the Kubernetes view and changed `/etc/passwd` files
    /// say. Returns what the records' path must know.
    pub fn scan(
        &mut self,
        config: &Config,
        probes: &mut Probes,
        facts: &mut Facts,
        counters: &mut Counters,
    ) -> Changes {
        let mut changes = Changes::default();
        counters.scans += 1;
        self.scan_due = false;
        self.refresh_from_kube(config, probes, facts);
        if self.roots.is_empty() {
            // kubelet may start after the daemon: look for the roots again.
            let _ = self.find_roots(probes);
        }
        let now = crate::facts::boot_ns();
        let found = match containers::scan(&self.cgroupfs, &self.roots) {
            Ok(found) => {
                // The tree reads again: its next failure is news.
                self.throttle.forget("scan");
                found
            }
            Err(error) => {
                // Could not look is not "nothing there": deregistering would
                // drop every container's row and its alerts.
                counters.scan_failures += 1;
                if let Some(repeated) = self.throttle.admit("scan", now) {
                    tracing::error!(%error, repeated, "cannot read the cgroup tree; the containers known are kept");
                }
                return changes;
            }
        };
        for f in &found {
            if self.registry.get(f.cgroup_id).is_some() {
                continue;
            }
            // When the cgroup appeared: its directory's change time (set
            // at mkdir), on the probes' clock; else now.
            let first_seen =
                *self.waiting.entry(f.cgroup_id).or_insert_with(|| cgroup_birth_boot_ns(&f.path, now).unwrap_or(now));
            let Some(metadata) = self.describe(config, probes.tables(), f, first_seen, now, counters) else { continue };
            match rows_of(probes, f.cgroup_id, &metadata, facts) {
                Ok(row) => {
                    let window = now.saturating_sub(first_seen);
                    counters.registration_window_ns = (window, counters.registration_window_ns.1.max(window));
                    counters.containers_added += 1;
                    self.waiting.remove(&f.cgroup_id);
                    tracing::info!(
                        container = %metadata.id, pod = ?metadata.pod_name, namespace = ?metadata.namespace,
                        image = ?metadata.image, row, "container registered"
                    );
                    self.forget_logged(&metadata.id);
                    self.registry.insert(f.cgroup_id, metadata);
                    changes.registered.push((f.cgroup_id, f.path.clone()));
                }
                Err(error) => {
                    counters.registration_failures += 1;
                    if let Some(repeated) = self.throttle.admit(&format!("register {}", metadata.id), now) {
                        tracing::error!(container = %metadata.id, %error, repeated,
                            "cannot register the container; it stays pending (fail closed)");
                    }
                }
            }
        }
        for gone in self.registry.retain_present(&found) {
            counters.containers_removed += 1;
            changes.users_changed.push(gone);
            if let Err(error) = probes.remove_cgroup(gone) {
                tracing::warn!(cgroup_id = gone, %error, "cannot remove a container's cgroup from the kernel");
            }
        }
        let present: HashSet<u64> = found.iter().map(|f| f.cgroup_id).collect();
        self.waiting.retain(|id, _| present.contains(id));
        if now.saturating_sub(self.passwd_read_at) >= PASSWD_REFRESH_NS {
            self.passwd_read_at = now;
            self.refresh_passwd(probes, facts, &mut changes);
        }
        changes
    }

    /// What container `f` is, from its bundle, the Kubernetes view and its
    /// `/etc/passwd`; `None` while it cannot be described (it stays
    /// pending: counted and logged when its bundle is unusable).
    fn describe(
        &mut self,
        config: &Config,
        tables: &Tables,
        f: &containers::Found,
        first_seen: u64,
        now: u64,
        counters: &mut Counters,
    ) -> Option<Metadata> {
        let bundle = match containers::read_bundle(&config.bundle_patterns, &f.cgroup.container_id) {
            Ok(Some(bundle)) => bundle,
            Ok(None) => return None,
            Err(error) => {
                self.bundle_error(f, &error, now, counters);
                return None;
            }
        };
        let mut metadata = Metadata {
            id: f.cgroup.container_id.clone(),
            runtime: containers::runtime_name(f.cgroup.runtime),
            pod_uid: f.cgroup.pod_uid.clone(),
            ..Metadata::default()
        };
        if let Err(problem) = containers::apply_annotations(&mut metadata, &bundle.config) {
            self.bundle_error(f, &format!("its bundle does not describe it: {problem}"), now, counters);
            return None;
        }
        if let Some(kube) = &self.kube {
            match metadata.pod_uid.as_deref().and_then(|uid| kube.pod(uid)) {
                Some(pod) => crate::kube::apply(&mut metadata, &pod),
                // The pod's labels may decide its selectors: wait for
                // them a little (the container stays pending, which
                // fails closed), then register without them.
                None if now.saturating_sub(first_seen.max(self.kube_since))
                    < config.kubernetes.label_wait.as_nanos() as u64 =>
                {
                    return None;
                }
                None => {
                    tracing::warn!(container = %metadata.id, pod_uid = ?metadata.pod_uid,
                        "the pod is not in the Kubernetes API after the label wait: registered without its labels");
                }
            }
        }
        // Its /etc/passwd, for user conditions: a container whose names
        // cannot be known stays pending when names decide.
        metadata.rootfs = bundle.rootfs();
        match metadata.rootfs.as_deref().map(crate::users::read_passwd) {
            Some(Ok(passwd)) => metadata.passwd = passwd,
            Some(Err(error)) if tables.has_user_names() => {
                self.bundle_error(f, &error, now, counters);
                return None;
            }
            None if tables.has_user_names() => {
                self.bundle_error(f, "its bundle names no root file system to read /etc/passwd from", now, counters);
                return None;
            }
            Some(Err(_)) | None => {}
        }
        Some(metadata)
    }

    /// Registers container `cgroup_id` as `metadata`, its rows written as
    /// `view` describes it rather than as its metadata's own view (the VM
    /// suite gives a scenario's containers the conditions the scenario
    /// declares); its users are `metadata`'s `/etc/passwd`'s.
    pub fn describe_as(
        &mut self,
        probes: &mut Probes,
        cgroup_id: u64,
        metadata: Metadata,
        view: &d4c_artifact::event::Container,
    ) -> Result<u32, String> {
        let users = users_of(probes.tables(), &metadata);
        let row = probes.add_container(cgroup_id, view, &users).map_err(|e| e.to_string())?;
        self.registry.insert(cgroup_id, metadata);
        Ok(row)
    }

    /// Reads every registered container's `/etc/passwd` again when user
    /// names decide, and moves a container whose file changed to the row
    /// its new names give: a user added or renamed is decided by its new
    /// name from the next such read on (at most [`PASSWD_REFRESH_NS`]
    /// later). A file that cannot be read now keeps what was known (the
    /// container may be ending).
    fn refresh_passwd(&mut self, probes: &mut Probes, facts: &Facts, changes: &mut Changes) {
        if !probes.tables().has_user_names() {
            return;
        }
        let mut changed = Vec::new();
        for (cgroup_id, metadata) in self.registry.iter() {
            let Some(rootfs) = metadata.rootfs.as_deref() else { continue };
            if let Ok(passwd) = crate::users::read_passwd(rootfs) {
                if passwd != metadata.passwd {
                    changed.push((*cgroup_id, Metadata { passwd, ..metadata.clone() }));
                }
            }
        }
        for (cgroup_id, metadata) in changed {
            match rows_of(probes, cgroup_id, &metadata, facts) {
                Ok(row) => {
                    tracing::info!(container = %metadata.id, row, "the container's /etc/passwd changed: its users' rows follow");
                    // The documents' names are read again too: a document
                    // names the user its decision matched.
                    changes.users_changed.push(cgroup_id);
                    self.registry.insert(cgroup_id, metadata);
                }
                Err(error) => {
                    tracing::error!(container = %metadata.id, %error, "cannot update a container's rows after its /etc/passwd changed");
                }
            }
        }
    }

    /// A container's bundle could not be used: counted, and logged at the
    /// rate [`crate::logging::Throttle`] allows (every scan retries it).
    fn bundle_error(&mut self, found: &containers::Found, error: &str, now: u64, counters: &mut Counters) {
        counters.bundle_errors += 1;
        if let Some(repeated) = self.throttle.admit(&format!("bundle {}", found.cgroup.container_id), now) {
            tracing::warn!(cgroup = %found.path.display(), %error, repeated, "container bundle unusable; it stays pending");
        }
    }

    /// Forgets the log throttling of container `id` (now registered): a
    /// later problem of it is logged at once. Keys of containers gone are
    /// bounded by [`crate::logging::MAX_THROTTLED_KEYS`].
    fn forget_logged(&mut self, id: &str) {
        self.throttle.forget(&format!("bundle {id}"));
        self.throttle.forget(&format!("register {id}"));
    }

    /// Applies what the Kubernetes API says to the facts and to every
    /// registered container, when it changed since the last time: a pod
    /// whose labels changed gets its row again.
    fn refresh_from_kube(&mut self, config: &Config, probes: &mut Probes, facts: &mut Facts) {
        let Some(kube) = &self.kube else { return };
        let generation = kube.generation();
        if generation == self.kube_generation {
            return;
        }
        self.kube_generation = generation;
        // The cluster id is a container condition: when it arrives (or
        // changes), every container's row is made again.
        let mut cluster_changed = false;
        if config.cluster_id.is_none() {
            let cluster_id = kube.cluster_id();
            cluster_changed = cluster_id != facts.cluster_id;
            facts.cluster_id = cluster_id;
        }
        if let Some(api) = kube.node() {
            let host = self.node.host_fields(config.node_name.as_deref(), Some(&api));
            let cloud = crate::facts::cloud_fields(&api);
            if (&host, &cloud) != (&facts.host, &facts.cloud) {
                facts.host = host;
                facts.cloud = cloud;
                facts.fixed_json.forget_node();
            }
        }
        let mut changed = Vec::new();
        for (cgroup_id, metadata) in self.registry.iter() {
            let Some(pod) = metadata.pod_uid.as_deref().and_then(|uid| kube.pod(uid)) else { continue };
            let mut updated = metadata.clone();
            crate::kube::apply(&mut updated, &pod);
            if &updated != metadata {
                changed.push((*cgroup_id, updated));
            }
        }
        if cluster_changed {
            let pods_changed: HashSet<u64> = changed.iter().map(|(id, _)| *id).collect();
            changed.extend(
                self.registry.iter().filter(|(id, _)| !pods_changed.contains(*id)).map(|(id, m)| (*id, m.clone())),
            );
        }
        for (cgroup_id, metadata) in changed {
            match rows_of(probes, cgroup_id, &metadata, facts) {
                Ok(_) => {
                    self.registry.insert(cgroup_id, metadata);
                }
                Err(error) => {
                    tracing::error!(%error, "cannot update a container's row after its pod or the cluster id changed");
                }
            }
        }
    }
}

/// Writes container `cgroup_id`'s rows as `metadata` and the cluster in
/// `facts` describe it, one per user a condition can name there; returns
/// its row.
fn rows_of(
    probes: &mut Probes,
    cgroup_id: u64,
    metadata: &Metadata,
    facts: &Facts,
) -> Result<u32, d4c_kernel_probes::maps::MapError> {
    let view = metadata.selector_view(facts.cluster_id.as_deref(), facts.cluster_name.as_deref());
    let users = users_of(probes.tables(), metadata);
    probes.add_container(cgroup_id, &view, &users)
}

/// The users of `metadata`'s container whose rows may differ from its own
/// (`Tables::named_users` over its `/etc/passwd`).
pub fn users_of(tables: &Tables, metadata: &Metadata) -> Vec<User> {
    tables.named_users(metadata.passwd.iter().map(|(id, name)| (*id, name.as_str())))
}

/// The boot-clock time at which the cgroup directory `dir` was made (its
/// ctime: cgroupfs sets it at mkdir and at attribute changes, which a
/// container's cgroup directory does not get), given `now` on that clock.
fn cgroup_birth_boot_ns(dir: &std::path::Path, now: u64) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(dir).ok()?;
    let ctime_ns = u64::try_from(metadata.ctime())
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::try_from(metadata.ctime_nsec()).ok()?)?;
    let now_real = crate::facts::boot_epoch_ns().checked_add(now)?;
    Some(now.saturating_sub(now_real.saturating_sub(ctime_ns)))
}

/// The Kubernetes API watcher, when enabled; a failure to start it is
/// logged and the daemon goes on without (bundle metadata only).
fn start_kube(config: &Config) -> Option<crate::kube::Kube> {
    if !config.kubernetes.is_enabled() {
        return None;
    }
    let Some(node) = config.node_name.as_deref() else {
        tracing::warn!(
            "the Kubernetes API is enabled but NODE_NAME is not set: pod labels and the cluster id are unknown"
        );
        return None;
    };
    match crate::kube::Kube::start(&config.kubernetes, node) {
        Ok(kube) => kube,
        Err(error) => {
            tracing::error!(%error, "cannot use the Kubernetes API: pod labels and the cluster id are unknown");
            None
        }
    }
}

/// The cgroup mount whose ids name containers, and its mode: the
/// configured one, or the unified mount (v2), else the v1 memory mount.
fn cgroup_hierarchy(config: &Config) -> Result<(PathBuf, CgroupMode), String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo to find the cgroup mounts: {e}"))?;
    let hierarchy = cgroup::detect_hierarchy(&mountinfo);
    let mode = match hierarchy {
        cgroup::Hierarchy::Unified { .. } => CgroupMode::Unified,
        _ => CgroupMode::Legacy,
    };
    let mount = match &config.cgroupfs {
        Some(path) => path.clone(),
        None => hierarchy.id_mount().map(PathBuf::from).ok_or(
            "no cgroup hierarchy is mounted (neither cgroup2 nor a v1 memory controller): cannot tell containers apart",
        )?,
    };
    Ok((mount, mode))
}
