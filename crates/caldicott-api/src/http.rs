//! The HTTP surface at `/fhir`: one handler reads the path, method and headers, checks
//! content types and sizes, and calls the store on the blocking pool.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use caldicott_core::{ResourceId, ResourceType, VersionId};
use serde_json::Value;

use crate::audit::{AuditEvent, EventKind, Outcome};
use crate::bundle::{self, parse_etag};
use crate::error::{ApiError, IssueType, information};
use crate::export::Exports;
use crate::guard::{Caller, Guard};
use crate::response::{self, BundleWriter};
use crate::search::{self, Page};
use crate::store::Store;
use crate::subset::Subset;
use crate::{capability, everything};

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The externally visible base URL (`https://fhir.example.nhs.uk/fhir`); when `None`,
    /// it is made from the request's `Host` header and `scheme`.
    pub public_base: Option<String>,
    /// `https` or `http`, for base URLs made from `Host`.
    pub scheme: &'static str,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
}

/// The API's shared state.
pub struct FhirApi {
    pub store: Arc<Store>,
    /// Users and tokens: every request but `metadata` must carry a valid bearer token.
    pub directory: Arc<caldicott_access::Directory>,
    /// Where every access decision is recorded.
    pub audit: Arc<dyn crate::audit::AuditSink>,
    /// The audit ledger, read back as `AuditEvent`s and access reports (when the sink is
    /// the ledger).
    pub ledger: Option<Arc<caldicott_vault::Ledger>>,
    pub exports: Arc<Exports>,
    pub config: ApiConfig,
}

/// The router for `/fhir` and everything under it.
pub fn router(api: Arc<FhirApi>) -> Router {
    Router::new()
        .route("/fhir", any(handle))
        .route("/fhir/", any(handle))
        .route("/fhir/{*rest}", any(handle))
        .with_state(api)
}

/// What one request asks for, with everything the handlers need, owned (it moves to the
/// blocking pool).
struct Call {
    method: Method,
    segments: Vec<String>,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    base: String,
    origin: crate::audit::Origin,
}

async fn handle(State(api): State<Arc<FhirApi>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, api.config.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return response::error(&ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                IssueType::TooLong,
                format!("request body exceeds {} bytes", api.config.max_body_bytes),
            ));
        }
    };
    let path = parts.uri.path();
    let rest = path.strip_prefix("/fhir").unwrap_or(path);
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let origin = crate::audit::Origin::new(peer, &parts.headers);
    let call = Call {
        origin,
        method: parts.method,
        segments,
        query: parts.uri.query().map(str::to_owned),
        base: base_url(
            &api.config,
            parts.uri.authority().map(|a| a.as_str()),
            &parts.headers,
        ),
        headers: parts.headers,
        body,
    };
    if let Err(e) = check_accept(&call) {
        return response::error(&e);
    }
    let api2 = Arc::clone(&api);
    let (result, events) = match tokio::task::spawn_blocking(move || route(&api2, call)).await {
        Ok(done) => done,
        Err(_) => {
            return response::error(&ApiError::internal("the request failed unexpectedly"));
        }
    };
    // Nothing is answered that is not in the audit trail: the request's events are
    // group-committed with other requests' and awaited here, without holding a thread.
    if !events.is_empty() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        api.audit.record_then(
            events,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        let recorded = match rx.await {
            Ok(r) => r,
            Err(_) => Err(crate::audit::AuditError(
                "the audit committer stopped".into(),
            )),
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, "audit trail unavailable: request refused");
            return response::error(&ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                IssueType::Exception,
                "the audit trail cannot be written; try again later",
            ));
        }
    }
    match result {
        Ok(r) => r,
        Err(e) => response::error(&e),
    }
}

