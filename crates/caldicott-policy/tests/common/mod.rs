//! Builders shared by the integration tests.
#![allow(dead_code)]

use caldicott_policy::*;

pub const OWN_ORG: &str = "A81001";
pub const OTHER_ORG: &str = "B82002";
pub const NOW: i64 = 1_750_000_000_000_000;

/// One resource type per category (and `Parameters` for "unclassified").
pub const REPRESENTATIVES: &[(Option<Category>, &str)] = &[
    (Some(Category::Directory), "Practitioner"),
    (Some(Category::Reference), "ValueSet"),
    (Some(Category::Demographics), "Patient"),
    (Some(Category::Administrative), "Appointment"),
    (Some(Category::CareRecord), "Observation"),
    (Some(Category::CareSummary), "AllergyIntolerance"),
    (Some(Category::Clinical), "DiagnosticReport"),
    (Some(Category::Consent), "Consent"),
    (Some(Category::Audit), "AuditEvent"),
    (None, "Parameters"),
];

/// The scope context a role's scopes must be in.
pub fn context_of(role: Role) -> ScopeContext {
    if role == Role::System {
        ScopeContext::System
    } else {
        ScopeContext::User
    }
}

/// `ctx/*.*`.
pub fn full_scopes(ctx: ScopeContext) -> Scopes {
    format!("{}/*.*", ctx.name()).parse().unwrap()
}

pub fn active_break_glass() -> BreakGlass {
    BreakGlass {
        reason: "unconscious in A&E, no record access".into(),
        started_at_us: NOW - 60_000_000,
        expires_at_us: NOW + 3_600_000_000,
    }
}

pub fn expired_break_glass() -> BreakGlass {
    BreakGlass {
        reason: "unconscious in A&E, no record access".into(),
        started_at_us: NOW - 7_200_000_000,
        expires_at_us: NOW - 3_600_000_000,
    }
}

/// A GP at `OWN_ORG` reading an Observation of one patient registered there.
pub fn base_request() -> Request {
    Request {
        subject: Subject {
            user: "usr_gp_0001".into(),
            org: OWN_ORG.into(),
            roles: vec![Role::Gp],
            purpose: Purpose::DirectCare,
            scopes: full_scopes(ScopeContext::User),
            break_glass: None,
        },
        action: Action::Read,
        target: Target {
            rtype: "Observation".into(),
            owner_org: OWN_ORG.into(),
            patients: vec!["Patient/pat-0001".into()],
        },
        facts: Facts {
            patients: vec![PatientFacts {
                registered_at_subject_org: true,
                ..Default::default()
            }],
        },
        now_us: NOW,
    }
}
