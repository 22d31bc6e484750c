//! Kubernetes manifests read as a kubelet reads them, for the `daemonset`
//! check: the DaemonSet's pod template (`deploy/kubernetes/base/
//! daemonset.yaml`) becomes the CRI requests a kubelet makes to run that
//! pod on one node, and a ConfigMap's `data` the files of its volume.
//!
//! In: the manifests' YAML text (read at run time, so that the check
//! follows the manifest). Out: a [`PodTemplate`], then a
//! [`PodSandboxConfig`] ([`sandbox_config`]) and a [`ContainerConfig`]
//! ([`container_config`]) built by pure functions that the host's tests
//! check against the real manifest.
//!
//! What is taken from the manifest, and how the kubelet turns it into CRI
//! fields: `hostPID` (the sandbox's and the container's PID namespace is
//! the node's), the QoS class from `resources` (the pod's cgroup parent,
//! `cpu_shares`, the memory limit), `priorityClassName:
//! system-node-critical` (`oom_score_adj` -997), the container's `command`
//! and `args`, `env` (literal values, the downward API's
//! `spec.nodeName`, `metadata.*`; a Secret the node does not have is left
//! out when `optional`, else an error), the whole `securityContext`
//! (privileged, `runAsUser`/`runAsGroup`, `allowPrivilegeEscalation` as
//! `no_new_privs`, `readOnlyRootFilesystem`, capabilities to add and drop,
//! seccomp and AppArmor profiles), and the `volumeMounts` of `hostPath`
//! and `projected` ConfigMap volumes with their `readOnly` and
//! `mountPropagation`. A field the kubelet would act on and this module
//! does not know (another volume kind or env source) is an error naming
//! it, never skipped.
//!
//! One setting is not followed: the pod's network. There is no CNI plugin
//! in the guest, so every pod uses the node's network namespace, as the
//! other checks' pods do; the daemon's port is then reached on the node's
//! loopback.

use std::collections::BTreeMap;

use k8s_cri::v1::security_profile::ProfileType;
use k8s_cri::v1::{
    Capability, ContainerConfig, Int64Value, LinuxContainerResources, Mount, MountPropagation, NamespaceMode,
    PodSandboxConfig, SecurityProfile,
};
use serde_json::{Map, Value};

use crate::cri::{self, ContainerRequest, Pod};

/// The `oom_score_adj` the kubelet gives a node-critical or Guaranteed
/// pod's containers.
pub const CRITICAL_OOM_SCORE_ADJ: i64 = -997;

/// A YAML file's first document as JSON, read by d4cc's YAML reader (the
/// YAML 1.2 core schema: `true` is a boolean, `0` a number, `"0"` a
/// string). Errors name the file.
pub fn yaml_to_json(name: &str, text: &str) -> Result<Value, String> {
    let source = d4cc::source::SourceFile::from_bytes(name, text.as_bytes().to_vec())
        .map_err(|e| format!("{name}: {}", e.1.message))?;
    let mut diagnostics = d4cc::diag::Diagnostics::new();
    let root = d4cc::yaml::parse(&source, &mut diagnostics);
    // A policy file's rules (one document, something in it) are not a
    // manifest's: only a syntax error counts.
    let syntax = diagnostics.as_slice().iter().find(|d| d.code == d4cc::codes::Code::InvalidYaml);
    if let Some(error) = syntax {
        return Err(format!("{name}: {}", error.message));
    }
    root.map(|node| to_json(&node)).ok_or_else(|| format!("{name}: no YAML document"))
}

fn to_json(node: &d4cc::yaml::Node) -> Value {
    use d4cc::yaml::{NodeKind, ScalarType};
    match &node.kind {
        NodeKind::Scalar(s) => match s.ty {
            ScalarType::Str => Value::String(s.value.clone()),
            ScalarType::Bool(b) => Value::Bool(b),
            ScalarType::Null => Value::Null,
            ScalarType::Int => s.value.parse::<i64>().map_or_else(|_| Value::String(s.value.clone()), Value::from),
            ScalarType::Float => s.value.parse::<f64>().map_or_else(|_| Value::String(s.value.clone()), Value::from),
        },
        NodeKind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        NodeKind::Map(pairs) => {
            let mut map = Map::new();
            for (key, value) in pairs {
                let key = key.as_scalar().map_or_else(|| key.describe(), |s| s.value.clone());
                map.insert(key, to_json(value));
            }
            Value::Object(map)
        }
    }
}

