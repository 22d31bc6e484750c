//! Operations and actions: the vocabulary shared by the compiler, the
//! tables and the runtime. Table indices are part of the kernel ABI.

use crate::tables::{FILE_OPS, PROCESS_OPS};
use serde::{Deserialize, Serialize};

/// An operation a selector can match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operation {
    /// A new file with an execute bit (created so, or given one by chmod).
    CreateExecutable,
    /// A change to a file that has an execute bit.
    ModifyExecutable,
    /// A new file.
    CreateFile,
    /// A change to an existing file.
    ModifyFile,
    /// A file removed (or renamed away).
    DeleteFile,
    /// An exec of a memfd or other fileless file.
    ExecMemFd,
    /// A process forked.
    Fork,
    /// A program executed.
    Exec,
    /// A TCP connection opened, or a UDP socket connected
    /// (`security_socket_connect`).
    Connect,
    /// A datagram sent to an address given with the send, on a socket not
    /// connected to it (`sendto`/`sendmsg` with a destination).
    SendTo,
    /// A socket bound to a local address and port (`security_socket_bind`).
    Bind,
    /// A TCP socket made to accept connections (`security_socket_listen`);
    /// its address is the one it is bound to.
    Listen,
}

/// The number of network operations (their tables' width).
pub const NETWORK_OPS: usize = 4;

/// The three kinds of selector, event and response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// File operations.
    File,
    /// Process operations.
    Process,
    /// Network operations.
    Network,
}

impl Kind {
    /// Every kind, in the order sections are documented.
    pub const ALL: [Kind; 3] = [Kind::File, Kind::Process, Kind::Network];

    /// `file` or `process`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Process => "process",
            Kind::Network => "network",
        }
    }
}

impl Operation {
    /// Every operation, file ones first, each kind in table order.
    pub const ALL: &'static [Operation] = &[
        Operation::CreateExecutable,
        Operation::ModifyExecutable,
        Operation::CreateFile,
        Operation::ModifyFile,
        Operation::DeleteFile,
        Operation::ExecMemFd,
        Operation::Fork,
        Operation::Exec,
        Operation::Connect,
        Operation::SendTo,
        Operation::Bind,
        Operation::Listen,
    ];

    /// The name written in policies.
    pub fn name(self) -> &'static str {
        match self {
            Operation::CreateExecutable => "createExecutable",
            Operation::ModifyExecutable => "modifyExecutable",
            Operation::CreateFile => "createFile",
            Operation::ModifyFile => "modifyFile",
            Operation::DeleteFile => "deleteFile",
            Operation::ExecMemFd => "execMemFd",
            Operation::Fork => "fork",
            Operation::Exec => "exec",
            Operation::Connect => "connect",
            Operation::SendTo => "sendTo",
            Operation::Bind => "bind",
            Operation::Listen => "listen",
        }
    }

    /// The operation named `name` (exact case).
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.iter().copied().find(|o| o.name() == name)
    }

    /// The kind it belongs to.
    pub fn kind(self) -> Kind {
        match self {
            Operation::Fork | Operation::Exec => Kind::Process,
            Operation::Connect | Operation::SendTo | Operation::Bind | Operation::Listen => Kind::Network,
            _ => Kind::File,
        }
    }

    /// Its index in its kind's tables (file: 0..6, process: 0..2,
    /// network: 0..4).
    pub fn table_index(self) -> usize {
        match self {
            Operation::CreateExecutable | Operation::Fork | Operation::Connect => 0,
            Operation::ModifyExecutable | Operation::Exec | Operation::SendTo => 1,
            Operation::CreateFile | Operation::Bind => 2,
            Operation::ModifyFile | Operation::Listen => 3,
            Operation::DeleteFile => 4,
            Operation::ExecMemFd => 5,
        }
    }

    /// The operations of `kind`, in table order.
    pub fn of_kind(kind: Kind) -> &'static [Operation] {
        match kind {
            Kind::File => Operation::ALL.get(..FILE_OPS).unwrap_or_default(),
            Kind::Process => Operation::ALL.get(FILE_OPS..FILE_OPS + PROCESS_OPS).unwrap_or_default(),
            Kind::Network => {
                Operation::ALL.get(FILE_OPS + PROCESS_OPS..FILE_OPS + PROCESS_OPS + NETWORK_OPS).unwrap_or_default()
            }
        }
    }

    /// Whether it changes a file that is not necessarily an executable:
    /// blocking these needs a `targetFilePath` (`D4C0029`).
    pub fn is_file_integrity(self) -> bool {
        matches!(self, Operation::CreateFile | Operation::ModifyFile | Operation::DeleteFile)
    }
}

/// A set of actions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Actions(u8);

impl Actions {
    /// No action.
    pub const NONE: Actions = Actions(0);
    /// `log`: a document to the file or process data stream.
    pub const LOG: Actions = Actions(1);
    /// `alert`: a document to the alerts data stream.
    pub const ALERT: Actions = Actions(2);
    /// `block`: the operation is refused.
    pub const BLOCK: Actions = Actions(4);

    /// The action named `name`, as written in policies.
    pub fn from_name(name: &str) -> Option<Actions> {
        match name {
            "log" => Some(Actions::LOG),
            "alert" => Some(Actions::ALERT),
            "block" => Some(Actions::BLOCK),
            _ => None,
        }
    }

    /// From raw bits (log = 1, alert = 2, block = 4); other bits dropped.
    pub fn from_bits(bits: u8) -> Actions {
        Actions(bits & 7)
    }

    /// Both sets.
    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// Whether every action of `other` is in `self`.
    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The raw bits (log = 1, alert = 2, block = 4).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The names, in `log`, `alert`, `block` order.
    pub fn names(self) -> Vec<&'static str> {
        [(Actions::LOG, "log"), (Actions::ALERT, "alert"), (Actions::BLOCK, "block")]
            .into_iter()
            .filter(|(a, _)| self.contains(*a))
            .map(|(_, n)| n)
            .collect()
    }
}

impl std::fmt::Display for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("allow");
        }
        f.write_str(&self.names().join(", "))
    }
}
