//! One HTTP/1.1 connection to Elasticsearch at a time (hyper 1.x over
//! tokio, TLS by rustls with ring), with failover between the configured
//! URLs. One bulk request is in flight at a time, so one kept-alive
//! connection is all the sink needs.
//!
//! In: a request body and whether it is gzip'd. Out: the status and the
//! whole response body, or a [`DeliveryError`] naming the URL. Any
//! transport failure or timeout drops the connection and moves to the next
//! URL; the next attempt reconnects.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::delivery::config::{ApiKey, Auth, ElasticsearchConfig};
use crate::delivery::error::DeliveryError;

/// Responses larger than this are refused (a bulk response of 5,000 items
/// with full errors is a few MiB).
const MAX_RESPONSE: usize = 64 << 20;

/// The response fields the sink reads; everything else is filtered out by
/// Elasticsearch, keeping `items` positional.
const BULK_QUERY: &str = "filter_path=errors,items.*.status,items.*.error";

#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// As configured, for messages.
    url: String,
    https: bool,
    host: String,
    port: u16,
    authority: String,
    bulk_path: String,
}

/// A status and a whole body.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Bytes,
}

/// The client of the Elasticsearch sink.
pub(crate) struct BulkClient {
    endpoints: Vec<Endpoint>,
    current: usize,
    connection: Option<SendRequest<Full<Bytes>>>,
    tls: Option<TlsConnector>,
    authorization: Option<HeaderValue>,
    timeout: Duration,
}

impl BulkClient {
    /// Checks the URLs, reads the CA file and builds the TLS configuration.
    pub fn new(config: &ElasticsearchConfig) -> Result<Self, DeliveryError> {
        if config.urls.is_empty() {
            return Err(DeliveryError::Config("`urls` of the Elasticsearch sink is empty".to_owned()));
        }
        let endpoints = config.urls.iter().map(|url| parse_url(url)).collect::<Result<Vec<_>, _>>()?;
        let tls =
            if endpoints.iter().any(|e| e.https) { Some(tls_connector(config.ca_file.as_deref())?) } else { None };
        let authorization = config.auth.as_ref().map(authorization).transpose()?;
        Ok(Self { endpoints, current: 0, connection: None, tls, authorization, timeout: config.request_timeout })
    }

    /// The URL the next request goes to.
    pub fn url(&self) -> &str {
        self.endpoints.get(self.current).map_or("", |e| e.url.as_str())
    }

    /// POSTs one bulk body. Within `request_timeout`: connects if needed,
    /// sends, reads the whole response.
    pub async fn post(&mut self, body: Bytes, gzip: bool) -> Result<Response, DeliveryError> {
        let timeout = self.timeout;
        let result = match tokio::time::timeout(timeout, self.exchange(body, gzip)).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::Timeout { url: self.url().to_owned(), after: timeout }),
        };
        if result.is_err() {
            self.connection = None;
            self.current = (self.current + 1) % self.endpoints.len().max(1);
        }
        result
    }

    async fn exchange(&mut self, body: Bytes, gzip: bool) -> Result<Response, DeliveryError> {
        let endpoint = self.endpoints.get(self.current).cloned().ok_or(DeliveryError::Stopped)?;
        let http_error = |reason: String| DeliveryError::Http { url: endpoint.url.clone(), reason };
        let reusable = match self.connection.take() {
            Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
            None => None,
        };
        let mut sender = match reusable {
            Some(sender) => sender,
            None => self.connect(&endpoint).await?,
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(endpoint.bulk_path.as_str())
            .header(HOST, endpoint.authority.as_str())
            .header(CONTENT_TYPE, "application/x-ndjson");
        if gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        if let Some(value) = &self.authorization {
            request = request.header(AUTHORIZATION, value.clone());
        }
        let request = request.body(Full::new(body)).map_err(|e| http_error(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(|e| http_error(e.to_string()))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| http_error(format!("reading the response: {e}")))?
            .to_bytes();
        self.connection = Some(sender);
        Ok(Response { status, body })
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<SendRequest<Full<Bytes>>, DeliveryError> {
        let connect_error = |reason: String| DeliveryError::Connect { url: endpoint.url.clone(), reason };
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        // Bulk bodies are written in one piece; do not wait for ACKs of small writes.
        let _ = tcp.set_nodelay(true);
        match (&self.tls, endpoint.https) {
            (Some(tls), true) => {
                let name = ServerName::try_from(endpoint.host.clone())
                    .map_err(|e| connect_error(format!("invalid TLS server name: {e}")))?;
                let stream = tls.connect(name, tcp).await.map_err(|e| connect_error(format!("TLS handshake: {e}")))?;
                handshake(TokioIo::new(stream), &endpoint.url).await
            }
            _ => handshake(TokioIo::new(tcp), &endpoint.url).await,
        }
    }
}

async fn handshake<T>(io: T, url: &str) -> Result<SendRequest<Full<Bytes>>, DeliveryError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| DeliveryError::Connect { url: url.to_owned(), reason: e.to_string() })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "elasticsearch connection closed");
        }
    });
    Ok(sender)
}

