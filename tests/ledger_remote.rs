//! `caldicott ledger verify --url` and `caldicott ledger witness` against an in-process
//! server of `caldicott_api::ledger` over a log in memory that the test grows, rewrites
//! and rolls back between runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use caldicott_api::ledger::{LedgerHttpError, LedgerView, router};
use caldicott_ledger::{
    Checkpoint, Hash, MemoryTree, SignerKey, consistency_proof, inclusion_proof, leaf_hash,
};

const ORIGIN: &str = "audit.test.nhs.uk/ledger";

/// A log in memory: its leaves can be appended, or replaced wholesale (a rewritten history).
struct View {
    key: SignerKey,
    tree: Mutex<(MemoryTree, Vec<Vec<u8>>)>,
    /// The epoch its checkpoints name (1: none).
    epoch: AtomicU64,
}

impl View {
    fn new(leaves: usize) -> Arc<Self> {
        let view = Arc::new(View {
            key: SignerKey::generate(ORIGIN).unwrap(),
            tree: Mutex::new((MemoryTree::new(), Vec::new())),
            epoch: AtomicU64::new(1),
        });
        view.replace(&events("event", leaves));
        view
    }

    fn replace(&self, leaves: &[Vec<u8>]) {
        let mut t = MemoryTree::new();
        for l in leaves {
            t.append(leaf_hash(l)).unwrap();
        }
        *self.tree.lock().unwrap() = (t, leaves.to_vec());
    }

    fn leaves(&self) -> Vec<Vec<u8>> {
        self.tree.lock().unwrap().1.clone()
    }

    fn grow(&self, n: usize) {
        let mut leaves = self.leaves();
        let start = leaves.len();
        leaves.extend((start..start + n).map(|i| format!("event {i}").into_bytes()));
        self.replace(&leaves);
    }

    /// Seals the epoch: a new tree whose first leaf names the old one.
    fn seal(&self) {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst);
        let size = self.leaves().len();
        self.replace(&[format!("sealed epoch {epoch} at {size} entries").into_bytes()]);
    }

    fn vkey(&self) -> String {
        self.key.verifier_key().to_string()
    }
}

fn events(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix} {i}").into_bytes())
        .collect()
}

fn unavailable(e: impl std::fmt::Display) -> LedgerHttpError {
    LedgerHttpError::Unavailable(e.to_string())
}

impl LedgerView for View {
    fn checkpoint(&self) -> Result<String, LedgerHttpError> {
        let t = self.tree.lock().map_err(unavailable)?;
        let mut c = Checkpoint::new(ORIGIN, t.0.size(), t.0.root()).map_err(unavailable)?;
        let epoch = self.epoch.load(Ordering::SeqCst);
        if epoch > 1 {
            c = c
                .with_extension(&format!("epoch {epoch}"))
                .map_err(unavailable)?;
        }
        c.sign(&[&self.key]).map_err(unavailable)
    }

    fn size(&self) -> Result<u64, LedgerHttpError> {
        Ok(self.tree.lock().map_err(unavailable)?.0.size())
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LedgerHttpError> {
        let t = self.tree.lock().map_err(unavailable)?;
        Ok(t.1[start as usize..end as usize].to_vec())
    }

    fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerHttpError> {
        let t = self.tree.lock().map_err(unavailable)?;
        inclusion_proof(&t.0, index, size).map_err(unavailable)
    }

    fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, LedgerHttpError> {
        let t = self.tree.lock().map_err(unavailable)?;
        consistency_proof(&t.0, from, to).map_err(unavailable)
    }

    fn authorize_entries(&self, _headers: &HeaderMap) -> Result<(), LedgerHttpError> {
        Err(LedgerHttpError::Unauthorized("no".into()))
    }
}

/// The ledger endpoints on a loopback port. Dropping it stops the server.
struct Server {
    view: Arc<View>,
    url: String,
    _rt: tokio::runtime::Runtime,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

impl Server {
    /// Plain HTTP on 127.0.0.1.
    fn http(view: Arc<View>) -> Server {
        let rt = runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = router(Arc::clone(&view));
        rt.spawn(async move { axum::serve(listener, app).await });
        Server { view, url, _rt: rt }
    }

