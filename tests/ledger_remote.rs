//! `caldicott ledger verify --url` and `caldicott ledger witness` against an in-process
//! server of `caldicott_api::ledger` over a log in memory that the test grows, rewrites
//! and rolls back between runs; and once against a real deployment (`caldicott serve`
//! over its vault) sealed with `caldicott ledger seal`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use caldicott_api::ledger::{Epochs, LedgerHttpError, LedgerView, SealedEpoch, router};
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
    /// The sealed epochs, oldest first: number, seal, tree and leaves, and whether stored.
    sealed: Mutex<Vec<Sealed>>,
}

/// A sealed epoch of the test log.
struct Sealed {
    epoch: u64,
    seal: String,
    tree: MemoryTree,
    leaves: Vec<Vec<u8>>,
    stored: bool,
}

/// The leaf `caldicott ledger seal` appends as the next epoch's first entry.
fn seal_record(epoch: u64, size: u64, root: &Hash) -> Vec<u8> {
    let event = caldicott_api::audit::security_event(
        caldicott_audit::EventKind::Admin,
        "ledger-seal",
        "cli",
        "RX1",
        "sysadmin",
        &caldicott_api::audit::Origin::default(),
        caldicott_audit::Outcome::Permit,
        &format!(
            "epoch {epoch} sealed at {size} entries, root {}",
            root.to_base64()
        ),
        1_700_000_000_000_000,
    );
    caldicott_api::audit::leaf_of(&event).data
}

