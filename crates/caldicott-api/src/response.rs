//! Writing FHIR responses: single resources with their headers, and Bundles assembled
//! around stored bytes without parsing them again (a stored resource is already valid
//! JSON, checked when it was written and authenticated when it was decrypted).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use caldicott_vault::Record;
use serde_json::Value;

use crate::error::ApiError;
use crate::store::{http_date, instant, new_id};

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// A response with a FHIR JSON body.
pub fn fhir(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

/// A JSON value as a FHIR response.
pub fn value(status: StatusCode, v: &Value) -> Response {
    fhir(status, serde_json::to_vec(v).unwrap_or_default())
}

/// An error as its `OperationOutcome` (a 401 also says how to authenticate).
pub fn error(e: &ApiError) -> Response {
    let mut r = value(e.status, &e.outcome());
    if e.status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"caldicott\""),
        );
    }
    r
}

/// The weak ETag of a version: `W/"3"`.
pub fn etag(r: &Record) -> String {
    format!("W/\"{}\"", r.version)
}

/// A stored resource with `ETag`, `Last-Modified` and, when given, `Location`.
pub fn resource(status: StatusCode, r: &Record, location: Option<&str>) -> Response {
    let mut resp = fhir(status, r.body.clone());
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag(r)) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(r.written_at)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        h.insert(header::LOCATION, l);
    }
    resp
}

/// Builds a Bundle as bytes, entry by entry.
pub struct BundleWriter {
    out: Vec<u8>,
    entries: usize,
}

impl BundleWriter {
    /// Starts a Bundle of `kind` (`searchset`, `history`, `transaction-response`, ...),
    /// with `total` and `link`s when given.
    pub fn new(kind: &str, total: Option<usize>, links: &[(&str, String)]) -> Self {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(b"{\"resourceType\":\"Bundle\",\"id\":");
        push_str(&mut out, new_id().as_str());
        out.extend_from_slice(b",\"meta\":{\"lastUpdated\":");
        push_str(&mut out, &instant(caldicott_vault::now_micros()));
        out.extend_from_slice(b"},\"type\":");
        push_str(&mut out, kind);
        if let Some(t) = total {
            out.extend_from_slice(format!(",\"total\":{t}").as_bytes());
        }
        if !links.is_empty() {
            out.extend_from_slice(b",\"link\":[");
            for (i, (rel, url)) in links.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"relation\":");
                push_str(&mut out, rel);
                out.extend_from_slice(b",\"url\":");
                push_str(&mut out, url);
                out.push(b'}');
            }
            out.push(b']');
        }
        BundleWriter { out, entries: 0 }
    }

    fn begin_entry(&mut self) {
        self.out.extend_from_slice(if self.entries == 0 {
            b",\"entry\":["
        } else {
            b","
        });
        self.entries += 1;
    }

    /// A search result entry (`mode` is `match`, `include` or `outcome`).
    pub fn search_entry(&mut self, base: &str, r: &Record, mode: &str) {
        self.begin_entry();
        self.out.extend_from_slice(b"{\"fullUrl\":");
        push_str(&mut self.out, &format!("{base}/{}/{}", r.rtype, r.id));
        self.out.extend_from_slice(b",\"resource\":");
        self.out.extend_from_slice(&r.body);
        self.out.extend_from_slice(b",\"search\":{\"mode\":");
        push_str(&mut self.out, mode);
        self.out.extend_from_slice(b"}}");
    }

    /// A history entry: the version's resource (none for a deletion), the request that
    /// made it and its response.
    pub fn history_entry(&mut self, base: &str, r: &Record) {
        self.begin_entry();
        self.out.extend_from_slice(b"{\"fullUrl\":");
        push_str(&mut self.out, &format!("{base}/{}/{}", r.rtype, r.id));
        if !r.deleted {
            self.out.extend_from_slice(b",\"resource\":");
            self.out.extend_from_slice(&r.body);
        }
        let (method, url, status) = match (r.deleted, r.version.get()) {
            (true, _) => ("DELETE", format!("{}/{}", r.rtype, r.id), "204 No Content"),
            (false, 1) => ("POST", r.rtype.to_string(), "201 Created"),
            (false, _) => ("PUT", format!("{}/{}", r.rtype, r.id), "200 OK"),
        };
        self.out.extend_from_slice(b",\"request\":{\"method\":");
        push_str(&mut self.out, method);
        self.out.extend_from_slice(b",\"url\":");
        push_str(&mut self.out, &url);
        self.out.extend_from_slice(b"},\"response\":{\"status\":");
        push_str(&mut self.out, status);
        self.out.extend_from_slice(b",\"etag\":");
        push_str(&mut self.out, &etag(r));
        self.out.extend_from_slice(b",\"lastModified\":");
        push_str(&mut self.out, &instant(r.written_at));
        self.out.extend_from_slice(b"}}");
    }

    /// Any entry given as a JSON value (transaction and batch responses).
    pub fn value_entry(&mut self, entry: &Value) {
        self.begin_entry();
        self.out
            .extend_from_slice(&serde_json::to_vec(entry).unwrap_or_else(|_| b"{}".to_vec()));
    }

    pub fn finish(mut self) -> Vec<u8> {
        if self.entries > 0 {
            self.out.push(b']');
        }
        self.out.push(b'}');
        self.out
    }
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use caldicott_core::{OdsCode, ResourceId, ResourceType, VersionId};

    fn rec(id: &str, version: u64, deleted: bool) -> Record {
        Record {
            org: OdsCode::parse("A81001").unwrap(),
            rtype: ResourceType::new("Patient").unwrap(),
            id: ResourceId::new(id).unwrap(),
            version: VersionId::new(version).unwrap(),
            deleted,
            body: if deleted {
                Vec::new()
            } else {
                br#"{"resourceType":"Patient","id":"p","birthDate":"1970"}"#.to_vec()
            },
            written_at: 0,
        }
    }

    #[test]
    fn bundles_are_valid_json_with_raw_resources() {
        let mut b = BundleWriter::new(
            "searchset",
            Some(2),
            &[("self", "https://x/fhir/Patient?a=\"b\"".into())],
        );
        b.search_entry("https://x/fhir", &rec("p", 1, false), "match");
        b.history_entry("https://x/fhir", &rec("p", 2, true));
        let v: Value = serde_json::from_slice(&b.finish()).unwrap();
        assert_eq!(v["total"], 2);
        assert_eq!(v["entry"][0]["resource"]["birthDate"], "1970");
        assert_eq!(v["entry"][0]["fullUrl"], "https://x/fhir/Patient/p");
        assert_eq!(v["entry"][1]["request"]["method"], "DELETE");
        assert!(v["entry"][1].get("resource").is_none());
        assert_eq!(v["link"][0]["url"], "https://x/fhir/Patient?a=\"b\"");
        let empty: Value =
            serde_json::from_slice(&BundleWriter::new("history", None, &[]).finish()).unwrap();
        assert!(empty.get("entry").is_none());
    }
}
