//! Caldicott's access-decision engine: may this subject do this action on this resource, for
//! this purpose, given what is known about its patients? → permit or deny, why, and what the
//! caller must do about it.
//!
//! **What it is.** One pure function, [`decide`], over plain values: a [`Request`] holds the
//! [`Subject`] (user, organisation, [`Role`]s, [`Purpose`], SMART [`Scopes`], an optional
//! [`BreakGlass`]), the [`Action`], the [`Target`] resource (type, owning organisation, the
//! patients whose compartment it is in), the [`Facts`] about those patients as they relate
//! to the subject (registration, care team, opt-outs, [`ConsentRule`]s) and the time. The
//! [`Decision`] carries an [`Effect`], a [`Reason`] (a fixed sentence that never contains an
//! identifier: it is shown to users and logged) and [`Obligation`]s. It decides in well under
//! a microsecond and allocates nothing except a break-glass permit's obligations, so it runs
//! on every read.
//!
//! **What it is not.** It does no I/O: no database, no HTTP, no clock (time is an input), no
//! logging. It does not look anything up: the caller works out the target's patients (the
//! FHIR Patient compartment), the owning organisation, the care-team membership, the
//! opt-out status (from the national service or the GP record) and the Consent resources,
//! and hands them in. It does not authenticate, audit or redact: it says what must happen.
//!
//! # The rules
//!
//! [`decide`] denies unless every step below passes for at least one of the subject's roles
//! (no role: deny). The first failing step gives the deny reason.
//!
//! | step | rule | deny reason |
//! |---|---|---|
//! | 1 scopes | a scope in the role's context allows the type and action: `user/` for people, `system/` for [`Role::System`]; `read` covers read, search, history, export; `write` covers create, update, delete; `patient/` scopes grant nothing here | [`Reason::ScopeNotGranted`] |
//! | 2 purpose | the purpose is one of the role's (profile table); `emergency` also needs an active break-glass; `audit` by `system` also needs a `system/` scope reading AuditEvent | [`Reason::PurposeNotPermitted`], [`Reason::EmergencyNeedsBreakGlass`], [`Reason::AuditNeedsScope`] |
//! | 3 minimum necessary | the type is classified ([`Category::of`]) and the role × category cell allows the action ([`access_table`]) | [`Reason::UnclassifiedType`], [`Reason::NotPermittedForRole`] |
//! | 4 no patient | a resource with no patients (Practitioner, ValueSet, …): owned by the subject's organisation; another organisation's only under break-glass | [`Reason::OtherOrganisation`] |
//! | 5 patient data | the role reaches patient data at all (sysadmin and researcher never do) and there is one [`PatientFacts`] per patient | [`Reason::NoPatientData`], [`Reason::FactsMissing`] |
//! | 6 patients' wishes | for **every** patient: no matching consent `deny` (by organisation and/or purpose, in its period); for `research` and `planning` no National Data Opt-out and no Type 1 opt-out. Never lifted, not even by break-glass | [`Reason::ConsentDenied`], [`Reason::NationalOptOut`], [`Reason::Type1OptOut`] |
//! | 7 relationship | by the role's patient access: *relationship* roles need, for **every** patient, care-team membership, or (at the subject's own organisation only) registration there; missing, a clinician's active break-glass permits; *organisation* roles (guardian, system) need the resource to be their own organisation's | [`Reason::NoRelationship`], [`Reason::OtherOrganisation`], [`Reason::BreakGlassNotActive`], [`Reason::BreakGlassNotPermittedForRole`] |
//!
//! Under `emergency` (clinicians only, with an active break-glass), step 7 and the
//! organisation check of step 4 are lifted; steps 1–3, 5 and 6 still apply. Every permit that
//! relied on break-glass (every `emergency` permit, and a `direct-care` permit that lacked a
//! relationship or crossed organisations) carries [`Obligation::FlagBreakGlass`] and
//! [`Obligation::AlertGuardian`]. A break-glass is active while `started_at_us <= now_us <
//! expires_at_us` and its reason is not blank; otherwise it is ignored.
//!
//! # Role profiles ([`role_profiles`])
//!
//! | role | scopes | purposes | patient access | break-glass |
//! |---|---|---|---|---|
//! | `care-worker` | `user/` | direct-care, emergency | relationship | yes |
//! | `registered-nurse` | `user/` | direct-care, emergency | relationship | yes |
//! | `gp` | `user/` | direct-care, emergency | relationship | yes |
//! | `receptionist` | `user/` | direct-care | relationship | no |
//! | `caldicott-guardian` | `user/` | audit | own organisation | no |
//! | `sysadmin` | `user/` | direct-care, planning | never | no |
//! | `researcher` | `user/` | research | never | no |
//! | `system` | `system/` | direct-care, research, planning, audit | own organisation | no |
//!
//! # Minimum necessary: role × category ([`access_table`])
//!
//! R = read, search, history · L = read, search · W = create, update, delete ·
//! C = read, search, create, update · Rec = R + create, update · X = export · – = nothing.
//!
//! | role | directory | reference | demographics | administrative | care-record | care-summary | clinical | consent | audit |
//! |---|---|---|---|---|---|---|---|---|---|
//! | `care-worker` | R | R | R | R | Rec | R | – | – | – |
//! | `registered-nurse` | R | R | R W | R W | R W | R W | R W | R W | – |
//! | `gp` | R | R | R W | R W | R W | R W | R W | R W | – |
//! | `receptionist` | L | L | C | C | – | – | – | – | – |
//! | `caldicott-guardian` | R | R | R | R | R | R | R | R | R |
//! | `sysadmin` | R W | R W | – | – | – | – | – | – | – |
//! | `researcher` | – | L | – | – | – | – | – | – | – |
//! | `system` | R W X | R W X | R W X | R W X | R W X | R W X | R W X | R W X | R W X |
//!
//! The categories ([`Category`]; [`classification`] lists all 146 R4 types):
//! **directory** Organization, OrganizationAffiliation, Practitioner, PractitionerRole,
//! Location, HealthcareService, Endpoint · **reference** terminology, conformance, medicines
//! and substances, definitions (never about a patient) · **demographics** Patient,
//! RelatedPerson, Person · **administrative** Appointment, AppointmentResponse, Encounter,
//! EpisodeOfCare, CareTeam, Schedule, Slot, Account, Coverage, CoverageEligibilityRequest
//! and Response, EnrollmentRequest and Response · **care-record** (a care worker records)
//! Observation, CarePlan, Goal, MedicationAdministration · **care-summary** (a care worker
//! reads) AllergyIntolerance, Condition, MedicationRequest, MedicationStatement,
//! Immunization · **clinical** every other clinical type (DiagnosticReport,
//! DocumentReference, Procedure, Communication, ServiceRequest, Binary, Bundle, claims, …) ·
//! **consent** Consent · **audit** AuditEvent, Provenance. Unclassified (denied to all):
//! BiologicallyDerivedProduct, Contract, DeviceMetric, Linkage, MessageHeader,
//! OperationOutcome, Parameters, PaymentNotice, PaymentReconciliation, Subscription,
//! TestReport, TestScript, VerificationResult.
//!
//! # Choices
//!
//! - **Several patients** (a resource in more than one compartment, e.g. an Observation
//!   whose performer is another patient): permitted only if permitted for every patient;
//!   one patient's dissent or missing relationship denies the whole resource.
//! - **Organisation isolation.** Registration counts only at the subject's own
//!   organisation: another organisation's records about a patient registered here still
//!   need the user on the patient's care team (or break-glass).
//! - **Opt-outs** (domain.md): the National Data Opt-out applies to research and planning;
//!   Type 1 stops GP data leaving the practice for anything but direct care. Here both deny
//!   `research` and `planning` and nothing else (audit stays inside the organisation;
//!   emergency is direct care). The National Data Opt-out's exception for explicit consent
//!   is deliberately not modelled: a `permit` [`ConsentRule`] never lifts an opt-out, since
//!   research data leaves only through the sharing pipeline, which judges that consent.
//! - **Consent.** A matching `deny` wins over everything, break-glass and the guardian's
//!   audit included. A `permit` never grants access by itself (it does not replace a missing
//!   relationship). Purposes match exactly: a dissent for `direct-care` does not cover
//!   `emergency`; an organisation-wide or blanket dissent does.
//! - **Several roles**: permitted when any role permits (a permit without break-glass is
//!   preferred); otherwise the deny of the role that got furthest.
//! - **Search and export** are decided per resource returned; a type-level check before
//!   searching can use a target with no patients, which step 7 does not see.
//! - Organisation codes compare ASCII case-insensitively; an empty subject organisation is
//!   never "own".
//!
//! ```
//! use caldicott_policy::*;
//!
//! let request = Request {
//!     subject: Subject {
//!         user: "nurse-1".into(),
//!         org: "A81001".into(),
//!         roles: vec![Role::RegisteredNurse],
//!         purpose: Purpose::DirectCare,
//!         scopes: "user/*.read".parse()?,
//!         break_glass: None,
//!     },
//!     action: Action::Read,
//!     target: Target {
//!         rtype: "Observation".into(),
//!         owner_org: "A81001".into(),
//!         patients: vec!["Patient/p1".into()],
//!     },
//!     facts: Facts {
//!         patients: vec![PatientFacts { registered_at_subject_org: true, ..Default::default() }],
//!     },
//!     now_us: 1_750_000_000_000_000,
//! };
//! let decision = decide(&request);
//! assert_eq!(decision.effect, Effect::Permit);
//! assert_eq!(decision.reason, Reason::Relationship);
//! # Ok::<(), ScopeError>(())
//! ```

#![forbid(unsafe_code)]

mod category;
mod decide;
mod names;
mod request;
mod scope;
mod table;

pub use category::{Category, classification, is_resource_type};
pub use decide::{Decision, Effect, Obligation, Reason, decide};
pub use names::{Action, Purpose, Role, UnknownName};
pub use request::{
    BreakGlass, ConsentEffect, ConsentRule, Facts, PatientFacts, Request, Subject, Target,
};
pub use scope::{Permission, Scope, ScopeContext, ScopeError, ScopeResource, Scopes};
pub use table::{
    AccessRow, ActionSet, PatientAccess, RoleProfile, access_table, allowed, profile, role_profiles,
};
