//! Properties of `decide` over arbitrary requests: several roles, several patients, any
//! resource type, any scopes, consents with periods, break-glass at any time.

mod common;

use caldicott_policy::*;
use common::*;
use proptest::prelude::*;

const SCOPE_POOL: &[&str] = &[
    "user/*.read",
    "user/*.write",
    "user/*.*",
    "user/Observation.*",
    "user/Patient.read",
    "user/AuditEvent.read",
    "system/*.*",
    "system/*.read",
    "system/AuditEvent.read",
    "system/Observation.write",
    "patient/*.*",
];

const TYPE_POOL: &[&str] = &[
    "Patient",
    "Observation",
    "CarePlan",
    "Condition",
    "DiagnosticReport",
    "Appointment",
    "Consent",
    "AuditEvent",
    "Practitioner",
    "Organization",
    "ValueSet",
    "Parameters",
    "NotAType",
];

fn role() -> impl Strategy<Value = Role> {
    prop::sample::select(Role::ALL)
}

fn purpose() -> impl Strategy<Value = Purpose> {
    prop::sample::select(Purpose::ALL)
}

fn org() -> impl Strategy<Value = String> {
    prop::sample::select(vec![OWN_ORG, OTHER_ORG]).prop_map(str::to_owned)
}

fn consent() -> impl Strategy<Value = ConsentRule> {
    (
        any::<bool>(),
        prop::option::of(org()),
        prop::option::of(purpose()),
        prop::option::of(NOW - 1_000..NOW + 1_000),
        prop::option::of(NOW - 1_000..NOW + 1_000),
    )
        .prop_map(|(deny, org, purpose, start_us, end_us)| ConsentRule {
            effect: if deny {
                ConsentEffect::Deny
            } else {
                ConsentEffect::Permit
            },
            org,
            purpose,
            start_us,
            end_us,
        })
}

fn patient_facts() -> impl Strategy<Value = PatientFacts> {
    (
        prop::bool::weighted(0.7),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::collection::vec(consent(), 0..2),
    )
        .prop_map(
            |(registered, team, national, type1, consents)| PatientFacts {
                registered_at_subject_org: registered,
                on_care_team: team,
                opted_out_national: national,
                opted_out_type1: type1,
                consents,
            },
        )
}

fn break_glass() -> impl Strategy<Value = Option<BreakGlass>> {
    prop::option::weighted(
        0.6,
        (
            NOW - 10_000..NOW + 2_000,
            0i64..30_000,
            prop::sample::select(vec![
                "",
                " ",
                "cardiac arrest in clinic",
                "unconscious, brought in by ambulance",
            ]),
        )
            .prop_map(|(started_at_us, len, reason)| BreakGlass {
                reason: reason.into(),
                started_at_us,
                expires_at_us: started_at_us + len,
            }),
    )
}

