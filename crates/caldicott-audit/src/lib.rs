//! Caldicott's audit events, as the audit ledger stores them, and what people read from them.
//!
//! What it is: the [`AuditEvent`] type (who, what, when, why, from where, outcome) and its
//! **canonical, versioned leaf bytes** ([`AuditEvent::to_leaf`], [`AuditEvent::from_leaf`]):
//! the exact bytes hashed into the RFC 9162 Merkle log by `caldicott-ledger`. A leaf is the
//! prefix [`LEAF_PREFIX`] (which names the format version) followed by the event as compact
//! JSON with the fields in declaration order. Decoding re-encodes and refuses any leaf that
//! is not byte-for-byte canonical, so one event has exactly one leaf.
//!
//! Around the leaf, pure views of events (each a function of its inputs, so the same ledger
//! always reads the same way):
//!
//! - [`fhir`]: an event as an HL7 FHIR R4 `AuditEvent` resource, following IHE Basic Audit Log
//!   Patterns (BALP) conventions, carrying its ledger position and leaf hash.
//! - [`query`]: FHIR search parameters over audit events, parsed and refused strictly, and
//!   matched against events.
//! - [`report`]: the patient's "who has looked at my record" report, as a FHIR `Bundle` and
//!   as a self-contained, accessible HTML page, with the inclusion proofs to check it.
//! - [`review`]: the Caldicott guardian's review queries: break-glass uses, access out of
//!   hours, staff looking at relatives or neighbours, unusual volumes.
//! - [`uktime`]: UK local time (GMT/BST) without a time-zone database; [`words`]: roles and
//!   actions in plain English, shared by the report and the review.
//!
//! What it is not: no storage, no Merkle hashing or proof checking, no HTTP, no clock. Patients
//! never appear in clear: the caller puts keyed pseudonyms (HMAC under the deployment's
//! directory key) in [`AuditEvent::patients`]; search queries are recorded by parameter name
//! only, never their values or results. The report's patient heading and the review's
//! profiles of staff and patients are given by the caller, used, and never stored here.

#![forbid(unsafe_code)]

pub mod fhir;
pub mod pdf;
pub mod query;
#[cfg(test)]
mod r4check;
pub mod report;
pub mod review;
pub mod uktime;
pub mod words;

use serde::{Deserialize, Serialize};

/// The first bytes of every version-1 leaf. A later format gets a new prefix; old leaves
/// keep theirs, so the log never needs rewriting.
pub const LEAF_PREFIX: &[u8] = b"caldicott-audit/1\n";

/// The largest leaf accepted, in bytes: an event is small; anything larger is not ours.
pub const MAX_LEAF_BYTES: usize = 64 * 1024;

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// An access decision on patient data (read, search, create, update, delete,
    /// history, export), permitted or denied: `action` names the interaction.
    Access,
    /// A successful sign-in (password and authenticator code).
    Login,
    /// A refused sign-in (wrong password or code, throttled, disabled).
    LoginFailed,
    /// A change to a person's authentication: password change, MFA enrolment,
    /// confirmation, reset.
    Credentials,
    /// A token issued or revoked, a session started or ended.
    Token,
    /// A break-glass declaration or its review.
    BreakGlass,
    /// A change to the deployment's configuration: organisations, users, roles, opt-out
    /// lists, keys.
    Admin,
    /// A read of the audit trail itself (AuditEvent search, patient access report,
    /// ledger entries).
    AuditRead,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [EventKind] = &[
        EventKind::Access,
        EventKind::Login,
        EventKind::LoginFailed,
        EventKind::Credentials,
        EventKind::Token,
        EventKind::BreakGlass,
        EventKind::Admin,
        EventKind::AuditRead,
    ];

    /// The kebab-case name used in leaves and on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Access => "access",
            EventKind::Login => "login",
            EventKind::LoginFailed => "login-failed",
            EventKind::Credentials => "credentials",
            EventKind::Token => "token",
            EventKind::BreakGlass => "break-glass",
            EventKind::Admin => "admin",
            EventKind::AuditRead => "audit-read",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The policy permitted it, or the operation succeeded.
    Permit,
    /// The policy refused it, or the operation failed.
    Deny,
}

/// One audit event: one leaf of the ledger.
///
/// Field order is the leaf's field order: do not reorder, rename or retype a field (that
/// is a new [`LEAF_PREFIX`] version); add fields only in a new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// When, in microseconds since the Unix epoch (UTC).
    pub at_us: i64,
    pub kind: EventKind,
    /// What was done: for [`EventKind::Access`] the policy action (`read`, `search`,
    /// `create`, `update`, `delete`, `history`, `export`); for other kinds a short verb
    /// (`password-change`, `mfa-enrol`, `declare`, `review`, `org-add`, ...).
    pub action: String,
    /// The user's name (`""` when a failed sign-in named no known user).
    pub user: String,
    /// The user's organisation (ODS code), `""` when unknown.
    pub org: String,
    /// The user's roles, comma separated.
    pub role: String,
    /// The purpose of use (`direct-care`, `research`, ...), `""` when none applies.
    pub purpose: String,
    /// The resource type concerned, if any.
    pub rtype: Option<String>,
    /// The resource id concerned, if any.
    pub id: Option<String>,
    /// Keyed pseudonyms of the patients concerned (never NHS numbers or names).
    pub patients: Vec<String>,
    /// For searches: the parameter names (with modifiers), never their values.
    pub query: Vec<String>,
    /// The client's network address, if known.
    pub client: Option<String>,
    /// The client's `User-Agent`, if sent (truncated to 200 characters).
    pub user_agent: Option<String>,
    pub outcome: Outcome,
    /// Why: the policy's reason or the operation's result (never a secret or identifier).
    pub reason: String,
    /// Access under break-glass, to be reviewed by the Caldicott guardian.
    pub break_glass: bool,
}

