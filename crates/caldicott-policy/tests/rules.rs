//! The rules one by one, with the exact reason each decision gives.

mod common;

use caldicott_policy::*;
use common::*;

fn with(f: impl FnOnce(&mut Request)) -> Request {
    let mut r = base_request();
    f(&mut r);
    r
}

fn permit(req: &Request, reason: Reason) {
    let d = decide(req);
    assert_eq!((d.effect, d.reason), (Effect::Permit, reason), "{req:?}");
    let glass = reason == Reason::BreakGlass;
    assert_eq!(
        d.obligations,
        if glass {
            vec![Obligation::FlagBreakGlass, Obligation::AlertGuardian]
        } else {
            vec![]
        }
    );
}

fn deny(req: &Request, reason: Reason) {
    let d = decide(req);
    assert_eq!((d.effect, d.reason), (Effect::Deny, reason), "{req:?}");
    assert!(d.obligations.is_empty());
}

fn role(r: Role) -> impl FnOnce(&mut Request) {
    move |q| {
        q.subject.roles = vec![r];
        q.subject.scopes = full_scopes(context_of(r));
        q.subject.purpose = profile(r).purposes[0];
    }
}

#[test]
fn gp_and_relationships() {
    permit(&base_request(), Reason::Relationship);
    // Care team instead of registration.
    permit(
        &with(|q| {
            q.facts.patients[0].registered_at_subject_org = false;
            q.facts.patients[0].on_care_team = true;
        }),
        Reason::Relationship,
    );
    // Neither.
    deny(
        &with(|q| q.facts.patients[0].registered_at_subject_org = false),
        Reason::NoRelationship,
    );
    // Another organisation's record: registration here does not count, the care team does.
    deny(
        &with(|q| q.target.owner_org = OTHER_ORG.into()),
        Reason::OtherOrganisation,
    );
    permit(
        &with(|q| {
            q.target.owner_org = OTHER_ORG.into();
            q.facts.patients[0].on_care_team = true;
        }),
        Reason::Relationship,
    );
    // Organisation codes compare case-insensitively.
    permit(
        &with(|q| q.target.owner_org = OWN_ORG.to_lowercase()),
        Reason::Relationship,
    );
    // Bulk export is for system clients.
    deny(
        &with(|q| q.action = Action::Export),
        Reason::NotPermittedForRole,
    );
}

#[test]
fn scopes_come_first() {
    deny(
        &with(|q| q.subject.scopes = Scopes::empty()),
        Reason::ScopeNotGranted,
    );
    deny(
        &with(|q| q.subject.scopes = "user/*.read".parse().unwrap()).tap(Action::Update),
        Reason::ScopeNotGranted,
    );
    deny(
        &with(|q| q.subject.scopes = "system/*.* patient/*.*".parse().unwrap()),
        Reason::ScopeNotGranted,
    );
    deny(
        &with(|q| q.subject.scopes = "user/Condition.*".parse().unwrap()),
        Reason::ScopeNotGranted,
    );
    // A system client needs system/ scopes.
    let mut q = with(role(Role::System));
    q.subject.scopes = "user/*.*".parse().unwrap();
    deny(&q, Reason::ScopeNotGranted);
}

trait Tap {
    fn tap(self, action: Action) -> Self;
}

impl Tap for Request {
    fn tap(mut self, action: Action) -> Self {
        self.action = action;
        self
    }
}

