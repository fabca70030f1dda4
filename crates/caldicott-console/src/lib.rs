//! The web console of Caldicott: the pages a care-home manager, a GP, a Caldicott guardian
//! and an administrator use, served by `caldicott serve` at `/`.
//!
//! What it is: server-rendered HTML (askama templates, escaped by default) following the
//! NHS.UK design system's patterns, that works without JavaScript under a strict
//! Content-Security-Policy (no script at all, styles only from `/assets/`). Each page is a
//! small module: [`signin`] (password, then authenticator code; first sign-in changes the
//! one-time password and enrols an authenticator), [`home`] (the organisation's security
//! posture), [`patients`] (search and the record, break-glass), [`history`] (who looked at
//! a record), [`guardian`] (break-glass review, unusual access, data-sharing agreements),
//! [`mail`] (the quarantine) and [`admin`] (users, tokens, opt-outs).
//!
//! What it is not: a second way to the data. Every page reads through the same pieces as the
//! FHIR API (`caldicott_api::Store` behind a `caldicott_api::guard::Guard`, the
//! `caldicott-access` directory, the audit sink), so the same policy decides and the same
//! ledger records. The browser session is the API's (`__Host-caldicott-session`); forms
//! carry a CSRF token derived from it ([`web::csrf_token`]).

#![forbid(unsafe_code)]
// Handlers return `Result<_, Response>`: the error is the page to send, built once and
// returned as it is; boxing every one would only add noise.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod guardian;
pub mod history;
pub mod home;
mod ledger_read;
pub mod mail;
pub mod patients;
pub mod signin;
pub mod web;

use std::sync::Arc;

use axum::Router;
use caldicott_access::Directory;
use caldicott_api::audit::AuditSink;
use caldicott_identity::LoginThrottle;

/// What every page handler shares.
pub struct ConsoleState {
    /// The vault, for the pieces a page builds over it (agreement book, quarantine).
    pub vault: Arc<caldicott_vault::Vault>,
    /// The FHIR store the API uses; pages read patient data only through it and a guard.
    pub store: Arc<caldicott_api::Store>,
    pub directory: Arc<Directory>,
    /// The same sink as the API's: every page view of patient data is recorded.
    pub audit: Arc<dyn AuditSink>,
    /// The audit ledger, for access history and the ledger's status.
    pub ledger: Option<Arc<caldicott_vault::Ledger>>,
    /// Sign-in throttling for the console's own forms.
    pub throttle: std::sync::Mutex<LoginThrottle>,
    /// Half-finished sign-ins (password checked, code not yet given).
    pub pending: signin::PendingSignIns,
    /// The externally visible base URL (`https://caldicott.example.nhs.uk`); browsers'
    /// `Origin` must be its origin. When `None`, the `Host` the request was sent to.
    pub public_base: Option<String>,
    /// `https` or `http`.
    pub scheme: &'static str,
    /// The time (microseconds since the epoch); tests move it.
    pub clock: caldicott_api::auth::Clock,
}

impl ConsoleState {
    /// The console over the API's pieces, on the system clock.
    pub fn new(
        vault: Arc<caldicott_vault::Vault>,
        store: Arc<caldicott_api::Store>,
        directory: Arc<Directory>,
        audit: Arc<dyn AuditSink>,
        ledger: Option<Arc<caldicott_vault::Ledger>>,
        config: &caldicott_api::ApiConfig,
    ) -> Self {
        ConsoleState {
            vault,
            store,
            directory,
            audit,
            ledger,
            throttle: caldicott_access::signin::new_throttle(),
            pending: signin::PendingSignIns::default(),
            public_base: config
                .public_base
                .as_deref()
                .map(|b| b.trim_end_matches("/fhir").to_owned()),
            scheme: config.scheme,
            clock: Arc::new(caldicott_vault::now_micros),
        }
    }

    /// The current time in microseconds.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }
}

/// Every route of the console.
pub fn router(state: Arc<ConsoleState>) -> Router {
    Router::new()
        .merge(web::routes())
        .merge(signin::routes())
        .merge(home::routes())
        .merge(patients::routes())
        .merge(history::routes())
        .merge(guardian::routes())
        .merge(mail::routes())
        .merge(admin::routes())
        .layer(axum::middleware::from_fn(web::host_from_authority))
        .with_state(state)
}
