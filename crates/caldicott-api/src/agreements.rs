//! Data-sharing agreements over HTTPS: what `caldicott share agreement` does, for a
//! bearer token of a person of the agreement's organisation. JSON in and out.
//!
//! | request | body | who | answer |
//! |---|---|---|---|
//! | `GET /admin/agreements` | | guardian, sysadmin, researcher | the organisation's agreements, one summary each |
//! | `POST /admin/agreements` | the terms | any person | 201, version 1, proposed |
//! | `GET /admin/agreements/{id}` | | guardian, sysadmin, researcher | every version and the releases |
//! | `POST /admin/agreements/{id}/amend` | the terms | any person | 201, the new version |
//! | `POST /admin/agreements/{id}/approve` | | the Caldicott guardian, not the proposer | 200 |
//! | `POST /admin/agreements/{id}/revoke` | `reason` | guardian or sysadmin | 200 |
//!
//! The rules (two people, roles, organisation) are `caldicott_share::agreement`'s; this
//! module only authenticates, translates and records. Every change is recorded through
//! the [`AuditSink`] as an `admin` event (`agreement-propose`, `-amend`, `-approve`,
//! `-revoke`) whose `id` is the agreement's; refused changes are recorded as denials.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use caldicott_access::{Directory, User};
use caldicott_share::agreement::{Agreement, State as AgreementState, Terms};
use caldicott_share::{Actor, AgreementId, Book, ShareError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::{AuditSink, EventKind, Origin, Outcome, security_event};

/// What the agreement routes share.
pub struct AgreementsState {
    pub directory: Arc<Directory>,
    pub book: Book,
    pub audit: Arc<dyn AuditSink>,
}

/// Roles that may read agreements.
const READERS: &[&str] = &["caldicott-guardian", "sysadmin", "researcher"];

/// The `/admin/agreements` routes.
pub fn router(state: Arc<AgreementsState>) -> Router {
    Router::new()
        .route("/admin/agreements", get(list).post(propose))
        .route("/admin/agreements/{id}", get(show))
        .route("/admin/agreements/{id}/{action}", post(change))
        .with_state(state)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn share_error(e: &ShareError) -> Response {
    let status = match e {
        ShareError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ShareError::Refused(_) => StatusCode::FORBIDDEN,
        ShareError::NotFound(_) => StatusCode::NOT_FOUND,
        ShareError::Conflict(_) => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let message = match e {
        ShareError::Vault(_) | ShareError::Damaged(_) => {
            tracing::error!(error = %e, "agreement store failed");
            "the agreements cannot be read or written now".to_owned()
        }
        e => e.to_string(),
    };
    error(status, &message)
}

fn person(directory: &Directory, headers: &HeaderMap) -> Result<User, Box<Response>> {
    crate::admin::bearer_user(directory, headers).map(|who| who.user)
}

/// Records a change (or a refused one); `Err` is the 503 to answer instead.
fn record(
    audit: &dyn AuditSink,
    user: &User,
    origin: &Origin,
    action: &str,
    id: &str,
    outcome: Outcome,
    reason: &str,
) -> Result<(), Box<Response>> {
    let mut event = security_event(
        EventKind::Admin,
        action,
        &user.name,
        &user.org,
        &user.role,
        origin,
        outcome,
        reason,
        caldicott_vault::now_micros(),
    );
    event.id = Some(id.to_owned());
    event.rtype = Some("DataSharingAgreement".to_owned());
    audit.record(vec![event]).map_err(|e| {
        tracing::error!(error = %e, "audit trail unavailable for an agreement change");
        Box::new(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit trail cannot be written; try again later",
        ))
    })
}

async fn step(
    state: Arc<AgreementsState>,
    peer: SocketAddr,
    headers: HeaderMap,
    f: impl FnOnce(&AgreementsState, &User, &Origin) -> Response + Send + 'static,
) -> Response {
    tokio::task::spawn_blocking(move || match person(&state.directory, &headers) {
        Ok(user) => f(&state, &user, &Origin::new(Some(peer), &headers)),
        Err(r) => *r,
    })
    .await
    .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"))
}

fn actor(u: &User) -> Actor<'_> {
    Actor {
        user: &u.name,
        org: &u.org,
        role: &u.role,
    }
}

fn may_read(u: &User) -> Result<(), Box<Response>> {
    if READERS.contains(&u.role.as_str()) {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "agreements are for Caldicott guardians, sysadmins and researchers",
        )))
    }
}

