//! The console in process, for tests: a real SQLite vault, the real directory, the FHIR
//! API beside the console (to load records as a client would), an in-memory audit sink
//! to inspect, and browsers signed in through the real sign-in pages (password, new
//! password, authenticator enrolment with a code computed from the page's secret).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use caldicott_access::Directory;
use caldicott_api::audit::{AuditEvent, AuditSink, MemorySink};
use caldicott_api::{ApiConfig, Exports, FhirApi, Store};
use caldicott_console::ConsoleState;
use caldicott_core::OdsCode;
use caldicott_policy::{Purpose, Role, Scopes};
use caldicott_vault::{Backend, LocalKek, SqliteBackend, Vault};
use serde_json::Value;
use tower::ServiceExt;

pub const HOST: &str = "caldicott.test";
pub const SITE: &str = "https://caldicott.test";
pub const PEER: &str = "192.0.2.7:50000";
pub const ORG: &str = "X26";
pub const OTHER_ORG: &str = "Y99";
pub const STRONG: &str = "correct horse battery staple 42";

pub struct App {
    pub router: axum::Router,
    pub vault: Arc<Vault>,
    pub directory: Arc<Directory>,
    pub store: Arc<Store>,
    pub audit: Arc<MemorySink>,
    pub dir: tempfile::TempDir,
}

/// An answer.
pub struct Reply {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> &str {
        self.header("location").unwrap_or("")
    }

    /// Every `Set-Cookie` as `(name, value)`.
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| {
                let first = c.split(';').next()?;
                let (n, v) = first.split_once('=')?;
                Some((n.to_owned(), v.to_owned()))
            })
            .collect()
    }

    /// The value of the first hidden input named `name`, if any.
    pub fn input_value(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\" value=\"");
        let at = self.body.find(&needle)? + needle.len();
        let end = self.body[at..].find('"')?;
        Some(self.body[at..at + end].to_owned())
    }

    /// The text of the element with `id` (up to its first `<`).
    pub fn text_of_id(&self, id: &str) -> Option<String> {
        let needle = format!("id=\"{id}\"");
        let at = self.body.find(&needle)?;
        let open_end = self.body[at..].find('>')? + at + 1;
        let close = self.body[open_end..].find('<')? + open_end;
        Some(self.body[open_end..close].trim().to_owned())
    }

    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "body: {}", self.body);
        self
    }
}

impl App {
    pub fn new() -> App {
        Self::with_session_policy(caldicott_access::session::SessionPolicy::default())
    }

    /// An app whose sessions have these timeouts.
    pub fn with_session_policy(policy: caldicott_access::session::SessionPolicy) -> App {
        let dir = tempfile::tempdir().unwrap();
        let backend = SqliteBackend::open(&dir.path().join("vault.db"), true).unwrap();
        backend.migrate().unwrap();
        let kek = Arc::new(LocalKek::generate().unwrap().0);
        let vault = Arc::new(Vault::open(Box::new(backend), kek).unwrap());
        let directory = Arc::new(Directory::new(Arc::clone(&vault)).with_session_policy(policy));
        directory
            .add_org(&OdsCode::parse(ORG).unwrap(), "Castle Care Home")
            .unwrap();
        directory
            .add_org(&OdsCode::parse(OTHER_ORG).unwrap(), "River Surgery")
            .unwrap();
        let memory = Arc::new(MemorySink::default());
        let audit: Arc<dyn AuditSink> = Arc::clone(&memory) as Arc<dyn AuditSink>;
        let config = ApiConfig {
            public_base: None,
            scheme: "https",
            max_body_bytes: 1 << 20,
        };
        let store = Arc::new(Store::new(Arc::clone(&vault), OdsCode::parse(ORG).unwrap()));
        let api = FhirApi {
            store: Arc::clone(&store),
            directory: Arc::clone(&directory),
            audit: Arc::clone(&audit),
            ledger: None,
            exports: Arc::new(Exports::new(dir.path().join("exports")).unwrap()),
            config: config.clone(),
        };
        // Every router `caldicott serve` mounts beside the console, so that a route of the
        // console that clashes with one of the API's fails here (axum refuses overlaps).
        let auth = caldicott_api::auth::AuthState::new(
            Arc::clone(&directory),
            Arc::clone(&audit),
            &config,
        );
        let admin = caldicott_api::admin::AdminState {
            directory: Arc::clone(&directory),
            audit: Arc::clone(&audit),
        };
        let agreements = caldicott_api::agreements::AgreementsState {
            directory: Arc::clone(&directory),
            book: caldicott_share::Book::new(Arc::clone(&vault)),
            audit: Arc::clone(&audit),
        };
        let console = ConsoleState::new(
            Arc::clone(&vault),
            Arc::clone(&store),
            Arc::clone(&directory),
            audit,
            None,
            &config,
        );
        let router = caldicott_console::router(Arc::new(console))
            .merge(caldicott_api::router(Arc::new(api)))
            .merge(caldicott_api::auth::router(Arc::new(auth)))
            .merge(caldicott_api::admin::router(Arc::new(admin)))
            .merge(caldicott_api::agreements::router(Arc::new(agreements)));
        App {
            router,
            vault,
            directory,
            store,
            audit: memory,
            dir,
        }
    }

