//! A small CRI client: the calls a kubelet makes to containerd to run a
//! pod's containers, over containerd's unix socket, with the requests a
//! kubelet builds.
//!
//! In: a [`Pod`] and, per container, a [`ContainerRequest`]. Out: sandbox
//! and container ids as containerd makes them, and their status.
//!
//! The requests are built by pure functions ([`sandbox_config`],
//! [`container_config`]) so that their shape is tested on the host: the
//! kubelet's labels and annotations, `cgroup_parent`
//! `/kubepods/besteffort/pod<uid>` (the cgroupfs driver's name for a
//! BestEffort pod), the host network (no CNI plugin is needed), a
//! container PID namespace and a pod IPC namespace, the kubelet's default
//! masked and read-only paths, no seccomp profile (the kubelet's default
//! without `--seccomp-default`).
//!
//! Every call has a timeout ([`CALL_TIMEOUT`], the kubelet's default
//! runtime request timeout is 2 minutes) and its error names the call and
//! what it was for.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerStatus, CreateContainerRequest, ImageSpec, ImageStatusRequest,
    KeyValue, LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, Mount, NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
    RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopContainerRequest,
    StopPodSandboxRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};

/// containerd's socket in the guest.
pub const SOCKET: &str = "/run/containerd/containerd.sock";
/// How long one CRI call may take (TCG is slow; the kubelet allows 2 min).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Where the kubelet keeps pods' logs.
pub const POD_LOG_ROOT: &str = "/var/log/pods";
/// The kubelet's default masked paths (`procMount: Default`).
pub const MASKED_PATHS: [&str; 9] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
];
/// The kubelet's default read-only paths.
pub const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// A pod, as its sandbox is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// The pod's UID.
    pub uid: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its labels.
    pub labels: Vec<(String, String)>,
    /// Whether a container of it is privileged (containerd then wants the
    /// sandbox privileged too, as the kubelet asks for it).
    pub privileged: bool,
}

impl Pod {
    /// The pod's cgroup as the kubelet's cgroupfs driver names it (a
    /// BestEffort pod).
    pub fn cgroup_parent(&self) -> String {
        format!("/kubepods/besteffort/pod{}", self.uid)
    }

    /// The pod's log directory.
    pub fn log_directory(&self) -> PathBuf {
        PathBuf::from(POD_LOG_ROOT).join(format!("{}_{}_{}", self.namespace, self.name, self.uid))
    }
}

/// One container of a pod, as it is asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRequest {
    /// Its name in the pod.
    pub name: String,
    /// The image id (`sha256:...`), as the kubelet passes it.
    pub image_id: String,
    /// The image as the pod spec names it.
    pub image_reference: String,
    /// Environment variables.
    pub envs: Vec<(String, String)>,
    /// Mounts, in the order the kubelet gives them.
    pub mounts: Vec<Mount>,
    /// `securityContext.privileged` (all capabilities, all devices).
    pub privileged: bool,
}

impl ContainerRequest {
    /// Its log file, relative to the pod's log directory.
    pub fn log_path(&self) -> String {
        format!("{}/0.log", self.name)
    }
}

/// A bind mount as the kubelet asks for it.
pub fn mount(container_path: &str, host_path: &Path, readonly: bool) -> Mount {
    Mount {
        container_path: container_path.to_string(),
        host_path: host_path.to_string_lossy().into_owned(),
        readonly,
        ..Mount::default()
    }
}

/// Host network, a PID namespace per container, the pod's IPC namespace.
fn namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..NamespaceOption::default()
    }
}

/// The kubelet's labels of a pod's sandbox and containers.
fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    HashMap::from([
        ("io.kubernetes.pod.name".to_string(), pod.name.clone()),
        ("io.kubernetes.pod.namespace".to_string(), pod.namespace.clone()),
        ("io.kubernetes.pod.uid".to_string(), pod.uid.clone()),
    ])
}

