//! The daemon's view of the Kubernetes API: this node's pods (labels,
//! annotations, IPs, owner kind), the cluster id, and the node's facts.
//!
//! In: a [`KubeConfig`] and this node's name. Out: a [`Kube`] handle that
//! background tasks keep current, read by synchronous code (the daemon's
//! container scan) without waiting on the network; [`apply`] copies a pod's
//! facts into a container's [`Metadata`].
//!
//! What is asked of the API server, and so all the RBAC the daemon needs:
//! list and watch of pods with the field selector `spec.nodeName=<node>`,
//! get of the namespace `kube-system` (its uid is the cluster id, as the
//! original agent reports it), and, optionally, get of this node.
//!
//! Invariants:
//! - only this node's pods are watched, so memory and API server load grow
//!   with the node's pod count, never with the cluster's;
//! - readers never block on the network: they take a `std` read lock that
//!   writers hold only to swap in values already built;
//! - a failed request or watch is logged with `tracing::warn!` and retried
//!   with kube's default backoff (0.8 s doubling to 30 s); no task panics or
//!   ends because of the API server;
//! - [`Kube::generation`] grows whenever anything a reader can see changes
//!   (a pod's facts, the set of pods, the cluster id, the node's facts, the
//!   first sync), and is bumped after the change is visible, so a reader
//!   that saw a generation sees at least the data of that generation.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ::kube::runtime::watcher::{self, DefaultBackoff, Event};
use ::kube::runtime::WatchStreamExt;
use ::kube::{Api, Client};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::containers::Metadata;

/// The environment variable Kubernetes sets in every pod: its presence
/// means "running in a cluster".
pub const SERVICE_HOST_VAR: &str = "KUBERNETES_SERVICE_HOST";

/// The namespace whose uid is the cluster id.
pub const CLUSTER_ID_NAMESPACE: &str = "kube-system";

/// The default of [`KubeConfig::label_wait`].
pub const DEFAULT_LABEL_WAIT: Duration = Duration::from_secs(2);

/// The annotation `kubectl apply` writes: a copy of the whole manifest,
/// often kilobytes, and no fact about the pod. It is not kept.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The most of a pod's labels, and of its annotations, a container's
/// documents carry, and the most bytes of each key and value: together
/// at most about 2 MiB, a quarter of the smallest `max_document_bytes`
/// a document is refused at (8 MiB by default). The API server holds
/// annotations to 256 KiB in all, but the daemon does not trust that: one
/// 12 MiB annotation made every document of its container too large to
/// send, its alerts too (issue 14).
const MAX_POD_ENTRIES: usize = 256;
const MAX_POD_TEXT_BYTES: usize = 4096;

/// `entries` as documents carry them: the first [`MAX_POD_ENTRIES`] by key,
/// each key and value cut to [`MAX_POD_TEXT_BYTES`] with a note of how
/// many bytes were left out.
fn bounded(entries: BTreeMap<String, String>) -> BTreeMap<String, String> {
    entries.into_iter().take(MAX_POD_ENTRIES).map(|(k, v)| (cut(k), cut(v))).collect()
}

/// `text`, or its first bytes (at a character boundary) and `…(N bytes
/// more)` when it is over [`MAX_POD_TEXT_BYTES`].
fn cut(mut text: String) -> String {
    if text.len() <= MAX_POD_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_POD_TEXT_BYTES - 32;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let more = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("…({more} bytes more)"));
    text
}

/// The longest wait between retries when kube's backoff gives none (it
/// always does today; this only keeps the loop bounded if that changes).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// The `[kubernetes]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubeConfig {
    /// Whether to ask the Kubernetes API. `None` (the default): yes when
    /// running in a pod (`KUBERNETES_SERVICE_HOST` is set) or when
    /// `kubeconfig` is given.
    pub enabled: Option<bool>,
    /// A kubeconfig file, for running outside a cluster; unset: the pod's
    /// service account (token and CA under
    /// `/var/run/secrets/kubernetes.io/serviceaccount`).
    pub kubeconfig: Option<PathBuf>,
    /// How long a new container may wait for its pod to appear in the watch
    /// before it is registered without the pod's labels (`"2s"`, `"500ms"`).
    /// Read by the daemon, not here.
    #[serde(deserialize_with = "crate::delivery::config::duration")]
    pub label_wait: Duration,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig { enabled: None, kubeconfig: None, label_wait: DEFAULT_LABEL_WAIT }
    }
}

