//! Reading the audit trail: the `/ledger` transparency endpoints over the vault's ledger
//! ([`StoredLedger`], every epoch: the sealed ones' seals, and their entries and proofs
//! while stored), read-only FHIR `AuditEvent`s, and the patient access report.
//!
//! Who may read what: checkpoints and proofs are public (they reveal sizes and hashes
//! only); leaf contents, `AuditEvent`s and access reports only to a Caldicott guardian or
//! a system administrator, and every such read is itself an audit event
//! ([`EventKind::AuditRead`]).

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use caldicott_access::{Authenticated, Directory};
use caldicott_audit::fhir::{self, EntryRef};
use caldicott_audit::query::{AuditQuery, ParseError};
use caldicott_audit::report::{self, ReportEntry, ReportHeader};
use caldicott_ledger::Hash;
use caldicott_policy::Role;
use caldicott_vault::{Ledger, LedgerError};
use serde_json::{Value, json};

use crate::audit::{AuditEvent, AuditSink, EventKind, Origin, Outcome, security_event};
use crate::error::{ApiError, IssueType};
use crate::guard::Guard;
use crate::http::FhirApi;
use crate::ledger::{Epochs, LedgerHttpError, LedgerView, SealedEpoch};
use crate::response;

/// Whether a signed-in user may read the audit trail.
pub fn may_read_audit(auth: &Authenticated) -> bool {
    matches!(auth.role, Role::CaldicottGuardian | Role::Sysadmin)
}

/// The vault's ledger behind the `/ledger` endpoints (the current epoch, and with `epoch=`
/// the sealed ones).
pub struct StoredLedger {
    pub ledger: Arc<Ledger>,
    pub directory: Arc<Directory>,
    pub audit: Arc<dyn AuditSink>,
}

fn unavailable(e: LedgerError) -> LedgerHttpError {
    match e {
        LedgerError::Range(m) => LedgerHttpError::BadRequest(m),
        other => LedgerHttpError::Unavailable(other.to_string()),
    }
}

impl StoredLedger {
    fn epoch(&self) -> Result<u32, LedgerHttpError> {
        Ok(self.ledger.head().map_err(unavailable)?.epoch)
    }
}

impl LedgerView for StoredLedger {
    fn checkpoint(&self) -> Result<String, LedgerHttpError> {
        // The latest published checkpoint; publishing one now if none exists yet.
        match self.ledger.latest_checkpoint().map_err(unavailable)? {
            Some((_, note)) => Ok(note),
            None => self
                .ledger
                .publish()
                .map_err(unavailable)?
                .map(|(_, n)| n)
                .ok_or_else(|| LedgerHttpError::Unavailable("no checkpoint".into())),
        }
    }