prop_compose! {
    /// A request whose target has `patients` patients (facts for each, except now and then
    /// one missing). Biased towards plausible requests (the first role's own purpose and
    /// scopes, the subject's organisation, relationships) so that permits are common; the
    /// rest stays arbitrary.
    fn request_with(patients: std::ops::Range<usize>)(
        user in "usr_[a-z0-9]{6,12}",
        roles in prop::collection::vec(role(), 0..3),
        purpose in purpose(),
        own_purpose in prop::option::weighted(0.8, any::<prop::sample::Index>()),
        own_scope in prop::option::weighted(0.85, 0u8..3),
        scopes in prop::sample::subsequence(SCOPE_POOL, 0..3),
        break_glass in break_glass(),
        action in prop::sample::select(Action::ALL),
        rtype in prop::sample::select(TYPE_POOL),
        own_org in prop::bool::weighted(0.75),
        patients in prop::collection::vec(("[0-9]{10}", patient_facts()), patients),
        missing_facts in prop::bool::weighted(0.05),
        now_us in NOW - 1_000..NOW + 1_000,
    ) -> Request {
        let (ids, mut facts): (Vec<String>, Vec<PatientFacts>) = patients
            .into_iter()
            .map(|(id, f)| (format!("Patient/{id}"), f))
            .unzip();
        if missing_facts {
            facts.pop();
        }
        let mut scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let mut purpose = purpose;
        if let Some(&first) = roles.first() {
            let p = profile(first);
            if let Some(i) = own_purpose {
                purpose = *i.get(p.purposes);
            }
            let ctx = p.scopes.name();
            match own_scope {
                Some(0) => scopes.push(format!("{ctx}/*.*")),
                Some(1) => scopes.push(format!("{ctx}/*.read")),
                Some(_) if is_resource_type(rtype) => scopes.push(format!("{ctx}/{rtype}.*")),
                _ => {}
            }
        }
        Request {
            subject: Subject {
                user,
                org: OWN_ORG.into(),
                roles,
                purpose,
                scopes: scopes.join(" ").parse().unwrap(),
                break_glass,
            },
            action,
            target: Target {
                rtype: rtype.into(),
                owner_org: if own_org { OWN_ORG } else { OTHER_ORG }.into(),
                patients: ids,
            },
            facts: Facts { patients: facts },
            now_us,
        }
    }
}

fn request() -> impl Strategy<Value = Request> {
    request_with(0..4)
}

/// A request about one to three patients, with a fact for each.
fn patient_request() -> impl Strategy<Value = Request> {
    patients_request(1..4)
}

/// A request about `n` patients, with a fact for each.
fn patients_request(n: std::ops::Range<usize>) -> impl Strategy<Value = Request> {
    request_with(n).prop_map(|mut r| {
        r.facts
            .patients
            .resize_with(r.target.patients.len(), Default::default);
        r
    })
}

fn without_break_glass(req: &Request) -> Request {
    let mut r = req.clone();
    r.subject.break_glass = None;
    r
}

