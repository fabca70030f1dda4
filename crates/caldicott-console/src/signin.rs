//! Signing in and out of the console, first sign-in, and changing a password.
//!
//! A sign-in takes two pages: the user name and password (`/signin`), then the
//! authenticator code and the purpose of use (`/signin/code`). Someone holding the
//! one-time password from `caldicott user add` first chooses a password
//! (`/signin/new-password`) and enrols an authenticator (`/signin/enrol`: QR code, the
//! secret as text, recovery codes shown once); confirming the first code signs them in.
//! Between the pages the server keeps a *pending sign-in* in memory for at most five
//! minutes, named by a random ticket in the cookie `__Host-caldicott-signin`; it holds the
//! password (zeroised when dropped) because every step of `caldicott_access::signin`
//! checks it again. A session always gets a new id, and a session cookie the browser still
//! had is ended first, so a session id planted before sign-in is worth nothing.
//!
//! Forms before sign-in carry a CSRF token derived from a random per-form cookie (or from
//! the ticket), and every POST must come from this site's origin. Every sign-in, refused
//! sign-in, password change, enrolment and sign-out is an audit event, named as the API's
//! (`caldicott_api::auth`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use caldicott_access::signin::{SignIn, SignInError};
use caldicott_api::audit::{AuditEvent, EventKind, Origin, Outcome, security_event};
use caldicott_policy::Purpose;
use zeroize::Zeroizing;

use crate::web::{self, Errors, FieldError, Form, Layout};
use crate::{ConsoleState, tri};

const TICKET_COOKIE: &str = "__Host-caldicott-signin";
const FORM_COOKIE: &str = "__Host-caldicott-form";
/// How long a half-finished sign-in is kept.
const PENDING_US: i64 = 5 * 60 * 1_000_000;
/// At most this many half-finished sign-ins are kept; the oldest go first.
const PENDING_MAX: usize = 10_000;

pub fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/signin", get(signin_page).post(signin_post))
        .route(
            "/signin/new-password",
            get(new_password_page).post(new_password_post),
        )
        .route("/signin/enrol", get(enrol_page).post(enrol_post))
        .route("/signin/code", get(code_page).post(code_post))
        .route("/signout", axum::routing::post(signout))
        .route("/account/password", get(password_page).post(password_post))
}

// ---------------------------------------------------------------------------------------
// Pending sign-ins

/// Which page a half-finished sign-in is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    NewPassword,
    Enrol,
    Code,
}

impl Stage {
    fn path(self) -> &'static str {
        match self {
            Stage::NewPassword => "/signin/new-password",
            Stage::Enrol => "/signin/enrol",
            Stage::Code => "/signin/code",
        }
    }
}

/// What the enrolment page shows, kept so that a wrong code shows the same secret again.
#[derive(Clone)]
struct Shown {
    secret: Zeroizing<String>,
    qr_data_uri: Zeroizing<String>,
    recovery_codes: Vec<Zeroizing<String>>,
}

#[derive(Clone)]
struct Pending {
    user: String,
    /// The person's role: the sign-in pages offer only the purposes it may act for.
    role: Option<caldicott_policy::Role>,
    password: Zeroizing<String>,
    stage: Stage,
    enrolment: Option<Shown>,
    expires_at: i64,
}

/// Half-finished sign-ins by the SHA-256 of their ticket.
#[derive(Default)]
pub struct PendingSignIns(Mutex<HashMap<String, Pending>>);

impl PendingSignIns {
    fn insert(&self, pending: Pending, now: i64) -> Zeroizing<String> {
        let ticket = random_token();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, p| p.expires_at > now);
        if map.len() >= PENDING_MAX
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, p)| p.expires_at)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(hash(&ticket), pending);
        ticket
    }

    fn get(&self, ticket: &str, now: i64) -> Option<Pending> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&hash(ticket))
            .filter(|p| p.expires_at > now)
            .cloned()
    }

    fn update(&self, ticket: &str, f: impl FnOnce(&mut Pending)) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = map.get_mut(&hash(ticket)) {
            f(p);
        }
    }

    fn remove(&self, ticket: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&hash(ticket));
    }
}

