//! Thin safe wrappers over the system calls std does not offer: poll,
//! pipes without close-on-exec, sessions and terminals, `prctl`, `umask`,
//! `mknod`, `truncate`, `fork`, `execve`, `memfd_create`, `sendfile`,
//! `execveat`, `linkat` with flags, bind `mount`, `waitpid`, `kill` and
//! `SO_PEERCRED`.
//!
//! Every other module is free of `unsafe`. Each wrapper keeps its `unsafe`
//! block to the one libc call, passes the kernel only pointers to memory it
//! owns for the duration of the call (C strings, integers on the stack,
//! argument vectors kept alive by the caller's borrow), and turns `-1`
//! into the `errno` as an [`io::Error`].
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

/// `-1` → the calling thread's errno; any other value passes through.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Waits up to `timeout_ms` (`-1`: forever) until `fd` is readable or hung
/// up. Returns `false` on timeout. `EINTR` restarts the wait with the full
/// timeout, which only lengthens it by the time already spent.
pub(crate) fn poll_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: `pfd` is one valid pollfd on this stack frame; nfds is 1.
        let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        match check(ret) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A pipe, both ends close-on-exec: `(read end, write end)`.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    // SAFETY: `fds` is a writable array of two ints, as pipe2 requires.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    let [r, w] = fds;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(r), OwnedFd::from_raw_fd(w)) })
}

/// Sets or clears `FD_CLOEXEC` on `fd`.
pub(crate) fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flag = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: F_SETFD takes an int argument; `fd` is open for the borrow.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flag) })?;
    Ok(())
}

/// Takes ownership of descriptor `raw`, inherited across exec and named on
/// the command line. Fails (`EBADF`) when it is not open.
///
/// Callers must name each inherited descriptor once: a second call for the
/// same number would create a second owner. `main` calls this only for the
/// numbers of its own argument vector, each once.
pub(crate) fn take_inherited_fd(raw: RawFd) -> io::Result<OwnedFd> {
    if raw < 3 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: F_GETFD takes no argument and only reads the descriptor table.
    check(unsafe { libc::fcntl(raw, libc::F_GETFD) })?;
    // SAFETY: the descriptor is open (checked above) and, per this
    // function's contract, owned by no other object in this process.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Sets the file mode creation mask; returns the old one.
pub(crate) fn umask(mask: u32) -> u32 {
    // SAFETY: umask cannot fail and takes an integer.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Makes the calling process act as user `uid` (real, effective, saved
/// and file-system uid) while keeping its capabilities:
/// `SECBIT_NO_SETUID_FIXUP` first, so that leaving uid 0 does not clear
/// them. A scenario's step is about d4c's decision for that user, not the
/// kernel's permission checks, which the kept `CAP_DAC_OVERRIDE` passes as
/// they passed for root. Needs `CAP_SETPCAP` and `CAP_SETUID` (a
/// container's defaults).
pub(crate) fn become_user(uid: u32) -> io::Result<()> {
    const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
    // SAFETY: prctl with integer arguments only.
    let keep = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) };
    check(keep)?;
    // SAFETY: integer arguments only.
    let set = unsafe { libc::setresuid(uid, uid, uid) };
    check(set).map(drop)
}

/// `setsid()`: a new session and process group led by the caller, with no
/// controlling terminal. Returns the session id.
pub(crate) fn setsid() -> io::Result<i32> {
    // SAFETY: no arguments.
    let sid = unsafe { libc::setsid() };
    check(sid)
}