#[test]
fn minimum_necessary() {
    // Care worker: records observations, never deletes, reads no diagnostic reports.
    let cw = role(Role::CareWorker);
    permit(&with(cw).tap(Action::Create), Reason::Relationship);
    deny(
        &with(role(Role::CareWorker)).tap(Action::Delete),
        Reason::NotPermittedForRole,
    );
    let mut q = with(role(Role::CareWorker));
    q.target.rtype = "AllergyIntolerance".into();
    permit(&q, Reason::Relationship);
    deny(&q.clone().tap(Action::Update), Reason::NotPermittedForRole);
    q.target.rtype = "DiagnosticReport".into();
    deny(&q, Reason::NotPermittedForRole);

    // Receptionist: books appointments, sees no clinical record.
    let mut q = with(role(Role::Receptionist));
    deny(&q, Reason::NotPermittedForRole);
    q.target.rtype = "Appointment".into();
    permit(&q.clone().tap(Action::Create), Reason::Relationship);
    deny(&q.clone().tap(Action::Delete), Reason::NotPermittedForRole);
    q.target.rtype = "Patient".into();
    permit(&q.clone().tap(Action::Update), Reason::Relationship);

    // Unclassified and unknown types.
    deny(
        &with(|q| q.target.rtype = "Parameters".into()),
        Reason::UnclassifiedType,
    );
    deny(
        &with(|q| q.target.rtype = "NotAType".into()),
        Reason::UnclassifiedType,
    );
}

#[test]
fn guardian_audits_own_organisation_only() {
    let mut q = with(role(Role::CaldicottGuardian));
    q.facts.patients[0].registered_at_subject_org = false;
    q.target.rtype = "AuditEvent".into();
    permit(&q, Reason::Organisation);
    q.target.rtype = "DiagnosticReport".into();
    permit(&q, Reason::Organisation);
    deny(&q.clone().tap(Action::Update), Reason::NotPermittedForRole);
    let mut other = q.clone();
    other.target.owner_org = OTHER_ORG.into();
    deny(&other, Reason::OtherOrganisation);
    q.subject.purpose = Purpose::DirectCare;
    deny(&q, Reason::PurposeNotPermitted);
    // Break-glass is not for the guardian.
    q.subject.purpose = Purpose::Emergency;
    q.subject.break_glass = Some(active_break_glass());
    deny(&q, Reason::PurposeNotPermitted);
}

#[test]
fn sysadmin_and_researcher_never_see_patients() {
    let mut q = with(role(Role::Sysadmin));
    deny(&q, Reason::NotPermittedForRole);
    q.target.rtype = "Practitioner".into();
    q.target.patients.clear();
    q.facts.patients.clear();
    permit(&q.clone().tap(Action::Create), Reason::OwnOrganisation);
    // A directory resource that somehow names a patient is still patient data.
    let mut odd = q.clone();
    odd.target.patients = vec!["Patient/x".into()];
    odd.facts.patients = vec![PatientFacts::default()];
    deny(&odd, Reason::NoPatientData);
    q.target.owner_org = OTHER_ORG.into();
    deny(&q, Reason::OtherOrganisation);

    let mut q = with(role(Role::Researcher));
    deny(&q, Reason::NotPermittedForRole);
    q.target.rtype = "Patient".into();
    deny(&q, Reason::NotPermittedForRole);
    q.target.rtype = "ValueSet".into();
    q.target.patients.clear();
    q.facts.patients.clear();
    permit(&q, Reason::OwnOrganisation);
}

#[test]
fn system_clients_and_purposes() {
    let mut q = with(role(Role::System));
    q.facts.patients[0].registered_at_subject_org = false;
    permit(&q, Reason::Organisation);
    permit(&q.clone().tap(Action::Export), Reason::Organisation);
    let mut other = q.clone();
    other.target.owner_org = OTHER_ORG.into();
    deny(&other, Reason::OtherOrganisation);

    for purpose in [Purpose::Research, Purpose::Planning] {
        q.subject.purpose = purpose;
        permit(&q, Reason::Organisation);
        let mut national = q.clone();
        national.facts.patients[0].opted_out_national = true;
        deny(&national, Reason::NationalOptOut);
        let mut type1 = q.clone();
        type1.facts.patients[0].opted_out_type1 = true;
        deny(&type1, Reason::Type1OptOut);
    }
    // Opt-outs do not apply to direct care.
    q.subject.purpose = Purpose::DirectCare;
    q.facts.patients[0].opted_out_national = true;
    q.facts.patients[0].opted_out_type1 = true;
    permit(&q, Reason::Organisation);

    // Audit needs a system scope reading AuditEvent.
    q.subject.purpose = Purpose::Audit;
    q.subject.scopes = "system/Observation.read".parse().unwrap();
    deny(&q, Reason::AuditNeedsScope);
    q.subject.scopes = "system/Observation.read system/AuditEvent.read"
        .parse()
        .unwrap();
    permit(&q, Reason::Organisation);
    // Emergency is for clinicians.
    q.subject.purpose = Purpose::Emergency;
    deny(&q, Reason::PurposeNotPermitted);
}

