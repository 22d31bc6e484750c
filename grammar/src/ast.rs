//! The scenario AST: what a `*.d4ct` file says, with the byte span of every
//! part a diagnostic may point at.
//!
//! The AST keeps the file's order and its user text (decoded strings, octal
//! modes as numbers). It applies no defaults: a missing `mode` is `None`, a
//! missing `as` is `None`. The evaluators give them their meaning.

/// Byte range into the scenario text.
pub type Span = std::ops::Range<usize>;

/// A value and the byte range of the text it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written: for a quoted string, the quotes included.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Pairs `value` with `span`.
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

/// A whole scenario file: the policy under test, the containers and the
/// steps, each in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScenarioFile {
    /// The `policy` path as written (relative to the scenario file). `None`
    /// only when the file has none, which is an error.
    pub policy: Option<Spanned<String>>,
    /// Every `container` block, duplicates included (a duplicate is an error).
    pub containers: Vec<ContainerDecl>,
    /// Every `in` line that parsed, in order.
    pub steps: Vec<Step>,
}

/// `container NAME { fields }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDecl {
    /// The container's name, an identifier.
    pub name: Spanned<String>,
    /// From `container` to the closing `}`.
    pub span: Span,
    /// The fields in file order, each with its span from keyword to last value.
    pub fields: Vec<Spanned<ContainerField>>,
}

/// One field of a container block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerField {
    /// `image STRING`: the image reference, such as `nginx:1.25`.
    Image(String),
    /// `namespace STRING`.
    Namespace(String),
    /// `pod STRING`.
    Pod(String),
    /// `label STRING = STRING`: a pod label.
    Label {
        /// The label's key.
        key: String,
        /// The label's value.
        value: String,
    },
    /// `cluster-id STRING`.
    ClusterId(String),
    /// `cluster-name STRING`.
    ClusterName(String),
    /// `volume PATH`: a directory volume mount.
    Volume(String),
    /// `volume file PATH`: a single-file mount.
    VolumeFile(String),
    /// `file PATH [mode OCTAL]`: a regular file that exists before the steps.
    File {
        /// The file's path.
        path: String,
        /// Its mode when given (the evaluators default to `0o644`).
        mode: Option<u32>,
    },
    /// `dir PATH [mode OCTAL]`: a directory that exists before the steps
    /// (the parents of `file`s exist without one).
    Dir {
        /// The directory's path.
        path: String,
        /// Its mode when given (the evaluators default to `0o755`).
        mode: Option<u32>,
    },
    /// `user STRING = NUMBER`: the container's `/etc/passwd` names user
    /// `name` with id `id` (see [`ContainerDecl::passwd`]).
    User {
        /// The user's name.
        name: String,
        /// Its user id.
        id: u32,
    },
}

impl ContainerField {
    /// The field's keyword as written, such as `cluster-id` or `volume file`.
    pub fn keyword(&self) -> &'static str {
        match self {
            ContainerField::Image(_) => "image",
            ContainerField::Namespace(_) => "namespace",
            ContainerField::Pod(_) => "pod",
            ContainerField::Label { .. } => "label",
            ContainerField::ClusterId(_) => "cluster-id",
            ContainerField::ClusterName(_) => "cluster-name",
            ContainerField::Volume(_) => "volume",
            ContainerField::VolumeFile(_) => "volume file",
            ContainerField::File { .. } => "file",
            ContainerField::Dir { .. } => "dir",
            ContainerField::User { .. } => "user",
        }
    }
}

/// The path of the file that `user` fields make.
pub const PASSWD: &str = "/etc/passwd";

/// The name `/etc/passwd` gives user id 0 unless a `user` field says otherwise.
pub const ROOT: &str = "root";

impl ContainerDecl {
    /// The `user` fields, `(name, id)` in file order.
    pub fn users(&self) -> impl Iterator<Item = (&str, u32)> {
        self.fields.iter().filter_map(|f| match &f.value {
            ContainerField::User { name, id } => Some((name.as_str(), *id)),
            _ => None,
        })
    }

    /// The container's `/etc/passwd` as the scenario defines it, `(name,
    /// id)` in the order of its lines: `None` when the container declares
    /// no users (its image's file, which names `root` = 0 and nothing the
    /// scenario may rely on); otherwise `root` = 0 first, unless a `user`
    /// field names `root` or id 0, then the declared users in file order.
    pub fn passwd(&self) -> Option<Vec<(&str, u32)>> {
        let declared: Vec<(&str, u32)> = self.users().collect();
        if declared.is_empty() {
            return None;
        }
        let mut lines = Vec::with_capacity(declared.len() + 1);
        if !declared.iter().any(|&(name, id)| name == ROOT || id == 0) {
            lines.push((ROOT, 0));
        }
        lines.extend(declared);
        Some(lines)
    }

    /// The user a step's process acts as in this container, from the
    /// step's `user` (`None`, no `user`: id 0): its id and the name this
    /// container's `/etc/passwd` gives that id (the first line of an id
    /// names it), if any. `None` for a name the container does not declare
    /// (an error [`crate::parse`] reports).
    pub fn acting_user(&self, user: Option<&UserRef>) -> Option<(u32, Option<&str>)> {
        let passwd = self.passwd().unwrap_or_else(|| vec![(ROOT, 0)]);
        match user {
            None => Some((0, passwd.iter().find(|&&(_, id)| id == 0).map(|&(name, _)| name))),
            Some(UserRef::Name(wanted)) => {
                passwd.iter().find(|&&(name, _)| name == wanted).map(|&(name, id)| (id, Some(name)))
            }
            Some(UserRef::Id(wanted)) => {
                Some((*wanted, passwd.iter().find(|&&(_, id)| id == *wanted).map(|&(name, _)| name)))
            }
        }
    }
}

