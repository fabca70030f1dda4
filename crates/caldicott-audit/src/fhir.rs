//! An audit event as an HL7 FHIR R4 (4.0.1) `AuditEvent` resource.
//!
//! Why: FHIR is how records leave Caldicott, so the audit trail leaves the same way: a
//! guardian's tools, an NHS audit service or the patient's own app read it without knowing
//! the leaf format. The rendering is a pure function of the event and its ledger position, so
//! a resource can always be re-derived from the ledger and checked against it.
//!
//! The shape follows IHE Basic Audit Log Patterns (BALP) conventions without claiming its
//! profiles (`meta.profile` is left out: BALP's profiles also require client and server
//! agents that a ledger leaf does not record). Choices, each made to stay inside R4's
//! elements and cardinalities exactly, with no extensions:
//!
//! - **`type` and `subtype`.** Access events are RESTful operations:
//!   `audit-event-type#rest` with the `restful-interaction` code of the interaction: `read`,
//!   `search-type`, `create`, `update`, `delete`, `history-instance`. Bulk export is the FHIR
//!   `$export` operation, so its subtypes are `restful-interaction#operation` (what it is in
//!   REST terms) **and** [`SYSTEM_AUDIT_ACTION`]`#export` (which operation), as BALP does for
//!   operations. Sign-ins (successful or not) are DICOM `110114` *User Authentication* with
//!   subtype `110122` *Login*. Every other kind is [`SYSTEM_EVENT_KIND`] with the kind's name,
//!   and its verb in [`SYSTEM_AUDIT_ACTION`].
//! - **`action`.** `C`/`R`/`U`/`D` for create, read (and history), update, delete; `E` for
//!   search, export and every other event (sign-ins, administration), as BALP codes queries,
//!   operations and logins; a read of the audit trail itself is `R` (read, history) or `E`.
//!   An access verb Caldicott does not know gets no `action` rather than a guess.
//! - **`outcome`.** `0` when permitted, `4` (minor failure) when refused; `outcomeDesc` is
//!   the recorded reason for both (a permit's reason, such as "registered at the
//!   organisation", is what a reviewer needs as much as a refusal's).
//! - **`purposeOfEvent`.** v3 `ActReason` purpose-of-use codes, each alongside Caldicott's own
//!   code ([`SYSTEM_PURPOSE`]) in the same concept: `direct-care` → `TREAT`, `emergency` →
//!   `ETREAT`, `research` → `HRESCH`, `planning` → `HOPERAT` (healthcare operations: planning
//!   and commissioning are administration of care, not care), `audit` → `HCOMPL` (health
//!   compliance: auditing access is the compliance activity the mandate requires; `HQUALIMP`
//!   is about care quality, not access). Break-glass adds `ETREAT` (if not already there)
//!   and `BTG` *break the glass*, which in the 4.0.1 terminology is an `ActReason` code (a
//!   child of `ETREAT`), not an `ActCode`.
//! - **`agent`.** The user (`who.identifier` in [`ID_USER`], `requestor: true`, type
//!   `extra-security-role-type#humanuser` unless their only role is `system`, roles in
//!   [`SYSTEM_ROLE`], `network` with type `2` when the client is an IP address and no type
//!   otherwise, since nothing else is known of it), then their organisation
//!   (`who.identifier` in [`ID_ODS`], `requestor: false`).
//! - **`source`.** `observer.display` is the deployment's log origin; `type` is
//!   `security-source-type#4` *Application Server*.
//! - **`entity`.** The resource (`what.reference` `Type/id`, entity type `2` *System Object*,
//!   role `4` *Domain Resource*); one entity per patient pseudonym (`what.identifier` in
//!   [`ID_PATIENT_PSEUDONYM`], type `1` *Person*, role `1` *Patient*); for searches one
//!   entity with role `24` *Query* whose `query` is the base64 of the parameter *names*
//!   joined with `&`; and last the ledger entry (type `2`, role `13` *Security Resource*,
//!   `what.identifier` in [`ID_LEDGER_ENTRY`], details `ledger-epoch`, `ledger-index` and
//!   `ledger-leaf-hash` as `valueString`).
//!
//! Values from the event are never trusted to be valid FHIR: empty strings are left out (R4
//! forbids them), control characters become U+FFFD, codes that are not valid `code`s become
//! `text`, and a resource type or id that would make an invalid reference becomes `display`.

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::{AuditEvent, EventKind, Outcome, uktime, words};

