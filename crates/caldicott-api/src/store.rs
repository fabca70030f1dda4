//! The FHIR service without HTTP: reads, versioned writes, history, and the rules that
//! turn a client's resource into a stored record (validation, server-assigned id and
//! `meta`, the owning organisation, the search index terms).
//!
//! Every method is synchronous (the vault is) and is called by the HTTP layer on the
//! blocking pool. Errors are [`ApiError`]s: the status and `OperationOutcome` to answer with.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use caldicott_core::{OdsCode, ResourceId, ResourceType, VersionId};
use caldicott_fhir::search::{extract, terms};
use caldicott_vault::{Expect, IndexTerm, Record, Vault, Write, now_micros};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, Issue, IssueType};
use crate::guard::Guard;
use caldicott_policy::Action;

/// Names what resources are indexed by: the search parameters' extraction and the term
/// scheme of `caldicott_fhir::search::terms`. Change it whenever either changes what terms
/// a resource gets; a database indexed under another scheme is re-indexed at start.
pub const INDEX_SCHEME: &str = "caldicott-fhir-terms-2";

/// Resource types clients may read but never write through the API.
pub const READ_ONLY_TYPES: &[&str] = &["AuditEvent"];

/// How often an update without `If-Match` is retried after losing a race (then 409). Nothing
/// makes the races fair, so a writer on a busy record can lose many in a row: 64 tries with
/// the backoff below wait at most about 1.6 s in all (24 were not enough for six writers on
/// one record on a loaded 2-core machine running PostgreSQL).
const WRITE_RETRIES: u32 = 64;

/// Entries kept in the id → organisation cache before it is emptied and refilled. A
/// `(type, id)` never moves between organisations, so cached entries never go stale.
const LOCATION_CACHE_MAX: usize = 1 << 20;

/// The outcome of a create or update.
#[derive(Debug)]
pub struct Written {
    pub record: Record,
    /// `true` when a new resource was made (201), `false` for an update or when a
    /// conditional create found an existing match (200).
    pub created: bool,
}

/// A resource ready to be written: its final bytes, where it goes and what it is indexed by.
pub struct Prepared {
    pub write: Write,
    pub version: VersionId,
}

/// The FHIR store over one vault.
pub struct Store {
    vault: Arc<Vault>,
    default_org: OdsCode,
    located: RwLock<HashMap<(String, String), OdsCode>>,
    facts: FactsCache,
}

/// What the access policy knew about a patient, relative to one kind of caller
/// (organisation and practitioner), shared between requests for [`FACTS_TTL_US`] and
/// forgotten at once when this process writes anything the facts come from (a Patient, a
/// CareTeam, an EpisodeOfCare or a Consent). Other processes' writes are seen within the
/// lifetime.
#[derive(Default)]
pub struct FactsCache {
    generation: std::sync::atomic::AtomicU64,
    entries: std::sync::Mutex<HashMap<FactsKey, (caldicott_policy::PatientFacts, i64, u64)>>,
}

/// (caller's organisation, caller's practitioner, patient reference).
type FactsKey = (String, Option<String>, String);

/// How long shared patient facts are trusted: 5 s.
pub const FACTS_TTL_US: i64 = 5_000_000;
const FACTS_CACHE_MAX: usize = 100_000;

/// Resource types whose writes change what the access policy knows about patients.
const FACT_TYPES: &[&str] = &["Patient", "CareTeam", "EpisodeOfCare", "Consent"];

