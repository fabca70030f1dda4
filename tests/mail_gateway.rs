//! `caldicott mail serve` as a process: a message acknowledged with `250` survives `kill -9`
//! of the gateway (the next hop was down at the time) and is delivered after a restart, to a
//! Python `aiosmtpd` sink (`tests/python/smtp_sink.py`, via `CALDICOTT_TEST_PYTHON`; without
//! it the test prints SKIPPED and passes, unless `CALDICOTT_REQUIRE_PYTHON=1`).

mod common;

use common::{Proc, python, spawn_until};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn serve(config: &Path) -> (Proc, String) {
    spawn_until(
        Command::new(env!("CARGO_BIN_EXE_caldicott"))
            .args(["mail", "serve", "--config"])
            .arg(config),
        "Caldicott mail gateway inbound at ",
    )
}

fn reply(r: &mut BufReader<TcpStream>) -> u16 {
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        if l.as_bytes().get(3) != Some(&b'-') {
            return l.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        }
    }
}

#[test]
fn an_acknowledged_message_survives_kill_9_and_is_delivered_after_restart() {
    let Some(py) = python() else { return };
    let t = tempfile::tempdir().unwrap();
    // The next hop's port: free now, the sink takes it later.
    let hop = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = t.path().join("mail.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nhostname = \"mx.care.example\"\ninbound = \"127.0.0.1:0\"\n\
             next_hop = \"127.0.0.1:{hop}\"\nlocal_domains = [\"care.example\"]\n\
             queue_dir = \"{q}\"\nquarantine_dir = \"{z}\"\nretry_schedule = [\"1s\"]\n",
            q = t.path().join("queue").display(),
            z = t.path().join("quarantine").display(),
        ),
    )
    .unwrap();
    let (mut gw, addr) = serve(&config);
    let tcp = TcpStream::connect(addr.trim()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = tcp.try_clone().unwrap();
    let mut r = BufReader::new(tcp);
    assert_eq!(reply(&mut r), 220);
    let message = "From: Alice <alice@partner.example>\r\nTo: bob@care.example\r\n\
                   Subject: Discharge summary follows\r\nDate: Mon, 06 Jan 2025 09:30:00 +0000\r\n\
                   Message-ID: <k9@partner.example>\r\n\r\nHello Bob,\r\nsee you on Tuesday.\r\n";
    for (line, code) in [
        ("EHLO client.test".to_string(), 250),
        ("MAIL FROM:<alice@partner.example>".into(), 250),
        ("RCPT TO:<bob@care.example>".into(), 250),
        ("DATA".into(), 354),
        (format!("{message}."), 250),
    ] {
        write!(w, "{line}\r\n").unwrap();
        assert_eq!(reply(&mut r), code, "{line}");
    }
    // Acknowledged: now kill the gateway without any chance to flush.
    let _ = gw.0.kill();
    let _ = gw.0.wait();
    drop(gw);
    drop((w, r));
    let msgs = t.path().join("queue/msg");
    assert_eq!(std::fs::read_dir(&msgs).unwrap().count(), 1, "not on disk");
    // The next hop comes up, then the gateway again.
    let out = t.path().join("sink");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/smtp_sink.py");
    let (_sink, _) = spawn_until(
        Command::new(&py)
            .arg(&script)
            .arg(&out)
            .args(["--port", &hop.to_string()])
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        "PORT ",
    );
    let (_gw, _) = serve(&config);
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivered = loop {
        let found = std::fs::read_dir(&out)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .find(|p| p.extension().is_some_and(|e| e == "eml"))
            })
            .ok()
            .flatten();
        if let Some(p) = found {
            break std::fs::read(p).unwrap();
        }
        assert!(Instant::now() < deadline, "not delivered after restart");
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = String::from_utf8(delivered).unwrap();
    assert!(text.starts_with("Received: from client.test"), "{text}");
    assert!(text.ends_with(message), "{text}");
    while std::fs::read_dir(&msgs).unwrap().count() > 0 {
        assert!(Instant::now() < deadline, "delivered but still queued");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_refuses_a_config_without_a_gateway_and_names_bad_keys() {
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("mail.toml");
    std::fs::write(&config, "[thresholds]\ntag = 5.0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_caldicott"))
        .args(["mail", "serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [gateway] section"));
    std::fs::write(
        &config,
        "[gateway]\ninbound = \"127.0.0.1:0\"\nnext_hop = \"x:1\"\nlocal_domains = [\"a.example\"]\n\
         queue_dir = \"q\"\nquarantine_dir = \"z\"\n[gateway.limits]\nmax_line_bytes = 10\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_caldicott"))
        .args(["mail", "serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gateway.limits.max_line_bytes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hash_password_prints_an_argon2id_hash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_caldicott"))
        .args(["mail", "hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains("correct horse"));
}
