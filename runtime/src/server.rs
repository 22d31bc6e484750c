//! The operations endpoint: `/metrics` (Prometheus text), `/healthz` and
//! `/readyz`, on hyper 1.x.
//!
//! The main loop renders the metrics text and stamps its heartbeat; the
//! server only reads them, so a slow scrape never holds up the loop.
//! `/healthz` fails when the main loop has not stamped its heartbeat for
//! [`STALE_AFTER`] (it is stuck); `/readyz` fails until the probes are
//! attached and the first container scan is done.
//!
//! Invariant: a client cannot hold the daemon's file descriptors. A
//! connection must send its request head within [`HEADER_READ_TIMEOUT`],
//! lives at most [`CONNECTION_TIMEOUT`] in all, and at most
//! [`MAX_CONNECTIONS`] are open at once: one over the cap is closed as
//! soon as it is accepted (issue 14: idle connections ran the daemon out
//! of descriptors, so `/healthz` stopped answering, reloads failed and the
//! container scan saw an empty tree).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long the main loop may go without a heartbeat before `/healthz`
/// fails.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// How long a connection may take to send a request's head (line and
/// headers): a scraper sends it at once, an idle client is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a connection lives, keep-alive requests included: bounds
/// what a slow reader of `/metrics` can hold.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// The most connections served at once: a few scrapers and probes need a
/// handful; the rest of the descriptors stay the daemon's.
pub const MAX_CONNECTIONS: usize = 32;

/// The bounds of the operations server's connections (the defaults are the
/// constants above; tests use shorter ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`CONNECTION_TIMEOUT`].
    pub connection_timeout: Duration,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            connection_timeout: CONNECTION_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// What the server shows; written by the main loop.
#[derive(Debug, Default)]
pub struct Shared {
    /// The rendered Prometheus text.
    pub metrics: Mutex<String>,
    /// `CLOCK_BOOTTIME` nanoseconds of the main loop's last turn.
    pub heartbeat_ns: AtomicU64,
    /// Probes attached and containers scanned.
    pub ready: AtomicBool,
}

impl Shared {
    /// Stamps the heartbeat.
    pub fn beat(&self) {
        self.heartbeat_ns.store(crate::facts::boot_ns(), Ordering::Relaxed);
    }

    /// Replaces the metrics text.
    pub fn set_metrics(&self, text: String) {
        if let Ok(mut m) = self.metrics.lock() {
            *m = text;
        }
    }
}

/// Binds `addr` (an error names it) and serves until the task is dropped.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr} for /metrics: {e}"))
}

/// Serves connections from `listener` forever, within the default
/// [`Limits`].
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    serve_within(listener, shared, Limits::default()).await;
}

/// Serves connections from `listener` forever within `limits`: a
/// connection over `max_connections` is closed unanswered, one that sends
/// no request head within `header_read_timeout` or lives past
/// `connection_timeout` is closed.
pub async fn serve_within(listener: TcpListener, shared: Arc<Shared>, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // EMFILE and the like: wait for descriptors to come back
            // rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // Over the cap: dropping the stream closes it at once, so the
        // client learns and the descriptor is freed.
        let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(request, shared.clone()));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limits.connection_timeout, connection).await;
            drop(slot);
        });
    }
}

