//! What every console page shares: who is signed in ([`Viewer`]), the CSRF token of forms,
//! form parsing under limits with per-field errors, the page layout and navigation, and
//! responses with the console's security headers.
//!
//! Why the CSRF token is derived: the session's own CSRF token (`caldicott_access::session`)
//! is shown once at sign-in and stored only as a hash, so a server-rendered page cannot put
//! it in a form later. A form's token is instead `HMAC-SHA-256(session id, label)`: only a
//! holder of the session id (the HttpOnly cookie, which no script and no other site can
//! read) can compute it, it is the same on every page of one session, and it dies with the
//! session. It is checked in constant time on every POST, with the `Origin` check.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use caldicott_access::session::Session;
use caldicott_access::{AuthError, User};
use caldicott_api::audit::{AuditEvent, Origin};
use caldicott_policy::Role;
use zeroize::Zeroizing;

use crate::ConsoleState;

/// The console's Content-Security-Policy: nothing runs, styles and images come only from
/// this server (images also as `data:` URIs, for the enrolment QR code), forms post only
/// here, and no page may be framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The largest form body the console reads.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// The longest value of any one form field unless the page says otherwise.
pub const MAX_FIELD_CHARS: usize = 256;

const CSRF_LABEL: &[u8] = b"caldicott-console-csrf-v1";

const STYLESHEET: &str = include_str!("../assets/console.css");

/// The routes of shared assets.
pub fn routes() -> Router<Arc<ConsoleState>> {
    Router::new().route("/assets/console.css", get(stylesheet))
}

async fn stylesheet() -> Response {
    let mut r = (StatusCode::OK, STYLESHEET).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

// ---------------------------------------------------------------------------------------
// Who is signed in

/// The signed-in person of a request.
pub struct Viewer {
    pub session: Session,
    /// The token every form of this session carries.
    pub csrf: String,
    /// Where the request came from, for audit events.
    pub origin: Origin,
}

impl Viewer {
    pub fn user(&self) -> &User {
        &self.session.auth.user
    }

    pub fn role(&self) -> Role {
        self.session.auth.role
    }

    /// The ODS code of the viewer's organisation.
    pub fn org(&self) -> &str {
        &self.session.auth.user.org
    }

    /// Whether the viewer holds one of `roles`.
    pub fn is(&self, roles: &[Role]) -> bool {
        roles.contains(&self.role())
    }

    /// The caller the API's guard decides for.
    pub fn caller(&self) -> caldicott_api::guard::Caller {
        caldicott_api::guard::Caller {
            auth: self.session.auth.clone(),
        }
    }
}

/// The CSRF token of forms in the session whose id is `session_id`.
pub fn csrf_token(session_id: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, session_id.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, CSRF_LABEL);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
}

/// Whether `presented` is the CSRF token of `session_id`, in constant time.
fn csrf_ok(session_id: &str, presented: &str) -> bool {
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(presented) else {
        return false;
    };
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, session_id.as_bytes());
    aws_lc_rs::hmac::verify(&key, CSRF_LABEL, &bytes).is_ok()
}

/// The base URL browsers must come from.
pub fn base_url(state: &ConsoleState, headers: &HeaderMap) -> String {
    if let Some(b) = &state.public_base {
        return b.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    format!("{}://{host}", state.scheme)
}

/// The peer address axum recorded, if any.
pub fn peer(headers_ext: &axum::http::Extensions) -> Option<std::net::SocketAddr> {
    headers_ext
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0)
}

/// The signed-in viewer of a page request, or the answer to send instead: a redirect to
/// the sign-in page (with the cookie cleared) when there is no valid session, 503 when the
/// directory cannot be read. Runs the directory read on the blocking pool.
pub async fn viewer(
    state: &Arc<ConsoleState>,
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
) -> Result<Viewer, Response> {
    let Some(id) =
        caldicott_api::auth::session_cookie(headers).map(|s| Zeroizing::new(s.to_owned()))
    else {
        return Err(to_signin(false));
    };
    let st = Arc::clone(state);
    let origin = Origin::new(peer, headers);
    let found = blocking(move || {
        let now = st.now();
        st.directory
            .authenticate_session(&id, now)
            .map(|session| (session, csrf_token(&id)))
    })
    .await?;
    match found {
        Ok((session, csrf)) => Ok(Viewer {
            session,
            csrf,
            origin,
        }),
        Err(AuthError::Unavailable) => Err(unavailable()),
        Err(_) => Err(to_signin(true)),
    }
}

