//! `d4c_runtime::kube` against a fake Kubernetes API server: a hyper 1.x
//! server on `127.0.0.1:0` that answers the four requests the daemon makes
//! (the kube-system namespace, this node, the list of this node's pods, and
//! their watch as newline-delimited JSON events), records every request,
//! and can be told to fail.
//!
//! Each watch request takes the next feed the test opened (a channel of
//! event lines; dropping the sender ends the response); with no feed left,
//! the watch stays open and silent. Tests wait on conditions with a
//! deadline, never on fixed sleeps.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use d4c_runtime::kube::{Kube, KubeConfig, KubeError};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const NODE: &str = "node-1";
const CLUSTER_UID: &str = "6b5a3f0e-1d2c-4b7a-9e8f-0a1b2c3d4e5f";
/// How long a condition may take: the retry tests wait out kube's first
/// backoff (0.8 s), so this is generous, never a fixed wait.
const DEADLINE: Duration = Duration::from_secs(20);

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The requests the fake server tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Route {
    Namespace,
    Node,
    List,
    Watch,
}

#[derive(Default)]
struct State {
    /// Every request, as `METHOD path?query`.
    requests: Vec<String>,
    /// The pods the list answers with.
    pods: Vec<Value>,
    /// The list's resource version.
    resource_version: u64,
    /// How many of the next requests of a route fail, and with what status.
    failures: HashMap<Route, (u32, u16)>,
    /// Feeds for the next watch requests.
    feeds: VecDeque<mpsc::UnboundedReceiver<Bytes>>,
}

/// The fake API server.
struct FakeApi {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    server: JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeApi {
    async fn start(pods: Vec<Value>) -> Result<FakeApi, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let state = Arc::new(Mutex::new(State { pods, resource_version: 100, ..State::default() }));
        let server = tokio::spawn(serve(listener, state.clone()));
        Ok(FakeApi { address, state, server })
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens the feed of the next watch request.
    fn feed(&self) -> Feed {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.state().feeds.push_back(receiver);
        Feed(sender)
    }

    /// The next `times` requests of `route` answer `status`.
    fn fail(&self, route: Route, times: u32, status: u16) {
        self.state().failures.insert(route, (times, status));
    }

    fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }

    fn count(&self, prefix: &str) -> usize {
        self.requests().iter().filter(|r| r.starts_with(prefix)).count()
    }

    /// The pod requests, lists and watches alike.
    fn pod_requests(&self) -> Vec<String> {
        self.requests().into_iter().filter(|r| r.starts_with("GET /api/v1/pods?")).collect()
    }

    /// How many lists of pods (not watches) were asked for.
    fn lists(&self) -> usize {
        self.pod_requests().iter().filter(|r| !r.contains("watch=true")).count()
    }

    /// A client of this server, and a started `Kube` on it.
    fn kube(&self) -> Result<Kube, String> {
        let uri = self.url().parse().map_err(|e| format!("{e}"))?;
        let client = kube::Client::try_from(kube::Config::new(uri)).map_err(|e| e.to_string())?;
        Kube::start_with_client(client, &self.url(), NODE).map_err(|e| e.to_string())
    }
}

/// One watch response: each `send` is one event line.
struct Feed(mpsc::UnboundedSender<Bytes>);

impl Feed {
    fn send(&self, kind: &str, object: Value) -> Result<(), String> {
        let line = format!("{}\n", json!({"type": kind, "object": object}));
        self.0.send(Bytes::from(line)).map_err(|_| "the watch is closed".to_owned())
    }
}

