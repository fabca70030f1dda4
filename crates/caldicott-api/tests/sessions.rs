//! Browser sessions (cookie, CSRF, timeouts, logout, revocation), the OAuth 2.0 client
//! credentials grant, and the audit events of sign-in, through the `/auth`, `/admin` and
//! `/fhir` routers in process (`tower::ServiceExt::oneshot`), with the sign-in clock
//! injected so that timeouts are crossed without waiting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use caldicott_access::Directory;
use caldicott_access::session::SessionPolicy;
use caldicott_api::audit::{AuditError, AuditEvent, AuditSink, EventKind, MemorySink, Outcome};
use caldicott_api::auth::AuthState;
use caldicott_api::{ApiConfig, Exports, FhirApi, Store};
use caldicott_core::OdsCode;
use caldicott_identity::{Totp, TotpSecret};
use caldicott_policy::{Purpose, Role};
use caldicott_vault::{Backend, LocalKek, SqliteBackend, Vault};
use serde_json::{Value, json};
use tower::ServiceExt;

const HOST: &str = "caldicott.test";
const SITE: &str = "https://caldicott.test";
const PEER: &str = "192.0.2.7:50000";
const STRONG: &str = "correct horse battery staple 42";
const SEC: i64 = 1_000_000;
const MIN: i64 = 60 * SEC;

/// An audit sink that is down.
struct Broken;

impl AuditSink for Broken {
    fn record(&self, _: Vec<AuditEvent>) -> Result<(), AuditError> {
        Err(AuditError("the ledger is unavailable".into()))
    }
}

struct App {
    router: axum::Router,
    vault: Arc<Vault>,
    directory: Arc<Directory>,
    audit: Arc<MemorySink>,
    /// Added to the real time by the sign-in routes' clock.
    offset: Arc<AtomicI64>,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// A FHIR error: its (only) issue's code and diagnostics.
    fn issue(&self) -> (String, String) {
        let v = self.json();
        assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
        (
            v["issue"][0]["code"].as_str().unwrap().to_owned(),
            v["issue"][0]["diagnostics"].as_str().unwrap().to_owned(),
        )
    }

    /// The session id from `Set-Cookie`.
    fn session_id(&self) -> String {
        let c = self.header("set-cookie").expect("a Set-Cookie header");
        c.strip_prefix("__Host-caldicott-session=")
            .and_then(|c| c.split(';').next())
            .unwrap()
            .to_owned()
    }
}

impl App {
    fn new() -> App {
        Self::with(SessionPolicy::default(), None)
    }

    fn with(policy: SessionPolicy, audit_override: Option<Arc<dyn AuditSink>>) -> App {
        let dir = tempfile::tempdir().unwrap();
        let backend = SqliteBackend::open(&dir.path().join("vault.db"), true).unwrap();
        backend.migrate().unwrap();
        let kek = Arc::new(LocalKek::generate().unwrap().0);
        let vault = Arc::new(Vault::open(Box::new(backend), kek).unwrap());
        let directory = Arc::new(Directory::new(Arc::clone(&vault)).with_session_policy(policy));
        directory
            .add_org(&OdsCode::parse("A81001").unwrap(), "Castle Practice")
            .unwrap();
        let memory = Arc::new(MemorySink::default());
        let audit: Arc<dyn AuditSink> =
            audit_override.unwrap_or_else(|| Arc::clone(&memory) as Arc<dyn AuditSink>);
        let config = ApiConfig {
            public_base: None,
            scheme: "https",
            max_body_bytes: 1 << 20,
        };
        let mut auth = AuthState::new(Arc::clone(&directory), Arc::clone(&audit), &config);
        let offset = Arc::new(AtomicI64::new(0));
        let o = Arc::clone(&offset);
        auth.clock = Arc::new(move || caldicott_vault::now_micros() + o.load(Ordering::SeqCst));
        let admin = caldicott_api::admin::AdminState {
            directory: Arc::clone(&directory),
            audit: Arc::clone(&audit),
        };
        let api = FhirApi {
            store: Arc::new(Store::new(
                Arc::clone(&vault),
                OdsCode::parse("X26").unwrap(),
            )),
            directory: Arc::clone(&directory),
            audit,
            ledger: None,
            exports: Arc::new(Exports::new(dir.path().join("exports")).unwrap()),
            config,
        };
        let router = caldicott_api::router(Arc::new(api))
            .merge(caldicott_api::auth::router(Arc::new(auth)))
            .merge(caldicott_api::admin::router(Arc::new(admin)));
        App {
            router,
            vault,
            directory,
            audit: memory,
            offset,
            _dir: dir,
        }
    }