/// Where a container's environment variable comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    /// `value:`.
    Value(String),
    /// `valueFrom.fieldRef.fieldPath` (the downward API).
    Field(String),
    /// `valueFrom.secretKeyRef`.
    Secret {
        /// The Secret.
        name: String,
        /// Its key.
        key: String,
        /// Whether the pod starts without it.
        optional: bool,
    },
}

/// An HTTP probe (`startupProbe`, `readinessProbe`, `livenessProbe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// `httpGet.path`.
    pub path: String,
    /// `httpGet.port`, a named port resolved to its number.
    pub port: u16,
    /// `periodSeconds` (the kubelet's default 10).
    pub period_s: u64,
    /// `failureThreshold` (default 3).
    pub failure_threshold: u64,
}

impl HttpProbe {
    /// How long the kubelet lets the probe fail before it gives up.
    pub fn budget_s(&self) -> u64 {
        self.period_s.saturating_mul(self.failure_threshold)
    }
}

/// The container's `securityContext`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Security {
    /// `privileged`.
    pub privileged: bool,
    /// `runAsUser`.
    pub run_as_user: Option<i64>,
    /// `runAsGroup`.
    pub run_as_group: Option<i64>,
    /// `allowPrivilegeEscalation` (Kubernetes' default: true).
    pub allow_privilege_escalation: bool,
    /// `readOnlyRootFilesystem`.
    pub read_only_root: bool,
    /// `capabilities.add`, as written (`BPF`).
    pub add: Vec<String>,
    /// `capabilities.drop`.
    pub drop: Vec<String>,
    /// `seccompProfile.type`.
    pub seccomp: Option<String>,
    /// `appArmorProfile.type`.
    pub apparmor: Option<String>,
}

/// A `volumeMounts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// The volume's name.
    pub name: String,
    /// `mountPath`.
    pub path: String,
    /// `readOnly`.
    pub read_only: bool,
    /// `mountPropagation` (`None`, `HostToContainer`, `Bidirectional`).
    pub propagation: Option<String>,
}

/// One file of a projected volume: a ConfigMap's key at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectedItem {
    /// The ConfigMap.
    pub config_map: String,
    /// Its key.
    pub key: String,
    /// The file's path in the volume.
    pub path: String,
}

/// The volume kinds the check runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Volume {
    /// `hostPath` with its `type` (empty when none).
    HostPath {
        /// The node's path.
        path: String,
        /// `Directory`, `DirectoryOrCreate`, ...
        kind: String,
    },
    /// `projected` with ConfigMap sources.
    Projected(Vec<ProjectedItem>),
}

/// The one container of the pod template.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerTemplate {
    /// `name`.
    pub name: String,
    /// `image`, as the manifest writes it.
    pub image: String,
    /// `command` (empty: the image's entrypoint).
    pub command: Vec<String>,
    /// `args`.
    pub args: Vec<String>,
    /// `env`, in order.
    pub env: Vec<(String, EnvSource)>,
    /// `ports`: name and `containerPort`.
    pub ports: Vec<(String, u16)>,
    /// `startupProbe`.
    pub startup: Option<HttpProbe>,
    /// `readinessProbe`.
    pub readiness: Option<HttpProbe>,
    /// `livenessProbe`.
    pub liveness: Option<HttpProbe>,
    /// `resources.requests.cpu`, in millicores.
    pub cpu_request_m: Option<i64>,
    /// `resources.limits.cpu`, in millicores.
    pub cpu_limit_m: Option<i64>,
    /// `resources.requests.memory`, in bytes.
    pub memory_request: Option<i64>,
    /// `resources.limits.memory`, in bytes.
    pub memory_limit: Option<i64>,
    /// `terminationMessagePolicy` (default `File`).
    pub termination_message_policy: String,
    /// `securityContext`.
    pub security: Security,
    /// `volumeMounts`, in order.
    pub mounts: Vec<VolumeMount>,
}

