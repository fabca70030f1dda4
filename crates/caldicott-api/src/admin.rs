//! The administration API at `/admin`: what `caldicott org` and `caldicott user` do, over
//! HTTPS, for a `sysadmin`'s bearer token (from `/auth/login`). JSON in and out.
//!
//! | request | body | answer |
//! |---|---|---|
//! | `GET /admin/orgs` | | the organisations |
//! | `POST /admin/orgs` | `ods`, `name` | 201, the organisation |
//! | `GET /admin/users` | | the users (never a password hash or secret) |
//! | `POST /admin/users` | `name`, `org`, `role`, `practitioner`? | 201, the user and their one-time password |
//! | `POST /admin/users/{name}/disable`, `/enable`, `/reset-mfa` | | 204 |
//!
//! Every change is recorded through the [`AuditSink`] as an `admin` event (`org-add`,
//! `user-add`, `user-disable`, `user-enable`, `user-reset-mfa`) naming the administrator,
//! with the organisation or user changed as the event's `id`. If the event cannot be
//! recorded the answer is 503 (the change, already made, stands: the message says so).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use caldicott_access::{AccessError, Directory, User};
use caldicott_core::OdsCode;
use caldicott_policy::Role;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::{AuditSink, EventKind, Origin, Outcome, security_event};

/// What the administration routes share.
pub struct AdminState {
    pub directory: Arc<Directory>,
    /// Where administrative changes are recorded: the same sink as the FHIR API's.
    pub audit: Arc<dyn AuditSink>,
}

/// The administrator behind a request, and where it came from.
struct Admin<'a> {
    user: User,
    origin: Origin,
    audit: &'a dyn AuditSink,
}

impl Admin<'_> {
    /// Records a change just made to `target`; `Err` is the 503 to answer instead.
    fn changed(&self, action: &str, target: &str) -> Result<(), Box<Response>> {
        let mut event = security_event(
            EventKind::Admin,
            action,
            &self.user.name,
            &self.user.org,
            &self.user.role,
            &self.origin,
            Outcome::Permit,
            "done",
            caldicott_vault::now_micros(),
        );
        event.id = Some(target.to_owned());
        self.audit.record(vec![event]).map_err(|e| {
            tracing::error!(error = %e, "audit trail unavailable for an administrative change");
            Box::new(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the change was made, but the audit trail cannot be written; try again later",
            ))
        })
    }
}

/// The `/admin` routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/admin/orgs", get(list_orgs).post(add_org))
        .route("/admin/users", get(list_users).post(add_user))
        .route("/admin/users/{name}/{action}", post(change_user))
        .with_state(state)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn access_error(e: AccessError) -> Response {
    let status = match &e {
        AccessError::OrganisationExists(_) | AccessError::UserExists(_) => StatusCode::CONFLICT,
        AccessError::UnknownUser(_) => StatusCode::NOT_FOUND,
        AccessError::Vault(_) | AccessError::Damaged(_) | AccessError::Identity(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, &e.to_string())
}

/// The person behind a bearer token, or the 401 to send (boxed: a response is large, and
/// this is the rare path). Shared by the `/admin` routes.
pub(crate) fn bearer_user(
    directory: &Directory,
    headers: &HeaderMap,
) -> Result<caldicott_access::Authenticated, Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(|| {
            Box::new(error(
                StatusCode::UNAUTHORIZED,
                "send Authorization: Bearer <token>",
            ))
        })?;
    directory
        .authenticate(token, caldicott_vault::now_micros())
        .map_err(|e| Box::new(error(StatusCode::UNAUTHORIZED, &e.to_string())))
}

/// The administrator behind the request, or the refusal to send.
fn administrator(directory: &Directory, headers: &HeaderMap) -> Result<User, Box<Response>> {
    let who = bearer_user(directory, headers)?;
    if who.role != Role::Sysadmin {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "the administration API is for sysadmin users",
        )));
    }
    Ok(who.user)
}

