//! The decision: [`decide`] and what it returns.

use std::fmt;

use crate::category::Category;
use crate::names::{Action, Purpose, Role};
use crate::request::{ConsentEffect, Request};
use crate::scope::ScopeContext;
use crate::table::{self, PatientAccess};

/// Permit or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The request may go ahead (with its obligations).
    Permit,
    /// The request must not go ahead; to a client, forbidden looks like missing.
    Deny,
}

/// Something the caller must do when it acts on a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Obligation {
    /// Mark the access (its audit event) as a break-glass access.
    FlagBreakGlass,
    /// Put the access in front of the organisation's Caldicott guardian for review.
    AlertGuardian,
}

/// Why a decision was made. Shown to users and logged, so it never carries an identifier:
/// each reason is a fixed sentence (see its `Display`) and a fixed code ([`Reason::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Permit: a legitimate relationship with every patient, for direct care.
    Relationship,
    /// Permit: a resource of the subject's own organisation that is about no patient.
    OwnOrganisation,
    /// Permit: within the subject's organisation, for the role's purpose (the guardian's
    /// audit; a system client).
    Organisation,
    /// Permit: break-glass (always with [`Obligation::FlagBreakGlass`] and
    /// [`Obligation::AlertGuardian`]).
    BreakGlass,
    /// Deny: the subject holds no role.
    NoRole,
    /// Deny: no scope (in the role's context) allows the action on the type.
    ScopeNotGranted,
    /// Deny: the role may not act for the declared purpose.
    PurposeNotPermitted,
    /// Deny: the emergency purpose without an active break-glass.
    EmergencyNeedsBreakGlass,
    /// Deny: audit by a system client without a `system/` scope to read AuditEvent.
    AuditNeedsScope,
    /// Deny: the resource type is unknown or not served.
    UnclassifiedType,
    /// Deny: the role's minimum-necessary row does not include this action on this
    /// category.
    NotPermittedForRole,
    /// Deny: the role never sees patient data.
    NoPatientData,
    /// Deny: the facts do not cover the target's patients one to one.
    FactsMissing,
    /// Deny: a patient's consent `deny` provision matches the organisation or purpose.
    ConsentDenied,
    /// Deny: a patient's National Data Opt-out, for research or planning.
    NationalOptOut,
    /// Deny: a patient's Type 1 opt-out, for research or planning.
    Type1OptOut,
    /// Deny: no legitimate relationship with a patient.
    NoRelationship,
    /// Deny: the resource belongs to another organisation, and there is no care-team
    /// relationship (or the role cannot have one).
    OtherOrganisation,
    /// Deny: break-glass would be needed, but it has expired (or has not started, or has no
    /// reason).
    BreakGlassNotActive,
    /// Deny: break-glass would be needed, but the role may not break glass.
    BreakGlassNotPermittedForRole,
}

