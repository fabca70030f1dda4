//! The one interface through which every access decision leaves the API for the audit
//! trail. Today's sink writes structured log events (target `caldicott::audit`); the
//! tamper-evident ledger (issue 5) will be another [`AuditSink`].
//!
//! An event names the user, their organisation, role and purpose, the action, the
//! resource type and id, the outcome and the policy's reason. Patients appear only as keyed
//! pseudonyms (an HMAC under the deployment's directory key), never as a reference or an
//! NHS number, so the trail can be searched by patient without holding identifiers.

use caldicott_policy::{Action, Decision, Effect, Subject};

/// One access decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEvent {
    /// Microseconds since the Unix epoch.
    pub at_us: i64,
    pub user: String,
    pub org: String,
    pub role: String,
    pub purpose: String,
    pub action: Action,
    pub rtype: String,
    /// The resource's id, when it has one (a create that was refused may not).
    pub id: Option<String>,
    /// Keyed pseudonyms of the patients the resource concerns.
    pub patients: Vec<String>,
    pub permitted: bool,
    /// The policy's reason (never an identifier).
    pub reason: String,
    /// Break-glass access, to be reviewed by the Caldicott guardian.
    pub break_glass: bool,
}

impl AccessEvent {
    pub(crate) fn new(
        subject: &Subject,
        action: Action,
        rtype: &str,
        id: Option<&str>,
        patients: Vec<String>,
        decision: &Decision,
        at_us: i64,
    ) -> Self {
        AccessEvent {
            at_us,
            user: subject.user.clone(),
            org: subject.org.clone(),
            role: subject
                .roles
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            purpose: subject.purpose.to_string(),
            action,
            rtype: rtype.to_owned(),
            id: id.map(str::to_owned),
            patients,
            permitted: decision.effect == Effect::Permit,
            reason: decision.reason.to_string(),
            break_glass: decision
                .obligations
                .contains(&caldicott_policy::Obligation::FlagBreakGlass),
        }
    }
}

/// Where access events go.
pub trait AuditSink: Send + Sync {
    fn record(&self, event: &AccessEvent);
}

/// Writes each event as one structured log line (target `caldicott::audit`).
pub struct LogSink;

impl AuditSink for LogSink {
    fn record(&self, e: &AccessEvent) {
        tracing::info!(
            target: "caldicott::audit",
            at_us = e.at_us,
            user = %e.user,
            org = %e.org,
            role = %e.role,
            purpose = %e.purpose,
            action = %e.action,
            rtype = %e.rtype,
            id = e.id.as_deref().unwrap_or(""),
            patients = %e.patients.join(","),
            outcome = if e.permitted { "permit" } else { "deny" },
            reason = %e.reason,
            break_glass = e.break_glass,
            "access decision"
        );
    }
}

/// Keeps events in memory, for tests.
#[derive(Default)]
pub struct MemorySink(pub std::sync::Mutex<Vec<AccessEvent>>);

impl AuditSink for MemorySink {
    fn record(&self, e: &AccessEvent) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.clone());
    }
}
