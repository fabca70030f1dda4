//! Who is asking, and may they: the caller of a request (from its bearer token), and the
//! facts the access policy needs about each patient a resource concerns, gathered from the
//! record store and the directory, then handed to `caldicott_policy::decide`.
//!
//! Every interaction asks the guard about every resource it would return or change:
//! reads, each search result (so totals, paging, `_include` and `_revinclude` only ever
//! see permitted resources), history entries, `$everything`, exports, and the old and new
//! content of a write. A resource the caller may not read answers exactly like one that
//! does not exist (404): a refusal must not reveal that a record is there.

use std::cell::RefCell;
use std::collections::HashMap;

use caldicott_access::{Authenticated, Directory, optout};
use caldicott_core::{
    NHS_NUMBER_SYSTEM, NhsNumber, ODS_ORGANISATION_SYSTEM, OdsCode, ResourceId, ResourceType,
};
use caldicott_fhir::search::extract;
use caldicott_policy::{
    Action, ConsentEffect, ConsentRule, Decision, Effect, Facts, PatientFacts, Purpose, Request,
    Subject, Target,
};
use caldicott_vault::Record;
use serde_json::Value;

use crate::audit::{AuditEvent, AuditSink, Origin, Outcome, access_event};
use crate::error::ApiError;
use crate::search;
use crate::store::Store;

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub auth: Authenticated,
}

impl Caller {
    fn subject(&self) -> Subject {
        Subject {
            user: self.auth.user.name.clone(),
            org: self.auth.user.org.clone(),
            roles: vec![self.auth.role],
            purpose: self.auth.purpose,
            scopes: self.auth.scopes.clone(),
            break_glass: self.auth.break_glass.clone(),
        }
    }
}

/// The access checks of one request, with the facts gathered so far (one request often
/// asks about the same patient many times: a search of their observations).
pub struct Guard<'a> {
    store: &'a Store,
    directory: &'a Directory,
    audit: &'a dyn AuditSink,
    caller: &'a Caller,
    subject: Subject,
    origin: Origin,
    now_us: i64,
    facts: RefCell<HashMap<String, PatientFacts>>,
    pseudonyms: RefCell<HashMap<String, String>>,
    /// Audit events of this request not yet recorded: they go into the transaction of
    /// the request's write, or are recorded when the request ends.
    pending: RefCell<Pending>,
}

/// The audit events of one request, with searches folded to one event per patient.
#[derive(Default)]
struct Pending {
    events: Vec<AuditEvent>,
    /// For a search: the searched type and the query's parameter names.
    search: Option<(String, Vec<String>)>,
    /// Search events already pending, by what makes them distinct, to fold repeats.
    folded: HashMap<(String, Vec<String>, bool, String, bool), usize>,
}

impl<'a> Guard<'a> {
    pub fn new(
        store: &'a Store,
        directory: &'a Directory,
        audit: &'a dyn AuditSink,
        caller: &'a Caller,
        origin: Origin,
    ) -> Self {
        Guard {
            store,
            directory,
            audit,
            caller,
            subject: caller.subject(),
            origin,
            now_us: caldicott_vault::now_micros(),
            facts: RefCell::new(HashMap::new()),
            pseudonyms: RefCell::new(HashMap::new()),
            pending: RefCell::new(Pending::default()),
        }
    }

    /// Marks this request as a search of `rtype` with these parameter names (never their
    /// values): its events carry them, and a search that found nothing is still recorded.
    pub fn searching(&self, rtype: &str, names: Vec<String>) {
        self.pending.borrow_mut().search = Some((rtype.to_owned(), names));
    }