/// A DaemonSet's pod template.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodTemplate {
    /// The DaemonSet's name (its pods are named after it).
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The template's labels.
    pub labels: Vec<(String, String)>,
    /// The template's annotations.
    pub annotations: Vec<(String, String)>,
    /// `hostPID`.
    pub host_pid: bool,
    /// `priorityClassName`.
    pub priority_class: Option<String>,
    /// `terminationGracePeriodSeconds` (default 30).
    pub grace_period_s: i64,
    /// The container (the template must have exactly one, and no init
    /// containers).
    pub container: ContainerTemplate,
    /// `volumes`, by name, in order.
    pub volumes: Vec<(String, Volume)>,
}

/// The pod's QoS class, as the kubelet derives it from `resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    /// Limits equal to requests for both CPU and memory.
    Guaranteed,
    /// Some request or limit, not Guaranteed.
    Burstable,
    /// None at all.
    BestEffort,
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string(value: &Value, pointer: &str, what: &str) -> Result<String, String> {
    text(value.pointer(pointer)).ok_or_else(|| format!("{what}: `{}` is missing", pointer.replace('/', ".")))
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value.and_then(Value::as_array).map(|a| a.iter().filter_map(|v| text(Some(v))).collect()).unwrap_or_default()
}

fn pairs(value: Option<&Value>) -> Vec<(String, String)> {
    value
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), text(Some(v))?))).collect())
        .unwrap_or_default()
}

fn flag(value: &Value, pointer: &str, default: bool) -> bool {
    value.pointer(pointer).and_then(Value::as_bool).unwrap_or(default)
}

fn items(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// A quantity (`200Mi`, `64M`, `50m`, `1`, `0.5`) in its base unit, times
/// `scale` (1000 for CPU in millicores). Errors name the text.
pub fn quantity(text: &str, scale: f64) -> Result<i64, String> {
    let suffixes: [(&str, f64); 11] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("m", 1e-3),
        ("u", 1e-6),
        ("n", 1e-9),
    ];
    let (number, factor) = suffixes
        .iter()
        .find_map(|(suffix, factor)| text.strip_suffix(suffix).map(|n| (n, *factor)))
        .unwrap_or((text, 1.0));
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a quantity"))?;
    Ok((value * factor * scale).round() as i64)
}

fn probe(value: Option<&Value>, ports: &[(String, u16)], what: &str) -> Result<Option<HttpProbe>, String> {
    let Some(probe) = value else { return Ok(None) };
    let path = string(probe, "/httpGet/path", what)?;
    let port = match probe.pointer("/httpGet/port") {
        Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Some(Value::String(name)) => ports.iter().find(|(n, _)| n == name).map(|(_, p)| *p),
        _ => None,
    }
    .ok_or_else(|| format!("{what}: `httpGet.port` names no port of the container"))?;
    let number = |key: &str, default: u64| probe.get(key).and_then(Value::as_u64).unwrap_or(default);
    Ok(Some(HttpProbe {
        path,
        port,
        period_s: number("periodSeconds", 10),
        failure_threshold: number("failureThreshold", 3),
    }))
}

fn env_source(entry: &Value, name: &str) -> Result<EnvSource, String> {
    if let Some(value) = text(entry.get("value")) {
        return Ok(EnvSource::Value(value));
    }
    let from = entry.get("valueFrom").ok_or_else(|| format!("env `{name}` has neither `value` nor `valueFrom`"))?;
    if let Some(field) = text(from.pointer("/fieldRef/fieldPath")) {
        return Ok(EnvSource::Field(field));
    }
    if let Some(secret) = from.get("secretKeyRef") {
        return Ok(EnvSource::Secret {
            name: string(secret, "/name", &format!("env `{name}`"))?,
            key: string(secret, "/key", &format!("env `{name}`"))?,
            optional: flag(secret, "/optional", false),
        });
    }
    let kinds: Vec<&String> = from.as_object().map(|m| m.keys().collect()).unwrap_or_default();
    Err(format!("env `{name}`: `valueFrom` {kinds:?} is not run by this check"))
}

