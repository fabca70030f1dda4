//! Sign-in over HTTP, at `/auth`: a person's password and authenticator code give a bearer
//! token or a browser session for the FHIR API; a system client's id and secret give a
//! bearer token (OAuth 2.0 client credentials).
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /auth/password` | JSON `user`, `password`, `new_password` | 204 |
//! | `POST /auth/mfa/enrol` | JSON `user`, `password` | `secret`, `otpauth_uri`, `qr_svg`, `recovery_codes` |
//! | `POST /auth/mfa/confirm` | JSON `user`, `password`, `code` | 204 |
//! | `POST /auth/login` | JSON `user`, `password`, `code`, `purpose` (default `direct-care`) | `access_token`, `token_type`, `expires_in`, `scope`, `purpose` |
//! | `POST /auth/session` | JSON `user`, `password`, `code`, `purpose` (default `direct-care`) | the session cookie; `csrf_token`, `user`, `org`, `role`, `purpose`, `started_at`, `expires_at`, `idle_expires_at`, `idle_timeout`, `absolute_timeout` |
//! | `GET /auth/session` | the session cookie | `user`, `org`, `role`, `purpose`, `started_at`, `expires_at`, `idle_expires_at`; 401 when there is none |
//! | `POST /auth/logout` | the session cookie and `X-CSRF-Token` (or `Authorization: Bearer`) | 204, the cookie cleared (the token revoked) |
//! | `POST /auth/token` | form: `grant_type=client_credentials`, `scope`, `purpose`; the client by HTTP Basic or `client_id` and `client_secret` | `access_token`, `token_type`, `expires_in`, `scope` |
//!
//! Wrong credentials are 401 whatever was wrong; too many attempts 429 with `Retry-After`.
//! The logic lives in `caldicott_access::signin` and `caldicott_access::session`; this is
//! only their HTTP face.
//!
//! **Browser sessions.** `POST /auth/session` (a JSON body: a cross-site form cannot send
//! one without a CORS preflight, which is never granted) answers with the cookie
//! `__Host-caldicott-session=<id>; Secure; HttpOnly; SameSite=Strict; Path=/`: scripts
//! cannot read it, it goes only to this host over HTTPS, and never with a request another
//! site starts. It has no `Max-Age` (the browser forgets it when it closes); the server ends
//! the session after 15 minutes idle or 8 hours in all (`caldicott_access::session`). The
//! FHIR API accepts the cookie in place of a bearer token.
//!
//! **CSRF.** Besides `SameSite=Strict`, every request that changes state (any method but
//! `GET`, `HEAD`, `OPTIONS`) made with the cookie must carry the session's CSRF token in
//! `X-CSRF-Token`: a random value returned once in the body of `POST /auth/session`, which
//! the page keeps in memory (only its hash is stored, bound to the session). A missing or
//! wrong one is 403. Any request with the cookie whose `Origin` is not this server's (its
//! public URL, or else the `Host` it was sent to), or whose `Sec-Fetch-Site` says
//! `cross-site` or `same-site`, is 403 as well. Bearer tokens need none of this: a browser
//! never attaches them by itself.
//!
//! **Client credentials** (RFC 6749 §4.4). `POST /auth/token` with
//! `grant_type=client_credentials` and `scope` (one or more SMART `system/` scopes,
//! required) gives a 15-minute bearer token to a user of role `system`, whose id is its user
//! name and whose secret is its password (the one-time password `user add --role system`
//! prints, used as it is; see `caldicott_access::signin`). The client authenticates with
//! HTTP Basic (`client_id:client_secret`, each form-urlencoded) or with `client_id` and
//! `client_secret` in the body, never both. `purpose` (a Caldicott extension, default
//! `direct-care`) is the purpose of use the token carries. Errors are RFC 6749 §5.2 JSON
//! (`error`, `error_description`): `invalid_request`, `invalid_client` (401 with
//! `WWW-Authenticate: Basic`), `unauthorized_client` (a person's credentials),
//! `unsupported_grant_type`, `invalid_scope`; 429 `temporarily_unavailable` when throttled.
//!
//! **Audit.** Every sign-in, refused sign-in, password change, MFA enrolment and
//! confirmation, and logout is recorded through the [`AuditSink`]. A refused sign-in names
//! the claimed user only if the user exists (otherwise `""`: whatever was typed might be a
//! password). If the event cannot be recorded the answer is 503 and nothing is granted: a
//! token or session just made is revoked. A password change or enrolment already made
//! stands (the answer is 503 all the same); a logout still ends the session.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use caldicott_access::session::{NewSession, Session};
use caldicott_access::signin::{
    CLIENT_TOKEN_TTL_SECS, SIGN_IN_SCOPES, SIGN_IN_TTL_SECS, SignIn, SignInError,
};
use caldicott_access::{AuthError, Directory, User};
use caldicott_identity::LoginThrottle;
use caldicott_policy::{Purpose, Scope, ScopeContext, Scopes};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::{Zeroize, Zeroizing};

use crate::audit::{AuditEvent, AuditSink, EventKind, Origin, Outcome, security_event};

/// The session cookie's name. The `__Host-` prefix makes browsers accept it only with
/// `Secure`, `Path=/` and no `Domain`, so no other host can set or overwrite it.
pub const SESSION_COOKIE: &str = "__Host-caldicott-session";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A clock: microseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What the sign-in routes share.
pub struct AuthState {
    pub directory: Arc<Directory>,
    pub throttle: std::sync::Mutex<LoginThrottle>,
    /// Where sign-in events go: the same sink as the FHIR API's.
    pub audit: Arc<dyn AuditSink>,
    /// The externally visible base URL, as `ApiConfig::public_base`: browsers' `Origin`
    /// must be its origin (or, when `None`, that of the `Host` the request was sent to).
    pub public_base: Option<String>,
    /// `https` or `http`, as `ApiConfig::scheme`.
    pub scheme: &'static str,
    /// The time of sign-in steps and of sessions seen here (tests move it to cross the
    /// session timeouts); tokens are stamped and checked on the system clock.
    pub clock: Clock,
}

impl AuthState {
    /// The state for a directory and audit sink, with the FHIR API's idea of its own URL,
    /// the default throttle and the system clock.
    pub fn new(
        directory: Arc<Directory>,
        audit: Arc<dyn AuditSink>,
        config: &crate::ApiConfig,
    ) -> Self {
        AuthState {
            directory,
            throttle: caldicott_access::signin::new_throttle(),
            audit,
            public_base: config.public_base.clone(),
            scheme: config.scheme,
            clock: Arc::new(caldicott_vault::now_micros),
        }
    }
}

/// The `/auth` routes.
pub fn router(state: Arc<AuthState>) -> Router {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/password", post(password))
        .route("/auth/mfa/enrol", post(enrol))
        .route("/auth/mfa/confirm", post(confirm))
        .route("/auth/session", post(start_session).get(current_session))
        .route("/auth/logout", post(logout))
        .route("/auth/token", post(token))
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    user: String,
    password: String,
    #[serde(default)]
    new_password: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    purpose: Option<String>,
}

impl Drop for Credentials {
    /// Wipes the secrets from memory.
    fn drop(&mut self) {
        self.password.zeroize();
        if let Some(p) = &mut self.new_password {
            p.zeroize();
        }
        if let Some(c) = &mut self.code {
            c.zeroize();
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn unaudited() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the audit trail cannot be written; try again later",
    )
}

fn refused(e: &SignInError) -> Response {
    let status = match e {
        SignInError::Credentials => StatusCode::UNAUTHORIZED,
        SignInError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        SignInError::Disabled
        | SignInError::MustChangePassword
        | SignInError::MustEnrol
        | SignInError::NotAClient => StatusCode::FORBIDDEN,
        SignInError::Rejected(_) => StatusCode::BAD_REQUEST,
        SignInError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut r = error(status, &e.to_string());
    retry_after(&mut r, e);
    r
}

fn retry_after(r: &mut Response, e: &SignInError) {
    if let SignInError::Throttled(secs) = e
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// What an audit event says about a refusal: fixed words, never what was typed.
fn reason(e: &SignInError) -> &'static str {
    match e {
        SignInError::Credentials => "wrong user name, password or code",
        SignInError::Throttled(_) => "too many failed attempts",
        SignInError::Disabled => "account disabled",
        SignInError::MustChangePassword => "one-time password not yet changed",
        SignInError::MustEnrol => "no authenticator enrolled",
        SignInError::NotAClient => "not a system client",
        SignInError::Rejected(_) => "refused by policy",
        SignInError::Unavailable => "directory unavailable",
    }
}

/// One request's context on the blocking pool: the sign-in service, who is asking from
/// where, and the time.
struct Ctx<'a> {
    state: &'a AuthState,
    signin: SignIn<'a>,
    origin: Origin,
    ip: IpAddr,
    now: i64,
}

impl Ctx<'_> {
    /// An event about a known user.
    fn event(&self, kind: EventKind, action: &str, user: &User, outcome: Outcome) -> AuditEvent {
        let reason = match outcome {
            Outcome::Permit => "succeeded",
            Outcome::Deny => "refused",
        };
        security_event(
            kind,
            action,
            &user.name,
            &user.org,
            &user.role,
            &self.origin,
            outcome,
            reason,
            self.now,
        )
    }

    /// An event about a refusal for `claimed`, named only if such a user exists. Wrong
    /// credentials, throttling and a disabled account are refused sign-ins whatever the
    /// step; other refusals of a credentials step are of `kind`.
    fn refusal(&self, kind: EventKind, action: &str, claimed: &str, e: &SignInError) -> AuditEvent {
        let kind = match e {
            SignInError::Credentials | SignInError::Throttled(_) | SignInError::Disabled => {
                EventKind::LoginFailed
            }
            _ => kind,
        };
        let known = self.state.directory.user(claimed).ok().flatten();
        let (user, org, role) = known.as_ref().map_or(("", "", ""), |u| {
            (u.name.as_str(), u.org.as_str(), u.role.as_str())
        });
        security_event(
            kind,
            action,
            user,
            org,
            role,
            &self.origin,
            Outcome::Deny,
            reason(e),
            self.now,
        )
    }

    /// Records one event; `Err` is the 503 to send instead of the answer.
    fn record(&self, event: AuditEvent) -> Result<(), Box<Response>> {
        self.state.audit.record(vec![event]).map_err(|e| {
            tracing::error!(error = %e, "audit trail unavailable: sign-in request refused");
            Box::new(unaudited())
        })
    }

    /// Records the refusal and answers it.
    fn refuse(&self, kind: EventKind, action: &str, claimed: &str, e: &SignInError) -> Response {
        match self.record(self.refusal(kind, action, claimed, e)) {
            Ok(()) => refused(e),
            Err(r) => *r,
        }
    }
}

/// Runs `f` on the blocking pool (Argon2id takes tens of milliseconds) with the request's
/// context.
async fn blocking(
    state: Arc<AuthState>,
    peer: SocketAddr,
    headers: &HeaderMap,
    f: impl FnOnce(&Ctx<'_>) -> Response + Send + 'static,
) -> Response {
    let origin = Origin::new(Some(peer), headers);
    tokio::task::spawn_blocking(move || {
        let ctx = Ctx {
            state: &state,
            signin: SignIn::new(&state.directory, &state.throttle),
            origin,
            ip: peer.ip(),
            now: (state.clock)(),
        };
        f(&ctx)
    })
    .await
    .unwrap_or_else(|_| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sign-in failed unexpectedly",
        )
    })
}

/// Runs one JSON sign-in step.
async fn step(
    state: Arc<AuthState>,
    peer: SocketAddr,
    headers: HeaderMap,
    body: Bytes,
    f: impl FnOnce(&Ctx<'_>, Credentials) -> Response + Send + 'static,
) -> Response {
    let creds: Credentials = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the body must be JSON with user and password (and code, new_password or purpose as the step needs)",
            );
        }
    };
    blocking(state, peer, &headers, move |ctx| f(ctx, creds)).await
}

fn purpose_of(c: &Credentials) -> Result<Purpose, Box<Response>> {
    c.purpose
        .as_deref()
        .unwrap_or("direct-care")
        .parse()
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &format!("{e}"))))
}

async fn login(
    State(state): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    step(state, peer, headers, body, |ctx, c| {
        let purpose = match purpose_of(&c) {
            Ok(p) => p,
            Err(r) => return *r,
        };
        let code = c.code.as_deref().unwrap_or("");
        match ctx
            .signin
            .sign_in_user(&c.user, &c.password, code, purpose, ctx.ip, ctx.now)
        {
            Ok((user, token)) => {
                let mut event = ctx.event(EventKind::Login, "login", &user, Outcome::Permit);
                event.purpose = purpose.to_string();
                if let Err(r) = ctx.record(event) {
                    let _ = ctx.state.directory.revoke_token(&token);
                    return *r;
                }
                axum::Json(json!({
                    "access_token": token.as_str(),
                    "token_type": "Bearer",
                    "expires_in": SIGN_IN_TTL_SECS,
                    "scope": SIGN_IN_SCOPES,
                    "purpose": purpose.to_string(),
                }))
                .into_response()
            }
            Err(e) => ctx.refuse(EventKind::LoginFailed, "login", &c.user, &e),
        }
    })
    .await
}

async fn password(
    State(state): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    step(state, peer, headers, body, |ctx, c| {
        let Some(new) = c.new_password.as_deref() else {
            return error(StatusCode::BAD_REQUEST, "new_password is missing");
        };
        match ctx
            .signin
            .change_password(&c.user, &c.password, new, ctx.ip, ctx.now)
        {
            Ok(()) => credentials_changed(ctx, "password-change", &c.user)
                .unwrap_or_else(|| StatusCode::NO_CONTENT.into_response()),
            Err(e) => ctx.refuse(EventKind::Credentials, "password-change", &c.user, &e),
        }
    })
    .await
}

/// Records a credentials change just made; `Some` is the 503 to answer instead.
fn credentials_changed(ctx: &Ctx<'_>, action: &str, name: &str) -> Option<Response> {
    let user = match ctx.state.directory.user(name) {
        Ok(Some(u)) => u,
        _ => return Some(unaudited()),
    };
    ctx.record(ctx.event(EventKind::Credentials, action, &user, Outcome::Permit))
        .err()
        .map(|r| *r)
}

async fn enrol(
    State(state): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    step(state, peer, headers, body, |ctx, c| {
        match ctx.signin.enrol(&c.user, &c.password, ctx.ip, ctx.now) {
            Ok(e) => {
                if let Some(r) = credentials_changed(ctx, "mfa-enrol", &c.user) {
                    return r;
                }
                axum::Json(json!({
                    "secret": e.secret_base32.as_str(),
                    "otpauth_uri": e.uri.as_str(),
                    "qr_svg": e.qr_svg.as_str(),
                    "recovery_codes": e.recovery_codes,
                }))
                .into_response()
            }
            Err(e) => ctx.refuse(EventKind::Credentials, "mfa-enrol", &c.user, &e),
        }
    })
    .await
}

async fn confirm(
    State(state): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    step(state, peer, headers, body, |ctx, c| {
        let code = c.code.as_deref().unwrap_or("");
        match ctx
            .signin
            .confirm(&c.user, &c.password, code, ctx.ip, ctx.now)
        {
            Ok(()) => credentials_changed(ctx, "mfa-confirm", &c.user)
                .unwrap_or_else(|| StatusCode::NO_CONTENT.into_response()),
            Err(e) => ctx.refuse(EventKind::Credentials, "mfa-confirm", &c.user, &e),
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Browser sessions

/// The session id from the request's `Cookie` headers, if there is one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// Sets the session cookie on a response (the console signs in through this too).
pub fn set_cookie(r: &mut Response, id: &str) {
    let cookie = Zeroizing::new(format!(
        "{SESSION_COOKIE}={id}; Secure; HttpOnly; SameSite=Strict; Path=/"
    ));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
}

/// Clears the session cookie in the browser.
pub fn clear_cookie(r: &mut Response) {
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-caldicott-session=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
}

/// Why a browser request made with the session cookie is refused (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserRefusal {
    /// Another site (or a sibling host) sent it.
    CrossSite,
    /// It changes state without the session's CSRF token.
    Csrf,
}

impl BrowserRefusal {
    pub fn message(self) -> &'static str {
        match self {
            BrowserRefusal::CrossSite => {
                "cross-site request refused (CSRF protection): its Origin is not this server"
            }
            BrowserRefusal::Csrf => {
                "CSRF check failed: a request that changes data with the session cookie must send the session's CSRF token in X-CSRF-Token"
            }
        }
    }
}

/// Whether a method may change state (everything but `GET`, `HEAD` and `OPTIONS`).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses a request the browser says another site started: `Sec-Fetch-Site` of
/// `cross-site` or `same-site`, or an `Origin` that is not `base`'s (scheme, host and port).
pub fn check_same_origin(headers: &HeaderMap, base: &str) -> Result<(), BrowserRefusal> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("cross-site").trim();
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return Err(BrowserRefusal::CrossSite);
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| BrowserRefusal::CrossSite)?;
    match (origin_of(origin), origin_of(base)) {
        (Some(a), Some(b)) if a == b => Ok(()),
        _ => Err(BrowserRefusal::CrossSite),
    }
}

/// Requires the session's CSRF token on a request that changes state.
pub(crate) fn check_csrf(
    headers: &HeaderMap,
    method: &Method,
    session: &Session,
) -> Result<(), BrowserRefusal> {
    if !changes_state(method) {
        return Ok(());
    }
    let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match presented {
        Some(t) if session.csrf_matches(t.trim()) => Ok(()),
        _ => Err(BrowserRefusal::Csrf),
    }
}

/// The origin of a URL (`scheme://host[:port][/...]`): lower-case scheme and host, and the
/// port, made explicit. `None` for anything else (`null`, no scheme, user info).
fn origin_of(url: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let default = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, p.parse().ok()?),
        _ => (authority, default),
    };
    Some((scheme, host.to_ascii_lowercase(), port))
}

