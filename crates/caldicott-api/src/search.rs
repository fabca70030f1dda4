//! Running a search over encrypted records: the protected index narrows the candidates,
//! the decrypted resources are matched exactly, then sorted, paged and completed with
//! `_include`/`_revinclude`.
//!
//! The index only ever over-selects (see `caldicott_fhir::search`); every result is
//! checked against the specification's semantics after decryption, so what a search
//! returns never depends on how the index buckets values.

use std::collections::{BTreeSet, HashSet};

use caldicott_core::{OdsCode, ResourceId, ResourceType};
use caldicott_fhir::search::matching::{self, SortValue};
use caldicott_fhir::search::query::{self, Include, ParamQuery, Query};
use caldicott_fhir::search::{Extracted, SearchValue, extract, terms};
use caldicott_vault::{IndexTerm, Record};
use serde_json::Value;

use crate::error::ApiError;
use crate::guard::Guard;
use crate::store::Store;
use caldicott_policy::Action;

/// Page size when the client gives no `_count`.
pub const DEFAULT_COUNT: usize = 50;
/// Records fetched per database round trip while filtering.
const FETCH_CHUNK: usize = 500;
/// Most resources `_include`/`_revinclude` add to one page.
const MAX_INCLUDED: usize = 1000;

/// One page of results.
#[derive(Debug)]
pub struct Page {
    /// Matches in the whole result set.
    pub total: usize,
    /// This page's matches, in order.
    pub matches: Vec<Record>,
    /// Resources added by `_include` and `_revinclude`.
    pub included: Vec<Record>,
    pub offset: usize,
    pub count: usize,
    pub query: Query,
    /// The parameters the search used (as the client gave them), for paging links.
    pub raw: Vec<(String, String)>,
    /// Unknown parameters ignored (lenient handling), reported in the Bundle.
    pub ignored: Vec<String>,
}

/// A match before paging: what it sorts by and where to fetch it.
struct Hit {
    sort: Vec<SortValue>,
    org: OdsCode,
    id: ResourceId,
}

/// How a search treats parameters it does not know (R4 `Prefer: handling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Unknown parameters are ignored and reported in the Bundle (the default, as the
    /// specification recommends).
    Lenient,
    /// Unknown parameters are an error (400).
    Strict,
}

/// A search as parsed: the query, the parameters it was made from, and the codes ignored.
type Parsed = (Query, Vec<(String, String)>, Vec<String>);