/// A page for the signed-in viewer with one of `roles`; others get 403.
pub async fn viewer_with(
    state: &Arc<ConsoleState>,
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
    roles: &[Role],
) -> Result<Viewer, Response> {
    let v = viewer(state, headers, peer).await?;
    if v.is(roles) {
        Ok(v)
    } else {
        Err(error_page(
            Some(&v),
            StatusCode::FORBIDDEN,
            "You cannot use this page",
            "Your role does not give access to this page. Ask your organisation's administrator if you need it.",
        ))
    }
}

/// Reads and checks a POST from a signed-in viewer: the body within the limit, the
/// `Origin` this server's, and the form's CSRF token the session's. The parsed form, or the
/// answer to send (403 names the CSRF check, never the token).
pub fn checked_form(
    state: &ConsoleState,
    headers: &HeaderMap,
    viewer: &Viewer,
    body: &Bytes,
) -> Result<Form, Response> {
    if caldicott_api::auth::check_same_origin(headers, &base_url(state, headers)).is_err() {
        return Err(error_page(
            Some(viewer),
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form was not sent from this site.",
        ));
    }
    let form = Form::parse(headers, body).map_err(|e| bad_form(Some(viewer), &e))?;
    let id = caldicott_api::auth::session_cookie(headers).unwrap_or("");
    if !csrf_ok(id, form.get("csrf")) {
        tracing::warn!(
            target: "caldicott::security",
            user = %viewer.user().name,
            "console form refused: CSRF token missing or wrong"
        );
        return Err(error_page(
            Some(viewer),
            StatusCode::FORBIDDEN,
            "Request refused",
            "The form has expired or did not come from this site. Go back, reload the page and try again.",
        ));
    }
    Ok(form)
}

// ---------------------------------------------------------------------------------------
// Forms

/// Why a form body could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the form must be sent as application/x-www-form-urlencoded")]
    ContentType,
    #[error("the form is larger than {MAX_FORM_BYTES} bytes")]
    TooLarge,
    #[error("the form field {0:?} was sent more than once")]
    Duplicate(String),
    #[error("the form has more than 64 fields")]
    TooManyFields,
}

/// A parsed `application/x-www-form-urlencoded` body: each field at most once.
#[derive(Debug, Default)]
pub struct Form {
    fields: Vec<(String, Zeroizing<String>)>,
}

impl Form {
    /// Parses a form body.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Form, FormError> {
        let ctype = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ctype.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(FormError::ContentType);
        }
        Form::from_bytes(body)
    }

    /// Parses the bytes of a form body.
    pub fn from_bytes(body: &[u8]) -> Result<Form, FormError> {
        if body.len() > MAX_FORM_BYTES {
            return Err(FormError::TooLarge);
        }
        let mut fields: Vec<(String, Zeroizing<String>)> = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            if fields.iter().any(|(n, _)| *n == k) {
                return Err(FormError::Duplicate(k.chars().take(32).collect()));
            }
            if fields.len() == 64 {
                return Err(FormError::TooManyFields);
            }
            fields.push((k.into_owned(), Zeroizing::new(v.into_owned())));
        }
        Ok(Form { fields })
    }

    /// A field's value ("" when absent).
    pub fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// A field's value, trimmed, checked for length and control characters; the error
    /// names the field by its label.
    pub fn text(&self, name: &'static str, label: &str, max: usize) -> Result<String, FieldError> {
        let v = self.get(name).trim();
        if v.chars().count() > max {
            return Err(FieldError::new(
                name,
                format!("{label} must be {max} characters or fewer"),
            ));
        }
        if v.chars().any(|c| c.is_control()) {
            return Err(FieldError::new(
                name,
                format!("{label} must not contain control characters"),
            ));
        }
        Ok(v.to_owned())
    }

    /// Like [`Form::text`], and not empty.
    pub fn required(
        &self,
        name: &'static str,
        label: &str,
        max: usize,
    ) -> Result<String, FieldError> {
        let v = self.text(name, label, max)?;
        if v.is_empty() {
            return Err(FieldError::new(
                name,
                format!("Enter {}", lower_first(label)),
            ));
        }
        Ok(v)
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// An error in one field, shown next to it and in the error summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's `name` (its input's id too): the summary links to `#<field>`.
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// The errors of one form: looked up by field in templates.
#[derive(Debug, Clone, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, e: FieldError) {
        if !self.0.iter().any(|x| x.field == e.field) {
            self.0.push(e);
        }
    }

    /// The message for `field`, if it has one.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    /// Whether `field` has an error.
    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    pub fn all(&self) -> &[FieldError] {
        &self.0
    }
}