impl KubeConfig {
    /// Whether the API is to be asked, with "in a cluster" read from this
    /// process's environment.
    pub fn is_enabled(&self) -> bool {
        self.is_enabled_in(std::env::var_os(SERVICE_HOST_VAR).is_some_and(|v| !v.is_empty()))
    }

    /// Whether the API is to be asked, given whether the process runs in a
    /// cluster: `enabled` when set, else `in_cluster` or a `kubeconfig`.
    pub fn is_enabled_in(&self, in_cluster: bool) -> bool {
        self.enabled.unwrap_or(in_cluster || self.kubeconfig.is_some())
    }
}

/// What the daemon keeps of one of this node's pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// `metadata.uid`, the map's key (with dashes, as the API writes it).
    pub uid: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`, less `kubectl.kubernetes.io/last-applied-configuration`.
    pub annotations: BTreeMap<String, String>,
    /// `status.podIPs` (else `status.podIP`), in the API's order; empty
    /// until the pod has a network.
    pub ips: Vec<String>,
    /// The kind of the pod's controller (`ReplicaSet`, `DaemonSet`, `Job`,
    /// ...): the owner reference marked `controller`, else the first one;
    /// `None` for a bare pod.
    pub owner_kind: Option<String>,
}

impl PodInfo {
    /// The facts of `pod`; `None` when it has no uid (the API server always
    /// sets one, so only a malformed object lacks it).
    pub fn from_pod(pod: &Pod) -> Option<PodInfo> {
        let meta = &pod.metadata;
        let uid = meta.uid.clone().filter(|uid| !uid.is_empty())?;
        let mut annotations = meta.annotations.clone().unwrap_or_default();
        annotations.remove(LAST_APPLIED);
        let status = pod.status.as_ref();
        let mut ips: Vec<String> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().map(|ip| ip.ip.clone()).filter(|ip| !ip.is_empty()).collect())
            .unwrap_or_default();
        if ips.is_empty() {
            ips.extend(status.and_then(|s| s.pod_ip.clone()).filter(|ip| !ip.is_empty()));
        }
        let owners = meta.owner_references.as_deref().unwrap_or_default();
        let owner = owners.iter().find(|o| o.controller == Some(true)).or_else(|| owners.first());
        Some(PodInfo {
            uid,
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            labels: bounded(meta.labels.clone().unwrap_or_default()),
            annotations: bounded(annotations),
            ips,
            owner_kind: owner.map(|o| o.kind.clone()),
        })
    }
}

/// Copies `pod`'s facts into a container's `metadata`: labels, annotations,
/// IPs and owner kind (`parent_type`) are replaced; the pod's name and
/// namespace fill `pod_name` and `namespace` only where the bundle gave
/// none (the runtime's bundle is read first and wins).
pub fn apply(metadata: &mut Metadata, pod: &PodInfo) {
    metadata.labels = pod.labels.clone();
    metadata.pod_annotations = pod.annotations.clone();
    metadata.pod_ips = pod.ips.clone();
    metadata.parent_type = pod.owner_kind.clone();
    if metadata.pod_name.is_none() && !pod.name.is_empty() {
        metadata.pod_name = Some(pod.name.clone());
    }
    if metadata.namespace.is_none() && !pod.namespace.is_empty() {
        metadata.namespace = Some(pod.namespace.clone());
    }
}

/// One of a node's addresses (`status.addresses`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddress {
    /// `InternalIP`, `ExternalIP`, `Hostname`, `InternalDNS` or
    /// `ExternalDNS`.
    pub kind: String,
    /// The address.
    pub address: String,
}

/// This node's facts from its Node object, for `host.*`. Fields the API
/// left empty are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: String,
    /// `status.nodeInfo.kernelVersion`, e.g. `6.8.0-1015-aws`.
    pub kernel_version: Option<String>,
    /// `status.nodeInfo.osImage`, e.g. `Ubuntu 24.04.1 LTS`.
    pub os_image: Option<String>,
    /// `status.nodeInfo.operatingSystem`, e.g. `linux`.
    pub operating_system: Option<String>,
    /// `status.nodeInfo.architecture`, e.g. `amd64`.
    pub architecture: Option<String>,
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet_version: Option<String>,
    /// `status.nodeInfo.containerRuntimeVersion`, e.g. `containerd://1.7.2`.
    pub container_runtime_version: Option<String>,
    /// `status.addresses`, in the API's order.
    pub addresses: Vec<NodeAddress>,
    /// `metadata.labels` (`topology.kubernetes.io/zone`, ...).
    pub labels: BTreeMap<String, String>,
    /// `spec.providerID`, e.g. `aws:///eu-west-1a/i-0abc` or
    /// `gce://project/zone/name`.
    pub provider_id: Option<String>,
}

