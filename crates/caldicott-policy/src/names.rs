//! The closed vocabularies of a decision: who ([`Role`]), why ([`Purpose`]) and what
//! ([`Action`]), each with its command-line name.

use std::fmt;
use std::str::FromStr;

/// A name that is not one of a vocabulary's names (a role, purpose or action given on the
/// command line or in a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{name}`: expected one of {expected}")]
pub struct UnknownName {
    /// `role`, `purpose` or `action`.
    pub kind: &'static str,
    /// The name given, cut to 64 characters.
    pub name: String,
    /// The valid names, comma-separated.
    pub expected: &'static str,
}

impl UnknownName {
    fn new(kind: &'static str, name: &str, expected: &'static str) -> Self {
        UnknownName {
            kind,
            name: name.chars().take(64).collect(),
            expected,
        }
    }
}

/// Declares a closed vocabulary: the enum, `ALL`, `name()`, `Display` and `FromStr` with the
/// exact names, and the `expected` list for errors (built from the same names).
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal, $expected:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order (the order of the documented tables).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The command-line name.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownName::new($kind, s, $expected)),
                }
            }
        }
    };
}

vocabulary! {
    /// A job role held by a user (national RBAC job-role codes map onto these), or `System`
    /// for a machine client.
    Role, "role",
    "care-worker, registered-nurse, gp, receptionist, caldicott-guardian, sysadmin, researcher, system" {
        /// A social-care or healthcare support worker (care home, domiciliary care).
        CareWorker => "care-worker",
        /// A registered nurse.
        RegisteredNurse => "registered-nurse",
        /// A general practitioner or other doctor.
        Gp => "gp",
        /// Reception and administrative clerks.
        Receptionist => "receptionist",
        /// The organisation's Caldicott guardian (privacy officer): reviews access.
        CaldicottGuardian => "caldicott-guardian",
        /// Runs the service: the directory and reference data, never patient data.
        Sysadmin => "sysadmin",
        /// A researcher: never direct access to patient records (research data leaves only
        /// through the sharing pipeline).
        Researcher => "researcher",
        /// A machine client (integration engine, bulk export, the server's own jobs).
        System => "system",
    }
}

vocabulary! {
    /// Why the subject is acting (Caldicott principle 1: justify the purpose).
    Purpose, "purpose", "direct-care, research, planning, audit, emergency" {
        /// Individual care of the patient.
        DirectCare => "direct-care",
        /// Research (National Data Opt-out applies).
        Research => "research",
        /// Planning and running services (National Data Opt-out applies).
        Planning => "planning",
        /// Reviewing access and records: the Caldicott guardian's work.
        Audit => "audit",
        /// Emergency care under break-glass.
        Emergency => "emergency",
    }
}

vocabulary! {
    /// What the subject wants to do with the resource (the FHIR interactions).
    Action, "action", "read, search, create, update, delete, history, export" {
        /// `read` / `vread`.
        Read => "read",
        /// `search-type`, `search-system`; decided per resource returned.
        Search => "search",
        /// `create`.
        Create => "create",
        /// `update` (and `patch`).
        Update => "update",
        /// `delete`.
        Delete => "delete",
        /// `history-instance`, `history-type`.
        History => "history",
        /// Bulk Data `$export`; decided per resource exported.
        Export => "export",
    }
}

impl Role {
    /// Whether the role is a clinician who may break glass (GP, registered nurse, care
    /// worker).
    pub const fn is_clinician(self) -> bool {
        matches!(self, Role::CareWorker | Role::RegisteredNurse | Role::Gp)
    }
}

impl Action {
    /// Whether the action changes data (`create`, `update`, `delete`): covered by a scope's
    /// `write` permission; every other action is covered by `read`.
    pub const fn is_write(self) -> bool {
        matches!(self, Action::Create | Action::Update | Action::Delete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.name().parse::<Role>(), Ok(*r));
            assert_eq!(r.to_string(), r.name());
        }
        for p in Purpose::ALL {
            assert_eq!(p.name().parse::<Purpose>(), Ok(*p));
        }
        for a in Action::ALL {
            assert_eq!(a.name().parse::<Action>(), Ok(*a));
        }
    }

    #[test]
    fn expected_lists_match_the_names() {
        let join = |names: Vec<&str>| names.join(", ");
        let e = "x".parse::<Role>().unwrap_err();
        assert_eq!(
            e.expected,
            join(Role::ALL.iter().map(|r| r.name()).collect())
        );
        let e = "x".parse::<Purpose>().unwrap_err();
        assert_eq!(
            e.expected,
            join(Purpose::ALL.iter().map(|r| r.name()).collect())
        );
        let e = "x".parse::<Action>().unwrap_err();
        assert_eq!(
            e.expected,
            join(Action::ALL.iter().map(|r| r.name()).collect())
        );
    }

    #[test]
    fn unknown_role_lists_the_valid_ones() {
        let e = "doctor".parse::<Role>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown role `doctor`: expected one of care-worker, registered-nurse, gp, \
             receptionist, caldicott-guardian, sysadmin, researcher, system"
        );
        assert!("GP".parse::<Role>().is_err(), "names are exact");
        assert!("".parse::<Purpose>().is_err());
        let long = "x".repeat(1000);
        assert_eq!(long.parse::<Action>().unwrap_err().name.len(), 64);
    }
}
