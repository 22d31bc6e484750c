//! The registry of diagnostic codes: one line per code.
//!
//! Each code has a stable id (`D4C0007`), a kebab-case name, a default
//! severity, a one-line summary, and a long explanation with a bad and a good
//! example, kept in `codes/D4Cnnnn.md` and shown by `d4cc explain`. Ids are
//! never reused or renumbered; a retired code keeps its line.

use serde::{Serialize, Serializer};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The policy is invalid: `d4cc compile` refuses it.
    Error,
    /// The policy is valid but probably not what was meant.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl Serialize for Severity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

macro_rules! codes {
    ($( $variant:ident = $id:literal, $name:literal, $sev:ident, $summary:literal; )*) => {
        /// A diagnostic code. See the module documentation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( #[doc = $summary] $variant, )*
        }

        impl Code {
            /// Every code, in id order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable id, e.g. `D4C0007`.
            pub fn id(self) -> &'static str {
                match self { $(Code::$variant => $id,)* }
            }

            /// The kebab-case name, e.g. `duplicate-key`.
            pub fn name(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// The default severity.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }

            /// One line saying what the code is about.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }

            /// The long explanation (Markdown), with a bad and a good example.
            pub fn explanation(self) -> &'static str {
                match self { $(Code::$variant => include_str!(concat!("codes/", $id, ".md")),)* }
            }
        }
    };
}

codes! {
    InvalidUtf8          = "D4C0001", "invalid-utf8",          Error,   "the file is not UTF-8 text";
    InvalidYaml          = "D4C0002", "invalid-yaml",          Error,   "the file is not well-formed YAML";
    InputLimit           = "D4C0003", "input-limit",           Error,   "the file exceeds a limit of the front end (size, nesting or alias expansion)";
    DocumentCount        = "D4C0004", "document-count",        Error,   "a policy file must hold exactly one YAML document";
    WrongType            = "D4C0005", "wrong-type",            Error,   "a value has the wrong YAML type (map, list, string or boolean)";
    UnknownKey           = "D4C0006", "unknown-key",           Error,   "a key that the policy format does not define";
    DuplicateKey         = "D4C0007", "duplicate-key",         Error,   "a key appears twice in the same map";
    MissingKey           = "D4C0008", "missing-key",           Error,   "a required key is missing";
    EmptyValue           = "D4C0009", "empty-value",           Error,   "an empty list or empty string where a value is required";
    LegacyKey            = "D4C0010", "legacy-key",            Warning, "a key from an older policy format that has a modern name";
    UnsupportedCondition = "D4C0011", "unsupported-condition", Error,   "a condition of the original format that d4c does not evaluate";
    ConditionWrongType   = "D4C0012", "condition-wrong-type",  Error,   "a condition of another selector type (a file condition in a process or network selector, and so on)";
    InvalidName          = "D4C0013", "invalid-name",          Error,   "a selector name that is not a valid identifier";
    DuplicateName        = "D4C0014", "duplicate-name",        Error,   "two selectors of the same type share a name";
    NoConditions         = "D4C0015", "no-conditions",         Error,   "a selector with no condition besides its name";
    InvalidOperation     = "D4C0016", "invalid-operation",     Error,   "an operation that the selector's type does not have";
    InvalidPathPattern   = "D4C0017", "invalid-path-pattern",  Error,   "a path pattern that is not absolute, canonical, or has a misplaced wildcard";
    InvalidLabelPattern  = "D4C0018", "invalid-label-pattern", Error,   "a pod label pattern that is not `key:value` as Kubernetes allows";
    InvalidValuePattern  = "D4C0019", "invalid-value-pattern", Error,   "an image, tag, namespace, pod or cluster value that no real object can have";
    ValueTooLong         = "D4C0020", "value-too-long",        Error,   "a value longer than d4c's limit for it";
    ExclusiveConditions  = "D4C0021", "exclusive-conditions",  Error,   "two conditions that may not appear in the same selector";
    UnsatisfiableSelector= "D4C0022", "unsatisfiable-selector",Error,   "a selector that no operation can ever match";
    DuplicateValue       = "D4C0023", "duplicate-value",       Warning, "the same value twice in one list";
    UnusedSelector       = "D4C0024", "unused-selector",       Warning, "a selector that no response uses";
    UndefinedSelector    = "D4C0025", "undefined-selector",    Error,   "a response names a selector that does not exist";
    SelectorOfOtherType  = "D4C0026", "selector-of-other-type",Error,   "a response names a selector of another type (file, process or network)";
    InvalidAction        = "D4C0027", "invalid-action",        Error,   "an action other than `log`, `alert` or `block`";
    BlockWithoutAlert    = "D4C0028", "block-without-alert",   Error,   "a response that blocks without also alerting";
    BlockWithoutPath     = "D4C0029", "block-without-path",    Error,   "a response that blocks file operations without a `targetFilePath` to confine it";
    BlockEverything      = "D4C0030", "block-everything",      Warning, "a response that blocks file operations on every path (`/**`)";
    ResponseNeverFires   = "D4C0031", "response-never-fires",  Warning, "a response whose excludes cover all of its matches";
    DuplicateResponse    = "D4C0032", "duplicate-response",    Warning, "a response identical to an earlier one";
    LimitExceeded        = "D4C0033", "limit-exceeded",        Error,   "a policy larger than d4c's decision tables hold";
    ScenarioSyntax       = "D4C0034", "scenario-syntax",       Error,   "a scenario file that the scenario language does not accept";
    ScenarioState        = "D4C0035", "scenario-state",        Error,   "a scenario step that cannot be performed as written";
    ScenarioFailed       = "D4C0036", "scenario-failed",       Error,   "a scenario step whose expected verdict differs from the policy's decision";
    EmptyExclude         = "D4C0037", "empty-exclude",         Warning, "an `exclude: []` that lists no selector, as Kibana's editor saves it";
    UnmatchableValue     = "D4C0038", "unmatchable-value",     Error,   "a well-formed value that no container's metadata, as the runtime normalises it, can hold";
    PolicyLocation       = "D4C0039", "policy-location",       Error,   "an Elastic Agent configuration or Fleet package policy that does not hold exactly one policy where the original reads it";
    PolicyMetadata       = "D4C0040", "policy-metadata",       Error,   "a package policy id or revision that the artifact or the integration's mappings cannot hold";
    AmbiguousForm        = "D4C0041", "ambiguous-form",        Warning, "a file that reads as more than one form of policy; says which one was read";
    ControlCharacter     = "D4C0042", "control-character",     Error,   "a string value that holds a control character (a line break, a carriage return, an escape ...)";
    InvalidNetworkValue  = "D4C0043", "invalid-network-value", Error,   "an address, CIDR block, port, port range or transport that d4c cannot read";
    NetworkNotCompiled   = "D4C0044", "network-not-compiled",  Error,   "a `network:` section: d4cc checks it, but cannot compile it into an artifact in this version";
}

impl Code {
    /// Whether the code is about scenario files (`*.d4ct`) rather than
    /// policies: its explanation's examples are scenarios.
    pub fn is_scenario(self) -> bool {
        matches!(self, Code::ScenarioSyntax | Code::ScenarioState | Code::ScenarioFailed)
    }

    /// Looks a code up by id (`D4C0007`, any case) or name (`duplicate-key`).
    pub fn lookup(text: &str) -> Option<Code> {
        let text = text.trim();
        Code::ALL.iter().copied().find(|c| c.id().eq_ignore_ascii_case(text) || c.name().eq_ignore_ascii_case(text))
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}