impl NodeInfo {
    /// The facts of `node`.
    pub fn from_node(node: &Node) -> NodeInfo {
        let status = node.status.as_ref();
        let info = status.and_then(|s| s.node_info.as_ref());
        let text = |f: fn(&k8s_openapi::api::core::v1::NodeSystemInfo) -> &String| {
            info.map(f).filter(|v| !v.is_empty()).cloned()
        };
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            kernel_version: text(|i| &i.kernel_version),
            os_image: text(|i| &i.os_image),
            operating_system: text(|i| &i.operating_system),
            architecture: text(|i| &i.architecture),
            kubelet_version: text(|i| &i.kubelet_version),
            container_runtime_version: text(|i| &i.container_runtime_version),
            addresses: status
                .and_then(|s| s.addresses.as_ref())
                .map(|a| a.iter().map(|a| NodeAddress { kind: a.type_.clone(), address: a.address.clone() }).collect())
                .unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            provider_id: node.spec.as_ref().and_then(|s| s.provider_id.clone()).filter(|p| !p.is_empty()),
        }
    }

    /// The node's IP addresses (`InternalIP`, `ExternalIP`), in the API's
    /// order: `host.ip`.
    pub fn ips(&self) -> Vec<&str> {
        self.addresses
            .iter()
            .filter(|a| a.kind == "InternalIP" || a.kind == "ExternalIP")
            .map(|a| a.address.as_str())
            .collect()
    }

    /// The node's `Hostname` address: `host.hostname`.
    pub fn hostname(&self) -> Option<&str> {
        self.addresses.iter().find(|a| a.kind == "Hostname").map(|a| a.address.as_str())
    }
}

/// What failed while setting up or asking the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeError {
    /// No node name: the pod watch needs it (set `NODE_NAME` from the
    /// downward API's `spec.nodeName`).
    NoNodeName,
    /// Not called inside a tokio runtime.
    NoRuntime,
    /// The client's configuration could not be loaded.
    Config {
        /// Where it was read from: the kubeconfig's path, or the service
        /// account.
        source: String,
        /// Why.
        reason: String,
    },
    /// The client could not be built for the API server at `url`.
    Client {
        /// The API server's URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A request to the API failed.
    Request {
        /// The request: method and URL.
        url: String,
        /// The HTTP status the API server answered, when it answered.
        status: Option<u16>,
        /// The API server's reason and message, or the transport's error.
        reason: String,
    },
}

impl KubeError {
    /// A client error of the request `url` (method and URL).
    fn request(url: &str, error: &::kube::Error) -> KubeError {
        match error {
            ::kube::Error::Api(response) => KubeError::Request {
                url: url.to_owned(),
                status: Some(response.code),
                reason: api_reason(&response.reason, &response.message),
            },
            other => KubeError::Request { url: url.to_owned(), status: None, reason: other.to_string() },
        }
    }

    /// A watcher error of the watch `url`.
    fn watch(url: &str, error: &watcher::Error) -> KubeError {
        match error {
            watcher::Error::InitialListFailed(e)
            | watcher::Error::WatchStartFailed(e)
            | watcher::Error::WatchFailed(e) => KubeError::request(url, e),
            watcher::Error::WatchError(response) => KubeError::Request {
                url: url.to_owned(),
                status: Some(response.code),
                reason: api_reason(&response.reason, &response.message),
            },
            watcher::Error::NoResourceVersion => KubeError::Request {
                url: url.to_owned(),
                status: None,
                reason: "the answer has no `metadata.resourceVersion`".to_owned(),
            },
        }
    }

    /// The HTTP status of a failed request.
    pub fn status(&self) -> Option<u16> {
        match self {
            KubeError::Request { status, .. } => *status,
            _ => None,
        }
    }
}

