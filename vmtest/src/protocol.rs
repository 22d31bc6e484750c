//! The line protocol between the guest ([`crate::bundle::Container`]), the
//! in-container agent and the staged actors ([`crate::agent`]).
//!
//! Two links, both newline-terminated ASCII lines of space-separated
//! fields:
//!
//! - guest ⇄ agent, over the agent's stdin and stdout (runc passes the
//!   guest's pipes through): [`Request`] down, [`Reply`] up. The agent
//!   announces itself with `ready <pid>` once, then answers each request
//!   with exactly one `ok ...` or `err <errno> <detail>` line.
//! - agent ⇄ staged actor, over two pipes the actor inherits: one op line
//!   ([`encode_op`]) down, [`StagedMsg`] lines up.
//!
//! Paths, names and details are [`encode`]d, so any byte string (spaces,
//! newlines, non-UTF-8) survives as one field. Modes are octal, numbers
//! decimal.
//!
//! Every read goes through [`LineReader::read_line`] with a timeout: a peer
//! that stops talking is an error naming the peer and the wait, never a
//! hang.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::ops::{AgentOp, LinkVia};
use crate::sys;

/// How long the guest waits for the agent's `ready` after `runc run`
/// (runc's own start-up included; TCG is slow).
pub const AGENT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the agent waits for a staged actor's `ready` (its exec, session
/// and terminal set-up).
pub const STAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the agent waits for a staged actor's report of its operation.
pub const PERFORM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the agent waits for a staged actor to end after its report.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack the guest adds to the agent's own waits, so that the agent's more
/// precise error arrives before the guest gives up.
pub const GUEST_SLACK: Duration = Duration::from_secs(15);
/// How long a staged actor waits for its operation, and the agent for its
/// next request, before each concludes its peer is gone and exits.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// The longest line either side accepts (a Linux path is at most 4096
/// bytes, three times that encoded, an op has two, and a sequence a few
/// thousand short ones: a directory chain 2,000 levels deep).
pub const MAX_LINE: usize = 256 * 1024;

/// Whether `b` stands for itself in an encoded field.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"/._-+,:=@~".contains(&b)
}

