//! `batch` and `transaction` Bundles (FHIR R4 http.html#transaction).
//!
//! A transaction is all or nothing: every entry is resolved and checked first (ids
//! assigned to POSTs, conditional criteria searched, `urn:uuid:` references rewritten to
//! the new `Type/id`), then every write and deletion goes to the vault in one database
//! transaction with one timestamp; any failure leaves nothing behind. Reads (GET) run
//! after the writes, as the specification orders. A batch runs each entry on its own and
//! reports each entry's outcome.

use std::collections::{HashMap, HashSet};

use axum::http::StatusCode;
use caldicott_core::{OdsCode, ResourceId, ResourceType, VersionId};
use caldicott_vault::{Expect, Record, Write, now_micros};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::guard::Guard;
use crate::response::{BundleWriter, etag};
use crate::search;
use crate::store::{Store, instant, new_id, writable};
use caldicott_policy::Action;

/// Most entries accepted in one Bundle.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
}

/// One entry of the request Bundle, checked.
struct Entry {
    method: Method,
    /// The request URL relative to the base: `Patient`, `Patient/1`, `Patient?identifier=x`.
    url: String,
    full_url: Option<String>,
    resource: Option<Value>,
    if_match: Option<VersionId>,
    if_none_exist: Option<String>,
}

/// What a transaction entry will do once everything is resolved.
enum Plan {
    Create {
        rtype: ResourceType,
        id: ResourceId,
    },
    Update {
        rtype: ResourceType,
        id: ResourceId,
    },
    Delete {
        rtype: ResourceType,
        id: ResourceId,
    },
    /// A conditional create that found its match, or a delete of nothing.
    Nothing {
        status: &'static str,
        found: Option<Record>,
    },
    Read,
}

/// Processes a `batch` or `transaction` Bundle; returns the response Bundle's bytes.
pub fn process(
    store: &Store,
    base: &str,
    bundle: Value,
    guard: &Guard,
) -> Result<Vec<u8>, ApiError> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(ApiError::bad_request(
            "POST to the base URL takes a Bundle of type batch or transaction",
        )
        .at("resourceType"));
    }
    let kind = bundle.get("type").and_then(Value::as_str).unwrap_or("");
    let raw = bundle
        .get("entry")
        .map(|e| e.as_array().cloned().ok_or(()))
        .unwrap_or(Ok(Vec::new()))
        .map_err(|_| ApiError::bad_request("Bundle.entry must be an array").at("Bundle.entry"))?;
    if raw.len() > MAX_ENTRIES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            crate::error::IssueType::TooLong,
            format!("a Bundle may hold at most {MAX_ENTRIES} entries"),
        ));
    }
    match kind {
        "transaction" => {
            let entries = raw
                .into_iter()
                .enumerate()
                .map(|(i, e)| parse_entry(i, e, base))
                .collect::<Result<Vec<_>, _>>()?;
            transaction(store, base, entries, guard)
        }
        "batch" => Ok(batch(store, base, raw, guard)),
        _ => Err(
            ApiError::bad_request("Bundle.type must be batch or transaction to be processed")
                .at("Bundle.type"),
        ),
    }
}