/// HL7's audit event types (`rest`).
pub const SYSTEM_AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
/// FHIR RESTful interactions (`read`, `search-type`, ...).
pub const SYSTEM_RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
/// DICOM controlled terminology (`110114` User Authentication, `110122` Login).
pub const SYSTEM_DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// HL7 v3 ActReason: purposes of use.
pub const SYSTEM_ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// Audit entity types (`1` Person, `2` System Object).
pub const SYSTEM_ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
/// Audit object roles (`1` Patient, `4` Domain Resource, `13` Security Resource, `24` Query).
pub const SYSTEM_OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
/// Audit source types (`4` Application Server).
pub const SYSTEM_SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
/// Agent types (`humanuser`).
pub const SYSTEM_SECURITY_ROLE_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/extra-security-role-type";
/// Caldicott's event kinds ([`EventKind::name`]), for kinds FHIR has no code for.
pub const SYSTEM_EVENT_KIND: &str = "https://caldicott.nhs.uk/CodeSystem/audit-event-kind";
/// Caldicott's action verbs ([`AuditEvent::action`]): `export`, `password-change`, ...
pub const SYSTEM_AUDIT_ACTION: &str = "https://caldicott.nhs.uk/CodeSystem/audit-action";
/// Caldicott's roles (`gp`, `registered-nurse`, ...).
pub const SYSTEM_ROLE: &str = "https://caldicott.nhs.uk/CodeSystem/role";
/// Caldicott's purposes of use (`direct-care`, `research`, ...).
pub const SYSTEM_PURPOSE: &str = "https://caldicott.nhs.uk/CodeSystem/purpose-of-use";
/// Caldicott user names.
pub const ID_USER: &str = "https://caldicott.nhs.uk/Id/user";
/// Keyed patient pseudonyms of the audit trail (never an NHS number).
pub const ID_PATIENT_PSEUDONYM: &str = "https://caldicott.nhs.uk/Id/audit-patient";
/// NHS ODS organisation codes.
pub const ID_ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// Positions in the audit ledger, `{epoch}-{index}`.
pub const ID_LEDGER_ENTRY: &str = "https://caldicott.nhs.uk/Id/audit-ledger-entry";

/// Where an event sits in the ledger, and which ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRef {
    /// The ledger epoch (a new epoch starts a new Merkle tree).
    pub epoch: u32,
    /// The leaf's index in that epoch's tree.
    pub index: u64,
    /// The leaf's RFC 9162 hash, base64.
    pub leaf_hash_b64: String,
    /// The deployment's log origin, e.g. `caldicott.example.nhs.uk/audit`: the first line of
    /// its checkpoints.
    pub source_name: String,
}

/// What the report adds to a resource: the organisation's name and the inclusion proof.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extras<'a> {
    pub org_name: Option<&'a str>,
    pub proof: Option<Proof<'a>>,
}

/// An inclusion proof: the audit path (leaf to root) and the tree size it is against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proof<'a> {
    pub hashes_b64: &'a [String],
    pub tree_size: u64,
}

/// One `Coding`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Coding {
    pub system: &'static str,
    pub code: String,
    pub display: Option<&'static str>,
}

impl Coding {
    fn new(system: &'static str, code: &str, display: &'static str) -> Self {
        Coding {
            system,
            code: code.to_owned(),
            display: Some(display),
        }
    }

    /// A coding in one of Caldicott's systems, if `code` is a valid FHIR `code`.
    fn ours(system: &'static str, code: &str) -> Option<Self> {
        is_code(code).then(|| Coding {
            system,
            code: code.to_owned(),
            display: None,
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("system".into(), self.system.into());
        m.insert("code".into(), self.code.as_str().into());
        if let Some(d) = self.display {
            m.insert("display".into(), d.into());
        }
        Value::Object(m)
    }

    /// Whether a search token (`code` or `system|code`) names this coding.
    pub(crate) fn matches_token(&self, token: &str) -> bool {
        match token.split_once('|') {
            Some((system, code)) => system == self.system && code == self.code,
            None => token == self.code,
        }
    }
}

/// The RESTful interaction and FHIR action of a Caldicott access verb.
fn interaction(action: &str) -> Option<(&'static str, char)> {
    Some(match action {
        "read" => ("read", 'R'),
        "search" => ("search-type", 'E'),
        "create" => ("create", 'C'),
        "update" => ("update", 'U'),
        "delete" => ("delete", 'D'),
        "history" => ("history-instance", 'R'),
        "export" => ("operation", 'E'),
        _ => return None,
    })
}

/// `AuditEvent.type`.
pub(crate) fn event_type(event: &AuditEvent) -> Coding {
    match event.kind {
        EventKind::Access => Coding::new(SYSTEM_AUDIT_EVENT_TYPE, "rest", "RESTful Operation"),
        EventKind::Login | EventKind::LoginFailed => {
            Coding::new(SYSTEM_DICOM, "110114", "User Authentication")
        }
        kind => Coding {
            system: SYSTEM_EVENT_KIND,
            code: kind.name().to_owned(),
            display: None,
        },
    }
}

/// `AuditEvent.subtype`.
pub(crate) fn subtypes(event: &AuditEvent) -> Vec<Coding> {
    match event.kind {
        EventKind::Login | EventKind::LoginFailed => {
            vec![Coding::new(SYSTEM_DICOM, "110122", "Login")]
        }
        EventKind::Access => match interaction(&event.action) {
            Some((code, _)) => {
                // The restful-interaction displays are the codes themselves.
                let mut out = vec![Coding::new(SYSTEM_RESTFUL_INTERACTION, code, code)];
                if code == "operation" {
                    out.extend(Coding::ours(SYSTEM_AUDIT_ACTION, &event.action));
                }
                out
            }
            None => Coding::ours(SYSTEM_AUDIT_ACTION, &event.action)
                .into_iter()
                .collect(),
        },
        _ => Coding::ours(SYSTEM_AUDIT_ACTION, &event.action)
            .into_iter()
            .collect(),
    }
}

/// `AuditEvent.action`: C, R, U, D or E.
pub(crate) fn action_code(event: &AuditEvent) -> Option<char> {
    match event.kind {
        EventKind::Access => interaction(&event.action).map(|(_, a)| a),
        EventKind::AuditRead => Some(match event.action.as_str() {
            "read" | "history" => 'R',
            _ => 'E',
        }),
        _ => Some('E'),
    }
}

/// Whether the event is a search (so it gets a query entity).
fn is_query(event: &AuditEvent) -> bool {
    matches!(event.kind, EventKind::Access | EventKind::AuditRead) && event.action == "search"
        || !event.query.is_empty()
}

/// The FHIR `instant` of `at_us`, in UTC with microseconds (RFC 3339).
///
/// An instant must lie in years 0001–9999; an `at_us` outside them (no clock produces one)
/// is clamped to the nearest bound, and the ledger's leaf still holds the exact value.
#[must_use]
pub fn instant(at_us: i64) -> String {
    // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z.
    const MIN_US: i64 = -62_135_596_800 * uktime::US_PER_SECOND;
    const MAX_US: i64 = 253_402_300_799 * uktime::US_PER_SECOND + 999_999;
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    let clamped = at_us.clamp(MIN_US, MAX_US);
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(clamped) * 1000)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        // Unreachable within the bounds above; a valid instant rather than a panic.
        .unwrap_or_else(|| "1970-01-01T00:00:00.000000Z".to_owned())
}

/// Whether `s` is a valid FHIR `code`: non-empty, no leading, trailing or repeated
/// whitespace.
pub(crate) fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.split(|c: char| c.is_whitespace())
            .all(|part| !part.is_empty())
        && !s.chars().any(char::is_control)
}

