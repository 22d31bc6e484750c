//! The policy AST: what the user wrote, structurally valid, with spans.
//!
//! Produced by [`crate::syntax`]. Values are still text: the vocabularies
//! (operations, actions) and pattern syntaxes are checked by [`crate::check`].
//! Every key, list item and scalar keeps its byte span.

use crate::span::{Span, Spanned};
use d4c_artifact::patterns::TextSyntax;

/// The two types of selector and response (`file`, `process`).
pub use d4c_artifact::ops::Kind as PolicyKind;

/// A whole policy.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// The optional `version:` string.
    pub version: Option<Spanned<String>>,
    /// At most one section per kind, in source order.
    pub sections: Vec<Section>,
}

impl Policy {
    /// The section of `kind`, if written.
    pub fn section(&self, kind: PolicyKind) -> Option<&Section> {
        self.sections.iter().find(|s| s.kind == kind)
    }
}

/// A `file:` or `process:` section.
#[derive(Clone, Debug)]
pub struct Section {
    /// Which.
    pub kind: PolicyKind,
    /// The `file` / `process` key.
    pub key_span: Span,
    /// The selectors, in source order.
    pub selectors: Vec<Selector>,
    /// The responses, in source order.
    pub responses: Vec<Response>,
    /// Whether every selector could be read. When not, rules that need all
    /// names (undefined references) stay quiet rather than guess.
    pub selectors_complete: bool,
    /// Whether every response could be read. When not, "unused selector"
    /// stays quiet.
    pub responses_complete: bool,
}

/// A string as written: its text, where it is, and where its characters are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The text after YAML unescaping.
    pub text: String,
    /// The whole scalar in the source (quotes included).
    pub span: Span,
    /// Byte offset of `text` in the source when written verbatim.
    pub verbatim_at: Option<usize>,
}

impl Value {
    /// The span of bytes `range` of the text, or the whole scalar when the
    /// text is not written verbatim (escapes, folding).
    pub fn sub_span(&self, range: std::ops::Range<usize>) -> Span {
        match self.verbatim_at {
            Some(at) => Span::new(at + range.start, at + range.end),
            None => self.span,
        }
    }
}

/// One selector.
#[derive(Clone, Debug)]
pub struct Selector {
    /// The whole selector map.
    pub span: Span,
    /// Its name, when written as a string.
    pub name: Option<Value>,
    /// Its conditions, in source order, each key at most once.
    pub conditions: Vec<Condition>,
    /// Whether the selector had keys the syntax stage could not read
    /// (unknown, unsupported, of the other type). Later rules that would only
    /// repeat that problem, such as "no conditions", stay quiet.
    pub had_unreadable_keys: bool,
}

impl Selector {
    /// The condition with `key`, if written.
    pub fn condition(&self, key: ConditionKey) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.key == key)
    }
}

/// One condition of a selector.
#[derive(Clone, Debug)]
pub struct Condition {
    /// Which condition (legacy names already mapped).
    pub key: ConditionKey,
    /// The key as written.
    pub key_span: Span,
    /// Its value.
    pub value: ConditionValue,
    /// The whole value.
    pub value_span: Span,
}

/// A condition's value.
#[derive(Clone, Debug)]
pub enum ConditionValue {
    /// A list of strings (OR).
    List(Vec<Value>),
    /// A boolean flag.
    Bool(bool),
}

/// One response.
#[derive(Clone, Debug)]
pub struct Response {
    /// The whole response map.
    pub span: Span,
    /// `match:` (required), with the key's span.
    pub matches: Option<Spanned<Vec<Value>>>,
    /// `exclude:` (optional; empty when absent).
    pub excludes: Vec<Value>,
    /// `actions:` (required), with the key's span.
    pub actions: Option<Spanned<Vec<Value>>>,
}

/// Which kinds of selector a condition belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// Every selector (the container conditions).
    All,
    /// File selectors only.
    File,
    /// Process selectors only.
    Process,
    /// Process and network selectors (the acting process's executable and
    /// name).
    ProcessNetwork,
    /// Network selectors only.
    Network,
}

impl Applies {
    /// The kinds of selector that may carry the condition.
    pub fn kinds(self) -> &'static [PolicyKind] {
        match self {
            Applies::All => &PolicyKind::ALL,
            Applies::File => &[PolicyKind::File],
            Applies::Process => &[PolicyKind::Process],
            Applies::ProcessNetwork => &[PolicyKind::Process, PolicyKind::Network],
            Applies::Network => &[PolicyKind::Network],
        }
    }

    /// Whether a selector of `kind` may carry the condition.
    pub fn to(self, kind: PolicyKind) -> bool {
        self.kinds().contains(&kind)
    }

    /// The kinds, for messages: `file`, `process or network`.
    pub fn describe(self) -> String {
        self.kinds().iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" or ")
    }
}

/// The syntax of a condition's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueSyntax {
    /// A boolean flag, not a list.
    Flag,
    /// Operation names.
    Operation,
    /// Absolute path patterns.
    Path,
    /// `key:value` label patterns.
    Label,
    /// Plain text patterns (exact, or a trailing `*`), with the character
    /// rules of their kind.
    Text(TextSyntax),
    /// IPv4 or IPv6 addresses and CIDR blocks.
    Address,
    /// Ports and port ranges.
    Port,
    /// Transport protocols.
    Transport,
}

