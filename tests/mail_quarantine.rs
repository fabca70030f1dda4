//! `caldicott mail quarantine` end to end: `caldicott mail serve` keeps a phishing message
//! sealed in the data directory's vault (its bytes are not in the SQLite files), the CLI
//! lists and shows it, releases it to the Python `aiosmtpd` sink (`tests/python/smtp_sink.py`
//! via `CALDICOTT_TEST_PYTHON`; without it the test prints SKIPPED and passes, unless
//! `CALDICOTT_REQUIRE_PYTHON=1`), deletes another, marks a third not spam and trains from it,
//! sends the digest; every action is in the audit ledger, which verifies. Wrong users,
//! roles and ids get precise errors.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{caldicott, fails, ok, python, spawn_until};

/// The sink's messages (bytes), waiting up to `secs` for at least `n`.
fn sink_messages(dir: &Path, n: usize, secs: u64) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        if names.len() >= n || Instant::now() > deadline {
            return names.iter().map(|p| std::fs::read(p).unwrap()).collect();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends one message over plain SMTP; returns the final reply line.
fn smtp_send(addr: &str, from: &str, to: &str, message: &str) -> String {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = tcp.try_clone().unwrap();
    let mut r = BufReader::new(tcp);
    let mut reply = || {
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            if l.as_bytes().get(3) != Some(&b'-') {
                break l;
            }
        }
    };
    assert!(reply().starts_with("220"));
    for (cmd, code) in [
        ("EHLO client.test".to_string(), "250"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_string(), "354"),
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let rep = reply();
        assert!(rep.starts_with(code), "{cmd} → {rep}");
    }
    w.write_all(message.as_bytes()).unwrap();
    w.write_all(b".\r\n").unwrap();
    let last = reply();
    let _ = w.write_all(b"QUIT\r\n");
    last
}