/// A FHIR `string` for `s`: `None` when empty (R4 forbids empty strings), control characters
/// other than tab, CR and LF replaced with U+FFFD (R4 forbids them too).
pub(crate) fn fhir_string(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    Some(
        s.chars()
            .map(|c| {
                if c.is_control() && !matches!(c, '\t' | '\r' | '\n') {
                    '\u{FFFD}'
                } else {
                    c
                }
            })
            .collect(),
    )
}

/// Whether `s` is a valid FHIR resource id.
pub(crate) fn is_fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Whether `s` looks like a FHIR resource type name.
pub(crate) fn is_resource_type(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= 64
        && bytes.next().is_some_and(|b| b.is_ascii_uppercase())
        && bytes.all(|b| b.is_ascii_alphabetic())
}

/// A `CodeableConcept` from codings, with `text` when there are none.
fn concept(codings: &[Coding], text: Option<String>) -> Option<Value> {
    let mut m = Map::new();
    if !codings.is_empty() {
        m.insert(
            "coding".into(),
            codings
                .iter()
                .map(Coding::to_json)
                .collect::<Vec<_>>()
                .into(),
        );
    }
    if let Some(t) = text {
        m.insert("text".into(), t.into());
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

/// The v3 purpose of use for a Caldicott purpose.
fn v3_purpose(purpose: &str) -> Option<Coding> {
    let (code, display) = match purpose {
        "direct-care" => ("TREAT", "treatment"),
        "emergency" => ("ETREAT", "Emergency Treatment"),
        "research" => ("HRESCH", "healthcare research"),
        "planning" => ("HOPERAT", "healthcare operations"),
        "audit" => ("HCOMPL", "health compliance"),
        _ => return None,
    };
    Some(Coding::new(SYSTEM_ACT_REASON, code, display))
}

/// `AuditEvent.purposeOfEvent`.
fn purposes(event: &AuditEvent) -> Vec<Value> {
    let mut out = Vec::new();
    let v3 = v3_purpose(&event.purpose);
    let is_emergency = v3.as_ref().is_some_and(|c| c.code == "ETREAT");
    if !event.purpose.is_empty() {
        let codings: Vec<Coding> = v3
            .into_iter()
            .chain(Coding::ours(SYSTEM_PURPOSE, &event.purpose))
            .collect();
        let text = codings
            .is_empty()
            .then(|| fhir_string(&event.purpose))
            .flatten();
        out.extend(concept(&codings, text));
    }
    if event.break_glass {
        if !is_emergency {
            out.extend(concept(
                &[Coding::new(
                    SYSTEM_ACT_REASON,
                    "ETREAT",
                    "Emergency Treatment",
                )],
                None,
            ));
        }
        out.extend(concept(
            &[Coding::new(SYSTEM_ACT_REASON, "BTG", "break the glass")],
            None,
        ));
    }
    out
}

/// The agent's network address: type `2` for an IP address (a socket address gives its IP),
/// otherwise the address as recorded and no type.
fn network(client: &str) -> Option<Value> {
    if let Ok(ip) = client.parse::<IpAddr>() {
        return Some(json!({ "address": ip.to_string(), "type": "2" }));
    }
    if let Ok(sa) = client.parse::<SocketAddr>() {
        return Some(json!({ "address": sa.ip().to_string(), "type": "2" }));
    }
    fhir_string(client).map(|a| json!({ "address": a }))
}

/// `AuditEvent.agent`: the user, then their organisation.
fn agents(event: &AuditEvent, extras: &Extras<'_>) -> Vec<Value> {
    let mut user = Map::new();
    let roles: Vec<&str> = event
        .role
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    if roles.iter().any(|r| *r != "system") || roles.is_empty() {
        user.insert(
            "type".into(),
            json!({ "coding": [{ "system": SYSTEM_SECURITY_ROLE_TYPE, "code": "humanuser" }] }),
        );
    }
    let role_concepts: Vec<Value> = roles
        .iter()
        .filter_map(|r| {
            let coding = Coding::ours(SYSTEM_ROLE, r).map(|mut c| {
                c.display = words::role(r);
                c
            });
            match coding {
                Some(c) => concept(&[c], None),
                None => concept(&[], fhir_string(r)),
            }
        })
        .collect();
    if !role_concepts.is_empty() {
        user.insert("role".into(), role_concepts.into());
    }
    if let Some(name) = fhir_string(&event.user) {
        user.insert(
            "who".into(),
            json!({ "identifier": { "system": ID_USER, "value": name } }),
        );
    }
    user.insert("requestor".into(), true.into());
    if let Some(net) = event.client.as_deref().and_then(network) {
        user.insert("network".into(), net);
    }
    let mut out = vec![Value::Object(user)];
    if let Some(org) = fhir_string(&event.org) {
        let mut who = Map::new();
        who.insert("type".into(), "Organization".into());
        who.insert(
            "identifier".into(),
            json!({ "system": ID_ODS, "value": org }),
        );
        if let Some(name) = extras.org_name.and_then(fhir_string) {
            who.insert("display".into(), name.into());
        }
        out.push(json!({ "who": who, "requestor": false }));
    }
    out
}

/// `AuditEvent.source`.
fn source(entry: &EntryRef) -> Value {
    let observer = fhir_string(&entry.source_name).unwrap_or_else(|| "Caldicott".to_owned());
    json!({
        "observer": { "display": observer },
        "type": [Coding::new(SYSTEM_SOURCE_TYPE, "4", "Application Server").to_json()],
    })
}

/// `entity.what` for the event's resource.
fn resource_reference(rtype: Option<&str>, id: Option<&str>) -> Option<Value> {
    match (rtype, id) {
        (Some(t), Some(i)) if is_resource_type(t) && is_fhir_id(i) => {
            Some(json!({ "reference": format!("{t}/{i}") }))
        }
        (Some(t), None) if is_resource_type(t) => Some(json!({ "type": t })),
        (t, i) => {
            let text = [t, i].into_iter().flatten().collect::<Vec<_>>().join("/");
            fhir_string(&text).map(|d| json!({ "display": d }))
        }
    }
}

fn entity(what: Option<Value>, etype: Coding, role: Coding) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(w) = what {
        m.insert("what".into(), w);
    }
    m.insert("type".into(), etype.to_json());
    m.insert("role".into(), role.to_json());
    m
}

fn system_object() -> Coding {
    Coding::new(SYSTEM_ENTITY_TYPE, "2", "System Object")
}

fn detail(kind: &str, value: String) -> Value {
    json!({ "type": kind, "valueString": value })
}

/// `AuditEvent.entity`: resource, patients, query, ledger entry.
fn entities(event: &AuditEvent, entry: &EntryRef, extras: &Extras<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    let query = is_query(event);
    if event.id.is_some() || (event.rtype.is_some() && !query) {
        let what = resource_reference(event.rtype.as_deref(), event.id.as_deref());
        out.push(Value::Object(entity(
            what,
            system_object(),
            Coding::new(SYSTEM_OBJECT_ROLE, "4", "Domain Resource"),
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in &event.patients {
        let Some(value) = fhir_string(p) else {
            continue;
        };
        if !seen.insert(value.clone()) {
            continue;
        }
        out.push(Value::Object(entity(
            Some(json!({
                "type": "Patient",
                "identifier": { "system": ID_PATIENT_PSEUDONYM, "value": value },
            })),
            Coding::new(SYSTEM_ENTITY_TYPE, "1", "Person"),
            Coding::new(SYSTEM_OBJECT_ROLE, "1", "Patient"),
        )));
    }
    if query {
        let what = event
            .rtype
            .as_deref()
            .filter(|t| is_resource_type(t))
            .map(|t| json!({ "type": t }));
        let mut m = entity(
            what,
            system_object(),
            Coding::new(SYSTEM_OBJECT_ROLE, "24", "Query"),
        );
        let names = event.query.join("&");
        if !names.is_empty() {
            m.insert(
                "query".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(names.as_bytes())
                    .into(),
            );
        }
        out.push(Value::Object(m));
    }
    let position = format!("{}-{}", entry.epoch, entry.index);
    let mut ledger = entity(
        Some(json!({ "identifier": { "system": ID_LEDGER_ENTRY, "value": position } })),
        system_object(),
        Coding::new(SYSTEM_OBJECT_ROLE, "13", "Security Resource"),
    );
    let mut details = vec![
        detail("ledger-epoch", entry.epoch.to_string()),
        detail("ledger-index", entry.index.to_string()),
    ];
    if let Some(h) = fhir_string(&entry.leaf_hash_b64) {
        details.push(detail("ledger-leaf-hash", h));
    }
    if let Some(proof) = extras.proof {
        details.push(detail("ledger-tree-size", proof.tree_size.to_string()));
        if let Some(path) = fhir_string(&proof.hashes_b64.join(",")) {
            details.push(detail("ledger-inclusion-proof", path));
        }
    }
    ledger.insert("detail".into(), details.into());
    out.push(Value::Object(ledger));
    out
}

/// The event as a FHIR R4 `AuditEvent` resource with id `{epoch}-{index}`.
#[must_use]
pub fn to_fhir(event: &AuditEvent, entry: &EntryRef) -> Value {
    render(event, entry, &Extras::default())
}

/// [`to_fhir`] with what a report adds.
pub(crate) fn render(event: &AuditEvent, entry: &EntryRef, extras: &Extras<'_>) -> Value {
    let mut r = Map::new();
    r.insert("resourceType".into(), "AuditEvent".into());
    r.insert(
        "id".into(),
        format!("{}-{}", entry.epoch, entry.index).into(),
    );
    r.insert("type".into(), event_type(event).to_json());
    let subs = subtypes(event);
    if !subs.is_empty() {
        r.insert(
            "subtype".into(),
            subs.iter().map(Coding::to_json).collect::<Vec<_>>().into(),
        );
    }
    if let Some(a) = action_code(event) {
        r.insert("action".into(), a.to_string().into());
    }
    r.insert("recorded".into(), instant(event.at_us).into());
    r.insert(
        "outcome".into(),
        match event.outcome {
            Outcome::Permit => "0",
            Outcome::Deny => "4",
        }
        .into(),
    );
    if let Some(desc) = fhir_string(&event.reason) {
        r.insert("outcomeDesc".into(), desc.into());
    }
    let purposes = purposes(event);
    if !purposes.is_empty() {
        r.insert("purposeOfEvent".into(), purposes.into());
    }
    r.insert("agent".into(), agents(event, extras).into());
    r.insert("source".into(), source(entry));
    r.insert("entity".into(), entities(event, entry, extras).into());
    Value::Object(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::r4check::{check_audit_event, is_instant};
    use crate::tests::sample;
    use proptest::prelude::*;

    fn entry() -> EntryRef {
        EntryRef {
            epoch: 3,
            index: 1234,
            leaf_hash_b64: "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=".into(),
            source_name: "caldicott.example.nhs.uk/audit".into(),
        }
    }

    fn event_of(kind: EventKind, action: &str) -> AuditEvent {
        let mut e = sample();
        e.kind = kind;
        e.action = action.into();
        e
    }

    fn ledger_entity(r: &Value) -> &Value {
        r["entity"].as_array().unwrap().last().unwrap()
    }

    fn entity_with_role<'a>(r: &'a Value, role: &str) -> Vec<&'a Value> {
        r["entity"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["role"]["code"] == role)
            .collect()
    }

    #[test]
    fn a_read_renders_exactly_this() {
        let r = to_fhir(&sample(), &entry());
        let expected = json!({
            "resourceType": "AuditEvent",
            "id": "3-1234",
            "type": { "system": SYSTEM_AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation" },
            "subtype": [{ "system": SYSTEM_RESTFUL_INTERACTION, "code": "read", "display": "read" }],
            "action": "R",
            "recorded": "2025-11-29T07:06:40.000000Z",
            "outcome": "0",
            "outcomeDesc": "registered at the organisation",
            "purposeOfEvent": [{ "coding": [
                { "system": SYSTEM_ACT_REASON, "code": "TREAT", "display": "treatment" },
                { "system": SYSTEM_PURPOSE, "code": "direct-care" },
            ]}],
            "agent": [
                {
                    "type": { "coding": [{ "system": SYSTEM_SECURITY_ROLE_TYPE, "code": "humanuser" }] },
                    "role": [{ "coding": [{ "system": SYSTEM_ROLE, "code": "gp", "display": "GP" }] }],
                    "who": { "identifier": { "system": ID_USER, "value": "dr.jones" } },
                    "requestor": true,
                    "network": { "address": "192.0.2.7", "type": "2" },
                },
                {
                    "who": { "type": "Organization", "identifier": { "system": ID_ODS, "value": "A81001" } },
                    "requestor": false,
                },
            ],
            "source": {
                "observer": { "display": "caldicott.example.nhs.uk/audit" },
                "type": [{ "system": SYSTEM_SOURCE_TYPE, "code": "4", "display": "Application Server" }],
            },
            "entity": [
                {
                    "what": { "reference": "Observation/obs-1" },
                    "type": { "system": SYSTEM_ENTITY_TYPE, "code": "2", "display": "System Object" },
                    "role": { "system": SYSTEM_OBJECT_ROLE, "code": "4", "display": "Domain Resource" },
                },
                {
                    "what": { "type": "Patient", "identifier": { "system": ID_PATIENT_PSEUDONYM, "value": "p1" } },
                    "type": { "system": SYSTEM_ENTITY_TYPE, "code": "1", "display": "Person" },
                    "role": { "system": SYSTEM_OBJECT_ROLE, "code": "1", "display": "Patient" },
                },
                {
                    "what": { "identifier": { "system": ID_LEDGER_ENTRY, "value": "3-1234" } },
                    "type": { "system": SYSTEM_ENTITY_TYPE, "code": "2", "display": "System Object" },
                    "role": { "system": SYSTEM_OBJECT_ROLE, "code": "13", "display": "Security Resource" },
                    "detail": [
                        { "type": "ledger-epoch", "valueString": "3" },
                        { "type": "ledger-index", "valueString": "1234" },
                        { "type": "ledger-leaf-hash", "valueString": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=" },
                    ],
                },
            ],
        });
        assert_eq!(r, expected);
        // Key order is R4's element order (serde_json keeps insertion order here).
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "resourceType",
                "id",
                "type",
                "subtype",
                "action",
                "recorded",
                "outcome",
                "outcomeDesc",
                "purposeOfEvent",
                "agent",
                "source",
                "entity"
            ]
        );
        check_audit_event(&r).unwrap();
    }

    #[test]
    fn every_kind_and_access_verb_is_valid_r4() {
        let verbs = [
            "read", "search", "create", "update", "delete", "history", "export", "other",
        ];
        for kind in EventKind::ALL {
            for verb in verbs {
                for outcome in [Outcome::Permit, Outcome::Deny] {
                    for break_glass in [false, true] {
                        let mut e = event_of(*kind, verb);
                        e.outcome = outcome;
                        e.break_glass = break_glass;
                        if verb == "search" {
                            e.id = None;
                            e.query = vec!["code".into(), "date:ge".into()];
                        }
                        let r = to_fhir(&e, &entry());
                        check_audit_event(&r)
                            .unwrap_or_else(|err| panic!("{kind:?} {verb}: {err}\n{r:#}"));
                        // The requestor, recorded and the observer are always there.
                        assert_eq!(r["agent"][0]["requestor"], true);
                        assert!(r["recorded"].is_string());
                        assert!(r["source"]["observer"]["display"].is_string());
                    }
                }
            }
        }
    }

    #[test]
    fn types_subtypes_and_actions() {
        // (kind, verb, type code, subtype codes, action)
        type Case<'a> = (EventKind, &'a str, &'a str, &'a [&'a str], Option<&'a str>);
        let cases: &[Case<'_>] = &[
            (EventKind::Access, "read", "rest", &["read"], Some("R")),
            (
                EventKind::Access,
                "search",
                "rest",
                &["search-type"],
                Some("E"),
            ),
            (EventKind::Access, "create", "rest", &["create"], Some("C")),
            (EventKind::Access, "update", "rest", &["update"], Some("U")),
            (EventKind::Access, "delete", "rest", &["delete"], Some("D")),
            (
                EventKind::Access,
                "history",
                "rest",
                &["history-instance"],
                Some("R"),
            ),
            (
                EventKind::Access,
                "export",
                "rest",
                &["operation", "export"],
                Some("E"),
            ),
            (EventKind::Access, "patch-ish", "rest", &["patch-ish"], None),
            (
                EventKind::Login,
                "password",
                "110114",
                &["110122"],
                Some("E"),
            ),
            (
                EventKind::LoginFailed,
                "password",
                "110114",
                &["110122"],
                Some("E"),
            ),
            (
                EventKind::Credentials,
                "password-change",
                "credentials",
                &["password-change"],
                Some("E"),
            ),
            (EventKind::Token, "issue", "token", &["issue"], Some("E")),
            (
                EventKind::BreakGlass,
                "declare",
                "break-glass",
                &["declare"],
                Some("E"),
            ),
            (
                EventKind::Admin,
                "org-add",
                "admin",
                &["org-add"],
                Some("E"),
            ),
            (
                EventKind::AuditRead,
                "search",
                "audit-read",
                &["search"],
                Some("E"),
            ),
            (
                EventKind::AuditRead,
                "read",
                "audit-read",
                &["read"],
                Some("R"),
            ),
        ];
        for (kind, verb, ty, subs, action) in cases {
            let r = to_fhir(&event_of(*kind, verb), &entry());
            assert_eq!(r["type"]["code"], *ty, "{kind:?} {verb}");
            let got: Vec<&str> = r["subtype"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["code"].as_str().unwrap())
                .collect();
            assert_eq!(got, *subs, "{kind:?} {verb}");
            assert_eq!(r["action"].as_str(), *action, "{kind:?} {verb}");
        }
        let login = to_fhir(&event_of(EventKind::Login, "password"), &entry());
        assert_eq!(login["type"]["system"], SYSTEM_DICOM);
        assert_eq!(login["type"]["display"], "User Authentication");
        assert_eq!(login["subtype"][0]["display"], "Login");
        let export = to_fhir(&event_of(EventKind::Access, "export"), &entry());
        assert_eq!(export["subtype"][1]["system"], SYSTEM_AUDIT_ACTION);
        let admin = to_fhir(&event_of(EventKind::Admin, "org-add"), &entry());
        assert_eq!(admin["type"]["system"], SYSTEM_EVENT_KIND);
        // An invalid verb is not a code: no subtype rather than an invalid one.
        let blank = to_fhir(&event_of(EventKind::Admin, " "), &entry());
        assert!(blank.get("subtype").is_none());
        check_audit_event(&blank).unwrap();
    }

    #[test]
    fn deny_is_a_minor_failure_with_the_reason() {
        let mut e = sample();
        e.outcome = Outcome::Deny;
        e.reason = "denied: no legitimate relationship with the patient".into();
        let r = to_fhir(&e, &entry());
        assert_eq!(r["outcome"], "4");
        assert_eq!(
            r["outcomeDesc"],
            "denied: no legitimate relationship with the patient"
        );
        e.reason = String::new();
        assert!(to_fhir(&e, &entry()).get("outcomeDesc").is_none());
    }

    #[test]
    fn purposes_of_use() {
        let codes = |purpose: &str, bg: bool| -> Vec<Vec<String>> {
            let mut e = sample();
            e.purpose = purpose.into();
            e.break_glass = bg;
            let r = to_fhir(&e, &entry());
            r.get("purposeOfEvent")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            c["coding"]
                                .as_array()
                                .map(|cs| {
                                    cs.iter()
                                        .map(|c| c["code"].as_str().unwrap().to_owned())
                                        .collect()
                                })
                                .unwrap_or_else(|| vec![format!("text:{}", c["text"])])
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(codes("direct-care", false), [["TREAT", "direct-care"]]);
        assert_eq!(codes("emergency", false), [["ETREAT", "emergency"]]);
        assert_eq!(codes("research", false), [["HRESCH", "research"]]);
        assert_eq!(codes("planning", false), [["HOPERAT", "planning"]]);
        assert_eq!(codes("audit", false), [["HCOMPL", "audit"]]);
        assert_eq!(codes("training", false), [["training"]]);
        assert!(codes("", false).is_empty());
        assert_eq!(codes("a  b", false), [["text:\"a  b\""]]);
        assert_eq!(
            codes("direct-care", true),
            vec![
                vec!["TREAT".to_owned(), "direct-care".to_owned()],
                vec!["ETREAT".to_owned()],
                vec!["BTG".to_owned()]
            ]
        );
        assert_eq!(
            codes("emergency", true),
            vec![
                vec!["ETREAT".to_owned(), "emergency".to_owned()],
                vec!["BTG".to_owned()]
            ]
        );
        let mut e = sample();
        e.break_glass = true;
        let r = to_fhir(&e, &entry());
        assert_eq!(
            r["purposeOfEvent"][2]["coding"][0]["system"],
            SYSTEM_ACT_REASON
        );
        assert_eq!(
            r["purposeOfEvent"][2]["coding"][0]["display"],
            "break the glass"
        );
    }

    #[test]
    fn agents_roles_and_network() {
        let mut e = sample();
        e.role = "gp,caldicott-guardian,locum".into();
        e.client = Some("[2001:db8::1]:443".into());
        let r = to_fhir(&e, &entry());
        let roles: Vec<&Value> = r["agent"][0]["role"].as_array().unwrap().iter().collect();
        assert_eq!(roles.len(), 3);
        assert_eq!(roles[1]["coding"][0]["display"], "Caldicott guardian");
        assert!(roles[2]["coding"][0].get("display").is_none());
        assert_eq!(
            r["agent"][0]["network"],
            json!({ "address": "2001:db8::1", "type": "2" })
        );
        e.client = Some("clinic-7.local".into());
        let r = to_fhir(&e, &entry());
        assert_eq!(
            r["agent"][0]["network"],
            json!({ "address": "clinic-7.local" })
        );
        e.client = None;
        e.role = "system".into();
        let r = to_fhir(&e, &entry());
        assert!(r["agent"][0].get("network").is_none());
        assert!(r["agent"][0].get("type").is_none());
        // A failed sign-in by nobody known: no `who`, still a valid requestor.
        e.user = String::new();
        e.org = String::new();
        e.role = String::new();
        e.kind = EventKind::LoginFailed;
        let r = to_fhir(&e, &entry());
        assert_eq!(r["agent"].as_array().unwrap().len(), 1);
        assert!(r["agent"][0].get("who").is_none());
        check_audit_event(&r).unwrap();
    }

    #[test]
    fn searches_carry_parameter_names_only() {
        let mut e = sample();
        e.action = "search".into();
        e.id = None;
        e.query = vec!["code".into(), "date:ge".into(), "patient".into()];
        let r = to_fhir(&e, &entry());
        let q = entity_with_role(&r, "24");
        assert_eq!(q.len(), 1);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(q[0]["query"].as_str().unwrap())
            .unwrap();
        assert_eq!(decoded, b"code&date:ge&patient");
        assert_eq!(q[0]["what"], json!({ "type": "Observation" }));
        // The searched type is not also a resource entity.
        assert!(entity_with_role(&r, "4").is_empty());
        // A search with no parameters: the query entity, without an (empty) query.
        e.query.clear();
        let r = to_fhir(&e, &entry());
        assert!(entity_with_role(&r, "24")[0].get("query").is_none());
        check_audit_event(&r).unwrap();
    }

    #[test]
    fn patients_are_pseudonyms_deduplicated() {
        let mut e = sample();
        e.patients = vec!["p1".into(), "p2".into(), "p1".into(), String::new()];
        let r = to_fhir(&e, &entry());
        let ps: Vec<&str> = entity_with_role(&r, "1")
            .iter()
            .map(|p| p["what"]["identifier"]["value"].as_str().unwrap())
            .collect();
        assert_eq!(ps, ["p1", "p2"]);
    }

    #[test]
    fn odd_references_become_display() {
        let mut e = sample();
        e.rtype = Some("Observation".into());
        e.id = Some("has space".into());
        let r = to_fhir(&e, &entry());
        assert_eq!(
            entity_with_role(&r, "4")[0]["what"],
            json!({ "display": "Observation/has space" })
        );
        e.rtype = None;
        e.id = Some("x1".into());
        let r = to_fhir(&e, &entry());
        assert_eq!(
            entity_with_role(&r, "4")[0]["what"],
            json!({ "display": "x1" })
        );
        e.rtype = Some("#evil".into());
        e.id = None;
        let r = to_fhir(&e, &entry());
        assert_eq!(
            entity_with_role(&r, "4")[0]["what"],
            json!({ "display": "#evil" })
        );
        e.rtype = None;
        let r = to_fhir(&e, &entry());
        assert!(entity_with_role(&r, "4").is_empty());
        check_audit_event(&r).unwrap();
    }

    #[test]
    fn ledger_position_and_proof() {
        let r = to_fhir(&sample(), &entry());
        assert_eq!(ledger_entity(&r)["detail"].as_array().unwrap().len(), 3);
        let proof = vec!["aGFzaDE=".to_owned(), "aGFzaDI=".to_owned()];
        let extras = Extras {
            org_name: Some("The <Surgery>"),
            proof: Some(Proof {
                hashes_b64: &proof,
                tree_size: 99,
            }),
        };
        let r = render(&sample(), &entry(), &extras);
        let details = ledger_entity(&r)["detail"].as_array().unwrap();
        assert_eq!(
            details[3],
            json!({ "type": "ledger-tree-size", "valueString": "99" })
        );
        assert_eq!(
            details[4],
            json!({ "type": "ledger-inclusion-proof", "valueString": "aGFzaDE=,aGFzaDI=" })
        );
        assert_eq!(r["agent"][1]["who"]["display"], "The <Surgery>");
        check_audit_event(&r).unwrap();
        // An empty proof (a one-leaf tree) has no proof detail; an empty hash no hash detail.
        let mut en = entry();
        en.leaf_hash_b64 = String::new();
        let r = render(
            &sample(),
            &en,
            &Extras {
                org_name: None,
                proof: Some(Proof {
                    hashes_b64: &[],
                    tree_size: 1,
                }),
            },
        );
        let types: Vec<&str> = ledger_entity(&r)["detail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["ledger-epoch", "ledger-index", "ledger-tree-size"]);
        en.source_name = String::new();
        assert_eq!(
            to_fhir(&sample(), &en)["source"]["observer"]["display"],
            "Caldicott"
        );
    }

    #[test]
    fn instants() {
        assert_eq!(instant(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(instant(1), "1970-01-01T00:00:00.000001Z");
        assert_eq!(instant(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            instant(1_764_400_000_123_456),
            "2025-11-29T07:06:40.123456Z"
        );
        assert_eq!(instant(i64::MIN), "0001-01-01T00:00:00.000000Z");
        assert_eq!(instant(i64::MAX), "9999-12-31T23:59:59.999999Z");
        assert!(is_instant(&instant(i64::MIN)));
    }

    #[test]
    fn control_characters_are_replaced() {
        let mut e = sample();
        e.reason = "bad\u{0}reason\u{1b}[31m".into();
        e.user = "a\u{7}b".into();
        let r = to_fhir(&e, &entry());
        assert_eq!(r["outcomeDesc"], "bad\u{FFFD}reason\u{FFFD}[31m");
        assert_eq!(r["agent"][0]["who"]["identifier"]["value"], "a\u{FFFD}b");
        check_audit_event(&r).unwrap();
    }

    fn any_event() -> impl Strategy<Value = AuditEvent> {
        let text = "\\PC{0,12}|[\\x00-\\x1f a-z]{0,6}";
        (
            (
                any::<i64>(),
                proptest::sample::select(EventKind::ALL),
                prop_oneof![
                    Just("read".to_owned()),
                    Just("search".to_owned()),
                    Just("export".to_owned()),
                    Just("history".to_owned()),
                    text.prop_map(String::from),
                ],
                text,
                text,
                prop_oneof![
                    Just("gp,registered-nurse".to_owned()),
                    Just("system".to_owned()),
                    text.prop_map(String::from)
                ],
                prop_oneof![
                    Just("direct-care".to_owned()),
                    Just("emergency".to_owned()),
                    text.prop_map(String::from)
                ],
            ),
            (
                proptest::option::of(prop_oneof![
                    Just("Observation".to_owned()),
                    text.prop_map(String::from)
                ]),
                proptest::option::of(text),
                proptest::collection::vec(text, 0..3),
                proptest::collection::vec(text, 0..3),
                proptest::option::of(prop_oneof![
                    Just("10.0.0.1".to_owned()),
                    Just("[::1]:80".to_owned()),
                    text.prop_map(String::from)
                ]),
                any::<bool>(),
                text,
                any::<bool>(),
            ),
        )
            .prop_map(
                |(
                    (at_us, kind, action, user, org, role, purpose),
                    (rtype, id, patients, query, client, permit, reason, break_glass),
                )| AuditEvent {
                    at_us,
                    kind,
                    action,
                    user,
                    org,
                    role,
                    purpose,
                    rtype,
                    id,
                    patients,
                    query,
                    client,
                    user_agent: None,
                    outcome: if permit {
                        Outcome::Permit
                    } else {
                        Outcome::Deny
                    },
                    reason,
                    break_glass,
                },
            )
    }

    proptest! {
        #[test]
        fn every_event_renders_valid_r4(
            e in any_event(),
            epoch in any::<u32>(),
            index in any::<u64>(),
            hash in "\\PC{0,8}",
            source in "\\PC{0,8}",
        ) {
            let en = EntryRef { epoch, index, leaf_hash_b64: hash, source_name: source };
            let r = to_fhir(&e, &en);
            prop_assert!(check_audit_event(&r).is_ok(), "{:?}\n{:#}", check_audit_event(&r), r);
            prop_assert_eq!(r["id"].as_str().unwrap(), format!("{epoch}-{index}"));
        }
    }
}