#[test]
fn break_glass() {
    let unrelated = |q: &mut Request| q.facts.patients[0].registered_at_subject_org = false;
    // Emergency needs an active break-glass, then needs no relationship.
    let mut q = with(unrelated);
    q.subject.purpose = Purpose::Emergency;
    deny(&q, Reason::EmergencyNeedsBreakGlass);
    q.subject.break_glass = Some(expired_break_glass());
    deny(&q, Reason::EmergencyNeedsBreakGlass);
    q.subject.break_glass = Some(active_break_glass());
    permit(&q, Reason::BreakGlass);
    // Even with a relationship, an emergency access is flagged.
    q.facts.patients[0].registered_at_subject_org = true;
    permit(&q, Reason::BreakGlass);
    // Break-glass under direct care is used only when needed.
    q.subject.purpose = Purpose::DirectCare;
    permit(&q, Reason::Relationship);
    q.facts.patients[0].registered_at_subject_org = false;
    permit(&q, Reason::BreakGlass);
    q.target.owner_org = OTHER_ORG.into();
    permit(&q, Reason::BreakGlass);
    // Another organisation's directory under break-glass.
    let mut dir = q.clone();
    dir.target.rtype = "Practitioner".into();
    dir.target.patients.clear();
    dir.facts.patients.clear();
    permit(&dir, Reason::BreakGlass);
    // It does not widen the role's table.
    let mut cw = q.clone();
    cw.subject.roles = vec![Role::CareWorker];
    cw.target.rtype = "DiagnosticReport".into();
    deny(&cw, Reason::NotPermittedForRole);
    cw.target.rtype = "Observation".into();
    permit(&cw, Reason::BreakGlass);
    // Expired, not started, or unjustified: ignored.
    q.subject.break_glass = Some(expired_break_glass());
    deny(&q, Reason::BreakGlassNotActive);
    let mut early = active_break_glass();
    early.started_at_us = NOW + 1;
    q.subject.break_glass = Some(early);
    deny(&q, Reason::BreakGlassNotActive);
    let mut blank = active_break_glass();
    blank.reason = "   ".into();
    q.subject.break_glass = Some(blank);
    deny(&q, Reason::BreakGlassNotActive);
    // Boundary: active until (not at) expiry.
    let glass = active_break_glass();
    q.subject.break_glass = Some(glass.clone());
    q.now_us = glass.expires_at_us - 1;
    permit(&q, Reason::BreakGlass);
    q.now_us = glass.expires_at_us;
    deny(&q, Reason::BreakGlassNotActive);
    // Receptionists cannot break glass.
    let mut r = with(role(Role::Receptionist));
    r.target.rtype = "Appointment".into();
    r.facts.patients[0].registered_at_subject_org = false;
    deny(&r, Reason::NoRelationship);
    r.subject.break_glass = Some(active_break_glass());
    deny(&r, Reason::BreakGlassNotPermittedForRole);
}