// ---------------------------------------------------------------------------------------
// Layout

/// A link in the header navigation.
pub struct NavItem {
    pub id: &'static str,
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What the shared layout (`templates/base.html`) shows around a page.
pub struct Layout {
    /// The page's title: never patient data.
    pub title: String,
    /// Signed-in details, when there is a viewer.
    pub user: Option<LayoutUser>,
    pub nav: Vec<NavItem>,
    /// The CSRF token for forms in the page (the sign-out form included).
    pub csrf: String,
}

/// The signed-in person, as the header shows them.
pub struct LayoutUser {
    pub name: String,
    pub role: String,
    pub org: String,
    pub purpose: String,
    /// When the session ends if idle, and at the latest (UK time, `HH:MM`).
    pub idle_ends: String,
    pub ends: String,
    /// Set when the session's absolute end is less than 30 minutes away: the page warns
    /// that the person will have to sign in again soon.
    pub ends_soon: bool,
}

/// How long before a session's absolute end pages start to warn.
pub const SESSION_WARNING_US: i64 = 30 * 60 * 1_000_000;

/// Which sections a role sees in the navigation. The pages check the role themselves: a
/// hidden link is a convenience, not the control.
pub fn sections(role: Role) -> &'static [&'static str] {
    match role {
        Role::CareWorker | Role::RegisteredNurse | Role::Gp | Role::Receptionist => {
            &["home", "patients"]
        }
        Role::CaldicottGuardian => &["home", "patients", "guardian", "mail"],
        Role::Sysadmin => &["home", "mail", "admin"],
        Role::Researcher | Role::System => &["home"],
    }
}

const NAV: &[(&str, &str, &str, &str)] = &[
    ("home", "nav-home", "/", "Home"),
    ("patients", "nav-patients", "/patients", "Patients"),
    (
        "guardian",
        "nav-guardian",
        "/guardian",
        "Caldicott guardian",
    ),
    ("mail", "nav-mail", "/mail", "Mail quarantine"),
    ("admin", "nav-admin", "/administration", "Administration"),
];

impl Layout {
    /// The layout of a signed-in page in `section`.
    pub fn new(viewer: &Viewer, title: impl Into<String>, section: &str) -> Layout {
        let s = &viewer.session;
        let allowed = sections(viewer.role());
        Layout {
            title: title.into(),
            user: Some(LayoutUser {
                name: s.auth.user.name.clone(),
                role: role_label(viewer.role()).to_owned(),
                org: s.auth.user.org.clone(),
                purpose: s.auth.purpose.to_string(),
                idle_ends: clock_time(s.idle_expires_at),
                ends: clock_time(s.expires_at),
                ends_soon: s.expires_at - caldicott_vault::now_micros() < SESSION_WARNING_US,
            }),
            nav: NAV
                .iter()
                .filter(|(sec, ..)| allowed.contains(sec))
                .map(|&(sec, id, href, label)| NavItem {
                    id,
                    href,
                    label,
                    current: sec == section,
                })
                .collect(),
            csrf: viewer.csrf.clone(),
        }
    }

    /// The layout of a page before sign-in.
    pub fn public(title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            user: None,
            nav: Vec::new(),
            csrf: String::new(),
        }
    }
}

/// A role as people say it.
pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::CareWorker => "Care worker",
        Role::RegisteredNurse => "Registered nurse",
        Role::Gp => "GP",
        Role::Receptionist => "Receptionist",
        Role::CaldicottGuardian => "Caldicott guardian",
        Role::Sysadmin => "System administrator",
        Role::Researcher => "Researcher",
        Role::System => "System",
    }
}

/// `HH:MM` in UK time of a time in microseconds.
pub fn clock_time(us: i64) -> String {
    let t = caldicott_audit::uktime::uk_local(us);
    format!("{:02}:{:02}", t.hour, t.minute)
}

/// `Sunday 29 November 2026, 2:39pm GMT`, for tables and reports.
pub fn date_time(us: i64) -> String {
    caldicott_audit::uktime::uk_local(us).long()
}

// ---------------------------------------------------------------------------------------
// Responses

/// A rendered page with the console's headers: HTML, the console CSP, `no-store` (pages
/// may show patient data).
pub fn page(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The referrer goes only to this site (whose URLs carry no patient data), so that the
    // browser sends the page's real `Origin` with its form posts, which the CSRF check
    // compares with this server's (with `no-referrer` it would send `Origin: null`).
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// Gives a request without a `Host` header (HTTP/2 carries the host in the `:authority`
/// pseudo-header, which is the URI's authority here) one from its URI, so that the
/// console's origin checks compare with the host the browser used.
pub async fn host_from_authority(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !req.headers().contains_key(header::HOST)
        && let Some(v) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        req.headers_mut().insert(header::HOST, v);
    }
    next.run(req).await
}