/// Encodes `bytes` as one field: unreserved bytes as themselves, every
/// other byte as `%XX` (upper-case hex). The empty string is a lone `%`,
/// which no other encoding produces.
pub fn encode(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "%".to_string();
    }
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if unreserved(b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// Inverse of [`encode`]. Rejects bytes that should have been escaped and
/// malformed escapes.
pub fn decode(field: &str) -> Result<Vec<u8>, String> {
    if field == "%" {
        return Ok(Vec::new());
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(|| format!("truncated escape in field `{field}`"))?;
            let hex = std::str::from_utf8(hex).map_err(|_| format!("bad escape in field `{field}`"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape `%{hex}` in field `{field}`"))?);
            i += 3;
        } else if unreserved(b) {
            out.push(b);
            i += 1;
        } else {
            return Err(format!("unescaped byte 0x{b:02x} in field `{field}`"));
        }
    }
    Ok(out)
}

/// [`decode`] into UTF-8 text.
pub fn decode_text(field: &str) -> Result<String, String> {
    String::from_utf8(decode(field)?).map_err(|_| format!("field `{field}` is not UTF-8"))
}

/// An optional text: [`encode`]d, or `!` for none.
pub fn encode_opt(value: Option<&str>) -> String {
    value.map_or_else(|| "!".to_string(), |v| encode(v.as_bytes()))
}

/// Inverse of [`encode_opt`].
pub fn decode_opt(field: &str) -> Result<Option<String>, String> {
    if field == "!" {
        Ok(None)
    } else {
        decode_text(field).map(Some)
    }
}

fn parse_mode(field: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(field, 8).map_err(|_| format!("bad octal mode `{field}`"))?;
    if mode > 0o7777 {
        return Err(format!("mode `{field}` has bits beyond 07777"));
    }
    Ok(mode)
}

fn parse_num<T: std::str::FromStr>(field: &str, what: &str) -> Result<T, String> {
    field.parse().map_err(|_| format!("bad {what} `{field}`"))
}

/// One op as fields: `create PATH MODE`, `write PATH`, `truncate PATH`,
/// `chmod PATH MODE`, `mknod PATH MODE`, `rename FROM TO`, `link FROM TO`,
/// `unlink PATH`, `exec PATH`, `fork`, `memfd-exec NAME`, `symlink TARGET
/// LINK`, `mkdir PATH MODE`, `chdir PATH`, `bind-mount FROM TO`,
/// `open-tmpfile DIR MODE`, `chmod-open MODE`, `link-open TO VIA`, and
/// `seq OP...`, each OP one field: its own line,
/// [`encode`]d.
pub fn encode_op(op: &AgentOp) -> String {
    let e = |s: &String| encode(s.as_bytes());
    match op {
        AgentOp::Create { path, mode } => format!("create {} {mode:o}", e(path)),
        AgentOp::Write(path) => format!("write {}", e(path)),
        AgentOp::Truncate(path) => format!("truncate {}", e(path)),
        AgentOp::Chmod { path, mode } => format!("chmod {} {mode:o}", e(path)),
        AgentOp::Mknod { path, mode } => format!("mknod {} {mode:o}", e(path)),
        AgentOp::Rename { from, to } => format!("rename {} {}", e(from), e(to)),
        AgentOp::Exchange { a, b } => format!("exchange {} {}", e(a), e(b)),
        AgentOp::Setfacl { path, mode } => format!("setfacl {} {mode:o}", e(path)),
        AgentOp::Link { from, to } => format!("link {} {}", e(from), e(to)),
        AgentOp::Unlink(path) => format!("unlink {}", e(path)),
        AgentOp::Exec(path) => format!("exec {}", e(path)),
        AgentOp::Fork => "fork".to_string(),
        AgentOp::Workload { dir, exe, iterations } => format!("workload {} {} {iterations}", e(dir), e(exe)),
        AgentOp::MemfdExec(name) => format!("memfd-exec {}", e(name)),
        AgentOp::Symlink { target, link } => format!("symlink {} {}", e(target), e(link)),
        AgentOp::Mkdir { path, mode } => format!("mkdir {} {mode:o}", e(path)),
        AgentOp::Chdir(path) => format!("chdir {}", e(path)),
        AgentOp::BindMount { from, to } => format!("bind-mount {} {}", e(from), e(to)),
        AgentOp::OpenTmpfile { dir, mode } => format!("open-tmpfile {} {mode:o}", e(dir)),
        AgentOp::ChmodOpen(mode) => format!("chmod-open {mode:o}"),
        AgentOp::LinkOpen { to, via } => format!("link-open {} {}", e(to), via.word()),
        AgentOp::Sequence(ops) => std::iter::once("seq".to_string())
            .chain(ops.iter().map(|op| encode(encode_op(op).as_bytes())))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Inverse of [`encode_op`], from the line's fields.
pub fn parse_op(fields: &[&str]) -> Result<AgentOp, String> {
    let t = decode_text;
    let op = match fields {
        ["create", path, mode] => AgentOp::Create { path: t(path)?, mode: parse_mode(mode)? },
        ["write", path] => AgentOp::Write(t(path)?),
        ["truncate", path] => AgentOp::Truncate(t(path)?),
        ["chmod", path, mode] => AgentOp::Chmod { path: t(path)?, mode: parse_mode(mode)? },
        ["mknod", path, mode] => AgentOp::Mknod { path: t(path)?, mode: parse_mode(mode)? },
        ["rename", from, to] => AgentOp::Rename { from: t(from)?, to: t(to)? },
        ["exchange", a, b] => AgentOp::Exchange { a: t(a)?, b: t(b)? },
        ["setfacl", path, mode] => AgentOp::Setfacl { path: t(path)?, mode: parse_mode(mode)? },
        ["link", from, to] => AgentOp::Link { from: t(from)?, to: t(to)? },
        ["unlink", path] => AgentOp::Unlink(t(path)?),
        ["exec", path] => AgentOp::Exec(t(path)?),
        ["fork"] => AgentOp::Fork,
        ["workload", dir, exe, n] => AgentOp::Workload {
            dir: t(dir)?,
            exe: t(exe)?,
            iterations: n.parse().map_err(|_| format!("bad iteration count `{n}`"))?,
        },
        ["memfd-exec", name] => AgentOp::MemfdExec(t(name)?),
        ["symlink", target, link] => AgentOp::Symlink { target: t(target)?, link: t(link)? },
        ["mkdir", path, mode] => AgentOp::Mkdir { path: t(path)?, mode: parse_mode(mode)? },
        ["chdir", path] => AgentOp::Chdir(t(path)?),
        ["bind-mount", from, to] => AgentOp::BindMount { from: t(from)?, to: t(to)? },
        ["open-tmpfile", dir, mode] => AgentOp::OpenTmpfile { dir: t(dir)?, mode: parse_mode(mode)? },
        ["chmod-open", mode] => AgentOp::ChmodOpen(parse_mode(mode)?),
        ["link-open", to, via] => AgentOp::LinkOpen {
            to: t(to)?,
            via: LinkVia::from_word(via).ok_or_else(|| format!("unknown link form `{via}`"))?,
        },
        ["seq", ops @ ..] => AgentOp::Sequence(
            ops.iter()
                .map(|field| {
                    let line = t(field)?;
                    match parse_op(&line.split(' ').collect::<Vec<_>>())? {
                        AgentOp::Sequence(_) => Err("a sequence inside a sequence".to_string()),
                        op => Ok(op),
                    }
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(format!("unknown op `{}`", fields.join(" "))),
    };
    Ok(op)
}

/// A request from the guest to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `ping`: answered `ok pong`.
    Ping,
    /// `stage INTERACTIVE EXE NAME UID`: start a staged actor.
    Stage {
        /// The actor's executable, a path inside the container.
        exe: String,
        /// Its `comm`, when not the executable's basename.
        name: Option<String>,
        /// Whether it gets a controlling terminal.
        interactive: bool,
        /// The user it acts as.
        uid: u32,
    },
    /// `perform ID OP...`: have staged actor `ID` perform `op`.
    Perform {
        /// The id from the `stage` reply.
        staged: u32,
        /// The operation.
        op: AgentOp,
    },
}

impl Request {
    /// The request as one line, without the newline.
    pub fn to_line(&self) -> String {
        match self {
            Request::Ping => "ping".to_string(),
            Request::Stage { exe, name, interactive, uid } => format!(
                "stage {} {} {} {uid}",
                u8::from(*interactive),
                encode(exe.as_bytes()),
                encode_opt(name.as_deref())
            ),
            Request::Perform { staged, op } => format!("perform {staged} {}", encode_op(op)),
        }
    }

    /// Parses a line written by [`Request::to_line`].
    pub fn parse(line: &str) -> Result<Request, String> {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["ping"] => Ok(Request::Ping),
            ["stage", interactive, exe, name, uid] => Ok(Request::Stage {
                exe: decode_text(exe)?,
                name: decode_opt(name)?,
                uid: parse_num(uid, "uid")?,
                interactive: match *interactive {
                    "0" => false,
                    "1" => true,
                    other => return Err(format!("bad interactive flag `{other}`")),
                },
            }),
            ["perform", staged, op @ ..] => {
                Ok(Request::Perform { staged: parse_num(staged, "staged id")?, op: parse_op(op)? })
            }
            _ => Err(format!("unknown request `{line}`")),
        }
    }
}

/// The agent's answer to one request (or its `ready` greeting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `ready PID`: the agent runs (PID is its pid in the container).
    Ready(u32),
    /// `ok pong`.
    Pong,
    /// `ok staged ID PID`: the actor is staged; PID is its pid in the
    /// container's pid namespace.
    Staged {
        /// The id to name in `perform`.
        id: u32,
        /// Its pid inside the container.
        pid: u32,
    },
    /// `ok outcome ERRNO COMPLETED SIGNAL COMM DETAIL`: the op ran; ERRNO
    /// 0 is success; COMPLETED how many of its calls succeeded; SIGNAL is
    /// the signal that killed the actor, 0 if none did; COMM
    /// ([`encode_opt`]) the `comm` of the image a successful exec op
    /// started.
    Outcome {
        /// The syscall's errno, 0 on success.
        errno: i32,
        /// How many of the op's calls succeeded (a sequence has several).
        completed: u32,
        /// The signal that ended the actor, 0 when it exited.
        signal: i32,
        /// The exec'd image's `comm`, for exec ops that succeeded.
        comm: Option<String>,
        /// What happened, for messages.
        detail: String,
    },
    /// `err ERRNO DETAIL`: the agent could not do what was asked.
    Err {
        /// The errno behind the failure (`EPROTO` for protocol errors).
        errno: i32,
        /// What failed.
        detail: String,
    },
}

impl Reply {
    /// The reply as one line, without the newline.
    pub fn to_line(&self) -> String {
        match self {
            Reply::Ready(pid) => format!("ready {pid}"),
            Reply::Pong => "ok pong".to_string(),
            Reply::Staged { id, pid } => format!("ok staged {id} {pid}"),
            Reply::Outcome { errno, completed, signal, comm, detail } => format!(
                "ok outcome {errno} {completed} {signal} {} {}",
                encode_opt(comm.as_deref()),
                encode(detail.as_bytes())
            ),
            Reply::Err { errno, detail } => format!("err {errno} {}", encode(detail.as_bytes())),
        }
    }

    /// Parses a line written by [`Reply::to_line`].
    pub fn parse(line: &str) -> Result<Reply, String> {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["ready", pid] => Ok(Reply::Ready(parse_num(pid, "pid")?)),
            ["ok", "pong"] => Ok(Reply::Pong),
            ["ok", "staged", id, pid] => {
                Ok(Reply::Staged { id: parse_num(id, "staged id")?, pid: parse_num(pid, "pid")? })
            }
            ["ok", "outcome", errno, completed, signal, comm, detail] => Ok(Reply::Outcome {
                errno: parse_num(errno, "errno")?,
                completed: parse_num(completed, "call count")?,
                signal: parse_num(signal, "signal")?,
                comm: decode_opt(comm)?,
                detail: decode_text(detail)?,
            }),
            ["err", errno, detail] => {
                Ok(Reply::Err { errno: parse_num(errno, "errno")?, detail: decode_text(detail)? })
            }
            _ => Err(format!("unknown reply `{line}`")),
        }
    }
}

/// What a staged actor (or the image it exec'd) tells the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StagedMsg {
    /// `ready PID`: set up, waiting for its op.
    Ready(u32),
    /// `fail ERRNO DETAIL`: set-up failed (or the op line was bad); the
    /// actor exits.
    Fail {
        /// The failing call's errno.
        errno: i32,
        /// What failed.
        detail: String,
    },
    /// `done ERRNO COMPLETED DETAIL`: the op's syscall returned; ERRNO 0
    /// is success; COMPLETED how many of its calls succeeded.
    Done {
        /// The syscall's errno, 0 on success.
        errno: i32,
        /// How many of the op's calls succeeded.
        completed: u32,
        /// What happened.
        detail: String,
    },
    /// `ran COMM`: written by `noop` after a successful exec: the new
    /// image runs, and the kernel gave it this `comm`.
    Ran(String),
}

impl StagedMsg {
    /// The message as one line, without the newline.
    pub fn to_line(&self) -> String {
        match self {
            StagedMsg::Ready(pid) => format!("ready {pid}"),
            StagedMsg::Fail { errno, detail } => format!("fail {errno} {}", encode(detail.as_bytes())),
            StagedMsg::Done { errno, completed, detail } => {
                format!("done {errno} {completed} {}", encode(detail.as_bytes()))
            }
            StagedMsg::Ran(comm) => format!("ran {}", encode(comm.as_bytes())),
        }
    }

    /// Parses a line written by [`StagedMsg::to_line`].
    pub fn parse(line: &str) -> Result<StagedMsg, String> {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["ready", pid] => Ok(StagedMsg::Ready(parse_num(pid, "pid")?)),
            ["fail", errno, detail] => {
                Ok(StagedMsg::Fail { errno: parse_num(errno, "errno")?, detail: decode_text(detail)? })
            }
            ["done", errno, completed, detail] => Ok(StagedMsg::Done {
                errno: parse_num(errno, "errno")?,
                completed: parse_num(completed, "call count")?,
                detail: decode_text(detail)?,
            }),
            ["ran", comm] => Ok(StagedMsg::Ran(decode_text(comm)?)),
            _ => Err(format!("unknown staged message `{line}`")),
        }
    }
}

/// Why [`LineReader::read_line`] returned no line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Nothing complete arrived within the timeout.
    Timeout(Duration),
    /// The peer closed its end in the middle of a line.
    Truncated,
    /// A line longer than [`MAX_LINE`], or not UTF-8.
    BadLine(String),
    /// `poll` or `read` failed.
    Io(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Timeout(t) => write!(f, "no complete line within {:.1}s", t.as_secs_f64()),
            ReadError::Truncated => write!(f, "the peer closed the stream in the middle of a line"),
            ReadError::BadLine(why) => write!(f, "bad line: {why}"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Reads newline-terminated lines from a descriptor, each read bounded by
/// a deadline (`poll` before every `read`), each line by [`MAX_LINE`].
#[derive(Debug)]
pub struct LineReader {
    file: File,
    buf: Vec<u8>,
    eof: bool,
}

impl LineReader {
    /// Reads from `fd`, which it owns from now on.
    pub fn new(fd: OwnedFd) -> LineReader {
        LineReader { file: File::from(fd), buf: Vec::new(), eof: false }
    }

    /// The next line without its newline; `Ok(None)` at end of stream.
    /// Waits at most `timeout` in all.
    pub fn read_line(&mut self, timeout: Duration) -> Result<Option<String>, ReadError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
                line.pop();
                return String::from_utf8(line).map(Some).map_err(|_| ReadError::BadLine("not UTF-8".into()));
            }
            if self.buf.len() > MAX_LINE {
                return Err(ReadError::BadLine(format!("longer than {MAX_LINE} bytes")));
            }
            if self.eof {
                return if self.buf.is_empty() { Ok(None) } else { Err(ReadError::Truncated) };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ReadError::Timeout(timeout));
            }
            // Round up so that a sub-millisecond remainder still waits.
            let ms = i32::try_from(left.as_millis().saturating_add(1)).unwrap_or(i32::MAX);
            if !sys::poll_readable(self.file.as_fd(), ms).map_err(|e| ReadError::Io(format!("poll: {e}")))? {
                continue;
            }
            let mut chunk = [0u8; 4096];
            match self.file.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Io(format!("read: {e}"))),
            }
        }
    }
}