    /// The sign-in routes' time.
    fn now(&self) -> i64 {
        caldicott_vault::now_micros() + self.offset.load(Ordering::SeqCst)
    }

    fn advance(&self, us: i64) {
        self.offset.fetch_add(us, Ordering::SeqCst);
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", HOST)
            .header("user-agent", "session-tests/1");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(Body::from(body.to_vec())).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(PEER.parse::<SocketAddr>().unwrap()));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn post_json(&self, path: &str, v: Value) -> Reply {
        self.send(
            "POST",
            path,
            &[("content-type", "application/json")],
            v.to_string().as_bytes(),
        )
        .await
    }

    /// A request with the session cookie (and these headers).
    async fn with_cookie(
        &self,
        id: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let cookie = format!("theme=dark; __Host-caldicott-session={id}");
        let mut h = vec![("cookie", cookie.as_str())];
        h.extend_from_slice(headers);
        self.send(method, path, &h, body).await
    }

    /// Adds a GP, who changes the one-time password and enrols an authenticator over
    /// HTTP; returns the authenticator.
    async fn gp(&self, name: &str) -> Totp {
        let (_, otp) = self
            .directory
            .add_user(name, &OdsCode::parse("A81001").unwrap(), Role::Gp, None)
            .unwrap();
        self.post_json(
            "/auth/password",
            json!({"user": name, "password": otp.as_str(), "new_password": STRONG}),
        )
        .await
        .expect(204);
        let e = self
            .post_json("/auth/mfa/enrol", json!({"user": name, "password": STRONG}))
            .await
            .expect(200)
            .json();
        let totp = Totp::new(TotpSecret::from_base32(e["secret"].as_str().unwrap()).unwrap());
        let code = self.code(&totp);
        self.post_json(
            "/auth/mfa/confirm",
            json!({"user": name, "password": STRONG, "code": code}),
        )
        .await
        .expect(204);
        // The next code is of the next time step.
        self.advance(30 * SEC);
        totp
    }

    fn code(&self, totp: &Totp) -> String {
        totp.code_at((self.now() / SEC) as u64)
    }

    /// Signs `name` in for a session; returns the reply (cookie, CSRF token).
    async fn session(&self, name: &str, totp: &Totp) -> Reply {
        let code = self.code(totp);
        let r = self
            .post_json(
                "/auth/session",
                json!({"user": name, "password": STRONG, "code": code}),
            )
            .await;
        self.advance(30 * SEC);
        r
    }

    fn events(&self) -> Vec<AuditEvent> {
        self.audit.0.lock().unwrap().clone()
    }

    fn stored(&self, kind: &str) -> usize {
        self.vault
            .backend()
            .dir_list(kind, None, 10_000)
            .unwrap()
            .len()
    }
}

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{ "system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919" }],
        "name": [{ "family": "Quill", "given": ["Zeb"] }],
        "managingOrganization": { "identifier": { "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001" } }
    })
}

