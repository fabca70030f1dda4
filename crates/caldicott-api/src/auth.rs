//! Sign-in over HTTP, at `/auth`: a person's password and authenticator code give a
//! bearer token for the FHIR API (JSON in, JSON out; OAuth 2.0-shaped token response).
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /auth/password` | `user`, `password`, `new_password` | 204 |
//! | `POST /auth/mfa/enrol` | `user`, `password` | `secret`, `otpauth_uri`, `qr_svg`, `recovery_codes` |
//! | `POST /auth/mfa/confirm` | `user`, `password`, `code` | 204 |
//! | `POST /auth/login` | `user`, `password`, `code`, `purpose` (default `direct-care`) | `access_token`, `token_type`, `expires_in`, `scope` |
//!
//! Wrong credentials are 401 whatever was wrong; too many attempts 429 with `Retry-After`.
//! The logic lives in `caldicott_access::signin`; this is only its HTTP face.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use caldicott_access::Directory;
use caldicott_access::signin::{SIGN_IN_TTL_SECS, SignIn, SignInError};
use caldicott_identity::LoginThrottle;
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroize;

/// What the sign-in routes share.
pub struct AuthState {
    pub directory: Arc<Directory>,
    pub throttle: std::sync::Mutex<LoginThrottle>,
}

/// The `/auth` routes.
pub fn router(state: Arc<AuthState>) -> Router {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/password", post(password))
        .route("/auth/mfa/enrol", post(enrol))
        .route("/auth/mfa/confirm", post(confirm))
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

fn refused(e: &SignInError) -> Response {
    let status = match e {
        SignInError::Credentials => StatusCode::UNAUTHORIZED,
        SignInError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        SignInError::Disabled | SignInError::MustChangePassword | SignInError::MustEnrol => {
            StatusCode::FORBIDDEN
        }
        SignInError::Rejected(_) => StatusCode::BAD_REQUEST,
        SignInError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut r = error(status, &e.to_string());
    if let SignInError::Throttled(secs) = e
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Runs one sign-in step on the blocking pool (Argon2id takes tens of milliseconds).
async fn step(
    state: Arc<AuthState>,
    peer: SocketAddr,
    body: Bytes,
    f: impl FnOnce(&SignIn<'_>, Credentials, std::net::IpAddr, i64) -> Response + Send + 'static,
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
    tokio::task::spawn_blocking(move || {
        let s = SignIn::new(&state.directory, &state.throttle);
        f(&s, creds, peer.ip(), caldicott_vault::now_micros())
    })
    .await
    .unwrap_or_else(|_| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sign-in failed unexpectedly",
        )
    })
}

async fn login(
    State(state): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    step(state, peer, body, |s, c, ip, now| {
        let purpose = match c.purpose.as_deref().unwrap_or("direct-care").parse() {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("{e}")),
        };
        let code = c.code.as_deref().unwrap_or("");
        match s.sign_in(&c.user, &c.password, code, purpose, ip, now) {
            Ok(token) => axum::Json(json!({
                "access_token": token.as_str(),
                "token_type": "Bearer",
                "expires_in": SIGN_IN_TTL_SECS,
                "scope": "user/*.read user/*.write",
                "purpose": purpose.to_string(),
            }))
            .into_response(),
            Err(e) => refused(&e),
        }
    })
    .await
}

async fn password(
    State(state): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    step(state, peer, body, |s, c, ip, now| {
        let Some(new) = c.new_password.as_deref() else {
            return error(StatusCode::BAD_REQUEST, "new_password is missing");
        };
        match s.change_password(&c.user, &c.password, new, ip, now) {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => refused(&e),
        }
    })
    .await
}

async fn enrol(
    State(state): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    step(state, peer, body, |s, c, ip, now| {
        match s.enrol(&c.user, &c.password, ip, now) {
            Ok(e) => axum::Json(json!({
                "secret": e.secret_base32.as_str(),
                "otpauth_uri": e.uri.as_str(),
                "qr_svg": e.qr_svg.as_str(),
                "recovery_codes": e.recovery_codes,
            }))
            .into_response(),
            Err(e) => refused(&e),
        }
    })
    .await
}

async fn confirm(
    State(state): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    step(state, peer, body, |s, c, ip, now| {
        let code = c.code.as_deref().unwrap_or("");
        match s.confirm(&c.user, &c.password, code, ip, now) {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => refused(&e),
        }
    })
    .await
}