impl Reason {
    /// Every reason.
    pub const ALL: &'static [Reason] = &[
        Reason::Relationship,
        Reason::OwnOrganisation,
        Reason::Organisation,
        Reason::BreakGlass,
        Reason::NoRole,
        Reason::ScopeNotGranted,
        Reason::PurposeNotPermitted,
        Reason::EmergencyNeedsBreakGlass,
        Reason::AuditNeedsScope,
        Reason::UnclassifiedType,
        Reason::NotPermittedForRole,
        Reason::NoPatientData,
        Reason::FactsMissing,
        Reason::ConsentDenied,
        Reason::NationalOptOut,
        Reason::Type1OptOut,
        Reason::NoRelationship,
        Reason::OtherOrganisation,
        Reason::BreakGlassNotActive,
        Reason::BreakGlassNotPermittedForRole,
    ];

    /// Whether this reason goes with a permit.
    pub const fn is_permit(self) -> bool {
        matches!(
            self,
            Reason::Relationship
                | Reason::OwnOrganisation
                | Reason::Organisation
                | Reason::BreakGlass
        )
    }

    /// A stable machine code (for logs and metrics).
    pub const fn code(self) -> &'static str {
        match self {
            Reason::Relationship => "relationship",
            Reason::OwnOrganisation => "own-organisation",
            Reason::Organisation => "organisation",
            Reason::BreakGlass => "break-glass",
            Reason::NoRole => "no-role",
            Reason::ScopeNotGranted => "scope-not-granted",
            Reason::PurposeNotPermitted => "purpose-not-permitted",
            Reason::EmergencyNeedsBreakGlass => "emergency-needs-break-glass",
            Reason::AuditNeedsScope => "audit-needs-scope",
            Reason::UnclassifiedType => "unclassified-type",
            Reason::NotPermittedForRole => "not-permitted-for-role",
            Reason::NoPatientData => "no-patient-data",
            Reason::FactsMissing => "facts-missing",
            Reason::ConsentDenied => "consent-denied",
            Reason::NationalOptOut => "national-opt-out",
            Reason::Type1OptOut => "type1-opt-out",
            Reason::NoRelationship => "no-relationship",
            Reason::OtherOrganisation => "other-organisation",
            Reason::BreakGlassNotActive => "break-glass-not-active",
            Reason::BreakGlassNotPermittedForRole => "break-glass-not-permitted-for-role",
        }
    }

    /// How far the checks got before this deny (when a subject holds several roles and none
    /// permits, the deny of the role that got furthest is returned).
    const fn depth(self) -> u8 {
        match self {
            Reason::NoRole => 0,
            Reason::ScopeNotGranted => 1,
            Reason::PurposeNotPermitted => 2,
            Reason::EmergencyNeedsBreakGlass | Reason::AuditNeedsScope => 3,
            Reason::UnclassifiedType => 4,
            Reason::NotPermittedForRole => 5,
            Reason::NoPatientData => 6,
            Reason::FactsMissing => 7,
            Reason::ConsentDenied | Reason::NationalOptOut | Reason::Type1OptOut => 8,
            _ => 9,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Relationship => {
                "permitted: a legitimate relationship with the patient, for direct care"
            }
            Reason::OwnOrganisation => {
                "permitted: a resource of the subject's organisation about no patient"
            }
            Reason::Organisation => {
                "permitted: within the subject's organisation, for the role's purpose"
            }
            Reason::BreakGlass => {
                "permitted under break-glass: flagged for the Caldicott guardian's review"
            }
            Reason::NoRole => "denied: the subject holds no role",
            Reason::ScopeNotGranted => {
                "denied: the token's scopes do not allow this action on this resource type"
            }
            Reason::PurposeNotPermitted => "denied: the role may not act for this purpose",
            Reason::EmergencyNeedsBreakGlass => {
                "denied: emergency access needs an active break-glass"
            }
            Reason::AuditNeedsScope => {
                "denied: audit by a system client needs a system scope to read AuditEvent"
            }
            Reason::UnclassifiedType => "denied: this resource type is not served",
            Reason::NotPermittedForRole => {
                "denied: the role does not need this action on this kind of resource \
                 (minimum necessary)"
            }
            Reason::NoPatientData => "denied: the role has no access to patient records",
            Reason::FactsMissing => {
                "denied: the facts about the resource's patients are incomplete"
            }
            Reason::ConsentDenied => {
                "denied: the patient has refused consent for this organisation or purpose"
            }
            Reason::NationalOptOut => {
                "denied: the patient has a National Data Opt-out, which applies to research \
                 and planning"
            }
            Reason::Type1OptOut => {
                "denied: the patient has a Type One opt-out: their GP data is used only for \
                 direct care"
            }
            Reason::NoRelationship => "denied: no legitimate relationship with the patient",
            Reason::OtherOrganisation => {
                "denied: the resource belongs to another organisation and there is no \
                 care-team relationship"
            }
            Reason::BreakGlassNotActive => {
                "denied: no legitimate relationship, and the break-glass is not active \
                 (expired, not started or without a reason)"
            }
            Reason::BreakGlassNotPermittedForRole => {
                "denied: no legitimate relationship, and the role may not break glass"
            }
        })
    }
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Permit or deny.
    pub effect: Effect,
    /// Why.
    pub reason: Reason,
    /// What the caller must do when it acts on a permit (always empty for a deny).
    pub obligations: Vec<Obligation>,
}

impl Decision {
    /// Whether the effect is [`Effect::Permit`].
    pub fn is_permit(&self) -> bool {
        self.effect == Effect::Permit
    }

    fn from_outcome(o: Outcome) -> Decision {
        if o.reason.is_permit() {
            Decision {
                effect: Effect::Permit,
                reason: o.reason,
                obligations: if o.break_glass {
                    vec![Obligation::FlagBreakGlass, Obligation::AlertGuardian]
                } else {
                    Vec::new()
                },
            }
        } else {
            Decision {
                effect: Effect::Deny,
                reason: o.reason,
                obligations: Vec::new(),
            }
        }
    }
}

/// One role's verdict, before it becomes a [`Decision`].
#[derive(Clone, Copy)]
struct Outcome {
    reason: Reason,
    break_glass: bool,
}

const fn deny(reason: Reason) -> Outcome {
    Outcome {
        reason,
        break_glass: false,
    }
}

const fn permit(reason: Reason) -> Outcome {
    Outcome {
        reason,
        break_glass: false,
    }
}

const fn permit_break_glass() -> Outcome {
    Outcome {
        reason: Reason::BreakGlass,
        break_glass: true,
    }
}