fn api_reason(reason: &str, message: &str) -> String {
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => format!("{reason}: {message}"),
        (false, true) => reason.to_owned(),
        _ => message.to_owned(),
    }
}

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubeError::NoNodeName => {
                write!(f, "no node name to watch this node's pods: set `NODE_NAME` from the pod's `spec.nodeName`")
            }
            KubeError::NoRuntime => write!(f, "the Kubernetes client must be started inside a tokio runtime"),
            KubeError::Config { source, reason } => {
                write!(f, "cannot load the Kubernetes client configuration from {source}: {reason}")
            }
            KubeError::Client { url, reason } => {
                write!(f, "cannot make a Kubernetes client for `{url}`: {reason}")
            }
            KubeError::Request { url, status: Some(status), reason } => write!(f, "{url}: status {status}: {reason}"),
            KubeError::Request { url, status: None, reason } => write!(f, "{url}: {reason}"),
        }
    }
}

impl std::error::Error for KubeError {}

/// The state the tasks write and the readers read.
#[derive(Debug, Default)]
struct Shared {
    /// This node's pods by uid.
    pods: Arc<RwLock<HashMap<String, PodInfo>>>,
    cluster_id: RwLock<Option<String>>,
    node: RwLock<Option<NodeInfo>>,
    synced: AtomicBool,
    generation: AtomicU64,
}

impl Shared {
    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Applies one watcher event. `relist` buffers a (re)list between
    /// `Init` and `InitDone`, so readers keep the previous map until the new
    /// one is whole.
    fn pod_event(&self, event: Event<Pod>, relist: &mut Option<HashMap<String, PodInfo>>) {
        match event {
            Event::Init => *relist = Some(HashMap::new()),
            Event::InitApply(pod) => {
                if let Some(info) = PodInfo::from_pod(&pod) {
                    relist.get_or_insert_with(HashMap::new).insert(info.uid.clone(), info);
                }
            }
            Event::InitDone => {
                let pods = relist.take().unwrap_or_default();
                let changed = {
                    let mut map = self.pods.write().unwrap_or_else(PoisonError::into_inner);
                    let changed = *map != pods;
                    *map = pods;
                    changed
                };
                let first = !self.synced.swap(true, Ordering::AcqRel);
                if changed || first {
                    self.bump();
                }
            }
            Event::Apply(pod) => {
                let Some(info) = PodInfo::from_pod(&pod) else { return };
                let changed = {
                    let mut map = self.pods.write().unwrap_or_else(PoisonError::into_inner);
                    if map.get(&info.uid) == Some(&info) {
                        false
                    } else {
                        map.insert(info.uid.clone(), info);
                        true
                    }
                };
                if changed {
                    self.bump();
                }
            }
            Event::Delete(pod) => {
                let Some(uid) = pod.metadata.uid else { return };
                let removed = self.pods.write().unwrap_or_else(PoisonError::into_inner).remove(&uid).is_some();
                if removed {
                    self.bump();
                }
            }
        }
    }
}

/// The daemon's handle on the Kubernetes API. Background tasks keep it
/// current; dropping it stops them.
#[derive(Debug)]
pub struct Kube {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Kube {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Kube {
    /// Connects to the API as `config` says and starts the tasks that watch
    /// this node's pods (`node_name`), read the cluster id and the node's
    /// facts. `Ok(None)` when the API is not to be asked
    /// ([`KubeConfig::is_enabled`]). Errors: no node name, no tokio
    /// runtime, or a client configuration that cannot be loaded (an
    /// unreadable kubeconfig, no service account); the API server itself
    /// is not reached here, so an unreachable one is not an error but
    /// warnings and retries. Must be called inside a tokio runtime (the
    /// tasks are spawned on it).
    pub fn start(config: &KubeConfig, node_name: &str) -> Result<Option<Kube>, KubeError> {
        if !config.is_enabled() {
            return Ok(None);
        }
        if node_name.is_empty() {
            return Err(KubeError::NoNodeName);
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(KubeError::NoRuntime);
        }
        let client_config = match &config.kubeconfig {
            Some(path) => {
                let config_error =
                    |reason: String| KubeError::Config { source: format!("`{}`", path.display()), reason };
                let file = ::kube::config::Kubeconfig::read_from(path).map_err(|e| config_error(e.to_string()))?;
                let options = ::kube::config::KubeConfigOptions::default();
                // kube 2's loader is async but awaits nothing (it only
                // picks the context): run it here, on this thread.
                futures::executor::block_on(::kube::Config::from_custom_kubeconfig(file, &options))
                    .map_err(|e| config_error(e.to_string()))?
            }
            None => ::kube::Config::incluster().map_err(|e| KubeError::Config {
                source: "the pod's service account".to_owned(),
                reason: e.to_string(),
            })?,
        };
        let url = client_config.cluster_url.to_string();
        let client = Client::try_from(client_config)
            .map_err(|e| KubeError::Client { url: url.clone(), reason: e.to_string() })?;
        Kube::start_with_client(client, &url, node_name).map(Some)
    }