    /// The audit events recorded so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.audit.0.lock().unwrap().clone()
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let mut req = req;
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
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// Adds a user; returns their one-time password.
    pub fn add_user(
        &self,
        name: &str,
        org: &str,
        role: Role,
        practitioner: Option<&str>,
    ) -> String {
        let (_, pw) = self
            .directory
            .add_user(
                name,
                &OdsCode::parse(org).unwrap(),
                role,
                practitioner.map(str::to_owned),
            )
            .unwrap();
        pw.to_string()
    }

    /// A bearer token for `user` with `scopes`, for loading data through `/fhir`.
    pub fn token(&self, user: &str, scopes: &str, purpose: Purpose) -> String {
        let scopes: Scopes = scopes.parse().unwrap();
        self.directory
            .issue_token(user, &scopes, purpose, 3600)
            .unwrap()
            .to_string()
    }

    /// Creates a FHIR resource through the API with `token`; the new id.
    pub async fn create(&self, token: &str, resource: &Value) -> String {
        let rtype = resource["resourceType"].as_str().unwrap().to_owned();
        let req = Request::builder()
            .method("POST")
            .uri(format!("/fhir/{rtype}"))
            .header("host", HOST)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/fhir+json")
            .body(Body::from(resource.to_string()))
            .unwrap();
        let r = self.send(req).await;
        assert_eq!(r.status, 201, "creating {rtype}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    /// A browser signed in as a new user of `role` at `org`, through the real pages: the
    /// one-time password, a new password, enrolment and the first code.
    /// Signs in for the first purpose the role may act for (direct care for clinicians,
    /// audit for the Caldicott guardian).
    pub async fn signed_in(&self, name: &str, org: &str, role: Role) -> Browser {
        let purpose = caldicott_policy::profile(role)
            .purposes
            .first()
            .map_or("direct-care", |p| p.name());
        self.signed_in_as(name, org, role, None, purpose).await
    }

    pub async fn signed_in_as(
        &self,
        name: &str,
        org: &str,
        role: Role,
        practitioner: Option<&str>,
        purpose: &str,
    ) -> Browser {
        let one_time = self.add_user(name, org, role, practitioner);
        let mut b = Browser::new();
        b.sign_in_first_time(self, name, &one_time, purpose).await;
        b
    }
}

/// A browser: a cookie jar and the page last loaded.
pub struct Browser {
    pub cookies: Vec<(String, String)>,
    /// The TOTP secret seen at enrolment.
    pub totp_secret: Option<String>,
    pub recovery_codes: Vec<String>,
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            cookies: Vec::new(),
            totp_secret: None,
            recovery_codes: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, r: &Reply) {
        for (n, v) in r.cookies() {
            self.cookies.retain(|(m, _)| *m != n);
            if !v.is_empty() {
                self.cookies.push((n, v));
            }
        }
    }

    /// The session cookie's value, if signed in.
    pub fn session_id(&self) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == "__Host-caldicott-session")
            .map(|(_, v)| v.as_str())
    }

    pub async fn get(&mut self, app: &App, path: &str) -> Reply {
        let req = Request::builder()
            .method("GET")
            .uri(path)
            .header("host", HOST)
            .header("user-agent", "console-tests/1")
            .header("cookie", self.cookie_header())
            .body(Body::empty())
            .unwrap();
        let r = app.send(req).await;
        self.keep(&r);
        r
    }

    /// Posts a form as this site's page would: the `Origin` of this site, and `csrf`
    /// filled from the session (unless the fields already name one).
    pub async fn post(&mut self, app: &App, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut all: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if !all.iter().any(|(k, _)| k == "csrf")
            && let Some(id) = self.session_id()
        {
            all.push(("csrf".into(), caldicott_console::web::csrf_token(id)));
        }
        self.post_raw(app, path, &all, Some(SITE)).await
    }

    /// Posts exactly these fields with this `Origin` (None: no Origin header).
    pub async fn post_raw(
        &mut self,
        app: &App,
        path: &str,
        fields: &[(String, String)],
        origin: Option<&str>,
    ) -> Reply {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .finish();
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header("host", HOST)
            .header("user-agent", "console-tests/1")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", self.cookie_header());
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let r = app.send(req.body(Body::from(body)).unwrap()).await;
        self.keep(&r);
        r
    }

    /// Gets a page with a form, then posts `fields` with the form's CSRF token.
    pub async fn submit(&mut self, app: &App, path: &str, fields: &[(&str, &str)]) -> Reply {
        let page = self.get(app, path).await;
        let csrf = page.input_value("csrf").unwrap_or_default();
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf", &csrf));
        self.post(app, path, &all).await
    }

    /// The current TOTP code of the enrolled secret.
    pub fn code(&self) -> String {
        let secret = caldicott_identity::TotpSecret::from_base32(
            self.totp_secret.as_deref().expect("enrolled"),
        )
        .unwrap();
        caldicott_identity::Totp::new(secret)
            .code_at(u64::try_from(caldicott_vault::now_micros() / 1_000_000).unwrap())
    }

    /// First sign-in: one-time password, new password, enrolment, first code.
    pub async fn sign_in_first_time(
        &mut self,
        app: &App,
        name: &str,
        one_time: &str,
        purpose: &str,
    ) {
        let r = self
            .submit(app, "/signin", &[("user", name), ("password", one_time)])
            .await
            .expect(303);
        assert_eq!(r.location(), "/signin/new-password");
        let r = self
            .submit(
                app,
                "/signin/new-password",
                &[("new_password", STRONG), ("confirm_password", STRONG)],
            )
            .await
            .expect(303);
        assert_eq!(r.location(), "/signin/enrol");
        let page = self.get(app, "/signin/enrol").await.expect(200);
        self.totp_secret = page.text_of_id("totp-secret");
        if let Some(at) = page.body.find("id=\"recovery-codes\"") {
            let list = &page.body[at..page.body[at..]
                .find("</ul>")
                .map_or(page.body.len(), |e| at + e)];
            self.recovery_codes = list
                .split("<code>")
                .skip(1)
                .filter_map(|c| c.split("</code>").next())
                .map(str::to_owned)
                .collect();
        }
        let csrf = page.input_value("csrf").unwrap();
        let code = self.code();
        let r = self
            .post(
                app,
                "/signin/enrol",
                &[("code", &code), ("purpose", purpose), ("csrf", &csrf)],
            )
            .await
            .expect(303);
        assert_eq!(r.location(), "/");
        assert!(
            self.session_id().is_some(),
            "no session cookie after enrolment"
        );
    }
}