fn percent_decode(s: &str) -> String {
    // Path segments of FHIR URLs are ids and type names; decode %XX for `$` and friends.
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The base URL responses refer to.
fn base_url(cfg: &ApiConfig, authority: Option<&str>, headers: &HeaderMap) -> String {
    if let Some(b) = &cfg.public_base {
        return b.trim_end_matches('/').to_owned();
    }
    // The host the client addressed (HTTP/2's `:authority`, else HTTP/1.1's `Host`) is
    // echoed into links only if it looks like a host name and port.
    let host = authority
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{}://{host}/fhir", cfg.scheme)
}

/// Only JSON is served (and HTML for `$access-report`): an `Accept` or `_format` asking for
/// XML alone is refused.
fn check_accept(call: &Call) -> Result<(), ApiError> {
    // The patient access report is also a page for people.
    if call.segments.last().is_some_and(|s| s == "$access-report") {
        return Ok(());
    }
    let format = call.query.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "_format")
            .map(|(_, v)| v.into_owned())
    });
    let json_ok = |s: &str| {
        s.split(',').any(|t| {
            let t = t.split(';').next().unwrap_or("").trim();
            matches!(
                t,
                "*/*"
                    | "application/*"
                    | "application/fhir+json"
                    | "application/json"
                    | "json"
                    | "application/json+fhir"
                    | "application/x-ndjson"
                    | "application/fhir+ndjson"
            ) || t.is_empty()
        })
    };
    if let Some(f) = format
        && !json_ok(&f)
    {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            IssueType::NotSupported,
            "only JSON (application/fhir+json) is served",
        ));
    }
    if let Some(a) = call
        .headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        && !json_ok(a)
    {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            IssueType::NotSupported,
            "only JSON (application/fhir+json) is served",
        ));
    }
    Ok(())
}

/// `POST /fhir/$break-glass`: a clinician declares an emergency (a `Parameters` resource
/// with `reason` and optionally `minutes`, at most 240), and may then see records they
/// have no relationship with, every access flagged and queued for the Caldicott
/// guardian's review.
fn break_glass(api: &FhirApi, call: &Call, guard: &Guard) -> Result<Response, ApiError> {
    use caldicott_policy::Role;
    let auth = &guard.caller().auth;
    if !matches!(
        auth.role,
        Role::Gp | Role::RegisteredNurse | Role::CareWorker
    ) {
        let why = "only clinicians (gp, registered-nurse, care-worker) may break the glass";
        guard.note(
            EventKind::BreakGlass,
            "declare",
            Vec::new(),
            Outcome::Deny,
            why,
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            IssueType::Security,
            why,
        ));
    }
    let params = json_body(call)?;
    if params["resourceType"] != "Parameters" {
        return Err(ApiError::bad_request(
            "$break-glass takes a Parameters resource",
        ));
    }
    let param = |name: &str| {
        params["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .cloned()
    };
    let reason = param("reason")
        .and_then(|p| p["valueString"].as_str().map(str::to_owned))
        .ok_or_else(|| ApiError::bad_request("$break-glass needs a reason (valueString)"))?;
    let minutes = match param("minutes") {
        None => 60,
        Some(p) => p["valueInteger"]
            .as_u64()
            .and_then(|m| u32::try_from(m).ok())
            .ok_or_else(|| ApiError::bad_request("minutes must be a valueInteger"))?,
    };
    let d = api
        .directory
        .declare_break_glass(
            &auth.user.name,
            &reason,
            minutes,
            caldicott_vault::now_micros(),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // The clinician's own words stay in the break-glass queue, not in the ledger (they may
    // name the patient).
    guard.note(
        EventKind::BreakGlass,
        "declare",
        Vec::new(),
        Outcome::Permit,
        &format!("emergency access declared for {minutes} minutes"),
    );
    tracing::warn!(
        target: "caldicott::alert",
        user = %d.user,
        org = %d.org,
        declaration = %d.id,
        minutes,
        "break-glass declared: the Caldicott guardian must review it"
    );
    Ok(response::value(
        StatusCode::OK,
        &information(&format!(
            "break-glass in force until {}; every access is flagged and will be reviewed by the Caldicott guardian",
            crate::store::instant(d.expires_at)
        )),
    ))
}

/// The caller of a request: from its `Authorization: Bearer` token, or else from the
/// browser session cookie (see [`crate::auth`]), which must come from this server's own
/// origin and, on a method that changes state, carry the session's `X-CSRF-Token` (403
/// otherwise). 401 without valid credentials, 503 if the directory cannot be read.
fn authenticate(api: &FhirApi, call: &Call) -> Result<Caller, ApiError> {
    use caldicott_access::AuthError;
    let headers = &call.headers;
    let now = caldicott_vault::now_micros();
    let result = match headers.get(header::AUTHORIZATION) {
        None => match crate::auth::session_cookie(headers) {
            None => Err(AuthError::Missing),
            Some(id) => session_caller(api, call, id, now)?,
        },
        Some(v) => match v.to_str().ok().and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        }) {
            None => Err(AuthError::Malformed),
            Some(token) => api.directory.authenticate(token, now),
        },
    };
    match result {
        Ok(auth) => Ok(Caller { auth }),
        Err(AuthError::Unavailable) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            IssueType::Exception,
            "the directory cannot be read; try again later",
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            IssueType::Security,
            e.to_string(),
        )),
    }
}