    fn size(&self) -> Result<u64, LedgerHttpError> {
        Ok(self.ledger.head().map_err(unavailable)?.size)
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LedgerHttpError> {
        let epoch = self.epoch()?;
        let leaves = self.ledger.leaves(epoch, start, end).map_err(unavailable)?;
        if leaves.len() as u64 != end - start {
            return Err(LedgerHttpError::Unavailable(format!(
                "entries [{start}, {end}) are not all stored"
            )));
        }
        Ok(leaves.into_iter().map(|l| l.data).collect())
    }

    fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerHttpError> {
        let epoch = self.epoch()?;
        self.ledger
            .inclusion(epoch, index, size)
            .map_err(unavailable)
    }

    fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, LedgerHttpError> {
        let epoch = self.epoch()?;
        if from == to {
            return Ok(Vec::new());
        }
        self.ledger
            .consistency(epoch, from, to)
            .map_err(unavailable)
    }

    fn authorize_entries(&self, headers: &HeaderMap) -> Result<(), LedgerHttpError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                LedgerHttpError::Unauthorized("a bearer token is needed to read entries".into())
            })?;
        let now = caldicott_vault::now_micros();
        let auth = self
            .directory
            .authenticate(token, now)
            .map_err(|e| match e {
                caldicott_access::AuthError::Unavailable => {
                    LedgerHttpError::Unavailable("the directory cannot be read".into())
                }
                other => LedgerHttpError::Unauthorized(other.to_string()),
            })?;
        let permitted = may_read_audit(&auth);
        let event = security_event(
            EventKind::AuditRead,
            "ledger-entries",
            &auth.user.name,
            &auth.user.org,
            auth.role.name(),
            &Origin::new(None, headers),
            if permitted {
                Outcome::Permit
            } else {
                Outcome::Deny
            },
            if permitted {
                "audit reader"
            } else {
                "only a Caldicott guardian or system administrator reads the audit trail"
            },
            now,
        );
        self.audit
            .record(vec![event])
            .map_err(|e| LedgerHttpError::Unavailable(e.to_string()))?;
        if permitted {
            Ok(())
        } else {
            Err(LedgerHttpError::Forbidden(
                "only a Caldicott guardian or system administrator reads the audit trail".into(),
            ))
        }
    }

    fn epochs(&self) -> Result<Epochs, LedgerHttpError> {
        let rows = self.ledger.epochs().map_err(unavailable)?;
        let current = rows
            .last()
            .map(|e| u64::from(e.epoch))
            .ok_or_else(|| LedgerHttpError::Unavailable("the ledger has no epoch".into()))?;
        let mut sealed = Vec::new();
        for e in &rows {
            let Some(seal) = &e.sealed_note else { continue };
            sealed.push(SealedEpoch {
                epoch: u64::from(e.epoch),
                seal: seal.clone(),
                stored: self.stored(e.epoch, e.size)?,
            });
        }
        Ok(Epochs { current, sealed })
    }

    fn link_entry(&self, epoch: u64) -> Result<Option<Vec<u8>>, LedgerHttpError> {
        let epoch = epoch_number(epoch)?;
        let Some(row) = self
            .ledger
            .epochs()
            .map_err(unavailable)?
            .into_iter()
            .find(|e| e.epoch == epoch)
        else {
            return Ok(None);
        };
        if row.size == 0 {
            return Ok(None);
        }
        let first = self.ledger.leaves(epoch, 0, 1).map_err(unavailable)?;
        // Only the record of the seal is public; any other first entry stays private.
        Ok(first.into_iter().next().map(|l| l.data).filter(|data| {
            caldicott_audit::AuditEvent::from_leaf(data)
                .is_ok_and(|ev| ev.kind == EventKind::Admin && ev.action == LEDGER_SEAL_ACTION)
        }))
    }

    fn epoch_entries(
        &self,
        epoch: u64,
        start: u64,
        end: u64,
    ) -> Result<Vec<Vec<u8>>, LedgerHttpError> {
        let n = epoch_number(epoch)?;
        let leaves = self.ledger.leaves(n, start, end).map_err(unavailable)?;
        if leaves.len() as u64 != end - start {
            let message = format!("entries [{start}, {end}) of epoch {epoch} are not all stored");
            return Err(if n < self.epoch()? {
                LedgerHttpError::Gone(message)
            } else {
                LedgerHttpError::Unavailable(message)
            });
        }
        Ok(leaves.into_iter().map(|l| l.data).collect())
    }

    fn epoch_inclusion(
        &self,
        epoch: u64,
        index: u64,
        size: u64,
    ) -> Result<Vec<Hash>, LedgerHttpError> {
        self.ledger
            .inclusion(epoch_number(epoch)?, index, size)
            .map_err(unavailable)
    }

    fn epoch_consistency(
        &self,
        epoch: u64,
        from: u64,
        to: u64,
    ) -> Result<Vec<Hash>, LedgerHttpError> {
        if from == to {
            return Ok(Vec::new());
        }
        self.ledger
            .consistency(epoch_number(epoch)?, from, to)
            .map_err(unavailable)
    }
}

/// The action of the event that records a seal as the next epoch's first entry
/// (`caldicott ledger seal`).
pub const LEDGER_SEAL_ACTION: &str = "ledger-seal";

/// An epoch number as the vault stores it.
fn epoch_number(epoch: u64) -> Result<u32, LedgerHttpError> {
    u32::try_from(epoch)
        .map_err(|_| LedgerHttpError::NotFound(format!("epoch {epoch} does not exist")))
}