fn parse_entry(i: usize, e: Value, base: &str) -> Result<Entry, ApiError> {
    let at = |what: &str| format!("Bundle.entry[{i}].{what}");
    let Value::Object(mut e) = e else {
        return Err(ApiError::bad_request("a Bundle entry must be an object")
            .at(format!("Bundle.entry[{i}]")));
    };
    let req = e.remove("request").unwrap_or(Value::Null);
    let method = match req.get("method").and_then(Value::as_str) {
        Some("GET") | Some("HEAD") => Method::Get,
        Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        Some("DELETE") => Method::Delete,
        Some("PATCH") => {
            return Err(ApiError::not_supported(
                "PATCH inside a Bundle is not supported; use PUT or a PATCH request",
            )
            .at(at("request.method")));
        }
        _ => {
            return Err(
                ApiError::bad_request("request.method is missing or unknown")
                    .at(at("request.method")),
            );
        }
    };
    let url = req
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("request.url is missing").at(at("request.url")))?;
    let url = url
        .strip_prefix(base)
        .unwrap_or(url)
        .trim_start_matches('/')
        .to_owned();
    let if_match = match req.get("ifMatch").and_then(Value::as_str) {
        None => None,
        Some(s) => Some(parse_etag(s).ok_or_else(|| {
            ApiError::bad_request("request.ifMatch is not an ETag such as W/\"3\"")
                .at(at("request.ifMatch"))
        })?),
    };
    let resource = e.remove("resource");
    if matches!(method, Method::Post | Method::Put) && resource.is_none() {
        return Err(
            ApiError::bad_request("a POST or PUT entry needs a resource").at(at("resource")),
        );
    }
    Ok(Entry {
        method,
        url,
        full_url: e.get("fullUrl").and_then(Value::as_str).map(str::to_owned),
        resource,
        if_match,
        if_none_exist: req
            .get("ifNoneExist")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// `W/"3"` or `"3"` or `3` → version 3.
pub fn parse_etag(s: &str) -> Option<VersionId> {
    let s = s.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    let s = s.trim_matches('"');
    VersionId::parse(s).ok()
}

/// Splits `Type`, `Type/id` or `Type?query` into its parts.
fn split_url(url: &str) -> Result<(ResourceType, Option<ResourceId>, Option<String>), ApiError> {
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (url, None),
    };
    let mut parts = path.split('/');
    let rtype = parts
        .next()
        .filter(|t| caldicott_fhir::definitions::is_resource_type(t))
        .and_then(|t| ResourceType::new(t).ok())
        .ok_or_else(|| ApiError::bad_request("request.url does not start with a resource type"))?;
    let id = match parts.next() {
        None | Some("") => None,
        Some(i) => Some(
            ResourceId::new(i)
                .map_err(|_| ApiError::bad_request("request.url has an invalid resource id"))?,
        ),
    };
    if parts.next().is_some() {
        return Err(ApiError::not_supported(
            "only Type, Type/id and Type?criteria URLs are supported in a Bundle",
        ));
    }
    Ok((rtype, id, query))
}

fn transaction(
    store: &Store,
    base: &str,
    mut entries: Vec<Entry>,
    guard: &Guard,
) -> Result<Vec<u8>, ApiError> {
    let fail = |i: usize, e: ApiError| -> ApiError {
        let mut e = e;
        for issue in &mut e.issues {
            issue.diagnostics = format!("entry {i}: {}", issue.diagnostics);
            if issue.expression.is_none() {
                issue.expression = Some(format!("Bundle.entry[{i}]"));
            }
        }
        e
    };
    // 1. Resolve what each entry does and which id it ends up with.
    let mut plans = Vec::with_capacity(entries.len());
    let mut rewrite: HashMap<String, String> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let plan = resolve(store, e, guard).map_err(|err| fail(i, err))?;
        if let (Some(full), Plan::Create { rtype, id } | Plan::Update { rtype, id }) =
            (&e.full_url, &plan)
        {
            rewrite.insert(full.clone(), format!("{rtype}/{id}"));
        }
        if let (Some(full), Plan::Nothing { found: Some(r), .. }) = (&e.full_url, &plan) {
            rewrite.insert(full.clone(), format!("{}/{}", r.rtype, r.id));
        }
        plans.push(plan);
    }
    // 2. Point references at the ids just assigned.
    for e in &mut entries {
        if let Some(r) = &mut e.resource {
            rewrite_references(r, &rewrite);
        }
    }
    // 3. Prepare every write: Organizations, then Patients, then the rest, so each
    //    resource finds the organisation of what it refers to, even within this Bundle.
    let at = now_micros();
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| match &plans[i] {
        Plan::Create { rtype, .. } | Plan::Update { rtype, .. } => match rtype.as_str() {
            "Organization" => 0,
            "Patient" => 1,
            _ => 2,
        },
        _ => 3,
    });
    let mut pending: HashMap<String, OdsCode> = HashMap::new();
    let mut writes: Vec<(usize, Write, VersionId)> = Vec::new();
    let mut deletes: Vec<(usize, Write, VersionId)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for i in order {
        let e = &mut entries[i];
        match &plans[i] {
            Plan::Create { rtype, id } | Plan::Update { rtype, id } => {
                if !seen.insert(format!("{rtype}/{id}")) {
                    return Err(fail(
                        i,
                        ApiError::bad_request(format!(
                            "{rtype}/{id} appears twice in the transaction"
                        )),
                    ));
                }
                // An id the server just made cannot exist yet: no need to look.
                let head = if matches!(plans[i], Plan::Create { .. }) && e.method == Method::Post {
                    None
                } else {
                    store.current(rtype, id).map_err(|err| fail(i, err))?
                };
                let (version, expect, org) = match &head {
                    None => (VersionId::FIRST, Expect::Absent, None),
                    Some(h) => {
                        if let Some(want) = e.if_match
                            && want != h.version
                        {
                            return Err(fail(
                                i,
                                ApiError::precondition(format!(
                                    "{rtype}/{id} is at version {}, not {want} as ifMatch requires",
                                    h.version
                                )),
                            ));
                        }
                        (
                            h.version.next(),
                            Expect::Version(h.version),
                            Some(h.org.clone()),
                        )
                    }
                };
                if head.is_none() && e.if_match.is_some() {
                    return Err(fail(
                        i,
                        ApiError::precondition(format!(
                            "ifMatch was given but {rtype}/{id} does not exist"
                        )),
                    ));
                }
                let mut resource = e.resource.take().unwrap_or(Value::Null);
                if matches!(plans[i], Plan::Update { .. })
                    && let Some(body_id) = resource.get("id").and_then(Value::as_str)
                    && body_id != id.as_str()
                {
                    return Err(fail(
                        i,
                        ApiError::bad_request("the resource's id does not match request.url"),
                    ));
                }
                if let Value::Object(o) = &mut resource {
                    o.insert("id".into(), json!(id.as_str()));
                }
                let mut p = store
                    .prepare(rtype, id, resource, version, at, org, &pending)
                    .map_err(|err| fail(i, err))?;
                p.write.expect = expect;
                // The caller must be allowed the record as it is and as it will be.
                match &head {
                    Some(h) if !h.deleted => {
                        if !guard
                            .permits_record(Action::Read, h)
                            .map_err(|err| fail(i, err))?
                        {
                            return Err(fail(
                                i,
                                ApiError::not_found(format!("{rtype}/{id} is not known")),
                            ));
                        }
                        guard
                            .require_record(Action::Update, h)
                            .map_err(|err| fail(i, err))?;
                        guard
                            .require_write(Action::Update, &p.write)
                            .map_err(|err| fail(i, err))?;
                    }
                    _ => guard
                        .require_write(Action::Create, &p.write)
                        .map_err(|err| fail(i, err))?,
                }
                if rtype.as_str() == "Patient"
                    && let Ok(v) = serde_json::from_slice::<Value>(&p.write.body)
                {
                    guard
                        .pending_patient(p.write.org.as_str(), &v)
                        .map_err(|err| fail(i, err))?;
                }
                pending.insert(format!("{rtype}/{id}"), p.write.org.clone());
                writes.push((i, p.write, version));
            }
            Plan::Delete { rtype, id } => {
                if !seen.insert(format!("{rtype}/{id}")) {
                    return Err(fail(
                        i,
                        ApiError::bad_request(format!(
                            "{rtype}/{id} appears twice in the transaction"
                        )),
                    ));
                }
                let Some(h) = store.current(rtype, id).map_err(|err| fail(i, err))? else {
                    return Err(fail(
                        i,
                        ApiError::not_found(format!("{rtype}/{id} is not known")),
                    ));
                };
                if !guard
                    .permits_record(Action::Read, &h)
                    .map_err(|err| fail(i, err))?
                {
                    return Err(fail(
                        i,
                        ApiError::not_found(format!("{rtype}/{id} is not known")),
                    ));
                }
                guard
                    .require_record(Action::Delete, &h)
                    .map_err(|err| fail(i, err))?;
                if let Some(want) = e.if_match
                    && want != h.version
                {
                    return Err(fail(
                        i,
                        ApiError::precondition(format!(
                            "{rtype}/{id} is at version {}, not {want} as ifMatch requires",
                            h.version
                        )),
                    ));
                }
                if h.deleted {
                    continue;
                }
                deletes.push((
                    i,
                    Write {
                        org: h.org.clone(),
                        rtype: rtype.clone(),
                        id: id.clone(),
                        expect: Expect::Version(h.version),
                        body: Vec::new(),
                        terms: Vec::new(),
                    },
                    h.version.next(),
                ));
            }
            Plan::Nothing { .. } | Plan::Read => {}
        }
    }
    // 4. One database transaction for all of it.
    let first_delete = writes.len();
    let all: Vec<Write> = writes
        .iter()
        .map(|(_, w, _)| w.clone())
        .chain(deletes.iter().map(|(_, w, _)| w.clone()))
        .collect();
    if !all.is_empty() {
        store.commit(&all, first_delete, at, guard)?;
        for w in &all {
            store.facts().written(w.rtype.as_str());
        }
    }
    // 5. The response, entry by entry in request order.
    let mut responses: Vec<Value> = vec![Value::Null; entries.len()];
    for (i, w, v) in &writes {
        let status = if v.get() == 1 || matches!(plans[*i], Plan::Create { .. }) {
            "201 Created"
        } else {
            "200 OK"
        };
        responses[*i] = json!({ "response": {
            "status": status,
            "location": format!("{}/{}/_history/{v}", w.rtype, w.id),
            "etag": format!("W/\"{v}\""),
            "lastModified": instant(at),
        }});
    }
    for (i, _, _) in &deletes {
        responses[*i] = json!({ "response": { "status": "204 No Content" } });
    }
    for (i, plan) in plans.iter().enumerate() {
        match plan {
            Plan::Nothing { status, found } => {
                let mut resp = json!({ "status": status });
                if let Some(r) = found {
                    resp["location"] =
                        json!(format!("{}/{}/_history/{}", r.rtype, r.id, r.version));
                    resp["etag"] = json!(etag(r));
                }
                responses[i] = json!({ "response": resp });
            }
            Plan::Delete { .. } if responses[i].is_null() => {
                responses[i] = json!({ "response": { "status": "204 No Content" } });
            }
            Plan::Read => responses[i] = read_entry(store, base, &entries[i].url, guard),
            _ => {}
        }
    }
    let mut out = BundleWriter::new("transaction-response", None, &[]);
    for r in &responses {
        out.value_entry(r);
    }
    Ok(out.finish())
}