/// Every event to the audit ledger (as `caldicott serve` records them) and a copy in memory
/// for [`App::events`]. Events about writes travel inside the write's transaction to the
/// ledger only (the sink is transactional, as the deployment's), so memory holds the rest.
pub struct TeeSink {
    pub ledger: caldicott_api::audit::LedgerSink,
    pub memory: Arc<MemorySink>,
}

impl AuditSink for TeeSink {
    fn record(&self, events: Vec<AuditEvent>) -> Result<(), caldicott_api::audit::AuditError> {
        self.memory.record(events.clone())?;
        self.ledger.record(events)
    }

    fn transactional(&self) -> bool {
        true
    }
}

impl App {
    /// Like [`App::new`], with a real audit ledger (`caldicott_vault::Ledger` behind the
    /// API's `LedgerSink`, as `src/serve.rs` builds it) given to the console and the API, for
    /// pages that read the ledger (access history).
    pub fn with_ledger() -> App {
        let dir = tempfile::tempdir().unwrap();
        let backend = SqliteBackend::open(&dir.path().join("vault.db"), true).unwrap();
        backend.migrate().unwrap();
        let kek = Arc::new(LocalKek::generate().unwrap().0);
        let vault = Arc::new(Vault::open(Box::new(backend), kek).unwrap());
        let directory = Arc::new(Directory::new(Arc::clone(&vault)));
        directory
            .add_org(&OdsCode::parse(ORG).unwrap(), "Castle Care Home")
            .unwrap();
        directory
            .add_org(&OdsCode::parse(OTHER_ORG).unwrap(), "River Surgery")
            .unwrap();
        let ledger =
            caldicott_vault::Ledger::open(Arc::clone(&vault), "caldicott.test/audit").unwrap();
        let memory = Arc::new(MemorySink::default());
        let audit: Arc<dyn AuditSink> = Arc::new(TeeSink {
            ledger: caldicott_api::audit::LedgerSink(Arc::clone(&ledger)),
            memory: Arc::clone(&memory),
        });
        let config = ApiConfig {
            public_base: None,
            scheme: "https",
            max_body_bytes: 1 << 20,
        };
        let store = Arc::new(Store::new(Arc::clone(&vault), OdsCode::parse(ORG).unwrap()));
        let api = FhirApi {
            store: Arc::clone(&store),
            directory: Arc::clone(&directory),
            audit: Arc::clone(&audit),
            ledger: Some(Arc::clone(&ledger)),
            exports: Arc::new(Exports::new(dir.path().join("exports")).unwrap()),
            config: config.clone(),
        };
        let console = ConsoleState::new(
            Arc::clone(&vault),
            Arc::clone(&store),
            Arc::clone(&directory),
            audit,
            Some(ledger),
            &config,
        );
        let router = caldicott_console::router(Arc::new(console))
            .merge(caldicott_api::router(Arc::new(api)));
        App {
            router,
            vault,
            directory,
            store,
            audit: memory,
            dir,
        }
    }
}