fn volume(entry: &Value, name: &str) -> Result<Volume, String> {
    if let Some(host) = entry.get("hostPath") {
        return Ok(Volume::HostPath {
            path: string(host, "/path", &format!("volume `{name}`"))?,
            kind: text(host.get("type")).unwrap_or_default(),
        });
    }
    if let Some(projected) = entry.get("projected") {
        let mut out = Vec::new();
        for source in items(projected.get("sources")) {
            let config_map = source
                .get("configMap")
                .ok_or_else(|| format!("volume `{name}`: a projected source other than `configMap` is not run"))?;
            let map = string(config_map, "/name", &format!("volume `{name}`"))?;
            for item in items(config_map.get("items")) {
                out.push(ProjectedItem {
                    config_map: map.clone(),
                    key: string(item, "/key", &format!("volume `{name}`"))?,
                    path: string(item, "/path", &format!("volume `{name}`"))?,
                });
            }
        }
        return Ok(Volume::Projected(out));
    }
    let kinds: Vec<&String> =
        entry.as_object().map(|m| m.keys().filter(|k| *k != "name").collect()).unwrap_or_default();
    Err(format!("volume `{name}`: kind {kinds:?} is not run by this check (hostPath and projected are)"))
}

/// The pod template of a DaemonSet manifest (parsed by [`yaml_to_json`]).
pub fn pod_template(manifest: &Value) -> Result<PodTemplate, String> {
    if manifest.get("kind").and_then(Value::as_str) != Some("DaemonSet") {
        return Err(format!("not a DaemonSet: kind {:?}", manifest.get("kind")));
    }
    let spec = manifest.pointer("/spec/template/spec").ok_or("the DaemonSet has no `spec.template.spec`")?;
    let containers = items(spec.get("containers"));
    let [container] = containers else {
        return Err(format!("the pod template has {} containers; the check runs one", containers.len()));
    };
    if !items(spec.get("initContainers")).is_empty() {
        return Err("the pod template has init containers, which the check does not run".into());
    }
    let name = string(container, "/name", "the container")?;
    let what = format!("container `{name}`");
    let ports: Vec<(String, u16)> = items(container.get("ports"))
        .iter()
        .filter_map(|p| {
            let number = u16::try_from(p.get("containerPort")?.as_u64()?).ok()?;
            Some((text(p.get("name")).unwrap_or_default(), number))
        })
        .collect();
    let mut env = Vec::new();
    for entry in items(container.get("env")) {
        let var = string(entry, "/name", &format!("{what}: env"))?;
        env.push((var.clone(), env_source(entry, &var)?));
    }
    let resource = |pointer: &str, scale: f64| -> Result<Option<i64>, String> {
        text(container.pointer(pointer)).map(|q| quantity(&q, scale)).transpose().map_err(|e| format!("{what}: {e}"))
    };
    let security = container.get("securityContext").cloned().unwrap_or(Value::Null);
    let mut mounts = Vec::new();
    for mount in items(container.get("volumeMounts")) {
        mounts.push(VolumeMount {
            name: string(mount, "/name", &format!("{what}: volumeMount"))?,
            path: string(mount, "/mountPath", &format!("{what}: volumeMount"))?,
            read_only: flag(mount, "/readOnly", false),
            propagation: text(mount.get("mountPropagation")),
        });
    }
    let mut volumes = Vec::new();
    for entry in items(spec.get("volumes")) {
        let volume_name = string(entry, "/name", "a volume")?;
        volumes.push((volume_name.clone(), volume(entry, &volume_name)?));
    }
    for mount in &mounts {
        if !volumes.iter().any(|(n, _)| n == &mount.name) {
            return Err(format!("{what}: volumeMount `{}` names no volume", mount.name));
        }
    }
    let template = ContainerTemplate {
        image: string(container, "/image", &what)?,
        command: strings(container.get("command")),
        args: strings(container.get("args")),
        env,
        startup: probe(container.get("startupProbe"), &ports, &format!("{what}: startupProbe"))?,
        readiness: probe(container.get("readinessProbe"), &ports, &format!("{what}: readinessProbe"))?,
        liveness: probe(container.get("livenessProbe"), &ports, &format!("{what}: livenessProbe"))?,
        ports,
        cpu_request_m: resource("/resources/requests/cpu", 1000.0)?,
        cpu_limit_m: resource("/resources/limits/cpu", 1000.0)?,
        memory_request: resource("/resources/requests/memory", 1.0)?,
        memory_limit: resource("/resources/limits/memory", 1.0)?,
        termination_message_policy: text(container.get("terminationMessagePolicy")).unwrap_or_else(|| "File".into()),
        security: Security {
            privileged: flag(&security, "/privileged", false),
            run_as_user: security.get("runAsUser").and_then(Value::as_i64),
            run_as_group: security.get("runAsGroup").and_then(Value::as_i64),
            allow_privilege_escalation: flag(&security, "/allowPrivilegeEscalation", true),
            read_only_root: flag(&security, "/readOnlyRootFilesystem", false),
            add: strings(security.pointer("/capabilities/add")),
            drop: strings(security.pointer("/capabilities/drop")),
            seccomp: text(security.pointer("/seccompProfile/type")),
            apparmor: text(security.pointer("/appArmorProfile/type")),
        },
        mounts,
        name,
    };
    Ok(PodTemplate {
        name: string(manifest, "/metadata/name", "the DaemonSet")?,
        namespace: text(manifest.pointer("/metadata/namespace")).unwrap_or_else(|| "default".into()),
        labels: pairs(manifest.pointer("/spec/template/metadata/labels")),
        annotations: pairs(manifest.pointer("/spec/template/metadata/annotations")),
        host_pid: flag(spec, "/hostPID", false),
        priority_class: text(spec.get("priorityClassName")),
        grace_period_s: spec.get("terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30),
        container: template,
        volumes,
    })
}

/// A ConfigMap manifest's `data`: file name to content.
pub fn config_map_data(manifest: &Value) -> Result<(String, BTreeMap<String, String>), String> {
    if manifest.get("kind").and_then(Value::as_str) != Some("ConfigMap") {
        return Err(format!("not a ConfigMap: kind {:?}", manifest.get("kind")));
    }
    let name = string(manifest, "/metadata/name", "the ConfigMap")?;
    Ok((name, pairs(manifest.get("data")).into_iter().collect()))
}

impl PodTemplate {
    /// The QoS class of the pod (one container: its resources decide).
    pub fn qos(&self) -> Qos {
        let c = &self.container;
        let requests = [c.cpu_request_m, c.memory_request];
        let limits = [c.cpu_limit_m, c.memory_limit];
        if requests.iter().chain(&limits).all(Option::is_none) {
            Qos::BestEffort
        } else if limits.iter().all(Option::is_some) && (requests == limits || requests.iter().all(Option::is_none)) {
            Qos::Guaranteed
        } else {
            Qos::Burstable
        }
    }

    /// The pod's cgroup as the kubelet's cgroupfs driver names it.
    pub fn cgroup_parent(&self, uid: &str) -> String {
        match self.qos() {
            Qos::Guaranteed => format!("/kubepods/pod{uid}"),
            Qos::Burstable => format!("/kubepods/burstable/pod{uid}"),
            Qos::BestEffort => format!("/kubepods/besteffort/pod{uid}"),
        }
    }

    /// The pod as the harness's CRI client describes it.
    pub fn pod(&self, name: &str, uid: &str) -> Pod {
        Pod {
            uid: uid.into(),
            name: name.into(),
            namespace: self.namespace.clone(),
            labels: self.labels.clone(),
            privileged: self.container.security.privileged,
        }
    }

    /// The container's environment as the kubelet resolves it on `node`
    /// for pod `pod` (no Secret exists: an optional one is left out, a
    /// required one is an error).
    pub fn env(&self, node: &str, pod: &Pod) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        for (name, source) in &self.container.env {
            let value = match source {
                EnvSource::Value(v) => v.clone(),
                EnvSource::Field(field) => match field.as_str() {
                    "spec.nodeName" => node.to_string(),
                    "metadata.name" => pod.name.clone(),
                    "metadata.namespace" => pod.namespace.clone(),
                    "metadata.uid" => pod.uid.clone(),
                    other => return Err(format!("env `{name}`: fieldRef `{other}` is not run by this check")),
                },
                EnvSource::Secret { optional: true, .. } => continue,
                EnvSource::Secret { name: secret, key, .. } => {
                    return Err(format!(
                        "env `{name}` needs key `{key}` of Secret `{secret}`, which the node does not have"
                    ))
                }
            };
            out.push((name.clone(), value));
        }
        Ok(out)
    }
}

