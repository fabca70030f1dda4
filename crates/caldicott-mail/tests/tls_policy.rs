//! Partner TLS policies over real parts on loopback: DANE (RFC 7672) and MTA-STS (RFC 8461).
//!
//! Each test runs the gateway in-process with `[dns]` pointing at the dnslib server
//! (`tests/python/dns_server.py`), which serves MX, A, TXT and TLSA records and sets the AD
//! flag for the zones listed as signed (standing in for a local validating resolver); the
//! partners' MX hosts are `aiosmtpd` sinks with STARTTLS (`tests/python/smtp_sink.py`) on
//! `127.0.0.x:25`, and their MTA-STS policies are served over HTTPS by
//! `tests/python/https_server.py` on `127.0.0.x:443` (the tests run as root; each test has
//! its own addresses). Certificates are made here with rcgen; a test CA stands for the WebPKI
//! roots (`gateway.mta_sts_ca`). Mail is put straight into the queue, as a quarantine
//! release does, and the delivery worker takes it from there.
//!
//! Needs `CALDICOTT_TEST_PYTHON` (prints SKIPPED and passes without it, unless
//! `CALDICOTT_REQUIRE_PYTHON=1`).

mod common;

use common::sink::{Proc, Sink, python, script};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caldicott_mail::config::GatewayConfig;
use caldicott_mail::dane;
use caldicott_mail::dns::DnsConfig;
use caldicott_mail::queue::{self, DeliveryState, Queue, QueuedEnvelope};
use caldicott_mail::smtp::{FsQuarantine, Gateway, ScannerScreen};
use caldicott_mail::{MailConfig, Scanner};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData};
use serde_json::json;

/// The test CA standing for the WebPKI roots.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
    pem: String,
}

fn ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "Caldicott Test Roots");
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        der: cert.der().to_vec(),
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A certificate and key (PEM files written to `dir/<stem>.{crt,key}`), and the leaf's DER.
struct Leaf {
    cert: PathBuf,
    key: PathBuf,
    der: Vec<u8>,
    spki: Vec<u8>,
}