    /// Starts the tasks with a client already made (tests: a client of a
    /// fake API server). `server` is the API server's URL, used in messages
    /// only. Errors: no node name, no tokio runtime.
    pub fn start_with_client(client: Client, server: &str, node_name: &str) -> Result<Kube, KubeError> {
        if node_name.is_empty() {
            return Err(KubeError::NoNodeName);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| KubeError::NoRuntime)?;
        let server = server.trim_end_matches('/');
        let shared = Arc::new(Shared::default());
        let tasks = vec![
            runtime.spawn(watch_pods(
                Api::all(client.clone()),
                format!("GET {server}/api/v1/pods?fieldSelector=spec.nodeName={node_name}"),
                node_name.to_owned(),
                shared.clone(),
            )),
            runtime.spawn(read_cluster_id(
                Api::all(client.clone()),
                format!("GET {server}/api/v1/namespaces/{CLUSTER_ID_NAMESPACE}"),
                shared.clone(),
            )),
            runtime.spawn(read_node(
                Api::all(client),
                format!("GET {server}/api/v1/nodes/{node_name}"),
                node_name.to_owned(),
                shared.clone(),
            )),
        ];
        Ok(Kube { shared, tasks })
    }

    /// The pod with `uid` (dashed, as in the API; the systemd cgroup
    /// driver's underscores are accepted too), if it is one of this node's
    /// pods that the watch has seen.
    pub fn pod(&self, uid: &str) -> Option<PodInfo> {
        let pods = self.shared.pods.read().unwrap_or_else(PoisonError::into_inner);
        match pods.get(uid) {
            Some(pod) => Some(pod.clone()),
            None if uid.contains('_') => pods.get(&uid.replace('_', "-")).cloned(),
            None => None,
        }
    }

