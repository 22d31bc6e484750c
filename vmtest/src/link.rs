//! The guest's end of the links to the in-container agents.
//!
//! A container's agent is its command; containerd gives it no pipe to the
//! harness. Pods use the host network, so the agent connects to
//! [`LINK_ADDR`] on the guest's loopback, named by its environment
//! ([`LINK_ENV`], [`AGENT_ENV`]), and says `agent TOKEN` first; the
//! harness hands the connection to the container that was given that
//! token ([`wait_for`]). TCP on the loopback rather than a unix socket in
//! a hostPath volume: a volume would add a mount to every container, and
//! the probes decide by mounts.
//!
//! One listener per process, started on first use; one thread accepts and
//! reads each greeting (bounded), so that a silent connection cannot hold
//! up the others.

use std::collections::HashMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where the harness listens (the guest's loopback; pods share it).
pub const LINK_ADDR: &str = "127.0.0.1:9300";
/// The agent's environment variable naming [`LINK_ADDR`].
pub const LINK_ENV: &str = "D4C_VMTEST_LINK";
/// The agent's environment variable holding its token.
pub const AGENT_ENV: &str = "D4C_VMTEST_AGENT";
/// How long a connection may take to say its greeting.
const GREETING_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest greeting.
const MAX_GREETING: usize = 256;

/// The greeting line an agent sends first (without the newline).
pub fn greeting(token: &str) -> String {
    format!("agent {token}")
}

/// Connections that said their token and were not taken yet.
#[derive(Default)]
struct Arrived {
    streams: Mutex<HashMap<String, TcpStream>>,
    ready: Condvar,
}

/// The listener's state, shared with its accept thread.
static LISTENER: OnceLock<Result<Arc<Arrived>, String>> = OnceLock::new();

/// Starts the listener (once).
fn arrived() -> Result<Arc<Arrived>, String> {
    LISTENER
        .get_or_init(|| {
            let listener =
                TcpListener::bind(LINK_ADDR).map_err(|e| format!("cannot listen on {LINK_ADDR} for agents: {e}"))?;
            let arrived = Arc::new(Arrived::default());
            let shared = Arc::clone(&arrived);
            std::thread::Builder::new()
                .name("agent-links".into())
                .spawn(move || accept(&listener, &shared))
                .map_err(|e| format!("cannot start the agents' accept thread: {e}"))?;
            Ok(arrived)
        })
        .clone()
}

/// Makes sure the listener runs (before a container that will connect is
/// created).
pub fn listen() -> Result<(), String> {
    arrived().map(|_| ())
}

fn accept(listener: &TcpListener, arrived: &Arrived) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let Ok(token) = read_greeting(&stream) else { continue };
        if let Ok(mut streams) = arrived.streams.lock() {
            streams.insert(token, stream);
            arrived.ready.notify_all();
        }
    }
}

/// Reads `agent TOKEN\n` byte by byte (nothing after it is consumed).
fn read_greeting(mut stream: &TcpStream) -> Result<String, String> {
    stream.set_read_timeout(Some(GREETING_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < MAX_GREETING {
        match stream.read(&mut byte) {
            Ok(1) if byte == [b'\n'] => {
                stream.set_read_timeout(None).map_err(|e| e.to_string())?;
                let text = String::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
                return text.strip_prefix("agent ").map(str::to_string).ok_or(format!("bad greeting `{text}`"));
            }
            Ok(1) => line.extend_from_slice(&byte),
            Ok(_) => return Err("closed before its greeting".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("greeting too long".into())
}

/// Waits up to `timeout` for the agent with `token` to connect; returns
/// its connection.
pub fn wait_for(token: &str, timeout: Duration) -> Result<TcpStream, String> {
    let arrived = arrived()?;
    let deadline = Instant::now() + timeout;
    let mut streams = arrived.streams.lock().map_err(|_| "the agents' table is poisoned".to_string())?;
    loop {
        if let Some(stream) = streams.remove(token) {
            return Ok(stream);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("its agent did not connect to {LINK_ADDR} within {}s", timeout.as_secs()));
        }
        streams = arrived.ready.wait_timeout(streams, left).map_err(|_| "the agents' table is poisoned".to_string())?.0;
    }
}

/// Forgets a connection that arrived for `token` but was never taken (a
/// container that failed to start).
pub fn forget(token: &str) {
    if let Ok(arrived) = arrived() {
        if let Ok(mut streams) = arrived.streams.lock() {
            streams.remove(token);
        }
    }
}

/// A token no other agent of this boot has: the process, a counter, and
/// the time.
pub fn new_token(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("{safe}-{}-{n}-{nanos}", std::process::id())
}
