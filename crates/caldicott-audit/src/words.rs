//! Roles, actions and record types in plain English.
//!
//! Why one place: the patient's report and the guardian's review both speak to people, and a
//! role or an action must read the same way in both. Unknown codes are returned as `None` (or
//! passed through verbatim by the `*_or_code` helpers) so that nothing is invented; callers
//! escape whatever they print.

use crate::{AuditEvent, EventKind};

/// A role name (`caldicott-policy`'s names) in words.
#[must_use]
pub fn role(name: &str) -> Option<&'static str> {
    Some(match name {
        "gp" => "GP",
        "registered-nurse" => "Registered nurse",
        "care-worker" => "Care worker",
        "receptionist" => "Receptionist",
        "caldicott-guardian" => "Caldicott guardian",
        "researcher" => "Researcher",
        "system" => "Computer system",
        "sysadmin" => "System administrator",
        _ => return None,
    })
}

/// An event's comma-separated roles in words, unknown roles kept as recorded:
/// `"gp,sysadmin"` reads `"GP, System administrator"`.
#[must_use]
pub fn roles_or_codes(roles: &str) -> String {
    let words: Vec<&str> = roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| role(r).unwrap_or(r))
        .collect();
    words.join(", ")
}

/// What was done, in words, from the patient's side of the record: `"Read a record"`.
#[must_use]
pub fn action(event: &AuditEvent) -> &'static str {
    match event.kind {
        EventKind::Access => match event.action.as_str() {
            "read" => "Read a record",
            "search" => "Searched records",
            "create" => "Added a record",
            "update" => "Changed a record",
            "delete" => "Deleted a record",
            "history" => "Looked at earlier versions of a record",
            "export" => "Copied records in bulk (export)",
            _ => "Used records in another way",
        },
        EventKind::BreakGlass => match event.action.as_str() {
            "review" => "Reviewed an emergency access",
            _ => "Declared emergency access (break-glass)",
        },
        EventKind::AuditRead => "Looked at the audit trail",
        EventKind::Login => "Signed in",
        EventKind::LoginFailed => "Tried to sign in",
        EventKind::Credentials => "Changed sign-in details",
        EventKind::Token => "Managed access to the system",
        EventKind::Admin => "Changed the system's settings",
    }
}

/// A FHIR resource type as a patient would name that part of their record.
#[must_use]
pub fn record_type(rtype: &str) -> Option<&'static str> {
    Some(match rtype {
        "Patient" => "your personal details",
        "Observation" => "observations and test results",
        "Condition" => "conditions and diagnoses",
        "DiagnosticReport" => "test reports",
        "MedicationRequest" => "prescriptions",
        "MedicationStatement" => "medicines",
        "MedicationAdministration" => "medicines given",
        "AllergyIntolerance" => "allergies",
        "Immunization" => "vaccinations",
        "Encounter" => "appointments and visits",
        "Appointment" => "appointments",
        "EpisodeOfCare" => "episodes of care",
        "DocumentReference" => "letters and documents",
        "Procedure" => "procedures and operations",
        "CarePlan" => "care plans",
        "CareTeam" => "care team",
        "ServiceRequest" => "referrals and requests",
        "FamilyMemberHistory" => "family history",
        "Consent" => "consent decisions",
        "Flag" => "alerts on your record",
        "QuestionnaireResponse" => "questionnaires",
        _ => return None,
    })
}

/// [`record_type`], or the type's own name when it has no words.
#[must_use]
pub fn record_type_or_code(rtype: &str) -> String {
    record_type(rtype).map_or_else(|| rtype.to_owned(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::sample;

    #[test]
    fn every_role_of_the_policy_has_words() {
        for (code, words) in [
            ("gp", "GP"),
            ("registered-nurse", "Registered nurse"),
            ("care-worker", "Care worker"),
            ("receptionist", "Receptionist"),
            ("caldicott-guardian", "Caldicott guardian"),
            ("researcher", "Researcher"),
            ("system", "Computer system"),
            ("sysadmin", "System administrator"),
        ] {
            assert_eq!(role(code), Some(words));
        }
        assert_eq!(role("GP"), None);
        assert_eq!(
            roles_or_codes("gp, sysadmin,,locum"),
            "GP, System administrator, locum"
        );
        assert_eq!(roles_or_codes(""), "");
    }

    #[test]
    fn actions_in_words() {
        let mut e = sample();
        for (verb, words) in [
            ("read", "Read a record"),
            ("search", "Searched records"),
            ("create", "Added a record"),
            ("update", "Changed a record"),
            ("delete", "Deleted a record"),
            ("history", "Looked at earlier versions of a record"),
            ("export", "Copied records in bulk (export)"),
            ("frobnicate", "Used records in another way"),
        ] {
            e.action = verb.into();
            assert_eq!(action(&e), words);
        }
        e.kind = EventKind::BreakGlass;
        e.action = "declare".into();
        assert_eq!(action(&e), "Declared emergency access (break-glass)");
        for kind in EventKind::ALL {
            e.kind = *kind;
            assert!(!action(&e).is_empty());
        }
    }

    #[test]
    fn record_types() {
        assert_eq!(
            record_type("Observation"),
            Some("observations and test results")
        );
        assert_eq!(record_type_or_code("Basic"), "Basic");
    }
}
