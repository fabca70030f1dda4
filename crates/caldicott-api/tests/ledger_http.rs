//! The `/ledger` transparency endpoints over an in-memory log: every route, every refusal,
//! and proofs checked with `caldicott_ledger`'s verifiers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use caldicott_api::ledger::{LedgerHttpError, LedgerView, MAX_ENTRIES, router};
use caldicott_ledger::{
    Checkpoint, Hash, MemoryTree, SignerKey, VerifierKey, consistency_proof, inclusion_proof,
    leaf_hash, verify_consistency, verify_inclusion,
};
use serde_json::Value;
use tower::ServiceExt as _;

const ORIGIN: &str = "audit.test.nhs.uk/ledger";
const TOKEN: &str = "auditor-token";
const OTHER_TOKEN: &str = "clinician-token";

struct Log {
    tree: MemoryTree,
    leaves: Vec<Vec<u8>>,
    /// Size of the latest checkpoint (≤ the tree's size).
    signed: u64,
}

/// A log in memory with a signing key; leaves are readable with `TOKEN`.
struct MemoryView {
    key: SignerKey,
    log: Mutex<Log>,
    failing: AtomicBool,
    panicking: AtomicBool,
}

impl MemoryView {
    fn new(leaves: usize) -> Arc<Self> {
        let view = Arc::new(MemoryView {
            key: SignerKey::generate(ORIGIN).unwrap(),
            log: Mutex::new(Log {
                tree: MemoryTree::new(),
                leaves: Vec::new(),
                signed: 0,
            }),
            failing: AtomicBool::new(false),
            panicking: AtomicBool::new(false),
        });
        view.append(leaves);
        view.sign();
        view
    }

    fn append(&self, n: usize) {
        let mut log = self.log.lock().unwrap();
        for _ in 0..n {
            let leaf = format!("event {}", log.leaves.len()).into_bytes();
            log.tree.append(leaf_hash(&leaf)).unwrap();
            log.leaves.push(leaf);
        }
    }

    fn sign(&self) {
        let mut log = self.log.lock().unwrap();
        log.signed = log.tree.size();
    }

    fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn tree(&self) -> MemoryTree {
        self.log.lock().unwrap().tree.clone()
    }

    fn vkey(&self) -> VerifierKey {
        self.key.verifier_key()
    }

    fn with<T>(&self, f: impl FnOnce(&Log) -> T) -> Result<T, LedgerHttpError> {
        // Checked before locking, so a panic does not poison the log.
        if self.panicking.load(Ordering::SeqCst) {
            panic!("the view panicked (as this test asked)");
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(LedgerHttpError::Unavailable(
                "disk /secret/path on fire".into(),
            ));
        }
        let log = self
            .log
            .lock()
            .map_err(|_| LedgerHttpError::Unavailable("lock poisoned".into()))?;
        Ok(f(&log))
    }
}

fn storage(e: impl std::fmt::Display) -> LedgerHttpError {
    LedgerHttpError::Unavailable(e.to_string())
}

impl LedgerView for MemoryView {
    fn checkpoint(&self) -> Result<String, LedgerHttpError> {
        self.with(|log| {
            let root = log.tree.root_at(log.signed).map_err(storage)?;
            Checkpoint::new(ORIGIN, log.signed, root)
                .and_then(|c| c.sign(&[&self.key]))
                .map_err(storage)
        })?
    }