impl StoredLedger {
    /// Whether a sealed epoch's entries are still stored: its first and last leaves are
    /// (archiving or deleting removes an epoch's rows as a whole).
    fn stored(&self, epoch: u32, size: u64) -> Result<bool, LedgerHttpError> {
        if size == 0 {
            return Ok(true);
        }
        let first = self.ledger.leaves(epoch, 0, 1).map_err(unavailable)?;
        let last = self
            .ledger
            .leaves(epoch, size - 1, size)
            .map_err(unavailable)?;
        Ok(first.len() == 1 && last.len() == 1)
    }
}

/// The audit pseudonym of a patient reference (`Patient/{id}`), as the guard records it.
pub fn patient_pseudonym(store: &crate::Store, patient_ref: &str) -> Result<String, ApiError> {
    Ok(store.vault().dir_keyed_hash("audit-patient", patient_ref)?)
}

fn ledger_error(e: LedgerError) -> ApiError {
    match e {
        LedgerError::Range(m) => ApiError::bad_request(m),
        other => {
            tracing::error!(error = %other, "audit ledger unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                IssueType::Exception,
                "the audit trail cannot be read; try again later",
            )
        }
    }
}

/// Every recorded access to one patient ("who looked at my record"), newest first, each
/// with its inclusion proof against the checkpoint in the header (published now, so it
/// covers everything recorded so far). At most `limit` entries.
///
/// # Errors
/// When the ledger or the directory cannot be read.
pub fn patient_report(
    store: &crate::Store,
    ledger: &Ledger,
    directory: &Directory,
    patient_ref: &str,
    patient_display: String,
    limit: usize,
) -> Result<(ReportHeader, Vec<ReportEntry>), ApiError> {
    let pseudonym = patient_pseudonym(store, patient_ref)?;
    let (size, checkpoint) = ledger
        .publish()
        .map_err(ledger_error)?
        .ok_or_else(|| ApiError::internal("the audit ledger has no checkpoint"))?;
    let head = ledger.head().map_err(ledger_error)?;
    let epochs = ledger.epochs().map_err(ledger_error)?;
    let mut entries = Vec::new();
    for (epoch, idx) in ledger
        .find(&format!("p:{pseudonym}"), None, limit)
        .map_err(ledger_error)?
    {
        // The tree each entry is proven in: the current checkpoint, or the seal of an
        // earlier epoch.
        let tree_size = if epoch == head.epoch {
            size
        } else {
            match epochs.iter().find(|e| e.epoch == epoch) {
                Some(e) if e.sealed_note.is_some() => e.size,
                _ => continue,
            }
        };
        if idx >= tree_size {
            continue; // recorded after the checkpoint was signed: in the next report
        }
        let leaf = ledger.leaves(epoch, idx, idx + 1).map_err(ledger_error)?;
        let Some(leaf) = leaf.into_iter().next() else {
            continue;
        };
        let event = AuditEvent::from_leaf(&leaf.data)
            .map_err(|e| ApiError::internal(format!("audit entry {epoch}-{idx}: {e}")))?;
        if !event.patients.contains(&pseudonym) {
            continue; // another key with the same 64-bit lookup hash
        }
        let proof = ledger
            .inclusion(epoch, idx, tree_size)
            .map_err(ledger_error)?;
        entries.push(ReportEntry {
            epoch,
            index: idx,
            event,
            leaf_hash_b64: caldicott_ledger::leaf_hash(&leaf.data).to_base64(),
            inclusion_proof_b64: proof.iter().map(Hash::to_base64).collect(),
            tree_size,
        });
    }
    let organisation_names = directory
        .orgs()
        .map_err(|_| ApiError::internal("the directory cannot be read"))?
        .into_iter()
        .map(|o| (o.ods, o.name))
        .collect();
    Ok((
        ReportHeader {
            patient_display,
            generated_at_us: caldicott_vault::now_micros(),
            checkpoint_text: checkpoint,
            verifier_key: ledger.verifier_key().to_string(),
            organisation_names,
        },
        entries,
    ))
}

/// Refuses a caller who may not read the audit trail (403), recording the refusal.
fn require_audit_reader(guard: &Guard, action: &str) -> Result<(), ApiError> {
    let auth = &guard.caller().auth;
    if may_read_audit(auth) {
        guard.note_audit_read(action, Vec::new(), Outcome::Permit, "audit reader");
        Ok(())
    } else {
        let why = "only a Caldicott guardian or system administrator reads the audit trail";
        guard.note_audit_read(action, Vec::new(), Outcome::Deny, why);
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            IssueType::Security,
            why,
        ))
    }
}

