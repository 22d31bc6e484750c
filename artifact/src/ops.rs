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
}

/// The two kinds of selector, event and response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// File operations.
    File,
    /// Process operations.
    Process,
}

impl Kind {
    /// `file` or `process`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Process => "process",
        }
    }

    /// The other kind.
    pub fn other(self) -> Kind {
        match self {
            Kind::File => Kind::Process,
            Kind::Process => Kind::File,
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
            _ => Kind::File,
        }
    }

    /// Its index in its kind's tables (file: 0..6, process: 0..2).
    pub fn table_index(self) -> usize {
        match self {
            Operation::CreateExecutable | Operation::Fork => 0,
            Operation::ModifyExecutable | Operation::Exec => 1,
            Operation::CreateFile => 2,
            Operation::ModifyFile => 3,
            Operation::DeleteFile => 4,
            Operation::ExecMemFd => 5,
        }
    }

    /// The operations of `kind`, in table order.
    pub fn of_kind(kind: Kind) -> &'static [Operation] {
        match kind {
            Kind::File => Operation::ALL.get(..FILE_OPS).unwrap_or_default(),
            Kind::Process => Operation::ALL.get(FILE_OPS..FILE_OPS + PROCESS_OPS).unwrap_or_default(),
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