/// The sandbox's configuration, as the kubelet makes it for a host-network
/// BestEffort pod (no hostname: a host-network pod has the node's).
pub fn sandbox_config(pod: &Pod) -> PodSandboxConfig {
    let mut labels = pod_labels(pod);
    labels.extend(pod.labels.iter().cloned());
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            namespace: pod.namespace.clone(),
            attempt: 0,
        }),
        log_directory: pod.log_directory().to_string_lossy().into_owned(),
        labels,
        annotations: HashMap::from([("kubernetes.io/config.source".to_string(), "api".to_string())]),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: pod.cgroup_parent(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces()),
                privileged: pod.privileged,
                ..LinuxSandboxSecurityContext::default()
            }),
            ..LinuxPodSandboxConfig::default()
        }),
        ..PodSandboxConfig::default()
    }
}

/// The container's configuration, as the kubelet makes it: the image by
/// id (the pod spec's reference beside it), the image's entrypoint (no
/// command), the kubelet's labels and annotations, BestEffort resources.
pub fn container_config(pod: &Pod, request: &ContainerRequest) -> ContainerConfig {
    let mut labels = pod_labels(pod);
    labels.insert("io.kubernetes.container.name".into(), request.name.clone());
    let annotations = HashMap::from([
        ("io.kubernetes.container.hash".to_string(), "d4c0d4c0".to_string()),
        ("io.kubernetes.container.restartCount".to_string(), "0".to_string()),
        ("io.kubernetes.container.terminationMessagePath".to_string(), "/dev/termination-log".to_string()),
        ("io.kubernetes.container.terminationMessagePolicy".to_string(), "File".to_string()),
        ("io.kubernetes.pod.terminationGracePeriod".to_string(), "30".to_string()),
    ]);
    let (masked, readonly) = if request.privileged {
        (Vec::new(), Vec::new())
    } else {
        (MASKED_PATHS.map(String::from).to_vec(), READONLY_PATHS.map(String::from).to_vec())
    };
    ContainerConfig {
        metadata: Some(ContainerMetadata { name: request.name.clone(), attempt: 0 }),
        image: Some(ImageSpec {
            image: request.image_id.clone(),
            user_specified_image: request.image_reference.clone(),
            ..ImageSpec::default()
        }),
        envs: request.envs.iter().map(|(key, value)| KeyValue { key: key.clone(), value: value.clone() }).collect(),
        mounts: request.mounts.clone(),
        labels,
        annotations,
        log_path: request.log_path(),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                cpu_period: 100_000,
                cpu_shares: 2,
                oom_score_adj: 1000,
                ..LinuxContainerResources::default()
            }),
            security_context: Some(LinuxContainerSecurityContext {
                privileged: request.privileged,
                namespace_options: Some(namespaces()),
                masked_paths: masked,
                readonly_paths: readonly,
                ..LinuxContainerSecurityContext::default()
            }),
        }),
        ..ContainerConfig::default()
    }
}

/// A connection to containerd's CRI service, with the async runtime its
/// calls run on (the harness is synchronous: each call blocks).
pub struct Cri {
    tokio: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl std::fmt::Debug for Cri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cri")
    }
}