/// `GET [base]/Patient/{id}/$access-report`: the patient access report as a FHIR Bundle,
/// or as an HTML page when the client asks for `text/html` (or `_format=html`).
pub fn access_report(
    api: &FhirApi,
    guard: &Guard,
    id: &str,
    want_html: bool,
) -> Result<Response, ApiError> {
    let ledger = api.ledger.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            IssueType::NotSupported,
            "this server keeps no audit ledger",
        )
    })?;
    require_audit_reader(guard, "access-report")?;
    let patient_ref = format!("Patient/{id}");
    let pseudonym = patient_pseudonym(&api.store, &patient_ref)?;
    guard.note_audit_read(
        "access-report",
        vec![pseudonym],
        Outcome::Permit,
        "patient access report",
    );
    let (header, entries) = patient_report(
        &api.store,
        ledger,
        &api.directory,
        &patient_ref,
        patient_ref.clone(),
        10_000,
    )?;
    if want_html {
        let mut r = Response::new(axum::body::Body::from(report::to_html(&header, &entries)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(r);
    }
    Ok(response::value(
        StatusCode::OK,
        &report::to_bundle(&header, &entries),
    ))
}

/// Most events one `AuditEvent` search answers.
const MAX_COUNT: usize = 1000;
/// Most leaves a search without a patient or agent reads back from the end of the log.
const MAX_SCAN: u64 = 200_000;

/// `GET [base]/AuditEvent?…` and `GET [base]/AuditEvent/{epoch}-{index}`: the ledger's
/// events as read-only FHIR `AuditEvent`s (IHE BALP), for audit readers.
pub fn audit_events(
    api: &FhirApi,
    guard: &Guard,
    method: &axum::http::Method,
    rest: &[&str],
    query: Option<&str>,
    base: &str,
) -> Result<Response, ApiError> {
    if method != axum::http::Method::GET {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            IssueType::NotSupported,
            "AuditEvents are read-only: the audit ledger is never edited",
        ));
    }
    let ledger = api.ledger.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            IssueType::NotSupported,
            "this server keeps no audit ledger",
        )
    })?;
    let source = ledger.origin().to_owned();
    let render = |epoch: u32, idx: u64, data: &[u8]| -> Result<Value, ApiError> {
        let event = AuditEvent::from_leaf(data)
            .map_err(|e| ApiError::internal(format!("audit entry {epoch}-{idx}: {e}")))?;
        Ok(fhir::to_fhir(
            &event,
            &EntryRef {
                epoch,
                index: idx,
                leaf_hash_b64: caldicott_ledger::leaf_hash(data).to_base64(),
                source_name: source.clone(),
            },
        ))
    };
    match rest {
        [id] => {
            require_audit_reader(guard, "read AuditEvent")?;
            let not_found = || ApiError::not_found(format!("AuditEvent/{id} is not known"));
            let (epoch, idx) = id
                .split_once('-')
                .and_then(|(e, i)| Some((e.parse::<u32>().ok()?, i.parse::<u64>().ok()?)))
                .ok_or_else(not_found)?;
            let leaf = ledger
                .leaves(epoch, idx, idx + 1)
                .map_err(|_| not_found())?
                .into_iter()
                .next()
                .ok_or_else(not_found)?;
            Ok(response::value(
                StatusCode::OK,
                &render(epoch, idx, &leaf.data)?,
            ))
        }
        [] => {
            require_audit_reader(guard, "search AuditEvent")?;
            let mut params: Vec<(String, String)> =
                form_urlencoded::parse(query.unwrap_or("").as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
            // Paging: `_before={epoch}-{index}` continues after the last entry shown.
            let before = match params.iter().position(|(k, _)| k == "_before") {
                Some(i) => {
                    let (_, v) = params.remove(i);
                    Some(
                        v.split_once('-')
                            .and_then(|(e, i)| {
                                Some((e.parse::<u32>().ok()?, i.parse::<u64>().ok()?))
                            })
                            .ok_or_else(|| ApiError::bad_request("invalid value for `_before`"))?,
                    )
                }
                None => None,
            };
            let q = AuditQuery::parse(&params, |id: &str| {
                patient_pseudonym(&api.store, &format!("Patient/{id}")).map(Some)
            })
            .map_err(|e| match e {
                ParseError::Query(q) => ApiError::bad_request(q.to_string()),
                ParseError::Resolve(e) => e,
            })?;
            if let Some(ps) = &q.patients {
                guard.note_audit_read(
                    "search AuditEvent",
                    ps.clone(),
                    Outcome::Permit,
                    "audit search by patient",
                );
            }
            let count = q.count.map_or(50, |c| c as usize).min(MAX_COUNT);
            let found = search_events(ledger, &q, before, count)?;
            let mut bundle = json!({
                "resourceType": "Bundle",
                "type": "searchset",
                "link": [{"relation": "self", "url": format!("{base}/AuditEvent{}", query.map(|q| format!("?{q}")).unwrap_or_default())}],
                "entry": [],
            });
            if found.len() == count
                && let Some((e, i, _)) = found.last()
            {
                let mut next: Vec<(String, String)> = params.clone();
                next.push(("_before".into(), format!("{e}-{i}")));
                let qs = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(next)
                    .finish();
                if let Some(links) = bundle["link"].as_array_mut() {
                    links.push(
                        json!({"relation": "next", "url": format!("{base}/AuditEvent?{qs}")}),
                    );
                }
            }
            let mut entries = Vec::with_capacity(found.len());
            for (epoch, idx, data) in &found {
                let resource = render(*epoch, *idx, data)?;
                entries.push(json!({
                    "fullUrl": format!("{base}/AuditEvent/{epoch}-{idx}"),
                    "resource": resource,
                    "search": {"mode": "match"},
                }));
            }
            bundle["entry"] = Value::Array(entries);
            Ok(response::value(StatusCode::OK, &bundle))
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            IssueType::NotSupported,
            "AuditEvents are read-only",
        )),
    }
}

