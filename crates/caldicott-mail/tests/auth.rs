//! Sender authentication end to end over loopback: a DNS server serving test zones
//! (`tests/python/dns_server.py`, dnslib), the gateway with `[dns]` pointing at it, an
//! independent DKIM implementation (`tests/python/dkim_tool.py`, dkimpy) signing what comes
//! in and verifying what we sign, and the `aiosmtpd` next hop (`tests/python/smtp_sink.py`).
//! All need Python through `CALDICOTT_TEST_PYTHON`; without it they print SKIPPED and pass
//! (unless `CALDICOTT_REQUIRE_PYTHON=1`).

mod common;

use common::sink::{Proc, python, script};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caldicott_mail::auth::AuthLayer;
use caldicott_mail::checkdns::{self, CheckOptions, Status};
use caldicott_mail::config::{GatewayConfig, SubmissionUser, TlsFiles};
use caldicott_mail::dkim_sign::{SignConfig, SigningKey};
use caldicott_mail::dns::DnsConfig;
use caldicott_mail::smtp::{FsQuarantine, Gateway, ScannerScreen, hash_password};
use caldicott_mail::{MailConfig, Scanner};

/// Keys made fresh for each run (rcgen on aws-lc-rs): PKCS#8 PEM.
struct Keys {
    /// The external sender's RSA key (signed by dkimpy).
    sender_rsa: String,
    /// Our outbound keys.
    ours_rsa: String,
    ours_ed: String,
}

fn keys() -> Keys {
    let rsa = || {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
            .unwrap()
            .serialize_pem()
    };
    Keys {
        sender_rsa: rsa(),
        ours_rsa: rsa(),
        ours_ed: rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .unwrap()
            .serialize_pem(),
    }
}

fn dkim_record(pem: &str, domain: &str, selector: &str) -> String {
    SigningKey::from_pem(domain, selector, pem.as_bytes(), Path::new("test"))
        .unwrap()
        .dns_record()
}

fn txt(data: &str) -> serde_json::Value {
    serde_json::json!({"type": "TXT", "data": data})
}

/// The test zones: `sender.example` (SPF allows 127.0.0.1, DKIM key, p=reject),
/// `reject.example` and `quar.example` (SPF excludes 127.0.0.1; p=reject / p=quarantine),
/// `care.example` (our outbound keys).
fn zones(k: &Keys) -> serde_json::Value {
    serde_json::json!({
        "sender.example": [txt("v=spf1 ip4:127.0.0.1 -all")],
        "_dmarc.sender.example": [txt("v=DMARC1; p=reject")],
        "s1._domainkey.sender.example": [txt(&dkim_record(&k.sender_rsa, "sender.example", "s1"))],
        "reject.example": [txt("v=spf1 ip4:192.0.2.1 -all")],
        "_dmarc.reject.example": [txt("v=DMARC1; p=reject; rua=mailto:d@reject.example")],
        "quar.example": [txt("v=spf1 ip4:192.0.2.1 -all")],
        "_dmarc.quar.example": [txt("v=DMARC1; p=quarantine")],
        "care.example": [txt("v=spf1 ip4:127.0.0.1 -all")],
        "_dmarc.care.example": [txt("v=DMARC1; p=reject")],
        "cald._domainkey.care.example": [txt(&dkim_record(&k.ours_rsa, "care.example", "cald"))],
        "ced._domainkey.care.example": [txt(&dkim_record(&k.ours_ed, "care.example", "ced"))],
        "arc1._domainkey.fwd.example": [txt(&dkim_record(&k.sender_rsa, "fwd.example", "arc1"))],
        "arc1._domainkey.fwd2.example": [txt(&dkim_record(&k.sender_rsa, "fwd2.example", "arc1"))],
    })
}

struct World {
    python: PathBuf,
    dir: tempfile::TempDir,
    dns: Proc,
    sink: Proc,
    sink_dir: PathBuf,
    keys: Keys,
}