    fn push(&self, mut event: AuditEvent) {
        let mut p = self.pending.borrow_mut();
        if event.action != "search" && event.action != "export" {
            // The same decision asked twice in a row (an update checks the record as it
            // is and as it will be) is recorded once.
            if !p.events.iter().rev().take(4).any(|e| *e == event) {
                p.events.push(event);
            }
            return;
        }
        // One event per patient (or per patient-less type) and outcome, whatever the
        // number of that patient's resources the search or export returned.
        if event.action == "search"
            && let Some((_, names)) = &p.search
        {
            event.query = names.clone();
        }
        event.id = None;
        let key = (
            format!(
                "{}/{}",
                event.action,
                event.rtype.as_deref().unwrap_or_default()
            ),
            event.patients.clone(),
            event.outcome == Outcome::Permit,
            event.reason.clone(),
            event.break_glass,
        );
        if !p.folded.contains_key(&key) {
            let at = p.events.len();
            p.events.push(event);
            p.folded.insert(key, at);
        }
    }

    /// Takes the request's pending audit events (all of them, for recording now).
    pub fn take_pending(&self) -> Vec<AuditEvent> {
        let mut p = self.pending.borrow_mut();
        if let Some((rtype, names)) = p.search.take()
            && !p.events.iter().any(|e| e.action == "search")
        {
            p.events.push(AuditEvent {
                at_us: self.now_us,
                kind: crate::audit::EventKind::Access,
                action: "search".into(),
                user: self.subject.user.clone(),
                org: self.subject.org.clone(),
                role: crate::audit::roles(&self.subject),
                purpose: self.subject.purpose.to_string(),
                rtype: Some(rtype),
                id: None,
                patients: Vec::new(),
                query: names,
                client: self.origin.client.clone(),
                user_agent: self.origin.user_agent.clone(),
                outcome: Outcome::Permit,
                reason: "nothing matched that the caller may see".into(),
                break_glass: false,
            });
        }
        p.folded.clear();
        std::mem::take(&mut p.events)
    }

    /// The events to write in the transaction of a write about to be made: all pending
    /// ones when the sink is the ledger, none otherwise (they are recorded at the end).
    pub fn take_for_write(&self) -> Vec<AuditEvent> {
        if !self.audit.transactional() {
            return Vec::new();
        }
        let mut p = self.pending.borrow_mut();
        p.folded.clear();
        std::mem::take(&mut p.events)
    }

    /// Puts back the events of a write that failed, its write decisions marked as not
    /// carried out (they are recorded when the request ends).
    pub fn restore_failed(&self, events: Vec<AuditEvent>, why: &str) {
        let mut p = self.pending.borrow_mut();
        for mut e in events {
            if matches!(e.action.as_str(), "create" | "update" | "delete")
                && e.outcome == Outcome::Permit
            {
                e.outcome = Outcome::Deny;
                e.reason = format!("{}; not written: {why}", e.reason);
            }
            p.events.push(e);
        }
    }

    /// Records a read of the audit trail itself by this caller.
    pub fn note_audit_read(
        &self,
        action: &str,
        patients: Vec<String>,
        outcome: Outcome,
        reason: &str,
    ) {
        self.note(
            crate::audit::EventKind::AuditRead,
            action,
            patients,
            outcome,
            reason,
        );
    }

    /// Records an event of this request that is not an access decision (break-glass,
    /// audit reads), in the caller's name.
    pub fn note(
        &self,
        kind: crate::audit::EventKind,
        action: &str,
        patients: Vec<String>,
        outcome: Outcome,
        reason: &str,
    ) {
        let mut e = crate::audit::security_event(
            kind,
            action,
            &self.subject.user,
            &self.subject.org,
            &crate::audit::roles(&self.subject),
            &self.origin,
            outcome,
            reason,
            self.now_us,
        );
        e.purpose = self.subject.purpose.to_string();
        e.patients = patients;
        self.pending.borrow_mut().events.push(e);
    }