/// Sets the calling thread's `comm` (`prctl(PR_SET_NAME)`); the kernel
/// keeps the first 15 bytes.
pub(crate) fn set_comm(name: &CStr) -> io::Result<()> {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string (at most 16 bytes
    // of it); `name` is one and lives through the call.
    check(unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// The calling thread's `comm` (`prctl(PR_GET_NAME)`), lossily decoded.
pub(crate) fn get_comm() -> io::Result<String> {
    let mut buf = [0u8; 17];
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included, into the
    // buffer; `buf` has 17, so it also stays NUL-terminated.
    check(unsafe { libc::prctl(libc::PR_GET_NAME, buf.as_mut_ptr() as libc::c_ulong, 0, 0, 0) })?;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(buf.get(..len).unwrap_or_default()).into_owned())
}

/// `ioctl(fd, request, &value)` for the tty requests that take an `int *`.
fn ioctl_int_ptr(fd: BorrowedFd<'_>, request: libc::c_ulong, value: &mut libc::c_int) -> io::Result<()> {
    // SAFETY: TIOCSPTLCK and TIOCGPTN take a pointer to one int, which
    // `value` is, valid and writable for the call.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), request, value as *mut libc::c_int) })?;
    Ok(())
}

/// Unlocks the pty master `master` (`unlockpt`) and returns its slave's
/// number (`ptsname` is `/dev/pts/<n>`).
pub(crate) fn pty_unlock_and_number(master: BorrowedFd<'_>) -> io::Result<u32> {
    let mut unlock: libc::c_int = 0;
    ioctl_int_ptr(master, libc::TIOCSPTLCK, &mut unlock)?;
    let mut n: libc::c_int = -1;
    ioctl_int_ptr(master, libc::TIOCGPTN, &mut n)?;
    u32::try_from(n).map_err(|_| io::Error::other(format!("TIOCGPTN returned {n}")))
}

/// Makes the tty `fd` the caller's controlling terminal (`TIOCSCTTY`, no
/// stealing). Succeeds when it already is.
pub(crate) fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal).
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0 as libc::c_int) })?;
    Ok(())
}

/// `truncate(path, 0)`.
pub(crate) fn truncate_to_zero(path: &CStr) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated and lives through the call.
    check(unsafe { libc::truncate(path.as_ptr(), 0) })?;
    Ok(())
}

/// `mknod(path, S_IFREG | mode, 0)`: a regular file.
pub(crate) fn mknod_regular(path: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated and lives through the call.
    check(unsafe { libc::mknod(path.as_ptr(), libc::S_IFREG | mode as libc::mode_t, 0) })?;
    Ok(())
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// `exit(code)`.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

fn decode_status(status: libc::c_int) -> Option<Exit> {
    if libc::WIFEXITED(status) {
        Some(Exit::Code(libc::WEXITSTATUS(status)))
    } else if libc::WIFSIGNALED(status) {
        Some(Exit::Signal(libc::WTERMSIG(status)))
    } else {
        None
    }
}

/// `waitpid(pid, WNOHANG)`; `pid == -1` means any child. `Ok(None)`: no
/// child has ended yet (or none is left: `ECHILD` is reported as such).
pub(crate) fn wait_nohang(pid: i32) -> io::Result<Option<(i32, Exit)>> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a writable int on this stack frame.
        let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        match check(ret) {
            Ok(0) => return Ok(None),
            Ok(p) => match decode_status(status) {
                Some(exit) => return Ok(Some((p, exit))),
                // Stopped or continued: not an end; WNOHANG without
                // WUNTRACED does not report these, but be exact.
                None => return Ok(None),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Sends `signal` to process `pid`.
pub(crate) fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: integers only.
    check(unsafe { libc::kill(pid, signal) })?;
    Ok(())
}

/// The one `fork` of a staged `fork` step: the child calls `_exit(0)` at
/// once (nothing else runs in it); the parent waits for it. Returns the
/// child's pid and how it ended, or fork's errno.
pub(crate) fn fork_child_that_exits() -> io::Result<(i32, Exit)> {
    // SAFETY: the staged process is single-threaded, and the child only
    // calls _exit, which is async-signal-safe.
    let pid = check(unsafe { libc::fork() })?;
    if pid == 0 {
        // SAFETY: ends the child without running any Rust or libc exit code.
        unsafe { libc::_exit(0) }
    }
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a writable int on this stack frame.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        match check(ret) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io::Error::other(format!("fork succeeded (child {pid}) but waitpid failed: {e}"))),
        }
    }
    let exit =
        decode_status(status).ok_or_else(|| io::Error::other(format!("child {pid}: odd wait status {status}")))?;
    Ok((pid, exit))
}

/// `fork`, the child `execve(path, args, {})` (or `_exit(127)` when that
/// fails), the parent waits. Returns how the child ended. For the
/// benchmark's workload.
pub(crate) fn fork_exec_wait(path: &CStr, args: &[CString]) -> io::Result<Exit> {
    fork_exec_env_wait(path, args, &[]).map(|(_, exit)| exit)
}

