//! The container side: the agent (the container's init process), the staged
//! actors it starts, and `noop`, the image an exec step runs.
//!
//! - The agent reads [`Request`]s on stdin and answers each with one
//!   [`Reply`] on stdout. For `stage` it spawns the actor's executable with
//!   `stage CMD_FD REP_FD NAME TTY UID` and two inherited pipes, and waits for
//!   its `ready`. For an interactive actor it first opens a pty and keeps
//!   the master until the actor has been reaped: were the actor to hold
//!   it, closing it (at exit, or at exec through close-on-exec) would hang
//!   the terminal up and SIGHUP the session leader, the actor itself or
//!   the image it exec'd. For `perform` it writes the op to the actor's
//!   pipe, waits for its report and its end, and reaps it. It is pid 1 of
//!   the container's pid namespace, so it also reaps any orphan.
//! - A staged actor ([`stage_main`]) does everything that is not the op
//!   before it says `ready`: `umask(0)`, `setsid()`, opening the pty's
//!   slave when interactive (which makes it the session's controlling
//!   terminal), `prctl(PR_SET_NAME)`, opening its own executable for
//!   `memfd-exec`, and last taking its user id when not root (keeping its
//!   capabilities: `sys::become_user`). After `ready` it performs exactly one op, reports
//!   `done ERRNO DETAIL`, and exits; it execs or forks nothing the op does
//!   not. An exec'd image cannot report through the actor's code, so the
//!   report pipe survives exec and `noop` writes `ran COMM` to it.
//! - [`noop_main`] is what every executable copy runs when an op execs it:
//!   it says `ran` when given a descriptor, and exits 0.
//!
//! Invariant: every wait is bounded (the constants of [`crate::protocol`]);
//! a stuck actor is killed and reported, never waited for forever.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::link;
use crate::ops::{AgentOp, LinkVia};
use crate::protocol::{
    self, encode_opt, parse_op, write_line, LineReader, Reply, Request, StagedMsg, EXIT_TIMEOUT, IDLE_TIMEOUT,
    PERFORM_TIMEOUT, STAGE_TIMEOUT,
};
use crate::sys::{self, Exit};

/// The in-container binary's entry point (`d4c-vmtest-agent`, and the
/// same subcommands of `d4c-vmtest`): `agent`, `stage ...`, `noop [FD]` or
/// `pause`, by the first argument.
pub fn container_main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A program of the conformance session, chosen by its environment: its
    // arguments are the tool's own.
    if let Some(status) = crate::session::stand_in_main(&args) {
        return status;
    }
    match args.split_first() {
        Some((command, rest)) => match command.as_str() {
            "agent" => agent_main(),
            "stage" => stage_main(rest),
            "noop" => noop_main(rest),
            "pause" => pause_main(),
            other => {
                eprintln!("d4c-vmtest-agent: unknown command `{other}`; want agent, stage, noop or pause");
                ExitCode::from(2)
            }
        },
        None => {
            eprintln!("d4c-vmtest-agent: want agent, stage, noop or pause");
            ExitCode::from(2)
        }
    }
}

/// How long the agent keeps trying to reach the harness.
const AGENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// An errno and what failed.
pub(crate) type Failure = (i32, String);

/// The errno of `e` (`EIO` when it has none) with `what` and `e` as text.
fn io_failure(what: &str, e: &io::Error) -> Failure {
    (e.raw_os_error().unwrap_or(libc::EIO), format!("{what}: {e}"))
}

/// What a `perform` found.
struct Performed {
    /// The op's errno; `-1` when the actor was killed before it reported.
    errno: i32,
    /// How many of the op's calls succeeded.
    completed: u32,
    /// The signal that ended the actor, 0 when it exited.
    signal: i32,
    /// The `comm` of the image a successful exec op started.
    comm: Option<String>,
    /// What happened.
    detail: String,
}

/// An actor started by `stage` that has not performed its op yet.
struct Staged {
    pid: i32,
    exe: String,
    cmd: File,
    rep: LineReader,
    /// The pty master of an interactive actor, closed once it is reaped.
    _master: Option<File>,
}

/// The agent's state: its reply stream, the staged actors by id, and the
/// exit statuses reaped but not yet asked for.
struct Agent {
    out: File,
    staged: BTreeMap<u32, Staged>,
    next_id: u32,
    exits: HashMap<i32, Exit>,
}