impl FactsCache {
    pub fn get(&self, key: &FactsKey, now_us: i64) -> Option<caldicott_policy::PatientFacts> {
        let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
        let m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key)
            .filter(|(_, at, g)| *g == generation && now_us - at < FACTS_TTL_US)
            .map(|(f, _, _)| f.clone())
    }

    /// The current generation: read it before gathering facts, and give it to
    /// [`FactsCache::put`], so that facts gathered across a write are never kept.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn put(
        &self,
        key: FactsKey,
        facts: caldicott_policy::PatientFacts,
        now_us: i64,
        generation: u64,
    ) {
        let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= FACTS_CACHE_MAX {
            m.clear();
        }
        m.insert(key, (facts, now_us, generation));
    }

    /// Forgets everything if a write of `rtype` may have changed the facts.
    pub fn written(&self, rtype: &str) {
        if FACT_TYPES.contains(&rtype) {
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

impl Store {
    /// `default_org` holds what no rule places elsewhere (a resource with no patient and
    /// no organisation of its own).
    pub fn new(vault: Arc<Vault>, default_org: OdsCode) -> Self {
        Store {
            vault,
            default_org,
            located: RwLock::new(HashMap::new()),
            facts: FactsCache::default(),
        }
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// The patient facts shared between requests.
    pub fn facts(&self) -> &FactsCache {
        &self.facts
    }

    pub fn default_org(&self) -> &OdsCode {
        &self.default_org
    }

    /// Every organisation the deployment holds data for (searches run over each).
    pub fn organisations(&self) -> Vec<OdsCode> {
        self.vault
            .organisations()
            .iter()
            .filter_map(|o| OdsCode::parse(o).ok())
            .collect()
    }

    /// The organisation holding `rtype/id`, if any.
    pub fn locate(
        &self,
        rtype: &ResourceType,
        id: &ResourceId,
    ) -> Result<Option<OdsCode>, ApiError> {
        let key = (rtype.as_str().to_owned(), id.as_str().to_owned());
        if let Some(o) = self
            .located
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(Some(o.clone()));
        }
        let found = self.vault.locate(rtype, id)?;
        if let Some(o) = &found {
            self.remember(key, o.clone());
        }
        Ok(found)
    }

    fn remember(&self, key: (String, String), org: OdsCode) {
        let mut m = self.located.write().unwrap_or_else(|p| p.into_inner());
        if m.len() >= LOCATION_CACHE_MAX {
            m.clear();
        }
        m.insert(key, org);
    }

    /// The current version of a record, tombstones included.
    pub fn current(
        &self,
        rtype: &ResourceType,
        id: &ResourceId,
    ) -> Result<Option<Record>, ApiError> {
        let Some(org) = self.locate(rtype, id)? else {
            return Ok(None);
        };
        Ok(self.vault.get(&org, rtype, id)?)
    }

    /// `read`: the current version; 404 if it never existed, 410 if deleted.
    pub fn read(
        &self,
        rtype: &ResourceType,
        id: &ResourceId,
        guard: &Guard,
    ) -> Result<Record, ApiError> {
        let not_found = || ApiError::not_found(format!("{rtype}/{id} is not known"));
        match self.current(rtype, id)? {
            None => Err(not_found()),
            Some(r) if !guard.permits_record(Action::Read, &r)? => Err(not_found()),
            Some(r) if r.deleted => Err(ApiError::gone(format!(
                "{rtype}/{id} was deleted (version {})",
                r.version
            ))),
            Some(r) => Ok(r),
        }
    }

    /// `vread`: one version; 404 if there is no such version, 410 if it is a deletion.
    pub fn vread(
        &self,
        rtype: &ResourceType,
        id: &ResourceId,
        version: VersionId,
        guard: &Guard,
    ) -> Result<Record, ApiError> {
        let not_found = || ApiError::not_found(format!("{rtype}/{id} has no version {version}"));
        let Some(org) = self.locate(rtype, id)? else {
            return Err(not_found());
        };
        match self.vault.get_version(&org, rtype, id, version)? {
            None => Err(not_found()),
            Some(r) if !guard.permits_record(Action::Read, &r)? => Err(not_found()),
            Some(r) if r.deleted => Err(ApiError::gone(format!(
                "version {version} of {rtype}/{id} is its deletion"
            ))),
            Some(r) => Ok(r),
        }
    }

    /// Every version of one record, newest first; 404 if it never existed.
    pub fn instance_history(
        &self,
        rtype: &ResourceType,
        id: &ResourceId,
        guard: &Guard,
    ) -> Result<Vec<Record>, ApiError> {
        let not_found = || ApiError::not_found(format!("{rtype}/{id} is not known"));
        let Some(org) = self.locate(rtype, id)? else {
            return Err(not_found());
        };
        let mut kept = Vec::new();
        for r in self.vault.history(&org, rtype, id)? {
            if guard.permits_record(Action::History, &r)? {
                kept.push(r);
            }
        }
        if kept.is_empty() {
            return Err(not_found());
        }
        Ok(kept)
    }

    /// Versions written in `[since, before)`, of one type or all, newest first, across
    /// organisations; at most `limit`.
    pub fn changes(
        &self,
        rtype: Option<&ResourceType>,
        since: i64,
        before: i64,
        limit: usize,
        guard: &Guard,
    ) -> Result<Vec<Record>, ApiError> {
        let mut all = Vec::new();
        for org in self.organisations() {
            for r in self.vault.changes(&org, rtype, since, before, limit)? {
                if guard.permits_record(Action::History, &r)? {
                    all.push(r);
                }
            }
        }
        all.sort_by(|a, b| {
            b.written_at
                .cmp(&a.written_at)
                .then_with(|| b.rtype.as_str().cmp(a.rtype.as_str()))
                .then_with(|| b.id.as_str().cmp(a.id.as_str()))
                .then_with(|| b.version.cmp(&a.version))
        });
        all.truncate(limit);
        Ok(all)
    }

    /// `create`: a new resource with a server-assigned id (any id in the body is replaced).
    pub fn create(
        &self,
        rtype: &ResourceType,
        resource: Value,
        guard: &Guard,
    ) -> Result<Written, ApiError> {
        writable(rtype)?;
        let id = new_id();
        let at = now_micros();
        let p = self.prepare(
            rtype,
            &id,
            resource,
            VersionId::FIRST,
            at,
            None,
            &HashMap::new(),
        )?;
        guard.require_write(Action::Create, &p.write)?;
        self.commit(std::slice::from_ref(&p.write), 1, at, guard)?;
        self.facts.written(rtype.as_str());
        Ok(Written {
            record: record_of(p, at),
            created: true,
        })
    }

    /// `update` (or create with a client-chosen id). `if_match` is the version the client
    /// last saw (`If-Match: W/"3"`): a different current version is 412.
    pub fn update(
        &self,
        rtype: &ResourceType,
        id: &ResourceId,
        resource: Value,
        if_match: Option<VersionId>,
        guard: &Guard,
    ) -> Result<Written, ApiError> {
        writable(rtype)?;
        match resource.get("id").and_then(Value::as_str) {
            Some(body_id) if body_id == id.as_str() => {}
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "the resource's id does not match the id in the URL ({id})"
                ))
                .at(format!("{rtype}.id")));
            }
            None => {
                return Err(ApiError::bad_request(
                    "an update must carry the resource's id in the body",
                )
                .at(format!("{rtype}.id")));
            }
        }
        // Without If-Match the last writer wins: a write that lost a race to another is
        // prepared again over the new head. With If-Match, losing the race is a 412.
        let mut attempt = 0;
        loop {
            let head = self.current(rtype, id)?;
            let (expect, version, org) = match (&head, if_match) {
                (None, Some(_)) => {
                    return Err(ApiError::precondition(format!(
                        "If-Match was given but {rtype}/{id} does not exist"
                    )));
                }
                (None, None) => (Expect::Absent, VersionId::FIRST, None),
                (Some(h), Some(want)) if h.version != want => {
                    return Err(ApiError::precondition(format!(
                        "{rtype}/{id} is at version {}, not {want} as If-Match requires",
                        h.version
                    )));
                }
                (Some(h), _) => (
                    Expect::Version(h.version),
                    h.version.next(),
                    Some(h.org.clone()),
                ),
            };
            let at = now_micros();
            let mut p = self.prepare(
                rtype,
                id,
                resource.clone(),
                version,
                at,
                org,
                &HashMap::new(),
            )?;
            p.write.expect = expect;
            // The caller must be allowed the record as it is and as it will be.
            match &head {
                Some(h) if !h.deleted => {
                    if !guard.permits_record(Action::Read, h)? {
                        return Err(ApiError::not_found(format!("{rtype}/{id} is not known")));
                    }
                    guard.require_record(Action::Update, h)?;
                    guard.require_write(Action::Update, &p.write)?;
                }
                _ => guard.require_write(Action::Create, &p.write)?,
            }
            match self.commit(std::slice::from_ref(&p.write), 1, at, guard) {
                Ok(_) => {
                    self.facts.written(rtype.as_str());
                    let created = head.as_ref().is_none_or(|h| h.deleted);
                    return Ok(Written {
                        record: record_of(p, at),
                        created,
                    });
                }
                Err(caldicott_vault::VaultError::Conflict { .. }) if if_match.is_some() => {
                    return Err(ApiError::precondition(format!(
                        "{rtype}/{id} was changed by another request since the version If-Match names"
                    )));
                }
                Err(caldicott_vault::VaultError::Conflict { .. }) if attempt < WRITE_RETRIES => {
                    attempt += 1;
                    // Back off a little, growing, with jitter from the clock, so that
                    // writers contending for one record stop colliding.
                    let jitter = (now_micros().unsigned_abs() % 1000) as u64;
                    std::thread::sleep(std::time::Duration::from_micros(
                        (200 << attempt.min(6)) + jitter,
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// `patch` with a JSON Patch document (RFC 6902), applied to the current version and
    /// stored as an update.
    pub fn patch(
        &self,
        rtype: &ResourceType,
        id: &ResourceId,
        patch: Value,
        if_match: Option<VersionId>,
        guard: &Guard,
    ) -> Result<Written, ApiError> {
        writable(rtype)?;
        let patch: json_patch::Patch = serde_json::from_value(patch)
            .map_err(|e| ApiError::bad_request(format!("not a JSON Patch document: {e}")))?;
        let current = self.read(rtype, id, guard)?;
        if let Some(want) = if_match
            && current.version != want
        {
            return Err(ApiError::precondition(format!(
                "{rtype}/{id} is at version {}, not {want} as If-Match requires",
                current.version
            )));
        }
        let mut doc: Value = serde_json::from_slice(&current.body)
            .map_err(|_| ApiError::internal("a stored resource is not valid JSON"))?;
        json_patch::patch(&mut doc, &patch)
            .map_err(|e| ApiError::unprocessable(format!("the patch cannot be applied: {e}")))?;
        if doc.get("resourceType").and_then(Value::as_str) != Some(rtype.as_str())
            || doc.get("id").and_then(Value::as_str) != Some(id.as_str())
        {
            return Err(ApiError::unprocessable(
                "a patch may not change the resource's type or id",
            ));
        }
        self.update(rtype, id, doc, Some(current.version), guard)
    }

    /// `delete`: a tombstone version. Deleting what is already deleted changes nothing;
    /// deleting what never existed is 404.
    pub fn delete(
        &self,
        rtype: &ResourceType,
        id: &ResourceId,
        if_match: Option<VersionId>,
        guard: &Guard,
    ) -> Result<Option<VersionId>, ApiError> {
        writable(rtype)?;
        let not_found = || ApiError::not_found(format!("{rtype}/{id} is not known"));
        let Some(head) = self.current(rtype, id)? else {
            return Err(not_found());
        };
        if !guard.permits_record(Action::Read, &head)? {
            return Err(not_found());
        }
        guard.require_record(Action::Delete, &head)?;
        if let Some(want) = if_match
            && head.version != want
        {
            return Err(ApiError::precondition(format!(
                "{rtype}/{id} is at version {}, not {want} as If-Match requires",
                head.version
            )));
        }
        if head.deleted {
            return Ok(None);
        }
        let tombstone = Write {
            org: head.org.clone(),
            rtype: rtype.clone(),
            id: id.clone(),
            expect: Expect::Version(head.version),
            body: Vec::new(),
            terms: Vec::new(),
        };
        let v = self.commit(std::slice::from_ref(&tombstone), 0, now_micros(), guard)?;
        self.facts.written(rtype.as_str());
        Ok(v.first().copied())
    }

    /// Commits writes (and, from `first_delete` on, deletions) with the request's pending
    /// audit events in the same database transaction: the change and its audit entries
    /// are durable together or not at all. If the commit fails, the events go back to the
    /// request, marked as not carried out, to be recorded when it ends.
    pub(crate) fn commit(
        &self,
        writes: &[Write],
        first_delete: usize,
        at: i64,
        guard: &Guard,
    ) -> Result<Vec<VersionId>, caldicott_vault::VaultError> {
        let events = guard.take_for_write();
        let leaves: Vec<_> = events.iter().map(crate::audit::leaf_of).collect();
        match self.vault.commit_audited(writes, first_delete, at, &leaves) {
            Ok((versions, _)) => Ok(versions),
            Err(e) => {
                let why = match &e {
                    caldicott_vault::VaultError::Conflict { .. } => "a conflicting change",
                    _ => "a storage error",
                };
                guard.restore_failed(events, why);
                Err(e)
            }
        }
    }

    /// Turns a client's resource into a write: checks its type, sets `id` and `meta`
    /// (`versionId`, `lastUpdated`), validates the result, checks the UK Core identifier
    /// rules, and works out the owning organisation (`org` when the record already has
    /// one) and the index terms. `pending` maps `Type/id` of resources being written in
    /// the same transaction to their organisations.
    #[allow(clippy::too_many_arguments)]
    pub fn prepare(
        &self,
        rtype: &ResourceType,
        id: &ResourceId,
        resource: Value,
        version: VersionId,
        at: i64,
        org: Option<OdsCode>,
        pending: &HashMap<String, OdsCode>,
    ) -> Result<Prepared, ApiError> {
        let Value::Object(mut obj) = resource else {
            return Err(ApiError::bad_request("a resource must be a JSON object"));
        };
        match obj.get("resourceType").and_then(Value::as_str) {
            Some(t) if t == rtype.as_str() => {}
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "resourceType does not match the type in the URL ({rtype})"
                ))
                .at("resourceType"));
            }
            None => {
                return Err(ApiError::bad_request("resourceType is missing").at("resourceType"));
            }
        }
        obj.insert("id".into(), Value::String(id.as_str().to_owned()));
        let meta = obj
            .entry("meta")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(meta) = meta else {
            return Err(ApiError::bad_request("meta must be an object").at(format!("{rtype}.meta")));
        };
        meta.insert("versionId".into(), json!(version.to_string()));
        meta.insert("lastUpdated".into(), json!(instant(at)));
        let resource = Value::Object(obj);
        if let Err(issues) = caldicott_fhir::validate::validate_value(&resource) {
            return Err(ApiError {
                status: axum::http::StatusCode::BAD_REQUEST,
                issues: issues
                    .into_iter()
                    .take(100)
                    .map(|i| Issue {
                        code: IssueType::Structure,
                        diagnostics: i.message,
                        expression: (!i.path.is_empty()).then_some(i.path),
                    })
                    .collect(),
            });
        }
        let facts = caldicott_fhir::facts_value(&resource).map_err(|e| {
            use caldicott_fhir::FactsError as F;
            match &e {
                F::NhsNumber { element, .. } | F::OdsCode { element } => {
                    let element = element.clone();
                    ApiError::unprocessable(e.to_string()).at(element)
                }
                _ => ApiError::bad_request(e.to_string()),
            }
        })?;
        let terms = index_terms(&resource)?;
        let org = match org {
            Some(o) => o,
            None => self.owner(rtype, &resource, &facts, pending)?,
        };
        let body = serde_json::to_vec(&resource)
            .map_err(|_| ApiError::internal("cannot serialise the resource"))?;
        Ok(Prepared {
            write: Write {
                org,
                rtype: rtype.clone(),
                id: id.clone(),
                expect: if version == VersionId::FIRST {
                    Expect::Absent
                } else {
                    Expect::Version(VersionId::new(version.get() - 1).unwrap_or(VersionId::FIRST))
                },
                body,
                terms,
            },
            version,
        })
    }

    /// The organisation a new resource belongs to: an Organization to its own ODS code, a
    /// Patient to its managing organisation or GP practice, anything else to the
    /// organisation of the patient whose compartment it is in; otherwise the default.
    fn owner(
        &self,
        rtype: &ResourceType,
        resource: &Value,
        facts: &caldicott_fhir::ResourceFacts,
        pending: &HashMap<String, OdsCode>,
    ) -> Result<OdsCode, ApiError> {
        let by_ref = |reference: &str| -> Result<Option<OdsCode>, ApiError> {
            if let Some(o) = pending.get(reference) {
                return Ok(Some(o.clone()));
            }
            let Some((t, i)) = reference.split_once('/') else {
                return Ok(None);
            };
            let (Ok(t), Ok(i)) = (ResourceType::new(t), ResourceId::new(i)) else {
                return Ok(None);
            };
            self.locate(&t, &i)
        };
        let found = match rtype.as_str() {
            "Organization" => facts.own_ods.clone(),
            "Patient" => match &facts.organisation_ods {
                Some(o) => Some(o.clone()),
                None => match &facts.organisation_ref {
                    Some(r) => by_ref(r)?,
                    None => None,
                },
            },
            _ => {
                let mut found = None;
                for p in extract::patients(resource) {
                    if let Some(o) = by_ref(&p)? {
                        found = Some(o);
                        break;
                    }
                }
                found
            }
        };
        Ok(found.unwrap_or_else(|| self.default_org.clone()))
    }
}

