//! The one interface through which every audit event leaves the API: [`AuditSink`].
//!
//! Events are [`caldicott_audit::AuditEvent`]s: who (user, organisation, role), what
//! (action, resource type and id, patients as keyed pseudonyms), when, why (purpose), from
//! where (client address, user agent) and the outcome. The deployment's sink is the
//! vault's tamper-evident ledger (`caldicott_vault::Ledger` through [`LedgerSink`]): an
//! event about a write is appended in the same database transaction as the write (see
//! `Store`), every other event is group-committed before the response is sent. Tests may
//! use [`MemorySink`].

use std::sync::Arc;

pub use caldicott_audit::{AuditEvent, EventKind, Outcome};
use caldicott_policy::{Action, Decision, Effect, Subject};
use caldicott_vault::{Ledger, LedgerLeaf};

/// The audit trail could not be written: the request must fail rather than go unrecorded.
#[derive(Debug, thiserror::Error)]
#[error("the audit trail cannot be written: {0}")]
pub struct AuditError(pub String);

/// What [`AuditSink::record_then`] calls when the events are durable (or failed).
pub type RecordDone = Box<dyn FnOnce(Result<(), AuditError>) + Send>;

/// Where audit events go.
pub trait AuditSink: Send + Sync {
    /// Records events durably; returns once they are (a sink may batch several callers'
    /// events into one commit).
    ///
    /// # Errors
    /// When the events could not be made durable.
    fn record(&self, events: Vec<AuditEvent>) -> Result<(), AuditError>;

    /// Records events and calls `done` once they are durable (or could not be made so),
    /// without blocking the caller: the server awaits `done` instead of holding a thread
    /// per request. The default records synchronously.
    fn record_then(&self, events: Vec<AuditEvent>, done: RecordDone) {
        done(self.record(events));
    }

    /// Whether events about a write travel inside the write's own transaction (the
    /// ledger) rather than through [`AuditSink::record`] afterwards.
    fn transactional(&self) -> bool {
        false
    }
}

/// The lookup keys a leaf is indexed under: its patients and its user, so that "who looked
/// at this patient" and "what did this user do" never scan the whole log.
pub fn leaf_of(event: &AuditEvent) -> LedgerLeaf {
    let mut keys = Vec::with_capacity(event.patients.len() + 1);
    for p in &event.patients {
        keys.push(format!("p:{p}"));
    }
    if !event.user.is_empty() {
        keys.push(format!("u:{}", event.user));
    }
    LedgerLeaf {
        data: event.to_leaf(),
        at_us: event.at_us,
        keys,
    }
}

/// The vault's ledger as the audit sink.
pub struct LedgerSink(pub Arc<Ledger>);

impl AuditSink for LedgerSink {
    fn record(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        if events.is_empty() {
            return Ok(());
        }
        let leaves = events.iter().map(leaf_of).collect();
        self.0
            .append(leaves)
            .map(|_| ())
            .map_err(|e| AuditError(e.to_string()))
    }

    fn record_then(&self, events: Vec<AuditEvent>, done: RecordDone) {
        if events.is_empty() {
            return done(Ok(()));
        }
        let leaves = events.iter().map(leaf_of).collect();
        self.0.append_then(
            leaves,
            Box::new(move |r| done(r.map(|_| ()).map_err(|e| AuditError(e.to_string())))),
        );
    }

    fn transactional(&self) -> bool {
        true
    }
}

/// Keeps events in memory, for tests of code that does not own a vault.
#[derive(Default)]
pub struct MemorySink(pub std::sync::Mutex<Vec<AuditEvent>>);

impl AuditSink for MemorySink {
    fn record(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(events);
        Ok(())
    }
}

/// The network context of a request: recorded in every event it causes.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub client: Option<String>,
    pub user_agent: Option<String>,
}

impl Origin {
    /// From the peer address and the `User-Agent` header.
    pub fn new(client: Option<std::net::SocketAddr>, headers: &axum::http::HeaderMap) -> Self {
        Origin {
            client: client.map(|a| a.ip().to_string()),
            user_agent: headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(AuditEvent::clip_user_agent),
        }
    }
}

/// An access decision as an audit event.
#[allow(clippy::too_many_arguments)]
pub(crate) fn access_event(
    subject: &Subject,
    origin: &Origin,
    action: Action,
    rtype: &str,
    id: Option<&str>,
    patients: Vec<String>,
    decision: &Decision,
    at_us: i64,
) -> AuditEvent {
    AuditEvent {
        at_us,
        kind: EventKind::Access,
        action: action.to_string(),
        user: subject.user.clone(),
        org: subject.org.clone(),
        role: roles(subject),
        purpose: subject.purpose.to_string(),
        rtype: Some(rtype.to_owned()),
        id: id.map(str::to_owned),
        patients,
        query: Vec::new(),
        client: origin.client.clone(),
        user_agent: origin.user_agent.clone(),
        outcome: if decision.effect == Effect::Permit {
            Outcome::Permit
        } else {
            Outcome::Deny
        },
        reason: decision.reason.to_string(),
        break_glass: decision
            .obligations
            .contains(&caldicott_policy::Obligation::FlagBreakGlass),
    }
}

/// A subject's roles as recorded: their names, comma separated.
pub(crate) fn roles(subject: &Subject) -> String {
    subject
        .roles
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A security event (sign-in, credentials, tokens, break-glass, administration) for a
/// known or claimed user.
#[allow(clippy::too_many_arguments)]
pub fn security_event(
    kind: EventKind,
    action: &str,
    user: &str,
    org: &str,
    role: &str,
    origin: &Origin,
    outcome: Outcome,
    reason: &str,
    at_us: i64,
) -> AuditEvent {
    AuditEvent {
        at_us,
        kind,
        action: action.to_owned(),
        user: user.to_owned(),
        org: org.to_owned(),
        role: role.to_owned(),
        purpose: String::new(),
        rtype: None,
        id: None,
        patients: Vec::new(),
        query: Vec::new(),
        client: origin.client.clone(),
        user_agent: origin.user_agent.clone(),
        outcome,
        reason: reason.to_owned(),
        break_glass: false,
    }
}