async fn serve(listener: TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&state, &request)) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn full(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn answer(state: &Mutex<State>, request: &Request<Incoming>) -> Response<Body> {
    let mut state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    state.requests.push(format!("{} {path}?{query}", request.method()));
    let route = match path.as_str() {
        "/api/v1/namespaces/kube-system" => Route::Namespace,
        p if p == format!("/api/v1/nodes/{NODE}") => Route::Node,
        "/api/v1/pods" if query.split('&').any(|p| p == "watch=true") => Route::Watch,
        "/api/v1/pods" => Route::List,
        _ => return full(StatusCode::NOT_FOUND, &status(404, "NotFound", &format!("no route {path}"))),
    };
    if let Some((times, code)) = state.failures.get_mut(&route) {
        if *times > 0 {
            *times -= 1;
            let code = *code;
            let status_code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return full(status_code, &status(code, "InternalError", "scripted failure"));
        }
    }
    match route {
        Route::Namespace => full(
            StatusCode::OK,
            &json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "kube-system", "uid": CLUSTER_UID, "resourceVersion": "7"}}),
        ),
        Route::Node => full(
            StatusCode::OK,
            &json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "uid": "n-1", "labels": {"topology.kubernetes.io/zone": "eu-1a"}},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "10.1.0.7"}, {"type": "Hostname", "address": NODE}],
                "nodeInfo": {"kernelVersion": "6.8.0-45-generic", "osImage": "Ubuntu 24.04.1 LTS",
                    "architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "v1.31.2",
                    "containerRuntimeVersion": "containerd://1.7.22", "kubeProxyVersion": "", "bootID": "",
                    "machineID": "", "systemUUID": ""}
            }}),
        ),
        Route::List => {
            // The real list leaves kind and apiVersion off its items.
            let items: Vec<Value> = state
                .pods
                .iter()
                .map(|p| {
                    let mut p = p.clone();
                    if let Some(o) = p.as_object_mut() {
                        o.remove("kind");
                        o.remove("apiVersion");
                    }
                    p
                })
                .collect();
            full(
                StatusCode::OK,
                &json!({"apiVersion": "v1", "kind": "PodList",
                        "metadata": {"resourceVersion": state.resource_version.to_string()}, "items": items}),
            )
        }
        Route::Watch => {
            let body: Body = match state.feeds.pop_front() {
                Some(receiver) => {
                    let lines = futures::stream::unfold(receiver, |mut receiver| async move {
                        receiver.recv().await.map(|line| (Ok::<_, Infallible>(Frame::data(line)), receiver))
                    });
                    StreamBody::new(lines).boxed_unsync()
                }
                None => StreamBody::new(futures::stream::pending::<Result<Frame<Bytes>, Infallible>>()).boxed_unsync(),
            };
            let mut response = Response::new(body);
            response
                .headers_mut()
                .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
            response
        }
    }
}

/// A pod of `NODE`, as the API writes it.
fn pod(uid: &str, name: &str, labels: Value, resource_version: u64) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "prod", "uid": uid, "resourceVersion": resource_version.to_string(),
            "labels": labels,
            "annotations": {"team": "payments"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-rs"),
                                 "uid": format!("{uid}-owner"), "controller": true}]
        },
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "nginx:1.27"}]},
        "status": {"phase": "Running", "podIP": "10.2.0.9", "podIPs": [{"ip": "10.2.0.9"}]}
    })
}

const UID_A: &str = "0d3c8a52-7f0b-4a1b-9f8e-2f4c9a1b2c3d";
const UID_B: &str = "1e4d9b63-8a1c-4b2c-8a9f-3a5d0b2c3d4e";
const UID_C: &str = "2f5eac74-9b2d-4c3d-9bab-4b6e1c3d4e5f";

