//! The daemon's state and its turns: the kernel side (probes, rows,
//! cgroups), the container registry, and the records' path to documents
//! ([`Pipeline`], to which the daemon gives what only it knows: the
//! selectors a decision matched, audit mode's decisions, the containers).
//!
//! One task owns all of it and turns it from the main loop ([`crate::run`]):
//! drain the ring buffer, scan for containers, check the artifact for a
//! new revision, render the metrics. Nothing here waits on the network.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use d4c_artifact::display::escape_control;
use d4c_artifact::eval::{Tables, Verdict};
use d4c_artifact::event::{Event as TableEvent, ProcessEvent, User};
use d4c_artifact::ops::{Actions, Kind, Operation};
use d4c_kernel_probes::cgroup::{self, KubepodsRoot};
use d4c_kernel_probes::probes::{self, CgroupMode, Pending, Probes, Record, Settings};

use crate::config::{Config, PendingMode};
use crate::containers::{self, Metadata, Registry};
use crate::document::Document;
use crate::ecs::Facts;
use crate::event::{Decision, Event};
use crate::facts::Node;
use crate::inflight::{Decided, Matched};
use crate::load::{self, Policy};
use crate::pipeline::{Context, Pipeline};
use crate::process::Process;

/// Counters of the daemon (the pipeline's are [`Pipeline::tallies`], the
/// kernel's are read from the probes).
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Ring buffer reads that failed.
    pub bad_records: u64,
    /// Container scans done.
    pub scans: u64,
    /// Containers registered since start.
    pub containers_added: u64,
    /// Containers removed since start.
    pub containers_removed: u64,
    /// Bundles that could not be read or parsed, or that do not describe
    /// a Kubernetes container (the container stays pending and is
    /// retried).
    pub bundle_errors: u64,
    /// Container scans that could not read the cgroup tree (the registry
    /// was kept as it was).
    pub scan_failures: u64,
    /// Containers found whose row could not be made (`max_rows`
    /// exhausted, a map error): they stay pending.
    pub registration_failures: u64,
    /// Artifact reloads done, and refused.
    pub reloads: u64,
    /// Reloads refused (the current policy stayed).
    pub reloads_refused: u64,
    /// Nanoseconds from a container's cgroup to its registration, last
    /// and worst (from the first record that found it pending when there
    /// was one, else from the scan that found it).
    pub registration_window_ns: (u64, u64),
}

/// The probes and the policy they were loaded with.
pub struct Active {
    /// The loaded and attached probes.
    pub probes: Probes,
    /// The policy.
    pub policy: Policy,
    /// The artifact file's identity when it was read (to see a change).
    pub file_stamp: Option<load::FileStamp>,
}

/// The daemon.
pub struct Daemon {
    /// The configuration.
    pub config: Config,
    /// When containers' `/etc/passwd` files were last read again (boot
    /// clock): at most every [`PASSWD_REFRESH_NS`].
    passwd_read_at: u64,
    /// The probes in force.
    pub active: Active,
    /// Whether the BPF LSM is active (else: audit mode).
    pub lsm: bool,
    /// The node's facts.
    pub node: Node,
    /// The facts documents carry.
    pub facts: Facts,
    /// The kubepods roots registered.
    pub roots: Vec<KubepodsRoot>,
    /// The containers registered.
    pub registry: Registry,
    /// Cgroups found whose bundle is not readable yet, with when they
    /// were first seen pending (boot ns).
    pub waiting: BTreeMap<u64, u64>,
    /// The records' path to documents: the process cache, decisions in
    /// flight, containers' user names.
    pub pipeline: Pipeline,
    /// The selectors each row entry matched, by kind, dynamic class and
    /// row: explained once per policy (emptied when it changes, and when
    /// it grows past [`MAX_EXPLAINED`]).
    pub explained: std::cell::RefCell<HashMap<(Kind, u32, u32), Matched>>,
    /// Userspace counters.
    pub counters: Counters,
    /// A scan is due now (a pending container was seen).
    pub scan_due: bool,
    /// The cgroup mode.
    pub cgroup_mode: CgroupMode,
    /// The cgroup filesystem whose ids name containers.
    pub cgroupfs: PathBuf,
    /// The pin directory of the probes in force (`None`: not pinned, so
    /// enforcement ends with the daemon).
    pub pinned: Option<PathBuf>,
    /// The Kubernetes API's view (pod labels, cluster id), when enabled.
    pub kube: Option<crate::kube::Kube>,
    /// The Kubernetes view's generation last applied to the registry.
    pub kube_generation: u64,
    /// When the Kubernetes view was started (boot ns): a pod's labels are
    /// waited for from then at the earliest (containers older than the
    /// daemon get the whole wait too).
    pub kube_since: u64,
    /// New cgroups below the kubepods roots, as they are made (`None` when
    /// inotify is unavailable: the periodic scan alone finds them).
    pub watch: Option<crate::watch::CgroupWatch>,
    /// What the probes replaced by reloads had counted: added to the
    /// probes' own, so that the kernel's counters never go back.
    pub retired: Retired,
    /// The artifact file's stamp when it was last refused (`Some(None)`:
    /// it was missing): that version is not read again until the file
    /// changes (SIGHUP still retries it).
    pub refused_stamp: Option<Option<load::FileStamp>>,
    /// The rate limit of the logs of conditions that repeat every scan.
    pub throttle: crate::logging::Throttle,
}