/// Decides what one transaction entry does: assigns ids to creates, runs conditional
/// criteria.
fn resolve(store: &Store, e: &Entry, guard: &Guard) -> Result<Plan, ApiError> {
    let (rtype, id, query) = split_url(&e.url)?;
    if e.method != Method::Get {
        writable(&rtype)?;
    }
    if let Some(r) = &e.resource
        && r.get("resourceType").and_then(Value::as_str) != Some(rtype.as_str())
    {
        return Err(ApiError::bad_request(
            "the resource's type does not match request.url",
        ));
    }
    Ok(match (e.method, id, query) {
        (Method::Get, _, _) => Plan::Read,
        (Method::Post, None, None) => match &e.if_none_exist {
            None => Plan::Create {
                rtype,
                id: new_id(),
            },
            Some(criteria) => match search::single_visible(store, &rtype, criteria, guard)? {
                None => Plan::Create {
                    rtype,
                    id: new_id(),
                },
                found => Plan::Nothing {
                    status: "200 OK",
                    found,
                },
            },
        },
        (Method::Post, _, _) => {
            return Err(ApiError::bad_request(
                "a POST entry's url must be a resource type",
            ));
        }
        (Method::Put, Some(id), None) => Plan::Update { rtype, id },
        (Method::Put, None, Some(criteria)) => {
            match search::single_visible(store, &rtype, &criteria, guard)? {
                None => {
                    let id = e
                        .resource
                        .as_ref()
                        .and_then(|r| r.get("id"))
                        .and_then(Value::as_str)
                        .and_then(|i| ResourceId::new(i).ok())
                        .unwrap_or_else(new_id);
                    Plan::Create { rtype, id }
                }
                Some(found) => Plan::Update {
                    rtype,
                    id: found.id,
                },
            }
        }
        (Method::Put, _, _) => {
            return Err(ApiError::bad_request(
                "a PUT entry's url must be Type/id or Type?criteria",
            ));
        }
        (Method::Delete, Some(id), None) => Plan::Delete { rtype, id },
        (Method::Delete, None, Some(criteria)) => {
            match search::single_visible(store, &rtype, &criteria, guard)? {
                None => Plan::Nothing {
                    status: "204 No Content",
                    found: None,
                },
                Some(found) => Plan::Delete {
                    rtype,
                    id: found.id,
                },
            }
        }
        (Method::Delete, _, _) => {
            return Err(ApiError::bad_request(
                "a DELETE entry's url must be Type/id or Type?criteria",
            ));
        }
    })
}

