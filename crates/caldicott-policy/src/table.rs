//! The access tables: per role, its purposes, how it reaches patient data and whether it may
//! break glass ([`role_profiles`]); per role and category, the actions it may take
//! ([`access_table`]). [`decide`](crate::decide) reads exactly these tables.

use std::fmt;

use crate::category::Category;
use crate::names::{Action, Purpose, Role};
use crate::scope::ScopeContext;

/// A set of [`Action`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ActionSet(u8);

impl ActionSet {
    /// No action.
    pub const NONE: ActionSet = ActionSet(0);
    /// `read`, `search`, `history`.
    pub const READ: ActionSet = ActionSet::of(&[Action::Read, Action::Search, Action::History]);
    /// `read`, `search`: looking things up, without past versions.
    pub const LOOKUP: ActionSet = ActionSet::of(&[Action::Read, Action::Search]);
    /// `create`, `update`, `delete`.
    pub const WRITE: ActionSet = ActionSet::of(&[Action::Create, Action::Update, Action::Delete]);
    /// `read`, `search`, `history`, `create`, `update`, `delete` (no bulk export).
    pub const READ_WRITE: ActionSet = ActionSet::READ.union(ActionSet::WRITE);
    /// `read`, `search`, `create`, `update`: a clerk's work (no delete, no history).
    pub const CLERK: ActionSet =
        ActionSet::LOOKUP.union(ActionSet::of(&[Action::Create, Action::Update]));
    /// `read`, `search`, `history`, `create`, `update`: recording without deleting.
    pub const RECORD: ActionSet =
        ActionSet::READ.union(ActionSet::of(&[Action::Create, Action::Update]));
    /// Every action, bulk `export` included.
    pub const ALL: ActionSet = ActionSet::READ_WRITE.union(ActionSet::of(&[Action::Export]));

    /// The set of the given actions.
    pub const fn of(actions: &[Action]) -> ActionSet {
        let mut bits = 0u8;
        let mut i = 0;
        while i < actions.len() {
            bits |= 1 << actions[i] as u8;
            i += 1;
        }
        ActionSet(bits)
    }