#[tokio::test]
async fn a_session_cookie_reads_and_with_its_csrf_token_writes() {
    let app = App::new();
    let totp = app.gp("ann").await;
    let r = app.session("ann", &totp).await.expect(200);

    // The cookie, exactly; the id never in the body; nothing cached.
    let id = r.session_id();
    assert!(id.starts_with("cds_") && id.len() == 47, "{id}");
    assert_eq!(
        r.header("set-cookie").unwrap(),
        format!("__Host-caldicott-session={id}; Secure; HttpOnly; SameSite=Strict; Path=/")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.json();
    assert!(!String::from_utf8_lossy(&r.body).contains(&id));
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(csrf.len(), 43);
    assert_eq!(
        (&body["user"], &body["org"], &body["role"], &body["purpose"]),
        (
            &json!("ann"),
            &json!("A81001"),
            &json!("gp"),
            &json!("direct-care")
        )
    );
    assert_eq!(body["idle_timeout"], 900);
    assert_eq!(body["absolute_timeout"], 28800);
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));

    // Who is signed in.
    let me = app
        .with_cookie(&id, "GET", "/auth/session", &[], b"")
        .await
        .expect(200)
        .json();
    assert_eq!((&me["user"], &me["role"]), (&json!("ann"), &json!("gp")));
    assert!(me.get("csrf_token").is_none());
    app.send("GET", "/auth/session", &[], b"").await.expect(401);

    // The FHIR API reads with the cookie alone.
    let count = |r: Reply| r.expect(200).json()["total"].as_u64().unwrap();
    assert_eq!(
        count(app.with_cookie(&id, "GET", "/fhir/Patient", &[], b"").await),
        0
    );
    app.send("GET", "/fhir/Patient", &[], b"").await.expect(401);
    app.with_cookie("cds_forged", "GET", "/fhir/Patient", &[], b"")
        .await
        .expect(401);

    // A write without the CSRF token, with a wrong one, or from another site: 403, and
    // nothing written.
    let body = patient().to_string();
    let fhir = ("content-type", "application/fhir+json");
    let wrong = "A".repeat(43);
    for headers in [
        vec![fhir],
        vec![fhir, ("x-csrf-token", "")],
        vec![fhir, ("x-csrf-token", wrong.as_str())],
        vec![fhir, ("x-csrf-token", id.as_str())],
    ] {
        let r = app
            .with_cookie(&id, "POST", "/fhir/Patient", &headers, body.as_bytes())
            .await
            .expect(403);
        let (code, text) = r.issue();
        assert_eq!(code, "security");
        assert!(text.contains("CSRF"), "{text}");
    }
    for site in [
        ("origin", "https://evil.example"),
        ("origin", "http://caldicott.test"),
        ("origin", "https://caldicott.test:8443"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let r = app
            .with_cookie(
                &id,
                "POST",
                "/fhir/Patient",
                &[fhir, ("x-csrf-token", csrf.as_str()), site],
                body.as_bytes(),
            )
            .await
            .expect(403);
        let (code, text) = r.issue();
        assert_eq!(code, "security");
        assert!(text.contains("CSRF"), "{site:?}: {text}");
        // Reads from another site are refused too.
        app.with_cookie(&id, "GET", "/fhir/Patient", &[site], b"")
            .await
            .expect(403);
    }
    assert_eq!(
        count(app.with_cookie(&id, "GET", "/fhir/Patient", &[], b"").await),
        0,
        "nothing was written"
    );

    // With the token (and from this site, or saying nothing of where): written.
    let created = app
        .with_cookie(
            &id,
            "POST",
            "/fhir/Patient",
            &[
                fhir,
                ("x-csrf-token", csrf.as_str()),
                ("origin", SITE),
                ("sec-fetch-site", "same-origin"),
            ],
            body.as_bytes(),
        )
        .await
        .expect(201)
        .json();
    let pid = created["id"].as_str().unwrap().to_owned();
    let path = format!("/fhir/Patient/{pid}");
    app.with_cookie(&id, "GET", &path, &[], b"")
        .await
        .expect(200);
    // Every method that changes state needs it: DELETE too.
    app.with_cookie(&id, "DELETE", &path, &[], b"")
        .await
        .expect(403);
    app.with_cookie(&id, "GET", &path, &[], b"")
        .await
        .expect(200);
    app.with_cookie(
        &id,
        "DELETE",
        &path,
        &[("x-csrf-token", csrf.as_str())],
        b"",
    )
    .await
    .expect(200);
    app.with_cookie(&id, "GET", &path, &[], b"")
        .await
        .expect(410);

    // A bearer token needs no CSRF token, and wins over a cookie.
    let token = app
        .directory
        .issue_token("ann", &"user/*.*".parse().unwrap(), Purpose::DirectCare, 60)
        .unwrap();
    let bearer = format!("Bearer {}", token.as_str());
    app.with_cookie(
        "cds_forged",
        "POST",
        "/fhir/Patient",
        &[fhir, ("authorization", &bearer)],
        body.as_bytes(),
    )
    .await
    .expect(201);

    // Starting a session takes JSON, from this site.
    app.send(
        "POST",
        "/auth/session",
        &[("content-type", "text/plain")],
        json!({"user": "ann", "password": STRONG, "code": "000000"})
            .to_string()
            .as_bytes(),
    )
    .await
    .expect(415);
    app.send(
        "POST",
        "/auth/session",
        &[
            ("content-type", "application/json"),
            ("origin", "https://evil.example"),
        ],
        json!({"user": "ann", "password": STRONG, "code": "000000"})
            .to_string()
            .as_bytes(),
    )
    .await
    .expect(403);
}