/// The sandbox's configuration, as the kubelet makes it for the template's
/// pod `name` with `uid`: its labels and annotations, the QoS class's
/// cgroup parent, the node's PID namespace when `hostPID` (and, here, the
/// node's network: see the module doc).
pub fn sandbox_config(template: &PodTemplate, name: &str, uid: &str) -> PodSandboxConfig {
    let mut config = cri::sandbox_config(&template.pod(name, uid));
    config.annotations.extend(template.annotations.iter().cloned());
    if let Some(linux) = config.linux.as_mut() {
        linux.cgroup_parent = template.cgroup_parent(uid);
        let namespaces = linux.security_context.as_mut().and_then(|s| s.namespace_options.as_mut());
        if let (Some(namespaces), true) = (namespaces, template.host_pid) {
            namespaces.pid = NamespaceMode::Node as i32;
        }
    }
    config
}

/// The kubelet's `oom_score_adj` for the container: -997 for a
/// node-critical or Guaranteed pod, 1000 for BestEffort, else from the
/// memory request's share of the node's memory (`node_memory` bytes),
/// within 2..=999.
pub fn oom_score_adj(template: &PodTemplate, node_memory: i64) -> i64 {
    if template.priority_class.as_deref() == Some("system-node-critical") || template.qos() == Qos::Guaranteed {
        return CRITICAL_OOM_SCORE_ADJ;
    }
    if template.qos() == Qos::BestEffort {
        return 1000;
    }
    let request = template.container.memory_request.unwrap_or(0);
    let share = if node_memory > 0 { 1000 * request / node_memory } else { 0 };
    (1000 - share).clamp(2, 999)
}

