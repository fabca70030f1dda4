//! The exhaustive matrix: every role × action × category × relationship × purpose ×
//! patient-wishes state × owning organisation × break-glass state × scope set, decided and
//! checked against an expectation computed from the documented tables
//! ([`access_table`], [`role_profiles`]) and the rules as the crate documentation states
//! them, never from `decide`.

mod common;

use caldicott_policy::*;
use common::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rel {
    Registered,
    CareTeam,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wishes {
    None,
    NationalOptOut,
    Type1OptOut,
    /// Consent deny naming the subject's organisation (any purpose).
    DenyOrg,
    /// Consent deny for the request's purpose (any organisation).
    DenyPurpose,
    /// Consent deny for another organisation: does not apply.
    DenyOtherOrg,
    /// Consent deny whose period has ended: does not apply.
    DenyExpired,
    /// Consent permit: grants nothing by itself.
    Permit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Glass {
    None,
    Active,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopeSet {
    /// `<role context>/*.*`
    Full,
    /// `<role context>/*.read`
    ReadOnly,
    /// `<role context>/<the target type>.*`
    TypeOnly,
    /// `<the other context>/*.*` (and `patient/*.*`)
    WrongContext,
}

const RELS: [Rel; 3] = [Rel::Registered, Rel::CareTeam, Rel::None];
const WISHES: [Wishes; 8] = [
    Wishes::None,
    Wishes::NationalOptOut,
    Wishes::Type1OptOut,
    Wishes::DenyOrg,
    Wishes::DenyPurpose,
    Wishes::DenyOtherOrg,
    Wishes::DenyExpired,
    Wishes::Permit,
];
const GLASS: [Glass; 3] = [Glass::None, Glass::Active, Glass::Expired];
const SCOPES: [ScopeSet; 4] = [
    ScopeSet::Full,
    ScopeSet::ReadOnly,
    ScopeSet::TypeOnly,
    ScopeSet::WrongContext,
];

struct Row {
    role: Role,
    action: Action,
    category: Option<Category>,
    rtype: &'static str,
    rel: Rel,
    purpose: Purpose,
    wishes: Wishes,
    own_org: bool,
    glass: Glass,
    scopes: ScopeSet,
}

/// What the documentation says: `Some(break_glass_used)` for a permit, `None` for a deny.
fn expected(r: &Row) -> Option<bool> {
    let profile = role_profiles().iter().find(|p| p.role == r.role).unwrap();
    let user = r.role != Role::System;

    // 1. Scopes: the role's context only; read covers the non-writing actions.
    let scope_ok = match r.scopes {
        ScopeSet::Full | ScopeSet::TypeOnly => true,
        ScopeSet::ReadOnly => !matches!(r.action, Action::Create | Action::Update | Action::Delete),
        ScopeSet::WrongContext => false,
    };
    if !scope_ok {
        return None;
    }
    // 2. Purpose.
    if !profile.purposes.contains(&r.purpose) {
        return None;
    }
    let glass = profile.break_glass && r.glass == Glass::Active;
    if r.purpose == Purpose::Emergency && !glass {
        return None;
    }
    if r.purpose == Purpose::Audit && !user {
        let reads_audit_events = match r.scopes {
            ScopeSet::Full | ScopeSet::ReadOnly => true,
            ScopeSet::TypeOnly => r.rtype == "AuditEvent",
            ScopeSet::WrongContext => false,
        };
        if !reads_audit_events {
            return None;
        }
    }
    // 3. Minimum necessary, from the published table.
    let category = r.category?;
    let row = access_table()
        .iter()
        .find(|row| row.role == r.role && row.category == category)
        .unwrap();
    if !row.actions.contains(r.action) {
        return None;
    }
    // 4. No patient.
    if !category.is_patient_data() {
        return if r.purpose == Purpose::Emergency {
            Some(true)
        } else if r.own_org {
            Some(false)
        } else if glass {
            Some(true)
        } else {
            None
        };
    }
    // 5. Patient data at all.
    if profile.patients == PatientAccess::Never {
        return None;
    }
    // 6. Wishes.
    match r.wishes {
        Wishes::DenyOrg | Wishes::DenyPurpose => return None,
        Wishes::NationalOptOut | Wishes::Type1OptOut
            if matches!(r.purpose, Purpose::Research | Purpose::Planning) =>
        {
            return None;
        }
        _ => {}
    }
    // 7. Relationship or organisation.
    match profile.patients {
        PatientAccess::Organisation => r.own_org.then_some(false),
        PatientAccess::Relationship => {
            if r.purpose == Purpose::Emergency {
                return Some(true);
            }
            let related = r.rel == Rel::CareTeam || (r.own_org && r.rel == Rel::Registered);
            if related {
                Some(false)
            } else if glass {
                Some(true)
            } else {
                None
            }
        }
        PatientAccess::Never => None,
    }
}

fn build(r: &Row) -> Request {
    let ctx = context_of(r.role);
    let scopes: Scopes = match r.scopes {
        ScopeSet::Full => full_scopes(ctx),
        ScopeSet::ReadOnly => format!("{}/*.read", ctx.name()).parse().unwrap(),
        ScopeSet::TypeOnly => format!("{}/{}.*", ctx.name(), r.rtype).parse().unwrap(),
        ScopeSet::WrongContext => {
            let other = if ctx == ScopeContext::User {
                ScopeContext::System
            } else {
                ScopeContext::User
            };
            format!("{}/*.* patient/*.*", other.name()).parse().unwrap()
        }
    };
    let patient_data = r.category.is_some_and(Category::is_patient_data);
    let consents = match r.wishes {
        Wishes::DenyOrg => vec![ConsentRule::deny(Some(OWN_ORG), None)],
        Wishes::DenyPurpose => vec![ConsentRule::deny(None, Some(r.purpose))],
        Wishes::DenyOtherOrg => vec![ConsentRule::deny(Some(OTHER_ORG), None)],
        Wishes::DenyExpired => vec![ConsentRule {
            end_us: Some(NOW - 1),
            ..ConsentRule::deny(None, None)
        }],
        Wishes::Permit => vec![ConsentRule::permit(Some(OWN_ORG), Some(r.purpose))],
        _ => Vec::new(),
    };
    let facts = PatientFacts {
        registered_at_subject_org: r.rel == Rel::Registered,
        on_care_team: r.rel == Rel::CareTeam,
        opted_out_national: r.wishes == Wishes::NationalOptOut,
        opted_out_type1: r.wishes == Wishes::Type1OptOut,
        consents,
    };
    Request {
        subject: Subject {
            user: "usr_matrix".into(),
            org: OWN_ORG.into(),
            roles: vec![r.role],
            purpose: r.purpose,
            scopes,
            break_glass: match r.glass {
                Glass::None => None,
                Glass::Active => Some(active_break_glass()),
                Glass::Expired => Some(expired_break_glass()),
            },
        },
        action: r.action,
        target: Target {
            rtype: r.rtype.into(),
            owner_org: if r.own_org { OWN_ORG } else { OTHER_ORG }.into(),
            patients: if patient_data {
                vec!["Patient/pat-matrix".into()]
            } else {
                Vec::new()
            },
        },
        facts: Facts {
            patients: if patient_data {
                vec![facts]
            } else {
                Vec::new()
            },
        },
        now_us: NOW,
    }
}

#[test]
fn every_row_matches_the_documented_tables() {
    let mut rows = 0usize;
    let mut permits = 0usize;
    let mut break_glass_permits = 0usize;
    let mut failures = Vec::new();
    for &role in Role::ALL {
        for &action in Action::ALL {
            for &(category, rtype) in REPRESENTATIVES {
                for rel in RELS {
                    for &purpose in Purpose::ALL {
                        for wishes in WISHES {
                            for own_org in [true, false] {
                                for glass in GLASS {
                                    for scopes in SCOPES {
                                        let row = Row {
                                            role,
                                            action,
                                            category,
                                            rtype,
                                            rel,
                                            purpose,
                                            wishes,
                                            own_org,
                                            glass,
                                            scopes,
                                        };
                                        let want = expected(&row);
                                        let got = decide(&build(&row));
                                        rows += 1;
                                        let ok = match want {
                                            None => {
                                                got.effect == Effect::Deny
                                                    && got.obligations.is_empty()
                                                    && !got.reason.is_permit()
                                            }
                                            Some(glass_used) => {
                                                permits += 1;
                                                break_glass_permits += usize::from(glass_used);
                                                let obligations = if glass_used {
                                                    vec![
                                                        Obligation::FlagBreakGlass,
                                                        Obligation::AlertGuardian,
                                                    ]
                                                } else {
                                                    Vec::new()
                                                };
                                                got.effect == Effect::Permit
                                                    && got.reason.is_permit()
                                                    && got.obligations == obligations
                                                    && (got.reason == Reason::BreakGlass)
                                                        == glass_used
                                            }
                                        };
                                        if !ok && failures.len() < 20 {
                                            failures.push(format!(
                                                "{role} {action} {rtype} rel={rel:?} \
                                                 purpose={purpose} wishes={wishes:?} \
                                                 own_org={own_org} glass={glass:?} \
                                                 scopes={scopes:?}: expected {want:?}, \
                                                 got {got:?}"
                                            ));
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let expected_rows = Role::ALL.len()
        * Action::ALL.len()
        * REPRESENTATIVES.len()
        * RELS.len()
        * Purpose::ALL.len()
        * WISHES.len()
        * 2
        * GLASS.len()
        * SCOPES.len();
    assert_eq!(rows, expected_rows);
    assert_eq!(rows, 1_612_800);
    // The matrix exercises both sides of every rule, not only denies.
    assert!(permits > 10_000, "{permits} permits");
    assert!(
        break_glass_permits > 1_000,
        "{break_glass_permits} break-glass permits"
    );
    eprintln!("{rows} rows: {permits} permits ({break_glass_permits} under break-glass)");
}

/// Every one of the 146 R4 types decides like its category's representative, for every
/// role and action (so the matrix's representatives stand for their categories).
#[test]
fn every_type_decides_as_its_category() {
    let mut checked = 0;
    for &(rtype, category) in classification() {
        let rep = REPRESENTATIVES
            .iter()
            .find(|(c, _)| *c == category)
            .unwrap()
            .1;
        for &role in Role::ALL {
            let profile = profile(role);
            for &purpose in profile.purposes {
                for &action in Action::ALL {
                    let mut req = base_request();
                    req.subject.roles = vec![role];
                    req.subject.purpose = purpose;
                    req.subject.scopes = full_scopes(context_of(role));
                    req.subject.break_glass = Some(active_break_glass());
                    req.action = action;
                    let patient_data = category.is_some_and(Category::is_patient_data);
                    if !patient_data {
                        req.target.patients.clear();
                        req.facts.patients.clear();
                    }
                    let mut rep_req = req.clone();
                    req.target.rtype = rtype.into();
                    rep_req.target.rtype = rep.into();
                    assert_eq!(decide(&req), decide(&rep_req), "{role} {action} {rtype}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 146 * 8 * 7);
}

/// The minimum-necessary table says what the brief says of each role.
#[test]
fn the_table_says_what_the_roles_are_for() {
    use Category::*;
    let clinical = [CareRecord, CareSummary, Clinical];
    let patient = [
        Demographics,
        Administrative,
        CareRecord,
        CareSummary,
        Clinical,
        Consent,
        Audit,
    ];
    let cell = |role, cat| allowed(role, cat);

    // Receptionist: demographics and administrative (read, search, create, update), no
    // clinical, no governance.
    for cat in [Demographics, Administrative] {
        assert_eq!(cell(Role::Receptionist, cat), ActionSet::CLERK);
    }
    for cat in clinical.iter().chain(&[Consent, Audit]) {
        assert!(cell(Role::Receptionist, *cat).is_empty());
    }
    // Care worker: reads demographics, administrative and the care-relevant clinical types;
    // writes only the care record, never deletes; no other clinical type.
    for cat in [Demographics, Administrative, CareSummary, CareRecord] {
        assert!(cell(Role::CareWorker, cat).contains(Action::Read));
    }
    for &cat in Category::ALL {
        let cw = cell(Role::CareWorker, cat);
        assert_eq!(
            cw.contains(Action::Create) || cw.contains(Action::Update),
            cat == CareRecord,
            "{cat}"
        );
        assert!(!cw.contains(Action::Delete));
    }
    assert!(cell(Role::CareWorker, Clinical).is_empty());
    for t in [
        "AllergyIntolerance",
        "MedicationStatement",
        "MedicationRequest",
        "Condition",
        "Observation",
        "CarePlan",
        "Immunization",
    ] {
        let cat = Category::of(t).unwrap();
        assert!(cell(Role::CareWorker, cat).contains(Action::Read), "{t}");
    }
    // Nurse and GP: all clinical read and write.
    for role in [Role::RegisteredNurse, Role::Gp] {
        for cat in clinical {
            assert_eq!(cell(role, cat), ActionSet::READ_WRITE);
        }
    }
    // Guardian: audit only, reads everything incl. AuditEvent and Consent, writes nothing.
    assert_eq!(profile(Role::CaldicottGuardian).purposes, &[Purpose::Audit]);
    for &cat in Category::ALL {
        assert_eq!(cell(Role::CaldicottGuardian, cat), ActionSet::READ);
    }
    // Sysadmin and researcher: nothing about patients.
    for role in [Role::Sysadmin, Role::Researcher] {
        assert_eq!(profile(role).patients, PatientAccess::Never);
        for cat in patient {
            assert!(cell(role, cat).is_empty(), "{role} {cat}");
        }
    }
    for t in [
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Location",
    ] {
        let cat = Category::of(t).unwrap();
        assert_eq!(cell(Role::Sysadmin, cat), ActionSet::READ_WRITE);
    }
    // System: everything its scopes allow, own organisation only, system/ scopes.
    for &cat in Category::ALL {
        assert_eq!(cell(Role::System, cat), ActionSet::ALL);
    }
    assert_eq!(profile(Role::System).scopes, ScopeContext::System);
    assert_eq!(profile(Role::System).patients, PatientAccess::Organisation);
    // Only clinicians break glass, and only they act in an emergency; only the guardian and
    // system clients audit; bulk export only for system clients.
    for &role in Role::ALL {
        let p = profile(role);
        assert_eq!(p.break_glass, role.is_clinician(), "{role}");
        assert_eq!(
            p.purposes.contains(&Purpose::Emergency),
            role.is_clinician()
        );
        assert_eq!(
            p.purposes.contains(&Purpose::Audit),
            matches!(role, Role::CaldicottGuardian | Role::System)
        );
        assert_eq!(p.scopes == ScopeContext::System, role == Role::System);
        for &cat in Category::ALL {
            assert_eq!(
                cell(role, cat).contains(Action::Export),
                role == Role::System
            );
        }
    }
    // The published rows are the cells.
    assert_eq!(access_table().len(), Role::ALL.len() * Category::COUNT);
    for row in access_table() {
        assert_eq!(row.actions, cell(row.role, row.category));
    }
}

/// The tables in the crate documentation are the tables `decide` uses.
#[test]
fn crate_documentation_shows_the_tables() {
    let doc: Vec<&str> = include_str!("../src/lib.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//! | `"))
        .collect();
    let cells = |line: &str| -> (Role, Vec<String>) {
        let (role, rest) = line.split_once('`').unwrap();
        let cells = rest
            .trim_start_matches(" |")
            .trim_end_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect();
        (role.parse().unwrap(), cells)
    };
    let mut profiles_seen = 0;
    let mut rows_seen = 0;
    for line in doc {
        let (role, cells) = cells(line);
        if cells.len() == 4 {
            // | role | scopes | purposes | patient access | break-glass |
            let p = profile(role);
            assert_eq!(cells[0], format!("`{}/`", p.scopes.name()), "{role}");
            let purposes: Vec<&str> = p.purposes.iter().map(|p| p.name()).collect();
            assert_eq!(cells[1], purposes.join(", "), "{role}");
            let access = match p.patients {
                PatientAccess::Relationship => "relationship",
                PatientAccess::Organisation => "own organisation",
                PatientAccess::Never => "never",
            };
            assert_eq!(cells[2], access, "{role}");
            assert_eq!(cells[3], if p.break_glass { "yes" } else { "no" }, "{role}");
            profiles_seen += 1;
        } else {
            assert_eq!(cells.len(), Category::COUNT, "{line}");
            for (cat, cell) in Category::ALL.iter().zip(&cells) {
                let set = match cell.as_str() {
                    "R" => ActionSet::READ,
                    "L" => ActionSet::LOOKUP,
                    "C" => ActionSet::CLERK,
                    "Rec" => ActionSet::RECORD,
                    "R W" => ActionSet::READ_WRITE,
                    "R W X" => ActionSet::ALL,
                    "–" => ActionSet::NONE,
                    other => panic!("unknown cell {other:?}"),
                };
                assert_eq!(set, allowed(role, *cat), "{role} {cat}");
            }
            rows_seen += 1;
        }
    }
    assert_eq!(profiles_seen, Role::ALL.len());
    assert_eq!(rows_seen, Role::ALL.len());
    let names: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
    let header = format!("//! | role | {} |", names.join(" | "));
    assert!(include_str!("../src/lib.rs").contains(&header), "{header}");
}
