//! What a decision is about: a container and one event in it.
//!
//! Events are what the kernel observes after classifying a syscall (see
//! `docs/scenarios.md` for the classification rules): a file operation on
//! a path, or a process operation. Container metadata is what the runtime
//! knows of the container the event happened in.

use crate::net::Transport;
use crate::ops::Operation;
use std::net::IpAddr;

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
    /// The acting process's user.
    pub user: User,
}

/// The user a process acts as, as its container sees it: the effective
/// user id mapped into the container's user namespace, and the name the
/// container's own `/etc/passwd` gives that id (`None` when it names none:
/// then no `processUserName` matches). The same name may be a different id
/// in two containers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct User {
    /// The effective user id.
    pub id: u32,
    /// Its name in the container's `/etc/passwd`.
    pub name: Option<String>,
}

impl User {
    /// `root` (id 0): what a container's processes run as unless its image
    /// or pod says otherwise.
    pub fn root() -> User {
        User { id: 0, name: Some("root".to_string()) }
    }

    /// The user as a clause of an event in words: empty for root (what
    /// processes run as unless told otherwise), else `, user 1000 `app``
    /// or `, user 1000 (no name)`.
    pub fn clause(&self) -> String {
        match self {
            _ if *self == User::root() => String::new(),
            User { id, name: Some(name) } => format!(", user {id} `{name}`"),
            User { id, name: None } => format!(", user {id} (no name)"),
        }
    }
}

impl Default for User {
    /// [`User::root`].
    fn default() -> User {
        User::root()
    }
}

/// A network event: a socket operation on an IPv4 or IPv6 address.
///
/// For `connect` and `sendTo` the address and port are the peer's (the
/// destination); for `bind` and `listen` they are the local ones, the
/// destination of the connections the socket will accept. The address is
/// kept as the kernel saw it; conditions match it normalised
/// ([`IpAddr::to_canonical`]), so an IPv4-mapped IPv6 peer is its IPv4
/// address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NetworkEvent {
    /// `connect`, `sendTo`, `bind` or `listen`.
    pub operation: Operation,
    /// The socket's transport.
    pub transport: Transport,
    /// The destination (or local) address.
    pub address: IpAddr,
    /// The destination (or local) port.
    pub port: u16,
    /// The acting process's executable.
    pub executable: String,
    /// The acting process's name (the kernel's comm).
    pub name: String,
    /// The acting process's user.
    pub user: User,
}

impl NetworkEvent {
    /// The event in words: `connect tcp 10.0.0.1:443 by /usr/bin/curl
    /// (name `curl`)`; an IPv6 address in brackets (`[fd00::1]:443`).
    pub fn describe(&self) -> String {
        format!(
            "{} {} {} by {} (name `{}`{})",
            self.operation.name(),
            self.transport.name(),
            std::net::SocketAddr::new(self.address, self.port),
            self.executable,
            self.name,
            self.user.clause()
        )
    }
}

/// An event of any kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A file event.
    File(FileEvent),
    /// A process event.
    Process(ProcessEvent),
    /// A network event.
    Network(NetworkEvent),
}

impl Event {
    /// Its kind: which selectors and tables decide it.
    pub fn kind(&self) -> crate::ops::Kind {
        match self {
            Event::File(_) => crate::ops::Kind::File,
            Event::Process(_) => crate::ops::Kind::Process,
            Event::Network(_) => crate::ops::Kind::Network,
        }
    }
}

/// Image references and their normalised names live with every other
/// normalisation (one truth for lint and runtime).
pub use crate::normalize::{image_full_name_forms, split_image};

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