/// The identity behind a session cookie, after the browser checks: same origin, and the
/// CSRF token on a request that changes state. `Ok(Err(..))` is a 401 to answer.
fn session_caller(
    api: &FhirApi,
    call: &Call,
    id: &str,
    now: i64,
) -> Result<Result<caldicott_access::Authenticated, caldicott_access::AuthError>, ApiError> {
    let refused = |r: crate::auth::BrowserRefusal| {
        ApiError::new(StatusCode::FORBIDDEN, IssueType::Security, r.message())
    };
    crate::auth::check_same_origin(&call.headers, &call.base).map_err(refused)?;
    let session = match api.directory.authenticate_session(id, now) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    crate::auth::check_csrf(&call.headers, &call.method, &session).map_err(|r| {
        tracing::warn!(
            target: "caldicott::security",
            user = %session.auth.user.name,
            method = %call.method,
            "request with the session cookie refused: CSRF token missing or wrong"
        );
        refused(r)
    })?;
    Ok(Ok(session.auth))
}

/// Answers a request on the blocking pool; returns the answer and the audit events it
/// leaves to be recorded before the answer is sent.
fn route(api: &FhirApi, call: Call) -> (Result<Response, ApiError>, Vec<AuditEvent>) {
    let segs: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    let m = &call.method;
    // The CapabilityStatement is public, as SMART clients read it before they sign in.
    if segs.as_slice() == ["metadata"] && *m == Method::GET {
        return (
            Ok(response::value(
                StatusCode::OK,
                &capability::statement(&call.base),
            )),
            Vec::new(),
        );
    }
    let caller = match authenticate(api, &call) {
        Ok(c) => c,
        Err(e) => return (Err(e), Vec::new()),
    };
    let guard = Guard::new(
        &api.store,
        &api.directory,
        api.audit.as_ref(),
        &caller,
        call.origin.clone(),
    );
    if let Some(rtype) = searched_type(&call) {
        guard.searching(rtype, search_parameter_names(&call));
    }
    let result = dispatch(api, &call, &guard);
    (result, guard.take_pending())
}