    /// How many of this node's pods are known.
    pub fn pod_count(&self) -> usize {
        self.shared.pods.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The cluster id (the `kube-system` namespace's uid), once read.
    pub fn cluster_id(&self) -> Option<String> {
        self.shared.cluster_id.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// This node's facts, once read (never, when RBAC does not grant get on
    /// the node).
    pub fn node(&self) -> Option<NodeInfo> {
        self.shared.node.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether the first list of this node's pods has completed: before,
    /// a pod missing from [`Kube::pod`] may yet come; after, it is either
    /// not (yet) scheduled here or newer than the watch's last event.
    pub fn synced(&self) -> bool {
        self.shared.synced.load(Ordering::Acquire)
    }

    /// A counter that grows on every change of what this handle reports;
    /// a reader that sees it unchanged can skip re-reading pods.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }
}

/// Keeps `shared.pods` current from a watch of the pods on `node`.
async fn watch_pods(api: Api<Pod>, url: String, node: String, shared: Arc<Shared>) {
    let selector = format!("spec.nodeName={node}");
    loop {
        let config = watcher::Config::default().fields(&selector);
        // The backoff pauses the stream after each error; the watcher then
        // resumes from the last resource version, or relists.
        let mut events = watcher::watcher(api.clone(), config).default_backoff().boxed();
        let mut relist = None;
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => shared.pod_event(event, &mut relist),
                Err(error) => {
                    let error = KubeError::watch(&url, &error);
                    tracing::warn!(%error, "watching this node's pods failed; retrying with backoff");
                }
            }
        }
        // The watcher's stream does not end; if a later kube makes it end
        // (its backoff giving up), start again after a pause.
        tracing::warn!(%url, "the watch of this node's pods ended; starting it again");
        tokio::time::sleep(MAX_RETRY_DELAY).await;
    }
}

/// Reads the `kube-system` namespace's uid into `shared.cluster_id`,
/// retrying until it succeeds.
async fn read_cluster_id(api: Api<Namespace>, url: String, shared: Arc<Shared>) {
    let mut backoff = DefaultBackoff::default();
    loop {
        let uid = match api.get(CLUSTER_ID_NAMESPACE).await {
            Ok(namespace) => namespace.metadata.uid.filter(|uid| !uid.is_empty()).ok_or_else(|| KubeError::Request {
                url: url.clone(),
                status: None,
                reason: "the namespace has no `metadata.uid`".to_owned(),
            }),
            Err(error) => Err(KubeError::request(&url, &error)),
        };
        match uid {
            Ok(uid) => {
                tracing::info!(cluster_id = %uid, "cluster id read");
                *shared.cluster_id.write().unwrap_or_else(PoisonError::into_inner) = Some(uid);
                shared.bump();
                return;
            }
            Err(error) => {
                let delay = backoff.next().unwrap_or(MAX_RETRY_DELAY);
                tracing::warn!(%error, retry_in = ?delay, "cannot read the cluster id");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Reads this node's facts into `shared.node`, retrying until it succeeds
/// or the API refuses (403: RBAC does not grant get on nodes; the facts
/// are optional and come from the host instead).
async fn read_node(api: Api<Node>, url: String, node: String, shared: Arc<Shared>) {
    let mut backoff = DefaultBackoff::default();
    loop {
        match api.get(&node).await {
            Ok(object) => {
                *shared.node.write().unwrap_or_else(PoisonError::into_inner) = Some(NodeInfo::from_node(&object));
                shared.bump();
                return;
            }
            Err(error) => {
                let error = KubeError::request(&url, &error);
                if error.status() == Some(403) {
                    tracing::info!(%error, "no access to this node's object: its facts come from the host only");
                    return;
                }
                let delay = backoff.next().unwrap_or(MAX_RETRY_DELAY);
                tracing::warn!(%error, retry_in = ?delay, "cannot read this node's facts");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Result<Pod, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn enabled_is_automatic_in_a_cluster_or_with_a_kubeconfig() {
        let auto = KubeConfig::default();
        assert!(auto.is_enabled_in(true));
        assert!(!auto.is_enabled_in(false));
        let file = KubeConfig { kubeconfig: Some("/k".into()), ..KubeConfig::default() };
        assert!(file.is_enabled_in(false));
        let off = KubeConfig { enabled: Some(false), ..KubeConfig::default() };
        assert!(!off.is_enabled_in(true));
    }

    #[test]
    fn the_settings_read_durations_and_refuse_unknown_keys() -> Result<(), String> {
        let config: KubeConfig = toml::from_str("enabled = true\nlabel_wait = \"500ms\"").map_err(|e| e.to_string())?;
        assert_eq!(config.enabled, Some(true));
        assert_eq!(config.label_wait, Duration::from_millis(500));
        assert_eq!(toml::from_str::<KubeConfig>("").map_err(|e| e.to_string())?, KubeConfig::default());
        let error = toml::from_str::<KubeConfig>("label_wiat = \"1s\"").err().map(|e| e.to_string());
        assert!(error.as_deref().is_some_and(|e| e.contains("label_wiat")), "{error:?}");
        let error = toml::from_str::<KubeConfig>("label_wait = \"soon\"").err().map(|e| e.to_string());
        assert!(error.as_deref().is_some_and(|e| e.contains("soon")), "{error:?}");
        Ok(())
    }

    #[test]
    fn pod_facts_take_the_controller_and_drop_the_applied_manifest() -> Result<(), String> {
        let web = pod(json!({
            "metadata": {
                "name": "web-7d9f-abc", "namespace": "prod", "uid": "u-1",
                "labels": {"app": "web"},
                "annotations": {"team": "a", LAST_APPLIED: "{\"huge\": true}"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Other", "name": "o", "uid": "o1"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f", "uid": "r1", "controller": true}
                ]
            },
            "spec": {"containers": [{"name": "web"}]},
            "status": {"podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
        }))?;
        let info = PodInfo::from_pod(&web).ok_or("no info")?;
        assert_eq!(info.owner_kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(info.ips, ["10.0.0.5", "fd00::5"]);
        assert_eq!(info.annotations.keys().collect::<Vec<_>>(), ["team"]);
        let mut metadata = Metadata { pod_name: Some("from-bundle".into()), ..Metadata::default() };
        apply(&mut metadata, &info);
        assert_eq!(metadata.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(metadata.parent_type.as_deref(), Some("ReplicaSet"));
        assert_eq!(metadata.pod_ips, info.ips);
        assert_eq!(metadata.pod_name.as_deref(), Some("from-bundle"));
        assert_eq!(metadata.namespace.as_deref(), Some("prod"));
        let bare = pod(json!({"metadata": {"uid": "u-2"}, "status": {"podIP": "10.0.0.6"}}))?;
        let bare = PodInfo::from_pod(&bare).ok_or("no info")?;
        assert_eq!((bare.owner_kind, bare.ips), (None, vec!["10.0.0.6".to_owned()]));
        assert_eq!(PodInfo::from_pod(&Pod::default()), None);
        Ok(())
    }

    #[test]
    fn a_huge_annotation_does_not_drop_the_containers_alerts() -> Result<(), String> {
        let mut annotations = serde_json::Map::new();
        annotations.insert("huge".into(), json!("é".repeat(6 << 20)));
        for n in 0..10_000 {
            annotations.insert(format!("z{n:05}"), json!("v".repeat(100)));
        }
        let mut labels = serde_json::Map::new();
        labels.insert("k".repeat(1 << 20), json!("v"));
        let hostile = pod(json!({"metadata": {"uid": "u", "annotations": annotations, "labels": labels}}))?;
        let info = PodInfo::from_pod(&hostile).ok_or("no info")?;
        let bytes: usize = info.annotations.iter().chain(&info.labels).map(|(k, v)| k.len() + v.len() + 4).sum();
        let limit = crate::delivery::DeliveryConfig::default().max_document_bytes;
        assert!(bytes * 4 <= limit, "{bytes} bytes of labels and annotations in every document, limit {limit}");
        assert_eq!(info.annotations.len(), MAX_POD_ENTRIES);
        // What is cut says so, and stays valid text.
        let value = info.annotations.get("huge").ok_or("no huge")?;
        let more = format!("({} bytes more)", (12 << 20) - (MAX_POD_TEXT_BYTES - 32));
        assert!(value.ends_with(&more), "{}", &value[value.len() - 40..]);
        assert!(info.labels.keys().all(|k| k.len() <= MAX_POD_TEXT_BYTES + 32));
        Ok(())
    }

    #[test]
    fn a_relist_replaces_the_map_only_when_done() -> Result<(), String> {
        let shared = Shared::default();
        let a = pod(json!({"metadata": {"uid": "a", "name": "a"}}))?;
        let b = pod(json!({"metadata": {"uid": "b", "name": "b"}}))?;
        let mut relist = None;
        shared.pod_event(Event::Init, &mut relist);
        shared.pod_event(Event::InitApply(a.clone()), &mut relist);
        assert!(!shared.synced.load(Ordering::Acquire));
        shared.pod_event(Event::InitDone, &mut relist);
        assert!(shared.synced.load(Ordering::Acquire));
        assert_eq!(shared.generation.load(Ordering::Acquire), 1);
        // The same pod again changes nothing.
        shared.pod_event(Event::Apply(a), &mut relist);
        assert_eq!(shared.generation.load(Ordering::Acquire), 1);
        shared.pod_event(Event::Init, &mut relist);
        shared.pod_event(Event::InitApply(b), &mut relist);
        assert!(shared.pods.read().map_err(|e| e.to_string())?.contains_key("a"));
        shared.pod_event(Event::InitDone, &mut relist);
        let pods = shared.pods.read().map_err(|e| e.to_string())?;
        assert_eq!(pods.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(shared.generation.load(Ordering::Acquire), 2);
        Ok(())
    }

    #[test]
    fn errors_name_the_request_status_and_reason() {
        let error = KubeError::Request {
            url: "GET https://10.0.0.1/api/v1/namespaces/kube-system".into(),
            status: Some(403),
            reason: api_reason("Forbidden", "namespaces \"kube-system\" is forbidden"),
        };
        assert_eq!(
            error.to_string(),
            "GET https://10.0.0.1/api/v1/namespaces/kube-system: status 403: Forbidden: namespaces \"kube-system\" is forbidden"
        );
        assert_eq!(error.status(), Some(403));
    }
}