/// The base URL browsers must come from for the `/auth` routes.
fn auth_base(state: &AuthState, uri: &Uri, headers: &HeaderMap) -> String {
    if let Some(b) = &state.public_base {
        return b.clone();
    }
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    format!("{}://{host}", state.scheme)
}

fn browser_refused(r: BrowserRefusal) -> Response {
    error(StatusCode::FORBIDDEN, r.message())
}

/// RFC 3339 UTC text of a time in microseconds.
fn instant(us: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(us.div_euclid(1_000_000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn session_json(s: &Session) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("user".into(), json!(s.auth.user.name));
    m.insert("org".into(), json!(s.auth.user.org));
    m.insert("role".into(), json!(s.auth.role.to_string()));
    m.insert("purpose".into(), json!(s.auth.purpose.to_string()));
    m.insert("started_at".into(), json!(instant(s.started_at)));
    m.insert("expires_at".into(), json!(instant(s.expires_at)));
    m.insert("idle_expires_at".into(), json!(instant(s.idle_expires_at)));
    m
}

async fn start_session(
    State(state): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = check_same_origin(&headers, &auth_base(&state, &uri, &headers)) {
        return browser_refused(r);
    }
    if content_type(&headers) != "application/json" {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "POST /auth/session takes JSON (Content-Type: application/json)",
        );
    }
    step(state, peer, headers, body, |ctx, c| {
        let purpose = match purpose_of(&c) {
            Ok(p) => p,
            Err(r) => return *r,
        };
        let code = c.code.as_deref().unwrap_or("");
        match ctx
            .signin
            .start_session(&c.user, &c.password, code, purpose, ctx.ip, ctx.now)
        {
            Ok(new) => session_started(ctx, &new),
            Err(e) => ctx.refuse(EventKind::LoginFailed, "session", &c.user, &e),
        }
    })
    .await
}

fn session_started(ctx: &Ctx<'_>, new: &NewSession) -> Response {
    let s = &new.session;
    let mut event = ctx.event(EventKind::Login, "session", &s.auth.user, Outcome::Permit);
    event.purpose = s.auth.purpose.to_string();
    if let Err(r) = ctx.record(event) {
        let _ = ctx.state.directory.end_session(&new.id);
        return *r;
    }
    let policy = ctx.state.directory.session_policy();
    let mut body = session_json(s);
    body.insert("csrf_token".into(), json!(new.csrf_token.as_str()));
    body.insert("idle_timeout".into(), json!(policy.idle_us / 1_000_000));
    body.insert(
        "absolute_timeout".into(),
        json!(policy.absolute_us / 1_000_000),
    );
    let mut r = axum::Json(Value::Object(body)).into_response();
    set_cookie(&mut r, &new.id);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The answer to a request whose session cookie is not (or no longer) valid.
fn session_refused(e: AuthError) -> Response {
    if e == AuthError::Unavailable {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the directory cannot be read; try again later",
        );
    }
    let mut r = error(StatusCode::UNAUTHORIZED, &e.to_string());
    clear_cookie(&mut r);
    r
}

async fn current_session(
    State(state): State<Arc<AuthState>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_same_origin(&headers, &auth_base(&state, &uri, &headers)) {
        return browser_refused(r);
    }
    let Some(id) = session_cookie(&headers).map(|s| Zeroizing::new(s.to_owned())) else {
        return error(StatusCode::UNAUTHORIZED, "not signed in");
    };
    tokio::task::spawn_blocking(move || {
        match state.directory.authenticate_session(&id, (state.clock)()) {
            Ok(s) => {
                let mut r = axum::Json(Value::Object(session_json(&s))).into_response();
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            Err(e) => session_refused(e),
        }
    })
    .await
    .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"))
}

async fn logout(
    State(state): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let token = v
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| Zeroizing::new(t.trim().to_owned()));
        let Some(token) = token else {
            return error(
                StatusCode::UNAUTHORIZED,
                "the Authorization header is not a bearer token",
            );
        };
        return blocking(state, peer, &headers, move |ctx| {
            // Tokens carry the real time of their issue, whatever the clock.
            match ctx
                .state
                .directory
                .authenticate(&token, caldicott_vault::now_micros())
            {
                Ok(who) => {
                    if ctx.state.directory.revoke_token(&token).is_err() {
                        return session_refused(AuthError::Unavailable);
                    }
                    logged_out(ctx, &who.user)
                }
                Err(e) => session_refused(e),
            }
        })
        .await;
    }
    if let Err(r) = check_same_origin(&headers, &auth_base(&state, &uri, &headers)) {
        return browser_refused(r);
    }
    let Some(id) = session_cookie(&headers).map(|s| Zeroizing::new(s.to_owned())) else {
        return error(StatusCode::UNAUTHORIZED, "not signed in");
    };
    let headers2 = headers.clone();
    blocking(state, peer, &headers, move |ctx| {
        let session = match ctx.state.directory.authenticate_session(&id, ctx.now) {
            Ok(s) => s,
            Err(e) => return session_refused(e),
        };
        if let Err(r) = check_csrf(&headers2, &Method::POST, &session) {
            return browser_refused(r);
        }
        if ctx.state.directory.end_session(&id).is_err() {
            return session_refused(AuthError::Unavailable);
        }
        let mut r = logged_out(ctx, &session.auth.user);
        clear_cookie(&mut r);
        r
    })
    .await
}