/// The kernel counters and program statistics of probes no longer in
/// force (each reload replaces the probes, whose maps and programs start
/// from zero).
#[derive(Debug, Default, Clone)]
pub struct Retired {
    /// `d4c_counters`, by index.
    pub counters: Vec<u64>,
    /// Per program: times run, and nanoseconds run.
    pub programs: BTreeMap<String, (u64, u64)>,
}

impl Retired {
    /// Adds what `probes` counted.
    fn add(&mut self, probes: &Probes) {
        if let Ok(counters) = probes.counters() {
            self.counters.resize(self.counters.len().max(counters.len()), 0);
            for (sum, value) in self.counters.iter_mut().zip(counters) {
                *sum = sum.saturating_add(value);
            }
        }
        for program in probes.stats() {
            let entry = self.programs.entry(program.name).or_default();
            entry.0 = entry.0.saturating_add(program.run_count);
            entry.1 = entry.1.saturating_add(program.run_time_ns);
        }
    }
}

impl Daemon {
    /// Loads the artifact, the probes, the kubepods roots and the
    /// containers; attaches the probes. Errors say what failed and where.
    pub fn start(config: Config) -> Result<Daemon, String> {
        let (policy, tables, stamp) = load::load_configured(&config)?;
        let lsm = probes::bpf_lsm_active().unwrap_or(false);
        let (cgroupfs, cgroup_mode) = cgroup_hierarchy(&config)?;
        // The host's root through pid 1 (hostPID), else our own.
        let host_root =
            if config.host_root.join("etc").is_dir() { config.host_root.clone() } else { PathBuf::from("/") };
        let node = Node::read(&host_root);
        let agent_id = crate::facts::agent_id(config.agent_id.as_deref(), &node, &config.state_dir)?;
        let facts = Facts {
            agent_id,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            host: node.host_fields(config.node_name.as_deref(), None),
            cloud: None,
            cluster_id: config.cluster_id.clone(),
            cluster_name: config.cluster_name.clone(),
            namespace: config.namespace.clone(),
            policy_id: policy.name.clone(),
            policy_revision: policy.revision,
            policy_digest: policy.digest.clone(),
            boot_epoch_ns: crate::facts::boot_epoch_ns(),
            boot_id: node.boot_id.clone().unwrap_or_default(),
            fixed_json: Default::default(),
        };
        let probes = load_probes(&config, tables, lsm, cgroup_mode)?;
        let mut daemon = Daemon {
            pipeline: Pipeline::new(config.process_cache, config.proc_root.clone()),
            explained: Default::default(),
            config,
            active: Active { probes, policy, file_stamp: stamp },
            lsm,
            node,
            facts,
            roots: Vec::new(),
            registry: Registry::default(),
            waiting: BTreeMap::new(),
            counters: Counters::default(),
            scan_due: false,
            cgroup_mode,
            cgroupfs,
            pinned: None,
            kube: None,
            kube_generation: 0,
            kube_since: 0,
            retired: Retired::default(),
            refused_stamp: None,
            passwd_read_at: 0,
            throttle: crate::logging::Throttle::default(),
            watch: match crate::watch::CgroupWatch::new() {
                Ok(watch) => Some(watch),
                Err(error) => {
                    tracing::warn!(%error, "no inotify: new containers are found by the periodic scan only");
                    None
                }
            },
        };
        daemon.kube = start_kube(&daemon.config);
        daemon.kube_since = crate::facts::boot_ns();
        daemon.find_roots()?;
        daemon.scan();
        daemon.pinned = attach(&daemon.config, &mut daemon.active)?;
        Ok(daemon)
    }