/// `d4c-vmtest agent`: serves requests on stdin until it closes. Exit
/// status 0 when the guest closed stdin, 1 on an I/O error or a request
/// stream that stays silent for [`IDLE_TIMEOUT`].
pub fn agent_main() -> ExitCode {
    match run_agent() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("d4c-vmtest agent: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The agent's two ends: a TCP connection to the harness when its
/// environment names one ([`link::LINK_ENV`], [`link::AGENT_ENV`]: in a
/// container made by containerd), else stdin and stdout (tests on the
/// host).
fn open_link() -> Result<(OwnedFd, OwnedFd), String> {
    let (Ok(addr), Ok(token)) = (std::env::var(link::LINK_ENV), std::env::var(link::AGENT_ENV)) else {
        // Duplicates (close-on-exec) so that reads bypass std's stdin
        // buffer, which `poll` could not see.
        let input = io::stdin().as_fd().try_clone_to_owned().map_err(|e| format!("duplicating stdin: {e}"))?;
        let output = io::stdout().as_fd().try_clone_to_owned().map_err(|e| format!("duplicating stdout: {e}"))?;
        return Ok((input, output));
    };
    let addr: std::net::SocketAddr = addr.parse().map_err(|_| format!("{}=`{addr}` is no address", link::LINK_ENV))?;
    let deadline = Instant::now() + AGENT_CONNECT_TIMEOUT;
    let mut stream = loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(stream) => break stream,
            Err(e) if Instant::now() >= deadline => return Err(format!("connecting to {addr}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    std::io::Write::write_all(&mut stream, format!("{}\n", link::greeting(&token)).as_bytes())
        .map_err(|e| format!("greeting {addr}: {e}"))?;
    // std's sockets are close-on-exec: no actor inherits the link.
    let output = stream.try_clone().map_err(|e| format!("duplicating the link: {e}"))?;
    Ok((OwnedFd::from(stream), OwnedFd::from(output)))
}

fn run_agent() -> Result<(), String> {
    let (input, output) = open_link()?;
    let mut input = LineReader::new(input);
    let mut agent = Agent { out: File::from(output), staged: BTreeMap::new(), next_id: 1, exits: HashMap::new() };
    agent.send(&Reply::Ready(std::process::id()))?;
    loop {
        agent.reap();
        let line = match input.read_line(IDLE_TIMEOUT) {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("reading requests: {e}")),
        };
        let reply = match Request::parse(&line) {
            Err(e) => Reply::Err { errno: libc::EPROTO, detail: e },
            Ok(Request::Ping) => Reply::Pong,
            Ok(Request::Stage { exe, name, interactive, uid }) => {
                match agent.stage(&exe, name.as_deref(), interactive, uid) {
                    Ok((id, pid)) => Reply::Staged { id, pid },
                    Err((errno, detail)) => Reply::Err { errno, detail },
                }
            }
            Ok(Request::Perform { staged, op }) => match agent.perform(staged, &op) {
                Ok(Performed { errno, completed, signal, comm, detail }) => {
                    Reply::Outcome { errno, completed, signal, comm, detail }
                }
                Err((errno, detail)) => Reply::Err { errno, detail },
            },
        };
        agent.send(&reply)?;
    }
}

impl Agent {
    fn send(&mut self, reply: &Reply) -> Result<(), String> {
        write_line(&mut self.out, &reply.to_line()).map_err(|e| format!("writing a reply: {e}"))
    }

    /// Collects the status of every child that has ended.
    fn reap(&mut self) {
        while let Ok(Some((pid, exit))) = sys::wait_nohang(-1) {
            self.exits.insert(pid, exit);
        }
    }

    /// Waits up to `timeout` for child `pid` to end.
    fn wait_exit(&mut self, pid: i32, timeout: Duration) -> Result<Exit, String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.reap();
            if let Some(exit) = self.exits.remove(&pid) {
                return Ok(exit);
            }
            if Instant::now() >= deadline {
                return Err(format!("pid {pid} did not end within {}s", timeout.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills child `pid` (if it still runs) and reaps it. Returns how it
    /// ended, as text.
    fn kill_and_reap(&mut self, pid: i32) -> String {
        // ESRCH (already a zombie or gone) is fine: the wait tells.
        let _ = sys::kill(pid, libc::SIGKILL);
        match self.wait_exit(pid, EXIT_TIMEOUT) {
            Ok(exit) => format!("it ended with {exit}"),
            Err(e) => format!("SIGKILL sent, but {e}"),
        }
    }

    /// Starts a staged actor. Returns its id and its pid.
    fn stage(&mut self, exe: &str, name: Option<&str>, interactive: bool, uid: u32) -> Result<(u32, u32), Failure> {
        let (master, tty) = if interactive {
            let (master, path) = open_pty()?;
            (Some(master), Some(path))
        } else {
            (None, None)
        };
        let (cmd_r, cmd_w) = sys::pipe().map_err(|e| io_failure("pipe", &e))?;
        let (rep_r, rep_w) = sys::pipe().map_err(|e| io_failure("pipe", &e))?;
        // Only the child's ends cross the exec; ours stay close-on-exec so
        // that no later actor holds them open.
        sys::set_cloexec(cmd_r.as_fd(), false).map_err(|e| io_failure("fcntl", &e))?;
        sys::set_cloexec(rep_w.as_fd(), false).map_err(|e| io_failure("fcntl", &e))?;
        let child = Command::new(exe)
            .arg0(exe)
            .arg("stage")
            .arg(cmd_r.as_raw_fd().to_string())
            .arg(rep_w.as_raw_fd().to_string())
            .arg(encode_opt(name))
            .arg(encode_opt(tty.as_deref()))
            .arg(uid.to_string())
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io_failure(&format!("spawning `{exe}`"), &e))?;
        drop(cmd_r);
        drop(rep_w);
        let pid =
            i32::try_from(child.id()).map_err(|_| (libc::EOVERFLOW, format!("pid {} out of range", child.id())))?;
        // Reaped through waitpid(-1) with every other child, never by `Child`.
        drop(child);
        // A status kept under this pid belongs to an earlier process (a pid
        // is reused only once reaped): it must not pass for this one's.
        self.exits.remove(&pid);
        let mut rep = LineReader::new(rep_r);
        let fail = |this: &mut Agent, errno: i32, what: String| {
            let end = this.kill_and_reap(pid);
            Err((errno, format!("staged `{exe}` (pid {pid}) {what}; {end}")))
        };
        match rep.read_line(STAGE_TIMEOUT) {
            Ok(Some(line)) => match StagedMsg::parse(&line) {
                Ok(StagedMsg::Ready(p)) if i32::try_from(p) == Ok(pid) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let staged = Staged { pid, exe: exe.to_string(), cmd: File::from(cmd_w), rep, _master: master };
                    self.staged.insert(id, staged);
                    Ok((id, p))
                }
                Ok(StagedMsg::Fail { errno, detail }) => fail(self, errno, format!("failed to set up: {detail}")),
                _ => fail(self, libc::EPROTO, format!("said `{line}` instead of `ready {pid}`")),
            },
            Ok(None) => {
                let end = match self.wait_exit(pid, EXIT_TIMEOUT) {
                    Ok(exit) => format!("it ended with {exit}"),
                    Err(e) => format!("then {e}"),
                };
                Err((libc::ECHILD, format!("staged `{exe}` (pid {pid}) closed its pipe before `ready`; {end}")))
            }
            Err(e) => fail(self, libc::ETIMEDOUT, format!("waiting for `ready`: {e}")),
        }
    }

    /// Has staged actor `id` perform `op`, waits for its report and its
    /// end, and reaps it.
    fn perform(&mut self, id: u32, op: &AgentOp) -> Result<Performed, Failure> {
        let Staged { pid, exe, mut cmd, mut rep, _master } = self
            .staged
            .remove(&id)
            .ok_or_else(|| (libc::ENOENT, format!("no staged actor {id} (never staged, or it performed already)")))?;
        let who = format!("staged actor {id} (`{exe}`, pid {pid}) doing `{op}`");
        if let Err(e) = write_line(&mut cmd, &protocol::encode_op(op)) {
            let end = self.kill_and_reap(pid);
            return Err(io_failure(&format!("{who}: sending the op ({end})"), &e));
        }
        drop(cmd);
        let (errno, completed, comm, detail) = match rep.read_line(PERFORM_TIMEOUT) {
            Ok(Some(line)) => match StagedMsg::parse(&line) {
                Ok(StagedMsg::Done { errno, completed, detail }) => (errno, completed, None, detail),
                // An exec op is the last of its calls: all succeeded.
                Ok(StagedMsg::Ran(comm)) => (0, op.calls(), Some(comm), "the exec'd image ran".to_string()),
                Ok(StagedMsg::Fail { errno, detail }) => {
                    let end = self.kill_and_reap(pid);
                    return Err((errno, format!("{who}: {detail}; {end}")));
                }
                _ => {
                    let end = self.kill_and_reap(pid);
                    return Err((libc::EPROTO, format!("{who}: unexpected report `{line}`; {end}")));
                }
            },
            Ok(None) => {
                return match self.wait_exit(pid, EXIT_TIMEOUT) {
                    Ok(Exit::Signal(s)) => Ok(Performed {
                        errno: -1,
                        completed: 0,
                        signal: s,
                        comm: None,
                        detail: format!("killed by signal {s} before it reported"),
                    }),
                    Ok(exit) => Err((libc::EPROTO, format!("{who}: ended with {exit} without a report"))),
                    Err(e) => {
                        let end = self.kill_and_reap(pid);
                        Err((libc::ETIMEDOUT, format!("{who}: closed its pipe without a report, {e}; {end}")))
                    }
                };
            }
            Err(e) => {
                let end = self.kill_and_reap(pid);
                return Err((libc::ETIMEDOUT, format!("{who}: {e}; {end}")));
            }
        };
        match self.wait_exit(pid, EXIT_TIMEOUT) {
            Ok(Exit::Code(0)) => Ok(Performed { errno, completed, signal: 0, comm, detail }),
            Ok(Exit::Signal(s)) => Ok(Performed {
                errno,
                completed,
                signal: s,
                comm,
                detail: format!("{detail}; then killed by signal {s}"),
            }),
            Ok(exit) => {
                Err((libc::EPROTO, format!("{who}: reported `{detail}` (errno {errno}) but ended with {exit}")))
            }
            Err(e) => {
                let end = self.kill_and_reap(pid);
                Err((libc::ETIMEDOUT, format!("{who}: reported `{detail}` (errno {errno}) but {e}; {end}")))
            }
        }
    }
}

/// What the staged actor holds from set-up until it ends.
struct Held {
    /// Its own executable, opened before the op for `memfd-exec`.
    exe: File,
    /// The open file of a sequence's later ops (`open-tmpfile` sets it).
    open: Option<File>,
    /// The pty slave (interactive only), close-on-exec: the session keeps
    /// its controlling terminal without it.
    _tty: Option<File>,
}

/// `d4c-vmtest stage CMD_FD REP_FD NAME TTY`: a staged actor (see the
/// module doc). NAME and TTY (a pty slave's path) are [`encode_opt`]ed.
/// Exit status 0 after a report, 1 when set-up or the op line failed
/// (reported as `fail`), 2 on bad arguments.
pub fn stage_main(args: &[String]) -> ExitCode {
    let [cmd, rep, name, tty, uid] = args else {
        eprintln!("d4c-vmtest stage: want CMD_FD REP_FD NAME TTY UID, got {args:?}");
        return ExitCode::from(2);
    };
    let take = |field: &str| -> Result<OwnedFd, String> {
        let raw: RawFd = field.parse().map_err(|_| format!("bad descriptor `{field}`"))?;
        sys::take_inherited_fd(raw).map_err(|e| format!("descriptor {raw}: {e}"))
    };
    let (cmd, rep) = match (take(cmd), take(rep)) {
        (Ok(cmd), Ok(rep)) => (cmd, rep),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("d4c-vmtest stage: {e}");
            return ExitCode::from(2);
        }
    };
    let rep_raw = rep.as_raw_fd();
    let mut rep = File::from(rep);
    let report = |rep: &mut File, msg: StagedMsg| {
        if let Err(e) = write_line(rep, &msg.to_line()) {
            eprintln!("d4c-vmtest stage: writing `{}` to the agent: {e}", msg.to_line());
        }
    };
    let setup = protocol::decode_opt(name)
        .and_then(|name| Ok((name, protocol::decode_opt(tty)?)))
        .and_then(|(name, tty)| Ok((name, tty, uid.parse::<u32>().map_err(|_| format!("bad uid `{uid}`"))?)))
        .map_err(|e| (libc::EPROTO, e))
        .and_then(|(name, tty, uid)| set_up(cmd.as_fd(), name.as_deref(), tty.as_deref(), uid));
    let mut held = match setup {
        Ok(held) => held,
        Err((errno, detail)) => {
            report(&mut rep, StagedMsg::Fail { errno, detail });
            return ExitCode::FAILURE;
        }
    };
    report(&mut rep, StagedMsg::Ready(std::process::id()));
    let mut input = LineReader::new(cmd);
    let line = match input.read_line(IDLE_TIMEOUT) {
        Ok(Some(line)) => line,
        // The agent is gone (or never sent an op): nothing to report to.
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("d4c-vmtest stage: waiting for an op: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fields: Vec<&str> = line.split(' ').collect();
    let op = match parse_op(&fields) {
        Ok(op) => op,
        Err(detail) => {
            report(&mut rep, StagedMsg::Fail { errno: libc::EPROTO, detail });
            return ExitCode::FAILURE;
        }
    };
    let (completed, result) = perform_calls(&op, &mut held, rep_raw);
    let (errno, detail) = match result {
        Ok(detail) => (0, detail),
        Err((errno, detail)) => (errno, detail),
    };
    report(&mut rep, StagedMsg::Done { errno, completed, detail });
    ExitCode::SUCCESS
}

/// Everything a staged actor does before `ready`.
fn set_up(cmd: std::os::fd::BorrowedFd<'_>, name: Option<&str>, tty: Option<&str>, uid: u32) -> Result<Held, Failure> {
    // The op pipe must not reach an exec'd image; the report pipe must.
    sys::set_cloexec(cmd, true).map_err(|e| io_failure("fcntl(FD_CLOEXEC)", &e))?;
    // So that create and mknod modes are exact.
    sys::umask(0);
    sys::setsid().map_err(|e| io_failure("setsid", &e))?;
    let tty = tty.map(acquire_tty).transpose()?;
    if let Some(name) = name {
        let c = CString::new(name).map_err(|_| (libc::EINVAL, format!("name `{name}` contains NUL")))?;
        sys::set_comm(&c).map_err(|e| io_failure("prctl(PR_SET_NAME)", &e))?;
    }
    let exe = File::open("/proc/self/exe").map_err(|e| io_failure("opening /proc/self/exe", &e))?;
    if uid != 0 {
        sys::become_user(uid).map_err(|e| io_failure(&format!("acting as user {uid}"), &e))?;
    }
    Ok(Held { exe, open: None, _tty: tty })
}

/// `op` performed by this process with nothing held (no pty, no open
/// file; an exec op runs its image with no report pipe). Ok(detail), or
/// the errno and what failed.
pub(crate) fn perform_plain(op: &AgentOp) -> Result<String, Failure> {
    let exe = File::open("/proc/self/exe").map_err(|e| io_failure("opening /proc/self/exe", &e))?;
    let mut held = Held { exe, open: None, _tty: None };
    perform_calls(op, &mut held, -1).1
}

/// Opens a new pty in the agent (`/dev/ptmx` without becoming its
/// controlling process, `unlockpt`). Returns the master and the slave's
/// path (`ptsname`).
pub(crate) fn open_pty() -> Result<(File, String), Failure> {
    let master = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/ptmx")
        .map_err(|e| io_failure("opening /dev/ptmx", &e))?;
    let n = sys::pty_unlock_and_number(master.as_fd()).map_err(|e| io_failure("unlocking the pty", &e))?;
    Ok((master, format!("/dev/pts/{n}")))
}

/// Opens the pty slave `path` and makes it the controlling terminal of
/// this session (the caller leads a session with none). Returns the slave.
fn acquire_tty(path: &str) -> Result<File, Failure> {
    // No O_NOCTTY: a session leader without a terminal acquires this one.
    let slave = OpenOptions::new().read(true).write(true).open(path).map_err(|e| io_failure(path, &e))?;
    // Explicit as well, in case the open did not (succeeds if it did).
    sys::set_controlling_tty(slave.as_fd()).map_err(|e| io_failure(&format!("TIOCSCTTY on {path}"), &e))?;
    Ok(slave)
}

/// A `map_err` adapter: the failure of `what` on `path`.
fn fail_on<'a>(what: &'a str, path: &'a str) -> impl Fn(io::Error) -> Failure + 'a {
    move |e| io_failure(&format!("{what} `{path}`"), &e)
}

/// A C string for a syscall path or name.
fn c_string(s: &str) -> Result<CString, Failure> {
    CString::new(s).map_err(|_| (libc::EINVAL, format!("`{}` contains NUL", s.escape_debug())))
}

/// The op's calls: a sequence's ops in order up to the first that fails,
/// any other op alone. Returns how many succeeded, and the last one's
/// result.
fn perform_calls(op: &AgentOp, held: &mut Held, rep_raw: RawFd) -> (u32, Result<String, Failure>) {
    let AgentOp::Sequence(ops) = op else {
        let result = perform_op(op, held, rep_raw);
        return (u32::from(result.is_ok()), result);
    };
    for (i, call) in ops.iter().enumerate() {
        if let Err((errno, detail)) = perform_op(call, held, rep_raw) {
            let at = u32::try_from(i).unwrap_or(u32::MAX);
            return (at, Err((errno, format!("op {} of {} (`{call}`): {detail}", i + 1, ops.len()))));
        }
    }
    (op.calls(), Ok(format!("all {} ops succeeded", ops.len())))
}

/// The open file of a sequence, or EBADF.
fn open_file(held: &Held) -> Result<&File, Failure> {
    held.open.as_ref().ok_or((libc::EBADF, "no open file: `open-tmpfile` comes first in the sequence".to_string()))
}

/// The op itself: one syscall (`memfd-exec`: the three its definition
/// names). Ok(detail) on success; Err((errno, detail))
/// with the syscall's errno. Exec ops return only on failure: on success
/// the new image, `noop`, reports `ran` on `rep_raw`.
fn perform_op(op: &AgentOp, held: &mut Held, rep_raw: RawFd) -> Result<String, Failure> {
    let noop_args = |argv0: &str| -> Result<Vec<CString>, Failure> {
        Ok(vec![c_string(argv0)?, c_string("noop")?, c_string(&rep_raw.to_string())?])
    };
    match op {
        AgentOp::Create { path, mode } => {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(*mode)
                .open(path)
                .map_err(fail_on("open(O_CREAT|O_EXCL)", path))?;
            Ok(format!("created with mode {mode:04o}"))
        }
        AgentOp::Write(path) => {
            OpenOptions::new().write(true).open(path).map_err(fail_on("open(O_WRONLY)", path))?;
            Ok("opened for writing".to_string())
        }
        AgentOp::Truncate(path) => {
            sys::truncate_to_zero(&c_string(path)?).map_err(fail_on("truncate", path))?;
            Ok("truncated".to_string())
        }
        AgentOp::Chmod { path, mode } => {
            std::fs::set_permissions(path, Permissions::from_mode(*mode)).map_err(fail_on("chmod", path))?;
            Ok(format!("mode set to {mode:04o}"))
        }
        AgentOp::Mknod { path, mode } => {
            sys::mknod_regular(&c_string(path)?, *mode).map_err(fail_on("mknod", path))?;
            Ok(format!("made with mode {mode:04o}"))
        }
        AgentOp::Rename { from, to } => {
            std::fs::rename(from, to).map_err(fail_on("rename", &format!("{from}` to `{to}")))?;
            Ok("renamed".to_string())
        }
        AgentOp::Setfacl { path, mode } => {
            sys::set_access_acl(&c_string(path)?, *mode).map_err(fail_on("setxattr(system.posix_acl_access)", path))?;
            Ok(format!("ACL set to {mode:04o}"))
        }
        AgentOp::Exchange { a, b } => {
            sys::rename_exchange(&c_string(a)?, &c_string(b)?)
                .map_err(fail_on("exchange", &format!("{a}` with `{b}")))?;
            Ok("exchanged".to_string())
        }
        AgentOp::Link { from, to } => {
            std::fs::hard_link(from, to).map_err(fail_on("link", &format!("{from}` to `{to}")))?;
            Ok("linked".to_string())
        }
        AgentOp::Unlink(path) => {
            std::fs::remove_file(path).map_err(fail_on("unlink", path))?;
            Ok("unlinked".to_string())
        }
        AgentOp::Exec(path) => {
            let e = sys::execve(&c_string(path)?, &noop_args(path)?);
            Err(io_failure(&format!("execve `{path}`"), &e))
        }
        AgentOp::Fork => {
            let (child, exit) = sys::fork_child_that_exits().map_err(|e| io_failure("fork", &e))?;
            Ok(format!("forked pid {child}, which ended with {exit}"))
        }
        AgentOp::Workload { dir, exe, iterations } => {
            let start = std::time::Instant::now();
            let exe_c = c_string(exe)?;
            let args = vec![c_string(exe)?, c_string("noop")?];
            for i in 0..*iterations {
                let path = format!("{dir}/w{i}");
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(&path)
                    .map_err(fail_on("open(O_CREAT|O_EXCL)", &path))?;
                std::io::Write::write_all(&mut file, b"d4c workload\n").map_err(fail_on("write", &path))?;
                drop(file);
                std::fs::set_permissions(&path, Permissions::from_mode(0o600)).map_err(fail_on("chmod", &path))?;
                std::fs::remove_file(&path).map_err(fail_on("unlink", &path))?;
                sys::fork_exec_wait(&exe_c, &args).map_err(|e| io_failure("fork and exec", &e))?;
            }
            Ok(format!("ns={}", start.elapsed().as_nanos()))
        }
        AgentOp::MemfdExec(name) => {
            let memfd = sys::memfd_create(&c_string(name)?).map_err(fail_on("memfd_create", name))?;
            sys::sendfile_all(memfd.as_fd(), held.exe.as_fd())
                .map_err(|e| io_failure("writing the executable into the memfd (sendfile)", &e))?;
            let e = sys::execveat_fd(memfd.as_fd(), &noop_args(name)?);
            Err(io_failure(&format!("execveat(memfd `{name}`, AT_EMPTY_PATH)"), &e))
        }
        AgentOp::Symlink { target, link } => {
            std::os::unix::fs::symlink(target, link).map_err(fail_on("symlink", &format!("{link}` to `{target}")))?;
            Ok("linked".to_string())
        }
        AgentOp::Mkdir { path, mode } => {
            std::fs::DirBuilder::new().mode(*mode).create(path).map_err(fail_on("mkdir", path))?;
            Ok(format!("made with mode {mode:04o}"))
        }
        AgentOp::Chdir(path) => {
            std::env::set_current_dir(path).map_err(fail_on("chdir", path))?;
            Ok("changed directory".to_string())
        }
        AgentOp::BindMount { from, to } => {
            sys::bind_mount(&c_string(from)?, &c_string(to)?)
                .map_err(fail_on("mount(MS_BIND)", &format!("{from}` on `{to}")))?;
            Ok("mounted".to_string())
        }
        AgentOp::OpenTmpfile { dir, mode } => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_TMPFILE)
                .mode(*mode)
                .open(dir)
                .map_err(fail_on("open(O_TMPFILE|O_RDWR)", dir))?;
            held.open = Some(file);
            Ok(format!("opened a file with no name, mode {mode:04o}"))
        }
        AgentOp::ChmodOpen(mode) => {
            open_file(held)?
                .set_permissions(Permissions::from_mode(*mode))
                .map_err(|e| io_failure("fchmod of the open file", &e))?;
            Ok(format!("mode set to {mode:04o}"))
        }
        AgentOp::LinkOpen { to, via } => {
            let file = open_file(held)?;
            let to_c = c_string(to)?;
            match via {
                LinkVia::EmptyPath => {
                    sys::link_fd(file.as_fd(), &to_c).map_err(fail_on("linkat(AT_EMPTY_PATH)", to))?
                }
                LinkVia::ProcFd => {
                    let from = format!("/proc/self/fd/{}", file.as_raw_fd());
                    sys::link_follow(&c_string(&from)?, &to_c)
                        .map_err(fail_on("linkat(AT_SYMLINK_FOLLOW)", &format!("{from}` to `{to}")))?;
                }
            }
            Ok("linked".to_string())
        }
        AgentOp::Sequence(_) => Err((libc::EINVAL, "a sequence inside a sequence".to_string())),
    }
}

/// `pause`: a pod sandbox's process, as the kubelet's pause image runs
/// one: pid 1 of the pod's namespaces, it reaps whatever ends below it and
/// exits 0 on SIGTERM or SIGINT (which, as pid 1, it would otherwise never
/// get). It waits for as long as the pod lives, in hour-long waits.
pub fn pause_main() -> ExitCode {
    let signals = [libc::SIGTERM, libc::SIGINT, libc::SIGCHLD];
    if let Err(e) = sys::block_signals(&signals) {
        eprintln!("pause: blocking signals: {e}");
        return ExitCode::FAILURE;
    }
    loop {
        match sys::wait_signal(&signals, 3600) {
            Ok(Some(libc::SIGCHLD)) | Ok(None) => while let Ok(Some(_)) = sys::wait_nohang(-1) {},
            Ok(Some(_)) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pause: waiting for a signal: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}

/// `d4c-vmtest noop [FD]`: what exec ops run. With FD (the staged actor's
/// report pipe, inherited across the exec), writes `ran COMM` to it, COMM
/// being the `comm` the exec gave it. Exit status 0, or 1 when FD cannot
/// be written.
pub fn noop_main(args: &[String]) -> ExitCode {
    let Some(field) = args.first() else { return ExitCode::SUCCESS };
    let result = field
        .parse::<RawFd>()
        .map_err(|_| format!("bad descriptor `{field}`"))
        .and_then(|raw| sys::take_inherited_fd(raw).map_err(|e| format!("descriptor {raw}: {e}")))
        .and_then(|fd| {
            // prctl, not /proc/self/comm: no file is opened after the exec.
            let comm = sys::get_comm().map_err(|e| format!("prctl(PR_GET_NAME): {e}"))?;
            write_line(&mut File::from(fd), &StagedMsg::Ran(comm).to_line()).map_err(|e| e.to_string())
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("d4c-vmtest noop: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_sequence_stops_at_its_first_failure_and_keeps_its_open_file() -> Result<(), String> {
        let dir = std::env::temp_dir().join(format!("d4c-vmtest-sequence-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let exe = File::open("/proc/self/exe").map_err(|e| e.to_string())?;
        let mut held = Held { exe, open: None, _tty: None };
        let ops = AgentOp::Sequence(vec![
            AgentOp::Mkdir { path: p("sub"), mode: 0o750 },
            AgentOp::Symlink { target: p("sub"), link: p("l") },
            AgentOp::OpenTmpfile { dir: p("l"), mode: 0o600 },
            AgentOp::ChmodOpen(0o755),
            AgentOp::LinkOpen { to: p("l/a"), via: LinkVia::EmptyPath },
            AgentOp::LinkOpen { to: p("l/b"), via: LinkVia::ProcFd },
            AgentOp::Create { path: p("l/a"), mode: 0o644 },
            AgentOp::Fork,
        ]);
        let (completed, result) = perform_calls(&ops, &mut held, -1);
        assert_eq!(completed, 6);
        assert!(matches!(&result, Err((libc::EEXIST, detail)) if detail.starts_with("op 7 of 8")), "{result:?}");
        let a = std::fs::metadata(p("sub/a")).map_err(|e| e.to_string())?;
        let b = std::fs::metadata(p("sub/b")).map_err(|e| e.to_string())?;
        assert_eq!((a.mode() & 0o7777, a.nlink(), a.ino()), (0o755, 2, b.ino()));

        // An op on the open file outside a sequence that opened one.
        let mut fresh = Held { exe: File::open("/proc/self/exe").map_err(|e| e.to_string())?, open: None, _tty: None };
        let (completed, result) = perform_calls(&AgentOp::ChmodOpen(0o700), &mut fresh, -1);
        assert!(completed == 0 && matches!(result, Err((libc::EBADF, _))), "{result:?}");
        let (completed, result) = perform_calls(&AgentOp::Sequence(vec![]), &mut fresh, -1);
        assert!(completed == 0 && result.is_ok());
        std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())
    }
}