/// Records a logout (done already: a logout is never held back) and answers it.
fn logged_out(ctx: &Ctx<'_>, user: &User) -> Response {
    match ctx.record(ctx.event(EventKind::Token, "logout", user, Outcome::Permit)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => *r,
    }
}

fn content_type(h: &HeaderMap) -> String {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// OAuth 2.0 client credentials (RFC 6749 §4.4)

/// An RFC 6749 §5.2 error answer.
fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut r = (
        status,
        axum::Json(json!({ "error": code, "error_description": description })),
    )
        .into_response();
    no_store(&mut r);
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"caldicott\", charset=\"UTF-8\""),
        );
    }
    r
}

fn no_store(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_client(description: &str) -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

/// The answer to a refused client authentication.
fn client_refused(e: &SignInError) -> Response {
    match e {
        SignInError::NotAClient => oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            &e.to_string(),
        ),
        SignInError::Throttled(_) => {
            let mut r = oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                &e.to_string(),
            );
            retry_after(&mut r, e);
            r
        }
        SignInError::Unavailable => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the directory is unavailable; try again later",
        ),
        SignInError::Disabled => invalid_client("the client is disabled"),
        SignInError::Rejected(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "a system client takes system/ scopes",
        ),
        _ => invalid_client("client authentication failed"),
    }
}