    /// HTTPS through `caldicott-server`, with a self-signed certificate written to `dir`.
    fn https(view: Arc<View>, dir: &Path) -> (Server, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        caldicott_server::generate_self_signed(&cert, &key, &["127.0.0.1".to_owned()]).unwrap();
        let mut cfg = caldicott_server::ServeConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            caldicott_server::Transport::Tls {
                cert_pem: cert.clone(),
                key_pem: key,
            },
        );
        cfg.extra_router = Some(router(Arc::clone(&view)));
        let rt = runtime();
        let (tx, rx) = std::sync::mpsc::channel();
        let health: Arc<dyn caldicott_server::HealthCheck> = Arc::new(|| Ok::<(), String>(()));
        rt.spawn(caldicott_server::serve(
            cfg,
            health,
            move |a| tx.send(a).unwrap(),
            std::future::pending(),
        ));
        let addr = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let server = Server {
            view,
            url: format!("https://{addr}"),
            _rt: rt,
        };
        (server, cert)
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn caldicott(args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_caldicott"))
        .args(args)
        .env_remove("SSL_CERT_FILE")
        .output()
        .unwrap();
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "caldicott {args:?} panicked: {}",
        run.stderr
    );
    run
}

/// Runs and expects success.
fn ok(args: &[&str]) -> String {
    let r = caldicott(args);
    assert!(r.ok, "caldicott {args:?} failed: {}", r.stderr);
    r.stdout
}

/// Runs and expects failure with a single `error: ` line on stderr; returns it.
fn one_line_error(args: &[&str]) -> String {
    let r = caldicott(args);
    assert!(!r.ok, "caldicott {args:?} succeeded: {}", r.stdout);
    assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    r.stderr.trim_end().to_owned()
}

fn verify(s: &Server, file: &Path) -> Run {
    caldicott(&[
        "ledger",
        "verify",
        "--url",
        &s.url,
        "--checkpoint",
        file.to_str().unwrap(),
        "--key",
        &s.view.vkey(),
    ])
}

fn witness_once(s: &Server, state: &Path) -> Run {
    caldicott(&[
        "ledger",
        "witness",
        "--url",
        &s.url,
        "--state",
        state.to_str().unwrap(),
        "--key",
        &s.view.vkey(),
        "--once",
    ])
}

/// The tree size of a signed checkpoint note.
fn size_of(note: &str) -> u64 {
    note.lines().nth(1).unwrap().parse().unwrap()
}

fn alarm_dirs(state: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("alarm-")
        })
        .collect();
    dirs.sort();
    dirs
}

fn saved_checkpoints(state: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(state.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn honest_growth_passes() {
    let s = Server::http(View::new(5));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trusted.note");
    let state = dir.path().join("witness");

    let r = verify(&s, &file);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("trusted on first use: the log has 5 entries; root "),
        "{}",
        r.stdout
    );
    assert_eq!(size_of(&fs::read_to_string(&file).unwrap()), 5);
    let r = witness_once(&s, &state);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("trusted on first use: the log has 5 entries")
    );

    let r = verify(&s, &file);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("consistent: the log still has 5 entries; root "),
        "{}",
        r.stdout
    );

    s.view.grow(3);
    let r = verify(&s, &file);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("consistent: the log grew from 5 to 8 entries; root "),
        "{}",
        r.stdout
    );
    assert_eq!(size_of(&fs::read_to_string(&file).unwrap()), 8);
    let r = witness_once(&s, &state);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("consistent: the log grew from 5 to 8 entries"),
        "{}",
        r.stdout
    );

    s.view.grow(120);
    assert!(
        verify(&s, &file)
            .stdout
            .contains("grew from 8 to 128 entries")
    );
    assert!(
        witness_once(&s, &state)
            .stdout
            .contains("grew from 8 to 128 entries")
    );
    let r = witness_once(&s, &state);
    assert!(r.stdout.contains("still has 128 entries"), "{}", r.stdout);

    // Every checkpoint seen is kept; latest.note is the last.
    let names = saved_checkpoints(&state);
    assert_eq!(names.len(), 3, "{names:?}");
    for (name, size) in names.iter().zip(["128-", "5-", "8-"]) {
        assert!(name.starts_with(size) && name.ends_with(".note"), "{name}");
        assert_eq!(name.len(), size.len() + 16 + ".note".len(), "{name}");
    }
    let latest = fs::read_to_string(state.join("latest.note")).unwrap();
    assert_eq!(size_of(&latest), 128);
    assert!(alarm_dirs(&state).is_empty());
    // No temporary file is left behind.
    let stray: Vec<_> = fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    // From an empty log.
    let empty = Server::http(View::new(0));
    let file = dir.path().join("empty.note");
    assert!(
        verify(&empty, &file)
            .stdout
            .contains("the log has 0 entries")
    );
    empty.view.grow(4);
    assert!(
        verify(&empty, &file)
            .stdout
            .contains("grew from 0 to 4 entries")
    );
}