/// Parses a search, dropping unknown parameters when lenient.
fn parse(
    rtype: &ResourceType,
    pairs: &[(String, String)],
    handling: Handling,
) -> Result<Parsed, ApiError> {
    let mut pairs = pairs.to_vec();
    let mut ignored = Vec::new();
    loop {
        match query::parse(rtype.as_str(), &pairs) {
            Ok(q) => return Ok((q, pairs, ignored)),
            Err(query::QueryError::UnknownParameter { code }) if handling == Handling::Lenient => {
                let before = pairs.len();
                pairs.retain(|(k, _)| k.split(':').next() != Some(code.as_str()));
                if pairs.len() == before {
                    // Not a parameter name of the URL (an unknown `_sort` key, say).
                    return Err(query::QueryError::UnknownParameter { code }.into());
                }
                ignored.push(code);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs a search of `rtype` with the URL's (decoded) parameters.
pub fn search(
    store: &Store,
    rtype: &ResourceType,
    pairs: &[(String, String)],
    handling: Handling,
    guard: &Guard,
) -> Result<Page, ApiError> {
    let (query, pairs, ignored) = parse(rtype, pairs, handling)?;
    let pairs = pairs.as_slice();
    let hits = find(store, rtype, &query.params, &query, Some(guard))?;
    let total = hits.len();
    let count = query.control.count.unwrap_or(DEFAULT_COUNT);
    let offset = query.control.offset;
    let summary_count = matches!(query.control.summary, Some(query::Summary::Count));
    let page_hits: Vec<&Hit> = if summary_count {
        Vec::new()
    } else {
        hits.iter().skip(offset).take(count).collect()
    };
    let matches = fetch(store, rtype, &page_hits)?;
    let mut page = Page {
        total,
        matches,
        included: Vec::new(),
        offset,
        count,
        query,
        raw: pairs.to_vec(),
        ignored,
    };
    if !summary_count {
        page.included = includes(store, rtype, &page, guard)?;
    }
    Ok(page)
}

/// All records of `rtype` matching every parameter, sorted.
fn find(
    store: &Store,
    rtype: &ResourceType,
    params: &[ParamQuery],
    query: &Query,
    guard: Option<&Guard>,
) -> Result<Vec<Hit>, ApiError> {
    let codes: Vec<&str> = params
        .iter()
        .map(|p| p.code.as_str())
        .chain(query.control.sort.iter().map(|s| s.code.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut hits = Vec::new();
    for org in store.organisations() {
        let keep = |r: Record, hits: &mut Vec<Hit>| -> Result<(), ApiError> {
            if r.deleted {
                return Ok(());
            }
            let v: Value = serde_json::from_slice(&r.body)
                .map_err(|_| ApiError::internal("a stored resource is not valid JSON"))?;
            let extracted = extract::extract_params(&v, &codes).map_err(|e| {
                ApiError::internal(format!("cannot evaluate search parameters: {e}"))
            })?;
            if params
                .iter()
                .all(|p| matching::matches(p, values(&extracted, &p.code)))
                && guard.map_or(Ok(true), |g| {
                    g.permits(Action::Search, r.rtype.as_str(), r.org.as_str(), &v)
                })?
            {
                let sort = query
                    .control
                    .sort
                    .iter()
                    .map(|s| matching::sort_key(values(&extracted, &s.code), s.descending))
                    .collect();
                hits.push(Hit {
                    sort,
                    org: r.org.clone(),
                    id: r.id,
                });
            }
            Ok(())
        };
        match candidates(store, &org, rtype, params)? {
            Some(ids) => {
                for chunk in ids.chunks(FETCH_CHUNK) {
                    for r in store
                        .vault()
                        .get_many(&org, rtype, chunk)?
                        .into_iter()
                        .flatten()
                    {
                        keep(r, &mut hits)?;
                    }
                }
            }
            None => {
                let mut after: Option<ResourceId> = None;
                loop {
                    let batch = store
                        .vault()
                        .scan(&org, rtype, after.as_ref(), FETCH_CHUNK)?;
                    let Some(last) = batch.last() else { break };
                    after = Some(last.id.clone());
                    for r in batch {
                        keep(r, &mut hits)?;
                    }
                }
            }
        }
    }
    // Stable order: the sort keys, then the id (FHIR leaves ties to the server).
    hits.sort_by(|a, b| {
        a.sort
            .cmp(&b.sort)
            .then_with(|| a.id.as_str().cmp(b.id.as_str()))
    });
    Ok(hits)
}

fn values<'a>(extracted: &'a [Extracted], code: &str) -> &'a [SearchValue] {
    extracted
        .iter()
        .find(|e| e.code == code)
        .map_or(&[], |e| e.values.as_slice())
}

/// The ids the index offers for all parameters together (the intersection of each
/// parameter's candidates), or `None` when no parameter can narrow the search.
fn candidates(
    store: &Store,
    org: &OdsCode,
    rtype: &ResourceType,
    params: &[ParamQuery],
) -> Result<Option<Vec<ResourceId>>, ApiError> {
    let mut result: Option<Vec<ResourceId>> = None;
    for p in params {
        let ids = if p.code == "_id" {
            let mut ids: Vec<ResourceId> = p
                .values
                .iter()
                .filter_map(|v| match v {
                    query::QueryValue::Token { code: Some(c), .. } => ResourceId::new(c).ok(),
                    _ => None,
                })
                .collect();
            if p.modifier.is_some() {
                continue;
            }
            ids.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
            ids.dedup();
            ids
        } else {
            let Some(t) = terms::lookup_terms(p) else {
                continue;
            };
            let t: Vec<IndexTerm> = t.into_iter().map(|(n, v)| IndexTerm::new(n, v)).collect();
            store.vault().search_any(org, rtype, &t)?
        };
        result = Some(match result {
            None => ids,
            Some(prev) => intersect(&prev, &ids),
        });
        if result.as_ref().is_some_and(Vec::is_empty) {
            break;
        }
    }
    Ok(result)
}

/// The intersection of two id lists sorted by bytes.
fn intersect(a: &[ResourceId], b: &[ResourceId]) -> Vec<ResourceId> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].as_str().cmp(b[j].as_str()) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i].clone());
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Fetches the page's records in order, grouped per organisation.
fn fetch(store: &Store, rtype: &ResourceType, hits: &[&Hit]) -> Result<Vec<Record>, ApiError> {
    let mut out: Vec<Option<Record>> = (0..hits.len()).map(|_| None).collect();
    let mut orgs: Vec<&OdsCode> = hits.iter().map(|h| &h.org).collect();
    orgs.sort();
    orgs.dedup();
    for org in orgs {
        let idx: Vec<usize> = (0..hits.len()).filter(|i| &hits[*i].org == org).collect();
        let ids: Vec<ResourceId> = idx.iter().map(|i| hits[*i].id.clone()).collect();
        for (i, r) in idx
            .into_iter()
            .zip(store.vault().get_many(org, rtype, &ids)?)
        {
            out[i] = r.filter(|r| !r.deleted);
        }
    }
    // A record deleted between matching and fetching drops out of the page.
    Ok(out.into_iter().flatten().collect())
}

/// `_include` and `_revinclude` for one page.
fn includes(
    store: &Store,
    rtype: &ResourceType,
    page: &Page,
    guard: &Guard,
) -> Result<Vec<Record>, ApiError> {
    let mut seen: HashSet<(String, String)> = page
        .matches
        .iter()
        .map(|r| (r.rtype.to_string(), r.id.to_string()))
        .collect();
    let mut out = Vec::new();
    let mut add = |r: Record, out: &mut Vec<Record>| {
        if out.len() < MAX_INCLUDED && seen.insert((r.rtype.to_string(), r.id.to_string())) {
            out.push(r);
        }
    };
    for inc in &page.query.control.include {
        for r in &page.matches {
            for target in referenced(r, inc)? {
                if let Some(found) = store.current(&target.0, &target.1)?
                    && !found.deleted
                    && guard.permits_record(Action::Read, &found)?
                {
                    add(found, &mut out);
                }
            }
        }
    }
    for rev in &page.query.control.revinclude {
        if page.matches.is_empty() {
            break;
        }
        let source = ResourceType::new(&rev.source)
            .map_err(|_| ApiError::bad_request("_revinclude names an unknown resource type"))?;
        let refs: Vec<String> = page
            .matches
            .iter()
            .map(|r| format!("{rtype}/{}", r.id))
            .collect();
        // Searching the source type by the page's references finds what points at them.
        for chunk in refs.chunks(100) {
            let pairs = vec![(rev.def.code.to_owned(), chunk.join(","))];
            let q = query::parse(source.as_str(), &pairs)?;
            let hits = find(store, &source, &q.params, &q, Some(guard))?;
            let hit_refs: Vec<&Hit> = hits.iter().take(MAX_INCLUDED).collect();
            for r in fetch(store, &source, &hit_refs)? {
                add(r, &mut out);
            }
        }
    }
    Ok(out)
}

/// The `(type, id)` targets of one `_include` in one record.
fn referenced(r: &Record, inc: &Include) -> Result<Vec<(ResourceType, ResourceId)>, ApiError> {
    if inc.source != r.rtype.as_str() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_slice(&r.body)
        .map_err(|_| ApiError::internal("a stored resource is not valid JSON"))?;
    let extracted = extract::extract_params(&v, &[inc.def.code])
        .map_err(|e| ApiError::internal(format!("cannot evaluate _include: {e}")))?;
    let mut out = Vec::new();
    for value in values(&extracted, inc.def.code) {
        if let SearchValue::Reference(rv) = value
            && let (Some(t), Some(i)) = (&rv.rtype, &rv.id)
            && inc.target.as_deref().is_none_or(|want| want == t)
            && let (Ok(t), Ok(i)) = (ResourceType::new(t), ResourceId::new(i))
        {
            out.push((t, i));
        }
    }
    Ok(out)
}

/// The one record a conditional interaction's criteria match among what the caller may
/// read: `None` when nothing matches, 412 when more than one does (the specification's
/// rule for conditional create, update and delete alike).
pub fn single_visible(
    store: &Store,
    rtype: &ResourceType,
    criteria: &str,
    guard: &Guard,
) -> Result<Option<Record>, ApiError> {
    let mut found = matching_visible(store, rtype, criteria, 2, guard)?;
    if found.len() > 1 {
        return Err(ApiError::precondition(
            "the conditional criteria match more than one resource",
        ));
    }
    Ok(found.pop())
}

/// [`matching()`] limited to what the caller may read: for conditional interactions, whose
/// outcome must not depend on records the caller cannot see.
pub fn matching_visible(
    store: &Store,
    rtype: &ResourceType,
    criteria: &str,
    limit: usize,
    guard: &Guard,
) -> Result<Vec<Record>, ApiError> {
    matching_with(store, rtype, criteria, limit, Some(guard))
}

/// The records matching a conditional interaction's criteria (`If-None-Exist`,
/// conditional update and delete): at most `limit`, then the caller decides on 0, 1 or
/// many.
pub fn matching(
    store: &Store,
    rtype: &ResourceType,
    criteria: &str,
    limit: usize,
) -> Result<Vec<Record>, ApiError> {
    matching_with(store, rtype, criteria, limit, None)
}

fn matching_with(
    store: &Store,
    rtype: &ResourceType,
    criteria: &str,
    limit: usize,
    guard: Option<&Guard>,
) -> Result<Vec<Record>, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(criteria.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.is_empty() {
        return Err(ApiError::bad_request(
            "a conditional interaction needs search criteria",
        ));
    }
    let q = query::parse(rtype.as_str(), &pairs)?;
    let hits = find(store, rtype, &q.params, &q, guard)?;
    let page: Vec<&Hit> = hits.iter().take(limit).collect();
    fetch(store, rtype, &page)
}
