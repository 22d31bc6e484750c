//! The operations endpoint: `/metrics` (Prometheus text), `/healthz` and
//! `/readyz`, on hyper 1.x.
//!
//! The main loop renders the metrics text and stamps its heartbeat; the
//! server only reads them, so a slow scrape never holds up the loop.
//! `/healthz` fails when the main loop has not stamped its heartbeat for
//! [`STALE_AFTER`] (it is stuck); `/readyz` fails until the probes are
//! attached and the first container scan is done.

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
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// How long the main loop may go without a heartbeat before `/healthz`
/// fails.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

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

/// Serves connections from `listener` forever.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(request, shared.clone()));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
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

    #[tokio::test]
    async fn endpoints_answer_and_readiness_follows_the_flag() -> Result<(), String> {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared::default());
        shared.beat();
        shared.set_metrics("d4c_up 1\n".into());
        tokio::spawn(serve(listener, shared.clone()));
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