    /// Both sets' actions.
    pub const fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }

    /// Whether `action` is in the set.
    pub const fn contains(self, action: Action) -> bool {
        self.0 & (1 << action as u8) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions, in [`Action::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL
            .iter()
            .copied()
            .filter(move |a| self.contains(*a))
    }
}

impl fmt::Debug for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for ActionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("–");
        }
        for (i, a) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(a.name())?;
        }
        Ok(())
    }
}

/// How a role reaches resources that belong to patients (a non-empty
/// [`Target::patients`](crate::Target::patients)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientAccess {
    /// Only through a legitimate relationship with every patient: at the subject's
    /// organisation, the patient is registered there or the user is on the patient's care
    /// team; at another organisation, only the care team counts. Otherwise break-glass,
    /// where the role allows it.
    Relationship,
    /// Every patient's resources at the subject's own organisation, without a personal
    /// relationship (the Caldicott guardian's review, machine clients); never another
    /// organisation's.
    Organisation,
    /// Never.
    Never,
}

/// What a role may do, apart from the per-category actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleProfile {
    /// The role.
    pub role: Role,
    /// The scope prefix whose scopes count for this role.
    pub scopes: ScopeContext,
    /// The purposes the role may act for.
    pub purposes: &'static [Purpose],
    /// How the role reaches patient data.
    pub patients: PatientAccess,
    /// Whether the role may break glass.
    pub break_glass: bool,
}

/// One cell of the minimum-necessary table: what `role` may do to resources of `category`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRow {
    /// The role.
    pub role: Role,
    /// The resource-type category.
    pub category: Category,
    /// The actions allowed (empty: none).
    pub actions: ActionSet,
}

use Purpose::{Audit, DirectCare, Emergency, Planning, Research};

const CLINICIAN_PURPOSES: &[Purpose] = &[DirectCare, Emergency];

const PROFILES: [RoleProfile; Role::ALL.len()] = [
    RoleProfile {
        role: Role::CareWorker,
        scopes: ScopeContext::User,
        purposes: CLINICIAN_PURPOSES,
        patients: PatientAccess::Relationship,
        break_glass: true,
    },
    RoleProfile {
        role: Role::RegisteredNurse,
        scopes: ScopeContext::User,
        purposes: CLINICIAN_PURPOSES,
        patients: PatientAccess::Relationship,
        break_glass: true,
    },
    RoleProfile {
        role: Role::Gp,
        scopes: ScopeContext::User,
        purposes: CLINICIAN_PURPOSES,
        patients: PatientAccess::Relationship,
        break_glass: true,
    },
    RoleProfile {
        role: Role::Receptionist,
        scopes: ScopeContext::User,
        purposes: &[DirectCare],
        patients: PatientAccess::Relationship,
        break_glass: false,
    },
    RoleProfile {
        role: Role::CaldicottGuardian,
        scopes: ScopeContext::User,
        purposes: &[Audit],
        patients: PatientAccess::Organisation,
        break_glass: false,
    },
    RoleProfile {
        role: Role::Sysadmin,
        scopes: ScopeContext::User,
        purposes: &[DirectCare, Planning],
        patients: PatientAccess::Never,
        break_glass: false,
    },
    RoleProfile {
        role: Role::Researcher,
        scopes: ScopeContext::User,
        purposes: &[Research],
        patients: PatientAccess::Never,
        break_glass: false,
    },
    RoleProfile {
        role: Role::System,
        scopes: ScopeContext::System,
        purposes: &[DirectCare, Research, Planning, Audit],
        patients: PatientAccess::Organisation,
        break_glass: false,
    },
];

/// The role profiles, one per role in [`Role::ALL`] order.
pub fn role_profiles() -> &'static [RoleProfile] {
    &PROFILES
}

/// The profile of `role`.
pub const fn profile(role: Role) -> &'static RoleProfile {
    &PROFILES[role as usize]
}

const R: ActionSet = ActionSet::READ;
const L: ActionSet = ActionSet::LOOKUP;
const RW: ActionSet = ActionSet::READ_WRITE;
const CL: ActionSet = ActionSet::CLERK;
const REC: ActionSet = ActionSet::RECORD;
const ALL: ActionSet = ActionSet::ALL;
const NO: ActionSet = ActionSet::NONE;

/// Role × category, in [`Role::ALL`] × [`Category::ALL`] order. Columns: directory,
/// reference, demographics, administrative, care-record, care-summary, clinical, consent,
/// audit.
#[rustfmt::skip]
const MATRIX: [[ActionSet; Category::COUNT]; Role::ALL.len()] = [
    //  dir ref dem adm rec  sum clin cons aud
    [R,  R,  R,  R,  REC, R,  NO, NO, NO], // care-worker
    [R,  R,  RW, RW, RW,  RW, RW, RW, NO], // registered-nurse
    [R,  R,  RW, RW, RW,  RW, RW, RW, NO], // gp
    [L,  L,  CL, CL, NO,  NO, NO, NO, NO], // receptionist
    [R,  R,  R,  R,  R,   R,  R,  R,  R ], // caldicott-guardian
    [RW, RW, NO, NO, NO,  NO, NO, NO, NO], // sysadmin
    [NO, L,  NO, NO, NO,  NO, NO, NO, NO], // researcher
    [ALL,ALL,ALL,ALL,ALL, ALL,ALL,ALL,ALL], // system (narrowed by its scopes)
];

const fn rows() -> [AccessRow; Role::ALL.len() * Category::COUNT] {
    let mut out = [AccessRow {
        role: Role::CareWorker,
        category: Category::Directory,
        actions: ActionSet::NONE,
    }; Role::ALL.len() * Category::COUNT];
    let mut r = 0;
    while r < Role::ALL.len() {
        let mut c = 0;
        while c < Category::COUNT {
            out[r * Category::COUNT + c] = AccessRow {
                role: Role::ALL[r],
                category: Category::ALL[c],
                actions: MATRIX[r][c],
            };
            c += 1;
        }
        r += 1;
    }
    out
}

static ROWS: [AccessRow; Role::ALL.len() * Category::COUNT] = rows();

/// The minimum-necessary table: every role × category pair (empty action sets included),
/// role-major in [`Role::ALL`] order, then [`Category::ALL`] order.
pub fn access_table() -> &'static [AccessRow] {
    &ROWS
}

/// The actions `role` may take on resources of `category`.
pub const fn allowed(role: Role, category: Category) -> ActionSet {
    MATRIX[role as usize][category as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_in_declaration_order() {
        for (i, p) in role_profiles().iter().enumerate() {
            assert_eq!(p.role, Role::ALL[i]);
        }
        for (i, row) in access_table().iter().enumerate() {
            assert_eq!(row.role, Role::ALL[i / Category::COUNT]);
            assert_eq!(row.category, Category::ALL[i % Category::COUNT]);
            assert_eq!(row.actions, allowed(row.role, row.category));
        }
        for (i, c) in Category::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    #[test]
    fn action_sets() {
        assert_eq!(ActionSet::READ.to_string(), "read, search, history");
        assert_eq!(ActionSet::CLERK.to_string(), "read, search, create, update");
        assert_eq!(ActionSet::NONE.to_string(), "–");
        assert_eq!(ActionSet::ALL.iter().count(), Action::ALL.len());
        assert!(!ActionSet::READ_WRITE.contains(Action::Export));
    }
}