/// Form-urlencoded text decoded (`+` is a space, `%XX` a byte), as UTF-8.
fn form_decode(s: &str) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(Vec::with_capacity(s.len()));
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    let text = std::str::from_utf8(&out).ok()?;
    Some(Zeroizing::new(text.to_owned()))
}

/// HTTP Basic client credentials (RFC 6749 §2.3.1: each part form-urlencoded, then
/// `id:secret` in base64). `None` when the header is not well-formed Basic.
fn basic_credentials(v: &HeaderValue) -> Option<(Zeroizing<String>, Zeroizing<String>)> {
    let (scheme, encoded) = v.to_str().ok()?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?,
    );
    let text = std::str::from_utf8(&raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    (!id.is_empty()).then_some((id, secret))
}

/// The requested scopes: one or more SMART `system/` scopes.
fn system_scopes(scope: Option<&str>) -> Result<Scopes, &'static str> {
    let scope = scope.map(str::trim).unwrap_or("");
    if scope.is_empty() {
        return Err("scope is required: one or more SMART system scopes such as system/*.read");
    }
    scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Scope>()
                .ok()
                .filter(|s| s.context == ScopeContext::System)
                .ok_or("every scope must be a SMART system scope such as system/*.read or system/Patient.read")
        })
        .collect()
}