macro_rules! conditions {
    ($( $variant:ident = $key:literal, $applies:ident, $syntax:expr, $doc:literal; )*) => {
        /// A selector condition. See [`ConditionKey::ALL`] for the table.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ConditionKey {
            $( #[doc = $doc] $variant, )*
        }

        impl ConditionKey {
            /// Every condition, in the order the documentation lists them.
            pub const ALL: &'static [ConditionKey] = &[$(ConditionKey::$variant,)*];

            /// The YAML key.
            pub fn key(self) -> &'static str {
                match self { $(ConditionKey::$variant => $key,)* }
            }

            /// Which selectors may carry it.
            pub fn applies(self) -> Applies {
                match self { $(ConditionKey::$variant => Applies::$applies,)* }
            }

            /// The syntax of its values.
            pub fn syntax(self) -> ValueSyntax {
                use TextSyntax::*;
                use ValueSyntax::*;
                match self { $(ConditionKey::$variant => $syntax,)* }
            }

            /// What it matches, for documentation and the JSON schema.
            pub fn doc(self) -> &'static str {
                match self { $(ConditionKey::$variant => $doc,)* }
            }
        }
    };
}

conditions! {
    Operation              = "operation",                All,     Operation,     "Operations to match (file: createExecutable, modifyExecutable, createFile, modifyFile, deleteFile, execMemFd; process: fork, exec; network: connect, sendTo, bind, listen).";
    ContainerImageFullName = "containerImageFullName",   All,     Text(ImageFullName), "Full image names, registry and repository without tag, e.g. docker.io/nginx. A trailing * matches any suffix.";
    ContainerImageName     = "containerImageName",       All,     Text(ImageName),     "Image repository names, e.g. nginx. A trailing * matches any suffix.";
    ContainerImageTag      = "containerImageTag",        All,     Text(ImageTag),      "Image tags, e.g. latest. A trailing * matches any suffix.";
    KubernetesClusterId    = "kubernetesClusterId",      All,     Text(Cluster),       "Cluster ids: the UID of the kube-system namespace.";
    KubernetesClusterName  = "kubernetesClusterName",    All,     Text(Cluster),       "Cluster names, as configured on the runtime.";
    KubernetesNamespace    = "kubernetesNamespace",      All,     Text(Namespace),     "Kubernetes namespaces. A trailing * matches any suffix.";
    KubernetesPodName      = "kubernetesPodName",        All,     Text(PodName),       "Pod names. A trailing * matches any suffix.";
    KubernetesPodLabel     = "kubernetesPodLabel",       All,     Label,         "Pod labels as key:value; key: is the empty value; a trailing * on the value matches any suffix.";
    TargetFilePath         = "targetFilePath",           File,    Path,          "Absolute paths of the file operated on: /exact, /dir/* (direct children), /dir/** (the directory and everything below), /prefix*.";
    IgnoreVolumeMounts     = "ignoreVolumeMounts",       File,    Flag,          "When true, operations on files in any volume mount do not match.";
    IgnoreVolumeFiles      = "ignoreVolumeFiles",        File,    Flag,          "When true, operations on single-file mounts (ConfigMaps, Secrets, mounted files) do not match.";
    ProcessExecutable      = "processExecutable",        ProcessNetwork, Path,   "Absolute paths of the executable (of a network selector: the acting process's), with the same patterns as targetFilePath.";
    ProcessName            = "processName",              ProcessNetwork, Text(ProcessName), "Process names (the kernel's comm, at most 15 bytes). A trailing * matches any suffix.";
    SessionLeaderInteractive = "sessionLeaderInteractive", Process, Flag,        "true: only sessions whose leader has a controlling TTY; false: only sessions whose leader has none.";
    ProcessUserId          = "processUserId",            Process, Text(UserId),      "Effective user ids of the acting process, as its container sees them (mapped into its user namespace), in decimal. No wildcard.";
    ProcessUserName        = "processUserName",          Process, Text(UserName),    "User names of the acting process's effective user id, as the container's own /etc/passwd names it. A trailing * matches any suffix.";
    DestinationAddress     = "destinationAddress",       Network, Address,       "IPv4 and IPv6 addresses and CIDR blocks (10.0.0.0/8, fd00::/8, 192.0.2.7): the peer of connect and sendTo, the local address of bind and listen. An IPv4-mapped IPv6 address is its IPv4 address.";
    DestinationPort        = "destinationPort",          Network, Port,          "Ports and inclusive port ranges (443, 8000-8999): the peer's port of connect and sendTo, the local port of bind and listen.";
    Transport              = "transport",                Network, Transport,     "Transport protocols: tcp, udp.";
}

impl ConditionKey {
    /// The condition whose YAML key is `key`, if any.
    pub fn from_key(key: &str) -> Option<ConditionKey> {
        ConditionKey::ALL.iter().copied().find(|c| c.key() == key)
    }
}

/// Keys of older policy formats that name a modern condition.
pub const LEGACY_KEYS: &[(&str, ConditionKey)] = &[
    ("orchestratorClusterId", ConditionKey::KubernetesClusterId),
    ("orchestratorClusterName", ConditionKey::KubernetesClusterName),
    ("orchestratorNamespace", ConditionKey::KubernetesNamespace),
    ("orchestratorResourceLabel", ConditionKey::KubernetesPodLabel),
    ("orchestratorResourceName", ConditionKey::KubernetesPodName),
    ("fullContainerImageName", ConditionKey::ContainerImageFullName),
    ("kubernetesResourceLabel", ConditionKey::KubernetesPodLabel),
    ("kubernetesResourceName", ConditionKey::KubernetesPodName),
];

/// Keys of older formats that d4c recognises but does not evaluate, with the
/// reason given to the user. `orchestratorType` is handled apart: its only
/// legal value, `kubernetes`, is always true under d4c.
pub const UNSUPPORTED_KEYS: &[(&str, &str)] =
    &[("sessionLeaderName", "use `processName` on the session leader's process, or `sessionLeaderInteractive`")];

/// The legacy key that is always true on a Kubernetes node.
pub const ORCHESTRATOR_TYPE_KEY: &str = "orchestratorType";
