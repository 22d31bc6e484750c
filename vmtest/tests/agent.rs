//! The agent and its staged actors outside any container: the agent runs as
//! an ordinary child of the test, with the built binary as every actor's
//! executable, in a scratch directory. What needs runc and a BPF LSM is
//! checked in the VM (`scripts/vmtest`, `d4c-vmtest smoke`).

use std::fs::{self, File};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use d4c_vmtest::ops::AgentOp;
use d4c_vmtest::protocol::{write_line, LineReader, Reply, Request};

const BIN: &str = env!("CARGO_BIN_EXE_d4c-vmtest-agent");
const WAIT: Duration = Duration::from_secs(20);

struct Agent {
    child: Child,
    to: File,
    from: LineReader,
}

impl Agent {
    fn start() -> Result<Agent, String> {
        let mut child = Command::new(BIN)
            .arg("agent")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning the agent: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("no pipes".into());
        };
        let mut agent =
            Agent { child, to: File::from(OwnedFd::from(stdin)), from: LineReader::new(OwnedFd::from(stdout)) };
        match agent.read()? {
            Reply::Ready(_) => Ok(agent),
            other => Err(format!("greeting {other:?}")),
        }
    }

    fn read(&mut self) -> Result<Reply, String> {
        let line = self.from.read_line(WAIT).map_err(|e| e.to_string())?.ok_or("agent ended")?;
        Reply::parse(&line)
    }

    fn ask(&mut self, req: &Request) -> Result<Reply, String> {
        write_line(&mut self.to, &req.to_line()).map_err(|e| e.to_string())?;
        self.read()
    }

    fn stage(&mut self, exe: &Path, name: Option<&str>, interactive: bool) -> Result<(u32, u32), String> {
        self.stage_as(exe, name, interactive, 0)
    }

    fn stage_as(&mut self, exe: &Path, name: Option<&str>, interactive: bool, uid: u32) -> Result<(u32, u32), String> {
        let req = Request::Stage { exe: path_str(exe)?, name: name.map(str::to_string), interactive, uid };
        match self.ask(&req)? {
            Reply::Staged { id, pid } => Ok((id, pid)),
            other => Err(format!("staging {}: {other:?}", exe.display())),
        }
    }

    /// (errno, signal, detail)
    fn perform(&mut self, staged: u32, op: AgentOp) -> Result<(i32, i32, String), String> {
        match self.ask(&Request::Perform { staged, op })? {
            Reply::Outcome { errno, signal, detail, .. } => Ok((errno, signal, detail)),
            other => Err(format!("{other:?}")),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn path_str(p: &Path) -> Result<String, String> {
    p.to_str().map(str::to_string).ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

/// A fresh scratch directory with a copy of the binary at `bin/a-tool-with-a-long-name`.
fn scratch(name: &str) -> Result<(PathBuf, PathBuf), String> {
    let dir = std::env::temp_dir().join(format!("d4c-vmtest-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("bin")).map_err(|e| e.to_string())?;
    let exe = dir.join("bin/a-tool-with-a-long-name");
    fs::copy(BIN, &exe).map_err(|e| e.to_string())?;
    Ok((dir, exe))
}

fn proc_field(pid: u32, file: &str) -> Result<String, String> {
    fs::read_to_string(format!("/proc/{pid}/{file}")).map_err(|e| format!("/proc/{pid}/{file}: {e}"))
}

/// (session id, tty_nr) from /proc/PID/stat.
fn session_and_tty(pid: u32) -> Result<(String, String), String> {
    let stat = proc_field(pid, "stat")?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r.to_string()).ok_or("odd stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    match (f.get(3), f.get(4)) {
        (Some(s), Some(t)) => Ok((s.to_string(), t.to_string())),
        _ => Err(format!("odd stat {stat}")),
    }
}

#[test]
fn staged_actors_are_set_up_before_their_op() -> Result<(), String> {
    let (dir, exe) = scratch("setup")?;
    let mut agent = Agent::start()?;
    let (_, plain) = agent.stage(&exe, None, false)?;
    let (_, named) = agent.stage(&exe, Some("custom-name"), false)?;
    let (_, tty) = agent.stage(&exe, None, true)?;
    assert_eq!(proc_field(plain, "comm")?, "a-tool-with-a-l\n");
    assert_eq!(proc_field(named, "comm")?, "custom-name\n");
    let exe_link = fs::read_link(format!("/proc/{plain}/exe")).map_err(|e| e.to_string())?;
    assert_eq!(exe_link, exe);
    let (sid, tty_nr) = session_and_tty(plain)?;
    assert_eq!((sid, tty_nr), (plain.to_string(), "0".to_string()));
    let (sid, tty_nr) = session_and_tty(tty)?;
    assert_eq!(sid, tty.to_string());
    assert_ne!(tty_nr, "0", "the interactive actor has a controlling terminal");
    drop(agent);
    let _ = fs::remove_dir_all(dir);
    Ok(())
}

/// A scenario's `user`: the actor acts as that uid (real, effective, saved),
/// and keeps its capabilities, so that the kernel's permission checks
/// pass as they pass for root and only d4c's decision differs.
#[test]
fn a_staged_actor_acts_as_its_user_with_its_capabilities() -> Result<(), String> {
    let (dir, exe) = scratch("user")?;
    // Root's alone: no other user may write here, but for its capabilities.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    let mut agent = Agent::start()?;
    let (id, pid) = agent.stage_as(&exe, None, false, 4242)?;
    let status = proc_field(pid, "status")?;
    let uids = status.lines().find(|l| l.starts_with("Uid:")).ok_or("no Uid line")?;
    assert_eq!(uids.split_whitespace().collect::<Vec<_>>(), ["Uid:", "4242", "4242", "4242", "4242"]);
    let made = path_str(&dir.join("made-by-4242"))?;
    let (errno, signal, detail) = agent.perform(id, AgentOp::Create { path: made.clone(), mode: 0o644 })?;
    assert_eq!((errno, signal), (0, 0), "{detail}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&made).map_err(|e| e.to_string())?.uid(), 4242);
    drop(agent);
    let _ = fs::remove_dir_all(dir);
    Ok(())
}

#[test]
fn each_op_is_one_syscall_with_its_errno() -> Result<(), String> {
    let (dir, exe) = scratch("ops")?;
    let d = |p: &str| -> Result<String, String> { path_str(&dir.join(p)) };
    fs::write(dir.join("text"), "x").map_err(|e| e.to_string())?;
    let mut agent = Agent::start()?;
    let ops = [
        (AgentOp::Create { path: d("new")?, mode: 0o777 }, 0),
        (AgentOp::Create { path: d("new")?, mode: 0o644 }, libc::EEXIST),
        (AgentOp::Write(d("text")?), 0),
        (AgentOp::Truncate(d("text")?), 0),
        (AgentOp::Chmod { path: d("text")?, mode: 0o4711 }, 0),
        (AgentOp::Mknod { path: d("node")?, mode: 0o750 }, 0),
        (AgentOp::Rename { from: d("node")?, to: d("node2")? }, 0),
        (AgentOp::Link { from: d("node2")?, to: d("node3")? }, 0),
        (AgentOp::Unlink(d("node3")?), 0),
        (AgentOp::Unlink(d("missing")?), libc::ENOENT),
        (AgentOp::Exec(path_str(&exe)?), 0),
        (AgentOp::Exec(d("new")?), libc::ENOEXEC),
        (AgentOp::Exec(d("missing")?), libc::ENOENT),
        (AgentOp::Fork, 0),
        (AgentOp::MemfdExec("payload".into()), 0),
    ];
    for (n, (op, want)) in ops.into_iter().enumerate() {
        // Every other actor interactive: a terminal must not change the
        // outcome, nor SIGHUP the actor or the image it exec'd.
        let (id, _) = agent.stage(&exe, None, n % 2 == 1)?;
        let (errno, signal, detail) = agent.perform(id, op.clone())?;
        assert_eq!((errno, signal), (want, 0), "{op}: {detail}");
    }
    for op in [AgentOp::Exec(path_str(&exe)?), AgentOp::MemfdExec("x".into()), AgentOp::Fork] {
        let (id, _) = agent.stage(&exe, None, true)?;
        assert_eq!(agent.perform(id, op.clone())?.0, 0, "interactive {op}");
    }
    let mode = |p: &str| fs::metadata(dir.join(p)).map(|m| m.permissions().mode() & 0o7777).map_err(|e| e.to_string());
    assert_eq!(mode("new")?, 0o777, "umask 0");
    assert_eq!(mode("text")?, 0o4711);
    assert_eq!(mode("node2")?, 0o750);
    assert_eq!(fs::metadata(dir.join("text")).map_err(|e| e.to_string())?.len(), 0);
    assert!(!dir.join("node3").exists() && !dir.join("node").exists());
    // An actor performs once; a second perform is refused.
    let (id, _) = agent.stage(&exe, None, false)?;
    agent.perform(id, AgentOp::Fork)?;
    assert!(matches!(agent.ask(&Request::Perform { staged: id, op: AgentOp::Fork })?, Reply::Err { .. }));
    // A missing executable cannot be staged.
    let missing = dir.join("bin/missing");
    assert!(matches!(
        agent.ask(&Request::Stage { exe: path_str(&missing)?, name: None, interactive: false, uid: 0 })?,
        Reply::Err { errno: libc::ENOENT, .. }
    ));
    drop(agent);
    let _ = fs::remove_dir_all(dir);
    Ok(())
}