#[tokio::test]
async fn logout_ends_the_session_and_clears_the_cookie() {
    let app = App::new();
    let totp = app.gp("ann").await;
    let r = app.session("ann", &totp).await.expect(200);
    let id = r.session_id();
    let csrf = r.json()["csrf_token"].as_str().unwrap().to_owned();

    // Logout is a state change: the CSRF token is needed.
    let r = app
        .with_cookie(&id, "POST", "/auth/logout", &[], b"")
        .await
        .expect(403);
    assert!(r.json()["error"].as_str().unwrap().contains("CSRF"));
    app.with_cookie(&id, "GET", "/fhir/Patient", &[], b"")
        .await
        .expect(200);
    let r = app
        .with_cookie(&id, "POST", "/auth/logout", &[("x-csrf-token", &csrf)], b"")
        .await
        .expect(204);
    assert_eq!(
        r.header("set-cookie"),
        Some("__Host-caldicott-session=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
    );
    assert_eq!(app.stored("session"), 0);
    let (code, _) = app
        .with_cookie(&id, "GET", "/fhir/Patient", &[], b"")
        .await
        .expect(401)
        .issue();
    assert_eq!(code, "security");
    app.with_cookie(&id, "GET", "/auth/session", &[], b"")
        .await
        .expect(401);
    app.with_cookie(&id, "POST", "/auth/logout", &[("x-csrf-token", &csrf)], b"")
        .await
        .expect(401);

    // The logout is in the audit trail.
    let logout: Vec<_> = app
        .events()
        .into_iter()
        .filter(|e| e.kind == EventKind::Token)
        .collect();
    assert_eq!(logout.len(), 1);
    assert_eq!(
        (
            logout[0].action.as_str(),
            logout[0].user.as_str(),
            logout[0].outcome
        ),
        ("logout", "ann", Outcome::Permit)
    );

    // A bearer token is revoked by logout too.
    let token = app
        .directory
        .issue_token(
            "ann",
            &"user/*.read".parse().unwrap(),
            Purpose::DirectCare,
            60,
        )
        .unwrap();
    let bearer = format!("Bearer {}", token.as_str());
    app.send("POST", "/auth/logout", &[("authorization", &bearer)], b"")
        .await
        .expect(204);
    app.send("GET", "/fhir/Patient", &[("authorization", &bearer)], b"")
        .await
        .expect(401);
}

#[tokio::test]
async fn sessions_end_when_idle_and_after_eight_hours() {
    let app = App::new();
    let totp = app.gp("ann").await;
    let id = app.session("ann", &totp).await.expect(200).session_id();
    // Used every 14 minutes: alive well past 15 minutes.
    for _ in 0..4 {
        app.advance(14 * MIN);
        whoami(&app, &id).await.expect(200);
    }
    // Then 15 minutes idle: over, with a clear message and the cookie cleared.
    app.advance(15 * MIN);
    let r = whoami(&app, &id).await.expect(401);
    assert_eq!(r.json()["error"], "session expired: sign in again");
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));

    // However busy, a session lasts 8 hours.
    let start = app.now();
    let id = app.session("ann", &totp).await.expect(200).session_id();
    while app.now() + 10 * MIN < start + 8 * 60 * MIN {
        app.advance(10 * MIN);
        whoami(&app, &id).await.expect(200);
    }
    // (A minute's margin for the real time sign-in took after `start`.)
    app.advance(start + 8 * 60 * MIN + MIN - app.now());
    let r = whoami(&app, &id).await.expect(401);
    assert_eq!(r.json()["error"], "session expired: sign in again");
}