/// Whether the client asks for an HTML page (`Accept: text/html` or `_format=html`).
fn wants_html(call: &Call) -> bool {
    let format_html = form_urlencoded::parse(call.query.as_deref().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "_format" && (v == "html" || v == "text/html"));
    format_html
        || call
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// The type a request searches, if it is a search (`GET [type]`, `POST [type]/_search`,
/// or a system search `GET [base]?…`).
fn searched_type(call: &Call) -> Option<&str> {
    match (call.segments.as_slice(), &call.method) {
        // Reads of the audit trail are recorded as such, by the audit log itself.
        ([t], &Method::GET) if t == "AuditEvent" => None,
        ([t], &Method::GET) if !t.starts_with('$') && !t.starts_with('_') => Some(t),
        ([t, s], &Method::POST) if s == "_search" => Some(t),
        ([], &Method::GET) => Some(""),
        _ => None,
    }
}

/// The names (with modifiers) of a search's parameters, never their values.
fn search_parameter_names(call: &Call) -> Vec<String> {
    let mut names: Vec<String> =
        form_urlencoded::parse(call.query.as_deref().unwrap_or("").as_bytes())
            .map(|(k, _)| k.into_owned())
            .collect();
    if call.method == Method::POST {
        names.extend(form_urlencoded::parse(&call.body).map(|(k, _)| k.into_owned()));
    }
    names.sort();
    names.dedup();
    names.truncate(64);
    for n in &mut names {
        n.truncate(64);
    }
    names
}

fn dispatch(api: &FhirApi, call: &Call, guard: &Guard) -> Result<Response, ApiError> {
    let segs: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    let m = &call.method;
    match segs.as_slice() {
        [] => match *m {
            Method::POST => {
                let bundle = json_body(call)?;
                let out = bundle::process(&api.store, &call.base, bundle, guard)?;
                Ok(response::fhir(StatusCode::OK, out))
            }
            _ => Err(method_not_allowed()),
        },
        ["_history"] if *m == Method::GET => history(api, call, None, None, guard),
        ["$break-glass"] if *m == Method::POST => break_glass(api, call, guard),
        ["$export"] => crate::export::kick_off(
            api,
            guard,
            &call.headers,
            call.query.as_deref(),
            &call.base,
            crate::export::Level::System,
            m,
        ),
        ["$export-status", job] => crate::export::status(api, guard, job, m),
        ["$export-file", job, file] if *m == Method::GET => {
            crate::export::file(api, guard, job, file)
        }
        ["AuditEvent", rest @ ..] => {
            crate::auditlog::audit_events(api, guard, m, rest, call.query.as_deref(), &call.base)
        }
        ["Patient", id, "$access-report"] if *m == Method::GET => {
            let html = wants_html(call);
            crate::auditlog::access_report(api, guard, id, html)
        }
        [t, rest @ ..] => {
            let rtype = resource_type(t)?;
            typed(api, call, rtype, rest, guard)
        }
    }
}

fn typed(
    api: &FhirApi,
    call: &Call,
    rtype: ResourceType,
    rest: &[&str],
    guard: &Guard,
) -> Result<Response, ApiError> {
    let store = &api.store;
    let m = &call.method;
    match rest {
        [] => match *m {
            Method::GET => {
                search_response(api, call, &rtype, query_pairs(call.query.as_deref()), guard)
            }
            Method::POST => create(api, call, &rtype, guard),
            Method::PUT => conditional_update(api, call, &rtype, guard),
            Method::DELETE => conditional_delete(api, call, &rtype, guard),
            _ => Err(method_not_allowed()),
        },
        ["_search"] if *m == Method::POST => {
            let ct = content_type(&call.headers);
            if ct != "application/x-www-form-urlencoded" {
                return Err(unsupported_media(
                    "POST _search takes application/x-www-form-urlencoded",
                ));
            }
            let mut pairs = query_pairs(call.query.as_deref());
            pairs.extend(
                form_urlencoded::parse(&call.body).map(|(k, v)| (k.into_owned(), v.into_owned())),
            );
            search_response(api, call, &rtype, pairs, guard)
        }
        ["_history"] if *m == Method::GET => history(api, call, Some(&rtype), None, guard),
        ["$export"] if rtype.as_str() == "Patient" => crate::export::kick_off(
            api,
            guard,
            &call.headers,
            call.query.as_deref(),
            &call.base,
            crate::export::Level::Patient,
            m,
        ),
        [id] => {
            let id = resource_id(id)?;
            match *m {
                Method::GET | Method::HEAD => {
                    let r = store.read(&rtype, &id, guard)?;
                    if let Some(inm) = call
                        .headers
                        .get(header::IF_NONE_MATCH)
                        .and_then(|v| v.to_str().ok())
                        && parse_etag(inm) == Some(r.version)
                    {
                        let mut resp = Response::new(Body::empty());
                        *resp.status_mut() = StatusCode::NOT_MODIFIED;
                        return Ok(resp);
                    }
                    read_response(&rtype, call.query.as_deref(), r)
                }
                Method::PUT => {
                    let body = json_body(call)?;
                    let w = store.update(&rtype, &id, body, if_match(&call.headers)?, guard)?;
                    Ok(written(call, w))
                }
                Method::PATCH => {
                    let ct = content_type(&call.headers);
                    if ct != "application/json-patch+json" {
                        return Err(unsupported_media(
                            "PATCH takes a JSON Patch document (application/json-patch+json)",
                        ));
                    }
                    let patch = crate::json::parse_strict(&call.body).map_err(|e| {
                        ApiError::bad_request(format!("the patch is not valid JSON: {e}"))
                    })?;
                    let w = store.patch(&rtype, &id, patch, if_match(&call.headers)?, guard)?;
                    Ok(written(call, w))
                }
                Method::DELETE => {
                    store.delete(&rtype, &id, if_match(&call.headers)?, guard)?;
                    Ok(response::value(
                        StatusCode::OK,
                        &information(&format!("{rtype}/{id} deleted")),
                    ))
                }
                _ => Err(method_not_allowed()),
            }
        }
        [id, "_history"] if *m == Method::GET => {
            let id = resource_id(id)?;
            history(api, call, Some(&rtype), Some(&id), guard)
        }
        [id, "_history", v] if *m == Method::GET => {
            let id = resource_id(id)?;
            let v = VersionId::parse(v)
                .map_err(|_| ApiError::not_found(format!("{rtype}/{id} has no such version")))?;
            let r = store.vread(&rtype, &id, v, guard)?;
            read_response(&rtype, call.query.as_deref(), r)
        }
        [id, "$everything"] if rtype.as_str() == "Patient" && *m == Method::GET => {
            let id = resource_id(id)?;
            let out = everything::patient_everything(store, &call.base, &id, guard)?;
            Ok(response::fhir(StatusCode::OK, out))
        }
        [id, "$export"] if rtype.as_str() == "Group" => {
            let id = resource_id(id)?;
            crate::export::kick_off(
                api,
                guard,
                &call.headers,
                call.query.as_deref(),
                &call.base,
                crate::export::Level::Group(id),
                m,
            )
        }
        _ => Err(ApiError::not_found("no FHIR interaction at this address")),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        IssueType::NotSupported,
        "this method is not supported at this address",
    )
}

fn unsupported_media(msg: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        IssueType::NotSupported,
        msg,
    )
}