    /// Finds and registers the kubepods roots.
    fn find_roots(&mut self) -> Result<(), String> {
        let roots = cgroup::find_kubepods_roots(&self.cgroupfs, cgroup::DEFAULT_MAX_DEPTH)?;
        for root in &roots {
            self.active.probes.add_kubepods_root(root.id).map_err(|e| e.to_string())?;
            if let Some(watch) = &mut self.watch {
                watch.watch_tree(&root.path);
            }
        }
        self.roots = roots;
        Ok(())
    }

    /// Scans the cgroup tree: registers new containers whose bundle can be
    /// read, forgets the ones gone.
    pub fn scan(&mut self) {
        self.counters.scans += 1;
        self.scan_due = false;
        self.refresh_from_kube();
        if self.roots.is_empty() {
            // kubelet may start after the daemon: look for the roots again.
            let _ = self.find_roots();
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
                self.counters.scan_failures += 1;
                if let Some(repeated) = self.throttle.admit("scan", now) {
                    tracing::error!(%error, repeated, "cannot read the cgroup tree; the containers known are kept");
                }
                return;
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
            let bundle = match containers::read_bundle(&self.config.bundle_patterns, &f.cgroup.container_id) {
                Ok(Some(bundle)) => bundle,
                Ok(None) => continue,
                Err(error) => {
                    self.bundle_error(f, &error, now);
                    continue;
                }
            };
            let mut metadata = Metadata {
                id: f.cgroup.container_id.clone(),
                runtime: containers::runtime_name(f.cgroup.runtime),
                pod_uid: f.cgroup.pod_uid.clone(),
                ..Metadata::default()
            };
            if let Err(problem) = containers::apply_annotations(&mut metadata, &bundle.config) {
                self.bundle_error(f, &format!("its bundle does not describe it: {problem}"), now);
                continue;
            }
            if let Some(kube) = &self.kube {
                match metadata.pod_uid.as_deref().and_then(|uid| kube.pod(uid)) {
                    Some(pod) => crate::kube::apply(&mut metadata, &pod),
                    // The pod's labels may decide its selectors: wait for
                    // them a little (the container stays pending, which
                    // fails closed), then register without them.
                    None if now.saturating_sub(first_seen.max(self.kube_since))
                        < self.config.kubernetes.label_wait.as_nanos() as u64 =>
                    {
                        continue;
                    }
                    None => {
                        tracing::warn!(container = %metadata.id, pod_uid = ?metadata.pod_uid,
                            "the pod is not in the Kubernetes API after the label wait: registered without its labels");
                    }
                }
            }
            // Its /etc/passwd, for user conditions: a container whose
            // names cannot be known stays pending when names decide.
            metadata.rootfs = bundle.rootfs();
            match metadata.rootfs.as_deref().map(crate::users::read_passwd) {
                Some(Ok(passwd)) => metadata.passwd = passwd,
                Some(Err(error)) if self.active.probes.tables().has_user_names() => {
                    self.bundle_error(f, &error, now);
                    continue;
                }
                None if self.active.probes.tables().has_user_names() => {
                    self.bundle_error(f, "its bundle names no root file system to read /etc/passwd from", now);
                    continue;
                }
                Some(Err(_)) | None => {}
            }
            let view = metadata.selector_view(self.facts.cluster_id.as_deref(), self.facts.cluster_name.as_deref());
            let users = users_of(self.active.probes.tables(), &metadata);
            match self.active.probes.add_container(f.cgroup_id, &view, &users) {
                Ok(row) => {
                    let window = now.saturating_sub(first_seen);
                    self.counters.registration_window_ns = (window, self.counters.registration_window_ns.1.max(window));
                    self.counters.containers_added += 1;
                    self.waiting.remove(&f.cgroup_id);
                    tracing::info!(
                        container = %metadata.id, pod = ?metadata.pod_name, namespace = ?metadata.namespace,
                        image = ?metadata.image, row, "container registered"
                    );
                    self.forget_logged(&metadata.id);
                    self.registry.insert(f.cgroup_id, metadata);
                    // Its processes so far: their executables and
                    // arguments are read now, while they run.
                    self.pipeline.processes.learn_cgroup(&f.path, f.cgroup_id);
                }
                Err(error) => {
                    self.counters.registration_failures += 1;
                    if let Some(repeated) = self.throttle.admit(&format!("register {}", metadata.id), now) {
                        tracing::error!(container = %metadata.id, %error, repeated,
                            "cannot register the container; it stays pending (fail closed)");
                    }
                }
            }
        }
        for gone in self.registry.retain_present(&found) {
            self.counters.containers_removed += 1;
            self.pipeline.users.forget(gone);
            if let Err(error) = self.active.probes.remove_cgroup(gone) {
                tracing::warn!(cgroup_id = gone, %error, "cannot remove a container's cgroup from the kernel");
            }
        }
        let present: HashSet<u64> = found.iter().map(|f| f.cgroup_id).collect();
        self.waiting.retain(|id, _| present.contains(id));
        if now.saturating_sub(self.passwd_read_at) >= PASSWD_REFRESH_NS {
            self.passwd_read_at = now;
            self.refresh_passwd();
        }
    }