impl Cri {
    /// Connects to the CRI service on `socket`.
    pub fn connect(socket: &Path) -> Result<Cri, String> {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start an async runtime for the CRI client: {e}"))?;
        let path = socket.to_path_buf();
        let channel = tokio.block_on(async {
            // The URI is unused: every connection is the unix socket.
            let endpoint = Endpoint::try_from("http://[::]:50051").map_err(|e| e.to_string())?;
            let connect = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }));
            match tokio::time::timeout(CALL_TIMEOUT, connect).await {
                Ok(Ok(channel)) => Ok(channel),
                Ok(Err(e)) => Err(format!("{e:?}")),
                Err(_) => Err(format!("no connection within {}s", CALL_TIMEOUT.as_secs())),
            }
        });
        let channel = channel.map_err(|e| format!("connecting to the CRI service on {}: {e}", socket.display()))?;
        Ok(Cri { tokio, runtime: RuntimeServiceClient::new(channel.clone()), images: ImageServiceClient::new(channel) })
    }

    /// Runs `call` with the timeout; errors name `what`.
    fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, String> {
        // The timer is made inside the runtime, which it needs.
        match self.tokio.block_on(async { tokio::time::timeout(CALL_TIMEOUT, call).await }) {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(format!("{what}: {:?}: {}", status.code(), status.message())),
            Err(_) => Err(format!("{what}: no answer within {}s", CALL_TIMEOUT.as_secs())),
        }
    }

    /// RunPodSandbox: the pod's sandbox id.
    pub fn run_pod_sandbox(&mut self, pod: &Pod) -> Result<String, String> {
        self.run_pod_sandbox_with(sandbox_config(pod))
    }

    /// RunPodSandbox with a configuration made elsewhere (a pod that is
    /// not BestEffort, or shares the node's PID namespace): the sandbox id.
    pub fn run_pod_sandbox_with(&mut self, config: PodSandboxConfig) -> Result<String, String> {
        let meta = config.metadata.clone().unwrap_or_default();
        let what = format!("RunPodSandbox for pod `{}/{}` ({})", meta.namespace, meta.name, meta.uid);
        let request = RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() };
        let mut client = self.runtime.clone();
        Ok(self.call(&what, client.run_pod_sandbox(request))?.pod_sandbox_id)
    }

    /// StopPodSandbox.
    pub fn stop_pod_sandbox(&mut self, sandbox_id: &str) -> Result<(), String> {
        let what = format!("StopPodSandbox of sandbox {}", short(sandbox_id));
        let mut client = self.runtime.clone();
        self.call(&what, client.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox_id.into() }))
            .map(|_| ())
    }

    /// RemovePodSandbox.
    pub fn remove_pod_sandbox(&mut self, sandbox_id: &str) -> Result<(), String> {
        let what = format!("RemovePodSandbox of sandbox {}", short(sandbox_id));
        let mut client = self.runtime.clone();
        self.call(&what, client.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sandbox_id.into() }))
            .map(|_| ())
    }

    /// CreateContainer in `sandbox_id`: the container's id.
    pub fn create_container(
        &mut self,
        sandbox_id: &str,
        pod: &Pod,
        request: &ContainerRequest,
    ) -> Result<String, String> {
        self.create_container_with(sandbox_id, container_config(pod, request), sandbox_config(pod))
    }

    /// CreateContainer with configurations made elsewhere (see
    /// [`Cri::run_pod_sandbox_with`]): the container's id.
    pub fn create_container_with(
        &mut self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox: PodSandboxConfig,
    ) -> Result<String, String> {
        let name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let pod = sandbox.metadata.clone().unwrap_or_default();
        let what = format!("CreateContainer of container `{name}` in pod `{}/{}`", pod.namespace, pod.name);
        let create = CreateContainerRequest {
            pod_sandbox_id: sandbox_id.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox),
        };
        let mut client = self.runtime.clone();
        Ok(self.call(&what, client.create_container(create))?.container_id)
    }

    /// ExecSync (`kubectl exec` without a terminal): runs `command` in the
    /// container, which must end within `timeout_s` seconds. Its exit code,
    /// standard output and standard error.
    pub fn exec_sync(&mut self, id: &str, command: &[&str], timeout_s: i64) -> Result<(i32, String, String), String> {
        let what = format!("ExecSync of `{}` in container {}", command.join(" "), short(id));
        let request = k8s_cri::v1::ExecSyncRequest {
            container_id: id.into(),
            cmd: command.iter().map(|c| c.to_string()).collect(),
            timeout: timeout_s,
        };
        let mut client = self.runtime.clone();
        let answer = self.call(&what, client.exec_sync(request))?;
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_string();
        Ok((answer.exit_code, text(&answer.stdout), text(&answer.stderr)))
    }

    /// StartContainer.
    pub fn start_container(&mut self, id: &str, name: &str) -> Result<(), String> {
        let what = format!("StartContainer of container `{name}` ({})", short(id));
        let mut client = self.runtime.clone();
        self.call(&what, client.start_container(StartContainerRequest { container_id: id.into() })).map(|_| ())
    }

    /// StopContainer, SIGKILL after `timeout_s` seconds; asked again (as
    /// the kubelet does at its next sync) after a shim race: see
    /// [`retry_shim_race`].
    pub fn stop_container(&mut self, id: &str, name: &str, timeout_s: i64) -> Result<(), String> {
        let what = format!("StopContainer of container `{name}` ({})", short(id));
        retry_shim_race(SHIM_RACE_RETRIES, SHIM_RACE_PAUSE, || {
            let mut client = self.runtime.clone();
            let request = StopContainerRequest { container_id: id.into(), timeout: timeout_s };
            self.call(&what, client.stop_container(request)).map(|_| ())
        })
    }

    /// RemoveContainer.
    pub fn remove_container(&mut self, id: &str, name: &str) -> Result<(), String> {
        let what = format!("RemoveContainer of container `{name}` ({})", short(id));
        let mut client = self.runtime.clone();
        self.call(&what, client.remove_container(RemoveContainerRequest { container_id: id.into() })).map(|_| ())
    }

    /// ContainerStatus (verbose): the status and containerd's `info` JSON.
    pub fn container_status(&mut self, id: &str, name: &str) -> Result<(ContainerStatus, serde_json::Value), String> {
        let what = format!("ContainerStatus of container `{name}` ({})", short(id));
        let mut client = self.runtime.clone();
        let request = k8s_cri::v1::ContainerStatusRequest { container_id: id.into(), verbose: true };
        let response = self.call(&what, client.container_status(request))?;
        let status = response.status.ok_or_else(|| format!("{what}: no status in the answer"))?;
        let info = response
            .info
            .get("info")
            .map(|text| serde_json::from_str(text).map_err(|e| format!("{what}: its `info` is not JSON: {e}")))
            .transpose()?
            .unwrap_or_default();
        Ok((status, info))
    }

    /// ImageStatus: the id of the image `reference` names, if containerd
    /// has it.
    pub fn image_id(&mut self, reference: &str) -> Result<Option<String>, String> {
        let what = format!("ImageStatus of image `{reference}`");
        let mut client = self.images.clone();
        let request = ImageStatusRequest {
            image: Some(ImageSpec { image: reference.into(), ..ImageSpec::default() }),
            verbose: false,
        };
        Ok(self.call(&what, client.image_status(request))?.image.map(|image| image.id))
    }
}