/// `fork`, the child `execve(path, args, env)` (or `_exit(127)` when that
/// fails), the parent waits. Returns the child's pid and how it ended.
pub(crate) fn fork_exec_env_wait(path: &CStr, args: &[CString], env: &[CString]) -> io::Result<(i32, Exit)> {
    let argv = argv_pointers(args);
    let envp = argv_pointers(env);
    // SAFETY: the actor is single-threaded; the child only calls execve and
    // _exit (async-signal-safe) with vectors built before the fork.
    let pid = check(unsafe { libc::fork() })?;
    if pid == 0 {
        // SAFETY: as above; `argv`/`envp` point to live NUL-terminated data.
        unsafe {
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127)
        }
    }
    Ok((pid, wait_child(pid)?))
}

/// `fork`; the child runs `child` and `_exit`s with the status it returns
/// (no Rust or libc exit code runs in it); the parent waits. Returns the
/// child's pid and how it ended. Only for a single-threaded caller (the
/// conformance session's shell): the child then inherits no lock another
/// thread held.
pub(crate) fn fork_run_wait(child: impl FnOnce() -> i32) -> io::Result<(i32, Exit)> {
    // SAFETY: the caller is single-threaded (see above), so the child's
    // heap and stdio are consistent; it ends through _exit.
    let pid = check(unsafe { libc::fork() })?;
    if pid == 0 {
        let code = child();
        // SAFETY: ends the child without running the parent's exit code.
        unsafe { libc::_exit(code) }
    }
    Ok((pid, wait_child(pid)?))
}

/// The pid of the process at the other end of unix socket `fd` when it
/// connected (`SO_PEERCRED`), as the caller's pid namespace numbers it:
/// in the guest, a container process's pid in the initial namespace, the
/// one the probes write.
pub(crate) fn peer_pid(fd: BorrowedFd<'_>) -> io::Result<i32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>()).map_err(io::Error::other)?;
    // SAFETY: `cred` and `len` are writable locals of the sizes given.
    check(unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, ptr::addr_of_mut!(cred).cast(), &mut len)
    })?;
    Ok(cred.pid)
}

/// Waits for child `pid` to end (`EINTR` restarts the wait).
fn wait_child(pid: i32) -> io::Result<Exit> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a writable int on this stack frame.
        match check(unsafe { libc::waitpid(pid, &mut status, 0) }) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    decode_status(status).ok_or_else(|| io::Error::other(format!("child {pid}: odd wait status {status}")))
}

/// A NULL-terminated `char *` vector borrowing `args`.
fn argv_pointers(args: &[CString]) -> Vec<*const libc::c_char> {
    args.iter().map(|a| a.as_ptr()).chain(std::iter::once(ptr::null())).collect()
}