#[test]
fn consent() {
    // A deny for the organisation or the purpose beats a relationship and break-glass.
    for rule in [
        ConsentRule::deny(Some(OWN_ORG), None),
        ConsentRule::deny(None, Some(Purpose::DirectCare)),
        ConsentRule::deny(Some(OWN_ORG), Some(Purpose::DirectCare)),
        ConsentRule::deny(None, None),
    ] {
        let mut q = with(|q| q.facts.patients[0].consents.push(rule.clone()));
        deny(&q, Reason::ConsentDenied);
        q.subject.break_glass = Some(active_break_glass());
        q.subject.purpose = Purpose::Emergency;
        let blanket_or_org = rule.purpose.is_none();
        if blanket_or_org {
            deny(&q, Reason::ConsentDenied);
        } else {
            // A dissent for direct care does not name emergency care.
            permit(&q, Reason::BreakGlass);
        }
        // With a permit for the same as well: deny wins.
        let mut both = with(|q| q.facts.patients[0].consents.push(rule.clone()));
        both.facts.patients[0].consents.push(ConsentRule::permit(
            Some(OWN_ORG),
            Some(Purpose::DirectCare),
        ));
        deny(&both, Reason::ConsentDenied);
    }
    // A deny about someone else, another purpose, or outside its period does not apply.
    for rule in [
        ConsentRule::deny(Some(OTHER_ORG), None),
        ConsentRule::deny(None, Some(Purpose::Research)),
        ConsentRule {
            end_us: Some(NOW - 1),
            ..ConsentRule::deny(None, None)
        },
        ConsentRule {
            start_us: Some(NOW + 1),
            ..ConsentRule::deny(None, None)
        },
    ] {
        permit(
            &with(|q| q.facts.patients[0].consents.push(rule)),
            Reason::Relationship,
        );
    }
    // A permit does not replace a relationship.
    deny(
        &with(|q| {
            q.facts.patients[0].registered_at_subject_org = false;
            q.facts.patients[0]
                .consents
                .push(ConsentRule::permit(Some(OWN_ORG), None));
        }),
        Reason::NoRelationship,
    );
}

#[test]
fn several_patients_and_facts() {
    let two = |a: PatientFacts, b: PatientFacts| {
        with(move |q| {
            q.target.patients = vec!["Patient/a".into(), "Patient/b".into()];
            q.facts.patients = vec![a, b];
        })
    };
    let related = PatientFacts {
        registered_at_subject_org: true,
        ..Default::default()
    };
    permit(&two(related.clone(), related.clone()), Reason::Relationship);
    deny(
        &two(related.clone(), PatientFacts::default()),
        Reason::NoRelationship,
    );
    let mut dissent = related.clone();
    dissent.consents.push(ConsentRule::deny(None, None));
    deny(&two(related.clone(), dissent), Reason::ConsentDenied);
    let mut q = two(related.clone(), PatientFacts::default());
    q.subject.break_glass = Some(active_break_glass());
    permit(&q, Reason::BreakGlass);
    // Facts must match the patients one to one.
    let mut q = two(related.clone(), related);
    q.facts.patients.pop();
    deny(&q, Reason::FactsMissing);
}

#[test]
fn several_roles() {
    // Any role permitting is enough; a permit without break-glass is preferred.
    let mut q = with(|q| q.subject.roles = vec![Role::Receptionist, Role::Gp]);
    permit(&q, Reason::Relationship);
    q.subject.break_glass = Some(active_break_glass());
    q.subject.roles = vec![Role::CareWorker, Role::Gp];
    q.target.rtype = "Condition".into();
    permit(&q, Reason::Relationship);
    // None permits: the role that got furthest gives the reason.
    let mut q = with(|q| {
        q.subject.roles = vec![Role::Researcher, Role::Receptionist];
        q.facts.patients[0].registered_at_subject_org = false;
        q.target.rtype = "Patient".into();
    });
    deny(&q, Reason::NoRelationship);
    q.subject.roles.clear();
    deny(&q, Reason::NoRole);
}

#[test]
fn time_is_an_input() {
    // The same request decides the same at any time, break-glass and consent periods aside.
    let q = base_request();
    for now_us in [i64::MIN, -1, 0, NOW, i64::MAX] {
        let mut at = q.clone();
        at.now_us = now_us;
        permit(&at, Reason::Relationship);
    }
}