/// Runs an administrative step on the blocking pool, after checking the caller.
async fn admin_step(
    state: Arc<AdminState>,
    peer: SocketAddr,
    headers: HeaderMap,
    f: impl FnOnce(&Directory, &Admin<'_>) -> Response + Send + 'static,
) -> Response {
    tokio::task::spawn_blocking(move || match administrator(&state.directory, &headers) {
        Ok(user) => {
            let admin = Admin {
                user,
                origin: Origin::new(Some(peer), &headers),
                audit: state.audit.as_ref(),
            };
            f(&state.directory, &admin)
        }
        Err(r) => *r,
    })
    .await
    .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"))
}

fn user_json(u: &User) -> Value {
    json!({
        "name": u.name,
        "org": u.org,
        "role": u.role,
        "disabled": u.disabled,
        "practitioner": u.practitioner,
        "mfa_enrolled": u.totp_secret.is_some(),
        "must_change_password": u.must_change_password,
    })
}

async fn list_orgs(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    admin_step(state, peer, headers, |d, _| match d.orgs() {
        Ok(orgs) => axum::Json(json!({ "organisations": orgs })).into_response(),
        Err(e) => access_error(e),
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    ods: String,
    name: String,
}

async fn add_org(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    admin_step(state, peer, headers, move |d, admin| {
        let Ok(o) = serde_json::from_slice::<NewOrg>(&body) else {
            return error(StatusCode::BAD_REQUEST, "the body must be JSON with ods and name");
        };
        let Ok(ods) = OdsCode::parse(&o.ods) else {
            return error(StatusCode::BAD_REQUEST, "ods is not an ODS code");
        };
        match d.add_org(&ods, &o.name) {
            Ok(org) => {
                tracing::info!(target: "caldicott::audit", admin = %admin.user.name, ods = %org.ods, "organisation added");
                if let Err(r) = admin.changed("org-add", &org.ods) {
                    return *r;
                }
                (StatusCode::CREATED, axum::Json(json!(org))).into_response()
            }
            Err(e) => access_error(e),
        }
    })
    .await
}

async fn list_users(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    admin_step(state, peer, headers, |d, _| match d.users() {
        Ok(users) => axum::Json(json!({
            "users": users.iter().map(user_json).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => access_error(e),
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    org: String,
    role: String,
    #[serde(default)]
    practitioner: Option<String>,
}

async fn add_user(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    admin_step(state, peer, headers, move |d, admin| {
        let Ok(u) = serde_json::from_slice::<NewUser>(&body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "the body must be JSON with name, org, role and optionally practitioner",
            );
        };
        let Ok(org) = OdsCode::parse(&u.org) else {
            return error(StatusCode::BAD_REQUEST, "org is not an ODS code");
        };
        let role: Role = match u.role.parse() {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("{e}")),
        };
        if u
            .practitioner
            .as_deref()
            .is_some_and(|p| !p.starts_with("Practitioner/"))
        {
            return error(
                StatusCode::BAD_REQUEST,
                "practitioner must be a reference such as Practitioner/123",
            );
        }
        match d.add_user(&u.name, &org, role, u.practitioner) {
            Ok((user, password)) => {
                tracing::info!(target: "caldicott::audit", admin = %admin.user.name, user = %user.name, org = %user.org, role = %user.role, "user added");
                if let Err(r) = admin.changed("user-add", &user.name) {
                    return *r;
                }
                let mut v = user_json(&user);
                v["one_time_password"] = json!(password.as_str());
                (StatusCode::CREATED, axum::Json(v)).into_response()
            }
            Err(e) => access_error(e),
        }
    })
    .await
}

async fn change_user(
    State(state): State<Arc<AdminState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    admin_step(state, peer, headers, move |d, admin| {
        let result = match action.as_str() {
            "disable" => d.set_disabled(&name, true),
            "enable" => d.set_disabled(&name, false),
            "reset-mfa" => d.reset_mfa(&name),
            _ => return error(StatusCode::NOT_FOUND, "no such action (disable, enable, reset-mfa)"),
        };
        match result {
            Ok(_) => {
                tracing::info!(target: "caldicott::audit", admin = %admin.user.name, user = %name, %action, "user changed");
                if let Err(r) = admin.changed(&format!("user-{action}"), &name) {
                    return *r;
                }
                StatusCode::NO_CONTENT.into_response()
            }
            Err(e) => access_error(e),
        }
    })
    .await
}