fn resource_type(t: &str) -> Result<ResourceType, ApiError> {
    if !caldicott_fhir::definitions::is_resource_type(t) || t == "Parameters" {
        return Err(ApiError::not_found(
            "the URL does not name a FHIR R4 resource type",
        ));
    }
    ResourceType::new(t)
        .map_err(|_| ApiError::not_found("the URL does not name a FHIR R4 resource type"))
}

fn resource_id(id: &str) -> Result<ResourceId, ApiError> {
    ResourceId::new(id).map_err(|_| {
        ApiError::bad_request("the URL's id is not a valid FHIR id (1-64 of A-Z a-z 0-9 - .)")
    })
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn content_type(h: &HeaderMap) -> String {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The request body as a JSON resource: the content type must be FHIR JSON.
fn json_body(call: &Call) -> Result<Value, ApiError> {
    let ct = content_type(&call.headers);
    if !matches!(
        ct.as_str(),
        "application/fhir+json" | "application/json" | "application/json+fhir"
    ) {
        return Err(unsupported_media(
            "the body must be FHIR JSON (Content-Type: application/fhir+json)",
        ));
    }
    if call.body.is_empty() {
        return Err(ApiError::bad_request("the request has no body"));
    }
    crate::json::parse_strict(&call.body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            IssueType::Structure,
            format!("the body is not valid JSON: {e}"),
        )
    })
}

fn if_match(h: &HeaderMap) -> Result<Option<VersionId>, ApiError> {
    match h.get(header::IF_MATCH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(parse_etag)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("If-Match must be an ETag such as W/\"3\"")),
    }
}

/// `Prefer: handling=strict|lenient` (lenient unless strict is asked for).
fn handling(h: &HeaderMap) -> search::Handling {
    let strict = h
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim() == "handling=strict");
    if strict {
        search::Handling::Strict
    } else {
        search::Handling::Lenient
    }
}

/// `Prefer: return=minimal|representation|OperationOutcome`.
fn prefer_return(h: &HeaderMap) -> &'static str {
    let p = h
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|v| v.strip_prefix("return="));
    match p {
        Some("minimal") => "minimal",
        Some("OperationOutcome") => "OperationOutcome",
        _ => "representation",
    }
}

fn written(call: &Call, w: crate::store::Written) -> Response {
    let status = if w.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!(
        "{}/{}/{}/_history/{}",
        call.base, w.record.rtype, w.record.id, w.record.version
    );
    let mut r = response::resource(status, &w.record, Some(&location));
    match prefer_return(&call.headers) {
        "minimal" => *r.body_mut() = Body::empty(),
        "OperationOutcome" => {
            *r.body_mut() = Body::from(
                serde_json::to_vec(&information(&format!(
                    "{}/{} version {} stored",
                    w.record.rtype, w.record.id, w.record.version
                )))
                .unwrap_or_default(),
            );
        }
        _ => {}
    }
    r
}

