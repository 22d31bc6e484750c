//! The raw system calls aya 0.13 does not wrap: `bpf(BPF_PROG_TEST_RUN)`
//! for the harness (feature `harness`), and `mount` of tracefs for the probes. `unsafe` is
//! confined here: each call passes the kernel pointers to buffers this
//! module owns for the duration of the call.
#![allow(unsafe_code)]

#[cfg(feature = "harness")]
use std::os::fd::RawFd;

/// `BPF_PROG_TEST_RUN` (include/uapi/linux/bpf.h).
#[cfg(feature = "harness")]
const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// The `test` member of `union bpf_attr` (Linux 5.10 layout and later).
#[cfg(feature = "harness")]
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    reserved: u32,
}

/// What one test run returned.
#[cfg(feature = "harness")]
pub(crate) struct TestRun {
    /// The program's return value.
    pub(crate) retval: u32,
    /// The kernel's mean duration of one run, in ns.
    pub(crate) duration_ns: u32,
    /// The bytes of the packet the program left.
    pub(crate) data_out_len: usize,
}

/// Runs the program `prog_fd` `repeat` times on `data_in`; the packet it
/// leaves is written into `data_out`.
#[cfg(feature = "harness")]
pub(crate) fn test_run(
    prog_fd: RawFd,
    data_in: &[u8],
    data_out: &mut [u8],
    repeat: u32,
) -> Result<TestRun, std::io::Error> {
    let size = |n: usize| u32::try_from(n).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput));
    let mut attr = TestRunAttr {
        prog_fd: u32::try_from(prog_fd).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?,
        data_size_in: size(data_in.len())?,
        data_size_out: size(data_out.len())?,
        data_in: data_in.as_ptr() as u64,
        data_out: data_out.as_mut_ptr() as u64,
        repeat,
        ..TestRunAttr::default()
    };
    // SAFETY: `attr` points at two live buffers of the sizes it states; the
    // kernel reads `data_in` and writes at most `data_size_out` bytes of
    // `data_out`, then returns. Nothing else is shared.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(TestRun { retval: attr.retval, duration_ns: attr.duration, data_out_len: attr.data_size_out as usize })
}

/// Mounts tracefs at `/sys/kernel/tracing` (the classic tracepoints attach
/// through it) unless it is there already.
pub fn ensure_tracefs() -> std::io::Result<()> {
    let target = "/sys/kernel/tracing";
    if std::path::Path::new(target).join("events").is_dir()
        || std::path::Path::new("/sys/kernel/debug/tracing/events").is_dir()
    {
        return Ok(());
    }
    mount(c"tracefs", c"/sys/kernel/tracing")
}

/// Mounts the pseudo file system `fstype` (also the source's name) at `dir`.
fn mount(fstype: &std::ffi::CStr, dir: &std::ffi::CStr) -> std::io::Result<()> {
    // SAFETY: the strings are NUL-terminated and outlive the call; no data
    // argument.
    let r = unsafe { libc::mount(fstype.as_ptr(), dir.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The BPF file system's magic number (`BPF_FS_MAGIC`).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Mounts the BPF file system at `/sys/fs/bpf` unless one is there, for
/// pinning. Needs CAP_SYS_ADMIN to mount; a DaemonSet mounts the host's.
pub fn ensure_bpffs() -> std::io::Result<()> {
    let dir = c"/sys/fs/bpf";
    if is_bpffs(dir) {
        return Ok(());
    }
    mount(c"bpf", dir)
}

/// Whether `dir` is on a BPF file system.
pub fn is_bpffs(dir: &std::ffi::CStr) -> bool {
    // SAFETY: `dir` is NUL-terminated; `buf` is a zeroed statfs the call
    // fills.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statfs(dir.as_ptr(), &mut buf) };
    r == 0 && buf.f_type as i64 == BPF_FS_MAGIC
}