/// Replaces every `reference` that names a Bundle entry's `fullUrl` with the entry's
/// `Type/id`.
pub fn rewrite_references(v: &mut Value, map: &HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                if k == "reference"
                    && let Value::String(s) = child
                    && let Some(to) = map.get(s.as_str())
                {
                    *s = to.clone();
                } else {
                    rewrite_references(child, map);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite_references(c, map)),
        _ => {}
    }
}

/// A GET entry's response: the resource or a searchset, or the error as an outcome.
fn read_entry(store: &Store, base: &str, url: &str, guard: &Guard) -> Value {
    match read_url(store, base, url, guard) {
        Ok(v) => v,
        Err(e) => json!({
            "response": { "status": status_line(e.status), "outcome": e.outcome() }
        }),
    }
}

fn read_url(store: &Store, base: &str, url: &str, guard: &Guard) -> Result<Value, ApiError> {
    let (rtype, id, query) = split_url(url)?;
    let parse = |b: &[u8]| {
        serde_json::from_slice::<Value>(b)
            .map_err(|_| ApiError::internal("a stored resource is not valid JSON"))
    };
    match (id, query) {
        (Some(id), _) => {
            let r = store.read(&rtype, &id, guard)?;
            Ok(json!({
                "resource": parse(&r.body)?,
                "response": { "status": "200 OK", "etag": etag(&r), "lastModified": instant(r.written_at) }
            }))
        }
        (None, q) => {
            let pairs: Vec<(String, String)> =
                form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
            let page = search::search(store, &rtype, &pairs, search::Handling::Lenient, guard)?;
            let bundle = crate::http::searchset(base, &rtype, &page)?;
            Ok(json!({ "resource": parse(&bundle)?, "response": { "status": "200 OK" } }))
        }
    }
}