/// `url` as an Elasticsearch base URL, or why it cannot be one (the
/// client's parse, and `validate`'s check of `urls`: one set of rules).
pub(crate) fn parse_url(url: &str) -> Result<Endpoint, DeliveryError> {
    let invalid = |reason: &str| DeliveryError::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
    let uri: Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| invalid(&e.to_string()))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(invalid("the scheme must be `http` or `https`")),
    };
    let authority = uri.authority().filter(|a| !a.host().is_empty()).ok_or_else(|| invalid("no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("credentials belong in `auth`, not in the URL"));
    }
    if uri.query().is_some() {
        return Err(invalid("a query string is not supported"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let prefix = uri.path().trim_end_matches('/');
    Ok(Endpoint {
        url: url.to_owned(),
        https,
        host,
        port,
        authority: authority.as_str().to_owned(),
        bulk_path: format!("{prefix}/_bulk?{BULK_QUERY}"),
    })
}

fn tls_connector(ca_file: Option<&Path>) -> Result<TlsConnector, DeliveryError> {
    let roots = match ca_file {
        Some(path) => ca_roots(path)?,
        None => webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| DeliveryError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The most bytes of a CA file read (a bundle of every public root is
/// about 200 KiB).
const MAX_CA_FILE_BYTES: u64 = 16 << 20;

/// The certificates of the PEM file at `path`, read as a regular file
/// with a bound; an error naming the file when it cannot be read or holds
/// no certificate (the client's roots, and `validate`'s check of
/// `ca_file`: one reading).
pub(crate) fn ca_roots(path: &Path) -> Result<rustls::RootCertStore, DeliveryError> {
    let ca_error = |reason: String| DeliveryError::CaFile { path: path.to_owned(), reason };
    let text = d4c_artifact::input::read_regular(path, MAX_CA_FILE_BYTES).map_err(|e| ca_error(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&text) {
        let certificate = certificate.map_err(|e| ca_error(e.to_string()))?;
        roots.add(certificate).map_err(|e| ca_error(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ca_error("no certificate in the file".to_owned()));
    }
    Ok(roots)
}

fn authorization(auth: &Auth) -> Result<HeaderValue, DeliveryError> {
    let base64 = base64::engine::general_purpose::STANDARD;
    let value = match auth {
        Auth::ApiKey(ApiKey::Encoded(encoded)) => format!("ApiKey {}", encoded.trim()),
        Auth::ApiKey(ApiKey::Parts { id, api_key }) => format!("ApiKey {}", base64.encode(format!("{id}:{api_key}"))),
        Auth::Basic { username, password } => format!("Basic {}", base64.encode(format!("{username}:{password}"))),
    };
    let mut value = HeaderValue::from_str(&value).map_err(|_| {
        DeliveryError::Config("the Elasticsearch credentials contain characters not allowed in a header".to_owned())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_endpoints() {
        let endpoint = parse_url("https://es.example:9243/prefix/").unwrap();
        assert!(endpoint.https);
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("es.example", 9243));
        assert_eq!(endpoint.bulk_path, format!("/prefix/_bulk?{BULK_QUERY}"));
        let endpoint = parse_url("http://[::1]").unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port, endpoint.authority.as_str()), ("::1", 80, "[::1]"));
        for bad in ["ftp://es", "https://user:pw@es", "https://es/?pretty", "es:9200"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_become_headers() {
        let key = authorization(&Auth::ApiKey(ApiKey::Parts { id: "id".into(), api_key: "key".into() })).unwrap();
        assert_eq!(key.to_str().unwrap(), "ApiKey aWQ6a2V5");
        let basic = authorization(&Auth::Basic { username: "elastic".into(), password: "pw".into() }).unwrap();
        assert_eq!(basic.to_str().unwrap(), "Basic ZWxhc3RpYzpwdw==");
        assert!(basic.is_sensitive());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let error = tls_connector(Some(&path)).err().unwrap();
        assert!(error.to_string().starts_with("cannot use CA file"), "{error}");
    }
}