/// Trusts the log of `before` leaves with both tools, then lets `change` rewrite it, and
/// returns (the verifier's run, the witness's run, the trusted note, the state dir).
fn misbehaviour(
    before: usize,
    change: impl FnOnce(&View),
) -> (Run, Run, String, String, tempfile::TempDir) {
    let s = Server::http(View::new(before));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trusted.note");
    let state = dir.path().join("witness");
    assert!(verify(&s, &file).ok);
    assert!(witness_once(&s, &state).ok);
    let trusted = fs::read_to_string(&file).unwrap();
    assert_eq!(
        fs::read_to_string(state.join("latest.note")).unwrap(),
        trusted
    );
    change(&s.view);
    let served = s.view.checkpoint().unwrap();
    let v = verify(&s, &file);
    let w = witness_once(&s, &state);
    // Nothing trusted moved.
    assert_eq!(fs::read_to_string(&file).unwrap(), trusted);
    assert_eq!(
        fs::read_to_string(state.join("latest.note")).unwrap(),
        trusted
    );
    (v, w, trusted, served, dir)
}

/// Both tools failed, showing both notes; the witness wrote one alarm with them.
fn check_caught(v: &Run, w: &Run, trusted: &str, served: &str, dir: &Path, reason: &str) {
    assert!(!v.ok && !w.ok);
    for r in [v, w] {
        assert!(r.stderr.contains(reason), "{}", r.stderr);
        assert!(r.stderr.contains(trusted), "{}", r.stderr);
        assert!(r.stderr.contains(served), "{}", r.stderr);
    }
    assert!(v.stderr.starts_with("error: "), "{}", v.stderr);
    assert!(
        w.stderr.starts_with("ALARM: the log at http://127.0.0.1:"),
        "{}",
        w.stderr
    );
    assert!(w.stderr.contains("--- trusted checkpoint ---"));
    assert!(w.stderr.contains("--- conflicting checkpoint ---"));
    let state = dir.join("witness");
    let alarms = alarm_dirs(&state);
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    let a = &alarms[0];
    assert_eq!(fs::read_to_string(a.join("trusted.note")).unwrap(), trusted);
    assert_eq!(
        fs::read_to_string(a.join("conflicting.note")).unwrap(),
        served
    );
    let why = fs::read_to_string(a.join("reason.txt")).unwrap();
    assert!(why.contains(reason), "{why}");
    assert!(
        w.stderr.contains(&format!("evidence in {}", a.display())),
        "{}",
        w.stderr
    );
    // The conflicting checkpoint is kept among those seen.
    let names = saved_checkpoints(&state);
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn rewritten_history_of_the_same_size_is_a_fork() {
    let (v, w, trusted, served, dir) = misbehaviour(6, |view| view.replace(&events("forged", 6)));
    check_caught(
        &v,
        &w,
        &trusted,
        &served,
        dir.path(),
        "fork: the log signed two different trees of 6 entries",
    );
}

#[test]
fn rewritten_history_that_grew_is_inconsistent() {
    let (v, w, trusted, served, dir) = misbehaviour(6, |view| {
        let mut leaves = view.leaves();
        leaves[2] = b"a quietly edited event".to_vec();
        leaves.extend(events("later", 4));
        view.replace(&leaves);
    });
    check_caught(
        &v,
        &w,
        &trusted,
        &served,
        dir.path(),
        "inconsistent: the log's tree of 6 entries is not shown to be a prefix of its tree of 10 entries",
    );
}

#[test]
fn rollback_is_caught() {
    let (v, w, trusted, served, dir) = misbehaviour(9, |view| {
        let leaves = view.leaves();
        view.replace(&leaves[..4]);
    });
    check_caught(
        &v,
        &w,
        &trusted,
        &served,
        dir.path(),
        "rollback: the log signed a tree of 9 entries before, and now one of 4",
    );
}

/// A sealed epoch (retention) is accepted and said to be one; going back to an earlier
/// epoch is a rollback.
#[test]
fn a_new_epoch_is_reported_and_an_old_one_is_a_rollback() {
    let s = Server::http(View::new(9));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trusted.note");
    let state = dir.path().join("witness");
    assert!(verify(&s, &file).ok);
    assert!(witness_once(&s, &state).ok);
    let epoch1 = s.view.leaves();
    s.view.seal();
    let want = "new epoch: the log was sealed after epoch 1 (trusted at 9 entries) and epoch 2 \
                began, now 1 entry; the link between the epochs is not checked over HTTP";
    let out = ok(&[
        "ledger",
        "verify",
        "--url",
        &s.url,
        "--checkpoint",
        file.to_str().unwrap(),
        "--key",
        &s.view.vkey(),
    ]);
    assert!(out.starts_with(want), "{out}");
    let r = witness_once(&s, &state);
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stdout.starts_with(want), "{}", r.stdout);
    assert!(fs::read_to_string(&file).unwrap().contains("\nepoch 2\n"));
    // Both epochs' checkpoints are kept.
    assert_eq!(saved_checkpoints(&state).len(), 2);

    // Growth within epoch 2 is checked as usual.
    s.view.grow(4);
    assert!(
        verify(&s, &file)
            .stdout
            .contains("grew from 1 to 5 entries")
    );
    assert!(
        witness_once(&s, &state)
            .stdout
            .contains("grew from 1 to 5 entries")
    );

    // Serving epoch 1 again, even larger, is a rollback.
    s.view.epoch.store(1, Ordering::SeqCst);
    s.view.replace(&epoch1);
    let v = verify(&s, &file);
    let w = witness_once(&s, &state);
    let reason = "rollback: the log signed a tree of 5 entries in epoch 2 before, and now one of 9 in epoch 1";
    assert!(!v.ok && v.stderr.contains(reason), "{}", v.stderr);
    assert!(!w.ok && w.stderr.contains(reason), "{}", w.stderr);
    assert_eq!(alarm_dirs(&state).len(), 1);
}