/// Waits until `condition` holds, at most `DEADLINE`.
async fn wait_for(what: &str, condition: impl Fn() -> bool) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition() {
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

fn label(kube: &Kube, uid: &str, key: &str) -> Option<String> {
    kube.pod(uid).and_then(|p| p.labels.get(key).cloned())
}

#[tokio::test]
async fn this_nodes_pods_are_indexed_by_uid_with_labels() -> Result<(), String> {
    let api = FakeApi::start(vec![
        pod(UID_A, "web-1", json!({"app": "web", "tier": "front"}), 90),
        pod(UID_B, "db-1", json!({"app": "db"}), 91),
    ])
    .await?;
    let _feed = api.feed();
    let kube = api.kube()?;
    wait_for("the first list", || kube.synced()).await?;
    assert_eq!(kube.pod_count(), 2);
    let web = kube.pod(UID_A).ok_or("web-1 is not indexed")?;
    assert_eq!((web.name.as_str(), web.namespace.as_str()), ("web-1", "prod"));
    assert_eq!(label(&kube, UID_A, "tier").as_deref(), Some("front"));
    assert_eq!(web.owner_kind.as_deref(), Some("ReplicaSet"));
    assert_eq!(web.ips, ["10.2.0.9"]);
    assert_eq!(web.annotations.get("team").map(String::as_str), Some("payments"));
    // The systemd cgroup driver's spelling of the uid finds it too.
    assert_eq!(kube.pod(&UID_B.replace('-', "_")).map(|p| p.name), Some("db-1".to_owned()));
    assert_eq!(kube.pod("00000000-0000-0000-0000-000000000000"), None);

    // The cluster id is kube-system's uid; the node's facts are read.
    wait_for("the cluster id", || kube.cluster_id().is_some()).await?;
    assert_eq!(kube.cluster_id().as_deref(), Some(CLUSTER_UID));
    wait_for("the node's facts", || kube.node().is_some()).await?;
    let node = kube.node().ok_or("no node facts")?;
    assert_eq!(node.kernel_version.as_deref(), Some("6.8.0-45-generic"));
    assert_eq!(node.os_image.as_deref(), Some("Ubuntu 24.04.1 LTS"));
    assert_eq!(node.architecture.as_deref(), Some("amd64"));
    assert_eq!(node.ips(), ["10.1.0.7"]);
    assert_eq!(node.hostname(), Some(NODE));
    assert_eq!(node.labels.get("topology.kubernetes.io/zone").map(String::as_str), Some("eu-1a"));

    // Only this node's pods were asked for: every pod request, list and
    // watch, carries the field selector naming the node.
    wait_for("the watch request", || api.pod_requests().len() >= 2).await?;
    let pod_requests = api.pod_requests();
    let selector = format!("fieldSelector=spec.nodeName%3D{NODE}");
    assert!(pod_requests.iter().all(|r| r.split(['?', '&']).any(|p| p == selector)), "{pod_requests:#?}");
    assert!(pod_requests.iter().any(|r| r.contains("watch=true")), "{pod_requests:#?}");
    assert!(api.requests().iter().all(|r| !r.starts_with("GET /api/v1/namespaces/prod")), "no namespaced reads");
    Ok(())
}

#[tokio::test]
async fn watch_events_add_update_and_remove_pods_and_bump_the_generation() -> Result<(), String> {
    let api = FakeApi::start(vec![pod(UID_A, "web-1", json!({"app": "web"}), 90)]).await?;
    let feed = api.feed();
    let kube = api.kube()?;
    wait_for("the first list", || kube.synced()).await?;
    // The cluster id and node facts bump the generation too: let them land
    // first so the counts below are the pods' alone.
    wait_for("the cluster id and node", || kube.cluster_id().is_some() && kube.node().is_some()).await?;

    let before = kube.generation();
    feed.send("ADDED", pod(UID_C, "job-1", json!({"app": "job"}), 101))?;
    wait_for("the added pod", || kube.pod(UID_C).is_some()).await?;
    assert_eq!(kube.generation(), before + 1);

    let before = kube.generation();
    feed.send("MODIFIED", pod(UID_A, "web-1", json!({"app": "web", "version": "v2"}), 102))?;
    wait_for("the new label", || label(&kube, UID_A, "version").as_deref() == Some("v2")).await?;
    assert_eq!(kube.generation(), before + 1);

    // A change the daemon does not keep (here: only the resource version
    // and phase) does not bump the generation; the next real change does,
    // by one, so the two were seen in order.
    let before = kube.generation();
    let mut same = pod(UID_A, "web-1", json!({"app": "web", "version": "v2"}), 103);
    same["status"]["phase"] = json!("Succeeded");
    feed.send("MODIFIED", same)?;
    feed.send("MODIFIED", pod(UID_C, "job-1", json!({"app": "job", "done": "yes"}), 104))?;
    wait_for("the second change", || label(&kube, UID_C, "done").is_some()).await?;
    assert_eq!(kube.generation(), before + 1);

    let before = kube.generation();
    feed.send("BOOKMARK", json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"resourceVersion": "105"}}))?;
    feed.send("DELETED", pod(UID_C, "job-1", json!({"app": "job", "done": "yes"}), 106))?;
    wait_for("the deleted pod to go", || kube.pod(UID_C).is_none()).await?;
    assert_eq!(kube.generation(), before + 1);
    assert_eq!(kube.pod_count(), 1);
    Ok(())
}

#[tokio::test]
async fn a_closed_watch_resumes_and_a_gone_one_relists() -> Result<(), String> {
    let api = FakeApi::start(vec![
        pod(UID_A, "web-1", json!({"app": "web"}), 90),
        pod(UID_B, "db-1", json!({"app": "db"}), 91),
    ])
    .await?;
    let first = api.feed();
    let second = api.feed();
    let kube = api.kube()?;
    wait_for("the first list", || kube.synced()).await?;
    // The server closes the first watch: the watcher watches again from
    // the last resource version, without a new list.
    first.send("MODIFIED", pod(UID_A, "web-1", json!({"app": "web", "v": "2"}), 110))?;
    wait_for("the first event", || label(&kube, UID_A, "v").is_some()).await?;
    drop(first);
    wait_for("the second watch", || api.pod_requests().len() >= 3).await?;
    let rewatch = api.pod_requests().get(2).cloned().unwrap_or_default();
    assert!(rewatch.contains("watch=true") && rewatch.contains("resourceVersion=110"), "{rewatch}");

    // 410 Gone: the resource version is too old; the watcher lists again,
    // and a pod missing from the new list is dropped when the list is done.
    {
        let mut state = api.state();
        state.pods.retain(|p| p["metadata"]["uid"] != UID_B);
        state.resource_version = 200;
    }
    let lists_before = api.lists();
    second.send(
        "ERROR",
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired",
               "message": "too old resource version: 110 (150)", "code": 410}),
    )?;
    wait_for("the relist to drop db-1", || kube.pod(UID_B).is_none()).await?;
    assert_eq!(api.lists(), lists_before + 1);
    assert!(kube.pod(UID_A).is_some() && kube.synced());
    Ok(())
}