/// The CRI name of a `mountPropagation`.
pub fn propagation(mode: Option<&str>) -> Result<MountPropagation, String> {
    match mode {
        None | Some("None") => Ok(MountPropagation::PropagationPrivate),
        Some("HostToContainer") => Ok(MountPropagation::PropagationHostToContainer),
        Some("Bidirectional") => Ok(MountPropagation::PropagationBidirectional),
        Some(other) => Err(format!("mountPropagation `{other}` is not one Kubernetes knows")),
    }
}

fn profile(kind: Option<&str>, what: &str) -> Result<Option<SecurityProfile>, String> {
    let profile_type = match kind {
        None => return Ok(None),
        Some("Unconfined") => ProfileType::Unconfined,
        Some("RuntimeDefault") => ProfileType::RuntimeDefault,
        Some(other) => return Err(format!("{what} `{other}` is not run by this check")),
    };
    Ok(Some(SecurityProfile { profile_type: profile_type as i32, localhost_ref: String::new() }))
}

/// The container's configuration, as the kubelet makes it: the harness's
/// request ([`cri::container_config`]: image by id, kubelet labels, masked
/// paths) with the template's command, args, `mounts` (built by the
/// caller from the volumes), `env`, resources and security context.
pub fn container_config(
    template: &PodTemplate,
    pod: &Pod,
    image_id: &str,
    mounts: Vec<Mount>,
    env: Vec<(String, String)>,
    node_memory: i64,
) -> Result<ContainerConfig, String> {
    let c = &template.container;
    let request = ContainerRequest {
        name: c.name.clone(),
        image_id: image_id.into(),
        image_reference: c.image.clone(),
        envs: env,
        mounts,
        privileged: c.security.privileged,
    };
    let mut config = cri::container_config(pod, &request);
    config.command = c.command.clone();
    config.args = c.args.clone();
    config
        .annotations
        .insert("io.kubernetes.container.terminationMessagePolicy".into(), c.termination_message_policy.clone());
    config.annotations.insert("io.kubernetes.pod.terminationGracePeriod".into(), template.grace_period_s.to_string());
    let s = &c.security;
    let seccomp = profile(s.seccomp.as_deref(), "seccompProfile")?;
    let apparmor = profile(s.apparmor.as_deref(), "appArmorProfile")?;
    if let Some(linux) = config.linux.as_mut() {
        linux.resources = Some(LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: c.cpu_limit_m.map_or(0, |m| m * 100),
            // The kubelet's milli-CPU to shares: 1024 a core, at least 2.
            cpu_shares: c.cpu_request_m.or(c.cpu_limit_m).map_or(2, |m| (m * 1024 / 1000).max(2)),
            memory_limit_in_bytes: c.memory_limit.unwrap_or(0),
            oom_score_adj: oom_score_adj(template, node_memory),
            ..LinuxContainerResources::default()
        });
        if let Some(security) = linux.security_context.as_mut() {
            security.capabilities = Some(Capability {
                add_capabilities: s.add.clone(),
                drop_capabilities: s.drop.clone(),
                ..Capability::default()
            });
            security.run_as_user = s.run_as_user.map(|value| Int64Value { value });
            security.run_as_group = s.run_as_group.map(|value| Int64Value { value });
            security.readonly_rootfs = s.read_only_root;
            security.no_new_privs = !s.allow_privilege_escalation;
            security.seccomp = seccomp;
            security.apparmor = apparmor;
            if let (Some(namespaces), true) = (security.namespace_options.as_mut(), template.host_pid) {
                namespaces.pid = NamespaceMode::Node as i32;
            }
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str) -> Result<Value, String> {
        let path = format!("{}/../deploy/kubernetes/base/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        yaml_to_json(&path, &text)
    }

    #[test]
    fn quantities_are_read_as_kubernetes_writes_them() -> Result<(), String> {
        assert_eq!(quantity("200Mi", 1.0)?, 200 * 1_048_576);
        assert_eq!(quantity("64M", 1.0)?, 64_000_000);
        assert_eq!(quantity("50m", 1000.0)?, 50);
        assert_eq!(quantity("1", 1000.0)?, 1000);
        assert_eq!(quantity("0.5", 1000.0)?, 500);
        assert!(quantity("lots", 1.0).is_err());
        Ok(())
    }

    #[test]
    fn the_deployed_daemonset_becomes_the_kubelets_requests() -> Result<(), String> {
        let template = pod_template(&manifest("daemonset.yaml")?)?;
        assert!(template.host_pid);
        assert_eq!(template.qos(), Qos::Burstable);
        assert_eq!(template.container.args, ["--artifact", "/etc/d4c/policy.d4c", "--config", "/etc/d4c/runtime.toml"]);
        let ready = template.container.readiness.clone().ok_or("no readinessProbe")?;
        assert_eq!((ready.path.as_str(), ready.port), ("/readyz", 9464));
        let startup = template.container.startup.clone().ok_or("no startupProbe")?;
        assert_eq!((startup.path.as_str(), startup.budget_s()), ("/healthz", 120));

        let uid = "0d4c2000-5a0e-4e57-8000-00000000d4c2";
        let pod = template.pod("d4c-runtime-vm001", uid);
        let env = template.env("node-1", &pod)?;
        assert_eq!(env, [("NODE_NAME".to_string(), "node-1".to_string()), ("D4C_LOG".into(), "info".into())]);

        let sandbox = sandbox_config(&template, "d4c-runtime-vm001", uid);
        let linux = sandbox.linux.clone().unwrap_or_default();
        assert_eq!(linux.cgroup_parent, format!("/kubepods/burstable/pod{uid}"));
        let namespaces = linux.security_context.unwrap_or_default().namespace_options.unwrap_or_default();
        assert_eq!(namespaces.pid, NamespaceMode::Node as i32, "hostPID");
        assert_eq!(sandbox.annotations.get("prometheus.io/port").map(String::as_str), Some("9464"));
        assert_eq!(sandbox.metadata.unwrap_or_default().namespace, "d4c");

        let config = container_config(&template, &pod, "sha256:ab", Vec::new(), env, 3 << 30)?;
        assert_eq!(config.args, template.container.args);
        assert!(config.command.is_empty(), "the image's entrypoint runs");
        let linux = config.linux.unwrap_or_default();
        let resources = linux.resources.unwrap_or_default();
        assert_eq!(resources.memory_limit_in_bytes, 200 << 20);
        assert_eq!((resources.cpu_shares, resources.cpu_quota), (51, 0));
        assert_eq!(resources.oom_score_adj, CRITICAL_OOM_SCORE_ADJ, "system-node-critical");
        let security = linux.security_context.unwrap_or_default();
        let caps = security.capabilities.clone().unwrap_or_default();
        assert_eq!(caps.drop_capabilities, ["ALL"]);
        assert_eq!(caps.add_capabilities, ["BPF", "PERFMON", "SYS_RESOURCE"]);
        assert!(!security.privileged && security.readonly_rootfs && security.no_new_privs);
        assert_eq!(security.run_as_user.map(|u| u.value), Some(0));
        assert_eq!(security.run_as_group.map(|g| g.value), Some(0));
        let unconfined = Some(ProfileType::Unconfined as i32);
        assert_eq!(security.seccomp.map(|p| p.profile_type), unconfined);
        assert_eq!(security.apparmor.map(|p| p.profile_type), unconfined);
        assert_eq!(security.namespace_options.unwrap_or_default().pid, NamespaceMode::Node as i32);
        assert!(!security.masked_paths.is_empty(), "the kubelet's default /proc masks still apply");

        let mounts: Vec<(&str, bool, Option<&str>)> = template
            .container
            .mounts
            .iter()
            .map(|m| (m.path.as_str(), m.read_only, m.propagation.as_deref()))
            .collect();
        assert!(mounts.contains(&("/sys/fs/bpf", false, Some("HostToContainer"))));
        for ro in ["/etc/d4c", "/sys/kernel/security", "/sys/kernel/tracing", "/sys/fs/cgroup"] {
            assert!(mounts.contains(&(ro, true, None)), "{ro} read-only");
        }
        // Containers' root file systems, mounted after the pod started,
        // are seen (their /etc/passwd).
        assert!(mounts.contains(&("/run/containerd/io.containerd.runtime.v2.task", true, Some("HostToContainer"))));
        assert!(mounts.contains(&("/var/lib/d4c", false, None)));
        let etc = template.volumes.iter().find(|(n, _)| n == "etc-d4c").map(|(_, v)| v.clone());
        let Some(Volume::Projected(files)) = etc else { return Err("etc-d4c is not projected".into()) };
        let files: Vec<(&str, &str)> = files.iter().map(|i| (i.config_map.as_str(), i.path.as_str())).collect();
        assert_eq!(files, [("d4c-policy", "policy.d4c"), ("d4c-config", "runtime.toml")]);
        Ok(())
    }

    #[test]
    fn the_configuration_is_the_config_maps_file() -> Result<(), String> {
        let (name, data) = config_map_data(&manifest("configmap.yaml")?)?;
        assert_eq!(name, "d4c-config");
        let toml = data.get("runtime.toml").ok_or("no runtime.toml")?;
        assert!(toml.contains("listen = \"0.0.0.0:9464\""), "{toml}");
        Ok(())
    }

    #[test]
    fn what_the_check_cannot_run_is_named() -> Result<(), String> {
        let mut value = manifest("daemonset.yaml")?;
        if let Some(volumes) = value.pointer_mut("/spec/template/spec/volumes").and_then(Value::as_array_mut) {
            volumes.push(serde_json::json!({"name": "scratch", "emptyDir": {}}));
        }
        let error = pod_template(&value).err().unwrap_or_default();
        assert!(error.contains("`scratch`") && error.contains("emptyDir"), "{error}");

        let template = pod_template(&manifest("daemonset.yaml")?)?;
        let mut required = template.clone();
        required
            .container
            .env
            .push(("KEY".into(), EnvSource::Secret { name: "s".into(), key: "k".into(), optional: false }));
        let error = required.env("n", &template.pod("p", "u")).err().unwrap_or_default();
        assert!(error.contains("Secret `s`"), "{error}");
        assert!(propagation(Some("Sideways")).is_err());
        Ok(())
    }
}
