//! `--kubernetes` against a mocked API server (tower-test, as kube-rs documents): the watcher's
//! LIST and WATCH answered with `NfPolicy` objects, the mirror's files checked after each
//! step — add, update, delete, a policy for another node, a bad policy (mirrored, then held
//! by the reconcile with status `Rejected`) — and the status patch's request checked: this
//! node's entry, by server-side apply with the node's field manager.

use http::{Request, Response};
use kube::client::Body;
use nfcc_agent::cluster::resource::NodeStatus;
use nfcc_agent::cluster::sync::{self, Mirror};
use std::path::Path;
use std::time::Duration;
use tower_test::mock::{self, Handle};

fn object(name: &str, rv: &str, source: &str, nodes: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "nfcc.dev/v1alpha1",
        "kind": "NfPolicy",
        "metadata": { "name": name, "namespace": "net", "resourceVersion": rv },
        "spec": {
            "source": source,
            "interfaces": ["eth*"],
            "mode": "native",
            "nodes": nodes,
        }
    })
}

const GOOD: &str = "policy edge on xdp {\n  default pass\n}\n";
const GOOD2: &str =
    "policy edge on xdp {\n  rule dns: udp.dport == 53 => drop\n  default pass\n}\n";
const BAD: &str = "policy broken on xdp {\n  rule r: tcp.dprot == 1 => drop\n}\n";

/// Answers the next request, which must be a GET whose query holds `watch=true` or not as
/// `watch` says, with `body`.
async fn answer(handle: &mut Handle<Request<Body>, Response<Body>>, watch: bool, body: String) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .expect("a request in time")
        .expect("a request");
    assert_eq!(req.method(), http::Method::GET, "{}", req.uri());
    assert!(
        req.uri().path() == "/apis/nfcc.dev/v1alpha1/nfpolicies",
        "{}",
        req.uri()
    );
    let q = req.uri().query().unwrap_or("");
    assert_eq!(q.contains("watch=true"), watch, "{}", req.uri());
    send.send_response(
        Response::builder()
            .body(Body::from(body.into_bytes()))
            .expect("response"),
    );
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Waits until the mirror's files are `want`.
async fn files_become(dir: &Path, want: &[&str]) {
    for _ in 0..200 {
        if files(dir) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(files(dir), want);
}

#[tokio::test]
async fn the_cluster_is_mirrored_for_this_node_through_add_update_and_delete() {
    let dir = std::env::temp_dir().join(format!("nfcc-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // A stale file from an earlier run: the first listing removes it.
    std::fs::write(dir.join("net.gone.toml"), "x").expect("stale");
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let d = dir.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(async move {
        let mut mirror = Mirror::new(d, "worker-1".into());
        sync::follow(client, &mut mirror, &mut |listed| {
            let _ = tx.send(listed);
        })
        .await;
    });
    // LIST: one policy for this node, one for another node, one bad policy for every node.
    let list = serde_json::json!({
        "apiVersion": "nfcc.dev/v1alpha1",
        "kind": "NfPolicyList",
        "metadata": { "resourceVersion": "10" },
        "items": [
            object("edge", "5", GOOD, &["worker-*"]),
            object("other", "6", GOOD, &["edge-*"]),
            object("broken", "7", BAD, &[]),
        ],
    });
    answer(&mut handle, false, list.to_string()).await;
    assert_eq!(
        rx.recv().await,
        Some(true),
        "the listing wakes the loop as complete"
    );
    files_become(
        &dir,
        &[
            "net.broken.nf",
            "net.broken.toml",
            "net.edge.nf",
            "net.edge.toml",
        ],
    )
    .await;
    let binding = std::fs::read_to_string(dir.join("net.edge.toml")).expect("binding");
    assert_eq!(
        binding,
        "policy_file = \"net.edge.nf\"\ninterfaces = [\"eth*\"]\nmode = \"native\"\n"
    );
    // The agent's own reading of the mirror: the good binding parses, the bad policy is a
    // binding whose check fails (the reconcile holds it and reports `Rejected`).
    let cfg = nfcc_agent::config::read(&dir).expect("config");
    assert_eq!(cfg.bindings.len(), 2, "{cfg:?}");
    let broken = cfg
        .bindings
        .iter()
        .find(|b| b.name == "net.broken")
        .expect("broken binding");
    let why = nfcc_agent::reconcile::check(broken).expect_err("the bad policy is held");
    assert!(why.contains("unknown field `tcp.dprot`"), "{why}");
    // WATCH: the edge policy changes, the broken one is deleted, the other node's appears
    // for this node too.
    let events = [
        serde_json::json!({ "type": "MODIFIED", "object": object("edge", "11", GOOD2, &["worker-*"]) }),
        serde_json::json!({ "type": "DELETED", "object": object("broken", "12", BAD, &[]) }),
        serde_json::json!({ "type": "MODIFIED", "object": object("other", "13", GOOD, &[]) }),
    ]
    .iter()
    .map(|e| format!("{e}\n"))
    .collect::<String>();
    answer(&mut handle, true, events).await;
    files_become(
        &dir,
        &[
            "net.edge.nf",
            "net.edge.toml",
            "net.other.nf",
            "net.other.toml",
        ],
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(dir.join("net.edge.nf")).expect("nf"),
        GOOD2
    );
    follower.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn this_nodes_status_is_written_by_server_side_apply() {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let status = NodeStatus {
        node: "worker-1".into(),
        state: "Rejected".into(),
        message: "error[E0101]: unknown field `tcp.dprot`".into(),
        revision: "00ab".into(),
        interfaces: vec![],
    };
    let s = status.clone();
    let publish = tokio::spawn(async move { sync::publish(client, "net", "broken", &s).await });
    let (req, send) = handle.next_request().await.expect("a request");
    assert_eq!(req.method(), http::Method::PATCH);
    assert_eq!(
        req.uri().path(),
        "/apis/nfcc.dev/v1alpha1/namespaces/net/nfpolicies/broken/status"
    );
    let q = req.uri().query().unwrap_or("");
    assert!(q.contains("fieldManager=nfcc-agent.worker-1"), "{q}");
    assert!(q.contains("force=true"), "{q}");
    assert_eq!(
        req.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/apply-patch+yaml")
    );
    use http_body_util::BodyExt;
    let body = req.into_body().collect().await.expect("body").to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json body");
    assert_eq!(v["status"]["nodes"][0]["node"], "worker-1");
    assert_eq!(v["status"]["nodes"][0]["state"], "Rejected");
    assert_eq!(v["kind"], "NfPolicy");
    let mut back = object("broken", "8", BAD, &[]);
    back["status"] = v["status"].clone();
    send.send_response(
        Response::builder()
            .body(Body::from(back.to_string().into_bytes()))
            .expect("response"),
    );
    publish.await.expect("task").expect("patched");
}