async fn whoami(app: &App, id: &str) -> Reply {
    app.with_cookie(id, "GET", "/auth/session", &[], b"").await
}

#[tokio::test]
async fn the_fhir_api_answers_an_expired_session_with_401() {
    // Short timeouts, on the real clock the FHIR API uses.
    let app = App::with(
        SessionPolicy {
            idle_us: 800_000,
            absolute_us: 60 * SEC,
            refresh_us: 100_000,
            recheck_us: 10 * SEC,
        },
        None,
    );
    app.directory
        .add_user("ann", &OdsCode::parse("A81001").unwrap(), Role::Gp, None)
        .unwrap();
    let s = app
        .directory
        .start_session("ann", Purpose::DirectCare, caldicott_vault::now_micros())
        .unwrap();
    app.with_cookie(&s.id, "GET", "/fhir/Patient", &[], b"")
        .await
        .expect(200);
    std::thread::sleep(std::time::Duration::from_millis(1_000));
    let (code, text) = app
        .with_cookie(&s.id, "GET", "/fhir/Patient", &[], b"")
        .await
        .expect(401)
        .issue();
    assert_eq!(code, "security");
    assert_eq!(text, "session expired: sign in again");
}

#[tokio::test]
async fn disabling_resetting_or_changing_the_password_ends_sessions() {
    let app = App::new();
    let totp = app.gp("ann").await;
    app.directory
        .add_user(
            "root",
            &OdsCode::parse("A81001").unwrap(),
            Role::Sysadmin,
            None,
        )
        .unwrap();
    let admin = app
        .directory
        .issue_token(
            "root",
            &"user/*.*".parse().unwrap(),
            Purpose::DirectCare,
            600,
        )
        .unwrap();
    let admin = format!("Bearer {}", admin.as_str());
    let read = |id: String| {
        let app = &app;
        async move { app.with_cookie(&id, "GET", "/fhir/Patient", &[], b"").await }
    };

    // Disabled through the administration API: at once; and not back when re-enabled.
    let id = app.session("ann", &totp).await.expect(200).session_id();
    read(id.clone()).await.expect(200);
    app.send(
        "POST",
        "/admin/users/ann/disable",
        &[("authorization", &admin)],
        b"",
    )
    .await
    .expect(204);
    let (_, text) = read(id.clone()).await.expect(401).issue();
    assert_eq!(text, "the user is disabled");
    app.send(
        "POST",
        "/admin/users/ann/enable",
        &[("authorization", &admin)],
        b"",
    )
    .await
    .expect(204);
    read(id).await.expect(401);

    // Disabled by another process (the command line): within the verified-session cache's
    // lifetime, which is well under a minute.
    let other = Directory::new(Arc::clone(&app.vault));
    let id = app.session("ann", &totp).await.expect(200).session_id();
    read(id.clone()).await.expect(200);
    other.set_disabled("ann", true).unwrap();
    const { assert!(caldicott_access::AUTH_CACHE_TTL_US <= 60 * SEC) };
    let gone_by = std::time::Instant::now()
        + std::time::Duration::from_micros(caldicott_access::AUTH_CACHE_TTL_US as u64 + 500_000);
    loop {
        let r = read(id.clone()).await;
        if r.status == 401 {
            break;
        }
        assert_eq!(r.status, 200);
        assert!(std::time::Instant::now() < gone_by, "still signed in");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    other.set_disabled("ann", false).unwrap();

    // An authenticator reset ends it.
    let id = app.session("ann", &totp).await.expect(200).session_id();
    read(id.clone()).await.expect(200);
    app.send(
        "POST",
        "/admin/users/ann/reset-mfa",
        &[("authorization", &admin)],
        b"",
    )
    .await
    .expect(204);
    let (_, text) = read(id).await.expect(401).issue();
    assert!(text.contains("session is not valid"), "{text}");

    // As does a password change.
    let totp = app.gp("bob").await;
    let id = app.session("bob", &totp).await.expect(200).session_id();
    read(id.clone()).await.expect(200);
    app.post_json(
        "/auth/password",
        json!({"user": "bob", "password": STRONG, "new_password": "another long passphrase 77"}),
    )
    .await
    .expect(204);
    read(id).await.expect(401);

    // Each administrative change is an admin event naming the administrator.
    let admin_events: Vec<_> = app
        .events()
        .into_iter()
        .filter(|e| e.kind == EventKind::Admin)
        .map(|e| (e.action, e.user, e.id))
        .collect();
    let ann = Some("ann".to_owned());
    assert_eq!(
        admin_events,
        vec![
            ("user-disable".into(), "root".into(), ann.clone()),
            ("user-enable".into(), "root".into(), ann.clone()),
            ("user-reset-mfa".into(), "root".into(), ann),
        ]
    );
}

/// A form-urlencoded POST to `/auth/token`.
async fn token_request(app: &App, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut h = vec![("content-type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    app.send("POST", "/auth/token", &h, body.as_bytes()).await
}

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// Asserts an RFC 6749 §5.2 error: the status, and exactly `error` and
/// `error_description`.
fn oauth_error(r: Reply, status: u16, code: &str) -> Reply {
    let r = r.expect(status);
    let v = r.json();
    assert_eq!(v["error"], code, "{v}");
    assert!(v["error_description"].is_string(), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    r
}

#[tokio::test]
async fn client_credentials_for_systems() {
    let app = App::new();
    let org = OdsCode::parse("A81001").unwrap();
    let (_, secret) = app
        .directory
        .add_user("bot", &org, Role::System, None)
        .unwrap();
    let secret = secret.to_string();
    app.gp("ann").await;

    // A patient of the system's organisation, for it to read.
    let gp = app
        .directory
        .issue_token("ann", &"user/*.*".parse().unwrap(), Purpose::DirectCare, 60)
        .unwrap();
    app.send(
        "POST",
        "/fhir/Patient",
        &[
            ("content-type", "application/fhir+json"),
            ("authorization", &format!("Bearer {}", gp.as_str())),
        ],
        patient().to_string().as_bytes(),
    )
    .await
    .expect(201);

    // HTTP Basic: the token, exactly, not cached; it reads FHIR as the system.
    let r = token_request(
        &app,
        &[("authorization", &basic("bot", &secret))],
        "grant_type=client_credentials&scope=system%2F*.read",
    )
    .await
    .expect(200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    let v = r.json();
    let token = v["access_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cdt_"));
    assert_eq!(
        v,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": 900, "scope": "system/*.read"})
    );
    let bearer = format!("Bearer {token}");
    let bundle = app
        .send("GET", "/fhir/Patient", &[("authorization", &bearer)], b"")
        .await
        .expect(200)
        .json();
    assert_eq!(bundle["total"], 1, "{bundle}");
    // Read-only: its token cannot write.
    app.send(
        "POST",
        "/fhir/Patient",
        &[
            ("content-type", "application/fhir+json"),
            ("authorization", &bearer),
        ],
        patient().to_string().as_bytes(),
    )
    .await
    .expect(403);

    // The body method, with a purpose.
    let body = format!(
        "grant_type=client_credentials&scope=system/Patient.read+system/Observation.read&purpose=planning&client_id=bot&client_secret={secret}"
    );
    let v = token_request(&app, &[], &body).await.expect(200).json();
    assert_eq!(v["scope"], "system/Patient.read system/Observation.read");
    let who = app
        .directory
        .authenticate(
            v["access_token"].as_str().unwrap(),
            caldicott_vault::now_micros(),
        )
        .unwrap();
    assert_eq!((who.role, who.purpose), (Role::System, Purpose::Planning));

    // The errors of RFC 6749 §5.2.
    let grant = "grant_type=client_credentials&scope=system/*.read";
    let r = oauth_error(
        token_request(&app, &[("authorization", &basic("bot", "wrong"))], grant).await,
        401,
        "invalid_client",
    );
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic "));
    oauth_error(
        token_request(&app, &[("authorization", &basic("nobody", &secret))], grant).await,
        401,
        "invalid_client",
    );
    oauth_error(
        token_request(
            &app,
            &[],
            &format!("{grant}&client_id=bot&client_secret=nope"),
        )
        .await,
        401,
        "invalid_client",
    );
    oauth_error(token_request(&app, &[], grant).await, 401, "invalid_client");
    oauth_error(
        token_request(&app, &[("authorization", "Bearer cdt_x")], grant).await,
        401,
        "invalid_client",
    );
    // A person, even with the right password.
    oauth_error(
        token_request(&app, &[("authorization", &basic("ann", STRONG))], grant).await,
        400,
        "unauthorized_client",
    );
    let auth = basic("bot", &secret);
    let with_basic = |body: &'static str| {
        let app = &app;
        let auth = auth.clone();
        async move { token_request(app, &[("authorization", &auth)], body).await }
    };
    oauth_error(
        with_basic("grant_type=password&scope=system/*.read").await,
        400,
        "unsupported_grant_type",
    );
    oauth_error(
        with_basic("grant_type=authorization_code").await,
        400,
        "unsupported_grant_type",
    );
    for scope in [
        "scope=system/Nope.read",
        "scope=user/*.read",
        "scope=openid",
        "scope=system/*.read+launch",
        "scope=",
    ] {
        let body = format!("grant_type=client_credentials&{scope}");
        let r = token_request(&app, &[("authorization", &auth)], &body).await;
        oauth_error(r, 400, "invalid_scope");
    }
    oauth_error(
        with_basic("grant_type=client_credentials").await,
        400,
        "invalid_scope",
    );
    // Both authentication methods at once; no body; repeated or missing parameters; not a
    // form; an unknown purpose.
    oauth_error(
        token_request(
            &app,
            &[("authorization", &auth)],
            &format!("{grant}&client_id=bot&client_secret={secret}"),
        )
        .await,
        400,
        "invalid_request",
    );
    oauth_error(with_basic("").await, 400, "invalid_request");
    oauth_error(
        app.send("POST", "/auth/token", &[("authorization", &auth)], b"")
            .await,
        400,
        "invalid_request",
    );
    oauth_error(
        with_basic(
            "grant_type=client_credentials&grant_type=client_credentials&scope=system/*.read",
        )
        .await,
        400,
        "invalid_request",
    );
    oauth_error(
        with_basic("scope=system/*.read").await,
        400,
        "invalid_request",
    );
    oauth_error(
        app.send(
            "POST",
            "/auth/token",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            br#"{"grant_type":"client_credentials"}"#,
        )
        .await,
        400,
        "invalid_request",
    );
    oauth_error(
        with_basic("grant_type=client_credentials&scope=system/*.read&purpose=marketing").await,
        400,
        "invalid_request",
    );

    // Audited: the client's sign-ins and refusals; an unknown client as "".
    let events: Vec<_> = app
        .events()
        .into_iter()
        .filter(|e| e.action == "client-credentials")
        .collect();
    let ok: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Login)
        .collect();
    assert_eq!(ok.len(), 2);
    assert_eq!(
        (ok[1].user.as_str(), ok[1].purpose.as_str(), ok[1].outcome),
        ("bot", "planning", Outcome::Permit)
    );
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::LoginFailed)
        .map(|e| e.user.as_str())
        .collect();
    assert!(failed.contains(&"bot") && failed.contains(&"") && failed.contains(&"ann"));
    for e in &events {
        assert!(
            !e.to_leaf()
                .windows(secret.len())
                .any(|w| w == secret.as_bytes())
        );
    }

    // Throttled like a login: after five wrong secrets, even the right one waits.
    for _ in 0..5 {
        oauth_error(
            token_request(&app, &[("authorization", &basic("bot", "wrong"))], grant).await,
            401,
            "invalid_client",
        );
    }
    let r = oauth_error(
        token_request(&app, &[("authorization", &auth)], grant).await,
        429,
        "temporarily_unavailable",
    );
    assert!(r.header("retry-after").is_some());
}

#[tokio::test]
async fn sign_in_is_audited_without_secrets() {
    let app = App::new();
    let totp = app.gp("ann").await;
    // Refused: an unknown user is recorded as "", a known one by name; a password typed
    // into the user field is recorded nowhere.
    app.post_json(
        "/auth/login",
        json!({"user": "nobody", "password": "x", "code": "000000"}),
    )
    .await
    .expect(401);
    app.post_json(
        "/auth/login",
        json!({"user": STRONG, "password": "ann", "code": "000000"}),
    )
    .await
    .expect(401);
    app.post_json(
        "/auth/login",
        json!({"user": "ann", "password": "wrong password", "code": "000000"}),
    )
    .await
    .expect(401);
    let code = app.code(&totp);
    let token = app
        .post_json(
            "/auth/login",
            json!({"user": "ann", "password": STRONG, "code": code, "purpose": "audit"}),
        )
        .await
        .expect(200)
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.advance(30 * SEC);
    let r = app.session("ann", &totp).await.expect(200);
    let id = r.session_id();
    let csrf = r.json()["csrf_token"].as_str().unwrap().to_owned();
    app.with_cookie(&id, "POST", "/auth/logout", &[("x-csrf-token", &csrf)], b"")
        .await
        .expect(204);

    let events = app.events();
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.action.as_str(), e.user.as_str(), e.outcome))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                EventKind::Credentials,
                "password-change",
                "ann",
                Outcome::Permit
            ),
            (EventKind::Credentials, "mfa-enrol", "ann", Outcome::Permit),
            (
                EventKind::Credentials,
                "mfa-confirm",
                "ann",
                Outcome::Permit
            ),
            (EventKind::LoginFailed, "login", "", Outcome::Deny),
            (EventKind::LoginFailed, "login", "", Outcome::Deny),
            (EventKind::LoginFailed, "login", "ann", Outcome::Deny),
            (EventKind::Login, "login", "ann", Outcome::Permit),
            (EventKind::Login, "session", "ann", Outcome::Permit),
            (EventKind::Token, "logout", "ann", Outcome::Permit),
        ]
    );
    let login = &events[6];
    assert_eq!(
        (
            login.org.as_str(),
            login.role.as_str(),
            login.purpose.as_str()
        ),
        ("A81001", "gp", "audit")
    );
    assert_eq!(login.client.as_deref(), Some("192.0.2.7"));
    assert_eq!(login.user_agent.as_deref(), Some("session-tests/1"));
    assert_eq!(events[5].org, "A81001");
    assert_eq!(events[3].org, "");
    // No secret in any event.
    let leaves: Vec<u8> = events.iter().flat_map(|e| e.to_leaf()).collect();
    for secret in [
        STRONG,
        "wrong password",
        token.as_str(),
        id.as_str(),
        csrf.as_str(),
    ] {
        assert!(
            !leaves.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is in the audit trail"
        );
    }
}

#[tokio::test]
async fn nothing_is_granted_when_the_audit_trail_is_down() {
    let app = App::with(SessionPolicy::default(), Some(Arc::new(Broken)));
    let (_, otp) = app
        .directory
        .add_user("ann", &OdsCode::parse("A81001").unwrap(), Role::Gp, None)
        .unwrap();
    let (_, secret) = app
        .directory
        .add_user(
            "bot",
            &OdsCode::parse("A81001").unwrap(),
            Role::System,
            None,
        )
        .unwrap();
    let tokens = app.stored("token");
    // A failed sign-in cannot be recorded: 503, not 401.
    app.post_json(
        "/auth/login",
        json!({"user": "ann", "password": "wrong", "code": "000000"}),
    )
    .await
    .expect(503);
    // A client credentials token made is revoked again.
    let r = token_request(
        &app,
        &[("authorization", &basic("bot", &secret))],
        "grant_type=client_credentials&scope=system/*.read",
    )
    .await
    .expect(503);
    assert!(!String::from_utf8_lossy(&r.body).contains("cdt_"));
    assert_eq!(app.stored("token"), tokens);
    // A session made is ended again, and no cookie is set.
    let throttle = caldicott_access::signin::new_throttle();
    let s = caldicott_access::signin::SignIn::new(&app.directory, &throttle);
    let ip = "192.0.2.7".parse().unwrap();
    let now = app.now();
    s.change_password("ann", &otp, STRONG, ip, now).unwrap();
    let e = s.enrol("ann", STRONG, ip, now).unwrap();
    let totp = Totp::new(TotpSecret::from_base32(&e.secret_base32).unwrap());
    s.confirm("ann", STRONG, &totp.code_at((now / SEC) as u64), ip, now)
        .unwrap();
    app.advance(30 * SEC);
    let r = app.session("ann", &totp).await.expect(503);
    assert!(r.header("set-cookie").is_none());
    assert_eq!(app.stored("session"), 0);
}