fn create(
    api: &FhirApi,
    call: &Call,
    rtype: &ResourceType,
    guard: &Guard,
) -> Result<Response, ApiError> {
    let body = json_body(call)?;
    if let Some(criteria) = call
        .headers
        .get("if-none-exist")
        .and_then(|v| v.to_str().ok())
        && let Some(r) = search::single_visible(&api.store, rtype, criteria, guard)?
    {
        let location = format!("{}/{}/{}/_history/{}", call.base, r.rtype, r.id, r.version);
        return Ok(response::resource(StatusCode::OK, &r, Some(&location)));
    }
    let w = api.store.create(rtype, body, guard)?;
    Ok(written(call, w))
}

fn conditional_update(
    api: &FhirApi,
    call: &Call,
    rtype: &ResourceType,
    guard: &Guard,
) -> Result<Response, ApiError> {
    let criteria = call.query.as_deref().unwrap_or("");
    let mut body = json_body(call)?;
    let id = match search::single_visible(&api.store, rtype, criteria, guard)? {
        None => body
            .get("id")
            .and_then(Value::as_str)
            .and_then(|i| ResourceId::new(i).ok())
            .unwrap_or_else(crate::store::new_id),
        Some(found) => {
            if let Some(b) = body.get("id").and_then(Value::as_str)
                && b != found.id.as_str()
            {
                return Err(ApiError::bad_request(
                    "the body's id is not the id of the resource the criteria match",
                ));
            }
            found.id
        }
    };
    if let Value::Object(o) = &mut body {
        o.insert("id".into(), Value::String(id.as_str().to_owned()));
    }
    let w = api
        .store
        .update(rtype, &id, body, if_match(&call.headers)?, guard)?;
    Ok(written(call, w))
}

fn conditional_delete(
    api: &FhirApi,
    call: &Call,
    rtype: &ResourceType,
    guard: &Guard,
) -> Result<Response, ApiError> {
    let criteria = call.query.as_deref().unwrap_or("");
    match search::single_visible(&api.store, rtype, criteria, guard)? {
        None => Ok(response::value(
            StatusCode::OK,
            &information("nothing matched; nothing deleted"),
        )),
        Some(found) => {
            api.store.delete(rtype, &found.id, None, guard)?;
            Ok(response::value(
                StatusCode::OK,
                &information(&format!("{rtype}/{} deleted", found.id)),
            ))
        }
    }
}

fn search_response(
    api: &FhirApi,
    call: &Call,
    rtype: &ResourceType,
    pairs: Vec<(String, String)>,
    guard: &Guard,
) -> Result<Response, ApiError> {
    let page = search::search(&api.store, rtype, &pairs, handling(&call.headers), guard)?;
    Ok(response::fhir(
        StatusCode::OK,
        searchset(&call.base, rtype, &page)?,
    ))
}

/// A searchset Bundle for one page, with `self`, `first`, `previous` and `next` links
/// that repeat the query with another `_offset`.
pub fn searchset(base: &str, rtype: &ResourceType, page: &Page) -> Result<Vec<u8>, ApiError> {
    let link = |offset: usize| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &page.raw {
            if k != "_offset" {
                ser.append_pair(k, v);
            }
        }
        if offset > 0 {
            ser.append_pair("_offset", &offset.to_string());
        }
        let q = ser.finish();
        if q.is_empty() {
            format!("{base}/{rtype}")
        } else {
            format!("{base}/{rtype}?{q}")
        }
    };
    let mut links = vec![("self", link(page.offset))];
    if page.count > 0 {
        links.push(("first", link(0)));
        if page.offset > 0 {
            links.push(("previous", link(page.offset.saturating_sub(page.count))));
        }
        if page.offset + page.count < page.total {
            links.push(("next", link(page.offset + page.count)));
        }
    }
    let mut b = BundleWriter::new("searchset", Some(page.total), &links);
    let subset = Subset::of(&page.query.control);
    let mut entry = |r: &caldicott_vault::Record, mode: &str| -> Result<(), ApiError> {
        match &subset {
            None => b.search_entry(base, r, mode),
            Some(s) => {
                let mut part = r.clone();
                part.body = s.apply(&r.body)?;
                b.search_entry(base, &part, mode);
            }
        }
        Ok(())
    };
    for r in &page.matches {
        entry(r, "match")?;
    }
    for r in &page.included {
        entry(r, "include")?;
    }
    if !page.ignored.is_empty() {
        let issues: Vec<crate::error::Issue> = page
            .ignored
            .iter()
            .map(|code| crate::error::Issue {
                code: IssueType::NotSupported,
                diagnostics: format!("unknown search parameter '{code}' was ignored"),
                expression: None,
            })
            .collect();
        b.value_entry(&serde_json::json!({
            "resource": crate::error::outcome(&issues, "warning"),
            "search": { "mode": "outcome" }
        }));
    }
    Ok(b.finish())
}