    /// The network origin of this request.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    pub fn caller(&self) -> &Caller {
        self.caller
    }

    /// The decision for `action` on a resource (its JSON and owning organisation).
    pub fn decide(
        &self,
        action: Action,
        rtype: &str,
        owner_org: &str,
        resource: Option<&Value>,
    ) -> Result<Decision, ApiError> {
        let patients = match resource {
            Some(v) => extract::patients(v),
            None => Vec::new(),
        };
        // A Patient's own organisation is the one that holds (or will hold) it, even
        // before it is stored.
        let itself = (rtype == "Patient")
            .then(|| resource.and_then(|v| v["id"].as_str()))
            .flatten()
            .map(|id| format!("Patient/{id}"));
        let mut facts = Vec::with_capacity(patients.len());
        for p in &patients {
            let mut f = self.patient_facts(p)?;
            if itself.as_deref() == Some(p.as_str()) {
                f.registered_at_subject_org = owner_org == self.subject.org;
            }
            facts.push(f);
        }
        let request = Request {
            subject: self.subject.clone(),
            action,
            target: Target {
                rtype: rtype.to_owned(),
                owner_org: owner_org.to_owned(),
                patients,
            },
            facts: Facts { patients: facts },
            now_us: self.now_us,
        };
        let decision = caldicott_policy::decide(&request);
        let pseudonyms = request
            .target
            .patients
            .iter()
            .map(|p| self.pseudonym(p))
            .collect::<Result<Vec<_>, _>>()?;
        self.push(access_event(
            &self.subject,
            &self.origin,
            action,
            rtype,
            resource.and_then(|v| v["id"].as_str()),
            pseudonyms,
            &decision,
            self.now_us,
        ));
        if decision.effect == Effect::Deny {
            tracing::debug!(user = %self.subject.user, %rtype, reason = %decision.reason, "access denied");
        }
        Ok(decision)
    }

    /// Whether `action` is permitted on a resource already parsed.
    pub fn permits(
        &self,
        action: Action,
        rtype: &str,
        owner_org: &str,
        resource: &Value,
    ) -> Result<bool, ApiError> {
        Ok(self
            .decide(action, rtype, owner_org, Some(resource))?
            .effect
            == Effect::Permit)
    }

    /// Whether `action` is permitted on a stored record (a tombstone is judged by its
    /// type and organisation alone).
    pub fn permits_record(&self, action: Action, r: &Record) -> Result<bool, ApiError> {
        let v = parsed(r)?;
        Ok(self
            .decide(action, r.rtype.as_str(), r.org.as_str(), v.as_ref())?
            .effect
            == Effect::Permit)
    }

    /// The audit pseudonym of a patient, computed once per request (a search asks about
    /// the same patient many times).
    fn pseudonym(&self, patient: &str) -> Result<String, ApiError> {
        if let Some(p) = self.pseudonyms.borrow().get(patient) {
            return Ok(p.clone());
        }
        let p = self
            .store
            .vault()
            .dir_keyed_hash("audit-patient", patient)?;
        self.pseudonyms
            .borrow_mut()
            .insert(patient.to_owned(), p.clone());
        Ok(p)
    }

    /// Refuses a write the policy does not permit (403: the caller knows what they sent).
    pub fn require(
        &self,
        action: Action,
        rtype: &str,
        owner_org: &str,
        resource: Option<&Value>,
    ) -> Result<(), ApiError> {
        let d = self.decide(action, rtype, owner_org, resource)?;
        if d.effect == Effect::Permit {
            Ok(())
        } else {
            Err(forbidden(&d))
        }
    }

    /// Refuses an action on a stored record the policy does not permit (403).
    pub fn require_record(&self, action: Action, r: &Record) -> Result<(), ApiError> {
        let v = parsed(r)?;
        self.require(action, r.rtype.as_str(), r.org.as_str(), v.as_ref())
    }

    /// Refuses a prepared write the policy does not permit (403).
    pub fn require_write(
        &self,
        action: Action,
        w: &caldicott_vault::Write,
    ) -> Result<(), ApiError> {
        let v: Value = serde_json::from_slice(&w.body)
            .map_err(|_| ApiError::internal("a prepared resource is not valid JSON"))?;
        self.require(action, w.rtype.as_str(), w.org.as_str(), Some(&v))
    }

    /// What is known about one patient relative to the caller.
    fn patient_facts(&self, patient: &str) -> Result<PatientFacts, ApiError> {
        if let Some(f) = self.facts.borrow().get(patient) {
            return Ok(f.clone());
        }
        let key = (
            self.subject.org.clone(),
            self.caller.auth.user.practitioner.clone(),
            patient.to_owned(),
        );
        if let Some(f) = self.store.facts().get(&key, self.now_us) {
            self.facts
                .borrow_mut()
                .insert(patient.to_owned(), f.clone());
            return Ok(f);
        }
        let generation = self.store.facts().generation();
        let f = self.gather(patient)?;
        self.store
            .facts()
            .put(key, f.clone(), self.now_us, generation);
        self.facts
            .borrow_mut()
            .insert(patient.to_owned(), f.clone());
        Ok(f)
    }

    fn gather(&self, patient: &str) -> Result<PatientFacts, ApiError> {
        let f = PatientFacts::default();
        let Some(id) = patient
            .strip_prefix("Patient/")
            .and_then(|i| ResourceId::new(i).ok())
        else {
            return Ok(f);
        };
        let ptype = ResourceType::new("Patient").map_err(|_| ApiError::internal("type"))?;
        let Some(record) = self.store.current(&ptype, &id)? else {
            return Ok(f);
        };
        let body = if record.deleted {
            None
        } else {
            serde_json::from_slice::<Value>(&record.body).ok()
        };
        self.gather_from(patient, record.org.as_str(), body.as_ref())
    }

    /// Notes a Patient written earlier in the same transaction, so that what follows it in
    /// the Bundle is judged against it.
    pub fn pending_patient(&self, org: &str, patient: &Value) -> Result<(), ApiError> {
        let Some(id) = patient["id"].as_str() else {
            return Ok(());
        };
        let reference = format!("Patient/{id}");
        let f = self.gather_from(&reference, org, Some(patient))?;
        self.facts.borrow_mut().insert(reference, f);
        Ok(())
    }

    fn gather_from(
        &self,
        patient: &str,
        org: &str,
        resource: Option<&Value>,
    ) -> Result<PatientFacts, ApiError> {
        let mut f = PatientFacts {
            registered_at_subject_org: org == self.subject.org,
            ..PatientFacts::default()
        };
        if let Some(nhs) = resource.and_then(nhs_number) {
            let o = optout::check(self.store.vault(), &nhs)
                .map_err(|_| ApiError::internal("the opt-out lists cannot be read"))?;
            f.opted_out_national = o.national;
            f.opted_out_type1 = o.type1;
        }
        if let Some(practitioner) = &self.caller.auth.user.practitioner {
            f.on_care_team = self.on_care_team(patient, practitioner)?;
        }
        f.consents = self.consents(patient)?;
        Ok(f)
    }

    /// An active CareTeam with the user as participant, or an active EpisodeOfCare the
    /// user manages, for the patient.
    fn on_care_team(&self, patient: &str, practitioner: &str) -> Result<bool, ApiError> {
        for (rtype, criteria) in [
            (
                "CareTeam",
                format!("patient={patient}&participant={practitioner}&status=active"),
            ),
            (
                "EpisodeOfCare",
                format!("patient={patient}&care-manager={practitioner}&status=active"),
            ),
        ] {
            let t = ResourceType::new(rtype).map_err(|_| ApiError::internal("type"))?;
            if !search::matching(self.store, &t, &criteria, 1)?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The patient's active Consent provisions as rules.
    fn consents(&self, patient: &str) -> Result<Vec<ConsentRule>, ApiError> {
        let t = ResourceType::new("Consent").map_err(|_| ApiError::internal("type"))?;
        let mut rules = Vec::new();
        for r in search::matching(
            self.store,
            &t,
            &format!("patient={patient}&status=active"),
            100,
        )? {
            let Ok(v) = serde_json::from_slice::<Value>(&r.body) else {
                continue;
            };
            rules.extend(self.consent_rules(&v)?);
        }
        Ok(rules)
    }

    fn consent_rules(&self, consent: &Value) -> Result<Vec<ConsentRule>, ApiError> {
        let p = &consent["provision"];
        let effect = match p["type"].as_str() {
            Some("deny") => ConsentEffect::Deny,
            Some("permit") => ConsentEffect::Permit,
            _ => return Ok(Vec::new()),
        };
        let mut orgs: Vec<Option<String>> = Vec::new();
        for a in p["actor"].as_array().into_iter().flatten() {
            let r = &a["reference"];
            if let Some(ods) = ods_of_reference(r) {
                orgs.push(Some(ods));
            } else if let Some(ods) = r["reference"]
                .as_str()
                .and_then(|s| s.strip_prefix("Organization/"))
                .and_then(|i| self.organisation_ods(i))
            {
                orgs.push(Some(ods));
            }
        }
        if orgs.is_empty() {
            orgs.push(None);
        }
        let mut purposes: Vec<Option<Purpose>> = p["purpose"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| purpose_of(c["code"].as_str()?))
            .map(Some)
            .collect();
        if purposes.is_empty() {
            purposes.push(None);
        }
        let period = |k: &str| {
            p["period"][k]
                .as_str()
                .and_then(caldicott_fhir::search::extract::date_range)
        };
        let (start, end) = (
            period("start").map(|r| r.start),
            period("end").map(|r| r.end - 1),
        );
        let mut out = Vec::new();
        for o in &orgs {
            for pu in &purposes {
                out.push(ConsentRule {
                    effect,
                    org: o.clone(),
                    purpose: *pu,
                    start_us: start,
                    end_us: end,
                });
            }
        }
        Ok(out)
    }

    /// The ODS code of a stored Organization.
    fn organisation_ods(&self, id: &str) -> Option<String> {
        let t = ResourceType::new("Organization").ok()?;
        let r = self.store.current(&t, &ResourceId::new(id).ok()?).ok()??;
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        v["identifier"]
            .as_array()?
            .iter()
            .find(|i| i["system"] == ODS_ORGANISATION_SYSTEM)
            .and_then(|i| i["value"].as_str())
            .and_then(|s| OdsCode::parse(s).ok())
            .map(|o| o.to_string())
    }

    /// The directory (for callers that need the user's details).
    pub fn directory(&self) -> &Directory {
        self.directory
    }
}

/// A stored record's resource; `None` for a tombstone (judged by type and organisation).
fn parsed(r: &Record) -> Result<Option<Value>, ApiError> {
    if r.deleted {
        return Ok(None);
    }
    serde_json::from_slice(&r.body)
        .map(Some)
        .map_err(|_| ApiError::internal("a stored resource is not valid JSON"))
}

fn nhs_number(patient: &Value) -> Option<NhsNumber> {
    patient["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == NHS_NUMBER_SYSTEM)
        .and_then(|i| i["value"].as_str())
        .and_then(|s| NhsNumber::parse(s).ok())
}

fn ods_of_reference(r: &Value) -> Option<String> {
    let i = &r["identifier"];
    (i["system"] == ODS_ORGANISATION_SYSTEM)
        .then(|| i["value"].as_str())
        .flatten()
        .and_then(|s| OdsCode::parse(s).ok())
        .map(|o| o.to_string())
}

/// A Consent purpose code (HL7 v3 ActReason) as a purpose of use.
fn purpose_of(code: &str) -> Option<Purpose> {
    Some(match code {
        "TREAT" | "CAREMGT" => Purpose::DirectCare,
        "ETREAT" | "BTG" => Purpose::Emergency,
        "HRESCH" | "CLINTRCH" => Purpose::Research,
        "HOPERAT" | "HSYSADMIN" | "PUBHLTH" | "HPAYMT" => Purpose::Planning,
        "HCOMPL" | "HACCRED" => Purpose::Audit,
        _ => return None,
    })
}

/// The 403 for a refused write, with the policy's reason (never an identifier).
pub fn forbidden(d: &Decision) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        crate::error::IssueType::Security,
        format!("not permitted: {}", d.reason),
    )
}