impl View {
    fn new(leaves: usize) -> Arc<Self> {
        let view = Arc::new(View {
            key: SignerKey::generate(ORIGIN).unwrap(),
            tree: Mutex::new((MemoryTree::new(), Vec::new())),
            epoch: AtomicU64::new(1),
            sealed: Mutex::new(Vec::new()),
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

    /// Seals the epoch as `caldicott ledger seal` does: its checkpoint kept as the seal, and
    /// a new tree whose first leaf records it.
    fn seal(&self) {
        let (size, root) = {
            let t = self.tree.lock().unwrap();
            (t.0.size(), t.0.root())
        };
        let epoch = self.epoch.load(Ordering::SeqCst);
        self.seal_with(seal_record(epoch, size, &root));
    }

    /// Seals the epoch with `first` as the next epoch's first entry.
    fn seal_with(&self, first: Vec<u8>) {
        let seal = self.checkpoint().unwrap();
        let (tree, leaves) = std::mem::take(&mut *self.tree.lock().unwrap());
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst);
        self.sealed.lock().unwrap().push(Sealed {
            epoch,
            seal,
            tree,
            leaves,
            stored: true,
        });
        self.replace(&[first]);
    }

    /// Runs `f` on a sealed epoch (to rewrite it: a lying server).
    fn with_sealed(&self, epoch: u64, f: impl FnOnce(&mut Sealed)) {
        let mut sealed = self.sealed.lock().unwrap();
        f(sealed.iter_mut().find(|e| e.epoch == epoch).unwrap());
    }

    /// The tree and leaves of `epoch` (the current one or a sealed one).
    fn epoch_tree<T>(
        &self,
        epoch: u64,
        f: impl FnOnce(&MemoryTree, &[Vec<u8>]) -> Result<T, LedgerHttpError>,
    ) -> Result<T, LedgerHttpError> {
        if epoch == self.epoch.load(Ordering::SeqCst) {
            let t = self.tree.lock().map_err(unavailable)?;
            return f(&t.0, &t.1);
        }
        let sealed = self.sealed.lock().map_err(unavailable)?;
        match sealed.iter().find(|e| e.epoch == epoch) {
            Some(e) if e.stored => f(&e.tree, &e.leaves),
            Some(_) => Err(LedgerHttpError::Gone(format!("epoch {epoch} is gone"))),
            None => Err(LedgerHttpError::Internal(format!("no epoch {epoch}"))),
        }
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

    fn authorize_entries(&self, headers: &HeaderMap) -> Result<(), LedgerHttpError> {
        match headers.get("authorization").map(|v| v.as_bytes()) {
            Some(b"Bearer reader") => Ok(()),
            _ => Err(LedgerHttpError::Unauthorized("no".into())),
        }
    }

    fn epochs(&self) -> Result<Epochs, LedgerHttpError> {
        let sealed = self.sealed.lock().map_err(unavailable)?;
        Ok(Epochs {
            current: self.epoch.load(Ordering::SeqCst),
            sealed: sealed
                .iter()
                .map(|e| SealedEpoch {
                    epoch: e.epoch,
                    seal: e.seal.clone(),
                    stored: e.stored,
                })
                .collect(),
        })
    }

    fn link_entry(&self, epoch: u64) -> Result<Option<Vec<u8>>, LedgerHttpError> {
        self.epoch_tree(epoch, |_, leaves| Ok(leaves.first().cloned()))
    }

    fn epoch_entries(
        &self,
        epoch: u64,
        start: u64,
        end: u64,
    ) -> Result<Vec<Vec<u8>>, LedgerHttpError> {
        self.epoch_tree(epoch, |_, leaves| {
            Ok(leaves[start as usize..end as usize].to_vec())
        })
    }

    fn epoch_inclusion(
        &self,
        epoch: u64,
        index: u64,
        size: u64,
    ) -> Result<Vec<Hash>, LedgerHttpError> {
        self.epoch_tree(epoch, |t, _| {
            inclusion_proof(t, index, size).map_err(unavailable)
        })
    }

    fn epoch_consistency(
        &self,
        epoch: u64,
        from: u64,
        to: u64,
    ) -> Result<Vec<Hash>, LedgerHttpError> {
        self.epoch_tree(epoch, |t, _| {
            consistency_proof(t, from, to).map_err(unavailable)
        })
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
    let want = "new epoch 2, link to sealed epoch 1 verified (from epoch 1 trusted at 9 \
                entries); epoch 2 now has 1 entry; root ";
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

/// `GET path` on the test server: (status, body).
fn http_get(s: &Server, path: &str, token: Option<&str>) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let addr = s.url.strip_prefix("http://").unwrap();
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        sock,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    sock.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1.to_owned();
    // The answers here are small: axum sends them with Content-Length.
    (status, body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

/// Trusts the log at `trusted_size` entries with both tools, and returns the trusted file
/// and the witness's state directory.
fn trust(s: &Server, dir: &Path) -> (PathBuf, PathBuf) {
    let (file, state) = (dir.join("trusted.note"), dir.join("witness"));
    assert!(verify(s, &file).ok);
    assert!(witness_once(s, &state).ok);
    (file, state)
}

/// Both tools accept the new epoch and say which link they verified.
fn both_accept(s: &Server, file: &Path, state: &Path, want: &str) {
    let v = verify(s, file);
    assert!(v.ok, "{}", v.stderr);
    assert!(v.stdout.starts_with(want), "{}", v.stdout);
    let w = witness_once(s, state);
    assert!(w.ok, "{}", w.stderr);
    assert!(w.stdout.starts_with(want), "{}", w.stdout);
    let served = s.view.checkpoint().unwrap();
    assert_eq!(fs::read_to_string(file).unwrap(), served);
    assert_eq!(
        fs::read_to_string(state.join("latest.note")).unwrap(),
        served
    );
}

#[test]
fn epoch_links_are_verified_across_one_and_two_seals() {
    let s = Server::http(View::new(5));
    let dir = tempfile::tempdir().unwrap();
    let (file, state) = trust(&s, dir.path());
    // Trusted at 5; epoch 1 grows to 9 unseen, is sealed, and epoch 2 grows.
    s.view.grow(4);
    s.view.seal();
    s.view.grow(2);
    both_accept(
        &s,
        &file,
        &state,
        "new epoch 2, link to sealed epoch 1 verified (from epoch 1 trusted at 5 entries); \
         epoch 2 now has 3 entries; root ",
    );
    // Two more seals before the tools look again (one of them at the trusted size).
    s.view.seal();
    s.view.grow(1);
    s.view.seal();
    both_accept(
        &s,
        &file,
        &state,
        "new epoch 4, link to sealed epoch 3 verified (from epoch 2 trusted at 3 entries, \
         through 2 seals); epoch 4 now has 1 entry; root ",
    );
    // And growth within epoch 4 as usual.
    s.view.grow(3);
    both_accept(
        &s,
        &file,
        &state,
        "consistent: the log grew from 1 to 4 entries",
    );
    assert!(alarm_dirs(&state).is_empty());

    // The endpoints: every epoch listed, with its seal and first entry.
    let (status, body) = http_get(&s, "/ledger/epochs", None);
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["current"], 4);
    let items = v["epochs"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["epoch"], i as u64 + 1);
        assert_eq!(item["state"], if i < 3 { "sealed" } else { "open" });
        assert_eq!(item["entries"], "stored");
        assert_eq!(item["first_entry"].is_string(), i > 0, "{item}");
    }
    assert_eq!(items[0]["size"], 9);
    assert!(items[0]["seal"].as_str().unwrap().starts_with(ORIGIN));
    assert_eq!(items[1]["size"], 3);
    assert_eq!(items[3]["checkpoint"], s.view.checkpoint().unwrap());
    let seal1 = items[0]["seal"].as_str().unwrap().to_owned();
    let (status, body) = http_get(&s, "/ledger/checkpoint?epoch=1", None);
    assert_eq!((status, body.as_str()), (200, seal1.as_str()));
    let (status, body) = http_get(&s, "/ledger/checkpoint?epoch=4", None);
    assert_eq!((status, body), (200, s.view.checkpoint().unwrap()));
    let (status, body) = http_get(&s, "/ledger/proof/consistency?from=5&to=9&epoch=1", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["epoch"], 1);
    let (status, body) = http_get(&s, "/ledger/proof/inclusion?index=0&size=3&epoch=2", None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&s, "/ledger/entries?start=0&end=9&epoch=1", Some("reader"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["entries"].as_array().unwrap().len(), 9);
    assert_eq!(
        http_get(&s, "/ledger/entries?start=0&end=1&epoch=1", None).0,
        401
    );
    // Bad and unknown epochs, sizes beyond a sealed epoch.
    for (path, status, want) in [
        (
            "/ledger/checkpoint?epoch=0",
            400,
            "epoch must be at least 1: epochs are numbered from 1",
        ),
        (
            "/ledger/checkpoint?epoch=x",
            400,
            "epoch must be a decimal number",
        ),
        (
            "/ledger/checkpoint?epoch=5",
            404,
            "epoch 5 does not exist: the log is in epoch 4",
        ),
        (
            "/ledger/proof/consistency?from=1&to=9&epoch=9",
            404,
            "epoch 9 does not exist: the log is in epoch 4",
        ),
        (
            "/ledger/proof/consistency?from=1&to=10&epoch=1",
            400,
            "to 10 is beyond the log's 9 entries of epoch 1",
        ),
        (
            "/ledger/proof/inclusion?index=0&size=2&epoch=3&epoch=3",
            400,
            "epoch is given more than once",
        ),
    ] {
        let (got, body) = http_get(&s, path, None);
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(json(&body)["error"], want, "{path}");
    }
    // A sealed epoch whose rows were archived: its seal is still served, nothing else.
    s.view.with_sealed(1, |e| e.stored = false);
    let (status, body) = http_get(&s, "/ledger/checkpoint?epoch=1", None);
    assert_eq!((status, body.as_str()), (200, seal1.as_str()));
    let gone = "the entries of sealed epoch 1 are no longer stored (archived or deleted); \
                its seal is still at /ledger/checkpoint?epoch=1";
    for path in [
        "/ledger/proof/consistency?from=5&to=9&epoch=1",
        "/ledger/proof/inclusion?index=0&size=9&epoch=1",
    ] {
        let (status, body) = http_get(&s, path, None);
        assert_eq!((status, json(&body)["error"].clone()), (410, gone.into()));
    }
    let (status, body) = http_get(&s, "/ledger/entries?start=0&end=1&epoch=1", Some("reader"));
    assert_eq!((status, json(&body)["error"].clone()), (410, gone.into()));
    let v = json(&http_get(&s, "/ledger/epochs", None).1);
    assert_eq!(v["epochs"][0]["entries"], "gone");
}

/// A trusted checkpoint of an epoch since archived, and a new epoch with no entry yet: the
/// link cannot be checked, which is an error (not an alarm), and nothing trusted moves.
#[test]
fn an_epoch_link_that_cannot_be_checked_yet_is_an_error() {
    let s = Server::http(View::new(5));
    let dir = tempfile::tempdir().unwrap();
    let (file, state) = trust(&s, dir.path());
    let trusted = fs::read_to_string(&file).unwrap();
    s.view.grow(2);
    s.view.seal_with(Vec::new());
    s.view.replace(&[]);
    let v = verify(&s, &file);
    assert!(!v.ok);
    assert!(
        v.stderr.contains(
            "epoch 2 has no entries yet, so its link to sealed epoch 1 cannot be checked yet"
        ),
        "{}",
        v.stderr
    );
    s.view.replace(&[seal_record(1, 7, &{
        let leaves = s.view.sealed.lock().unwrap()[0].leaves.clone();
        let mut t = MemoryTree::new();
        for l in &leaves {
            t.append(leaf_hash(l)).unwrap();
        }
        t.root()
    })]);
    s.view.with_sealed(1, |e| e.stored = false);
    let v = verify(&s, &file);
    assert!(!v.ok);
    assert!(
        v.stderr.contains(
            "the server answered 410: the entries of sealed epoch 1 are no longer stored"
        ),
        "{}",
        v.stderr
    );
    let w = witness_once(&s, &state);
    assert!(!w.ok && !w.stderr.contains("ALARM"), "{}", w.stderr);
    assert_eq!(fs::read_to_string(&file).unwrap(), trusted);
    assert_eq!(
        fs::read_to_string(state.join("latest.note")).unwrap(),
        trusted
    );
    assert!(alarm_dirs(&state).is_empty());
    // Once stored again, the link verifies.
    s.view.with_sealed(1, |e| e.stored = true);
    both_accept(
        &s,
        &file,
        &state,
        "new epoch 2, link to sealed epoch 1 verified",
    );
}

/// `check_caught`, and the seals served are in the alarm too.
fn check_link_caught(v: &Run, w: &Run, trusted: &str, served: &str, dir: &Path, reason: &str) {
    check_caught(v, w, trusted, served, dir, reason);
    for r in [v, w] {
        assert!(
            r.stderr.contains("--- the seal of epoch 1 it serves ---"),
            "{}",
            r.stderr
        );
    }
    let alarm = &alarm_dirs(&dir.join("witness"))[0];
    let seal = fs::read_to_string(alarm.join("seal-1.note")).unwrap();
    assert!(seal.starts_with(ORIGIN), "{seal}");
}

#[test]
fn a_seal_inconsistent_with_what_was_trusted_is_caught() {
    let (v, w, trusted, served, dir) = misbehaviour(6, |view| {
        // Epoch 1 rewritten and grown, then sealed honestly as far as epoch 2 says.
        let mut leaves = view.leaves();
        leaves[1] = b"a quietly edited event".to_vec();
        leaves.extend(events("later", 2));
        view.replace(&leaves);
        view.seal();
    });
    check_link_caught(
        &v,
        &w,
        &trusted,
        &served,
        dir.path(),
        "broken epoch link from epoch 1 to epoch 2: the trusted tree of 6 entries is not \
         shown to be a prefix of epoch 1's sealed tree of 8 entries",
    );
}

#[test]
fn a_new_epoch_naming_another_root_is_caught() {
    let (v, w, trusted, served, dir) = misbehaviour(6, |view| {
        view.grow(1);
        view.seal_with(seal_record(1, 7, &leaf_hash(b"another history")));
    });
    check_link_caught(
        &v,
        &w,
        &trusted,
        &served,
        dir.path(),
        "broken epoch link from epoch 1 to epoch 2: the first entry of epoch 2 records epoch 1 \
         sealed at 7 entries with root",
    );
}

#[test]
fn a_seal_with_a_bad_signature_is_caught() {
    let (v, w, trusted, served, dir) = misbehaviour(6, |view| {
        view.seal();
        view.with_sealed(1, |e| {
            let mut bytes = e.seal.clone().into_bytes();
            let at = bytes.len() - 10;
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            e.seal = String::from_utf8(bytes).unwrap();
        });
    });
    check_link_caught(
        &v,
        &w,
        &trusted,
        &served,
        dir.path(),
        "broken epoch link from epoch 1 to epoch 2: epoch 1: the seal has an invalid signature \
         by the log's key",
    );
}

#[test]
fn a_first_entry_that_is_not_a_seal_record_is_caught() {
    let (v, w, trusted, served, dir) = misbehaviour(4, |view| {
        view.seal_with(b"caldicott-audit/1\n{}".to_vec());
    });
    check_link_caught(
        &v,
        &w,
        &trusted,
        &served,
        dir.path(),
        "the first entry of epoch 2 is not the record of a seal",
    );
}

/// A real deployment: served, trusted, stopped, sealed with `caldicott ledger seal`, served
/// again. The vault's epochs over HTTP (`StoredLedger`) and both tools verify the link.
#[test]
fn a_real_deployment_sealed_with_the_cli_links() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    common::ok(common::caldicott().args(["init", "--data"]).arg(&data));
    let token = common::gp_token(&data);
    let vkey = common::ok(
        common::caldicott()
            .args(["ledger", "key", "--data"])
            .arg(&data),
    )
    .trim()
    .to_owned();
    let cert = data.join("tls/cert.pem");
    let patient = |i: usize| {
        format!(
            r#"{{"resourceType":"Patient","name":[{{"family":"S{i}"}}],"managingOrganization":{{"identifier":{{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"LOCAL"}}}}}}"#
        )
    };
    let serve = || {
        common::Server::start(
            common::caldicott()
                .args(["serve", "--listen", "127.0.0.1:0", "--data"])
                .arg(&data),
        )
    };
    let file = t.path().join("trusted.note");
    let state = t.path().join("witness");
    let tools = |url: &str| -> (Run, Run) {
        let remote = ["--key", vkey.as_str(), "--ca", cert.to_str().unwrap()];
        let mut v = vec![
            "ledger",
            "verify",
            "--url",
            url,
            "--checkpoint",
            file.to_str().unwrap(),
        ];
        v.extend(remote);
        let mut w = vec![
            "ledger",
            "witness",
            "--url",
            url,
            "--state",
            state.to_str().unwrap(),
            "--once",
        ];
        w.extend(remote);
        (caldicott(&v), caldicott(&w))
    };
    let server = serve();
    for i in 0..3 {
        common::create_over_https(&server.url, &cert, &token, "Patient", &patient(i));
    }
    // The server signs a checkpoint every second while the log grows.
    std::thread::sleep(Duration::from_millis(1500));
    let (v, w) = tools(&server.url);
    assert!(v.ok && w.ok, "{}{}", v.stderr, w.stderr);
    let trusted = fs::read_to_string(&file).unwrap();
    for i in 3..5 {
        common::create_over_https(&server.url, &cert, &token, "Patient", &patient(i));
    }
    drop(server);
    let sealed = common::ok(
        common::caldicott()
            .args(["ledger", "seal", "--data"])
            .arg(&data),
    );
    assert!(
        sealed.starts_with("epoch 1 sealed; new entries go to epoch 2"),
        "{sealed}"
    );

    let server = serve();
    common::create_over_https(&server.url, &cert, &token, "Patient", &patient(9));
    std::thread::sleep(Duration::from_millis(1500));
    let (v, w) = tools(&server.url);
    for r in [&v, &w] {
        assert!(r.ok, "{}", r.stderr);
        assert!(
            r.stdout.starts_with(&format!(
                "new epoch 2, link to sealed epoch 1 verified (from epoch 1 trusted at {}",
                entries_of(&trusted)
            )),
            "{}",
            r.stdout
        );
    }
    assert!(fs::read_to_string(&file).unwrap().contains("\nepoch 2\n"));

    // The listing: epoch 1 sealed and stored, epoch 2 open, its first entry the record.
    let (status, text) = common::https_get(&server.url, &cert, "/ledger/epochs");
    assert_eq!(status, 200, "{text}");
    let v = json(text.split_once("\r\n\r\n").unwrap().1);
    assert_eq!(v["current"], 2);
    assert_eq!(v["epochs"][0]["state"], "sealed");
    assert_eq!(v["epochs"][0]["entries"], "stored");
    assert!(v["epochs"][0].get("first_entry").is_none());
    assert_eq!(v["epochs"][1]["state"], "open");
    let first = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        v["epochs"][1]["first_entry"].as_str().unwrap(),
    )
    .unwrap();
    let event = caldicott_audit::AuditEvent::from_leaf(&first).unwrap();
    assert_eq!(event.action, "ledger-seal");
    let size1 = v["epochs"][0]["size"].as_u64().unwrap();
    assert_eq!(
        event.reason,
        format!(
            "epoch 1 sealed at {size1} entries, root {}",
            v["epochs"][0]["root"].as_str().unwrap()
        )
    );
    let (status, text) = common::https_get(&server.url, &cert, "/ledger/checkpoint?epoch=1");
    assert_eq!(status, 200, "{text}");
    assert!(
        text.ends_with(v["epochs"][0]["seal"].as_str().unwrap()),
        "{text}"
    );
    let (status, text) = common::https_get(
        &server.url,
        &cert,
        &format!("/ledger/proof/inclusion?index=0&size={size1}&epoch=1"),
    );
    assert_eq!(status, 200, "{text}");
    let (status, text) = common::https_get(&server.url, &cert, "/ledger/checkpoint?epoch=3");
    assert_eq!(status, 404, "{text}");
    assert!(
        text.contains("epoch 3 does not exist: the log is in epoch 2"),
        "{text}"
    );
    // Sealed entries still need an audit reader.
    let (status, _) =
        common::https_get(&server.url, &cert, "/ledger/entries?start=0&end=1&epoch=1");
    assert_eq!(status, 401);
}

/// "N entries" as a checkpoint note states its size.
fn entries_of(note: &str) -> String {
    match size_of(note) {
        1 => "1 entry".to_owned(),
        n => format!("{n} entries"),
    }
}