/// Writes `line` and a newline to `out` with one `write_all`. Each link
/// has a single writer, so lines never interleave.
pub fn write_line(out: &mut File, line: &str) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    out.write_all(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_any_bytes() {
        let cases: &[&[u8]] = &[b"", b"/usr/bin/ls", b"a b\nc", b"%", b"!", b"-", b"\xff\x00/x", "ü".as_bytes()];
        for &case in cases {
            let enc = encode(case);
            assert!(!enc.contains(' ') && !enc.contains('\n'), "{enc}");
            assert_eq!(decode(&enc).as_deref(), Ok(case), "{enc}");
        }
        assert_eq!(encode(b"/srv/a b"), "/srv/a%20b");
        assert!(decode("a b").is_err());
        assert!(decode("%4").is_err());
        assert!(decode("%zz").is_err());
    }

    #[test]
    fn optional_fields_distinguish_none_and_empty() {
        assert_eq!(decode_opt(&encode_opt(None)), Ok(None));
        assert_eq!(decode_opt(&encode_opt(Some(""))), Ok(Some(String::new())));
        assert_eq!(decode_opt(&encode_opt(Some("!"))), Ok(Some("!".to_string())));
    }

    #[test]
    fn requests_round_trip() {
        let ops = [
            AgentOp::Create { path: "/srv/a b".into(), mode: 0o4755 },
            AgentOp::Write("/etc/hosts".into()),
            AgentOp::Truncate("/x".into()),
            AgentOp::Chmod { path: "/x".into(), mode: 0 },
            AgentOp::Mknod { path: "/n".into(), mode: 0o640 },
            AgentOp::Rename { from: "/a".into(), to: "/b".into() },
            AgentOp::Exchange { a: "/a".into(), b: "/b c".into() },
            AgentOp::Setfacl { path: "/a".into(), mode: 0o751 },
            AgentOp::Link { from: "/a".into(), to: "/c".into() },
            AgentOp::Unlink(String::new()),
            AgentOp::Exec("/usr/bin/ls".into()),
            AgentOp::Fork,
            AgentOp::MemfdExec("pay load".into()),
            AgentOp::Symlink { target: "/usr/bin".into(), link: "/tmp/l".into() },
            AgentOp::Mkdir { path: "d".into(), mode: 0o755 },
            AgentOp::Chdir("/tmp/a b".into()),
            AgentOp::BindMount { from: "/usr/bin".into(), to: "/mnt/bin".into() },
            AgentOp::OpenTmpfile { dir: "/tmp".into(), mode: 0o600 },
            AgentOp::ChmodOpen(0o755),
            AgentOp::LinkOpen { to: "/usr/bin/z".into(), via: LinkVia::EmptyPath },
            AgentOp::LinkOpen { to: "/usr/bin/%z".into(), via: LinkVia::ProcFd },
            AgentOp::Sequence(vec![]),
            AgentOp::Sequence(vec![
                AgentOp::Chdir("/tmp/a b%".into()),
                AgentOp::Create { path: "x y".into(), mode: 0o755 },
                AgentOp::Fork,
            ]),
        ];
        for op in ops {
            let req = Request::Perform { staged: 7, op };
            assert_eq!(Request::parse(&req.to_line()), Ok(req.clone()));
        }
        for req in [
            Request::Ping,
            Request::Stage { exe: "/bin/sh".into(), name: None, interactive: true, uid: 0 },
            Request::Stage {
                exe: "/bin/sh".into(),
                name: Some("a very long name!".into()),
                interactive: false,
                uid: 1000,
            },
        ] {
            assert_eq!(Request::parse(&req.to_line()), Ok(req.clone()));
        }
        assert!(Request::parse("perform 1 chmod /x 8").is_err());
        assert!(Request::parse("perform 1 link-open /x hard").is_err());
        let nested = AgentOp::Sequence(vec![AgentOp::Sequence(vec![AgentOp::Fork])]);
        assert!(Request::parse(&Request::Perform { staged: 1, op: nested }.to_line()).is_err());
        assert!(Request::parse("perform 1 create /x 17777").is_err());
    }

    #[test]
    fn replies_and_staged_messages_round_trip() {
        for reply in [
            Reply::Ready(1),
            Reply::Pong,
            Reply::Staged { id: 3, pid: 42 },
            Reply::Outcome {
                errno: 1,
                completed: 0,
                signal: 0,
                comm: None,
                detail: "open: Operation not permitted".into(),
            },
            Reply::Outcome { errno: 0, completed: 1, signal: 9, comm: Some("3".into()), detail: String::new() },
            Reply::Err { errno: 110, detail: String::new() },
        ] {
            assert_eq!(Reply::parse(&reply.to_line()), Ok(reply.clone()));
        }
        for msg in [
            StagedMsg::Ready(9),
            StagedMsg::Fail { errno: 2, detail: "x".into() },
            StagedMsg::Done { errno: 0, completed: 1, detail: "created".into() },
            StagedMsg::Done { errno: 1, completed: 3, detail: "call 4 of 5: x".into() },
            StagedMsg::Ran("3".into()),
        ] {
            assert_eq!(StagedMsg::parse(&msg.to_line()), Ok(msg.clone()));
        }
    }

    #[test]
    fn line_reader_times_out_splits_and_reports_eof() -> Result<(), String> {
        let (r, w) = sys::pipe().map_err(|e| e.to_string())?;
        let mut reader = LineReader::new(r);
        let mut w = File::from(w);
        assert_eq!(reader.read_line(Duration::from_millis(20)), Err(ReadError::Timeout(Duration::from_millis(20))));
        w.write_all(b"one\ntwo\nthr").map_err(|e| e.to_string())?;
        assert_eq!(reader.read_line(Duration::from_secs(1)), Ok(Some("one".into())));
        assert_eq!(reader.read_line(Duration::from_secs(1)), Ok(Some("two".into())));
        assert!(matches!(reader.read_line(Duration::from_millis(20)), Err(ReadError::Timeout(_))));
        w.write_all(b"ee\n").map_err(|e| e.to_string())?;
        drop(w);
        assert_eq!(reader.read_line(Duration::from_secs(1)), Ok(Some("three".into())));
        assert_eq!(reader.read_line(Duration::from_secs(1)), Ok(None));
        Ok(())
    }

    #[test]
    fn line_reader_reports_a_truncated_line() -> Result<(), String> {
        let (r, w) = sys::pipe().map_err(|e| e.to_string())?;
        let mut reader = LineReader::new(r);
        let mut w = File::from(w);
        w.write_all(b"half").map_err(|e| e.to_string())?;
        drop(w);
        assert_eq!(reader.read_line(Duration::from_secs(1)), Err(ReadError::Truncated));
        Ok(())
    }
}