/// A step's `user`: a name the container declares, or a user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    /// `user STRING`: the id the container's `/etc/passwd` gives that name.
    Name(String),
    /// `user NUMBER`: that id, named as the container's `/etc/passwd` names it.
    Id(u32),
}

/// `in NAME [as PATH] [name STRING] [user STRING | NUMBER] [interactive]: OP => VERDICT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// From `in` to the end of the verdict.
    pub span: Span,
    /// The container's name; `host` means no container.
    pub container: Spanned<String>,
    /// `as PATH`: the acting process's executable.
    pub actor: Option<Spanned<String>>,
    /// `name STRING`: the acting process's name (`comm`).
    pub actor_name: Option<Spanned<String>>,
    /// `user STRING | NUMBER`: the acting process's user (root when `None`);
    /// [`ContainerDecl::acting_user`] resolves it.
    pub user: Option<Spanned<UserRef>>,
    /// `interactive`: the session leader has a controlling terminal.
    pub interactive: bool,
    /// The operation, its span from keyword to last argument.
    pub op: Spanned<Op>,
    /// The expected verdict, its span from first word to last.
    pub verdict: Spanned<Verdict>,
}

/// One operation: one syscall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `create PATH [mode OCTAL]`.
    Create {
        /// The new file.
        path: Spanned<String>,
        /// Its mode when given.
        mode: Option<Spanned<u32>>,
    },
    /// `write PATH`.
    Write(Spanned<String>),
    /// `truncate PATH`.
    Truncate(Spanned<String>),
    /// `chmod PATH OCTAL`.
    Chmod {
        /// The file.
        path: Spanned<String>,
        /// Its new mode.
        mode: Spanned<u32>,
    },
    /// `mknod PATH [mode OCTAL]`.
    Mknod {
        /// The new file.
        path: Spanned<String>,
        /// Its mode when given.
        mode: Option<Spanned<u32>>,
    },
    /// `rename PATH to PATH`.
    Rename {
        /// The source.
        from: Spanned<String>,
        /// The destination.
        to: Spanned<String>,
    },
    /// `link PATH to PATH` (a hard link).
    Link {
        /// The existing file.
        from: Spanned<String>,
        /// The new name.
        to: Spanned<String>,
    },
    /// `unlink PATH`.
    Unlink(Spanned<String>),
    /// `exec PATH`.
    Exec(Spanned<String>),
    /// `fork`.
    Fork,
    /// `memfd-exec STRING`: the memfd's name.
    MemfdExec(Spanned<String>),
    /// `mkdir PATH [mode OCTAL]`: a new directory (never decided).
    Mkdir {
        /// The new directory.
        path: Spanned<String>,
        /// Its mode when given.
        mode: Option<Spanned<u32>>,
    },
    /// `symlink TARGET to PATH`: a symbolic link at `link` to `target`.
    Symlink {
        /// What the link points to (any text; it need not exist).
        target: Spanned<String>,
        /// The new link.
        link: Spanned<String>,
    },
    /// `setfacl PATH OCTAL`: the file's access ACL set to the minimal one
    /// that gives the permission bits of `OCTAL` (owner, group, others).
    Setfacl {
        /// The file.
        path: Spanned<String>,
        /// The permission bits the ACL gives.
        mode: Spanned<u32>,
    },
    /// `exchange PATH with PATH`: `renameat2(RENAME_EXCHANGE)`.
    Exchange {
        /// One name.
        a: Spanned<String>,
        /// The other.
        b: Spanned<String>,
    },
}

impl Op {
    /// The operation's keyword, such as `memfd-exec`.
    pub fn keyword(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::Write(_) => "write",
            Op::Truncate(_) => "truncate",
            Op::Chmod { .. } => "chmod",
            Op::Mknod { .. } => "mknod",
            Op::Rename { .. } => "rename",
            Op::Link { .. } => "link",
            Op::Unlink(_) => "unlink",
            Op::Exec(_) => "exec",
            Op::Fork => "fork",
            Op::MemfdExec(_) => "memfd-exec",
            Op::Mkdir { .. } => "mkdir",
            Op::Symlink { .. } => "symlink",
            Op::Exchange { .. } => "exchange",
            Op::Setfacl { .. } => "setfacl",
        }
    }
}

/// What the policy must do to a step's operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `allow`: no response fires.
    Allow,
    /// `ACTION, ... [NAME, ...]`.
    Actions {
        /// Exactly the union of the actions of the responses that fire.
        actions: Vec<Spanned<Action>>,
        /// When given, exactly the selectors that matched.
        selectors: Option<Vec<Spanned<String>>>,
    },
}

/// A response action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `log`.
    Log,
    /// `alert`.
    Alert,
    /// `block`.
    Block,
}

impl Action {
    /// The action's keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Action::Log => "log",
            Action::Alert => "alert",
            Action::Block => "block",
        }
    }
}