/// The first 12 digits of an id, for messages.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// How many times a call that lost a shim race is asked again, and the
/// pause before each.
const SHIM_RACE_RETRIES: usize = 3;
const SHIM_RACE_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs `call`, and again up to `retries` times (after `pause`) while it
/// fails with `ttrpc: closed`: containerd's StopContainer deletes the
/// task while its own exit handler may be deleting it too (the agent,
/// pid 1, exits when its link closes), and the loser of that race gets
/// the shim's connection closed under it (containerd issue 11505). The
/// container is then stopped or stopping; asking again finds it so.
/// Any other error is returned at once.
pub fn retry_shim_race(
    retries: usize,
    pause: std::time::Duration,
    mut call: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let mut attempt = 0;
    loop {
        match call() {
            Err(error) if error.contains("ttrpc: closed") && attempt < retries => {
                attempt += 1;
                println!("D4C-VMTEST-NOTE: {error}; asked again ({attempt} of {retries})");
                std::thread::sleep(pause);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (process.d4ct failed on 6.1 in CI): a StopContainer that
    /// lost containerd's task-delete race (`ttrpc: closed`) failed the
    /// whole scenario file after every step had passed; it is asked again.
    #[test]
    fn stop_container_is_asked_again_after_a_shim_race() {
        let mut answers = vec![Ok(()), Err("StopContainer: Unknown: ttrpc: closed: unknown".to_string())];
        let mut calls = 0;
        let result = retry_shim_race(3, std::time::Duration::ZERO, || {
            calls += 1;
            answers.pop().unwrap_or(Ok(()))
        });
        assert_eq!((result, calls), (Ok(()), 2));
        // Another error is not retried; nor is the race beyond the retries.
        let mut calls = 0;
        let other = retry_shim_race(3, std::time::Duration::ZERO, || {
            calls += 1;
            Err("NotFound: no such container".to_string())
        });
        assert_eq!((other.is_err(), calls), (true, 1));
        let mut calls = 0;
        let race = retry_shim_race(2, std::time::Duration::ZERO, || {
            calls += 1;
            Err("ttrpc: closed".to_string())
        });
        assert_eq!((race.is_err(), calls), (true, 3));
    }

    fn pod() -> Pod {
        Pod {
            uid: "0d4c0000-5a0e-4e57-8000-00000000d4c0".into(),
            name: "web-0".into(),
            namespace: "shop".into(),
            labels: vec![("app".into(), "web".into())],
            privileged: false,
        }
    }

    #[test]
    fn the_sandbox_is_asked_for_as_a_kubelet_asks() {
        let c = sandbox_config(&pod());
        let meta = c.metadata.clone().unwrap_or_default();
        assert_eq!((meta.name.as_str(), meta.namespace.as_str(), meta.attempt), ("web-0", "shop", 0));
        assert_eq!(meta.uid, "0d4c0000-5a0e-4e57-8000-00000000d4c0");
        assert_eq!(c.log_directory, "/var/log/pods/shop_web-0_0d4c0000-5a0e-4e57-8000-00000000d4c0");
        assert_eq!(c.hostname, "", "a host-network pod has the node's hostname");
        assert_eq!(c.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(c.labels.get("io.kubernetes.pod.uid").map(String::as_str), Some(meta.uid.as_str()));
        let linux = c.linux.unwrap_or_default();
        assert_eq!(linux.cgroup_parent, "/kubepods/besteffort/pod0d4c0000-5a0e-4e57-8000-00000000d4c0");
        let security = linux.security_context.unwrap_or_default();
        assert!(!security.privileged);
        let ns = security.namespace_options.unwrap_or_default();
        assert_eq!((ns.network, ns.pid, ns.ipc), (NamespaceMode::Node as i32, NamespaceMode::Container as i32, 0));
        let privileged = sandbox_config(&Pod { privileged: true, ..pod() });
        assert!(privileged.linux.unwrap_or_default().security_context.unwrap_or_default().privileged);
    }

    #[test]
    fn a_container_is_asked_for_by_image_id_with_the_kubelets_labels() {
        let request = ContainerRequest {
            name: "web".into(),
            image_id: "sha256:ab".into(),
            image_reference: "nginx:1.25".into(),
            envs: vec![("A".into(), "1".into())],
            mounts: vec![mount("/data", Path::new("/var/lib/kubelet/pods/u/volumes/x/data"), false)],
            privileged: false,
        };
        let c = container_config(&pod(), &request);
        let image = c.image.clone().unwrap_or_default();
        assert_eq!((image.image.as_str(), image.user_specified_image.as_str()), ("sha256:ab", "nginx:1.25"));
        assert!(c.command.is_empty() && c.args.is_empty(), "the image's entrypoint runs");
        assert_eq!(c.log_path, "web/0.log");
        assert_eq!(c.labels.get("io.kubernetes.container.name").map(String::as_str), Some("web"));
        assert_eq!(c.labels.get("io.kubernetes.pod.namespace").map(String::as_str), Some("shop"));
        assert!(!c.labels.contains_key("app"), "pod labels are the sandbox's, not the container's");
        assert_eq!(
            c.annotations.get("io.kubernetes.container.terminationMessagePath").map(String::as_str),
            Some("/dev/termination-log")
        );
        assert_eq!(c.envs.first().map(|kv| (kv.key.as_str(), kv.value.as_str())), Some(("A", "1")));
        assert_eq!(c.mounts.first().map(|m| (m.container_path.as_str(), m.readonly)), Some(("/data", false)));
        let security = c.linux.clone().unwrap_or_default().security_context.unwrap_or_default();
        assert!(!security.privileged);
        assert_eq!(security.masked_paths.len(), MASKED_PATHS.len());
        assert!(security.readonly_paths.iter().any(|p| p == "/proc/sys"));
        let privileged = container_config(&pod(), &ContainerRequest { privileged: true, ..request });
        let security = privileged.linux.unwrap_or_default().security_context.unwrap_or_default();
        assert!(security.privileged && security.masked_paths.is_empty() && security.readonly_paths.is_empty());
    }
}