async fn respond(request: Request<Incoming>, shared: Arc<Shared>) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
        }
        Ok(response)
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n".into());
    }
    match request.uri().path() {
        "/metrics" => {
            let text = shared.metrics.lock().map(|m| m.clone()).unwrap_or_default();
            reply(StatusCode::OK, "text/plain; version=0.0.4", text)
        }
        "/healthz" => {
            let age = crate::facts::boot_ns().saturating_sub(shared.heartbeat_ns.load(Ordering::Relaxed));
            if age <= STALE_AFTER.as_nanos() as u64 {
                reply(StatusCode::OK, "text/plain", "ok\n".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("the main loop has not turned for {} s\n", age / 1_000_000_000),
                )
            }
        }
        "/readyz" => {
            if shared.ready.load(Ordering::Relaxed) {
                reply(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "starting: probes not attached yet\n".into())
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found: /metrics, /healthz, /readyz\n".into()),
    }
}

/// Prometheus text exposition, one family at a time.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        use std::fmt::Write as _;
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample with labels (`("label", "value")` pairs; values escaped).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        use std::fmt::Write as _;
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                let _ = write!(self.text, "{k}=\"{escaped}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
        self
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_escapes_label_values() {
        let mut e = Exposition::default();
        e.family("d4c_x_total", "counter", "X.").sample("d4c_x_total", &[("path", "a\"b\\c")], 3.0);
        assert_eq!(
            e.finish(),
            "# HELP d4c_x_total X.\n# TYPE d4c_x_total counter\nd4c_x_total{path=\"a\\\"b\\\\c\"} 3\n"
        );
    }

    /// A server on a free local port within `limits`, its heart beating:
    /// its address and what it shows.
    async fn serving(limits: Limits) -> Result<(SocketAddr, Arc<Shared>), String> {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared::default());
        shared.beat();
        tokio::spawn(serve_within(listener, shared.clone(), limits));
        Ok((addr, shared))
    }

    /// Whether the server closed `stream` (a read sees the end) within
    /// `within`; an error of the read counts as closed too (a reset).
    async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
        use tokio::io::AsyncReadExt as _;
        let mut byte = [0u8; 1];
        matches!(tokio::time::timeout(within, stream.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
    }

    /// Regression (issue 14, fault 2): idle connections to the operations
    /// port were kept forever and without number, until the daemon ran out
    /// of descriptors. Over the cap a connection is closed at once; an idle
    /// one is closed after the header-read timeout; then `/healthz` answers.
    #[tokio::test]
    async fn idle_operations_connections_are_timed_out_and_capped() -> Result<(), String> {
        let limits = Limits {
            header_read_timeout: Duration::from_millis(300),
            connection_timeout: Duration::from_secs(2),
            max_connections: 2,
        };
        let (addr, _shared) = serving(limits).await?;
        let connect = || async move { tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string()) };
        let mut idle = [connect().await?, connect().await?];
        // Let the server accept both before the one over the cap.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut over = connect().await?;
        assert!(closed_within(&mut over, Duration::from_millis(250)).await, "a connection over the cap was kept");
        for stream in &mut idle {
            // Closed by the header-read timeout, well before the
            // connection's own.
            assert!(closed_within(stream, Duration::from_secs(1)).await, "an idle connection was kept");
        }
        let mut healthz = connect().await?;
        use tokio::io::AsyncWriteExt as _;
        healthz
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        use tokio::io::AsyncReadExt as _;
        tokio::time::timeout(Duration::from_secs(3), healthz.read_to_string(&mut answer))
            .await
            .map_err(|_| "/healthz did not answer")?
            .map_err(|e| e.to_string())?;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        Ok(())
    }

    #[tokio::test]
    async fn endpoints_answer_and_readiness_follows_the_flag() -> Result<(), String> {
        let (addr, shared) = serving(Limits::default()).await?;
        shared.set_metrics("d4c_up 1\n".into());
        let get = |path: &'static str| async move {
            let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let request = Request::get(path).header("host", "x").body(http_body_util::Empty::<Bytes>::new());
            let response = sender.send_request(request.map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())?;
            Ok::<u16, String>(response.status().as_u16())
        };
        assert_eq!(get("/metrics").await?, 200);
        assert_eq!(get("/healthz").await?, 200);
        assert_eq!(get("/readyz").await?, 503);
        shared.ready.store(true, Ordering::Relaxed);
        assert_eq!(get("/readyz").await?, 200);
        assert_eq!(get("/nope").await?, 404);
        Ok(())
    }
}
