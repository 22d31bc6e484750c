//! A minimal Elasticsearch `_bulk` endpoint for the guest: it accepts
//! `POST /_bulk` (gzip'd or not) on HTTP/1.1 keep-alive connections,
//! answers every `create` with 201 (409 for an `_id` it has), and keeps the
//! documents for the runtime check to inspect. Not an emulator of faults:
//! the delivery tests (`runtime/tests/delivery.rs`) have that; this one is
//! the far end of a healthy link inside the VM.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One document received: its data stream, its `_id`, its source.
#[derive(Debug, Clone)]
pub struct Received {
    /// The `_index` of the `create` action.
    pub index: String,
    /// The `_id`.
    pub id: String,
    /// The document.
    pub source: Value,
}

/// The endpoint; it serves until the process exits.
#[derive(Clone, Default)]
pub struct BulkSink {
    documents: Arc<Mutex<Vec<Received>>>,
    ids: Arc<Mutex<HashSet<String>>>,
    /// Requests that could not be read or parsed (a client bug).
    pub bad_requests: Arc<Mutex<Vec<String>>>,
    /// Connections ended, by the client or after a bad request.
    pub connections_ended: Arc<AtomicUsize>,
    /// The address it listens on (`start` binds it).
    pub local: Option<std::net::SocketAddr>,
}

impl BulkSink {
    /// Binds `addr` and serves it on a thread per connection.
    pub fn start(addr: &str) -> Result<BulkSink, String> {
        let listener = TcpListener::bind(addr).map_err(|e| format!("bulk sink: cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().ok();
        let sink = BulkSink { local, ..BulkSink::default() };
        let serving = sink.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = serving.clone();
                std::thread::spawn(move || {
                    sink.connection(stream);
                    sink.connections_ended.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Ok(sink)
    }

    /// Every document so far.
    pub fn documents(&self) -> Vec<Received> {
        self.documents.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// Waits until `want` holds of the documents, or `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        want: impl Fn(&[Received]) -> bool,
    ) -> Result<Vec<Received>, Vec<Received>> {
        let deadline = Instant::now() + timeout;
        loop {
            let documents = self.documents();
            if want(&documents) {
                return Ok(documents);
            }
            if Instant::now() > deadline {
                return Err(documents);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn connection(&self, stream: TcpStream) {
        let Ok(mut writer) = stream.try_clone() else { return };
        let mut reader = BufReader::new(stream);
        loop {
            match self.request(&mut reader) {
                Ok(Some(body)) => {
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if writer.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    if let Ok(mut bad) = self.bad_requests.lock() {
                        bad.push(error);
                    }
                    let _ =
                        writer.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    return;
                }
            }
        }
    }

    /// Reads one request and returns the bulk response body; `None` at the
    /// end of the connection.
    fn request(&self, reader: &mut BufReader<TcpStream>) -> Result<Option<String>, String> {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            // The end of the connection: closed, or reset between requests
            // by a client that was killed (the runtime check's SIGKILL) with
            // a response unread. Neither is a bad request.
            Ok(0) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
            Err(e) => return Err(e.to_string()),
            Ok(_) => {}
        }
        let request_line = line.trim().to_owned();
        let (mut length, mut gzip) = (0usize, false);
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let header = line.trim();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().map_err(|_| format!("bad content-length {value}"))?,
                "content-encoding" => gzip = value.trim().eq_ignore_ascii_case("gzip"),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).map_err(|e| format!("{request_line}: body: {e}"))?;
        if !request_line.starts_with("POST ") || !request_line.contains("/_bulk") {
            return Ok(Some(r#"{"name":"d4c-vmtest","version":{"number":"8.15.0"}}"#.to_owned()));
        }
        if gzip {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).map_err(|e| format!("gzip: {e}"))?;
            body = plain;
        }
        let text = String::from_utf8(body).map_err(|e| format!("bulk body is not UTF-8: {e}"))?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let mut items = Vec::new();
        while let Some(action) = lines.next() {
            let action: Value = serde_json::from_str(action).map_err(|e| format!("action line: {e}"))?;
            let create = action.get("create").ok_or_else(|| format!("not a create action: {action}"))?;
            let index = create.get("_index").and_then(Value::as_str).unwrap_or_default().to_owned();
            let id = create.get("_id").and_then(Value::as_str).unwrap_or_default().to_owned();
            let source: Value = serde_json::from_str(lines.next().ok_or("an action without a document")?)
                .map_err(|e| format!("document line: {e}"))?;
            let fresh = self.ids.lock().map(|mut ids| ids.insert(id.clone())).unwrap_or(false);
            let status = if fresh { 201 } else { 409 };
            if fresh {
                if let Ok(mut documents) = self.documents.lock() {
                    documents.push(Received { index: index.clone(), id: id.clone(), source });
                }
            }
            items.push(serde_json::json!({"create": {"_index": index, "_id": id, "status": status}}));
        }
        let errors = items.iter().any(|i| i.pointer("/create/status") != Some(&serde_json::json!(201)));
        Ok(Some(serde_json::json!({"took": 1, "errors": errors, "items": items}).to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits until the sink has ended a connection.
    fn wait_ended(sink: &BulkSink) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.connections_ended.load(Ordering::SeqCst) == 0 {
            if Instant::now() > deadline {
                return Err("the connection never ended".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Regression (`runtime` check on 6.1: "the endpoint could not read
    /// requests: Connection reset by peer"): a client killed with a
    /// response unread resets its connection; that ends the connection and
    /// is no bad request.
    #[test]
    fn a_connection_reset_between_requests_is_not_a_bad_request() -> Result<(), String> {
        let sink = BulkSink::start("127.0.0.1:0")?;
        let addr = sink.local.ok_or("no address")?;
        let mut client = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let body = "{\"create\":{\"_index\":\"logs-a-b\",\"_id\":\"x1\"}}\n{\"a\":1}\n";
        let request = format!("POST /_bulk HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        client.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        // The response arrives and is left unread: closing now sends a reset.
        sink.wait_for(Duration::from_secs(10), |d| d.len() == 1).map_err(|d| format!("got {d:?}"))?;
        std::thread::sleep(Duration::from_millis(200));
        drop(client);
        wait_ended(&sink)?;
        let bad = sink.bad_requests.lock().map(|b| b.clone()).unwrap_or_default();
        assert!(bad.is_empty(), "{bad:?}");
        Ok(())
    }

    /// A request cut off in its body is still a bad request.
    #[test]
    fn a_request_cut_off_in_its_body_is_a_bad_request() -> Result<(), String> {
        let sink = BulkSink::start("127.0.0.1:0")?;
        let addr = sink.local.ok_or("no address")?;
        let mut client = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        client
            .write_all(b"POST /_bulk HTTP/1.1\r\ncontent-length: 100\r\n\r\n{\"create\"")
            .map_err(|e| e.to_string())?;
        drop(client);
        wait_ended(&sink)?;
        let bad = sink.bad_requests.lock().map(|b| b.clone()).unwrap_or_default();
        assert_eq!(bad.len(), 1, "{bad:?}");
        Ok(())
    }
}