/// One agreement's summary: the newest version and where it stands.
pub fn summary(versions: &[Agreement]) -> Value {
    let Some(newest) = versions.iter().max_by_key(|a| a.version) else {
        return Value::Null;
    };
    let revoked = versions
        .iter()
        .any(|a| matches!(a.state, AgreementState::Revoked { .. }));
    let approved = versions
        .iter()
        .filter(|a| matches!(a.state, AgreementState::Approved { .. }))
        .map(|a| a.version)
        .max();
    let state = match (revoked, approved) {
        (true, _) => "revoked",
        (false, Some(_)) => "approved",
        (false, None) => "proposed",
    };
    json!({
        "id": newest.id,
        "version": newest.version,
        "approved_version": approved,
        "state": state,
        "title": newest.terms.title,
        "purpose": newest.terms.purpose.as_str(),
        "recipient": newest.terms.recipient.name,
        "org": newest.org,
        "expires": newest.terms.expires.to_string(),
        "frequency": newest.terms.frequency,
        "proposed_by": newest.proposed_by,
    })
}

async fn list(
    State(state): State<Arc<AgreementsState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    step(state, peer, headers, |s, u, _| {
        if let Err(r) = may_read(u) {
            return *r;
        }
        match s.book.list() {
            Ok(all) => {
                let mine: Vec<Value> = all
                    .iter()
                    .filter(|v| v.first().is_some_and(|a| a.org == u.org))
                    .map(|v| summary(v))
                    .collect();
                axum::Json(json!({ "agreements": mine })).into_response()
            }
            Err(e) => share_error(&e),
        }
    })
    .await
}

async fn show(
    State(state): State<Arc<AgreementsState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    step(state, peer, headers, move |s, u, _| {
        if let Err(r) = may_read(u) {
            return *r;
        }
        let Ok(id) = AgreementId::parse(&id) else {
            return error(StatusCode::NOT_FOUND, "no such agreement");
        };
        let versions = match s.book.versions(&id) {
            Ok(v) => v,
            Err(e) => return share_error(&e),
        };
        // Another organisation's agreement is as good as absent.
        if versions.first().is_none_or(|a| a.org != u.org) {
            return error(StatusCode::NOT_FOUND, "no such agreement");
        }
        match s.book.releases(&id) {
            Ok(releases) => axum::Json(json!({
                "summary": summary(&versions),
                "versions": versions,
                "releases": releases,
            }))
            .into_response(),
            Err(e) => share_error(&e),
        }
    })
    .await
}

fn parse_terms(body: &[u8]) -> Result<Terms, Box<Response>> {
    serde_json::from_slice::<Terms>(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            &format!("the body must be the agreement's terms as JSON: {e}"),
        ))
    })
}

async fn propose(
    State(state): State<Arc<AgreementsState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    step(state, peer, headers, move |s, u, origin| {
        let terms = match parse_terms(&body) {
            Ok(t) => t,
            Err(r) => return *r,
        };
        match s
            .book
            .propose(&actor(u), terms, caldicott_vault::now_micros())
        {
            Ok(a) => {
                if let Err(r) = record(
                    s.audit.as_ref(),
                    u,
                    origin,
                    "agreement-propose",
                    a.id.as_str(),
                    Outcome::Permit,
                    "version 1 proposed",
                ) {
                    return *r;
                }
                (StatusCode::CREATED, axum::Json(json!(a))).into_response()
            }
            Err(e) => share_error(&e),
        }
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revocation {
    reason: String,
}

async fn change(
    State(state): State<Arc<AgreementsState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    step(state, peer, headers, move |s, u, origin| {
        let Ok(id) = AgreementId::parse(&id) else {
            return error(StatusCode::NOT_FOUND, "no such agreement");
        };
        let now = caldicott_vault::now_micros();
        let (name, result) = match action.as_str() {
            "amend" => {
                let terms = match parse_terms(&body) {
                    Ok(t) => t,
                    Err(r) => return *r,
                };
                ("agreement-amend", s.book.amend(&id, &actor(u), terms, now))
            }
            "approve" => ("agreement-approve", s.book.approve(&id, &actor(u), now)),
            "revoke" => {
                let Ok(r) = serde_json::from_slice::<Revocation>(&body) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "the body must be JSON with the reason",
                    );
                };
                (
                    "agreement-revoke",
                    s.book.revoke(&id, &actor(u), &r.reason, now),
                )
            }
            _ => {
                return error(
                    StatusCode::NOT_FOUND,
                    "the actions are amend, approve and revoke",
                );
            }
        };
        match result {
            Ok(a) => {
                let why = format!("version {}", a.version);
                if let Err(r) = record(
                    s.audit.as_ref(),
                    u,
                    origin,
                    name,
                    a.id.as_str(),
                    Outcome::Permit,
                    &why,
                ) {
                    return *r;
                }
                let status = if name == "agreement-amend" {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                (status, axum::Json(json!(a))).into_response()
            }
            Err(e) => {
                if let ShareError::Refused(why) = &e
                    && let Err(r) = record(
                        s.audit.as_ref(),
                        u,
                        origin,
                        name,
                        id.as_str(),
                        Outcome::Deny,
                        why,
                    )
                {
                    return *r;
                }
                share_error(&e)
            }
        }
    })
    .await
}