/// Renders a template into a page; a template error is a logged 500 page.
pub fn render<T: askama::Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(body) => page(status, body),
        Err(e) => {
            tracing::error!(error = %e, "a console template failed to render");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>Sorry, there is a problem with the service.</p>"
                    .to_owned(),
            )
        }
    }
}

/// `303 See Other` to `to` (a path on this site).
pub fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// To the sign-in page; `expired` says the session ended (and clears the cookie).
pub fn to_signin(expired: bool) -> Response {
    let mut r = redirect(if expired {
        "/signin?expired=1"
    } else {
        "/signin"
    });
    if expired {
        caldicott_api::auth::clear_cookie(&mut r);
    }
    r
}

#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    heading: &'a str,
    message: &'a str,
}

/// An error page, inside the layout when someone is signed in.
pub fn error_page(
    viewer: Option<&Viewer>,
    status: StatusCode,
    heading: &str,
    message: &str,
) -> Response {
    let layout = match viewer {
        Some(v) => Layout::new(v, heading, ""),
        None => Layout::public(heading),
    };
    render(
        status,
        &ErrorPage {
            layout,
            heading,
            message,
        },
    )
}

/// The page for a form body that could not be read.
pub fn bad_form(viewer: Option<&Viewer>, e: &FormError) -> Response {
    let status = match e {
        FormError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        FormError::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    error_page(viewer, status, "The form could not be read", &e.to_string())
}

/// 503: the directory or the vault cannot be read.
pub fn unavailable() -> Response {
    error_page(
        None,
        StatusCode::SERVICE_UNAVAILABLE,
        "Sorry, the service is unavailable",
        "The record store cannot be read just now. Try again in a few minutes.",
    )
}

/// 503: the audit trail cannot be written, so nothing is shown.
pub fn unaudited(viewer: Option<&Viewer>) -> Response {
    error_page(
        viewer,
        StatusCode::SERVICE_UNAVAILABLE,
        "Sorry, the service is unavailable",
        "The audit trail cannot be written just now, so nothing can be shown. Try again in a few minutes.",
    )
}

/// Runs blocking work (directory, vault, Argon2id) on the blocking pool; a panic there is
/// a 500 page.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        tracing::error!("a console request failed unexpectedly");
        error_page(
            None,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sorry, there is a problem with the service",
            "Try again later.",
        )
    })
}

/// Records audit events before a page that depends on them is sent; `Err` is the 503 page.
pub fn record(
    state: &ConsoleState,
    viewer: Option<&Viewer>,
    events: Vec<AuditEvent>,
) -> Result<(), Response> {
    if events.is_empty() {
        return Ok(());
    }
    state.audit.record(events).map_err(|e| {
        tracing::error!(error = %e, "audit trail unavailable: console page refused");
        unaudited(viewer)
    })
}

/// Unwraps a handler step that is either a value or the response to send.
#[macro_export]
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_bind_to_the_session() {
        let a = csrf_token("session-a");
        assert!(csrf_ok("session-a", &a));
        assert!(!csrf_ok("session-b", &a));
        assert!(!csrf_ok("session-a", ""));
        assert!(!csrf_ok("session-a", "not base64 !"));
        let mut flipped = a.into_bytes();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        assert!(!csrf_ok(
            "session-a",
            std::str::from_utf8(&flipped).unwrap_or("")
        ));
    }

    #[test]
    fn forms_refuse_duplicates_and_oversize() {
        assert_eq!(
            Form::from_bytes(b"a=1&a=2").err(),
            Some(FormError::Duplicate("a".into()))
        );
        assert_eq!(
            Form::from_bytes(&vec![b'a'; MAX_FORM_BYTES + 1]).err(),
            Some(FormError::TooLarge)
        );
        let f = Form::from_bytes(b"name=%3Cscript%3E&x=").unwrap_or_default();
        assert_eq!(f.get("name"), "<script>");
        assert_eq!(
            f.required("x", "Your name", 10).err().map(|e| e.message),
            Some("Enter your name".to_owned())
        );
        let long = Form::from_bytes(format!("n={}", "a".repeat(11)).as_bytes()).unwrap_or_default();
        assert!(long.text("n", "Name", 10).is_err());
        let ctl = Form::from_bytes(b"n=a%00b").unwrap_or_default();
        assert!(ctl.text("n", "Name", 10).is_err());
    }
}