fn phishing(marker: &str) -> String {
    format!(
        "From: \"NHS Payroll\" <payroll@nhs-net.co>\r\nTo: bob@care.example\r\n\
         Subject: Verify your account\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
         Message-ID: <{}@nhs-net.co>\r\n\r\nClick here to verify within 24 hours. {marker}\r\n",
        marker.len()
    )
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn ledger_events(data: &Path) -> Vec<caldicott_audit::AuditEvent> {
    use std::sync::Arc;
    let kek = Arc::new(caldicott_vault::LocalKek::from_file(&data.join("master.key")).unwrap());
    let backend =
        caldicott_vault::open_backend(&data.join("vault.db").display().to_string(), false).unwrap();
    let vault = Arc::new(caldicott_vault::Vault::open(backend, kek).unwrap());
    let ledger = caldicott_vault::Ledger::open(vault, "ignored: the key exists").unwrap();
    let head = ledger.head().unwrap();
    ledger
        .leaves(head.epoch, 0, head.size)
        .unwrap()
        .iter()
        .map(|l| caldicott_audit::AuditEvent::from_leaf(&l.data).unwrap())
        .collect()
}

/// The ids `quarantine list --json` shows, in order.
fn held(data: &Path) -> Vec<serde_json::Value> {
    ok(caldicott()
        .args(["mail", "quarantine", "list", "--json", "--data"])
        .arg(data))
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

fn wait_held(data: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = held(data);
        if h.len() >= n || Instant::now() > deadline {
            return h;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A data directory with a guardian and a GP, an aiosmtpd sink as the gateway's next hop,
/// and where its `mail.toml` goes (not yet written).
struct Site {
    t: tempfile::TempDir,
    data: PathBuf,
    sink_dir: PathBuf,
    _sink: common::Proc,
    port: String,
    config: PathBuf,
}

fn site(py: &Path) -> Site {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let sink_dir = t.path().join("sink");
    std::fs::create_dir(&sink_dir).unwrap();
    ok(caldicott().args(["init", "--data"]).arg(&data));
    for (name, role) in [("guardian", "caldicott-guardian"), ("drsmith", "gp")] {
        ok(caldicott()
            .args([
                "user", "add", "--org", "LOCAL", "--role", role, name, "--data",
            ])
            .arg(&data));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/smtp_sink.py");
    let (_sink, port) = spawn_until(
        Command::new(py)
            .arg(&script)
            .arg(&sink_dir)
            .args(["--port", "0"])
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        "PORT ",
    );
    let config = t.path().join("mail.toml");
    Site {
        t,
        data,
        sink_dir,
        _sink,
        port,
        config,
    }
}

#[test]
fn quarantine_list_show_release_delete_digest_through_the_binary() {
    let Some(py) = python() else { return };
    let Site {
        t,
        data,
        sink_dir,
        _sink,
        port,
        config,
    } = site(&py);
    std::fs::write(
        &config,
        format!(
            "[gateway]\ninbound = \"127.0.0.1:0\"\nnext_hop = \"127.0.0.1:{port}\"\n\
             hostname = \"mx.care.example\"\nlocal_domains = [\"care.example\"]\n\
             queue_dir = \"{}\"\ndata = \"{}\"\nretry_schedule = [\"1s\"]\n",
            t.path().join("queue").display(),
            data.display()
        ),
    )
    .unwrap();
    let (_gw, inbound) = spawn_until(
        caldicott().args(["mail", "serve", "--config"]).arg(&config),
        "Caldicott mail gateway inbound at ",
    );
    let markers = ["MARKER-one-4b1d", "MARKER-two-88ce", "MARKER-three-a07f"];
    for m in markers {
        let reply = smtp_send(
            &inbound,
            "payroll@nhs-net.co",
            "bob@care.example",
            &phishing(m),
        );
        assert!(reply.starts_with("250"), "{reply}");
    }
    let h = wait_held(&data, 3);
    assert_eq!(h.len(), 3, "{h:?}");
    let ids: Vec<String> = h
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(h[0]["direction"], "inbound");
    assert!(
        h[0]["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "FROM_LOOKALIKE_PROTECTED" && s["reason"].as_str().is_some()),
        "{}",
        h[0]
    );
    // Sealed: no marker in the SQLite files.
    let mut db = Vec::new();
    for f in ["vault.db", "vault.db-wal"] {
        if let Ok(b) = std::fs::read(data.join(f)) {
            db.extend(b);
        }
    }
    for m in markers {
        assert!(!contains(&db, m), "{m} is readable in the database");
    }
    // The text list shows the reasons.
    let list = ok(caldicott()
        .args(["mail", "quarantine", "list", "--data"])
        .arg(&data));
    assert!(
        list.contains("FROM_LOOKALIKE_PROTECTED") && list.contains("3 message(s) held"),
        "{list}"
    );
    // show: headers and symbols, no body; --raw needs --by and shows the body.
    let shown = ok(caldicott()
        .args(["mail", "quarantine", "show", &ids[0], "--data"])
        .arg(&data));
    assert!(shown.contains("Subject: Verify your account"), "{shown}");
    assert!(shown.contains("FROM_LOOKALIKE_PROTECTED"), "{shown}");
    assert!(!shown.contains(markers[0]), "the body was shown: {shown}");
    let o = caldicott()
        .args(["mail", "quarantine", "show", &ids[0], "--raw", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let raw = ok(caldicott()
        .args([
            "mail",
            "quarantine",
            "show",
            &ids[0],
            "--raw",
            "--by",
            "guardian",
            "--data",
        ])
        .arg(&data));
    assert!(raw.contains(markers[0]));

    // Precise errors: wrong role, unknown user, unknown id, bad id.
    let e = fails(
        caldicott()
            .args([
                "mail",
                "quarantine",
                "release",
                &ids[0],
                "--by",
                "drsmith",
                "--config",
            ])
            .arg(&config)
            .arg("--data")
            .arg(&data),
    );
    assert!(
        e.contains("user drsmith has the role gp") && e.contains("caldicott-guardian or sysadmin"),
        "{e}"
    );
    let e = fails(
        caldicott()
            .args([
                "mail",
                "quarantine",
                "delete",
                &ids[0],
                "--by",
                "nobody",
                "--data",
            ])
            .arg(&data),
    );
    assert!(e.contains("no user nobody"), "{e}");
    let e = fails(
        caldicott()
            .args([
                "mail",
                "quarantine",
                "delete",
                "00ff00ff",
                "--by",
                "guardian",
                "--data",
            ])
            .arg(&data),
    );
    assert!(e.contains("no quarantined message with id 00ff00ff"), "{e}");
    let e = fails(
        caldicott()
            .args(["mail", "quarantine", "show", "../etc", "--data"])
            .arg(&data),
    );
    assert!(e.contains("is not a quarantine id"), "{e}");

    // The digest, printed and sent.
    let digest = ok(caldicott()
        .args(["mail", "quarantine", "digest", "--data"])
        .arg(&data));
    assert!(digest.contains("3 message(s) held"), "{digest}");
    assert!(digest.contains("FROM_LOOKALIKE_PROTECTED"), "{digest}");
    assert!(digest.contains("payroll@nhs-net.co") && digest.contains("Verify your account"));

    // The digest as mail to the privacy officer, through the gateway's queue.
    ok(caldicott()
        .args([
            "mail",
            "quarantine",
            "digest",
            "--since",
            "7d",
            "--send",
            "--to",
        ])
        .arg("privacy.officer@care.example")
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(&data));
    let got = sink_messages(&sink_dir, 1, 20);
    assert_eq!(got.len(), 1);
    assert!(
        got.iter()
            .any(|m| contains(m, "Subject: Caldicott mail quarantine digest: 3 held")),
        "no digest arrived"
    );

    // Release: delivered by the running gateway to the sink, and gone from the quarantine.
    let out = ok(caldicott()
        .args([
            "mail",
            "quarantine",
            "release",
            &ids[0],
            "--by",
            "guardian",
            "--config",
        ])
        .arg(&config)
        .arg("--data")
        .arg(&data));
    assert!(out.contains("released"), "{out}");
    let got = sink_messages(&sink_dir, 2, 20);
    assert_eq!(got.len(), 2, "the released message was not delivered");
    assert!(got.iter().any(|m| contains(m, markers[0])));
    // Delete.
    ok(caldicott()
        .args([
            "mail",
            "quarantine",
            "delete",
            &ids[1],
            "--by",
            "guardian",
            "--data",
        ])
        .arg(&data));
    let e = fails(
        caldicott()
            .args(["mail", "quarantine", "show", &ids[1], "--data"])
            .arg(&data),
    );
    assert!(
        e.contains(&format!("no quarantined message with id {}", ids[1])),
        "{e}"
    );
    // Mark not spam: delivered, and training learns from it.
    ok(caldicott()
        .args([
            "mail",
            "quarantine",
            "mark-not-spam",
            &ids[2],
            "--by",
            "guardian",
            "--config",
        ])
        .arg(&config)
        .arg("--data")
        .arg(&data));
    let got = sink_messages(&sink_dir, 3, 20);
    assert_eq!(got.len(), 3);
    assert!(got.iter().any(|m| contains(m, markers[2])));
    assert!(
        !got.iter().any(|m| contains(m, markers[1])),
        "a deleted message was sent"
    );
    assert!(held(&data).is_empty());
    let spam = t.path().join("spam.eml");
    std::fs::write(&spam, phishing("spam-for-training")).unwrap();
    let trained = ok(caldicott()
        .args(["mail", "train", "--spam"])
        .arg(&spam)
        .arg("--min-count")
        .arg("1")
        .arg("--out")
        .arg(t.path().join("site.model"))
        .arg("--quarantine-feedback")
        .arg(&data));
    assert!(
        trained.contains("1 message(s) marked not spam added as ham"),
        "{trained}"
    );
    // The deleted phishing message is the site's spam feedback.
    assert!(
        trained.contains("1 message(s) deleted from the quarantine added as spam"),
        "{trained}"
    );
    assert!(trained.contains("trained on 1 ham and 2 spam"), "{trained}");
    // With the decisions alone (no --spam, no --ham): one of each.
    let trained = ok(caldicott()
        .args(["mail", "train", "--min-count", "1", "--out"])
        .arg(t.path().join("feedback.model"))
        .arg("--quarantine-feedback")
        .arg(&data));
    assert!(trained.contains("trained on 1 ham and 1 spam"), "{trained}");
    // The ledger verifies and holds each action with its id and actor, never content.
    let v = ok(caldicott().args(["ledger", "verify", "--data"]).arg(&data));
    assert!(v.contains("intact"), "{v}");
    let events = ledger_events(&data);
    let mine: Vec<(String, String, String)> = events
        .iter()
        .filter(|e| e.action.starts_with("mail-"))
        .map(|e| {
            (
                e.action.clone(),
                e.id.clone().unwrap_or_default(),
                e.user.clone(),
            )
        })
        .collect();
    let g = "guardian".to_string();
    assert_eq!(
        mine,
        vec![
            ("mail-show-raw".into(), ids[0].clone(), g.clone()),
            ("mail-release".into(), ids[0].clone(), g.clone()),
            ("mail-delete".into(), ids[1].clone(), g.clone()),
            ("mail-mark-not-spam".into(), ids[2].clone(), g.clone()),
        ]
    );
    for e in &events {
        let leaf = String::from_utf8_lossy(&e.to_leaf()).into_owned();
        for m in markers {
            assert!(!leaf.contains(m), "message content in the ledger");
        }
    }
}

/// Holds a phishing message in the data directory's quarantine as the gateway does.
fn hold_now(data: &Path, marker: &str) -> String {
    use caldicott_mail::smtp::Quarantine as _;
    use std::sync::Arc;
    let kek = Arc::new(caldicott_vault::LocalKek::from_file(&data.join("master.key")).unwrap());
    let backend =
        caldicott_vault::open_backend(&data.join("vault.db").display().to_string(), false).unwrap();
    let vault = Arc::new(caldicott_vault::Vault::open(backend, kek).unwrap());
    let message = phishing(marker);
    let envelope = caldicott_mail::Envelope {
        client_ip: Some("198.51.100.9".parse().unwrap()),
        helo: Some("mx.nhs-net.co".into()),
        mail_from: Some("payroll@nhs-net.co".into()),
        rcpt_to: vec!["bob@care.example".into()],
        authenticated: false,
    };
    let report = caldicott_mail::Scanner::new(caldicott_mail::MailConfig::default(), None)
        .unwrap()
        .scan_with(message.as_bytes(), Some(&envelope));
    let id = caldicott_mail::queue::new_id();
    caldicott_mail::quarantine::VaultQuarantine::new(vault)
        .store(&id, &envelope, message.as_bytes(), &report)
        .unwrap();
    id
}

#[test]
fn purge_deletes_only_what_was_held_too_long_and_records_each() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    for (name, role) in [("guardian", "caldicott-guardian"), ("drsmith", "gp")] {
        ok(caldicott()
            .args([
                "user", "add", "--org", "LOCAL", "--role", role, name, "--data",
            ])
            .arg(&data));
    }
    let old = hold_now(&data, "purge-old");
    // The retention period below is 4 s: the first message outlives it, the second not.
    std::thread::sleep(Duration::from_secs(6));
    let new = hold_now(&data, "purge-new");
    let purge = |extra: &[&str], by: &str| {
        let mut c = caldicott();
        c.args([
            "mail",
            "quarantine",
            "purge",
            "--older-than",
            "4s",
            "--by",
            by,
        ])
        .args(extra)
        .arg("--data")
        .arg(&data);
        c
    };
    let e = fails(&mut purge(&[], "drsmith"));
    assert!(e.contains("caldicott-guardian or sysadmin"), "{e}");
    let e = fails(
        caldicott()
            .args([
                "mail",
                "quarantine",
                "purge",
                "--older-than",
                "soon",
                "--by",
                "guardian",
                "--data",
            ])
            .arg(&data),
    );
    assert!(e.contains("is not a duration"), "{e}");
    let dry = ok(&mut purge(&["--dry-run"], "guardian"));
    assert!(dry.contains(&format!("would delete {old}")), "{dry}");
    assert!(!dry.contains(&new), "{dry}");
    assert_eq!(held(&data).len(), 2, "a dry run deletes nothing");
    let out = ok(&mut purge(&[], "guardian"));
    assert!(out.contains("purged 1 message(s)"), "{out}");
    let left: Vec<String> = held(&data)
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, vec![new.clone()]);
    let purged: Vec<(String, String)> = ledger_events(&data)
        .into_iter()
        .filter(|e| e.action == "mail-purge")
        .map(|e| (e.id.unwrap_or_default(), e.user))
        .collect();
    assert_eq!(purged, vec![(old, "guardian".to_owned())]);
}

/// The UK wall clock `secs` from now as `HH:MM:SS`: a `digest_at` due that soon.
fn uk_clock_in(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let l = caldicott_audit::uktime::uk_local((now + secs) * 1_000_000);
    format!("{:02}:{:02}:{:02}", l.hour, l.minute, l.second)
}

fn delete(data: &Path, id: &str, extra: &[&str]) -> String {
    ok(caldicott()
        .args(["mail", "quarantine", "delete", id, "--by", "guardian"])
        .args(extra)
        .arg("--data")
        .arg(data))
}

/// `[gateway.quarantine]`: `caldicott mail serve` itself, at `digest_at` (UK time; here a
/// few seconds ahead, through the real scheduler and clock), queues the digest to the
/// privacy officer (it arrives at the aiosmtpd sink) and purges what was held longer than
/// `retain`, training copies included, each recorded as `purge_as`; restarted the same day,
/// it does not run again. A bad `purge_as` or `digest_at` stops it at start, naming the key.
#[test]
fn the_gateway_sends_the_digest_and_purges_on_its_own_schedule() {
    let Some(py) = python() else { return };
    let Site {
        t,
        data,
        sink_dir,
        _sink,
        port,
        config,
    } = site(&py);
    let write_config = |quarantine: &str| {
        std::fs::write(
            &config,
            format!(
                "[gateway]\ninbound = \"127.0.0.1:0\"\nnext_hop = \"127.0.0.1:{port}\"\n\
                 hostname = \"mx.care.example\"\nlocal_domains = [\"care.example\"]\n\
                 queue_dir = \"{}\"\ndata = \"{}\"\nretry_schedule = [\"1s\"]\n\n\
                 [gateway.quarantine]\n{quarantine}",
                t.path().join("queue").display(),
                data.display()
            ),
        )
        .unwrap();
    };
    let serve = || {
        let mut c = caldicott();
        c.args(["mail", "serve", "--config"]).arg(&config);
        c
    };
    // Checked at start, naming the key.
    write_config(
        "digest_to = \"privacy.officer@care.example\"\nretain = \"8s\"\npurge_as = \"drsmith\"\n",
    );
    let e = fails(&mut serve());
    assert!(
        e.contains("gateway.quarantine.purge_as: user drsmith has the role gp")
            && e.contains("caldicott-guardian or sysadmin"),
        "{e}"
    );
    write_config("retain = \"8s\"\npurge_as = \"nobody\"\n");
    let e = fails(&mut serve());
    assert!(
        e.contains("gateway.quarantine.purge_as: no user nobody"),
        "{e}"
    );
    write_config("digest_to = \"privacy.officer@care.example\"\ndigest_at = \"7.30\"\n");
    let e = fails(&mut serve());
    assert!(e.contains("gateway.quarantine.digest_at"), "{e}");
    write_config("retain = \"8s\"\n");
    let e = fails(&mut serve());
    assert!(
        e.contains("gateway.quarantine.purge_as: is required"),
        "{e}"
    );

    // Old: a held message, and a deleted one kept as spam feedback; one deleted for
    // another reason keeps nothing. Then, after the retention period, a new one.
    let old = hold_now(&data, "sched-old");
    let spam = hold_now(&data, "sched-spam");
    let out = delete(&data, &spam, &[]);
    assert!(out.contains("kept it as spam"), "{out}");
    let other = hold_now(&data, "sched-other");
    let out = delete(
        &data,
        &other,
        &["--no-feedback", "--reason", "sent in error"],
    );
    assert!(!out.contains("spam"), "{out}");
    std::thread::sleep(Duration::from_secs(9));
    let new = hold_now(&data, "sched-new");

    write_config(&format!(
        "digest_to = \"privacy.officer@care.example\"\ndigest_at = \"{}\"\n\
         retain = \"8s\"\npurge_as = \"guardian\"\n",
        uk_clock_in(2)
    ));
    let (gw, _) = spawn_until(&mut serve(), "Caldicott mail gateway inbound at ");
    let got = sink_messages(&sink_dir, 1, 30);
    assert_eq!(got.len(), 1, "no digest arrived");
    let digest = &got[0];
    assert!(
        contains(digest, "Subject: Caldicott mail quarantine digest: 2 held"),
        "{}",
        String::from_utf8_lossy(digest)
    );
    assert!(contains(digest, "To: privacy.officer@care.example"));
    assert!(contains(digest, "From: postmaster@mx.care.example"));
    assert!(contains(digest, &old) && contains(digest, &new));
    // The purge follows the digest: only the new message is left.
    let deadline = Instant::now() + Duration::from_secs(15);
    let left = loop {
        let left: Vec<String> = held(&data)
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        if left.len() == 1 || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(left, vec![new.clone()]);
    let events: Vec<(String, String, String)> = ledger_events(&data)
        .into_iter()
        .filter(|e| e.action.starts_with("mail-"))
        .map(|e| (e.action, e.id.unwrap_or_default(), e.user))
        .collect();
    let g = "guardian".to_string();
    assert_eq!(
        events,
        vec![
            ("mail-delete".into(), spam.clone(), g.clone()),
            ("mail-delete".into(), other.clone(), g.clone()),
            ("mail-purge".into(), old.clone(), g.clone()),
            ("mail-purge-feedback".into(), spam.clone(), g.clone()),
        ]
    );
    // The spam feedback went with the retention period: nothing left to train from.
    let e = fails(
        caldicott()
            .args(["mail", "train", "--out"])
            .arg(t.path().join("m.model"))
            .arg("--quarantine-feedback")
            .arg(&data),
    );
    assert!(e.contains("got 0 ham, 0 spam"), "{e}");

    // Restarted the same day, after the due time: it does not run again.
    drop(gw);
    let (_gw, _) = spawn_until(&mut serve(), "Caldicott mail gateway inbound at ");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sink_messages(&sink_dir, 2, 0).len(), 1, "a second digest");
    assert_eq!(held(&data).len(), 1);
    let v = ok(caldicott().args(["ledger", "verify", "--data"]).arg(&data));
    assert!(v.contains("intact"), "{v}");
}