/// A leaf that is not a canonical version-1 audit event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    #[error("leaf of {0} bytes is larger than the {MAX_LEAF_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("leaf does not start with the caldicott-audit/1 prefix")]
    UnknownVersion,
    #[error("leaf is not a valid audit event: {0}")]
    Malformed(String),
    #[error("leaf is not in canonical form (it decodes, but re-encodes to different bytes)")]
    NotCanonical,
}

impl AuditEvent {
    /// The canonical leaf bytes.
    #[must_use]
    pub fn to_leaf(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(LEAF_PREFIX);
        // Serialising a struct of strings, integers, booleans and unit enums cannot fail.
        serde_json::to_writer(&mut out, self).unwrap_or_else(|_| unreachable!());
        out
    }

    /// Decodes a leaf, refusing anything but the canonical bytes of an event.
    ///
    /// # Errors
    /// [`LeafError`] naming what is wrong.
    pub fn from_leaf(leaf: &[u8]) -> Result<Self, LeafError> {
        if leaf.len() > MAX_LEAF_BYTES {
            return Err(LeafError::TooLarge(leaf.len()));
        }
        let body = leaf
            .strip_prefix(LEAF_PREFIX)
            .ok_or(LeafError::UnknownVersion)?;
        let event: AuditEvent =
            serde_json::from_slice(body).map_err(|e| LeafError::Malformed(e.to_string()))?;
        if event.to_leaf() != leaf {
            return Err(LeafError::NotCanonical);
        }
        Ok(event)
    }

    /// The user agent as recorded: at most 200 characters.
    #[must_use]
    pub fn clip_user_agent(ua: &str) -> String {
        ua.chars().take(200).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample() -> AuditEvent {
        AuditEvent {
            at_us: 1_764_400_000_000_000,
            kind: EventKind::Access,
            action: "read".into(),
            user: "dr.jones".into(),
            org: "A81001".into(),
            role: "gp".into(),
            purpose: "direct-care".into(),
            rtype: Some("Observation".into()),
            id: Some("obs-1".into()),
            patients: vec!["p1".into()],
            query: vec![],
            client: Some("192.0.2.7".into()),
            user_agent: Some("curl/8".into()),
            outcome: Outcome::Permit,
            reason: "registered at the organisation".into(),
            break_glass: false,
        }
    }

    #[test]
    fn the_leaf_is_exactly_this() {
        let leaf = sample().to_leaf();
        assert_eq!(
            String::from_utf8(leaf.clone()).unwrap(),
            "caldicott-audit/1\n{\"at_us\":1764400000000000,\"kind\":\"access\",\"action\":\"read\",\
             \"user\":\"dr.jones\",\"org\":\"A81001\",\"role\":\"gp\",\"purpose\":\"direct-care\",\
             \"rtype\":\"Observation\",\"id\":\"obs-1\",\"patients\":[\"p1\"],\"query\":[],\
             \"client\":\"192.0.2.7\",\"user_agent\":\"curl/8\",\"outcome\":\"permit\",\
             \"reason\":\"registered at the organisation\",\"break_glass\":false}"
        );
        assert_eq!(AuditEvent::from_leaf(&leaf).unwrap(), sample());
    }

    #[test]
    fn non_canonical_and_foreign_leaves_are_refused() {
        let leaf = String::from_utf8(sample().to_leaf()).unwrap();
        let spaced = leaf.replace("\"kind\":", "\"kind\": ");
        assert_eq!(
            AuditEvent::from_leaf(spaced.as_bytes()),
            Err(LeafError::NotCanonical)
        );
        let reordered = leaf.replace(
            "\"user\":\"dr.jones\",\"org\":\"A81001\"",
            "\"org\":\"A81001\",\"user\":\"dr.jones\"",
        );
        assert_eq!(
            AuditEvent::from_leaf(reordered.as_bytes()),
            Err(LeafError::NotCanonical)
        );
        assert_eq!(
            AuditEvent::from_leaf(b"caldicott-audit/2\n{}"),
            Err(LeafError::UnknownVersion)
        );
        assert!(matches!(
            AuditEvent::from_leaf(b"caldicott-audit/1\n{\"at_us\":1}"),
            Err(LeafError::Malformed(_))
        ));
        let extra = leaf.replace("\"break_glass\":false}", "\"break_glass\":false,\"x\":1}");
        assert!(matches!(
            AuditEvent::from_leaf(extra.as_bytes()),
            Err(LeafError::Malformed(_))
        ));
        let big = vec![b'x'; MAX_LEAF_BYTES + 1];
        assert_eq!(
            AuditEvent::from_leaf(&big),
            Err(LeafError::TooLarge(MAX_LEAF_BYTES + 1))
        );
    }

    proptest! {
        #[test]
        fn every_event_round_trips(
            at_us in any::<i64>(),
            kind in proptest::sample::select(EventKind::ALL),
            user in ".{0,20}",
            patients in proptest::collection::vec("[a-z0-9]{0,12}", 0..4),
            id in proptest::option::of("[A-Za-z0-9.-]{1,64}"),
            permit in any::<bool>(),
            reason in "\\PC{0,40}",
        ) {
            let mut e = sample();
            e.at_us = at_us;
            e.kind = kind;
            e.user = user;
            e.patients = patients;
            e.id = id;
            e.outcome = if permit { Outcome::Permit } else { Outcome::Deny };
            e.reason = reason;
            let leaf = e.to_leaf();
            prop_assert_eq!(AuditEvent::from_leaf(&leaf).unwrap(), e);
        }
    }
}