#[test]
fn refusals_are_one_line_errors() {
    let s = Server::http(View::new(3));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("trusted.note");
    let f = file.to_str().unwrap();
    let state = dir.path().join("witness");
    let st = state.to_str().unwrap();
    let other = SignerKey::generate(ORIGIN)
        .unwrap()
        .verifier_key()
        .to_string();
    let vkey = s.view.vkey();

    // A wrong key: nothing is trusted or saved.
    let e = one_line_error(&[
        "ledger",
        "verify",
        "--url",
        &s.url,
        "--checkpoint",
        f,
        "--key",
        &other,
    ]);
    assert!(
        e.contains("/ledger/checkpoint: the new checkpoint is not signed by the log's key audit.test.nhs.uk/ledger+"),
        "{e}"
    );
    assert!(!file.exists());
    let e = one_line_error(&[
        "ledger", "witness", "--url", &s.url, "--state", st, "--key", &other, "--once",
    ]);
    assert!(e.contains("is not signed by the log's key"), "{e}");
    assert!(!state.join("latest.note").exists());
    // The right key for a saved checkpoint, a wrong one now.
    assert!(verify(&s, &file).ok);
    let e = one_line_error(&[
        "ledger",
        "verify",
        "--url",
        &s.url,
        "--checkpoint",
        f,
        "--key",
        &other,
    ]);
    assert!(
        e.contains("trusted.note: the trusted checkpoint is not signed by the log's key"),
        "{e}"
    );
    // Not a key at all, and a key file.
    let e = one_line_error(&[
        "ledger",
        "verify",
        "--url",
        &s.url,
        "--checkpoint",
        f,
        "--key",
        "nonsense",
    ]);
    assert_eq!(
        e,
        "error: --key: not a verifier key: a key string must be <name>+<8 hex digits>+<base64 key>"
    );
    let key_file = dir.path().join("log.vkey");
    fs::write(&key_file, format!("{vkey}\n")).unwrap();
    ok(&[
        "ledger",
        "verify",
        "--url",
        &s.url,
        "--checkpoint",
        f,
        "--key-file",
        key_file.to_str().unwrap(),
    ]);
    let e = one_line_error(&["ledger", "verify", "--url", &s.url, "--checkpoint", f]);
    assert!(e.contains("give the log's verifier key with --key VKEY or --key-file FILE"));

    // A malformed checkpoint file is refused, and left as it was.
    let bad = dir.path().join("bad.note");
    for junk in [
        "garbage".as_bytes(),
        b"",
        b"\xff\xfe",
        b"audit.test.nhs.uk/ledger\n3\nnot-a-hash\n\n\xe2\x80\x94 x y\n",
    ] {
        fs::write(&bad, junk).unwrap();
        let e = one_line_error(&[
            "ledger",
            "verify",
            "--url",
            &s.url,
            "--checkpoint",
            bad.to_str().unwrap(),
            "--key",
            &vkey,
        ]);
        assert!(
            e.contains("bad.note: the trusted checkpoint is malformed"),
            "{e}"
        );
        assert_eq!(fs::read(&bad).unwrap(), junk);
    }
    // The witness's latest.note corrupted: refused, not replaced.
    assert!(witness_once(&s, &state).ok);
    fs::write(state.join("latest.note"), "garbage").unwrap();
    let e = one_line_error(&[
        "ledger", "witness", "--url", &s.url, "--state", st, "--key", &vkey, "--once",
    ]);
    assert!(
        e.contains("latest.note: the trusted checkpoint is malformed"),
        "{e}"
    );
    assert_eq!(
        fs::read_to_string(state.join("latest.note")).unwrap(),
        "garbage"
    );

    // An unreachable server.
    let state = dir.path().join("witness2");
    let st = state.to_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    let fresh = dir.path().join("fresh.note");
    let e = one_line_error(&[
        "ledger",
        "verify",
        "--url",
        &dead,
        "--checkpoint",
        fresh.to_str().unwrap(),
        "--key",
        &vkey,
    ]);
    assert!(e.contains(&format!("cannot connect to {dead}")), "{e}");
    let e = one_line_error(&[
        "ledger", "witness", "--url", &dead, "--state", st, "--key", &vkey, "--once",
    ]);
    assert!(e.contains("cannot connect"), "{e}");

    // Plain HTTP off the machine, and other malformed URLs.
    for (url, want) in [
        (
            "http://example.org:8080",
            "refusing plain http:// to example.org: use https://",
        ),
        ("http://10.1.2.3", "refusing plain http:// to 10.1.2.3"),
        ("ftp://127.0.0.1", "the URL must start with https://"),
        ("https://user:pw@example.org", "must not hold a user name"),
    ] {
        let e = one_line_error(&[
            "ledger",
            "verify",
            "--url",
            url,
            "--checkpoint",
            fresh.to_str().unwrap(),
            "--key",
            &vkey,
        ]);
        assert!(e.contains(want), "{url}: {e}");
        let e = one_line_error(&[
            "ledger", "witness", "--url", url, "--state", st, "--key", &vkey, "--once",
        ]);
        assert!(e.contains(want), "{url}: {e}");
    }
    assert!(!fresh.exists());

    // A server that is not a ledger.
    let e = one_line_error(&[
        "ledger",
        "verify",
        "--url",
        &format!("{}/elsewhere", s.url),
        "--checkpoint",
        fresh.to_str().unwrap(),
        "--key",
        &vkey,
    ]);
    assert!(
        e.contains("the server answered 404 (no ledger endpoints at this URL)"),
        "{e}"
    );

    // Options that do not go together.
    let e = one_line_error(&["ledger", "verify", "--key", &vkey]);
    assert!(e.contains("give either --data DIR"), "{e}");
    let r = caldicott(&["ledger", "verify", "--data", "x", "--url", &s.url]);
    assert!(!r.ok);
    let e = one_line_error(&[
        "ledger",
        "witness",
        "--url",
        &s.url,
        "--state",
        st,
        "--key",
        &vkey,
        "--interval",
        "0",
    ]);
    assert!(e.contains("--interval must be at least 1 second"), "{e}");
}