/// The `_summary`/`_elements` of a read's URL, if any.
fn read_subset(rtype: &ResourceType, query: Option<&str>) -> Result<Option<Subset>, ApiError> {
    let pairs: Vec<(String, String)> = query_pairs(query)
        .into_iter()
        .filter(|(k, _)| k == "_summary" || k == "_elements")
        .collect();
    if pairs.is_empty() {
        return Ok(None);
    }
    let q = caldicott_fhir::search::query::parse(rtype.as_str(), &pairs)?;
    Ok(Subset::of(&q.control))
}

/// A read's response, subsetted when the URL asks.
fn read_response(
    rtype: &ResourceType,
    query: Option<&str>,
    r: caldicott_vault::Record,
) -> Result<Response, ApiError> {
    match read_subset(rtype, query)? {
        None => Ok(response::resource(StatusCode::OK, &r, None)),
        Some(s) => {
            let mut part = r;
            part.body = s.apply(&part.body)?;
            Ok(response::resource(StatusCode::OK, &part, None))
        }
    }
}

fn history(
    api: &FhirApi,
    call: &Call,
    rtype: Option<&ResourceType>,
    id: Option<&ResourceId>,
    guard: &Guard,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(call.query.as_deref());
    let mut since = i64::MIN;
    let mut count = search::DEFAULT_COUNT;
    let mut offset = 0usize;
    for (k, v) in &pairs {
        match k.as_str() {
            "_since" => {
                since = parse_instant(v).ok_or_else(|| {
                    ApiError::bad_request("_since must be an instant such as 2024-01-01T00:00:00Z")
                })?;
            }
            "_count" => {
                count = v
                    .parse::<usize>()
                    .ok()
                    .filter(|c| *c <= 1000)
                    .ok_or_else(|| {
                        ApiError::bad_request("_count must be a number from 0 to 1000")
                    })?;
            }
            "_offset" => {
                offset = v
                    .parse()
                    .map_err(|_| ApiError::bad_request("_offset must be a number"))?;
            }
            "_format" | "_pretty" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "history does not support the parameter {other}"
                )));
            }
        }
    }
    let mut records = match (rtype, id) {
        (Some(t), Some(i)) => {
            let mut all = api.store.instance_history(t, i, guard)?;
            all.retain(|r| r.written_at >= since);
            all
        }
        _ => api.store.changes(
            rtype,
            since,
            i64::MAX,
            offset.saturating_add(count).saturating_add(1),
            guard,
        )?,
    };
    let more = records.len() > offset + count;
    let total = (rtype.is_some() && id.is_some()).then_some(records.len());
    let page: Vec<_> = records.drain(..).skip(offset).take(count).collect();
    let mut self_url = call.base.clone();
    for s in &call.segments {
        self_url.push('/');
        self_url.push_str(s);
    }
    let with_offset = |o: usize| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            if k != "_offset" {
                ser.append_pair(k, v);
            }
        }
        if o > 0 {
            ser.append_pair("_offset", &o.to_string());
        }
        let q = ser.finish();
        if q.is_empty() {
            self_url.clone()
        } else {
            format!("{self_url}?{q}")
        }
    };
    let mut links = vec![("self", with_offset(offset))];
    if more {
        links.push(("next", with_offset(offset + count)));
    }
    let mut b = BundleWriter::new("history", total, &links);
    for r in &page {
        b.history_entry(&call.base, r);
    }
    Ok(response::fhir(StatusCode::OK, b.finish()))
}

/// Microseconds since the epoch for a FHIR instant or dateTime with time zone (a date
/// alone means its start, in UTC).
pub fn parse_instant(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos() / 1000).ok();
    }
    let d = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    i64::try_from(d.midnight().assume_utc().unix_timestamp_nanos() / 1000).ok()
}

/// Headers for async responses.
pub fn content_location(resp: &mut Response, url: &str) {
    if let Ok(v) = HeaderValue::from_str(url) {
        resp.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
}
