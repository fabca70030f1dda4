//! The SMTP gateway over real SMTP on loopback: the gateway runs in-process on a tokio
//! runtime; the tests talk to it with a small blocking client (so hostile bytes can be sent
//! exactly), and the next hop is a Python `aiosmtpd` sink (`tests/python/smtp_sink.py`, found
//! through `CALDICOTT_TEST_PYTHON`; tests needing it print SKIPPED and pass without it, unless
//! `CALDICOTT_REQUIRE_PYTHON=1`).

mod common;

use common::sink::{Sink, python};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caldicott_mail::config::{GatewayConfig, GatewayLimits, SubmissionUser, TlsFiles};
use caldicott_mail::smtp::{FsQuarantine, Gateway, ScannerScreen, hash_password};
use caldicott_mail::{MailConfig, Scanner, Verdict};

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Gw {
    inbound: SocketAddr,
    submission: Option<SocketAddr>,
    root: PathBuf,
    cert_pem: Option<String>,
    rt: Option<tokio::runtime::Runtime>,
    _dir: tempfile::TempDir,
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Gw {
    fn queue_len(&self) -> usize {
        std::fs::read_dir(self.root.join("queue/msg"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
    fn quarantined(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.root.join("quarantine"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        v.sort();
        v
    }
}

fn base_config(root: &Path, next_hop_port: u16) -> GatewayConfig {
    let mut c: GatewayConfig = toml::from_str(&format!(
        "inbound = \"127.0.0.1:0\"\nnext_hop = \"127.0.0.1:{next_hop_port}\"\n\
         hostname = \"mx.care.example\"\nlocal_domains = [\"care.example\"]\n\
         queue_dir = \"q\"\nquarantine_dir = \"q\"\nretry_schedule = [\"1s\"]\n"
    ))
    .unwrap();
    c.queue_dir = root.join("queue");
    c.quarantine_dir = root.join("quarantine");
    c
}

/// Starts a gateway; `tls` makes a self-signed certificate for `localhost` first.
fn start(next_hop_port: u16, tls: bool, change: impl FnOnce(&mut GatewayConfig)) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let mut config = base_config(&root, next_hop_port);
    let mut cert_pem = None;
    if tls {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let pem = ck.cert.pem();
        std::fs::write(root.join("cert.pem"), &pem).unwrap();
        std::fs::write(root.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
        config.tls = Some(TlsFiles {
            cert: root.join("cert.pem"),
            key: root.join("key.pem"),
        });
        cert_pem = Some(pem);
    }
    change(&mut config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let scanner = Arc::new(Scanner::new(MailConfig::default(), None).unwrap());
    let quarantine = Arc::new(FsQuarantine::new(&config.quarantine_dir).unwrap());
    let gw = rt
        .block_on(Gateway::bind(
            &config,
            Arc::new(ScannerScreen(scanner)),
            quarantine,
        ))
        .unwrap();
    let inbound = gw.inbound_addr().unwrap();
    let submission = gw.submission_addr().map(|a| a.unwrap());
    rt.spawn(gw.run());
    Gw {
        inbound,
        submission,
        root,
        cert_pem,
        rt: Some(rt),
        _dir: dir,
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A blocking SMTP client that reads replies byte by byte (so nothing is read ahead).
struct Client {
    s: Box<dyn Stream>,
    tcp: Option<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> (Client, String) {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = Client {
            s: Box::new(tcp.try_clone().unwrap()),
            tcp: Some(tcp),
        };
        let (code, text) = c.reply();
        (c, format!("{code} {text}"))
    }

    fn open(addr: SocketAddr) -> Client {
        let (c, greeting) = Client::connect(addr);
        assert!(greeting.starts_with("220 "), "{greeting}");
        c
    }

    fn line(&mut self) -> Option<String> {
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        loop {
            match self.s.read(&mut b) {
                Ok(1) => {
                    out.push(b[0]);
                    if b[0] == b'\n' {
                        return Some(String::from_utf8_lossy(&out).into_owned());
                    }
                }
                _ => return None,
            }
        }
    }

    /// The next reply: code and the text of all its lines (0 when the connection closed).
    fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let Some(l) = self.line() else {
                return (0, text);
            };
            assert!(l.ends_with("\r\n"), "reply line without CRLF: {l:?}");
            text.push_str(&l[4.min(l.len())..]);
            if l.as_bytes().get(3) != Some(&b'-') {
                return (l[..3].parse().unwrap(), text);
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
        self.s.flush().unwrap();
    }

    fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    fn expect(&mut self, line: &str, code: u16) -> String {
        let (c, t) = self.cmd(line);
        assert_eq!(c, code, "{line} → {c} {t}");
        t
    }

    fn starttls(&mut self, cert_pem: &str) {
        self.expect("STARTTLS", 220);
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile_certs(cert_pem) {
            roots.add(c).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap())
            .unwrap();
        let tcp = self.tcp.take().unwrap();
        self.s = Box::new(rustls::StreamOwned::new(conn, tcp));
    }

    /// MAIL, RCPTs and DATA of one message; returns the final reply.
    fn mail(&mut self, from: &str, to: &[&str], message: &[u8]) -> (u16, String) {
        self.expect(&format!("MAIL FROM:<{from}>"), 250);
        for t in to {
            self.expect(&format!("RCPT TO:<{t}>"), 250);
        }
        self.expect("DATA", 354);
        self.send(&stuff(message));
        self.reply()
    }
}

fn rustls_pemfile_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .map(|c| c.unwrap())
        .collect()
}

fn stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = true;
    for &b in message {
        if start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        start = b == b'\n';
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn clean_message() -> Vec<u8> {
    // Ends with CRLF; has a line starting with a dot (stuffed on the wire, restored after).
    let m = common::plain(
        "Alice Smith <alice.smith@partner.example>",
        "Minutes of Tuesday's meeting",
        "Hello Bob,\r\n.the minutes are below.\r\nX-Spam-Flag: this is body text\r\n\r\nBest wishes,\r\nAlice",
    );
    let m = [b"X-Spam-Flag: NO\r\n".as_slice(), &m].concat();
    assert_eq!(
        common::scan(&m).verdict,
        Verdict::Accept,
        "{:?}",
        common::scan(&m)
    );
    m
}

fn phishing_message() -> Vec<u8> {
    let m = b"From: \"NHS Payroll\" <payroll@nhs-net.co>\r\nTo: bob@care.example\r\n\
        Subject: Verify your account\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
        Message-ID: <1@nhs-net.co>\r\n\r\nClick here to verify within 24 hours.\r\n"
        .to_vec();
    assert_eq!(common::scan(&m).verdict, Verdict::Quarantine);
    m
}

fn malware_message() -> Vec<u8> {
    let m = common::with_attachment("invoice.pdf", "application/pdf", &common::pe());
    assert_eq!(common::scan(&m).verdict, Verdict::Reject);
    m
}

/// The header section of a relayed message.
fn header_of(m: &[u8]) -> String {
    let s = String::from_utf8_lossy(m);
    s[..s.find("\r\n\r\n").unwrap()].to_string()
}

#[test]
fn a_clean_message_arrives_exactly_with_the_gateways_headers() {
    let Some(py) = python() else { return };
    let t = tempfile::tempdir().unwrap();
    let sink = Sink::start(&py, t.path(), 0, &[]);
    let gw = start(sink.port, false, |_| {});
    let mut c = Client::open(gw.inbound);
    let ehlo = c.expect("EHLO client.test", 250);
    for ext in [
        "PIPELINING",
        "SIZE 26214400",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(ehlo.contains(ext), "{ext} missing from {ehlo}");
    }
    let msg = clean_message();
    let (code, text) = c.mail("alice.smith@partner.example", &["bob@care.example"], &msg);
    assert_eq!(code, 250, "{text}");
    c.expect("QUIT", 221);
    let got = sink.wait_for(1, 20);
    assert_eq!(got.len(), 1, "not delivered");
    let (raw, meta) = &got[0];
    assert_eq!(meta["mail_from"], "alice.smith@partner.example");
    assert_eq!(meta["rcpt_tos"], serde_json::json!(["bob@care.example"]));
    let text = String::from_utf8_lossy(raw);
    assert!(
        text.starts_with("Received: from client.test ([127.0.0.1])\r\n\tby mx.care.example (Caldicott) with ESMTP id "),
        "{text}"
    );
    assert!(text.contains("\r\n\tfor <bob@care.example>; "));
    let header = header_of(raw);
    assert!(header.contains("\r\nX-Caldicott-Verdict: accept score="));
    assert!(header.contains("\r\nX-Caldicott-Symbols:"));
    // The sender's forged flag is gone; the body's text is not a header and stays.
    assert!(!header.contains("X-Spam-Flag"), "{header}");
    // Everything after the added fields is the original, byte for byte, minus the forgery.
    let original = &msg[b"X-Spam-Flag: NO\r\n".len()..];
    assert!(raw.ends_with(original), "body changed:\n{text}");
    let added = &raw[..raw.len() - original.len()];
    let added = String::from_utf8_lossy(added);
    assert_eq!(added.matches("\r\n").count(), added.lines().count());
    // Delivered messages leave the queue.
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.queue_len() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gw.queue_len(), 0);
}

#[test]
fn malware_is_rejected_and_phishing_quarantined_and_neither_reaches_the_sink() {
    let Some(py) = python() else { return };
    let t = tempfile::tempdir().unwrap();
    let sink = Sink::start(&py, t.path(), 0, &[]);
    let gw = start(sink.port, false, |_| {});
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO client.test", 250);
    let (code, text) = c.mail("x@bad.example", &["bob@care.example"], &malware_message());
    assert_eq!(code, 550, "{text}");
    assert!(text.starts_with("5.7.1 "), "{text}");
    assert!(text.contains("ATTACH_"), "{text}");
    let (code, text) = c.mail(
        "payroll@nhs-net.co",
        &["bob@care.example"],
        &phishing_message(),
    );
    assert_eq!(code, 250, "{text}");
    // A clean message after them is the marker that the sink has seen all it will see.
    let (code, _) = c.mail(
        "alice.smith@partner.example",
        &["bob@care.example"],
        &clean_message(),
    );
    assert_eq!(code, 250);
    let got = sink.wait_for(1, 20);
    std::thread::sleep(Duration::from_millis(500));
    let got2 = sink.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got2.len(), 1, "a screened-out message reached the sink");
    assert!(header_of(&got2[0].0).contains("Minutes of Tuesday"));
    let q = gw.quarantined();
    assert_eq!(q.len(), 1, "{q:?}");
    let held = std::fs::read_to_string(&q[0]).unwrap();
    assert!(held.contains("X-Caldicott-Verdict: quarantine"));
    assert!(held.contains("FROM_LOOKALIKE_PROTECTED"));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(q[0].with_extension("json")).unwrap()).unwrap();
    assert_eq!(meta["report"]["verdict"], "quarantine");
    assert_eq!(meta["rcpt_to"], serde_json::json!(["bob@care.example"]));
}

#[test]
fn tagged_mail_is_flagged_and_relayed() {
    let Some(py) = python() else { return };
    let t = tempfile::tempdir().unwrap();
    let sink = Sink::start(&py, t.path(), 0, &[]);
    // Tag at the lowest score so an ordinary message is tagged (the config path is real).
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(dir.path(), sink.port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut mc = MailConfig::default();
    mc.thresholds.tag = -100.0;
    let scanner = Arc::new(Scanner::new(mc, None).unwrap());
    config.quarantine_dir = dir.path().join("quarantine");
    let gw = rt
        .block_on(Gateway::bind(
            &config,
            Arc::new(ScannerScreen(scanner)),
            Arc::new(FsQuarantine::new(&config.quarantine_dir).unwrap()),
        ))
        .unwrap();
    let addr = gw.inbound_addr().unwrap();
    rt.spawn(gw.run());
    let mut c = Client::open(addr);
    c.expect("HELO client.test", 250);
    let (code, _) = c.mail(
        "alice.smith@partner.example",
        &["bob@care.example"],
        &clean_message(),
    );
    assert_eq!(code, 250);
    let got = sink.wait_for(1, 20);
    let header = header_of(&got[0].0);
    assert!(header.contains("X-Caldicott-Verdict: tag"), "{header}");
    assert!(header.contains("\r\nX-Spam-Flag: YES"), "{header}");
    rt.shutdown_background();
}

#[test]
fn starttls_with_a_verified_certificate_then_mail() {
    let gw = start(free_port(), true, |_| {});
    let mut c = Client::open(gw.inbound);
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(ehlo.contains("STARTTLS"));
    assert!(!ehlo.contains("AUTH"), "no AUTH on the inbound port");
    c.starttls(gw.cert_pem.as_deref().unwrap());
    // State is reset after TLS: MAIL needs a new EHLO.
    c.expect("MAIL FROM:<a@partner.example>", 503);
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(!ehlo.contains("STARTTLS"));
    let (code, text) = c.mail(
        "alice.smith@partner.example",
        &["bob@care.example"],
        &clean_message(),
    );
    assert_eq!(code, 250, "{text}");
    // Queued (the next hop is down), with the TLS protocol recorded.
    assert_eq!(gw.queue_len(), 1);
    let q = std::fs::read_dir(gw.root.join("queue/msg"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let stored = std::fs::read_to_string(q.path()).unwrap();
    assert!(stored.contains("with ESMTPS id"));
    c.expect("QUIT", 221);
}

#[test]
fn starttls_with_pipelined_commands_is_refused() {
    let gw = start(free_port(), true, |_| {});
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO client.test", 250);
    c.send(b"STARTTLS\r\nMAIL FROM:<a@b.example>\r\n");
    let (code, text) = c.reply();
    assert_eq!(code, 554, "{text}");
}

#[test]
fn a_down_next_hop_means_retries_then_delivery() {
    let Some(py) = python() else { return };
    let port = free_port();
    let gw = start(port, false, |_| {});
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO client.test", 250);
    let (code, _) = c.mail(
        "alice.smith@partner.example",
        &["bob@care.example"],
        &clean_message(),
    );
    assert_eq!(code, 250);
    // Let a few attempts fail (schedule: every second).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(gw.queue_len(), 1);
    let state = std::fs::read_dir(gw.root.join("queue/state"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.path()).unwrap()).unwrap();
    assert!(state["attempts"].as_u64().unwrap() >= 2, "{state}");
    assert!(
        state["last_error"].as_str().unwrap().contains("connecting"),
        "{state}"
    );
    let t = tempfile::tempdir().unwrap();
    let sink = Sink::start(&py, t.path(), port, &[]);
    let got = sink.wait_for(1, 20);
    assert_eq!(got.len(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.queue_len() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gw.queue_len(), 0);
}

#[test]
fn a_permanent_failure_sends_a_dsn_to_the_sender() {
    let Some(py) = python() else { return };
    let t = tempfile::tempdir().unwrap();
    let sink = Sink::start(&py, t.path(), 0, &["--reject-rcpt", "nosuchuser"]);
    let gw = start(sink.port, false, |_| {});
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO client.test", 250);
    let (code, _) = c.mail(
        "alice.smith@partner.example",
        &["nosuchuser@care.example", "bob@care.example"],
        &clean_message(),
    );
    assert_eq!(code, 250);
    let got = sink.wait_for(2, 20);
    assert_eq!(got.len(), 2, "expected the message and a DSN");
    // aiosmtpd records the null sender as "<>".
    let (dsn, msg): (Vec<_>, Vec<_>) = got.iter().partition(|(_, m)| m["mail_from"] == "<>");
    assert_eq!(
        msg[0].1["rcpt_tos"],
        serde_json::json!(["bob@care.example"])
    );
    let (raw, meta) = dsn[0];
    assert_eq!(
        meta["rcpt_tos"],
        serde_json::json!(["alice.smith@partner.example"])
    );
    let text = String::from_utf8_lossy(raw);
    assert!(text.contains("multipart/report; report-type=delivery-status"));
    assert!(text.contains(
        "Final-Recipient: rfc822; nosuchuser@care.example\r\nAction: failed\r\nStatus: 5.1.1"
    ));
    assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1"));
    assert!(text.contains("Subject: Minutes of Tuesday's meeting"));
    assert!(
        !text.contains("the minutes are below"),
        "the body must not be returned"
    );
    // Neither the message nor the DSN stays queued, and nothing bounces the bounce.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(gw.queue_len(), 0);
    assert_eq!(sink.messages().len(), 2);
}

#[test]
fn size_limit_is_advertised_and_enforced_with_552() {
    let gw = start(free_port(), false, |c| c.limits.max_message_bytes = 10_000);
    let mut c = Client::open(gw.inbound);
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(ehlo.contains("SIZE 10000"));
    let (code, text) = c.cmd("MAIL FROM:<a@partner.example> SIZE=20000");
    assert_eq!((code, &text[..6]), (552, "5.3.4 "));
    c.expect("MAIL FROM:<a@partner.example>", 250);
    c.expect("RCPT TO:<bob@care.example>", 250);
    c.expect("DATA", 354);
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    for _ in 0..400 {
        big.extend_from_slice(&[b'a'; 70]);
        big.extend_from_slice(b"\r\n");
    }
    c.send(&stuff(&big));
    let (code, text) = c.reply();
    assert_eq!(code, 552, "{text}");
    // The data was drained: the session goes on.
    c.expect("NOOP", 250);
    assert_eq!(gw.queue_len(), 0);
}

#[test]
fn too_many_recipients_get_452() {
    let gw = start(free_port(), false, |c| c.limits.max_recipients = 2);
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@partner.example>", 250);
    c.expect("RCPT TO:<a@care.example>", 250);
    c.expect("RCPT TO:<b@care.example>", 250);
    let t = c.expect("RCPT TO:<c@care.example>", 452);
    assert!(t.starts_with("4.5.3"));
    // Not an open relay.
    c.expect("RCPT TO:<x@elsewhere.example>", 550);
}

#[test]
fn hostile_input_gets_defined_5xx_replies_and_others_are_still_served() {
    let gw = start(free_port(), false, |c| c.limits.max_line_bytes = 600);
    // One connection per abuse; each gets its reply.
    let cases: &[(&[u8], u16)] = &[
        (b"EHLO a.example\n", 500),                      // bare LF
        (b"EHLO a\0.example\r\n", 500),                  // NUL
        (b"EHLO a.example\r\rMAIL FROM:<x@y>\r\n", 500), // CR injection
        (b"MAIL FROM:<a@b.example>\r\n", 503),           // before EHLO
        (b"RCPT TO:<a@care.example>\r\n", 503),          // out of order
        (b"EHLO a.example\x1b[2J\r\n", 500),             // control characters
        (b"BDAT 10 LAST\r\n", 502),
        (b"FOO\r\n", 500),
    ];
    for (input, code) in cases {
        let mut c = Client::open(gw.inbound);
        c.send(input);
        let (got, text) = c.reply();
        assert_eq!(
            got,
            *code,
            "{:?} → {got} {text}",
            String::from_utf8_lossy(input)
        );
        c.expect("NOOP", 250);
    }
    // Overlong line: refused, the session goes on.
    let mut c = Client::open(gw.inbound);
    let long = format!("EHLO {}\r\n", "a".repeat(5000));
    c.send(long.as_bytes());
    assert_eq!(c.reply().0, 500);
    c.expect("EHLO ok.example", 250);
    // Message data pipelined before the 354: refused and closed.
    c.expect("MAIL FROM:<a@partner.example>", 250);
    c.expect("RCPT TO:<bob@care.example>", 250);
    c.send(b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n");
    let (code, text) = c.reply();
    assert_eq!(code, 554, "{text}");
    assert_eq!(c.reply().0, 0, "connection should be closed");
    // Bare LF in the message (SMTP smuggling shapes): refused, not queued, closed.
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO ok.example", 250);
    c.expect("MAIL FROM:<a@partner.example>", 250);
    c.expect("RCPT TO:<bob@care.example>", 250);
    c.expect("DATA", 354);
    c.send(b"Subject: x\r\n\r\nhi\n.\nMAIL FROM:<evil@x.example>\r\n.\r\n");
    let (code, text) = c.reply();
    assert_eq!(code, 554, "{text}");
    // NUL in the message.
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO ok.example", 250);
    c.expect("MAIL FROM:<a@partner.example>", 250);
    c.expect("RCPT TO:<bob@care.example>", 250);
    c.expect("DATA", 354);
    c.send(b"Subject: x\r\n\r\nh\0i\r\n.\r\n");
    assert_eq!(c.reply().0, 554);
    assert_eq!(gw.queue_len(), 0);
    // A garbage stream is cut off after repeated errors.
    let mut c = Client::open(gw.inbound);
    c.send(&b"xx\r\n".repeat(20));
    let mut last = 0;
    for _ in 0..20 {
        let (code, _) = c.reply();
        if code == 0 {
            break;
        }
        last = code;
    }
    assert_eq!(last, 421);
    // And a well-behaved client is served throughout.
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO ok.example", 250);
    let (code, _) = c.mail(
        "alice.smith@partner.example",
        &["bob@care.example"],
        &clean_message(),
    );
    assert_eq!(code, 250);
    assert_eq!(gw.queue_len(), 1);
}

#[test]
fn connection_and_rate_limits_answer_4xx() {
    let gw = start(free_port(), false, |c| {
        c.limits.max_connections_per_ip = 2;
        c.limits.max_messages_per_minute = 1;
        c.limits.max_commands_per_minute = 12;
    });
    let a = Client::open(gw.inbound);
    let b = Client::open(gw.inbound);
    let (_c, greeting) = Client::connect(gw.inbound);
    assert!(greeting.starts_with("421 4.7.0"), "{greeting}");
    drop((a, b));
    std::thread::sleep(Duration::from_millis(200));
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO ok.example", 250);
    c.expect("MAIL FROM:<a@partner.example>", 250);
    c.expect("RSET", 250);
    c.expect("MAIL FROM:<a@partner.example>", 450);
    let mut code = 250;
    for _ in 0..10 {
        code = c.cmd("NOOP").0;
        if code != 250 {
            break;
        }
    }
    assert_eq!(code, 421);
}

#[test]
fn idle_clients_are_disconnected() {
    let gw = start(free_port(), false, |c| c.limits.idle_timeout = "1s".into());
    let mut c = Client::open(gw.inbound);
    let t = Instant::now();
    let (code, text) = c.reply();
    assert_eq!(code, 421, "{text}");
    assert!(text.starts_with("4.4.2"));
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn submission_auth_only_over_tls_with_the_right_password_and_throttled() {
    let hash = hash_password(b"correct horse").unwrap();
    let gw = start(free_port(), true, |c| {
        c.submission = Some("127.0.0.1:0".into());
        c.users = vec![SubmissionUser {
            name: "ward4".into(),
            password_hash: hash.clone(),
            send_as: vec!["ward4@care.example".into(), "@rota.care.example".into()],
        }];
        c.limits.max_auth_failures_per_minute = 2;
    });
    let sub = gw.submission.unwrap();
    let plain = |u: &str, p: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("\0{u}\0{p}"))
    };
    // Without TLS: not offered, and refused.
    let mut c = Client::open(sub);
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(!ehlo.contains("AUTH"));
    c.expect(
        &format!("AUTH PLAIN {}", plain("ward4", "correct horse")),
        538,
    );
    c.expect("MAIL FROM:<ward4@care.example>", 530);
    // With TLS and the right password (LOGIN).
    c.starttls(gw.cert_pem.as_deref().unwrap());
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(ehlo.contains("AUTH PLAIN LOGIN"));
    c.expect("MAIL FROM:<ward4@care.example>", 530);
    c.expect("AUTH LOGIN", 334);
    {
        use base64::Engine as _;
        let e = base64::engine::general_purpose::STANDARD;
        c.expect(&e.encode("ward4"), 334);
        c.expect(&e.encode("correct horse"), 235);
    }
    // Authenticated: may send outside the local domains, as its own addresses only.
    c.expect("MAIL FROM:<manager@care.example>", 553);
    c.expect("MAIL FROM:<>", 553);
    let own = common::plain(
        "Ward 4 <ward4@care.example>",
        "Rota for next week",
        "Hello,\r\nThe rota is below.\r\nWard 4",
    );
    // The envelope is right but the From: header names someone else: refused after DATA.
    let spoofed = common::plain(
        "The Manager <manager@care.example>",
        "Rota for next week",
        "Hello,\r\nThe rota is below.\r\nWard 4",
    );
    let (code, text) = c.mail("ward4@care.example", &["gp@surgery.example"], &spoofed);
    assert_eq!(code, 550, "{text}");
    assert!(text.contains("From: header"), "{text}");
    // A whole domain may be allowed; case does not matter.
    let rota = common::plain(
        "Rota <Rota@Rota.Care.Example>",
        "Rota",
        "Hello,\r\nThe rota is below.",
    );
    let (code, text) = c.mail("rota@rota.care.example", &["gp@surgery.example"], &rota);
    assert_eq!(code, 250, "{text}");
    let (code, _) = c.mail("ward4@care.example", &["gp@surgery.example"], &own);
    assert_eq!(code, 250);
    let stored = std::fs::read_dir(gw.root.join("queue/msg"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert!(
        std::fs::read_to_string(stored.path())
            .unwrap()
            .contains("with ESMTPSA id")
    );
    // A wrong password: 535, slowly; then the address is throttled.
    let mut c = Client::open(sub);
    c.expect("EHLO client.test", 250);
    c.starttls(gw.cert_pem.as_deref().unwrap());
    c.expect("EHLO client.test", 250);
    let t = Instant::now();
    c.expect(&format!("AUTH PLAIN {}", plain("ward4", "wrong")), 535);
    assert!(t.elapsed() >= Duration::from_millis(900));
    c.expect(
        &format!("AUTH PLAIN {}", plain("nobody", "correct horse")),
        535,
    );
    let t = c.expect(
        &format!("AUTH PLAIN {}", plain("ward4", "correct horse")),
        454,
    );
    assert!(t.starts_with("4.7.0"));
}

#[test]
fn gateway_config_errors_name_the_key() {
    let base = "[gateway]\ninbound = \"127.0.0.1:25\"\nnext_hop = \"127.0.0.1:2525\"\n\
                local_domains = [\"care.example\"]\nqueue_dir = \"q\"\nquarantine_dir = \"z\"\n";
    assert!(MailConfig::from_toml_str(base).unwrap().gateway.is_some());
    for (extra, key) in [
        (
            "retry_schedule = [\"5 minutes\"]\n",
            "gateway.retry_schedule[0]",
        ),
        ("max_queue_age = \"0s\"\n", "gateway.max_queue_age"),
        ("submission = \"127.0.0.1:587\"\n", "gateway.submission"),
        (
            "[gateway.limits]\nmax_recipients = 0\n",
            "gateway.limits.max_recipients",
        ),
        (
            "[gateway.limits]\nidle_timeout = \"soon\"\n",
            "gateway.limits.idle_timeout",
        ),
        (
            "[[gateway.users]]\nname = \"a\"\npassword_hash = \"plain\"\n",
            "gateway.users[0].password_hash",
        ),
    ] {
        let e = MailConfig::from_toml_str(&format!("{base}{extra}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{extra}: {e}");
    }
    let e = MailConfig::from_toml_str(&base.replace("127.0.0.1:2525", "nowhere"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("gateway.next_hop"), "{e}");
}

#[test]
fn a_message_that_outlives_the_queue_is_bounced_with_4_4_7() {
    let Some(py) = python() else { return };
    let port = free_port();
    let gw = start(port, false, |c| c.max_queue_age = "2s".into());
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO client.test", 250);
    let (code, _) = c.mail(
        "alice.smith@partner.example",
        &["bob@care.example"],
        &clean_message(),
    );
    assert_eq!(code, 250);
    // The original expires; a bounce (null sender) waits in the queue instead.
    let deadline = Instant::now() + Duration::from_secs(15);
    let only_bounce = || {
        let ids: Vec<_> = std::fs::read_dir(gw.root.join("queue/msg"))
            .unwrap()
            .flatten()
            .collect();
        ids.len() == 1
            && std::fs::read_to_string(ids[0].path())
                .unwrap()
                .starts_with("{\"v\":1,")
            && std::fs::read_to_string(ids[0].path())
                .unwrap()
                .contains("\"mail_from\":\"\"")
    };
    while !only_bounce() {
        assert!(
            Instant::now() < deadline,
            "no bounce replaced the expired message"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = tempfile::tempdir().unwrap();
    let sink = Sink::start(&py, t.path(), port, &[]);
    let got = sink.wait_for(1, 20);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].1["rcpt_tos"],
        serde_json::json!(["alice.smith@partner.example"])
    );
    let text = String::from_utf8_lossy(&got[0].0);
    assert!(text.contains("Action: failed\r\nStatus: 4.4.7"), "{text}");
    assert!(text.contains("connecting to the next hop"), "{text}");
}

#[test]
fn smtputf8_addresses_and_8bit_bodies_are_relayed_intact() {
    let Some(py) = python() else { return };
    let t = tempfile::tempdir().unwrap();
    let sink = Sink::start(&py, t.path(), 0, &[]);
    let gw = start(sink.port, false, |_| {});
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<jöran@partner.example>", 553);
    c.expect(
        "MAIL FROM:<jöran@partner.example> SMTPUTF8 BODY=8BITMIME",
        250,
    );
    c.expect("RCPT TO:<bob@care.example>", 250);
    c.expect("DATA", 354);
    let msg = "From: Jöran <jöran@partner.example>\r\nTo: bob@care.example\r\n\
               Subject: Grüße aus Köln\r\nDate: Mon, 06 Jan 2025 09:30:00 +0000\r\n\
               Message-ID: <u8@partner.example>\r\nMIME-Version: 1.0\r\n\
               Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
               Schöne Grüße, bis Dienstag.\r\n";
    c.send(&stuff(msg.as_bytes()));
    let (code, text) = c.reply();
    assert_eq!(code, 250, "{text}");
    let got = sink.wait_for(1, 20);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["mail_from"], "jöran@partner.example");
    assert!(got[0].0.ends_with(msg.as_bytes()));
}

#[test]
fn relaying_over_starttls_verifies_the_next_hop_and_never_falls_back() {
    // The next hop is a second gateway with TLS (its own next hop down, so what it accepts
    // stays in its queue to look at).
    let b = start(free_port(), true, |_| {});
    let b_cert = b.root.join("cert.pem");
    let a = start(b.inbound.port(), false, |c| {
        c.next_hop_starttls = true;
        c.next_hop_ca = Some(b_cert.clone());
        c.next_hop_tls_name = Some("localhost".into());
    });
    let mut c = Client::open(a.inbound);
    c.expect("EHLO client.test", 250);
    let (code, _) = c.mail(
        "alice.smith@partner.example",
        &["bob@care.example"],
        &clean_message(),
    );
    assert_eq!(code, 250);
    let deadline = Instant::now() + Duration::from_secs(15);
    while b.queue_len() == 0 {
        assert!(Instant::now() < deadline, "not relayed to the TLS next hop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let q = std::fs::read_dir(b.root.join("queue/msg"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let stored = std::fs::read_to_string(q.path()).unwrap();
    assert!(
        stored.contains(
            "from mx.care.example ([127.0.0.1])\r\n\tby mx.care.example (Caldicott) with ESMTPS"
        ),
        "{stored}"
    );
    assert_eq!(stored.matches("Received: ").count(), 2);
    // A next hop without STARTTLS gets nothing: the message waits, with the reason.
    let plain = start(free_port(), false, |_| {});
    let a2 = start(plain.inbound.port(), false, |c| {
        c.next_hop_starttls = true;
        c.next_hop_ca = Some(b_cert.clone());
        c.next_hop_tls_name = Some("localhost".into());
    });
    let mut c = Client::open(a2.inbound);
    c.expect("EHLO client.test", 250);
    let (code, _) = c.mail(
        "alice.smith@partner.example",
        &["bob@care.example"],
        &clean_message(),
    );
    assert_eq!(code, 250);
    let deadline = Instant::now() + Duration::from_secs(10);
    let state = loop {
        if let Some(e) = std::fs::read_dir(a2.root.join("queue/state"))
            .unwrap()
            .flatten()
            .next()
        {
            break std::fs::read_to_string(e.path()).unwrap();
        }
        assert!(Instant::now() < deadline, "no attempt recorded");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(state.contains("does not offer STARTTLS"), "{state}");
    assert_eq!(plain.queue_len(), 0);
    assert_eq!(a2.queue_len(), 1);
}

#[test]
fn the_documented_gateway_configuration_is_valid() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/mail.md"))
        .unwrap();
    let at = doc
        .find("### Configuration (`[gateway]`")
        .expect("gateway section");
    let start = at + doc[at..].find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let config = MailConfig::from_toml_str(&doc[start..end]).unwrap();
    let g = config.gateway.unwrap();
    // The documented limits are the defaults.
    assert_eq!(g.limits, GatewayLimits::default());
    assert_eq!(g.retry_schedule, ["1m", "5m", "15m", "1h", "4h"]);
    assert_eq!(g.max_queue_age, "5d");
}

#[test]
fn total_connections_and_the_data_timeout_are_limited() {
    let gw = start(free_port(), false, |c| {
        c.limits.max_connections = 2;
        c.limits.data_timeout = "1s".into();
    });
    let _a = Client::open(gw.inbound);
    let mut b = Client::open(gw.inbound);
    let (_c, greeting) = Client::connect(gw.inbound);
    assert!(
        greeting.starts_with("421 4.7.0 Too many connections,"),
        "{greeting}"
    );
    b.expect("EHLO ok.example", 250);
    b.expect("MAIL FROM:<a@partner.example>", 250);
    b.expect("RCPT TO:<bob@care.example>", 250);
    b.expect("DATA", 354);
    b.send(b"Subject: slow\r\n");
    let (code, text) = b.reply();
    assert_eq!(code, 421, "{text}");
    assert!(text.starts_with("4.4.2"), "{text}");
    assert_eq!(gw.queue_len(), 0);
}
