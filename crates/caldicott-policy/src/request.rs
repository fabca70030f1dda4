//! The inputs of a decision: who asks ([`Subject`]), about what ([`Target`]), what is known
//! of its patients ([`Facts`]) and when (`now_us`).

use std::fmt;

use crate::names::{Action, Purpose, Role};
use crate::scope::Scopes;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The user's (or client's) id. Never appears in a [`Reason`](crate::Reason).
    pub user: String,
    /// The ODS code of the organisation the subject acts for.
    pub org: String,
    /// The roles held for this session. A subject is permitted when any one role permits.
    pub roles: Vec<Role>,
    /// The purpose declared for this session.
    pub purpose: Purpose,
    /// The scopes of the subject's token.
    pub scopes: Scopes,
    /// An emergency access declared by the user, if any.
    pub break_glass: Option<BreakGlass>,
}

/// A declared emergency access ("break-glass"): the user says why, and it lasts until
/// `expires_at_us`.
#[derive(Clone, PartialEq, Eq)]
pub struct BreakGlass {
    /// The user's justification. It may mention the patient, so `Debug` shows only its
    /// length; it is for the guardian's review, never for a [`Reason`](crate::Reason).
    pub reason: String,
    /// When it was declared (microseconds since the Unix epoch).
    pub started_at_us: i64,
    /// When it stops applying (exclusive).
    pub expires_at_us: i64,
}

impl BreakGlass {
    /// Whether it applies at `now_us`: declared with a non-blank reason, started, and not
    /// yet expired (`started_at_us <= now_us < expires_at_us`).
    pub fn is_active(&self, now_us: i64) -> bool {
        self.started_at_us <= now_us
            && now_us < self.expires_at_us
            && !self.reason.trim().is_empty()
    }
}

impl fmt::Debug for BreakGlass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakGlass")
            .field("reason", &format_args!("<{} bytes>", self.reason.len()))
            .field("started_at_us", &self.started_at_us)
            .field("expires_at_us", &self.expires_at_us)
            .finish()
    }
}

/// The resource asked about (for a create: the resource to be created; for a search or an
/// export: each resource that would be returned).
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    /// Its FHIR resource type.
    pub rtype: String,
    /// The ODS code of the organisation that owns it.
    pub owner_org: String,
    /// The patients whose compartment it is in (`Patient/id`); for a Patient, itself.
    /// Empty for resources about no patient (Practitioner, Organization, ValueSet, …).
    /// `Debug` shows only how many.
    pub patients: Vec<String>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("rtype", &self.rtype)
            .field("owner_org", &self.owner_org)
            .field("patients", &format_args!("<{}>", self.patients.len()))
            .finish()
    }
}

/// What the caller looked up about the target's patients, as they relate to this subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// One entry per [`Target::patients`] entry, in the same order. A different length is
    /// denied ([`Reason::FactsMissing`](crate::Reason::FactsMissing)).
    pub patients: Vec<PatientFacts>,
}

/// What is known about one patient, relative to the subject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientFacts {
    /// The patient's organisation (registered GP practice, care home of residence) is the
    /// subject's organisation.
    pub registered_at_subject_org: bool,
    /// The user is a participant of an active CareTeam or EpisodeOfCare team for the
    /// patient.
    pub on_care_team: bool,
    /// The patient has a National Data Opt-out (type 2).
    pub opted_out_national: bool,
    /// The patient has a Type 1 opt-out recorded at their GP practice.
    pub opted_out_type1: bool,
    /// The patient's active Consent provisions, one rule per actor organisation × purpose.
    pub consents: Vec<ConsentRule>,
}

/// A Consent `provision.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentEffect {
    /// `deny`: the patient dissents.
    Deny,
    /// `permit`: the patient agrees. Recorded, but never grants access by itself.
    Permit,
}