#[test]
fn https_with_a_pinned_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cert) = Server::https(View::new(4), dir.path());
    let file = dir.path().join("trusted.note");
    let f = file.to_str().unwrap();
    let vkey = s.view.vkey();
    let ca = cert.to_str().unwrap();
    let out = ok(&[
        "ledger",
        "verify",
        "--url",
        &s.url,
        "--checkpoint",
        f,
        "--key",
        &vkey,
        "--ca",
        ca,
    ]);
    assert!(out.contains("the log has 4 entries"), "{out}");
    s.view.grow(2);
    let out = ok(&[
        "ledger",
        "verify",
        "--url",
        &s.url,
        "--checkpoint",
        f,
        "--key",
        &vkey,
        "--ca",
        ca,
    ]);
    assert!(out.contains("grew from 4 to 6 entries"), "{out}");
    let state = dir.path().join("w");
    let out = ok(&[
        "ledger",
        "witness",
        "--url",
        &s.url,
        "--state",
        state.to_str().unwrap(),
        "--key",
        &vkey,
        "--ca",
        ca,
        "--once",
    ]);
    assert!(out.contains("the log has 6 entries"), "{out}");

    // Another certificate is not trusted for this server.
    let other = tempfile::tempdir().unwrap();
    let (other_cert, other_key) = (other.path().join("c.pem"), other.path().join("k.pem"));
    caldicott_server::generate_self_signed(&other_cert, &other_key, &["127.0.0.1".to_owned()])
        .unwrap();
    let e = one_line_error(&[
        "ledger",
        "verify",
        "--url",
        &s.url,
        "--checkpoint",
        f,
        "--key",
        &vkey,
        "--ca",
        other_cert.to_str().unwrap(),
    ]);
    assert!(e.contains("certificate"), "{e}");
    // A CA file without certificates.
    let e = one_line_error(&[
        "ledger",
        "verify",
        "--url",
        &s.url,
        "--checkpoint",
        f,
        "--key",
        &vkey,
        "--ca",
        other_key.to_str().unwrap(),
    ]);
    assert!(e.contains("holds no PEM certificate"), "{e}");
    // The system's roots do not know a self-signed certificate.
    let r = caldicott(&[
        "ledger",
        "verify",
        "--url",
        &s.url,
        "--checkpoint",
        f,
        "--key",
        &vkey,
    ]);
    assert!(!r.ok);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("invalid peer certificate") || r.stderr.contains("no system CA bundle"),
        "{}",
        r.stderr
    );
}