/// The protected-index terms of a resource: the values of all its search parameters, as
/// `caldicott_fhir::search::terms` buckets them. The one definition used by every write and
/// by data-key rotation.
pub fn index_terms(resource: &Value) -> Result<Vec<IndexTerm>, ApiError> {
    let extracted = extract::extract(resource)
        .map_err(|e| ApiError::bad_request(format!("the resource cannot be indexed: {e}")))?;
    Ok(terms::index_terms(&extracted)
        .into_iter()
        .map(|(n, v)| IndexTerm::new(n, v))
        .collect())
}

/// The vault's [`caldicott_vault::Indexer`] for FHIR records: the same terms a write
/// stored, recomputed from the stored bytes (for re-hashing after a data-key rotation).
pub fn indexer(_: &ResourceType, body: &[u8]) -> Vec<IndexTerm> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| index_terms(&v).ok())
        .unwrap_or_default()
}

/// Refuses writes to read-only types.
pub fn writable(rtype: &ResourceType) -> Result<(), ApiError> {
    if READ_ONLY_TYPES.contains(&rtype.as_str()) {
        return Err(ApiError::not_supported(format!(
            "{rtype} resources are written by the server itself and are read-only here"
        )));
    }
    Ok(())
}

/// A new server-assigned id: a random UUID.
pub fn new_id() -> ResourceId {
    // 36 characters of hex digits and '-': always a valid FHIR id, whatever the input.
    ResourceId::new(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid FHIR id")
}

fn record_of(p: Prepared, at: i64) -> Record {
    Record {
        org: p.write.org,
        rtype: p.write.rtype,
        id: p.write.id,
        version: p.version,
        deleted: false,
        body: p.write.body,
        written_at: at,
    }
}

/// A FHIR `instant` for microseconds since the Unix epoch, in UTC with microseconds.
pub fn instant(micros: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// An HTTP date (`Last-Modified`) for microseconds since the epoch.
pub fn http_date(micros: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(micros.div_euclid(1_000_000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[u8::from(t.month()) as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_http_dates() {
        assert_eq!(instant(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            instant(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            http_date(1_700_000_000_123_456),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
    }

    #[test]
    fn new_ids_are_valid_and_distinct() {
        assert_ne!(new_id(), new_id());
    }
}