/// Decides a request. Pure and allocation-free except for a break-glass permit's two
/// obligations. The rules are in the crate documentation; a subject with several roles is
/// permitted when any role permits (a permit without break-glass preferred), and otherwise
/// gets the deny of the role whose checks got furthest.
pub fn decide(req: &Request) -> Decision {
    let mut best: Option<Outcome> = None;
    for &role in &req.subject.roles {
        let o = decide_role(req, role);
        best = Some(match best {
            None => o,
            Some(b) => better(b, o),
        });
        if o.reason.is_permit() && !o.break_glass {
            break;
        }
    }
    Decision::from_outcome(best.unwrap_or(deny(Reason::NoRole)))
}

fn better(a: Outcome, b: Outcome) -> Outcome {
    match (a.reason.is_permit(), b.reason.is_permit()) {
        (true, false) => a,
        (false, true) => b,
        (true, true) => {
            if a.break_glass && !b.break_glass {
                b
            } else {
                a
            }
        }
        (false, false) => {
            if b.reason.depth() > a.reason.depth() {
                b
            } else {
                a
            }
        }
    }
}

fn decide_role(req: &Request, role: Role) -> Outcome {
    let subject = &req.subject;
    let target = &req.target;
    let profile = table::profile(role);
    let purpose = subject.purpose;

    // 1. Scopes, in the role's context.
    if !subject
        .scopes
        .allows_in(profile.scopes, &target.rtype, req.action)
    {
        return deny(Reason::ScopeNotGranted);
    }

    // 2. Purpose.
    if !profile.purposes.contains(&purpose) {
        return deny(Reason::PurposeNotPermitted);
    }
    let break_glass_active = profile.break_glass
        && subject
            .break_glass
            .as_ref()
            .is_some_and(|b| b.is_active(req.now_us));
    let emergency = purpose == Purpose::Emergency;
    if emergency && !break_glass_active {
        return deny(Reason::EmergencyNeedsBreakGlass);
    }
    if purpose == Purpose::Audit
        && role == Role::System
        && !subject
            .scopes
            .allows_in(ScopeContext::System, "AuditEvent", Action::Read)
    {
        return deny(Reason::AuditNeedsScope);
    }

    // 3. Minimum necessary: role × category.
    let Some(category) = Category::of(&target.rtype) else {
        return deny(Reason::UnclassifiedType);
    };
    if !table::allowed(role, category).contains(req.action) {
        return deny(Reason::NotPermittedForRole);
    }

    let own_org = !subject.org.is_empty() && target.owner_org.eq_ignore_ascii_case(&subject.org);
    // What happens when a relationship or the organisation is missing.
    let fallback = |missing: Reason| -> Outcome {
        if break_glass_active {
            permit_break_glass()
        } else if subject.break_glass.is_none() {
            deny(missing)
        } else if profile.break_glass {
            deny(Reason::BreakGlassNotActive)
        } else {
            deny(Reason::BreakGlassNotPermittedForRole)
        }
    };

    // 4. A resource about no patient: the role table and organisation isolation only.
    if target.patients.is_empty() {
        return if emergency {
            permit_break_glass()
        } else if own_org {
            permit(Reason::OwnOrganisation)
        } else if profile.break_glass {
            fallback(Reason::OtherOrganisation)
        } else {
            deny(Reason::OtherOrganisation)
        };
    }

    // 5. Patient data.
    if profile.patients == PatientAccess::Never {
        return deny(Reason::NoPatientData);
    }
    let facts = &req.facts.patients;
    if facts.len() != target.patients.len() {
        return deny(Reason::FactsMissing);
    }
    // 5a. The patients' wishes: never overridden.
    let secondary_use = matches!(purpose, Purpose::Research | Purpose::Planning);
    for f in facts {
        if f.consents.iter().any(|c| {
            c.effect == ConsentEffect::Deny && c.matches(&subject.org, purpose, req.now_us)
        }) {
            return deny(Reason::ConsentDenied);
        }
        if secondary_use && f.opted_out_national {
            return deny(Reason::NationalOptOut);
        }
        if secondary_use && f.opted_out_type1 {
            return deny(Reason::Type1OptOut);
        }
    }
    // 5b. Relationship or organisation.
    match profile.patients {
        PatientAccess::Organisation => {
            if own_org {
                permit(Reason::Organisation)
            } else {
                deny(Reason::OtherOrganisation)
            }
        }
        PatientAccess::Relationship => {
            if emergency {
                return permit_break_glass();
            }
            let related = facts
                .iter()
                .all(|f| f.on_care_team || (own_org && f.registered_at_subject_org));
            if related {
                permit(Reason::Relationship)
            } else if own_org {
                fallback(Reason::NoRelationship)
            } else {
                fallback(Reason::OtherOrganisation)
            }
        }
        PatientAccess::Never => deny(Reason::NoPatientData),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_carry_no_digits_and_unique_codes() {
        let mut codes: Vec<_> = Reason::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len());
        for r in Reason::ALL {
            let text = r.to_string();
            assert!(!text.chars().any(|c| c.is_ascii_digit()), "{text}");
            assert_eq!(text.starts_with("permitted"), r.is_permit(), "{text}");
        }
    }
}