/// A leaf for `names`, issued by `ca` (the chain file holds the CA too) or self-signed;
/// `expired` puts its validity in the past.
fn leaf(dir: &Path, stem: &str, names: &[&str], ca: Option<&Ca>, expired: bool) -> Leaf {
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2015, 1, 1);
        params.not_after = rcgen::date_time_ymd(2016, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let (cert, chain) = match ca {
        Some(ca) => {
            let c = params.signed_by(&key, &ca.issuer).unwrap();
            let chain = format!("{}{}", c.pem(), ca.pem);
            (c, chain)
        }
        None => {
            let c = params.self_signed(&key).unwrap();
            let pem = c.pem();
            (c, pem)
        }
    };
    let (cp, kp) = (
        dir.join(format!("{stem}.crt")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&cp, chain).unwrap();
    std::fs::write(&kp, key.serialize_pem()).unwrap();
    Leaf {
        cert: cp,
        key: kp,
        der: cert.der().to_vec(),
        spki: key.subject_public_key_info(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `3 1 1 <sha256 of the SPKI>` for `leaf`.
fn tlsa_ee(leaf: &Leaf) -> String {
    let d = dane::association(1, 1, &leaf.der).unwrap();
    // Independently: the SHA-256 of the key rcgen generated (selector 0 hashes its input).
    assert_eq!(d, dane::association(0, 1, &leaf.spki).unwrap());
    format!("3 1 1 {}", hex(&d))
}

/// The world of one test: a temporary directory, the DNS server and the helpers started.
struct World {
    py: PathBuf,
    dir: tempfile::TempDir,
    ca: Ca,
    zones: serde_json::Map<String, serde_json::Value>,
    signed: Vec<String>,
    helpers: Vec<Proc>,
}

impl World {
    fn new(py: PathBuf) -> World {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        std::fs::write(dir.path().join("roots.pem"), &ca.pem).unwrap();
        World {
            py,
            dir,
            ca,
            zones: serde_json::Map::new(),
            signed: Vec::new(),
            helpers: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn add(&mut self, name: &str, rtype: &str, data: &str) {
        let list = self
            .zones
            .entry(name.to_string())
            .or_insert_with(|| json!([]));
        list.as_array_mut()
            .unwrap()
            .push(json!({"type": rtype, "data": data}));
    }

    /// MX `mx` → `ip` for `domain`.
    fn mx(&mut self, domain: &str, mx: &str, ip: &str) {
        self.add(domain, "MX", mx);
        self.add(mx, "A", ip);
    }

    /// An MTA-STS policy for `domain`, served at `ip:443` (`policy` `None`: no file, 404;
    /// `redirect`: a 301 instead).
    fn sts(&mut self, domain: &str, ip: &str, policy: Option<&str>, redirect: bool) {
        self.add(
            &format!("_mta-sts.{domain}"),
            "TXT",
            "v=STSv1; id=20261129T1",
        );
        let host = format!("mta-sts.{domain}");
        self.add(&host, "A", ip);
        let root = self.path().join(format!("www-{domain}"));
        std::fs::create_dir_all(root.join(".well-known")).unwrap();
        let file = root.join(".well-known/mta-sts.txt");
        if let Some(p) = policy {
            std::fs::write(&file, p).unwrap();
        }
        if redirect {
            std::fs::write(
                root.join(".well-known/mta-sts.txt.redirect"),
                format!("https://{host}/elsewhere.txt"),
            )
            .unwrap();
        }
        let l = leaf(self.path(), &host, &[&host], Some(&self.ca), false);
        let p = Proc::start(
            &self.py,
            &[
                script("https_server.py").as_os_str(),
                root.as_os_str(),
                "--host".as_ref(),
                ip.as_ref(),
                "--port".as_ref(),
                "443".as_ref(),
                "--cert".as_ref(),
                l.cert.as_os_str(),
                "--key".as_ref(),
                l.key.as_os_str(),
            ],
        );
        self.helpers.push(p);
    }

    /// An aiosmtpd MX host at `ip:25`, with STARTTLS when `tls` is given.
    fn sink(&self, ip: &str, tls: Option<&Leaf>) -> Sink {
        let dir = self.path().join(format!("sink-{ip}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut extra: Vec<&str> = vec!["--host", ip];
        let (c, k);
        if let Some(l) = tls {
            c = l.cert.to_string_lossy().into_owned();
            k = l.key.to_string_lossy().into_owned();
            extra.extend(["--tls-cert", &c, "--tls-key", &k]);
        }
        Sink::start(&self.py, &dir, 25, &extra)
    }

    /// Starts the DNS server with the zones so far and the gateway with `partners`
    /// (`(domain, tls)`), and queues one message to `rcpt@<domain>` for each partner.
    fn gateway(&mut self, partners: &[(&str, &str)]) -> Gw {
        let mut zones = serde_json::Value::Object(self.zones.clone());
        zones["$signed"] = json!(self.signed);
        let zpath = self.path().join("zones.json");
        std::fs::write(&zpath, zones.to_string()).unwrap();
        let dns = Proc::start(
            &self.py,
            &[script("dns_server.py").as_os_str(), zpath.as_os_str()],
        );
        let root = self.path().to_owned();
        let mut toml_text = format!(
            "inbound = \"127.0.0.1:0\"\nnext_hop = \"127.0.0.1:9\"\n\
             hostname = \"mx.care.example\"\nlocal_domains = [\"care.example\"]\n\
             queue_dir = \"q\"\nquarantine_dir = \"q\"\nretry_schedule = [\"1s\"]\n\
             mta_sts_ca = {:?}\n",
            root.join("roots.pem").to_string_lossy()
        );
        for (d, t) in partners {
            toml_text.push_str(&format!("[[partners]]\ndomain = \"{d}\"\ntls = \"{t}\"\n"));
        }
        let mut config: GatewayConfig = toml::from_str(&toml_text).unwrap();
        config.queue_dir = root.join("queue");
        config.quarantine_dir = root.join("quarantine");
        let q = Queue::open(&config.queue_dir).unwrap();
        let mut ids = Vec::new();
        for (d, _) in partners {
            let id = queue::new_id();
            let env = QueuedEnvelope {
                v: 1,
                id: id.clone(),
                mail_from: "ward4@care.example".into(),
                rcpt_to: vec![format!("manager@{d}")],
                received_at: time::OffsetDateTime::now_utc().unix_timestamp(),
                smtputf8: false,
                body_8bit: false,
            };
            let msg = format!(
                "From: ward4@care.example\r\nTo: manager@{d}\r\nSubject: handover\r\n\
                 Message-ID: <{id}@care.example>\r\n\r\nSee you at three.\r\n"
            );
            q.enqueue(&env, msg.as_bytes()).unwrap();
            ids.push(((*d).to_string(), id));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let scanner = Arc::new(Scanner::new(MailConfig::default(), None).unwrap());
        let quarantine = Arc::new(FsQuarantine::new(&config.quarantine_dir).unwrap());
        let dns_config = DnsConfig::new(vec![format!("127.0.0.1:{}", dns.port)]);
        let gw = rt
            .block_on(async {
                Gateway::bind(&config, Arc::new(ScannerScreen(scanner)), quarantine)
                    .await?
                    .with_dns(Some(&dns_config))
            })
            .unwrap();
        rt.spawn(gw.run());
        Gw {
            rt: Some(rt),
            queue: q,
            ids,
            _dns: dns,
        }
    }
}

struct Gw {
    rt: Option<tokio::runtime::Runtime>,
    queue: Queue,
    ids: Vec<(String, String)>,
    _dns: Proc,
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Gw {
    fn id(&self, domain: &str) -> &str {
        &self.ids.iter().find(|(d, _)| d == domain).unwrap().1
    }

    /// The delivery state of the message to `domain` (`None` once it left the queue).
    fn state(&self, domain: &str) -> Option<DeliveryState> {
        let (env, _) = self.queue.load(self.id(domain)).ok()?;
        Some(self.queue.state(&env))
    }

    /// Waits until the message to `domain` has been tried at least `n` times and is still
    /// queued; returns its last error.
    fn retried(&self, domain: &str, n: u32) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self
                .state(domain)
                .unwrap_or_else(|| panic!("the message to {domain} left the queue"));
            if s.attempts >= n {
                assert_eq!(s.pending, [format!("manager@{domain}")]);
                return s.last_error.unwrap_or_default();
            }
            assert!(
                Instant::now() < deadline,
                "{domain}: only {} attempts",
                s.attempts
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn gone(&self, domain: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.state(domain).is_none() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

/// One delivered message to `domain`, over TLS.
fn assert_delivered(gw: &Gw, sink: &Sink, domain: &str) {
    let got = sink.wait_for(1, 30);
    assert_eq!(
        got.len(),
        1,
        "nothing delivered to {domain}: {:?}",
        gw.state(domain)
    );
    let (raw, meta) = &got[0];
    assert_eq!(meta["rcpt_tos"], json!([format!("manager@{domain}")]));
    assert_eq!(
        meta["tls"],
        json!(true),
        "{domain} was not reached over TLS"
    );
    assert!(String::from_utf8_lossy(raw).contains("See you at three."));
}

fn assert_has(error: &str, parts: &[&str]) {
    for p in parts {
        assert!(error.contains(p), "{p:?} missing from: {error}");
    }
    assert!(error.starts_with("4."), "not a temporary failure: {error}");
    assert!(
        !error.contains("See you at three"),
        "message content in the error: {error}"
    );
}

const ENFORCE: &str = "version: STSv1\nmode: enforce\nmx: *.{d}\nmax_age: 86400\n";

fn enforce(domain: &str) -> String {
    ENFORCE.replace("{d}", domain)
}

#[test]
fn dane_ee_and_dane_ta_matches_deliver() {
    let Some(py) = python() else { return };
    let mut w = World::new(py);
    // DANE-EE: a self-signed certificate for another name, long expired: RFC 7672 §3.1.1
    // says neither matters, only the published key.
    let ee = leaf(w.path(), "ee", &["unrelated.example"], None, true);
    w.mx("dane-ee.test", "mx.dane-ee.test", "127.0.0.31");
    w.add("_25._tcp.mx.dane-ee.test", "TLSA", &tlsa_ee(&ee));
    // DANE-TA: the CA's certificate published (2 0 1), the leaf valid for the MX name.
    let ta = leaf(w.path(), "ta", &["mx.dane-ta.test"], Some(&w.ca), false);
    w.mx("dane-ta.test", "mx.dane-ta.test", "127.0.0.32");
    let ca_hash = dane::association(0, 1, &w.ca.der).unwrap();
    w.add(
        "_25._tcp.mx.dane-ta.test",
        "TLSA",
        &format!("2 0 1 {}", hex(&ca_hash)),
    );
    w.signed = vec!["dane-ee.test".into(), "dane-ta.test".into()];
    let s1 = w.sink("127.0.0.31", Some(&ee));
    let s2 = w.sink("127.0.0.32", Some(&ta));
    let gw = w.gateway(&[("dane-ee.test", "dane"), ("dane-ta.test", "dane")]);
    assert_delivered(&gw, &s1, "dane-ee.test");
    assert_delivered(&gw, &s2, "dane-ta.test");
    assert!(gw.gone("dane-ee.test") && gw.gone("dane-ta.test"));
}

#[test]
fn a_tlsa_mismatch_is_retried_and_never_falls_back() {
    let Some(py) = python() else { return };
    let mut w = World::new(py);
    // The MX host's certificate would pass MTA-STS, but its signed TLSA record names another
    // key: DANE applies and fails, and the policy's MTA-STS half must not rescue it.
    let good = leaf(w.path(), "mx", &["mx.dane-bad.test"], Some(&w.ca), false);
    let other = leaf(w.path(), "other", &["mx.dane-bad.test"], None, false);
    w.mx("dane-bad.test", "mx.dane-bad.test", "127.0.0.33");
    w.add("_25._tcp.mx.dane-bad.test", "TLSA", &tlsa_ee(&other));
    w.sts(
        "dane-bad.test",
        "127.0.0.34",
        Some(&enforce("dane-bad.test")),
        false,
    );
    w.signed = vec!["dane-bad.test".into()];
    let sink = w.sink("127.0.0.33", Some(&good));
    let gw = w.gateway(&[("dane-bad.test", "dane-or-mta-sts")]);
    let e = gw.retried("dane-bad.test", 2);
    assert_has(
        &e,
        &[
            "dane-bad.test",
            "mx.dane-bad.test",
            "DANE",
            "no record matches",
        ],
    );
    assert!(sink.messages().is_empty(), "delivered despite the mismatch");
}

#[test]
fn tlsa_without_the_ad_flag_is_not_used() {
    let Some(py) = python() else { return };
    let mut w = World::new(py);
    // Unsigned zone with a TLSA record that would not match: not used, MTA-STS decides.
    let mx = leaf(w.path(), "mx", &["mx.unsigned.test"], Some(&w.ca), false);
    let other = leaf(w.path(), "other", &["x"], None, false);
    w.mx("unsigned.test", "mx.unsigned.test", "127.0.0.35");
    w.add("_25._tcp.mx.unsigned.test", "TLSA", &tlsa_ee(&other));
    w.sts(
        "unsigned.test",
        "127.0.0.36",
        Some(&enforce("unsigned.test")),
        false,
    );
    // Unsigned zone with a matching TLSA record, DANE only: still not used.
    let only = leaf(w.path(), "only", &["mx.dane-only.test"], None, false);
    w.mx("dane-only.test", "mx.dane-only.test", "127.0.0.37");
    w.add("_25._tcp.mx.dane-only.test", "TLSA", &tlsa_ee(&only));
    let s1 = w.sink("127.0.0.35", Some(&mx));
    let s2 = w.sink("127.0.0.37", Some(&only));
    let gw = w.gateway(&[
        ("unsigned.test", "dane-or-mta-sts"),
        ("dane-only.test", "dane"),
    ]);
    assert_delivered(&gw, &s1, "unsigned.test");
    let e = gw.retried("dane-only.test", 2);
    assert_has(
        &e,
        &[
            "dane-only.test",
            "mx.dane-only.test",
            "DANE",
            "not DNSSEC-authenticated",
        ],
    );
    assert!(s2.messages().is_empty());
}

#[test]
fn mta_sts_enforce_delivers_to_a_listed_mx_with_a_valid_certificate() {
    let Some(py) = python() else { return };
    let mut w = World::new(py);
    let mx = leaf(w.path(), "mx", &["mx1.sts-ok.test"], Some(&w.ca), false);
    w.mx("sts-ok.test", "mx1.sts-ok.test", "127.0.0.41");
    w.sts(
        "sts-ok.test",
        "127.0.0.42",
        Some(&enforce("sts-ok.test")),
        false,
    );
    let sink = w.sink("127.0.0.41", Some(&mx));
    let gw = w.gateway(&[("sts-ok.test", "mta-sts")]);
    assert_delivered(&gw, &sink, "sts-ok.test");
    assert!(gw.gone("sts-ok.test"));
}

#[test]
fn mta_sts_enforce_refuses_unlisted_mx_and_bad_certificates() {
    let Some(py) = python() else { return };
    let mut w = World::new(py);
    // The MX is not among the policy's patterns.
    let mx = leaf(w.path(), "mx", &["mx.sts-mx.test"], Some(&w.ca), false);
    w.mx("sts-mx.test", "mx.sts-mx.test", "127.0.0.43");
    w.sts(
        "sts-mx.test",
        "127.0.0.44",
        Some("version: STSv1\nmode: enforce\nmx: mail.elsewhere.test\nmax_age: 600\n"),
        false,
    );
    // The MX is listed but its certificate is not valid under the roots.
    let selfsigned = leaf(w.path(), "ss", &["mx.sts-cert.test"], None, false);
    w.mx("sts-cert.test", "mx.sts-cert.test", "127.0.0.45");
    w.sts(
        "sts-cert.test",
        "127.0.0.46",
        Some(&enforce("sts-cert.test")),
        false,
    );
    let s1 = w.sink("127.0.0.43", Some(&mx));
    let s2 = w.sink("127.0.0.45", Some(&selfsigned));
    let gw = w.gateway(&[("sts-mx.test", "mta-sts"), ("sts-cert.test", "mta-sts")]);
    let e = gw.retried("sts-mx.test", 2);
    assert_has(
        &e,
        &[
            "sts-mx.test",
            "mx.sts-mx.test",
            "MTA-STS enforce",
            "not among the MTA-STS policy's mx patterns",
        ],
    );
    let e = gw.retried("sts-cert.test", 2);
    assert_has(
        &e,
        &[
            "sts-cert.test",
            "mx.sts-cert.test",
            "MTA-STS enforce",
            "certificate",
        ],
    );
    assert!(s1.messages().is_empty() && s2.messages().is_empty());
}

#[test]
fn bad_policies_and_http_errors_are_temporary_failures() {
    let Some(py) = python() else { return };
    let mut w = World::new(py);
    let names = ["mx.sts-bad.test", "mx.sts-404.test", "mx.sts-301.test"];
    let mx = leaf(w.path(), "mx", &names, Some(&w.ca), false);
    for (d, ip) in [
        ("sts-bad.test", "127.0.0.51"),
        ("sts-404.test", "127.0.0.52"),
        ("sts-301.test", "127.0.0.53"),
    ] {
        w.mx(d, &format!("mx.{d}"), "127.0.0.54");
        let policy = match d {
            "sts-bad.test" => {
                Some("version: STSv1\nmode: strict\nmx: *.sts-bad.test\nmax_age: 1\n".to_string())
            }
            "sts-301.test" => Some(enforce(d)),
            _ => None,
        };
        w.sts(d, ip, policy.as_deref(), d == "sts-301.test");
    }
    let sink = w.sink("127.0.0.54", Some(&mx));
    let gw = w.gateway(&[
        ("sts-bad.test", "mta-sts"),
        ("sts-404.test", "mta-sts"),
        ("sts-301.test", "mta-sts"),
    ]);
    assert_has(
        &gw.retried("sts-bad.test", 2),
        &[
            "sts-bad.test",
            "mx.sts-bad.test",
            "MTA-STS",
            "malformed",
            "mode",
        ],
    );
    assert_has(
        &gw.retried("sts-404.test", 2),
        &["sts-404.test", "mx.sts-404.test", "MTA-STS", "HTTP 404"],
    );
    assert_has(
        &gw.retried("sts-301.test", 2),
        &["sts-301.test", "MTA-STS", "redirects are refused"],
    );
    assert!(sink.messages().is_empty());
}

#[test]
fn mta_sts_testing_mode_delivers_despite_failures() {
    let Some(py) = python() else { return };
    let mut w = World::new(py);
    // Neither listed nor valid under the roots: testing mode logs and delivers, over TLS.
    let ss = leaf(w.path(), "ss", &["mx.sts-testing.test"], None, false);
    w.mx("sts-testing.test", "mx.sts-testing.test", "127.0.0.55");
    w.sts(
        "sts-testing.test",
        "127.0.0.56",
        Some("version: STSv1\nmode: testing\nmx: other.example\nmax_age: 600\n"),
        false,
    );
    let sink = w.sink("127.0.0.55", Some(&ss));
    let gw = w.gateway(&[("sts-testing.test", "mta-sts")]);
    assert_delivered(&gw, &sink, "sts-testing.test");
    assert!(gw.gone("sts-testing.test"));
}

#[test]
fn a_partner_with_a_policy_never_gets_plain_text() {
    let Some(py) = python() else { return };
    let mut w = World::new(py);
    // Both MX hosts speak plain SMTP only; MTA-STS (valid policy) and DANE (signed, with a
    // TLSA record) each demand STARTTLS.
    let any = leaf(w.path(), "any", &["mx.dane-plain.test"], None, false);
    w.mx("sts-plain.test", "mx.sts-plain.test", "127.0.0.57");
    w.sts(
        "sts-plain.test",
        "127.0.0.58",
        Some(&enforce("sts-plain.test")),
        false,
    );
    w.mx("dane-plain.test", "mx.dane-plain.test", "127.0.0.59");
    w.add("_25._tcp.mx.dane-plain.test", "TLSA", &tlsa_ee(&any));
    w.signed = vec!["dane-plain.test".into()];
    let s1 = w.sink("127.0.0.57", None);
    let s2 = w.sink("127.0.0.59", None);
    let gw = w.gateway(&[("sts-plain.test", "mta-sts"), ("dane-plain.test", "dane")]);
    assert_has(
        &gw.retried("sts-plain.test", 2),
        &[
            "sts-plain.test",
            "mx.sts-plain.test",
            "MTA-STS enforce",
            "STARTTLS",
        ],
    );
    assert_has(
        &gw.retried("dane-plain.test", 2),
        &["dane-plain.test", "mx.dane-plain.test", "DANE", "STARTTLS"],
    );
    assert!(s1.messages().is_empty() && s2.messages().is_empty());
}