fn hash(ticket: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ticket.as_bytes());
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(d.as_ref())
}

/// 32 random bytes, base64url.
fn random_token() -> Zeroizing<String> {
    let bytes: [u8; 32] = rand::random();
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<Zeroizing<String>> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| Zeroizing::new(v.trim().to_owned()))
        .filter(|v| !v.is_empty())
}

fn set_cookie(r: &mut Response, name: &str, value: &str, max_age: u32) {
    let c = Zeroizing::new(format!(
        "{name}={value}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}"
    ));
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn clear(r: &mut Response, name: &str) {
    set_cookie(r, name, "", 0);
}

/// The pending sign-in of this browser at `stage`, or the redirect to where it should be.
fn pending_at(
    state: &ConsoleState,
    headers: &HeaderMap,
    stage: Stage,
) -> Result<(Zeroizing<String>, Pending), Response> {
    let Some(ticket) = cookie(headers, TICKET_COOKIE) else {
        return Err(web::redirect("/signin?expired=1"));
    };
    match state.pending.get(&ticket, state.now()) {
        Some(p) if p.stage == stage => Ok((ticket, p)),
        Some(p) => Err(web::redirect(p.stage.path())),
        None => {
            let mut r = web::redirect("/signin?expired=1");
            clear(&mut r, TICKET_COOKIE);
            Err(r)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared pieces

fn client_ip(ext: &Extensions) -> IpAddr {
    web::peer(ext).map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a: SocketAddr| a.ip())
}

/// The error message for a refused step, as the person should read it.
fn refusal_message(e: &SignInError) -> String {
    match e {
        SignInError::Credentials => "The user name, password or code is not right".into(),
        SignInError::Throttled(s) => format!(
            "Too many attempts. Wait {} minutes, then try again",
            s.div_ceil(60).max(1)
        ),
        SignInError::Disabled => {
            "This account is disabled. Ask your organisation's administrator".into()
        }
        SignInError::Rejected(m) => m.clone(),
        SignInError::Unavailable => {
            "The service cannot check sign-ins just now. Try again in a few minutes".into()
        }
        SignInError::MustChangePassword | SignInError::MustEnrol | SignInError::NotAClient => {
            "This account cannot sign in here".into()
        }
    }
}

fn refusal_status(e: &SignInError) -> StatusCode {
    match e {
        SignInError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        SignInError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        SignInError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::UNAUTHORIZED,
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
        SignInError::NotAClient => "not a person",
        SignInError::Rejected(_) => "refused by policy",
        SignInError::Unavailable => "directory unavailable",
    }
}

/// Records a refused step (naming the claimed user only if such a user exists); `Err` is
/// the 503 page.
fn record_refusal(
    state: &ConsoleState,
    origin: &Origin,
    kind: EventKind,
    action: &str,
    claimed: &str,
    e: &SignInError,
) -> Result<(), Response> {
    let kind = match e {
        SignInError::Credentials | SignInError::Throttled(_) | SignInError::Disabled => {
            EventKind::LoginFailed
        }
        _ => kind,
    };
    let known = state.directory.user(claimed).ok().flatten();
    let (user, org, role) = known.as_ref().map_or(("", "", ""), |u| {
        (u.name.as_str(), u.org.as_str(), u.role.as_str())
    });
    let event = security_event(
        kind,
        action,
        user,
        org,
        role,
        origin,
        Outcome::Deny,
        reason(e),
        state.now(),
    );
    web::record(state, None, vec![event])
}

fn event_for(
    state: &ConsoleState,
    origin: &Origin,
    kind: EventKind,
    action: &str,
    user: &caldicott_access::User,
) -> AuditEvent {
    security_event(
        kind,
        action,
        &user.name,
        &user.org,
        &user.role,
        origin,
        Outcome::Permit,
        "succeeded",
        state.now(),
    )
}

/// Checks a pre-sign-in POST: this site's origin, and the form's token derived from
/// `key` (the per-form cookie or the ticket).
fn check_public_post(
    state: &ConsoleState,
    headers: &HeaderMap,
    body: &Bytes,
    key: Option<&str>,
) -> Result<Form, Response> {
    if caldicott_api::auth::check_same_origin(headers, &web::base_url(state, headers)).is_err() {
        return Err(web::error_page(
            None,
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form was not sent from this site.",
        ));
    }
    let form = Form::parse(headers, body).map_err(|e| web::bad_form(None, &e))?;
    let ok = key.is_some_and(|k| {
        let expected = web::csrf_token(k);
        aws_lc_rs::constant_time::verify_slices_are_equal(
            expected.as_bytes(),
            form.get("csrf").as_bytes(),
        )
        .is_ok()
    });
    if !ok {
        return Err(web::error_page(
            None,
            StatusCode::FORBIDDEN,
            "Request refused",
            "The sign-in form has expired. Go back to the sign-in page and try again.",
        ));
    }
    Ok(form)
}

const PURPOSES: &[(&str, &str)] = &[
    ("direct-care", "Direct care of a patient"),
    ("audit", "Audit: reviewing access and records"),
    ("planning", "Planning and running services"),
    ("research", "Research"),
    ("emergency", "Emergency care"),
];

/// A purpose option for the `<select>`.
pub struct PurposeOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// Whether `role` may act for the purpose named `value` (any purpose when the role is not
/// known: the policy decides at every request all the same).
fn allowed(role: Option<caldicott_policy::Role>, value: &str) -> bool {
    match (role, value.parse::<Purpose>()) {
        (Some(r), Ok(p)) => caldicott_policy::profile(r).purposes.contains(&p),
        (None, Ok(_)) => true,
        (_, Err(_)) => false,
    }
}

/// The purposes `role` may sign in for, `selected` chosen (or else the first): a Caldicott
/// guardian sees only "audit", a receptionist only "direct care", so nobody signs in for a
/// purpose under which every record would be refused.
fn purpose_options(selected: &str, role: Option<caldicott_policy::Role>) -> Vec<PurposeOption> {
    let offered: Vec<(&'static str, &'static str)> = PURPOSES
        .iter()
        .copied()
        .filter(|(value, _)| allowed(role, value))
        .collect();
    let chosen = if offered.iter().any(|(v, _)| *v == selected) {
        selected
    } else {
        offered.first().map_or("", |(v, _)| *v)
    };
    offered
        .into_iter()
        .map(|(value, label)| PurposeOption {
            value,
            label,
            selected: value == chosen,
        })
        .collect()
}

fn parse_purpose(
    form: &Form,
    errors: &mut Errors,
    role: Option<caldicott_policy::Role>,
) -> Purpose {
    let value = form.get("purpose");
    match value.parse::<Purpose>() {
        Ok(p) if allowed(role, value) => p,
        Ok(_) => {
            errors.push(FieldError::new(
                "purpose",
                "Your role cannot sign in for that purpose: choose one of those listed",
            ));
            Purpose::DirectCare
        }
        Err(_) => {
            errors.push(FieldError::new("purpose", "Select why you are signing in"));
            Purpose::DirectCare
        }
    }
}

fn code_of(form: &Form, errors: &mut Errors) -> Zeroizing<String> {
    let code: String = form
        .get("code")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if code.is_empty() {
        errors.push(FieldError::new(
            "code",
            "Enter the 6-digit code from your authenticator app",
        ));
    } else if code.len() > 32 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        errors.push(FieldError::new(
            "code",
            "The code must be the 6 digits from your authenticator app, or a recovery code",
        ));
    }
    Zeroizing::new(code)
}

/// Starts the session of `user` (who has just proved who they are), ends any session the
/// browser already had, records the sign-in, and sends them home.
fn signed_in(
    state: &ConsoleState,
    headers: &HeaderMap,
    origin: &Origin,
    ticket: &str,
    new: caldicott_access::session::NewSession,
) -> Response {
    let mut event = event_for(
        state,
        origin,
        EventKind::Login,
        "session",
        &new.session.auth.user,
    );
    event.purpose = new.session.auth.purpose.to_string();
    if let Err(r) = web::record(state, None, vec![event]) {
        let _ = state.directory.end_session(&new.id);
        return r;
    }
    if let Some(old) = caldicott_api::auth::session_cookie(headers)
        && old != new.id.as_str()
    {
        let _ = state.directory.end_session(old);
    }
    state.pending.remove(ticket);
    let mut r = web::redirect("/");
    caldicott_api::auth::set_cookie(&mut r, &new.id);
    clear(&mut r, TICKET_COOKIE);
    r
}

// ---------------------------------------------------------------------------------------
// /signin

#[derive(askama::Template)]
#[template(path = "signin/password.html")]
struct PasswordPage {
    layout: Layout,
    errors: Errors,
    user: String,
    notice: Option<&'static str>,
}

#[derive(serde::Deserialize)]
struct SigninQuery {
    expired: Option<String>,
    #[serde(rename = "signed-out")]
    signed_out: Option<String>,
    changed: Option<String>,
}

fn signin_form(
    status: StatusCode,
    errors: Errors,
    user: String,
    notice: Option<&'static str>,
) -> Response {
    let key = random_token();
    let mut layout = Layout::public("Sign in");
    layout.csrf = web::csrf_token(&key);
    let mut r = web::render(
        status,
        &PasswordPage {
            layout,
            errors,
            user,
            notice,
        },
    );
    set_cookie(&mut r, FORM_COOKIE, &key, 3600);
    r
}

async fn signin_page(Query(q): Query<SigninQuery>) -> Response {
    let notice = if q.expired.is_some() {
        Some("You were signed out because your session ended. Sign in again.")
    } else if q.signed_out.is_some() {
        Some("You have signed out.")
    } else if q.changed.is_some() {
        Some("Your password has been changed. Sign in with the new password.")
    } else {
        None
    };
    signin_form(StatusCode::OK, Errors::default(), String::new(), notice)
}

async fn signin_post(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = cookie(&headers, FORM_COOKIE);
    let form = tri!(check_public_post(
        &state,
        &headers,
        &body,
        key.as_deref().map(|k| k.as_str())
    ));
    let mut errors = Errors::default();
    let user = match form.required("user", "Your user name", 64) {
        Ok(u) => u,
        Err(e) => {
            errors.push(e);
            String::new()
        }
    };
    let password = Zeroizing::new(form.get("password").to_owned());
    if password.is_empty() {
        errors.push(FieldError::new("password", "Enter your password"));
    } else if password.chars().count() > 256 {
        errors.push(FieldError::new("password", "The password is too long"));
    }
    if !errors.is_empty() {
        return signin_form(StatusCode::UNPROCESSABLE_ENTITY, errors, user, None);
    }
    let ip = client_ip(&ext);
    let origin = Origin::new(web::peer(&ext), &headers);
    let st = Arc::clone(&state);
    let outcome = tri!(
        web::blocking(move || {
            let now = st.now();
            let signin = SignIn::new(&st.directory, &st.throttle);
            match signin.check_person(&user, &password, ip, now) {
                Ok(u) => {
                    let stage = if u.must_change_password {
                        Stage::NewPassword
                    } else if u.totp_secret.is_none() {
                        Stage::Enrol
                    } else {
                        Stage::Code
                    };
                    let ticket = st.pending.insert(
                        Pending {
                            user: u.name.clone(),
                            role: u.role().ok(),
                            password,
                            stage,
                            enrolment: None,
                            expires_at: now + PENDING_US,
                        },
                        now,
                    );
                    Ok(Ok((ticket, stage)))
                }
                Err(e) => {
                    match record_refusal(&st, &origin, EventKind::LoginFailed, "session", &user, &e)
                    {
                        Ok(()) => Ok(Err((e, user))),
                        Err(r) => Err(r),
                    }
                }
            }
        })
        .await
    );
    match tri!(outcome) {
        Ok((ticket, stage)) => {
            let mut r = web::redirect(stage.path());
            set_cookie(&mut r, TICKET_COOKIE, &ticket, 300);
            clear(&mut r, FORM_COOKIE);
            r
        }
        Err((e, user)) => {
            let mut errors = Errors::default();
            errors.push(FieldError::new("password", refusal_message(&e)));
            signin_form(refusal_status(&e), errors, user, None)
        }
    }
}

// ---------------------------------------------------------------------------------------
// /signin/new-password

#[derive(askama::Template)]
#[template(path = "signin/new_password.html")]
struct NewPasswordPage {
    layout: Layout,
    errors: Errors,
    action: &'static str,
    /// Whether to ask for the current password (a signed-in change) too.
    ask_current: bool,
}

fn ticket_layout(title: &str, ticket: &str) -> Layout {
    let mut layout = Layout::public(title);
    layout.csrf = web::csrf_token(ticket);
    layout
}

async fn new_password_page(State(state): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    let (ticket, _) = tri!(pending_at(&state, &headers, Stage::NewPassword));
    web::render(
        StatusCode::OK,
        &NewPasswordPage {
            layout: ticket_layout("Choose a new password", &ticket),
            errors: Errors::default(),
            action: "/signin/new-password",
            ask_current: false,
        },
    )
}

/// Reads the new password twice; errors name the fields.
fn new_password_of(form: &Form, errors: &mut Errors) -> Zeroizing<String> {
    let new = Zeroizing::new(form.get("new_password").to_owned());
    let confirm = form.get("confirm_password");
    if new.is_empty() {
        errors.push(FieldError::new("new_password", "Enter a new password"));
    } else if new.chars().count() > 256 {
        errors.push(FieldError::new(
            "new_password",
            "The new password must be 256 characters or fewer",
        ));
    } else if confirm != new.as_str() {
        errors.push(FieldError::new(
            "confirm_password",
            "The passwords do not match",
        ));
    }
    new
}

async fn new_password_post(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ticket, pending) = tri!(pending_at(&state, &headers, Stage::NewPassword));
    let form = tri!(check_public_post(&state, &headers, &body, Some(&ticket)));
    let mut errors = Errors::default();
    let new = new_password_of(&form, &mut errors);
    let rerender = |errors: Errors, status: StatusCode| {
        web::render(
            status,
            &NewPasswordPage {
                layout: ticket_layout("Choose a new password", &ticket),
                errors,
                action: "/signin/new-password",
                ask_current: false,
            },
        )
    };
    if !errors.is_empty() {
        return rerender(errors, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let ip = client_ip(&ext);
    let origin = Origin::new(web::peer(&ext), &headers);
    let st = Arc::clone(&state);
    let t2 = ticket.clone();
    let result = tri!(
        web::blocking(move || {
            let signin = SignIn::new(&st.directory, &st.throttle);
            let now = st.now();
            match signin.change_password(&pending.user, &pending.password, &new, ip, now) {
                Ok(()) => {
                    let user = st.directory.user(&pending.user).ok().flatten();
                    if let Some(u) = &user {
                        let event = event_for(&st, &origin, EventKind::Credentials, "password", u);
                        web::record(&st, None, vec![event])?;
                    }
                    let stage = match user {
                        Some(u) if u.totp_secret.is_some() => Stage::Code,
                        _ => Stage::Enrol,
                    };
                    st.pending.update(&t2, |p| {
                        p.password = new;
                        p.stage = stage;
                    });
                    Ok(Ok(stage))
                }
                Err(e) => {
                    record_refusal(
                        &st,
                        &origin,
                        EventKind::Credentials,
                        "password",
                        &pending.user,
                        &e,
                    )?;
                    Ok(Err(e))
                }
            }
        })
        .await
    );
    match tri!(result) {
        Ok(stage) => web::redirect(stage.path()),
        Err(e) => {
            let mut errors = Errors::default();
            errors.push(FieldError::new("new_password", refusal_message(&e)));
            rerender(errors, refusal_status(&e))
        }
    }
}

// ---------------------------------------------------------------------------------------
// /signin/enrol

#[derive(askama::Template)]
#[template(path = "signin/enrol.html")]
struct EnrolPage {
    layout: Layout,
    errors: Errors,
    secret: String,
    qr: String,
    recovery_codes: Vec<String>,
    purposes: Vec<PurposeOption>,
}

fn enrol_render(
    ticket: &str,
    shown: &Shown,
    errors: Errors,
    status: StatusCode,
    purpose: &str,
    role: Option<caldicott_policy::Role>,
) -> Response {
    let mut r = web::render(
        status,
        &EnrolPage {
            layout: ticket_layout("Set up your authenticator app", ticket),
            errors,
            secret: shown.secret.to_string(),
            qr: shown.qr_data_uri.to_string(),
            recovery_codes: shown.recovery_codes.iter().map(|c| c.to_string()).collect(),
            purposes: purpose_options(purpose, role),
        },
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn enrol_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    let (ticket, pending) = tri!(pending_at(&state, &headers, Stage::Enrol));
    let role = pending.role;
    if let Some(shown) = &pending.enrolment {
        return enrol_render(
            &ticket,
            shown,
            Errors::default(),
            StatusCode::OK,
            "direct-care",
            role,
        );
    }
    let ip = client_ip(&ext);
    let origin = Origin::new(web::peer(&ext), &headers);
    let st = Arc::clone(&state);
    let t2 = ticket.clone();
    let result = tri!(
        web::blocking(move || {
            let signin = SignIn::new(&st.directory, &st.throttle);
            match signin.enrol(&pending.user, &pending.password, ip, st.now()) {
                Ok(en) => {
                    if let Ok(Some(u)) = st.directory.user(&pending.user) {
                        let event =
                            event_for(&st, &origin, EventKind::Credentials, "mfa-enrol", &u);
                        web::record(&st, None, vec![event])?;
                    }
                    let shown = Shown {
                        secret: en.secret_base32,
                        qr_data_uri: Zeroizing::new(format!(
                            "data:image/svg+xml;base64,{}",
                            base64::engine::general_purpose::STANDARD.encode(en.qr_svg.as_bytes())
                        )),
                        recovery_codes: en.recovery_codes.into_iter().map(Zeroizing::new).collect(),
                    };
                    st.pending
                        .update(&t2, |p| p.enrolment = Some(shown.clone()));
                    Ok(Ok(shown))
                }
                Err(e) => {
                    record_refusal(
                        &st,
                        &origin,
                        EventKind::Credentials,
                        "mfa-enrol",
                        &pending.user,
                        &e,
                    )?;
                    Ok(Err(e))
                }
            }
        })
        .await
    );
    match tri!(result) {
        Ok(shown) => enrol_render(
            &ticket,
            &shown,
            Errors::default(),
            StatusCode::OK,
            "direct-care",
            role,
        ),
        Err(e) => web::error_page(
            None,
            refusal_status(&e),
            "Your authenticator cannot be set up",
            &refusal_message(&e),
        ),
    }
}

async fn enrol_post(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ticket, pending) = tri!(pending_at(&state, &headers, Stage::Enrol));
    let role = pending.role;
    let Some(shown) = pending.enrolment.clone() else {
        return web::redirect(Stage::Enrol.path());
    };
    let form = tri!(check_public_post(&state, &headers, &body, Some(&ticket)));
    let mut errors = Errors::default();
    let code = code_of(&form, &mut errors);
    let purpose = parse_purpose(&form, &mut errors, role);
    if !errors.is_empty() {
        return enrol_render(
            &ticket,
            &shown,
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
            form.get("purpose"),
            role,
        );
    }
    let ip = client_ip(&ext);
    let origin = Origin::new(web::peer(&ext), &headers);
    let st = Arc::clone(&state);
    let h2 = headers.clone();
    let t2 = ticket.clone();
    let o2 = origin.clone();
    let result = tri!(
        web::blocking(move || {
            let signin = SignIn::new(&st.directory, &st.throttle);
            let now = st.now();
            match signin.confirm(&pending.user, &pending.password, &code, ip, now) {
                Ok(()) => {
                    if let Ok(Some(u)) = st.directory.user(&pending.user) {
                        let event = event_for(&st, &o2, EventKind::Credentials, "mfa-confirm", &u);
                        web::record(&st, None, vec![event])?;
                    }
                    // The code just confirmed proves the authenticator: the session starts
                    // now (the same code would not be accepted twice).
                    match st.directory.start_session(&pending.user, purpose, now) {
                        Ok(new) => Ok(Ok(signed_in(&st, &h2, &o2, &t2, new))),
                        Err(_) => Err(web::unavailable()),
                    }
                }
                Err(e) => {
                    record_refusal(
                        &st,
                        &o2,
                        EventKind::Credentials,
                        "mfa-confirm",
                        &pending.user,
                        &e,
                    )?;
                    Ok(Err(e))
                }
            }
        })
        .await
    );
    match tri!(result) {
        Ok(r) => r,
        Err(e) => {
            let mut errors = Errors::default();
            let message = match e {
                SignInError::Credentials => {
                    "The code is not right. Check the time on your phone and enter the newest code"
                        .to_owned()
                }
                other => refusal_message(&other),
            };
            errors.push(FieldError::new("code", message));
            enrol_render(
                &ticket,
                &shown,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
                form.get("purpose"),
                role,
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// /signin/code

#[derive(askama::Template)]
#[template(path = "signin/code.html")]
struct CodePage {
    layout: Layout,
    errors: Errors,
    purposes: Vec<PurposeOption>,
}

fn code_render(
    ticket: &str,
    errors: Errors,
    status: StatusCode,
    purpose: &str,
    role: Option<caldicott_policy::Role>,
) -> Response {
    web::render(
        status,
        &CodePage {
            layout: ticket_layout("Enter your security code", ticket),
            errors,
            purposes: purpose_options(purpose, role),
        },
    )
}

async fn code_page(State(state): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    let (ticket, pending) = tri!(pending_at(&state, &headers, Stage::Code));
    let role = pending.role;
    code_render(
        &ticket,
        Errors::default(),
        StatusCode::OK,
        "direct-care",
        role,
    )
}

async fn code_post(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ticket, pending) = tri!(pending_at(&state, &headers, Stage::Code));
    let role = pending.role;
    let form = tri!(check_public_post(&state, &headers, &body, Some(&ticket)));
    let mut errors = Errors::default();
    let code = code_of(&form, &mut errors);
    let purpose = parse_purpose(&form, &mut errors, role);
    if !errors.is_empty() {
        return code_render(
            &ticket,
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
            form.get("purpose"),
            role,
        );
    }
    let ip = client_ip(&ext);
    let origin = Origin::new(web::peer(&ext), &headers);
    let st = Arc::clone(&state);
    let h2 = headers.clone();
    let t2 = ticket.clone();
    let result = tri!(
        web::blocking(move || {
            let signin = SignIn::new(&st.directory, &st.throttle);
            match signin.start_session(
                &pending.user,
                &pending.password,
                &code,
                purpose,
                ip,
                st.now(),
            ) {
                Ok(new) => Ok(Ok(signed_in(&st, &h2, &origin, &t2, new))),
                Err(e) => {
                    record_refusal(
                        &st,
                        &origin,
                        EventKind::LoginFailed,
                        "session",
                        &pending.user,
                        &e,
                    )?;
                    Ok(Err(e))
                }
            }
        })
        .await
    );
    match tri!(result) {
        Ok(r) => r,
        Err(e) => {
            let mut errors = Errors::default();
            errors.push(FieldError::new("code", refusal_message(&e)));
            code_render(
                &ticket,
                errors,
                refusal_status(&e),
                form.get("purpose"),
                role,
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sign-out and password change

async fn signout(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let viewer = match web::viewer(&state, &headers, web::peer(&ext)).await {
        Ok(v) => v,
        // No session to end: the person is signed out already.
        Err(_) => return web::to_signin(true),
    };
    let _form = tri!(web::checked_form(&state, &headers, &viewer, &body));
    let Some(id) =
        caldicott_api::auth::session_cookie(&headers).map(|s| Zeroizing::new(s.to_owned()))
    else {
        return web::to_signin(true);
    };
    let st = Arc::clone(&state);
    let result = tri!(
        web::blocking(move || {
            st.directory
                .end_session(&id)
                .map_err(|_| web::unavailable())?;
            let event = event_for(
                &st,
                &viewer.origin,
                EventKind::Token,
                "logout",
                viewer.user(),
            );
            web::record(&st, Some(&viewer), vec![event])
        })
        .await
    );
    tri!(result);
    let mut r = web::redirect("/signin?signed-out=1");
    caldicott_api::auth::clear_cookie(&mut r);
    r
}

async fn password_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    let viewer = tri!(web::viewer(&state, &headers, web::peer(&ext)).await);
    web::render(
        StatusCode::OK,
        &NewPasswordPage {
            layout: Layout::new(&viewer, "Change your password", ""),
            errors: Errors::default(),
            action: "/account/password",
            ask_current: true,
        },
    )
}

async fn password_post(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let viewer = tri!(web::viewer(&state, &headers, web::peer(&ext)).await);
    let form = tri!(web::checked_form(&state, &headers, &viewer, &body));
    let mut errors = Errors::default();
    let current = Zeroizing::new(form.get("current_password").to_owned());
    if current.is_empty() {
        errors.push(FieldError::new(
            "current_password",
            "Enter your current password",
        ));
    }
    let new = new_password_of(&form, &mut errors);
    let layout = Layout::new(&viewer, "Change your password", "");
    let rerender = |layout: Layout, errors: Errors, status: StatusCode| {
        web::render(
            status,
            &NewPasswordPage {
                layout,
                errors,
                action: "/account/password",
                ask_current: true,
            },
        )
    };
    if !errors.is_empty() {
        return rerender(layout, errors, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let ip = client_ip(&ext);
    let st = Arc::clone(&state);
    let name = viewer.user().name.clone();
    let origin = viewer.origin.clone();
    let result = tri!(
        web::blocking(move || {
            let signin = SignIn::new(&st.directory, &st.throttle);
            match signin.change_password(&name, &current, &new, ip, st.now()) {
                Ok(()) => {
                    if let Ok(Some(u)) = st.directory.user(&name) {
                        let event = event_for(&st, &origin, EventKind::Credentials, "password", &u);
                        web::record(&st, None, vec![event])?;
                    }
                    Ok(Ok(()))
                }
                Err(e) => {
                    record_refusal(&st, &origin, EventKind::Credentials, "password", &name, &e)?;
                    Ok(Err(e))
                }
            }
        })
        .await
    );
    match tri!(result) {
        // A changed password ends every session of the user, this one included.
        Ok(()) => {
            let mut r = web::redirect("/signin?changed=1");
            caldicott_api::auth::clear_cookie(&mut r);
            r
        }
        Err(e) => {
            let mut errors = Errors::default();
            let field = match e {
                SignInError::Credentials => "current_password",
                _ => "new_password",
            };
            errors.push(FieldError::new(field, refusal_message(&e)));
            rerender(layout, errors, refusal_status(&e))
        }
    }
}
