//! What a decision is about: a container and one event in it.
//!
//! Events are what the kernel observes after classifying a syscall (see
//! `docs/scenarios.md` for the classification rules): a file operation on
//! a path, or a process operation. Container metadata is what the runtime
//! knows of the container the event happened in.

use crate::ops::Operation;

/// Where a file event's file lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Volume {
    /// The container's root file system.
    RootFs,
    /// A directory volume mount.
    Volume,
    /// A single-file mount (ConfigMap, Secret, mounted file).
    VolumeFile,
}

impl Volume {
    /// Every state, in table order.
    pub const ALL: [Volume; 3] = [Volume::RootFs, Volume::Volume, Volume::VolumeFile];

    /// Its index in the file tables.
    pub fn table_index(self) -> usize {
        match self {
            Volume::RootFs => 0,
            Volume::Volume => 1,
            Volume::VolumeFile => 2,
        }
    }
}

/// A file event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileEvent {
    /// One of the file operations.
    pub operation: Operation,
    /// The path as seen inside the container; `None` for `execMemFd`, whose
    /// file has no path.
    pub path: Option<String>,
    /// Where the file lives.
    pub volume: Volume,
    /// The file is a directory (renamed, moved or mounted): the event
    /// stands for every path at or below `path`, so a path condition holds
    /// when it holds for `path` or for any path below it.
    pub directory: bool,
}

/// A process event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProcessEvent {
    /// `fork` or `exec`.
    pub operation: Operation,
    /// The executable's path (`memfd:NAME` for a fileless exec).
    pub executable: String,
    /// The process name (the kernel's comm, at most 15 bytes).
    pub name: String,
    /// Whether the session leader has a controlling terminal.
    pub interactive: bool,
}

/// An event of either kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A file event.
    File(FileEvent),
    /// A process event.
    Process(ProcessEvent),
}

impl Event {
    /// Its kind: which selectors and tables decide it.
    pub fn kind(&self) -> crate::ops::Kind {
        match self {
            Event::File(_) => crate::ops::Kind::File,
            Event::Process(_) => crate::ops::Kind::Process,
        }
    }
}

/// The spellings of a full image name that name the same image: Docker Hub's
/// official images are `docker.io/library/NAME`, also written
/// `docker.io/NAME`. A `containerImageFullName` pattern matches when it
/// matches any of them.
pub fn image_full_name_forms(name: &str) -> Vec<String> {
    let mut forms = vec![name.to_string()];
    if let Some(rest) = name.strip_prefix("docker.io/library/") {
        if !rest.contains('/') {
            forms.push(format!("docker.io/{rest}"));
        }
    } else if let Some(rest) = name.strip_prefix("docker.io/") {
        if !rest.contains('/') {
            forms.push(format!("docker.io/library/{rest}"));
        }
    }
    forms
}

/// What the runtime knows of a container. A field the runtime could not
/// learn is `None`, and no condition on it matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Container {
    /// `registry/repository`, e.g. `docker.io/library/nginx`.
    pub image_full_name: Option<String>,
    /// The repository's last component, e.g. `nginx`.
    pub image_name: Option<String>,
    /// The tag, e.g. `1.25`.
    pub image_tag: Option<String>,
    /// The `kube-system` namespace UID.
    pub cluster_id: Option<String>,
    /// The configured cluster name.
    pub cluster_name: Option<String>,
    /// The pod's namespace.
    pub namespace: Option<String>,
    /// The pod's name.
    pub pod_name: Option<String>,
    /// The pod's labels.
    pub labels: Vec<(String, String)>,
}

/// Splits an image reference into full name, name and tag, reading a
/// reference without a registry as Docker Hub's. The tag is `latest` when
/// none is written, and none when the reference is pinned by digest only.
pub fn split_image(reference: &str) -> (String, String, Option<String>) {
    let (without_digest, digest) = reference.split_once('@').unwrap_or((reference, ""));
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match without_digest.get(last_slash..).and_then(|tail| tail.rfind(':')) {
        Some(colon) => {
            let at = last_slash + colon;
            (without_digest.get(..at).unwrap_or(without_digest), without_digest.get(at + 1..).unwrap_or("latest"))
        }
        None => (without_digest, "latest"),
    };
    let first = repo.split('/').next().unwrap_or("");
    let has_registry = repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    let name = full.rsplit('/').next().unwrap_or(&full).to_string();
    let written_tag = without_digest.get(last_slash..).is_some_and(|tail| tail.contains(':'));
    let tag = (written_tag || digest.is_empty()).then(|| tag.to_string());
    (full, name, tag)
}

#[cfg(test)]
mod split_image_tests {
    use super::split_image;

    #[test]
    fn image_references_split_like_docker() {
        let cases = [
            ("nginx", ("docker.io/library/nginx", "nginx", Some("latest"))),
            ("nginx:1.25", ("docker.io/library/nginx", "nginx", Some("1.25"))),
            ("bitnami/redis:7", ("docker.io/bitnami/redis", "redis", Some("7"))),
            ("gcr.io/proj/app:v1", ("gcr.io/proj/app", "app", Some("v1"))),
            ("localhost:5000/app", ("localhost:5000/app", "app", Some("latest"))),
            ("quay.io/x/y@sha256:abc", ("quay.io/x/y", "y", None)),
            ("quay.io/x/y:1@sha256:abc", ("quay.io/x/y", "y", Some("1"))),
        ];
        for (reference, (full, name, tag)) in cases {
            let want = (full.to_string(), name.to_string(), tag.map(str::to_string));
            assert_eq!(split_image(reference), want, "{reference}");
        }
    }
}
