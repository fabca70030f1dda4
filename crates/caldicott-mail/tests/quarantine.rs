//! The vault quarantine and outbound protection over real SMTP on loopback: the gateway runs
//! in-process with a [`VaultQuarantine`] on a SQLite vault; the next hop is the Python
//! `aiosmtpd` sink (`tests/python/smtp_sink.py`, via `CALDICOTT_TEST_PYTHON`; tests that need
//! it print SKIPPED and pass without it, unless `CALDICOTT_REQUIRE_PYTHON=1`).

mod common;

use common::sink::{Sink, python};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caldicott_mail::config::{GatewayConfig, PartnerDomain, SubmissionUser, TlsFiles};
use caldicott_mail::outbound::OUTBOUND_PID_INSECURE;
use caldicott_mail::quarantine::{self, Direction, Entry, VaultQuarantine};
use caldicott_mail::smtp::{Gateway, ScannerScreen, hash_password};
use caldicott_mail::{Envelope, MailConfig, Report, Scanner, Verdict};
use caldicott_vault::{Backend as _, LocalKek, SqliteBackend, Vault};

fn vault(path: &Path) -> Arc<Vault> {
    let backend = SqliteBackend::open(path, true).unwrap();
    backend.migrate().unwrap();
    let kek = Arc::new(LocalKek::generate().unwrap().0);
    Arc::new(Vault::open(Box::new(backend), kek).unwrap())
}