    /// Reads every registered container's `/etc/passwd` again when user
    /// names decide, and moves a container whose file changed to the row
    /// its new names give: a user added or renamed is decided by its new
    /// name from the next such read on (at most [`PASSWD_REFRESH_NS`]
    /// later). A file that cannot be read now keeps
    /// what was known (the container may be ending).
    fn refresh_passwd(&mut self) {
        if !self.active.probes.tables().has_user_names() {
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
            let view = metadata.selector_view(self.facts.cluster_id.as_deref(), self.facts.cluster_name.as_deref());
            let users = users_of(self.active.probes.tables(), &metadata);
            match self.active.probes.add_container(cgroup_id, &view, &users) {
                Ok(row) => {
                    tracing::info!(container = %metadata.id, row, "the container's /etc/passwd changed: its users' rows follow");
                    // The documents' names are read again too: a document
                    // names the user its decision matched.
                    self.pipeline.users.forget(cgroup_id);
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
    fn bundle_error(&mut self, found: &containers::Found, error: &str, now: u64) {
        self.counters.bundle_errors += 1;
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
    fn refresh_from_kube(&mut self) {
        let Some(kube) = &self.kube else { return };
        let generation = kube.generation();
        if generation == self.kube_generation {
            return;
        }
        self.kube_generation = generation;
        // The cluster id is a container condition: when it arrives (or
        // changes), every container's row is made again.
        let mut cluster_changed = false;
        if self.config.cluster_id.is_none() {
            let cluster_id = kube.cluster_id();
            cluster_changed = cluster_id != self.facts.cluster_id;
            self.facts.cluster_id = cluster_id;
        }
        if let Some(api) = kube.node() {
            let host = self.node.host_fields(self.config.node_name.as_deref(), Some(&api));
            let cloud = crate::facts::cloud_fields(&api);
            if (&host, &cloud) != (&self.facts.host, &self.facts.cloud) {
                self.facts.host = host;
                self.facts.cloud = cloud;
                self.facts.fixed_json.forget_node();
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
            let view = metadata.selector_view(self.facts.cluster_id.as_deref(), self.facts.cluster_name.as_deref());
            let users = users_of(self.active.probes.tables(), &metadata);
            match self.active.probes.add_container(cgroup_id, &view, &users) {
                Ok(_) => {
                    self.registry.insert(cgroup_id, metadata);
                }
                Err(error) => {
                    tracing::error!(%error, "cannot update a container's row after its pod or the cluster id changed");
                }
            }
        }
    }

    /// Reads the cgroup watch; whether a cgroup was made below a kubepods
    /// root since the last read (then a scan is due).
    pub fn watch_events(&mut self) -> bool {
        self.watch.as_mut().is_some_and(crate::watch::CgroupWatch::read)
    }

    /// Drains the ring buffer into documents; then what has waited too
    /// long for its outcome comes out. Returns the records drained (the VM
    /// suite checks them beside their documents).
    pub fn drain(&mut self, out: &mut Vec<Document>) -> Vec<Record> {
        let records = match self.active.probes.drain() {
            Ok(records) => records,
            Err(error) => {
                self.counters.bad_records += 1;
                tracing::error!(%error, "cannot read the ring buffer");
                Vec::new()
            }
        };
        self.handle_all(&records, out);
        records
    }

    /// Records, in ring buffer order: each decoded, then through the
    /// pipeline; then what has waited too long for its outcome comes out.
    /// A record of a container whose metadata is pending makes a scan due.
    pub fn handle_all(&mut self, records: &[Record], out: &mut Vec<Document>) {
        let mut pending = Vec::new();
        self.with_context(|pipeline, cx| {
            for record in records {
                let event = crate::event::decode(record);
                let task = event.task();
                if task.pending {
                    pending.push((task.cgroup_id, task.ktime_ns));
                }
                pipeline.event(event, cx, out);
            }
            pipeline.expire(cx, out);
        });
        if let Some((cgroup_id, ktime_ns)) = pending.first().copied().filter(|_| !self.scan_due) {
            self.scan_due = true;
            self.waiting.entry(cgroup_id).or_insert(ktime_ns);
        }
    }

    /// One record (see [`Daemon::handle_all`]).
    pub fn handle(&mut self, record: &Record, out: &mut Vec<Document>) {
        self.handle_all(std::slice::from_ref(record), out);
    }

    /// Every decision still waiting for its outcome comes out (the daemon
    /// stops).
    pub fn flush(&mut self, out: &mut Vec<Document>) {
        self.with_context(|pipeline, cx| pipeline.flush(cx, out));
    }

    /// Runs `f` on the pipeline with a [`Context`] of now.
    fn with_context(&mut self, f: impl FnOnce(&mut Pipeline, &Context<'_>)) {
        let Daemon { pipeline, active, registry, facts, lsm, explained, config, .. } = self;
        let pending_mode = config.pending;
        let probes = &active.probes;
        let explain = |d: &Decision| {
            let key = (d.kind(), d.dyn_class, d.row);
            let mut memo = explained.borrow_mut();
            if let Some(names) = memo.get(&key) {
                return Matched::clone(names);
            }
            if memo.len() >= MAX_EXPLAINED {
                memo.clear();
            }
            let names: Matched =
                selector_names(probes.tables(), d, probes.explain(d.kind(), d.dyn_class, d.row)).into();
            memo.insert(key, Matched::clone(&names));
            names
        };
        let audit = |event: &Event, process: &Process| {
            audit_decision(probes.tables(), pending_mode, registry, facts, event, process)
        };
        let cx = Context {
            facts,
            containers: registry,
            explain: &explain,
            audit: if *lsm { None } else { Some(&audit) },
            now_ns: crate::facts::boot_ns(),
            created_ns: crate::facts::realtime_ns(),
        };
        f(pipeline, &cx);
    }

    /// Whether the artifact file changed since it was loaded, into a
    /// version not already refused (see [`load::artifact_due`]).
    pub fn artifact_changed(&self) -> bool {
        let Some(path) = &self.config.artifact else { return false };
        load::artifact_due(load::file_stamp(path), self.active.file_stamp, self.refused_stamp)
    }

    /// Loads the artifact again and switches to it without a gap: the new
    /// probes are loaded, given every root and container, and attached
    /// while the old ones still run; then the old ones are drained and
    /// detached. During the overlap an operation is decided by both and
    /// refused if either refuses, so no decision ever sees half of each
    /// policy and none goes undecided. A bad artifact is refused and the
    /// current policy stays. Returns the documents of the old probes' last
    /// records.
    ///
    /// The refused file's stamp is remembered: [`Daemon::artifact_changed`]
    /// does not offer that version again, so it is read, logged and
    /// counted once, not at every check.
    pub fn reload(&mut self, out: &mut Vec<Document>) -> Result<(), String> {
        // Stamped before the read, as `load_configured` does: a change
        // during the read is a new version.
        let stamp = self.config.artifact.as_deref().and_then(load::file_stamp);
        let result = self.try_reload(out);
        match &result {
            Ok(()) => {
                self.counters.reloads += 1;
                self.refused_stamp = None;
            }
            Err(error) => {
                self.refused_stamp = Some(stamp);
                self.counters.reloads_refused += 1;
                tracing::error!(%error, revision = self.active.policy.revision, "reload refused; the current policy stays");
            }
        }
        result
    }

    fn try_reload(&mut self, out: &mut Vec<Document>) -> Result<(), String> {
        let (policy, tables, stamp) = load::load_configured(&self.config)?;
        let mut probes = load_probes(&self.config, tables, self.lsm, self.cgroup_mode)?;
        for root in &self.roots {
            probes.add_kubepods_root(root.id).map_err(|e| e.to_string())?;
        }
        for (cgroup_id, metadata) in self.registry.iter() {
            let view = metadata.selector_view(self.facts.cluster_id.as_deref(), self.facts.cluster_name.as_deref());
            let users = users_of(probes.tables(), metadata);
            probes.add_container(*cgroup_id, &view, &users).map_err(|e| e.to_string())?;
        }
        let mut active = Active { probes, policy, file_stamp: stamp };
        let pinned = attach(&self.config, &mut active)?;
        // Both attached: drain the old probes' last records with the old
        // policy's facts, then let them go.
        self.drain(out);
        let old = std::mem::replace(&mut self.active, active);
        self.explained.get_mut().clear();
        self.retired.add(&old.probes);
        drop(old);
        self.pinned = pinned;
        self.facts.policy_id = self.active.policy.name.clone();
        self.facts.policy_revision = self.active.policy.revision;
        self.facts.policy_digest = self.active.policy.digest.clone();
        self.facts.fixed_json.forget_policy();
        tracing::info!(
            policy = %self.active.policy.name, revision = self.active.policy.revision,
            digest = %self.active.policy.digest, "policy reloaded"
        );
        Ok(())
    }

    /// The kernel's counters since the daemon started, by index (the
    /// probes in force and those replaced by reloads).
    pub fn kernel_counters(&self) -> Result<Vec<u64>, String> {
        let mut counters = self.active.probes.counters().map_err(|e| e.to_string())?;
        for (value, retired) in counters.iter_mut().zip(&self.retired.counters) {
            *value = value.saturating_add(*retired);
        }
        Ok(counters)
    }

    /// Every program's statistics since the daemon started (runs and run
    /// time of replaced probes included).
    pub fn program_stats(&self) -> Vec<probes::ProgramStats> {
        let mut stats = self.active.probes.stats();
        for program in &mut stats {
            if let Some((runs, ns)) = self.retired.programs.get(&program.name) {
                program.run_count = program.run_count.saturating_add(*runs);
                program.run_time_ns = program.run_time_ns.saturating_add(*ns);
            }
        }
        stats
    }

    /// The start-up report: which capabilities are active on this kernel,
    /// in one readable block.
    pub fn report(&self, delivery: &str) -> String {
        let policy = &self.active.policy;
        let stats = self.active.probes.stats();
        let verified: u64 = stats.iter().filter_map(|s| s.verified_instructions).map(u64::from).sum();
        let mode = match (self.lsm, self.config.enforce) {
            (true, true) => "ENFORCING: blocking responses refuse operations".to_owned(),
            (true, false) => "audit (enforce = false in the configuration): nothing is blocked".to_owned(),
            (false, _) => "AUDIT ONLY: the BPF LSM is not active on this kernel (`bpf` is not in \
                           /sys/kernel/security/lsm; boot with lsm=...,bpf). File operations are not seen, \
                           process events are reported, NOTHING IS BLOCKED"
                .to_owned(),
        };
        format!(
            "d4c-runtime {} on {} (Linux {}, {})\n\
             \x20 policy      {} revision {} (sha256 {}), {}\n\
             \x20 mode        {}\n\
             \x20 probes      {} programs loaded, {} instructions verified{}\n\
             \x20 cgroups     {:?} at {}, {} kubepods root(s)\n\
             \x20 containers  {} registered, {} pending\n\
             \x20 pending     {:?}\n\
             \x20 pinned      {}\n\
             \x20 kubernetes  {}\n\
             \x20 delivery    {}\n\
             \x20 endpoints   http://{}/metrics /healthz /readyz",
            env!("CARGO_PKG_VERSION"),
            self.config.node_name.as_deref().or(self.node.hostname.as_deref()).unwrap_or("?"),
            self.node.kernel.as_deref().unwrap_or("?"),
            self.node.architecture,
            escape_control(&policy.name),
            policy.revision,
            policy.digest.get(..16).unwrap_or(&policy.digest),
            if policy.signed { "signature checked" } else { "unsigned (no --trusted-key)" },
            mode,
            stats.len(),
            verified,
            absent_hooks(self.active.probes.absent_hooks()),
            self.cgroup_mode,
            self.cgroupfs.display(),
            self.roots.len(),
            self.registry.len(),
            self.waiting.len(),
            self.config.pending,
            match &self.pinned {
                Some(dir) => format!("yes, at {}: enforcement outlives the daemon", dir.display()),
                None => "NO: enforcement ends when the daemon does".to_owned(),
            },
            match (&self.kube, self.config.node_name.as_deref()) {
                (Some(_), Some(node)) => format!("watching the pods of node {node} (labels, cluster id)"),
                _ => "off: metadata from bundles only (no pod labels, no cluster id)".to_owned(),
            },
            delivery,
            self.config.listen,
        )
    }
}

/// The optional LSM hooks this kernel lacks and the optional tracepoints
/// it refused, and what stands in for each, for the start-up report
/// (empty when none).
fn absent_hooks(absent: &[&str]) -> String {
    use d4c_kernel_probes::probes::{OPTIONAL_LSM_HOOKS, OPTIONAL_TRACEPOINTS};
    absent
        .iter()
        .map(|hook| match OPTIONAL_TRACEPOINTS.iter().find(|(h, _)| h == hook) {
            Some((_, why)) => format!("; not attached: {hook} ({why})"),
            None => {
                let instead = OPTIONAL_LSM_HOOKS.iter().find(|(h, _)| h == hook).map_or("", |(_, why)| *why);
                format!("; not in this kernel: {hook} ({instead})")
            }
        })
        .collect()
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

/// Attaches `active`'s probes, pinned in a new generation directory below
/// the configured pin directory when there is one; then removes every
/// other generation (the probes of a crashed or upgraded daemon, or of
/// the policy just replaced): make before break, so enforcement never
/// lapses. When pinning is impossible (no bpffs), the probes are attached
/// unpinned and the daemon says so: enforcement then ends with it.
fn attach(config: &Config, active: &mut Active) -> Result<Option<PathBuf>, String> {
    if config.pin_dir.as_os_str().is_empty() {
        active.probes.attach().map_err(|e| e.to_string())?;
        return Ok(None);
    }
    if let Err(error) = probes::ensure_bpffs() {
        tracing::warn!(%error, "no BPF file system at /sys/fs/bpf: the probes are NOT pinned, and enforcement ends with the daemon");
        active.probes.attach().map_err(|e| e.to_string())?;
        return Ok(None);
    }
    let generation = config.pin_dir.join(format!("rev{}-{}", active.policy.revision, crate::facts::boot_ns()));
    active.probes.attach_pinned(&generation).map_err(|e| e.to_string())?;
    let others: Vec<PathBuf> = std::fs::read_dir(&config.pin_dir)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| *p != generation).collect())
        .unwrap_or_default();
    for old in others {
        match probes::unpin_all(&old) {
            Ok(n) => tracing::info!(pins = n, dir = %old.display(), "earlier probes detached"),
            Err(error) => tracing::error!(%error, "cannot remove earlier probes' pins"),
        }
    }
    Ok(Some(generation))
}

/// Removes every pinned probe below the configured pin directory
/// (`d4c-runtime --uninstall`): enforcement ends. Returns how many links
/// were removed.
pub fn uninstall(config: &Config) -> Result<usize, String> {
    if config.pin_dir.as_os_str().is_empty() {
        return Ok(0);
    }
    probes::unpin_all(&config.pin_dir).map_err(|e| e.to_string())
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

/// Loads (verifies) the probes for `policy`; enforcement only with the BPF
/// LSM and `enforce`.
fn load_probes(
    config: &Config,
    tables: d4c_artifact::eval::Tables,
    lsm: bool,
    cgroup_mode: CgroupMode,
) -> Result<Probes, String> {
    let settings = Settings {
        enforce: lsm && config.enforce,
        cgroup_mode,
        max_rows: config.max_rows,
        pending: match config.pending {
            PendingMode::FailClosed => Pending::FailClosed,
            PendingMode::NoContainerConditions => Pending::NoContainerConditions,
        },
        lsm,
    };
    Probes::load(tables, settings).map_err(|e| e.to_string())
}

/// Row entries whose matched selectors are kept explained, at most.
pub const MAX_EXPLAINED: usize = 65_536;

/// The names of the selectors of `decision`'s kind, by index.
fn selector_names(tables: &Tables, decision: &Decision, indices: impl IntoIterator<Item = usize>) -> Vec<String> {
    let selectors = &tables.kind(decision.kind()).selectors;
    indices.into_iter().filter_map(|i| selectors.get(i).map(|s| s.name.clone())).collect()
}

/// Audit mode (no BPF LSM): the decision the kernel would have made of a
/// fork or an exec that happened, made here with the table evaluator from
/// its lifecycle event and the process it describes (the forker, or the
/// new program), without `block` (nothing was refused). `None` when no
/// response fires.
///
/// A task whose container was pending when the kernel saw it (its
/// metadata unknown, or its bundle undescribable) is decided as the
/// kernel decides it, by the pending row of `pending` (issue 14: it was
/// decided as a container with no metadata, which no namespace- or
/// image-scoped selector matches); a registered one by its metadata; a
/// host task as a container with no metadata.
fn audit_decision(
    tables: &Tables,
    pending: PendingMode,
    registry: &Registry,
    facts: &Facts,
    event: &Event,
    process: &Process,
) -> Option<Decided> {
    let (operation, name, args) = match event {
        Event::Fork(fork) => (Operation::Fork, fork.task.comm, None),
        Event::Exec(exec) => (Operation::Exec, exec.name, Some(crate::event::Args::new(&process.args))),
        _ => return None,
    };
    let task = event.task();
    let executable = process.executable.clone().unwrap_or_default();
    let table_event = TableEvent::Process(ProcessEvent {
        operation,
        executable: executable.clone(),
        name: name.text(),
        interactive: task.interactive,
        user: user_of(tables, registry.get(task.cgroup_id), task.euid),
    });
    let verdict = if task.pending {
        pending_verdict(tables, pending, &table_event)
    } else {
        let container = match registry.get(task.cgroup_id) {
            Some(m) => m.selector_view(facts.cluster_id.as_deref(), facts.cluster_name.as_deref()),
            None => d4c_artifact::event::Container::default(),
        };
        tables.decide(&container, &table_event)
    };
    let actions = Actions::from_bits(verdict.actions.bits() & !Actions::BLOCK.bits());
    if actions.is_empty() {
        return None;
    }
    let decision = Decision::audit_of(task.clone(), operation, actions, executable, name, args);
    let matched = selector_names(tables, &decision, verdict.matched).into();
    Some(Decided { decision, matched })
}

/// How often registered containers' `/etc/passwd` files are read again
/// when user names decide (boot clock): a second.
pub const PASSWD_REFRESH_NS: u64 = 1_000_000_000;

/// The users of `metadata`'s container whose rows may differ from its own
/// (`Tables::named_users` over its `/etc/passwd`).
fn users_of(tables: &Tables, metadata: &Metadata) -> Vec<User> {
    tables.named_users(metadata.passwd.iter().map(|(id, name)| (*id, name.as_str())))
}

/// The user with effective uid `euid` in `metadata`'s container, as the
/// kernel's rows see it: named when a user condition can name it there,
/// else a user no condition names.
fn user_of(tables: &Tables, metadata: Option<&Metadata>, euid: u32) -> User {
    metadata
        .filter(|_| tables.has_user_conditions())
        .and_then(|m| users_of(tables, m).into_iter().find(|u| u.id == euid))
        .unwrap_or(User { id: euid, name: None })
}

/// The verdict of the pending row (what the probes write for
/// [`Pending`]) on `event`: fail closed, every action any container could
/// get, explained as any container's could be (every container condition
/// taken as holding, as [`Probes::explain`] does); or only the selectors
/// without container conditions.
fn pending_verdict(tables: &Tables, pending: PendingMode, event: &TableEvent) -> Verdict {
    let (kind, class) = tables.dynamic_class(event);
    let members = match kind {
        Kind::File => tables.file_dyn_members(class),
        Kind::Process => tables.process_dyn_members(class),
    };
    match pending {
        PendingMode::FailClosed => {
            let mut verdict = tables.row_entry(kind, &members, &vec![true; members.len()]);
            verdict.actions =
                tables.row_for_unknown_container(kind).get(class as usize).copied().unwrap_or(Actions::NONE);
            verdict
        }
        PendingMode::NoContainerConditions => tables.row_entry(kind, &members, &tables.unconditional_selectors(kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use d4c_kernel_probes::abi::EV_PENDING;

    /// The tables of `policy`, compiled as `d4cc compile` does.
    fn tables(policy: &str) -> Result<Tables, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = load::testing::compile(dir.path(), policy)?;
        load::load(&path, None).map(|(_, tables)| tables).map_err(|e| e.to_string())
    }

    /// Regression (issue 14, fault 3): in audit mode, a pending
    /// container's exec was decided as a container with no metadata, so a
    /// namespace-scoped alert never fired for it, while the kernel's
    /// pending row (fail closed) has it. It is now decided by the pending
    /// row of the configured mode.
    #[test]
    fn audit_mode_decides_pending_containers_by_the_pending_row() -> Result<(), String> {
        let tables = tables(
            "process:\n  selectors:\n    - name: prodTrue\n      operation: [exec]\n      kubernetesNamespace: [prod]\n      \
             processExecutable: [/bin/true]\n  responses:\n    - match: [prodTrue]\n      actions: [alert]\n",
        )?;
        let mut record = crate::event::encode::exec(42, "/bin/true", "true", Some(&["true"]));
        record.head.flags |= EV_PENDING;
        let event = crate::event::decode(&record);
        let process = Process { executable: Some("/bin/true".into()), args: vec!["true".into()], ..Process::default() };
        let (registry, facts) = (Registry::default(), Facts::default());
        let decided = |mode| audit_decision(&tables, mode, &registry, &facts, &event, &process);
        let fail_closed = decided(PendingMode::FailClosed).ok_or("a pending container's exec was not alerted")?;
        assert!(fail_closed.decision.actions.contains(Actions::ALERT), "{:?}", fail_closed.decision.actions);
        assert_eq!(fail_closed.matched.to_vec(), ["prodTrue"]);
        // The mode without container conditions has no selector for it.
        assert!(decided(PendingMode::NoContainerConditions).is_none());
        Ok(())
    }
}