    fn size(&self) -> Result<u64, LedgerHttpError> {
        self.with(|log| log.tree.size())
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LedgerHttpError> {
        self.with(|log| log.leaves[start as usize..end as usize].to_vec())
    }

    fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerHttpError> {
        self.with(|log| inclusion_proof(&log.tree, index, size).map_err(storage))?
    }

    fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, LedgerHttpError> {
        self.with(|log| consistency_proof(&log.tree, from, to).map_err(storage))?
    }

    fn authorize_entries(&self, headers: &HeaderMap) -> Result<(), LedgerHttpError> {
        let Some(auth) = headers.get(header::AUTHORIZATION) else {
            return Err(LedgerHttpError::Unauthorized(
                "a bearer token is required to read ledger entries".into(),
            ));
        };
        match auth.to_str().ok().and_then(|a| a.strip_prefix("Bearer ")) {
            Some(TOKEN) => Ok(()),
            Some(OTHER_TOKEN) => Err(LedgerHttpError::Forbidden(
                "this token may not read ledger entries".into(),
            )),
            _ => Err(LedgerHttpError::Unauthorized(
                "the token is not recognised".into(),
            )),
        }
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn error(&self) -> String {
        let v = self.json();
        assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
        v["error"].as_str().unwrap().to_owned()
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

async fn call(view: &Arc<MemoryView>, method: &str, uri: &str, token: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = router(Arc::clone(view))
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(view: &Arc<MemoryView>, uri: &str) -> Reply {
    call(view, "GET", uri, None).await
}

async fn bad_request(view: &Arc<MemoryView>, uri: &str) -> String {
    let r = get(view, uri).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.text());
    assert_eq!(r.headers[header::CONTENT_TYPE], "application/json", "{uri}");
    r.error()
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn checkpoint_is_a_signed_note() {
    let view = MemoryView::new(12);
    let r = get(&view, "/ledger/checkpoint").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    let (c, _) = Checkpoint::open(&r.body, &[view.vkey()]).unwrap();
    assert_eq!((c.origin(), c.size()), (ORIGIN, 12));
    assert_eq!(*c.root(), view.tree().root());

    // Leaves appended but not yet signed: the checkpoint stays, proofs reach further.
    view.append(3);
    let (c, _) =
        Checkpoint::open(&get(&view, "/ledger/checkpoint").await.body, &[view.vkey()]).unwrap();
    assert_eq!(c.size(), 12);
    let r = get(&view, "/ledger/proof/consistency?from=12&to=15").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // HEAD is GET without a body.
    let r = call(&view, "HEAD", "/ledger/checkpoint", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn entries_need_a_token_and_are_paged() {
    let view = MemoryView::new(2500);
    let uri = "/ledger/entries?start=3&end=6";

    let r = get(&view, uri).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(
        r.error(),
        "a bearer token is required to read ledger entries"
    );
    let r = call(&view, "GET", uri, Some("wrong")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(&view, "GET", uri, Some(OTHER_TOKEN)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error(), "this token may not read ledger entries");
    // Authorisation comes before parameters.
    let r = get(&view, "/ledger/entries?start=x").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = call(&view, "GET", uri, Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let v = r.json();
    assert_eq!((v["start"].as_u64(), v["end"].as_u64()), (Some(3), Some(6)));
    let leaves: Vec<Vec<u8>> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| STANDARD.decode(e.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        leaves,
        [
            b"event 3".to_vec(),
            b"event 4".to_vec(),
            b"event 5".to_vec()
        ]
    );
    // Each leaf is in the signed tree.
    let tree = view.tree();
    for (i, leaf) in leaves.iter().enumerate() {
        let index = 3 + i as u64;
        let r = get(
            &view,
            &format!("/ledger/proof/inclusion?index={index}&size=2500"),
        )
        .await;
        let proof = hashes(&r.json()["proof"]);
        verify_inclusion(&leaf_hash(leaf), index, 2500, &proof, &tree.root()).unwrap();
    }

    // Empty range.
    let v = call(&view, "GET", "/ledger/entries?start=7&end=7", Some(TOKEN))
        .await
        .json();
    assert_eq!(v["entries"].as_array().unwrap().len(), 0);
    assert_eq!(v["end"].as_u64(), Some(7));
    let v = call(
        &view,
        "GET",
        "/ledger/entries?start=2500&end=2500",
        Some(TOKEN),
    )
    .await
    .json();
    assert_eq!(v["entries"].as_array().unwrap().len(), 0);

    // A larger range stops after MAX_ENTRIES, and `end` says where.
    let v = call(
        &view,
        "GET",
        "/ledger/entries?start=10&end=2500",
        Some(TOKEN),
    )
    .await
    .json();
    assert_eq!(v["end"].as_u64(), Some(10 + MAX_ENTRIES));
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len() as u64, MAX_ENTRIES);
    assert_eq!(
        STANDARD.decode(entries[999].as_str().unwrap()).unwrap(),
        b"event 1009"
    );
    // Continuing from there reaches the end.
    let v = call(
        &view,
        "GET",
        "/ledger/entries?start=2010&end=2500",
        Some(TOKEN),
    )
    .await
    .json();
    assert_eq!(v["end"].as_u64(), Some(2500));
    assert_eq!(v["entries"].as_array().unwrap().len(), 490);
}

#[tokio::test]
async fn entries_refusals() {
    let view = MemoryView::new(12);
    let cases = [
        ("start=5&end=3", "start 5 is after end 3"),
        ("start=0&end=13", "end 13 is beyond the log's 12 entries"),
        ("start=13&end=13", "end 13 is beyond the log's 12 entries"),
        ("end=3", "start is required"),
        ("start=3", "end is required"),
        ("", "start is required"),
        ("start=a&end=3", "start must be a decimal number"),
        ("start=-1&end=3", "start must not be negative"),
        (
            "start=0&end=18446744073709551616",
            "end is too large: at most 18446744073709551615",
        ),
        (
            "start=0&end=18446744073709551615",
            "end 18446744073709551615 is beyond the log's 12 entries",
        ),
        ("start=0&start=1&end=3", "start is given more than once"),
        (
            "start=0&end=3&limit=9",
            "unknown query parameter; this endpoint takes start and end (and optionally epoch)",
        ),
    ];
    for (query, want) in cases {
        let uri = format!("/ledger/entries?{query}");
        let r = call(&view, "GET", &uri, Some(TOKEN)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(r.error(), want, "{uri}");
    }
}

#[tokio::test]
async fn inclusion_proofs_verify() {
    let view = MemoryView::new(12);
    let tree = view.tree();
    for size in 1..=12u64 {
        let root = tree.root_at(size).unwrap();
        for index in 0..size {
            let r = get(
                &view,
                &format!("/ledger/proof/inclusion?index={index}&size={size}"),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let v = r.json();
            assert_eq!(
                (v["index"].as_u64(), v["size"].as_u64()),
                (Some(index), Some(size))
            );
            let proof = hashes(&v["proof"]);
            let leaf = leaf_hash(format!("event {index}").as_bytes());
            verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
            // The proof does not prove another leaf.
            let other = leaf_hash(b"forged");
            assert!(verify_inclusion(&other, index, size, &proof, &root).is_err());
        }
    }
}

#[tokio::test]
async fn inclusion_refusals() {
    let view = MemoryView::new(12);
    let cases = [
        ("index=10&size=10", "index 10 is not below size 10"),
        ("index=11&size=3", "index 11 is not below size 3"),
        ("index=0&size=0", "index 0 is not below size 0"),
        ("index=0&size=20", "size 20 is beyond the log's 12 entries"),
        ("size=3", "index is required"),
        ("index=1", "size is required"),
        ("", "index is required"),
        ("index=&size=3", "index must be a decimal number"),
        ("index=one&size=3", "index must be a decimal number"),
        ("index=1.5&size=3", "index must be a decimal number"),
        ("index=%201&size=3", "index must be a decimal number"),
        ("index=-1&size=3", "index must not be negative"),
        ("index=1&size=-3", "size must not be negative"),
        (
            "index=1&size=99999999999999999999999",
            "size is too large: at most 18446744073709551615",
        ),
        (
            "index=1&size=18446744073709551615",
            "size 18446744073709551615 is beyond the log's 12 entries",
        ),
        ("index=1&index=2&size=3", "index is given more than once"),
        (
            "index=1&size=3&callback=alert(1)",
            "unknown query parameter; this endpoint takes index and size (and optionally epoch)",
        ),
    ];
    for (query, want) in cases {
        let uri = format!("/ledger/proof/inclusion?{query}");
        assert_eq!(bad_request(&view, &uri).await, want, "{uri}");
    }
    // A long value is never echoed.
    let long = "9".repeat(5000);
    let msg = bad_request(
        &view,
        &format!("/ledger/proof/inclusion?index={long}&size=3"),
    )
    .await;
    assert_eq!(msg, "index is too large: at most 18446744073709551615");
    let junk = "%3Cb%3E".repeat(1000);
    let msg = bad_request(
        &view,
        &format!("/ledger/proof/inclusion?index=1&size={junk}"),
    )
    .await;
    assert_eq!(msg, "size must be a decimal number");
    // One leaf: "entry".
    let one = MemoryView::new(1);
    assert_eq!(
        bad_request(&one, "/ledger/proof/inclusion?index=0&size=2").await,
        "size 2 is beyond the log's 1 entry"
    );
}

#[tokio::test]
async fn consistency_proofs_verify() {
    let view = MemoryView::new(12);
    let tree = view.tree();
    for to in 1..=12u64 {
        for from in 1..=to {
            let r = get(
                &view,
                &format!("/ledger/proof/consistency?from={from}&to={to}"),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let v = r.json();
            assert_eq!(
                (v["from"].as_u64(), v["to"].as_u64()),
                (Some(from), Some(to))
            );
            let proof = hashes(&v["proof"]);
            if from == to {
                assert!(proof.is_empty());
            }
            let (old, new) = (tree.root_at(from).unwrap(), tree.root_at(to).unwrap());
            verify_consistency(from, to, &old, &new, &proof).unwrap();
            if from < to {
                assert!(verify_consistency(from, to, &new, &new, &proof).is_err());
            }
        }
    }
}

#[tokio::test]
async fn consistency_refusals() {
    let view = MemoryView::new(12);
    let cases = [
        ("from=5&to=3", "from 5 is after to 3"),
        (
            "from=0&to=3",
            "from must be at least 1: every tree extends the empty tree",
        ),
        (
            "from=0&to=0",
            "from must be at least 1: every tree extends the empty tree",
        ),
        ("from=3&to=13", "to 13 is beyond the log's 12 entries"),
        ("to=3", "from is required"),
        ("from=3", "to is required"),
        ("", "from is required"),
        ("from=x&to=3", "from must be a decimal number"),
        ("from=-3&to=5", "from must not be negative"),
        (
            "from=1&to=18446744073709551616",
            "to is too large: at most 18446744073709551615",
        ),
        (
            "from=1&to=18446744073709551615",
            "to 18446744073709551615 is beyond the log's 12 entries",
        ),
        ("from=1&to=3&to=4", "to is given more than once"),
        (
            "from=1&to=3&first=1",
            "unknown query parameter; this endpoint takes from and to (and optionally epoch)",
        ),
    ];
    for (query, want) in cases {
        let uri = format!("/ledger/proof/consistency?{query}");
        assert_eq!(bad_request(&view, &uri).await, want, "{uri}");
    }
}

#[tokio::test]
async fn other_methods_are_405() {
    let view = MemoryView::new(3);
    for path in [
        "/ledger/checkpoint",
        "/ledger/entries?start=0&end=1",
        "/ledger/proof/inclusion?index=0&size=1",
        "/ledger/proof/consistency?from=1&to=1",
    ] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            let r = call(&view, method, path, Some(TOKEN)).await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(r.headers[header::ALLOW], "GET, HEAD");
            assert_eq!(r.error(), "only GET is allowed here");
        }
    }
    // Unknown paths are left to the rest of the server.
    assert_eq!(
        get(&view, "/ledger/nope").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn storage_failure_is_503_without_details() {
    let view = MemoryView::new(5);
    view.set_failing(true);
    for (uri, token) in [
        ("/ledger/checkpoint", None),
        ("/ledger/entries?start=0&end=1", Some(TOKEN)),
        ("/ledger/proof/inclusion?index=0&size=1", None),
        ("/ledger/proof/consistency?from=1&to=2", None),
    ] {
        let r = call(&view, "GET", uri, token).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        let msg = r.error();
        assert_eq!(msg, "the ledger is unavailable; try again later");
        assert!(!r.text().contains("secret"));
    }
    // Parameter errors are still found before storage is asked.
    assert_eq!(
        bad_request(&view, "/ledger/proof/consistency?from=3&to=2").await,
        "from 3 is after to 2"
    );
    view.set_failing(false);
    assert_eq!(
        get(&view, "/ledger/checkpoint").await.status,
        StatusCode::OK
    );

    // A panicking view is a 500, and the server goes on.
    view.panicking.store(true, Ordering::SeqCst);
    let r = get(&view, "/ledger/checkpoint").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.error(), "the ledger request failed unexpectedly");
    view.panicking.store(false, Ordering::SeqCst);
    assert_eq!(
        get(&view, "/ledger/checkpoint").await.status,
        StatusCode::OK
    );
}

#[test]
fn error_statuses() {
    let cases = [
        (LedgerHttpError::BadRequest("x".into()), 400),
        (LedgerHttpError::Unauthorized("x".into()), 401),
        (LedgerHttpError::Forbidden("x".into()), 403),
        (LedgerHttpError::Internal("x".into()), 500),
        (LedgerHttpError::Unavailable("x".into()), 503),
    ];
    for (e, status) in cases {
        assert_eq!(e.status().as_u16(), status, "{e:?}");
    }
}

/// The endpoints over a real loopback listener, as `caldicott ledger` meets them.
#[tokio::test]
async fn over_a_loopback_listener() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let view = MemoryView::new(7);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(Arc::clone(&view));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET /ledger/checkpoint HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    let (c, _) = Checkpoint::open(body.as_bytes(), &[view.vkey()]).unwrap();
    assert_eq!(c.size(), 7);
    server.abort();
}