fn break_glass_obligations() -> Vec<Obligation> {
    vec![Obligation::FlagBreakGlass, Obligation::AlertGuardian]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// A decision is consistent: permit reasons go with permits; denies carry no
    /// obligations; obligations are exactly both break-glass ones or none.
    #[test]
    fn decisions_are_well_formed(req in request()) {
        let d = decide(&req);
        prop_assert_eq!(d.reason.is_permit(), d.is_permit());
        if d.is_permit() {
            prop_assert!(d.obligations.is_empty() || d.obligations == break_glass_obligations());
            prop_assert_eq!(d.reason == Reason::BreakGlass, !d.obligations.is_empty());
        } else {
            prop_assert!(d.obligations.is_empty());
        }
    }

    /// Deny by default: no scopes, or no role, is a deny.
    #[test]
    fn empty_scopes_or_roles_deny(req in request()) {
        let mut r = req.clone();
        r.subject.scopes = Scopes::empty();
        prop_assert_eq!(decide(&r).effect, Effect::Deny);
        let mut r = req;
        r.subject.roles.clear();
        let d = decide(&r);
        prop_assert_eq!(d.effect, Effect::Deny);
        prop_assert_eq!(d.reason, Reason::NoRole);
    }

    /// Deny by default: patient data with no relationship and no break-glass is denied to
    /// every role that works through relationships, and to every role at another
    /// organisation.
    #[test]
    fn no_relationship_no_break_glass_denies_patient_data(
        mut req in patient_request(),
        other_org in any::<bool>(),
    ) {
        req.subject.break_glass = None;
        for f in &mut req.facts.patients {
            f.registered_at_subject_org = false;
            f.on_care_team = false;
        }
        if other_org {
            req.target.owner_org = OTHER_ORG.into();
        } else {
            req.subject.roles.retain(|r| profile(*r).patients != PatientAccess::Organisation);
        }
        prop_assert_eq!(decide(&req).effect, Effect::Deny);
    }

    /// Opt-outs never change a direct-care or emergency decision.
    #[test]
    fn opt_outs_never_block_direct_care(
        mut req in request(),
        emergency in any::<bool>(),
        national in any::<bool>(),
        type1 in any::<bool>(),
    ) {
        req.subject.purpose = if emergency { Purpose::Emergency } else { Purpose::DirectCare };
        let mut opted = req.clone();
        let mut clear = req;
        for f in &mut opted.facts.patients {
            f.opted_out_national |= national;
            f.opted_out_type1 |= type1;
        }
        for f in &mut clear.facts.patients {
            f.opted_out_national = false;
            f.opted_out_type1 = false;
        }
        prop_assert_eq!(decide(&opted), decide(&clear));
    }

    /// Either opt-out of any patient always blocks research and planning.
    #[test]
    fn opt_outs_always_block_research_and_planning(
        mut req in patient_request(),
        planning in any::<bool>(),
        which in any::<prop::sample::Index>(),
        national in any::<bool>(),
    ) {
        req.subject.purpose = if planning { Purpose::Planning } else { Purpose::Research };
        let f = which.get_mut(&mut req.facts.patients);
        if national { f.opted_out_national = true } else { f.opted_out_type1 = true }
        prop_assert_eq!(decide(&req).effect, Effect::Deny);
    }

    /// A matching consent deny on any patient always wins, break-glass included.
    #[test]
    fn consent_deny_always_wins(
        mut req in patient_request(),
        which in any::<prop::sample::Index>(),
        by_org in any::<bool>(),
        by_purpose in any::<bool>(),
    ) {
        let org = by_org.then_some(req.subject.org.as_str());
        let rule = ConsentRule::deny(org, by_purpose.then_some(req.subject.purpose));
        which.get_mut(&mut req.facts.patients).consents.push(rule);
        let d = decide(&req);
        prop_assert_eq!(d.effect, Effect::Deny);
    }

    /// A consent permit never changes a decision (it does not replace a relationship).
    #[test]
    fn consent_permit_grants_nothing(
        mut req in patient_request(),
        which in any::<prop::sample::Index>(),
        by_org in any::<bool>(),
        by_purpose in any::<bool>(),
    ) {
        let before = decide(&req);
        let org = by_org.then_some(req.subject.org.as_str());
        let rule = ConsentRule::permit(org, by_purpose.then_some(req.subject.purpose));
        which.get_mut(&mut req.facts.patients).consents.push(rule);
        prop_assert_eq!(decide(&req), before);
    }

    /// A break-glass permit always carries both obligations, and was needed: without the
    /// break-glass the same request is denied.
    #[test]
    fn break_glass_permits_carry_both_obligations(mut req in request()) {
        req.subject.break_glass = Some(active_break_glass());
        let d = decide(&req);
        if d.reason == Reason::BreakGlass || !d.obligations.is_empty() {
            prop_assert!(d.is_permit());
            prop_assert_eq!(&d.obligations, &break_glass_obligations());
            prop_assert_eq!(decide(&without_break_glass(&req)).effect, Effect::Deny);
        }
    }

    /// An expired (or not yet started, or unjustified) break-glass never permits anything
    /// the same request without it would not, and never carries obligations.
    #[test]
    fn inactive_break_glass_never_permits(
        mut req in request(),
        kind in 0u8..3,
        offset in 0i64..1_000_000,
    ) {
        let mut glass = active_break_glass();
        match kind {
            0 => glass.expires_at_us = req.now_us - offset,
            1 => glass.started_at_us = req.now_us + 1 + offset,
            _ => glass.reason = " \t".into(),
        }
        prop_assert!(!glass.is_active(req.now_us));
        req.subject.break_glass = Some(glass);
        let d = decide(&req);
        prop_assert!(d.obligations.is_empty());
        prop_assert_eq!(d.effect, decide(&without_break_glass(&req)).effect);
    }

    /// Expiry specifically: at or after `expires_at_us`, a break-glass changes nothing.
    #[test]
    fn expired_break_glass_never_permits(mut req in request(), after in 0i64..1_000_000) {
        let mut glass = active_break_glass();
        glass.expires_at_us = req.now_us - after;
        glass.started_at_us = glass.expires_at_us - 1_000;
        req.subject.break_glass = Some(glass);
        let d = decide(&req);
        prop_assert!(d.obligations.is_empty());
        prop_assert_eq!(d.effect, decide(&without_break_glass(&req)).effect);
    }

    /// Several patients: permitted exactly when permitted for each patient alone.
    #[test]
    fn several_patients_need_every_patient(req in patients_request(2..5)) {
        let each = (0..req.target.patients.len()).all(|i| {
            let mut one = req.clone();
            one.target.patients = vec![req.target.patients[i].clone()];
            one.facts.patients = vec![req.facts.patients[i].clone()];
            decide(&one).is_permit()
        });
        prop_assert_eq!(decide(&req).is_permit(), each);
    }

    /// Reasons never carry an identifier: no digit at all (so no NHS number), nothing of
    /// the user name, the patients' ids or the organisation codes; nor does the whole
    /// decision's `Debug` (whose only digit is in the name `Type1OptOut`).
    #[test]
    fn reasons_carry_no_identifiers(req in request()) {
        let d = decide(&req);
        let text = d.reason.to_string();
        let debug = format!("{d:?}");
        prop_assert!(!text.chars().any(|c| c.is_ascii_digit()), "{}", text);
        prop_assert!(
            !debug.replace("Type1", "").chars().any(|c| c.is_ascii_digit()),
            "{}",
            debug
        );
        let mut secrets: Vec<&str> = vec![&req.subject.user, &req.subject.org, &req.target.owner_org];
        for p in &req.target.patients {
            secrets.push(p);
            secrets.push(p.trim_start_matches("Patient/"));
        }
        for s in secrets {
            prop_assert!(!text.contains(s) && !debug.contains(s), "{} in {}", s, debug);
        }
        prop_assert!(!text.contains("usr_") && !text.contains("Patient/"));
    }

    /// The request's own `Debug` shows no patient id (it may be logged by a caller).
    #[test]
    fn request_debug_hides_patient_ids(req in request()) {
        let debug = format!("{req:?}");
        for p in &req.target.patients {
            prop_assert!(!debug.contains(p.as_str()));
        }
    }

    /// Monotonic in time only through break-glass and consent periods: with neither, the
    /// decision does not depend on the clock.
    #[test]
    fn time_matters_only_for_break_glass_and_consent(mut req in request(), t in any::<i64>()) {
        req.subject.break_glass = None;
        for f in &mut req.facts.patients {
            for c in &mut f.consents {
                c.start_us = None;
                c.end_us = None;
            }
        }
        let mut later = req.clone();
        later.now_us = t;
        prop_assert_eq!(decide(&req), decide(&later));
    }
}

/// The generators reach both sides: enough permits (and break-glass permits) that the
/// properties above are not vacuous.
#[test]
fn generators_reach_permits() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let count = |runner: &mut TestRunner, strategy: &dyn Fn() -> BoxedStrategy<Request>| {
        let (mut permits, mut glass) = (0, 0);
        for _ in 0..4000 {
            let req = strategy().new_tree(runner).unwrap().current();
            let d = decide(&req);
            permits += usize::from(d.is_permit());
            glass += usize::from(d.reason == Reason::BreakGlass);
        }
        (permits, glass)
    };
    let (permits, glass) = count(&mut runner, &|| request().boxed());
    eprintln!("request(): {permits}/4000 permits, {glass} under break-glass");
    assert!(permits > 200 && glass > 10, "{permits} {glass}");
    let (permits, glass) = count(&mut runner, &|| patients_request(2..5).boxed());
    eprintln!("patients_request(2..5): {permits}/4000 permits, {glass} under break-glass");
    assert!(permits > 40 && glass > 5, "{permits} {glass}");
}
