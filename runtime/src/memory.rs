//! The allocator's settings for a daemon with a few threads that runs for
//! months.
//!
//! glibc's malloc gives each thread that allocates its own arena (up to
//! eight per core) and keeps what a thread frees in that thread's arena for
//! it to reuse. The daemon's documents are made on the main loop's thread
//! and encoded, batched and freed on delivery's worker threads, so each
//! worker's arena grows to the largest batch it ever held and stays there.
//! Measured with `scripts/bench-runtime` (a fork/exec storm, 3,500 to 7,000
//! records/s): 55 to 75 MB resident at the peak with per-thread arenas
//! (three arenas of about 10 MB each), 35 MB with one arena.
//!
//! Elsewhere than glibc (musl, other systems) these do nothing.

/// One malloc arena for the whole process. Call first thing in `main`,
/// before any thread is started.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt(3) only sets an allocator parameter; it takes no
    // pointers and is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives the pages malloc holds free back to the kernel: after loading an
/// artifact, whose parsing (the kernel's BTF, the object file, the tables)
/// frees far more than the daemon keeps.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim(3) takes no pointers; it is thread-safe (it takes
    // each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}