/// One FHIR R4 Consent provision, flattened: a `deny` or `permit` for an organisation
/// (`provision.actor` referring to an Organization, by ODS code) and/or a purpose
/// (`provision.purpose`), during `provision.period`. A provision with several actors or
/// purposes becomes one rule per pair; a purpose code with no [`Purpose`] equivalent
/// cannot match any request and can be left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRule {
    /// Deny or permit.
    pub effect: ConsentEffect,
    /// The organisation it is about; `None`: every organisation.
    pub org: Option<String>,
    /// The purpose it is about; `None`: every purpose.
    pub purpose: Option<Purpose>,
    /// `provision.period.start` (inclusive); `None`: open.
    pub start_us: Option<i64>,
    /// `provision.period.end` (inclusive, as FHIR periods are); `None`: open.
    pub end_us: Option<i64>,
}

impl ConsentRule {
    /// A dissent from `org` (or every organisation) for `purpose` (or every purpose),
    /// without end.
    pub fn deny(org: Option<&str>, purpose: Option<Purpose>) -> Self {
        ConsentRule {
            effect: ConsentEffect::Deny,
            org: org.map(str::to_owned),
            purpose,
            start_us: None,
            end_us: None,
        }
    }

    /// An agreement for `org` (or every organisation) and `purpose` (or every purpose),
    /// without end.
    pub fn permit(org: Option<&str>, purpose: Option<Purpose>) -> Self {
        ConsentRule {
            effect: ConsentEffect::Permit,
            ..ConsentRule::deny(org, purpose)
        }
    }

    /// Whether the rule applies to a request by `org` for `purpose` at `now_us`.
    pub fn matches(&self, org: &str, purpose: Purpose, now_us: i64) -> bool {
        self.org
            .as_deref()
            .is_none_or(|o| o.eq_ignore_ascii_case(org))
            && self.purpose.is_none_or(|p| p == purpose)
            && self.start_us.is_none_or(|s| s <= now_us)
            && self.end_us.is_none_or(|e| now_us <= e)
    }
}

/// Everything a decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Who asks.
    pub subject: Subject,
    /// What they want to do.
    pub action: Action,
    /// To what.
    pub target: Target,
    /// About the target's patients.
    pub facts: Facts,
    /// The time of the request (microseconds since the Unix epoch): the engine reads no
    /// clock.
    pub now_us: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_patients_and_break_glass_reason() {
        let t = Target {
            rtype: "Observation".into(),
            owner_org: "A81001".into(),
            patients: vec!["Patient/9990000018".into()],
        };
        let d = format!("{t:?}");
        assert!(!d.contains("9990000018"), "{d}");
        assert!(d.contains("<1>"));
        let b = BreakGlass {
            reason: "collapsed, 999 000 0018".into(),
            started_at_us: 0,
            expires_at_us: 10,
        };
        assert!(!format!("{b:?}").contains("999"));
    }

    #[test]
    fn break_glass_window() {
        let b = BreakGlass {
            reason: "cardiac arrest".into(),
            started_at_us: 100,
            expires_at_us: 200,
        };
        assert!(!b.is_active(99));
        assert!(b.is_active(100));
        assert!(b.is_active(199));
        assert!(!b.is_active(200));
        let blank = BreakGlass {
            reason: "  ".into(),
            ..b
        };
        assert!(!blank.is_active(150));
    }

    #[test]
    fn consent_matching() {
        let r = ConsentRule::deny(Some("A81001"), None);
        assert!(r.matches("a81001", Purpose::DirectCare, 0));
        assert!(!r.matches("B82002", Purpose::DirectCare, 0));
        let r = ConsentRule::deny(None, Some(Purpose::Research));
        assert!(r.matches("B82002", Purpose::Research, 0));
        assert!(!r.matches("B82002", Purpose::DirectCare, 0));
        let r = ConsentRule {
            start_us: Some(10),
            end_us: Some(20),
            ..ConsentRule::deny(None, None)
        };
        assert!(!r.matches("X", Purpose::Audit, 9));
        assert!(r.matches("X", Purpose::Audit, 10));
        assert!(r.matches("X", Purpose::Audit, 20));
        assert!(!r.matches("X", Purpose::Audit, 21));
    }
}