/// Events matching a query, newest first, after `before`: from the patient or agent index
/// when the query names one, else by reading back from the end of the log.
fn search_events(
    ledger: &Ledger,
    q: &AuditQuery,
    before: Option<(u32, u64)>,
    count: usize,
) -> Result<Vec<(u32, u64, Vec<u8>)>, ApiError> {
    let mut out = Vec::new();
    let keys: Option<Vec<String>> = match (&q.patients, &q.agents) {
        (Some(ps), _) => Some(ps.iter().map(|p| format!("p:{p}")).collect()),
        (None, Some(us)) => Some(us.iter().map(|u| format!("u:{u}")).collect()),
        (None, None) => None,
    };
    let mut consider = |epoch: u32, idx: u64, data: Vec<u8>| -> bool {
        if let Ok(e) = AuditEvent::from_leaf(&data)
            && q.matches(&e)
        {
            out.push((epoch, idx, data));
        }
        out.len() >= count
    };
    match keys {
        Some(keys) => {
            let mut positions = Vec::new();
            for k in keys {
                positions.extend(
                    ledger
                        .find(&k, before, count * 4 + 100)
                        .map_err(ledger_error)?,
                );
            }
            positions.sort_unstable_by(|a, b| b.cmp(a));
            positions.dedup();
            for (epoch, idx) in positions {
                let Some(leaf) = ledger
                    .leaves(epoch, idx, idx + 1)
                    .map_err(ledger_error)?
                    .into_iter()
                    .next()
                else {
                    continue;
                };
                if consider(epoch, idx, leaf.data) {
                    break;
                }
            }
        }
        None => {
            let head = ledger.head().map_err(ledger_error)?;
            let (epoch, mut end) = match before {
                Some((e, i)) if e == head.epoch => (e, i.min(head.size)),
                Some((e, i)) => (e, i),
                None => (head.epoch, head.size),
            };
            let floor = end.saturating_sub(MAX_SCAN);
            'scan: while end > floor {
                let start = end.saturating_sub(1000).max(floor);
                let leaves = ledger.leaves(epoch, start, end).map_err(ledger_error)?;
                for leaf in leaves.into_iter().rev() {
                    if consider(epoch, leaf.idx, leaf.data) {
                        break 'scan;
                    }
                }
                end = start;
            }
        }
    }
    if q.sort == Some(caldicott_audit::query::SortOrder::OldestFirst) {
        out.reverse();
    }
    Ok(out)
}