#[tokio::test]
async fn a_failing_api_server_is_retried_until_synced() -> Result<(), String> {
    let api = FakeApi::start(vec![pod(UID_A, "web-1", json!({"app": "web"}), 90)]).await?;
    api.fail(Route::List, 1, 500);
    api.fail(Route::Namespace, 1, 500);
    api.fail(Route::Node, 1, 503);
    let _feed = api.feed();
    let logs = Logs::default();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::fmt().with_ansi(false).with_writer(logs.clone()).finish());
    let kube = api.kube()?;
    wait_for("the list after a 500", || kube.synced()).await?;
    assert_eq!(label(&kube, UID_A, "app").as_deref(), Some("web"));
    wait_for("the cluster id after a 500", || kube.cluster_id().is_some()).await?;
    assert_eq!(kube.cluster_id().as_deref(), Some(CLUSTER_UID));
    wait_for("the node after a 503", || kube.node().is_some()).await?;
    assert_eq!(api.count("GET /api/v1/namespaces/kube-system?"), 2);
    assert_eq!(api.count(&format!("GET /api/v1/nodes/{NODE}?")), 2);
    assert_eq!(api.lists(), 2);
    // Each failure was a warning naming the request, the status and the
    // API server's reason.
    let logs = logs.text();
    let url = api.url();
    for expected in [
        format!(
            "GET {url}/api/v1/pods?fieldSelector=spec.nodeName={NODE}: status 500: InternalError: scripted failure"
        ),
        format!("GET {url}/api/v1/namespaces/kube-system: status 500: InternalError: scripted failure"),
        format!("GET {url}/api/v1/nodes/{NODE}: status 503: InternalError: scripted failure"),
    ] {
        assert!(logs.lines().any(|l| l.contains(" WARN ") && l.contains(&expected)), "{expected}\nnot in\n{logs}");
    }
    Ok(())
}

/// Log lines captured for the test (the tasks run on the test's thread).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

#[tokio::test]
async fn start_reads_a_kubeconfig_and_is_off_when_disabled() -> Result<(), String> {
    let off = KubeConfig { enabled: Some(false), ..KubeConfig::default() };
    assert!(Kube::start(&off, NODE).map_err(|e| e.to_string())?.is_none());

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let missing = dir.path().join("missing.yaml");
    let config = KubeConfig { enabled: Some(true), kubeconfig: Some(missing.clone()), ..KubeConfig::default() };
    let error = Kube::start(&config, NODE).err().ok_or("a missing kubeconfig was accepted")?;
    assert!(matches!(error, KubeError::Config { .. }), "{error:?}");
    assert!(error.to_string().contains(&missing.display().to_string()), "{error}");
    assert_eq!(Kube::start(&config, "").err(), Some(KubeError::NoNodeName));

    let api = FakeApi::start(vec![pod(UID_A, "web-1", json!({"app": "web"}), 90)]).await?;
    let _feed = api.feed();
    let path = dir.path().join("kubeconfig.yaml");
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
         clusters:\n- name: fake\n  cluster:\n    server: {}\n\
         contexts:\n- name: test\n  context:\n    cluster: fake\n    user: nobody\n\
         users:\n- name: nobody\n  user: {{}}\n",
        api.url()
    );
    std::fs::write(&path, kubeconfig).map_err(|e| e.to_string())?;
    // `enabled` unset: a kubeconfig turns it on.
    let config = KubeConfig { kubeconfig: Some(path), ..KubeConfig::default() };
    let kube = Kube::start(&config, NODE).map_err(|e| e.to_string())?.ok_or("not started")?;
    wait_for("the first list", || kube.synced()).await?;
    assert_eq!(label(&kube, UID_A, "app").as_deref(), Some("web"));
    Ok(())
}

#[test]
fn start_outside_a_runtime_is_an_error_not_a_panic() -> Result<(), String> {
    let client_error = Kube::start(&KubeConfig { enabled: Some(true), ..KubeConfig::default() }, NODE).err();
    assert_eq!(client_error, Some(KubeError::NoRuntime));
    Ok(())
}