struct Gw {
    inbound: SocketAddr,
    submission: Option<SocketAddr>,
    root: PathBuf,
    cert_pem: String,
    q: VaultQuarantine,
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

const USER: &str = "ward4";
const PASSWORD: &str = "correct horse";

/// A gateway with TLS, a submission port for `ward4`, `secure_domains = ["nhs.net"]` and
/// the quarantine in a fresh vault.
fn start(next_hop_port: u16, change: impl FnOnce(&mut GatewayConfig, &Path)) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let mut config: GatewayConfig = toml::from_str(&format!(
        "inbound = \"127.0.0.1:0\"\nsubmission = \"127.0.0.1:0\"\n\
         next_hop = \"127.0.0.1:{next_hop_port}\"\nhostname = \"mx.care.example\"\n\
         local_domains = [\"care.example\"]\nsecure_domains = [\"nhs.net\"]\n\
         queue_dir = \"q\"\ndata = \"d\"\nretry_schedule = [\"1s\"]\n"
    ))
    .unwrap();
    config.queue_dir = root.join("queue");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = ck.cert.pem();
    std::fs::write(root.join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(root.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    config.tls = Some(TlsFiles {
        cert: root.join("cert.pem"),
        key: root.join("key.pem"),
    });
    config.users = vec![SubmissionUser {
        name: USER.into(),
        password_hash: hash_password(PASSWORD.as_bytes()).unwrap(),
        send_as: vec!["ward4@care.example".into()],
    }];
    change(&mut config, &root);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let q = VaultQuarantine::new(vault(&root.join("vault.db")));
    let scanner = Arc::new(Scanner::new(MailConfig::default(), None).unwrap());
    let gw = rt
        .block_on(Gateway::bind(
            &config,
            Arc::new(ScannerScreen(scanner)),
            Arc::new(q.clone()),
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
        q,
        rt: Some(rt),
        _dir: dir,
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A blocking SMTP client.
struct Client {
    s: Box<dyn Stream>,
    tcp: Option<TcpStream>,
}

impl Client {
    fn open(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = Client {
            s: Box::new(tcp.try_clone().unwrap()),
            tcp: Some(tcp),
        };
        let (code, text) = c.reply();
        assert_eq!(code, 220, "{text}");
        c
    }

    fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while self.s.read(&mut b).unwrap_or(0) == 1 {
                line.push(b[0]);
                if b[0] == b'\n' {
                    break;
                }
            }
            let l = String::from_utf8_lossy(&line).into_owned();
            if l.len() < 4 {
                return (0, text);
            }
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

    /// STARTTLS (trusting `cert_pem`), EHLO and AUTH PLAIN as ward4.
    fn login(&mut self, cert_pem: &str) {
        self.expect("EHLO client.test", 250);
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
        self.expect("EHLO client.test", 250);
        use base64::Engine as _;
        let creds =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
        self.expect(&format!("AUTH PLAIN {creds}"), 235);
    }

    fn mail(&mut self, from: &str, to: &[&str], message: &[u8]) -> (u16, String) {
        self.expect(&format!("MAIL FROM:<{from}>"), 250);
        for t in to {
            self.expect(&format!("RCPT TO:<{t}>"), 250);
        }
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
        out.extend_from_slice(b".\r\n");
        self.s.write_all(&out).unwrap();
        self.reply()
    }
}

const MARKER: &str = "QUARANTINE-MARKER-7f3a9c1e";

fn phishing_message() -> Vec<u8> {
    let m = format!(
        "From: \"NHS Payroll\" <payroll@nhs-net.co>\r\nTo: bob@care.example\r\n\
         Subject: Verify your account\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
         Message-ID: <1@nhs-net.co>\r\n\r\nClick here to verify within 24 hours. {MARKER}\r\n"
    )
    .into_bytes();
    assert_eq!(common::scan(&m).verdict, Verdict::Quarantine);
    m
}

/// A referral letter with a valid NHS number (943 476 5919) and a name with a date of birth.
fn referral() -> Vec<u8> {
    common::plain(
        "Ward 4 <ward4@care.example>",
        "Referral",
        "Dear colleague,\r\nPlease see Mrs Edith Jones, DOB: 03/04/1931, NHS number 943 476 5919.\r\nWard 4",
    )
}

/// Every byte of the vault's SQLite files (database, WAL, shared memory).
fn db_bytes(root: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for f in [
        "vault.db",
        "vault.db-wal",
        "vault.db-shm",
        "vault.db-journal",
    ] {
        if let Ok(b) = std::fs::read(root.join(f)) {
            all.extend(b);
        }
    }
    assert!(!all.is_empty());
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn wait_held(q: &VaultQuarantine, n: usize) -> Vec<Entry> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let l = q.list().unwrap();
        if l.len() >= n || Instant::now() > deadline {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn inbound_phishing_is_sealed_in_the_vault_and_a_release_is_delivered() {
    let Some(py) = python() else { return };
    let sink_dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&py, sink_dir.path(), 0, &[]);
    let gw = start(sink.port, |_, _| {});
    let mut c = Client::open(gw.inbound);
    c.expect("EHLO client.test", 250);
    let (code, text) = c.mail(
        "payroll@nhs-net.co",
        &["bob@care.example"],
        &phishing_message(),
    );
    assert_eq!(code, 250, "{text}");
    let held = wait_held(&gw.q, 1);
    assert_eq!(held.len(), 1);
    let e = &held[0];
    assert_eq!(e.direction, Direction::Inbound);
    assert_eq!(e.verdict, Verdict::Quarantine);
    assert_eq!(e.rcpt_to, ["bob@care.example"]);
    assert_eq!(e.mail_from, "payroll@nhs-net.co");
    assert_eq!(e.subject.as_deref(), Some("Verify your account"));
    let s = e
        .symbols
        .iter()
        .find(|s| s.name == "FROM_LOOKALIKE_PROTECTED")
        .expect("the reason is kept");
    assert!(!s.reason.is_empty());
    assert!(text.contains(&e.id), "the 250 names the id: {text}");
    // The message is readable through the vault and nowhere in the database files.
    let m = gw.q.message(&e.id).unwrap();
    assert_eq!(m.len(), e.size);
    assert!(contains(&m, MARKER.as_bytes()));
    assert!(contains(&m, b"X-Caldicott-Verdict: quarantine"));
    let db = db_bytes(&gw.root);
    assert!(
        !contains(&db, MARKER.as_bytes()),
        "the message is in the clear in the vault"
    );
    assert!(
        !contains(&db, b"Verify your account"),
        "the entry is in the clear"
    );
    assert!(
        sink.wait_for(1, 2).is_empty(),
        "a held message reached the sink"
    );

    // Released into the queue, the running gateway finds and delivers it, without the
    // gateway's verdict fields.
    quarantine::requeue(&gw.root.join("queue"), e, &m).unwrap();
    gw.q.delete(&e.id).unwrap();
    let got = sink.wait_for(1, 20);
    assert_eq!(got.len(), 1, "the released message was not delivered");
    assert!(contains(&got[0].0, MARKER.as_bytes()));
    assert!(!contains(&got[0].0, b"X-Caldicott-Verdict"));
    assert_eq!(got[0].1["rcpt_tos"][0], "bob@care.example");
    assert!(gw.q.list().unwrap().is_empty());
    assert!(gw.q.orphans().unwrap().is_empty());
    assert!(matches!(
        gw.q.entry(&e.id),
        Err(quarantine::QuarantineError::NotFound(_))
    ));
}

#[test]
fn outbound_patient_data_is_held_for_an_insecure_domain_and_relayed_to_a_secure_one() {
    let Some(py) = python() else { return };
    let sink_dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&py, sink_dir.path(), 0, &[]);
    let gw = start(sink.port, |_, _| {});
    let mut c = Client::open(gw.submission.unwrap());
    c.login(&gw.cert_pem);
    // To gmail.com (and a secure domain in the same message): held whole, 250 all the same.
    let (code, text) = c.mail(
        "ward4@care.example",
        &["someone@gmail.com", "gp@nhs.net"],
        &referral(),
    );
    assert_eq!(code, 250, "{text}");
    let held = wait_held(&gw.q, 1);
    assert_eq!(held.len(), 1);
    let e = &held[0];
    assert_eq!(e.direction, Direction::Outbound);
    let s = e
        .symbols
        .iter()
        .find(|s| s.name == OUTBOUND_PID_INSECURE)
        .expect("held for patient data");
    assert!(s.reason.contains("1 NHS number"), "{}", s.reason);
    assert!(s.reason.contains("name with date of birth"), "{}", s.reason);
    assert!(s.reason.contains("gmail.com") && !s.reason.contains("nhs.net"));
    assert!(!s.reason.contains("943"), "a value found is in the reason");
    // The same letter to a secure domain only, and a letter without patient data to
    // gmail.com, are relayed.
    let (code, _) = c.mail("ward4@care.example", &["gp@nhs.net"], &referral());
    assert_eq!(code, 250);
    let harmless = common::plain(
        "Ward 4 <ward4@care.example>",
        "Rota",
        "The rota is attached.",
    );
    let (code, _) = c.mail("ward4@care.example", &["someone@gmail.com"], &harmless);
    assert_eq!(code, 250);
    let got = sink.wait_for(2, 20);
    assert_eq!(got.len(), 2, "{got:?}");
    std::thread::sleep(Duration::from_secs(3));
    let got = sink.messages();
    assert_eq!(got.len(), 2, "the held message reached the sink");
    let with_nhs: Vec<_> = got
        .iter()
        .filter(|(m, _)| contains(m, b"943 476 5919"))
        .collect();
    assert_eq!(with_nhs.len(), 1);
    assert_eq!(with_nhs[0].1["rcpt_tos"], serde_json::json!(["gp@nhs.net"]));
    assert_eq!(gw.q.list().unwrap().len(), 1);
}

#[test]
fn a_partner_requiring_tls_is_never_sent_in_clear() {
    let Some(py) = python() else { return };
    let sink_dir = tempfile::tempdir().unwrap();
    // The sink speaks plain SMTP only: no STARTTLS.
    let sink = Sink::start(&py, sink_dir.path(), 0, &[]);
    let sink_port = sink.port;
    let gw = start(sink.port, |c, root| {
        c.partners = vec![PartnerDomain {
            domain: "partner.example".into(),
            require_tls: true,
            tls: None,
            next_hop: Some(format!("127.0.0.1:{sink_port}")),
            ca: Some(root.join("cert.pem")),
            tls_name: Some("localhost".into()),
        }];
    });
    let mut c = Client::open(gw.submission.unwrap());
    c.login(&gw.cert_pem);
    // The partner is a secure domain: patient data may go there, but only over TLS.
    let (code, text) = c.mail(
        "ward4@care.example",
        &["team@partner.example", "office@care.example"],
        &referral(),
    );
    assert_eq!(code, 250, "{text}");
    assert!(
        gw.q.list().unwrap().is_empty(),
        "a partner is a secure domain"
    );
    // The organisation's own recipient goes by the default route; the partner's stays queued.
    let got = sink.wait_for(1, 20);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].1["rcpt_tos"],
        serde_json::json!(["office@care.example"])
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(sink.messages().len(), 1, "sent to the partner in clear");
    let state_dir = gw.root.join("queue/state");
    let state: Vec<String> = std::fs::read_dir(&state_dir)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(state.len(), 1, "{state:?}");
    assert!(state[0].contains("team@partner.example"), "{}", state[0]);
    assert!(state[0].contains("STARTTLS"), "{}", state[0]);
    assert_eq!(
        std::fs::read_dir(gw.root.join("queue/msg"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn partner_configuration_errors_name_the_key() {
    let base = "[gateway]\ninbound = \"127.0.0.1:2525\"\nnext_hop = \"127.0.0.1:25\"\n\
                local_domains = [\"care.example\"]\nqueue_dir = \"q\"\n";
    let e = MailConfig::from_toml_str(base).unwrap_err().to_string();
    assert!(e.contains("gateway.data: is required"), "{e}");
    let ok = format!("{base}data = \"/srv/caldicott\"\n");
    assert!(MailConfig::from_toml_str(&ok).is_ok());
    for (extra, key) in [
        (
            "secure_domains = [\"nhs net\"]\n",
            "gateway.secure_domains[0]",
        ),
        (
            "[[gateway.partners]]\ndomain = \"p.example\"\nrequire_tls = true\n",
            "gateway.partners[0].ca",
        ),
        (
            "[[gateway.partners]]\ndomain = \"p.example\"\nnext_hop = \"nowhere\"\n",
            "gateway.partners[0].next_hop",
        ),
        (
            "[[gateway.partners]]\ndomain = \"\"\n",
            "gateway.partners[0].domain",
        ),
    ] {
        let e = MailConfig::from_toml_str(&format!("{ok}{extra}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{extra:?} → {e}");
    }
}

#[test]
fn a_message_at_the_size_limit_fits_the_vault() {
    let dir = tempfile::tempdir().unwrap();
    let q = VaultQuarantine::new(vault(&dir.path().join("vault.db")));
    // 25 MiB, the gateway's default limit.
    let mut m = b"From: a@b.example\r\nSubject: big\r\n\r\n".to_vec();
    while m.len() < 25 << 20 {
        m.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU\r\n",
        );
    }
    let report = Report {
        verdict: Verdict::Quarantine,
        score: 0.0,
        symbols: Vec::new(),
    };
    let entry = Entry::new("00aa", &Envelope::default(), &m, &report, 0);
    let t = Instant::now();
    q.put(&entry, &m).unwrap();
    let put = t.elapsed();
    let t = Instant::now();
    let back = q.message("00aa").unwrap();
    let get = t.elapsed();
    let listed = Instant::now();
    assert_eq!(q.list().unwrap().len(), 1);
    let list = listed.elapsed();
    assert!(back[..] == m[..]);
    eprintln!(
        "25 MiB message: stored in {:.0} ms, read in {:.0} ms; list {:.1} ms",
        put.as_secs_f64() * 1e3,
        get.as_secs_f64() * 1e3,
        list.as_secs_f64() * 1e3
    );
    assert!(matches!(
        q.message("00ab"),
        Err(quarantine::QuarantineError::NotFound(_))
    ));
    assert!(matches!(
        q.entry("../x"),
        Err(quarantine::QuarantineError::BadId(_))
    ));
}

#[test]
fn schedule_configuration_errors_name_the_key() {
    let gateway = "[gateway]\ninbound = \"127.0.0.1:2525\"\nnext_hop = \"127.0.0.1:25\"\n\
                   local_domains = [\"care.example\"]\nqueue_dir = \"q\"\n";
    let with_data = format!("{gateway}data = \"/srv/caldicott\"\n");
    let section = "\n[gateway.quarantine]\n";
    let good = format!(
        "{with_data}{section}digest_to = \"po@care.example\"\nretain = \"30d\"\npurge_as = \"jsmith\"\n"
    );
    let c = MailConfig::from_toml_str(&good).unwrap();
    let q = c.gateway.unwrap().quarantine.unwrap();
    assert_eq!(q.digest_at, "07:30", "the default time");
    assert_eq!(q.retention(), Some(Duration::from_secs(30 * 86_400)));
    // Only a digest, only a purge: both fine.
    for only in [
        "digest_to = \"po@care.example\"\ndigest_at = \"23:59:59\"\n",
        "retain = \"7d\"\npurge_as = \"jsmith\"\n",
    ] {
        let c = MailConfig::from_toml_str(&format!("{with_data}{section}{only}"));
        assert!(c.is_ok(), "{only:?} → {c:?}");
    }
    let e = MailConfig::from_toml_str(&format!(
        "{gateway}quarantine_dir = \"plain\"\n{section}digest_to = \"po@care.example\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("gateway.quarantine: needs gateway.data"), "{e}");
    for (body, key) in [
        ("", "gateway.quarantine: give digest_to"),
        ("digest_to = \"nobody\"\n", "gateway.quarantine.digest_to"),
        (
            "digest_to = \"po@care.example\"\ndigest_from = \"a b@c\"\n",
            "gateway.quarantine.digest_from",
        ),
        (
            "retain = \"30d\"\npurge_as = \"u\"\ndigest_from = \"pm@care.example\"\n",
            "gateway.quarantine.digest_from: needs digest_to",
        ),
        (
            "digest_to = \"po@care.example\"\ndigest_at = \"24:00\"\n",
            "gateway.quarantine.digest_at",
        ),
        (
            "digest_to = \"po@care.example\"\ndigest_at = \"7:30\"\n",
            "gateway.quarantine.digest_at",
        ),
        (
            "retain = \"30d\"\n",
            "gateway.quarantine.purge_as: is required",
        ),
        (
            "purge_as = \"u\"\n",
            "gateway.quarantine.retain: is required",
        ),
        (
            "retain = \"a month\"\npurge_as = \"u\"\n",
            "gateway.quarantine.retain",
        ),
        (
            "retain = \"0d\"\npurge_as = \"u\"\n",
            "gateway.quarantine.retain",
        ),
        (
            "digest_to = \"po@care.example\"\nat = \"07:30\"\n",
            "unknown field",
        ),
    ] {
        let e = MailConfig::from_toml_str(&format!("{with_data}{section}{body}")).unwrap_err();
        let e = format!("{e} {:?}", e);
        assert!(e.contains(key), "{body:?} → {e}");
    }
}

#[test]
fn times_of_day() {
    use caldicott_mail::config::parse_time_of_day;
    assert_eq!(parse_time_of_day("07:30"), Some(27_000));
    assert_eq!(parse_time_of_day("00:00"), Some(0));
    assert_eq!(parse_time_of_day("23:59:59"), Some(86_399));
    for bad in [
        "24:00",
        "7:30",
        "07:60",
        "07:30:60",
        "0730",
        "07:30:00:00",
        "",
        "aa:bb",
    ] {
        assert_eq!(parse_time_of_day(bad), None, "{bad:?}");
    }
}

#[test]
fn spam_and_ham_feedback_are_kept_sealed_and_purged_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let q = VaultQuarantine::new(vault(&dir.path().join("vault.db")));
    q.add_spam("00aa", b"Subject: spam-feedback-marker\r\n\r\nbuy\r\n")
        .unwrap();
    q.add_ham("00bb", b"Subject: ham\r\n\r\nhello\r\n").unwrap();
    // Kept again under the same id: replaced, not doubled.
    q.add_spam("00aa", b"Subject: spam-feedback-marker\r\n\r\nbuy now\r\n")
        .unwrap();
    let spam = q.spam().unwrap();
    assert_eq!(spam.len(), 1);
    assert_eq!(spam[0].0, "00aa");
    assert!(contains(&spam[0].1, b"buy now"));
    assert_eq!(q.ham().unwrap().len(), 1);
    assert!(
        !contains(&db_bytes(dir.path()), b"spam-feedback-marker"),
        "feedback is readable in the database"
    );
    assert!(q.add_spam("../x", b"x").is_err());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let day = Duration::from_secs(86_400);
    assert!(q.feedback_older_than(now, day).unwrap().is_empty());
    let mut due = q.feedback_older_than(now + 2 * 86_400, day).unwrap();
    due.sort();
    assert_eq!(
        due,
        vec![
            (quarantine::HAM_KIND, "00bb".to_owned()),
            (quarantine::SPAM_KIND, "00aa".to_owned())
        ]
    );
    for (kind, id) in &due {
        assert!(q.delete_feedback(kind, id).unwrap());
    }
    assert!(q.spam().unwrap().is_empty() && q.ham().unwrap().is_empty());
    assert!(q.delete_feedback(quarantine::ENTRY_KIND, "00aa").is_err());
}