fn status_line(s: StatusCode) -> String {
    format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
}

/// A batch: each entry on its own; failures are reported in place.
fn batch(store: &Store, base: &str, raw: Vec<Value>, guard: &Guard) -> Vec<u8> {
    let mut out = BundleWriter::new("batch-response", None, &[]);
    for (i, e) in raw.into_iter().enumerate() {
        let v = match parse_entry(i, e, base).and_then(|e| batch_entry(store, base, e, guard)) {
            Ok(v) => v,
            Err(err) => json!({
                "response": { "status": status_line(err.status), "outcome": err.outcome() }
            }),
        };
        out.value_entry(&v);
    }
    out.finish()
}

fn batch_entry(store: &Store, base: &str, e: Entry, guard: &Guard) -> Result<Value, ApiError> {
    let written = |w: crate::store::Written| {
        json!({ "response": {
            "status": if w.created { "201 Created" } else { "200 OK" },
            "location": format!("{}/{}/_history/{}", w.record.rtype, w.record.id, w.record.version),
            "etag": etag(&w.record),
            "lastModified": instant(w.record.written_at),
        }})
    };
    match e.method {
        Method::Get => read_url(store, base, &e.url, guard),
        Method::Post | Method::Put | Method::Delete => match resolve(store, &e, guard)? {
            Plan::Create { rtype, id } if e.method == Method::Post => {
                let w = store.create(&rtype, e.resource.unwrap_or(Value::Null), guard)?;
                let _ = id;
                Ok(written(w))
            }
            Plan::Create { rtype, id } | Plan::Update { rtype, id } => {
                let mut r = e.resource.unwrap_or(Value::Null);
                if let Value::Object(o) = &mut r {
                    o.entry("id").or_insert_with(|| json!(id.as_str()));
                }
                Ok(written(store.update(&rtype, &id, r, e.if_match, guard)?))
            }
            Plan::Delete { rtype, id } => {
                store.delete(&rtype, &id, e.if_match, guard)?;
                Ok(json!({ "response": { "status": "204 No Content" } }))
            }
            Plan::Nothing { status, found } => {
                let mut resp = json!({ "status": status });
                if let Some(r) = found {
                    resp["location"] =
                        json!(format!("{}/{}/_history/{}", r.rtype, r.id, r.version));
                }
                Ok(json!({ "response": resp }))
            }
            Plan::Read => read_url(store, base, &e.url, guard),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        assert_eq!(parse_etag("W/\"3\""), VersionId::new(3));
        assert_eq!(parse_etag("\"12\""), VersionId::new(12));
        assert_eq!(parse_etag("W/\"x\""), None);
        assert_eq!(parse_etag("W/\"0\""), None);
    }

    #[test]
    fn references_to_bundle_entries_are_rewritten() {
        let mut v = json!({
            "subject": {"reference": "urn:uuid:1"},
            "performer": [{"reference": "urn:uuid:2"}, {"reference": "Practitioner/x"}],
            "note": [{"text": "urn:uuid:1"}]
        });
        let map = HashMap::from([
            ("urn:uuid:1".to_string(), "Patient/a".to_string()),
            ("urn:uuid:2".to_string(), "Practitioner/b".to_string()),
        ]);
        rewrite_references(&mut v, &map);
        assert_eq!(v["subject"]["reference"], "Patient/a");
        assert_eq!(v["performer"][0]["reference"], "Practitioner/b");
        assert_eq!(v["performer"][1]["reference"], "Practitioner/x");
        assert_eq!(v["note"][0]["text"], "urn:uuid:1");
    }
}