/// `execve(path, args, {})`: returns only on failure, with its errno.
pub(crate) fn execve(path: &CStr, args: &[CString]) -> io::Error {
    let argv = argv_pointers(args);
    let envp: [*const libc::c_char; 1] = [ptr::null()];
    // SAFETY: `path` and every `args` string are NUL-terminated and live
    // through the call; `argv` and `envp` are NULL-terminated vectors of
    // pointers to them, also alive for the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// `memfd_create(name, MFD_CLOEXEC)`.
pub(crate) fn memfd_create(name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and lives through the call.
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Copies all of `from` (read from offset 0, whatever its file offset) to
/// `to`'s current offset with `sendfile`. Returns the bytes copied.
pub(crate) fn sendfile_all(to: BorrowedFd<'_>, from: BorrowedFd<'_>) -> io::Result<u64> {
    let mut offset: libc::off_t = 0;
    loop {
        // SAFETY: `offset` is a writable off_t on this stack frame; both
        // descriptors are open for the borrows.
        let n = unsafe { libc::sendfile(to.as_raw_fd(), from.as_raw_fd(), &mut offset, 1 << 20) };
        match n {
            -1 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            0 => return u64::try_from(offset).map_err(|_| io::Error::other("negative sendfile offset")),
            _ => {}
        }
    }
}

/// `execveat(fd, "", args, {}, AT_EMPTY_PATH)` (what glibc's `fexecve`
/// does): returns only on failure, with its errno.
pub(crate) fn execveat_fd(fd: BorrowedFd<'_>, args: &[CString]) -> io::Error {
    let argv = argv_pointers(args);
    let envp: [*const libc::c_char; 1] = [ptr::null()];
    let empty = c"";
    // SAFETY: as for `execve`: every pointer is to a NUL-terminated string
    // or a NULL-terminated vector alive for the call; `fd` is open.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

/// `linkat(fd, "", AT_FDCWD, to, AT_EMPTY_PATH)`: a name for the open file
/// `fd` (an `O_TMPFILE` file gets its first one this way).
pub(crate) fn link_fd(fd: BorrowedFd<'_>, to: &CStr) -> io::Result<()> {
    let empty = c"";
    // SAFETY: both strings are NUL-terminated and live through the call;
    // `fd` is open for the borrow.
    check(unsafe { libc::linkat(fd.as_raw_fd(), empty.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_EMPTY_PATH) })?;
    Ok(())
}

/// `linkat(AT_FDCWD, from, AT_FDCWD, to, AT_SYMLINK_FOLLOW)`: a hard link
/// to what `from` names after following it (`/proc/self/fd/N` included).
pub(crate) fn link_follow(from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and live through the call.
    check(unsafe {
        libc::linkat(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_SYMLINK_FOLLOW)
    })?;
    Ok(())
}

/// `mount(from, to, NULL, MS_BIND, NULL)`: `from` is also reachable at `to`.
/// `setxattr(path, "system.posix_acl_access", acl)`: the minimal access
/// ACL (owner, group, others: the kernel's xattr format, version 2, ids
/// undefined) whose entries give the permission bits `mode & 0o777`.
pub(crate) fn set_access_acl(path: &CStr, mode: u32) -> io::Result<()> {
    let mut acl = Vec::with_capacity(28);
    acl.extend_from_slice(&2u32.to_le_bytes());
    for (tag, shift) in [(0x01u16, 6), (0x04, 3), (0x20, 0)] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&(((mode >> shift) & 7) as u16).to_le_bytes());
        acl.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    // SAFETY: both strings are NUL-terminated, and `acl` is valid for its
    // length, through the call.
    check(unsafe {
        libc::setxattr(path.as_ptr(), c"system.posix_acl_access".as_ptr(), acl.as_ptr().cast(), acl.len(), 0)
    })?;
    Ok(())
}

/// `renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)`: the two names
/// swap what they name (Linux 3.15; both must exist).
pub(crate) fn rename_exchange(a: &CStr, b: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and live through the call.
    check(unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) })?;
    Ok(())
}

pub(crate) fn bind_mount(from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and live through the call; a
    // bind mount reads no file system type and no data.
    check(unsafe { libc::mount(from.as_ptr(), to.as_ptr(), ptr::null(), libc::MS_BIND, ptr::null()) })?;
    Ok(())
}

/// Blocks `signals` in this thread (and so in every thread started after),
/// so that [`wait_signal`] can take them.
pub(crate) fn block_signals(signals: &[i32]) -> io::Result<()> {
    let set = signal_set(signals)?;
    // SAFETY: `set` is an initialised sigset_t on this stack frame; the old
    // set is not asked for (null).
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut()) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(ret))
    }
}

/// Waits up to `timeout_s` seconds for one of `signals` (blocked first with
/// [`block_signals`]). Returns the signal, or `None` on timeout.
pub(crate) fn wait_signal(signals: &[i32], timeout_s: u32) -> io::Result<Option<i32>> {
    let set = signal_set(signals)?;
    let timeout = libc::timespec { tv_sec: libc::time_t::from(timeout_s), tv_nsec: 0 };
    // SAFETY: `set` and `timeout` are initialised values on this stack
    // frame; the siginfo is not asked for (null).
    let ret = unsafe { libc::sigtimedwait(&set, ptr::null_mut(), &timeout) };
    match check(ret) {
        Ok(signal) => Ok(Some(signal)),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) || e.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e),
    }
}

/// A signal set holding `signals`.
fn signal_set(signals: &[i32]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it below.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t on this stack frame.
    check(unsafe { libc::sigemptyset(&mut set) })?;
    for &signal in signals {
        // SAFETY: as above; an invalid signal number is EINVAL.
        check(unsafe { libc::sigaddset(&mut set, signal) })?;
    }
    Ok(set)
}