async fn token(
    State(state): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if content_type(&headers) != "application/x-www-form-urlencoded" {
        return invalid_request("the body must be application/x-www-form-urlencoded");
    }
    let mut params: Vec<(String, Zeroizing<String>)> = Vec::new();
    for (k, v) in form_urlencoded::parse(&body) {
        if params.iter().any(|(seen, _)| *seen == k) {
            return invalid_request("a parameter is repeated");
        }
        params.push((k.into_owned(), Zeroizing::new(v.into_owned())));
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match param("grant_type") {
        None | Some("") => return invalid_request("grant_type is missing"),
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only the client_credentials grant is supported here; people sign in with /auth/login or /auth/session",
            );
        }
    }
    let purpose: Purpose = match param("purpose").unwrap_or("direct-care").parse() {
        Ok(p) => p,
        Err(e) => return invalid_request(&e.to_string()),
    };
    let in_body = param("client_id").is_some() || param("client_secret").is_some();
    let (client_id, secret) = match (headers.get(header::AUTHORIZATION), in_body) {
        (Some(_), true) => {
            return invalid_request(
                "use one client authentication method: HTTP Basic or client_id and client_secret in the body, not both",
            );
        }
        (Some(h), false) => match basic_credentials(h) {
            Some(c) => c,
            None => return invalid_client("the Authorization header is not HTTP Basic"),
        },
        (None, true) => match (param("client_id"), param("client_secret")) {
            (Some(id), Some(secret)) if !id.is_empty() => (
                Zeroizing::new(id.to_owned()),
                Zeroizing::new(secret.to_owned()),
            ),
            _ => return invalid_client("client_id and client_secret are both needed"),
        },
        (None, false) => {
            return invalid_client(
                "authenticate the client with HTTP Basic or client_id and client_secret",
            );
        }
    };
    let scopes = system_scopes(param("scope"));
    blocking(state, peer, &headers, move |ctx| {
        let action = "client-credentials";
        let result = match &scopes {
            Ok(scopes) => ctx
                .signin
                .client_credentials(&client_id, &secret, scopes, purpose, ctx.ip, ctx.now),
            Err(description) => {
                // The scope is looked at only once the client is known to be who it says.
                match ctx
                    .signin
                    .authenticate_client(&client_id, &secret, ctx.ip, ctx.now)
                {
                    Ok(user) => {
                        let mut event =
                            ctx.event(EventKind::LoginFailed, action, &user, Outcome::Deny);
                        event.reason = "invalid scope".into();
                        return match ctx.record(event) {
                            Ok(()) => {
                                oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", description)
                            }
                            Err(r) => *r,
                        };
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok((user, token)) => {
                let mut event = ctx.event(EventKind::Login, action, &user, Outcome::Permit);
                event.purpose = purpose.to_string();
                if let Err(r) = ctx.record(event) {
                    let _ = ctx.state.directory.revoke_token(&token);
                    return *r;
                }
                let scope = scopes.as_ref().map(ToString::to_string).unwrap_or_default();
                let mut r = axum::Json(json!({
                    "access_token": token.as_str(),
                    "token_type": "Bearer",
                    "expires_in": CLIENT_TOKEN_TTL_SECS,
                    "scope": scope,
                }))
                .into_response();
                no_store(&mut r);
                r
            }
            Err(e) => match ctx.record(ctx.refusal(EventKind::LoginFailed, action, &client_id, &e))
            {
                Ok(()) => client_refused(&e),
                Err(r) => *r,
            },
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let o = |s| origin_of(s);
        assert_eq!(
            o("https://Example.org"),
            Some(("https".into(), "example.org".into(), 443))
        );
        assert_eq!(o("https://example.org:443/fhir"), o("https://example.org"));
        assert_eq!(
            o("http://[::1]:8080/x"),
            Some(("http".into(), "[::1]".into(), 8080))
        );
        assert_eq!(o("http://[::1]"), Some(("http".into(), "[::1]".into(), 80)));
        assert_ne!(o("http://example.org"), o("https://example.org"));
        for bad in [
            "null",
            "",
            "example.org",
            "ftp://x",
            "https://",
            "https://a@b",
            "https://x:port",
        ] {
            assert_eq!(o(bad), None, "{bad}");
        }
        let mut h = HeaderMap::new();
        assert!(check_same_origin(&h, "https://localhost:8443/fhir").is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://localhost:8443"),
        );
        assert!(check_same_origin(&h, "https://localhost:8443/fhir").is_ok());
        assert!(check_same_origin(&h, "https://localhost/fhir").is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(check_same_origin(&h, "https://localhost/fhir").is_err());
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(check_same_origin(&h, "https://localhost/fhir").is_err());
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(check_same_origin(&h, "https://localhost/fhir").is_ok());
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        assert_eq!(session_cookie(&h), None);
        h.append(header::COOKIE, HeaderValue::from_static("a=b; theme=dark"));
        h.append(
            header::COOKIE,
            HeaderValue::from_static("x=1; __Host-caldicott-session=cds_abc ; y=2"),
        );
        assert_eq!(session_cookie(&h), Some("cds_abc"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("caldicott-session=cds_abc"),
        );
        assert_eq!(session_cookie(&h), None);
    }

    #[test]
    fn basic_and_form_decoding() {
        let v = HeaderValue::from_static("Basic Ym90OnMlM0FlK2NyZXQ=");
        let (id, secret) = basic_credentials(&v).unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("bot", "s:e cret"));
        for bad in ["Bearer x", "Basic !!!", "Basic Ym90", "Basic OnNlY3JldA=="] {
            assert!(
                basic_credentials(&HeaderValue::from_static(bad)).is_none(),
                "{bad}"
            );
        }
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
        assert_eq!(form_decode("a%2Bb+c").unwrap().as_str(), "a+b c");
    }

    #[test]
    fn scopes() {
        assert_eq!(
            system_scopes(Some("system/*.read  system/Patient.write"))
                .unwrap()
                .to_string(),
            "system/*.read system/Patient.write"
        );
        for bad in [
            None,
            Some(""),
            Some("user/*.read"),
            Some("system/Nope.read"),
            Some("openid"),
        ] {
            assert!(system_scopes(bad).is_err(), "{bad:?}");
        }
    }
}