/// The witness polling: it follows honest growth, then raises the alarm and exits when the
/// log rewrites its history.
#[test]
fn witness_polls_until_the_alarm() {
    let s = Server::http(View::new(3));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("witness");
    let mut child = Command::new(env!("CARGO_BIN_EXE_caldicott"))
        .args([
            "ledger",
            "witness",
            "--url",
            &s.url,
            "--state",
            state.to_str().unwrap(),
            "--key",
            &s.view.vkey(),
            "--interval",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wait_for = |what: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !what() {
            assert!(start.elapsed() < Duration::from_secs(30), "timed out");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let latest_size = || {
        fs::read_to_string(state.join("latest.note"))
            .ok()
            .map(|n| size_of(&n))
    };
    wait_for(&|| latest_size() == Some(3));
    s.view.grow(5);
    wait_for(&|| latest_size() == Some(8));
    s.view.replace(&events("forged", 8));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the witness did not raise the alarm");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stdout.contains("trusted on first use: the log has 3 entries"),
        "{stdout}"
    );
    assert!(stdout.contains("grew from 3 to 8 entries"), "{stdout}");
    assert!(
        stderr.contains("ALARM: the log at") && stderr.contains("fork"),
        "{stderr}"
    );
    assert_eq!(alarm_dirs(&state).len(), 1);
    assert_eq!(latest_size(), Some(8));
}