impl World {
    fn new(python: PathBuf) -> World {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys();
        let zones_path = dir.path().join("zones.json");
        std::fs::write(&zones_path, zones(&keys).to_string()).unwrap();
        let dns = Proc::start(
            &python,
            &[script("dns_server.py").as_os_str(), zones_path.as_os_str()],
        );
        let sink_dir = dir.path().join("sink");
        std::fs::create_dir_all(&sink_dir).unwrap();
        let sink = Proc::start(
            &python,
            &[
                script("smtp_sink.py").as_os_str(),
                sink_dir.as_os_str(),
                "--port".as_ref(),
                "0".as_ref(),
            ],
        );
        World {
            python,
            dir,
            dns,
            sink,
            sink_dir,
            keys,
        }
    }

    fn dns_config(&self) -> DnsConfig {
        DnsConfig::new(vec![format!("127.0.0.1:{}", self.dns.port)])
    }

    /// Messages the sink received, waiting up to `secs` for at least `n`.
    fn delivered(&self, n: usize, secs: u64) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let mut names: Vec<PathBuf> = std::fs::read_dir(&self.sink_dir)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect();
            if names.len() >= n || Instant::now() > deadline {
                names.sort();
                return names.iter().map(|p| std::fs::read(p).unwrap()).collect();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Signs `message` with dkimpy.
    fn dkimpy_sign(&self, pem: &str, domain: &str, selector: &str, message: &[u8]) -> Vec<u8> {
        let key = self.dir.path().join(format!("{selector}.pem"));
        std::fs::write(&key, pem).unwrap();
        let mut child = Command::new(&self.python)
            .arg(script("dkim_tool.py"))
            .args([
                "sign".as_ref(),
                key.as_os_str(),
                domain.as_ref(),
                selector.as_ref(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(message).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    /// Adds an ARC set sealed by `domain` with dkimpy (the sender's RSA key, selector arc1).
    fn dkimpy_arc_seal(&self, domain: &str, message: &[u8]) -> Vec<u8> {
        let key = self.dir.path().join("arc.pem");
        std::fs::write(&key, &self.keys.sender_rsa).unwrap();
        let mut child = Command::new(&self.python)
            .arg(script("dkim_tool.py"))
            .args([
                "arc-seal".as_ref(),
                key.as_os_str(),
                domain.as_ref(),
                "arc1".as_ref(),
                domain.as_ref(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(message).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    /// dkimpy's verdict on signature `index` of `message`, keys from the test DNS.
    fn dkimpy_verify(&self, message: &[u8], index: usize) -> String {
        let mut child = Command::new(&self.python)
            .arg(script("dkim_tool.py"))
            .args(["verify", &self.dns.port.to_string(), &index.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(message).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

struct Gw {
    inbound: SocketAddr,
    submission: Option<SocketAddr>,
    root: PathBuf,
    cert_pem: String,
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
    fn quarantined(&self) -> usize {
        std::fs::read_dir(self.root.join("quarantine"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .count()
    }
}

/// A gateway relaying to the sink, with `[dns]` at the test server and `[[auth.sign]]` keys
/// for care.example (RSA selector `cald`, Ed25519 selector `ced`).
fn start(w: &World) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let mut gc: GatewayConfig = toml::from_str(&format!(
        "inbound = \"127.0.0.1:0\"\nsubmission = \"127.0.0.1:0\"\n\
         next_hop = \"127.0.0.1:{}\"\nhostname = \"mx.care.example\"\n\
         local_domains = [\"care.example\"]\nqueue_dir = \"q\"\nquarantine_dir = \"q\"\n\
         retry_schedule = [\"1s\"]\n",
        w.sink.port
    ))
    .unwrap();
    gc.queue_dir = root.join("queue");
    gc.quarantine_dir = root.join("quarantine");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(root.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(root.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    gc.tls = Some(TlsFiles {
        cert: root.join("cert.pem"),
        key: root.join("key.pem"),
    });
    gc.users = vec![SubmissionUser {
        name: "ward4".into(),
        password_hash: hash_password(b"correct horse").unwrap(),
        // A second domain the organisation sends from, with no DKIM key configured.
        send_as: vec!["ward4@care.example".into(), "@other.example".into()],
    }];
    std::fs::write(root.join("rsa.pem"), &w.keys.ours_rsa).unwrap();
    std::fs::write(root.join("ed.pem"), &w.keys.ours_ed).unwrap();
    let mut config = MailConfig {
        dns: Some(w.dns_config()),
        ..MailConfig::default()
    };
    config.auth.trusted_arc_sealers = vec!["fwd.example".into()];
    config.auth.sign = vec![
        SignConfig {
            domain: "care.example".into(),
            selector: "cald".into(),
            key: root.join("rsa.pem"),
        },
        SignConfig {
            domain: "care.example".into(),
            selector: "ced".into(),
            key: root.join("ed.pem"),
        },
    ];
    config.validate().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let scanner = Arc::new(Scanner::new(config.clone(), None).unwrap());
    let quarantine = Arc::new(FsQuarantine::new(&gc.quarantine_dir).unwrap());
    let gw = rt
        .block_on(async {
            let layer = AuthLayer::new(&config, &gc.hostname).unwrap();
            assert!(layer.verifies());
            let gw = Gateway::bind(&gc, Arc::new(ScannerScreen(scanner)), quarantine).await?;
            Ok::<_, caldicott_mail::smtp::GatewayError>(
                gw.wrap_screen(|inner| Arc::new(layer.wrap(inner))),
            )
        })
        .unwrap();
    let inbound = gw.inbound_addr().unwrap();
    let submission = gw.submission_addr().map(|a| a.unwrap());
    rt.spawn(gw.run());
    Gw {
        inbound,
        submission,
        root,
        cert_pem: ck.cert.pem(),
        rt: Some(rt),
        _dir: dir,
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A blocking SMTP client reading replies byte by byte.
struct Client {
    s: Box<dyn Stream>,
    tcp: Option<TcpStream>,
}

impl Client {
    fn open(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut c = Client {
            s: Box::new(tcp.try_clone().unwrap()),
            tcp: Some(tcp),
        };
        assert_eq!(c.reply().0, 220);
        c
    }

    fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut l = Vec::new();
            let mut b = [0u8; 1];
            while self.s.read(&mut b).unwrap_or(0) == 1 {
                l.push(b[0]);
                if b[0] == b'\n' {
                    break;
                }
            }
            if l.len() < 4 {
                return (0, text);
            }
            let l = String::from_utf8_lossy(&l).into_owned();
            text.push_str(&l[4..]);
            if l.as_bytes()[3] != b'-' {
                return (l[..3].parse().unwrap(), text);
            }
        }
    }

    fn expect(&mut self, line: &str, code: u16) -> String {
        self.s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        let (c, t) = self.reply();
        assert_eq!(c, code, "{line} → {c} {t}");
        t
    }

    fn starttls(&mut self, cert_pem: &str) {
        self.expect("STARTTLS", 220);
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut cert_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
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

    fn mail(&mut self, from: &str, to: &str, message: &[u8]) -> (u16, String) {
        self.expect(&format!("MAIL FROM:<{from}>"), 250);
        self.expect(&format!("RCPT TO:<{to}>"), 250);
        self.expect("DATA", 354);
        let mut out = Vec::new();
        let mut start = true;
        for &b in message {
            if start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            start = b == b'\n';
        }
        if !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.s.write_all(&out).unwrap();
        self.reply()
    }
}

fn message(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <{from}>\r\nTo: Bob <bob@care.example>\r\nSubject: {subject}\r\n\
         Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}.1@test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn header_section(m: &[u8]) -> String {
    let s = String::from_utf8_lossy(m);
    s.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

#[test]
fn inbound_spf_dkim_dmarc_through_the_gateway() {
    let Some(py) = python() else { return };
    let w = World::new(py);
    let gw = start(&w);

    // 1. Signed by dkimpy, sent from an address SPF allows: every check passes.
    let signed = w.dkimpy_sign(
        &w.keys.sender_rsa,
        "sender.example",
        "s1",
        &message(
            "alice@sender.example",
            "minutes",
            "The minutes are attached.",
        ),
    );
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO mail.sender.example", 250);
    let (code, text) = c.mail("alice@sender.example", "bob@care.example", &signed);
    assert_eq!(code, 250, "{text}");
    let got = w.delivered(1, 20);
    assert_eq!(got.len(), 1);
    let h = header_section(&got[0]);
    assert!(h.contains("Authentication-Results: mx.care.example"), "{h}");
    assert!(h.contains("dkim=pass"), "{h}");
    assert!(h.contains("spf=pass"), "{h}");
    assert!(h.contains("dmarc=pass"), "{h}");
    for s in ["DKIM_VALID", "SPF_PASS", "DMARC_PASS"] {
        assert!(h.contains(s), "{s} missing: {h}");
    }
    assert!(!h.contains("DKIM_INVALID"), "{h}");

    // 2. The same message with its body changed after signing: DKIM fails (DMARC still
    //    passes on SPF, so it is delivered, marked).
    let tampered = String::from_utf8(signed.clone()).unwrap().replace(
        "The minutes are attached.",
        "Pay the invoice to the new account.",
    );
    let (code, text) = c.mail(
        "alice@sender.example",
        "bob@care.example",
        tampered.as_bytes(),
    );
    assert_eq!(code, 250, "{text}");
    let got = w.delivered(2, 20);
    assert_eq!(got.len(), 2);
    let h = header_section(&got[1]);
    assert!(h.contains("DKIM_INVALID"), "{h}");
    assert!(!h.contains("DKIM_VALID"), "{h}");
    // mail-auth reports a body-hash mismatch as `dkim=neutral (body hash did not verify)`;
    // the gateway scores it as DKIM_INVALID all the same.
    assert!(h.contains("body hash did not verify"), "{h}");
    assert!(!h.contains("dkim=pass"), "{h}");

    // 3. p=reject, SPF fails (127.0.0.1 is not allowed) and no signature: 550 at the end of
    //    DATA, and nothing reaches the next hop.
    let (code, text) = c.mail(
        "ceo@reject.example",
        "bob@care.example",
        &message("ceo@reject.example", "urgent", "Please pay today."),
    );
    assert_eq!(code, 550, "{text}");
    assert!(text.contains("DMARC_POLICY_REJECT"), "{text}");

    // 4. p=quarantine: held, not relayed.
    let (code, text) = c.mail(
        "news@quar.example",
        "bob@care.example",
        &message("news@quar.example", "offer", "An offer."),
    );
    assert_eq!(code, 250, "{text}");
    assert_eq!(gw.quarantined(), 1);
    let q = std::fs::read_dir(gw.root.join("quarantine"))
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
        .unwrap();
    let meta = std::fs::read_to_string(q.path()).unwrap();
    assert!(meta.contains("DMARC_POLICY_QUARANTINE"), "{meta}");
    c.expect("QUIT", 221);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        w.delivered(3, 0).len(),
        2,
        "only the first two were relayed"
    );

    // 5. A forged Authentication-Results claiming our name is removed.
    let forged = [
        b"Authentication-Results: mx.care.example; dkim=pass; dmarc=pass\r\n".as_slice(),
        &signed,
    ]
    .concat();
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO mail.sender.example", 250);
    let (code, _) = c.mail("alice@sender.example", "bob@care.example", &forged);
    assert_eq!(code, 250);
    let got = w.delivered(3, 20);
    let h = header_section(&got[2]);
    assert_eq!(
        h.matches("Authentication-Results: mx.care.example").count(),
        1,
        "{h}"
    );
}

#[test]
fn a_trusted_arc_sealer_overrides_dmarc_reject_and_an_untrusted_one_does_not() {
    let Some(py) = python() else { return };
    let w = World::new(py);
    let gw = start(&w);
    // A forwarder saw the message pass DMARC, sealed it, and relays it from 127.0.0.1,
    // which reject.example's SPF does not allow: DMARC fails here, and p=reject applies
    // unless the sealer is trusted (fwd.example is; fwd2.example is not).
    let forwarded = |sealer: &str| {
        let m = [
            format!(
                "Authentication-Results: {sealer}; dmarc=pass header.from=reject.example; \
                 spf=pass smtp.mailfrom=ceo@reject.example\r\n"
            )
            .as_bytes(),
            &message("ceo@reject.example", "board", "Board papers."),
        ]
        .concat();
        w.dkimpy_arc_seal(sealer, &m)
    };
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO relay.fwd.example", 250);
    let (code, text) = c.mail(
        "list-bounces@reject.example",
        "bob@care.example",
        &forwarded("fwd.example"),
    );
    assert_eq!(code, 250, "{text}");
    let got = w.delivered(1, 20);
    assert_eq!(got.len(), 1);
    let h = header_section(&got[0]);
    assert!(h.contains("DMARC_ARC_OVERRIDE"), "{h}");
    assert!(h.contains("ARC_TRUSTED"), "{h}");
    assert!(h.contains("arc=pass"), "{h}");
    assert!(!h.contains("DMARC_POLICY_REJECT"), "{h}");
    let (code, text) = c.mail(
        "list-bounces@reject.example",
        "bob@care.example",
        &forwarded("fwd2.example"),
    );
    assert_eq!(code, 550, "{text}");
    assert!(text.contains("DMARC_POLICY_REJECT"), "{text}");
}

#[test]
fn submitted_mail_is_signed_and_dkimpy_verifies_it() {
    let Some(py) = python() else { return };
    let w = World::new(py);
    let gw = start(&w);
    let mut c = Client::open(gw.submission.unwrap());
    c.expect("EHLO ward4.care.example", 250);
    c.starttls(&gw.cert_pem);
    c.expect("EHLO ward4.care.example", 250);
    {
        use base64::Engine as _;
        let p = base64::engine::general_purpose::STANDARD.encode("\0ward4\0correct horse");
        c.expect(&format!("AUTH PLAIN {p}"), 235);
    }
    let m = message("ward4@care.example", "referral", "Referral letter follows.");
    let m = String::from_utf8(m)
        .unwrap()
        .replace("To: Bob <bob@care.example>", "To: GP <gp@surgery.example>");
    let (code, text) = c.mail("ward4@care.example", "gp@surgery.example", m.as_bytes());
    assert_eq!(code, 250, "{text}");
    let got = w.delivered(1, 20);
    assert_eq!(got.len(), 1);
    let h = header_section(&got[0]);
    assert_eq!(h.matches("DKIM-Signature:").count(), 2, "{h}");
    assert!(
        h.contains("a=rsa-sha256") && h.contains("a=ed25519-sha256"),
        "{h}"
    );
    assert!(!h.contains("Authentication-Results"), "{h}");
    // dkimpy verifies both signatures against the keys in the test DNS.
    assert_eq!(w.dkimpy_verify(&got[0], 0), "PASS");
    assert_eq!(w.dkimpy_verify(&got[0], 1), "PASS");
    // And a changed body fails with dkimpy too (the check can fail).
    let changed = String::from_utf8_lossy(&got[0]).replace("Referral letter", "Invoice");
    assert!(w.dkimpy_verify(changed.as_bytes(), 0).starts_with("FAIL"));
    // Mail from a domain we have no key for is relayed unsigned.
    let (code, _) = c.mail(
        "ward4@care.example",
        "gp@surgery.example",
        &message("someone@other.example", "x", "y"),
    );
    assert_eq!(code, 250);
    let got = w.delivered(2, 20);
    assert!(!header_section(&got[1]).contains("DKIM-Signature"));
}

#[test]
fn check_dns_reports_each_kind_of_problem() {
    let Some(py) = python() else { return };
    let w = World::new(py);
    // A crafted zone: SPF +all, DMARC p=none without rua, a 512-bit DKIM key, no MTA-STS;
    // and a second domain with SPF over the 10-lookup limit and no DMARC at all.
    let weak = rcgen_rsa_public_spki_512();
    let mut z = zones(&w.keys);
    let obj = z.as_object_mut().unwrap();
    obj.insert(
        "bad.example".into(),
        serde_json::json!([txt("v=spf1 +all")]),
    );
    obj.insert(
        "_dmarc.bad.example".into(),
        serde_json::json!([txt("v=DMARC1; p=none")]),
    );
    obj.insert(
        "old._domainkey.bad.example".into(),
        serde_json::json!([txt(&format!("v=DKIM1; k=rsa; p={weak}"))]),
    );
    let mut inc = Vec::new();
    for i in 0..11 {
        inc.push(format!("include:i{i}.lookups.example"));
        obj.insert(
            format!("i{i}.lookups.example"),
            serde_json::json!([txt("v=spf1 ip4:192.0.2.1 -all")]),
        );
    }
    obj.insert(
        "lookups.example".into(),
        serde_json::json!([txt(&format!("v=spf1 {} -all", inc.join(" ")))]),
    );
    // care.example, done right: SPF allowing the gateway, its MX, MTA-STS and TLS-RPT.
    obj.insert(
        "care.example".into(),
        serde_json::json!([
            txt("v=spf1 a:mx.care.example ip4:127.0.0.1 -all"),
            {"type": "MX", "data": "mx.care.example", "preference": 10}
        ]),
    );
    obj.insert(
        "_mta-sts.care.example".into(),
        serde_json::json!([txt("v=STSv1; id=20261129")]),
    );
    obj.insert(
        "_smtp._tls.care.example".into(),
        serde_json::json!([txt("v=TLSRPTv1; rua=mailto:tls@care.example")]),
    );
    obj.insert(
        "_dmarc.care.example".into(),
        serde_json::json!([txt("v=DMARC1; p=reject; rua=mailto:dmarc@care.example")]),
    );
    std::fs::write(w.dir.path().join("zones.json"), z.to_string()).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dns = w.dns_config();
    let run = |domain: &str, selector: Option<&str>, key: Option<&str>| {
        let opts = CheckOptions {
            domain: domain.into(),
            selector: selector.map(Into::into),
            mx_host: Some("mx.care.example".into()),
            dkim_key_pem: key.map(|k| k.as_bytes().to_vec()),
            rua: None,
        };
        rt.block_on(checkdns::check(&dns, &opts)).unwrap()
    };
    let status = |r: &checkdns::CheckReport, kind: &str| {
        r.findings
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| (f.status, f.why.clone()))
            .collect::<Vec<_>>()
    };

    let bad = run("bad.example", Some("old"), None);
    let spf = status(&bad, "spf");
    assert!(
        spf.iter()
            .any(|(s, why)| *s == Status::Wrong && why.contains("+all")),
        "{spf:?}"
    );
    let dmarc = status(&bad, "dmarc");
    assert!(
        dmarc
            .iter()
            .any(|(s, why)| *s == Status::Wrong && why.contains("p=none")),
        "{dmarc:?}"
    );
    let dkim = status(&bad, "dkim");
    assert!(
        dkim.iter()
            .any(|(s, why)| *s == Status::Wrong && why.contains("512")),
        "{dkim:?}"
    );
    let sts = status(&bad, "mta-sts");
    assert!(sts.iter().any(|(s, _)| *s == Status::Missing), "{sts:?}");

    let many = run("lookups.example", None, None);
    let spf = status(&many, "spf");
    assert!(
        spf.iter()
            .any(|(s, why)| *s == Status::Wrong && why.contains("11 DNS lookups")),
        "{spf:?}"
    );
    assert!(
        status(&many, "dmarc")
            .iter()
            .any(|(s, _)| *s == Status::Missing)
    );

    // Done right: every kind passes; the DKIM key matches the file given.
    let good = run("care.example", Some("cald"), Some(&w.keys.ours_rsa));
    for f in &good.findings {
        assert_eq!(f.status, Status::Ok, "{f:?}");
    }
    // The wrong key for the selector is caught.
    let mismatch = run("care.example", Some("cald"), Some(&w.keys.ours_ed));
    assert!(
        status(&mismatch, "dkim")
            .iter()
            .any(|(s, why)| *s == Status::Wrong && why.contains("does not match")),
        "{:?}",
        mismatch.findings
    );
    // The advice is the exact text to publish.
    let text = checkdns::render_text(&bad);
    assert!(
        text.contains("v=DMARC1; p=quarantine; rua=mailto:"),
        "{text}"
    );
    assert!(text.contains("_mta-sts.bad.example"), "{text}");
}

/// A 512-bit RSA public key (SubjectPublicKeyInfo, base64) — too short for DKIM. Built by
/// hand: the modulus need not be a real product of primes for the length check.
fn rcgen_rsa_public_spki_512() -> String {
    use base64::Engine as _;
    let mut n = vec![0x00, 0xc3];
    n.extend(std::iter::repeat_n(0x5a, 63));
    let mut pk = vec![0x02, n.len() as u8];
    pk.extend_from_slice(&n);
    pk.extend_from_slice(&[0x02, 0x03, 0x01, 0x00, 0x01]);
    let mut rsapk = vec![0x30, pk.len() as u8];
    rsapk.extend_from_slice(&pk);
    let alg = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit = vec![0x03, (rsapk.len() + 1) as u8, 0x00];
    bit.extend_from_slice(&rsapk);
    let mut spki = vec![0x30, (alg.len() + bit.len()) as u8];
    spki.extend_from_slice(&alg);
    spki.extend_from_slice(&bit);
    base64::engine::general_purpose::STANDARD.encode(spki)
}
