//! Bulk Data `$export` (HL7 FHIR Bulk Data Access IG v2): asynchronous kick-off at system,
//! Patient and Group level, a status endpoint, and NDJSON files to download.
//!
//! The output is patient data at rest, so it never touches disk in clear: each job has a
//! random AES-256-GCM key that lives only in this process's memory (zeroised when the job
//! goes), and each file is written as sealed chunks whose associated data binds the job,
//! the file, the chunk's position and whether it is the last, so chunks cannot be
//! reordered, swapped between files or cut off unnoticed. A restart forgets the keys, so
//! files left on disk are unreadable and are removed at start.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use caldicott_core::{ResourceId, ResourceType};
use caldicott_fhir::search::extract;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::error::{ApiError, IssueType, information};
use crate::guard::Guard;
use crate::http::{FhirApi, content_location, parse_instant};
use crate::response;
use crate::store::{Store, instant, new_id};
use caldicott_policy::Action;

/// Resources per output file before a new file is started.
const LINES_PER_FILE: u64 = 100_000;
/// Plaintext bytes per sealed chunk.
const CHUNK: usize = 1 << 20;
/// Jobs kept at once; older finished ones are dropped first.
const MAX_JOBS: usize = 64;

/// The export level of a kick-off.
#[derive(Debug, Clone)]
pub enum Level {
    System,
    Patient,
    Group(ResourceId),
}

#[derive(Debug, Clone)]
enum State {
    Running,
    Done(Value),
    Failed(String),
}

struct Job {
    id: String,
    /// The user who started it: only they may see its status and files.
    owner: String,
    key: Zeroizing<[u8; 32]>,
    state: Mutex<State>,
    progress: AtomicU64,
    cancelled: AtomicBool,
    files: Mutex<HashMap<String, (PathBuf, u64)>>,
    created: std::time::Instant,
}

/// The export jobs of this process.
pub struct Exports {
    dir: PathBuf,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

impl Exports {
    /// Keeps job output under `dir`, which is emptied now (older output is unreadable).
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Exports {
            dir,
            jobs: Mutex::new(HashMap::new()),
        })
    }

    fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn remove(&self, id: &str) {
        if let Some(job) = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        {
            job.cancelled.store(true, Ordering::Relaxed);
            let _ = std::fs::remove_dir_all(self.dir.join(&job.id));
        }
    }
}

/// Kick-off: checks the request and starts the job; 202 with the status URL.
pub fn kick_off(
    api: &FhirApi,
    guard: &Guard,
    headers: &HeaderMap,
    query: Option<&str>,
    base: &str,
    level: Level,
    method: &Method,
) -> Result<Response, ApiError> {
    if *method != Method::GET {
        return Err(ApiError::not_supported("$export is started with GET"));
    }
    // Bulk export is for machine clients with system/ scopes (the policy decides each
    // resource too); a person exports through the sharing pipeline instead.
    if guard.caller().auth.role != caldicott_policy::Role::System {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            IssueType::Security,
            "bulk export is for system clients",
        ));
    }
    let async_ok = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == "respond-async"));
    if !async_ok {
        return Err(ApiError::bad_request(
            "$export requires the header Prefer: respond-async",
        ));
    }
    let mut since = i64::MIN;
    let mut types: Option<Vec<ResourceType>> = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "_outputFormat" => {
                if !matches!(
                    v.as_ref(),
                    "application/fhir+ndjson" | "application/ndjson" | "ndjson"
                ) {
                    return Err(ApiError::bad_request(
                        "_outputFormat must be application/fhir+ndjson",
                    ));
                }
            }
            "_since" => {
                since = parse_instant(&v)
                    .ok_or_else(|| ApiError::bad_request("_since must be an instant"))?;
            }
            "_type" => {
                let mut list = Vec::new();
                for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !caldicott_fhir::definitions::is_resource_type(t) {
                        return Err(ApiError::bad_request(
                            "_type names an unknown resource type",
                        ));
                    }
                    list.push(ResourceType::new(t).map_err(|_| ApiError::bad_request("_type"))?);
                }
                types = Some(list);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "$export does not support the parameter {other}"
                )));
            }
        }
    }
    let patients = match &level {
        Level::Group(gid) => {
            let g = api.store.read(
                &ResourceType::new("Group").map_err(|_| ApiError::internal("type"))?,
                gid,
                guard,
            )?;
            let v: Value = serde_json::from_slice(&g.body)
                .map_err(|_| ApiError::internal("stored Group is not JSON"))?;
            let members: HashSet<String> = v["member"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["entity"]["reference"].as_str())
                .filter(|r| r.starts_with("Patient/"))
                .map(str::to_owned)
                .collect();
            Some(members)
        }
        Level::Patient => None,
        Level::System => None,
    };
    let compartment_only = !matches!(level, Level::System);
    let types = types.unwrap_or_else(|| {
        caldicott_fhir::definitions::RESOURCE_TYPES
            .iter()
            .filter(|t| {
                !compartment_only
                    || **t == "Patient"
                    || !caldicott_fhir::definitions::patient_compartment_params(t).is_empty()
            })
            .filter_map(|t| ResourceType::new(t).ok())
            .collect()
    });
    let mut key = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut key[..]).map_err(|_| ApiError::internal("no randomness"))?;
    let job = Arc::new(Job {
        id: new_id().to_string(),
        owner: guard.caller().auth.user.name.clone(),
        key,
        state: Mutex::new(State::Running),
        progress: AtomicU64::new(0),
        cancelled: AtomicBool::new(false),
        files: Mutex::new(HashMap::new()),
        created: std::time::Instant::now(),
    });
    {
        let mut jobs = api.exports.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if jobs.len() >= MAX_JOBS {
            let oldest = jobs
                .values()
                .min_by_key(|j| j.created)
                .map(|j| j.id.clone());
            if let Some(o) = oldest {
                jobs.remove(&o);
                let _ = std::fs::remove_dir_all(api.exports.dir.join(&o));
            }
        }
        jobs.insert(job.id.clone(), Arc::clone(&job));
    }
    let request = format!(
        "{base}/$export{}",
        query.map(|q| format!("?{q}")).unwrap_or_default()
    );
    let store = Arc::clone(&api.store);
    let directory = Arc::clone(&api.directory);
    let audit = Arc::clone(&api.audit);
    let caller = guard.caller().clone();
    let origin = guard.origin().clone();
    let dir = api.exports.dir.join(&job.id);
    let api_base = base.to_owned();
    let base = base.to_owned();
    let spec = Spec {
        types,
        since,
        compartment_only,
        patients,
    };
    let j = Arc::clone(&job);
    std::thread::spawn(move || {
        let started = caldicott_vault::now_micros();
        // Each exported resource is decided for the caller, as a search would be.
        let guard = Guard::new(&store, &directory, audit.as_ref(), &caller, origin);
        let result = run(&store, &guard, &j, &dir, &spec, &base);
        // The files are offered only once what they hold is in the audit trail.
        let result = match audit.record(guard.take_pending()) {
            Ok(()) => result,
            Err(e) => Err(e.to_string()),
        };
        let result = result.map(|outputs| {
            json!({
                "transactionTime": instant(started),
                "request": request,
                "requiresAccessToken": true,
                "output": outputs,
                "error": [],
            })
        });
        let state = match result {
            Ok(m) => State::Done(m),
            Err(e) => {
                tracing::warn!(error = %e, "bulk export failed");
                State::Failed(e)
            }
        };
        *j.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    });
    let mut resp = response::value(StatusCode::ACCEPTED, &information("export started"));
    content_location(
        &mut resp,
        &format!("{}/$export-status/{}", api_base, job.id),
    );
    Ok(resp)
}

struct Spec {
    types: Vec<ResourceType>,
    since: i64,
    compartment_only: bool,
    patients: Option<HashSet<String>>,
}

/// Writes the job's files; returns the manifest's `output` entries.
fn run(
    store: &Store,
    guard: &Guard,
    job: &Job,
    dir: &std::path::Path,
    spec: &Spec,
    base: &str,
) -> Result<Vec<Value>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the export directory: {e}"))?;
    let mut outputs = Vec::new();
    for rtype in &spec.types {
        let mut writer: Option<SealedWriter> = None;
        let mut part = 0u32;
        for org in store.organisations() {
            let mut after: Option<ResourceId> = None;
            loop {
                if job.cancelled.load(Ordering::Relaxed) {
                    return Err("cancelled".into());
                }
                let batch = store
                    .vault()
                    .scan(&org, rtype, after.as_ref(), 1000)
                    .map_err(|e| e.to_string())?;
                let Some(last) = batch.last() else { break };
                after = Some(last.id.clone());
                for r in batch {
                    if r.written_at < spec.since {
                        continue;
                    }
                    if spec.compartment_only && rtype.as_str() != "Patient"
                        || spec.patients.is_some()
                    {
                        let in_scope = if rtype.as_str() == "Patient" {
                            spec.patients
                                .as_ref()
                                .is_none_or(|p| p.contains(&format!("Patient/{}", r.id)))
                        } else {
                            let v: Value = serde_json::from_slice(&r.body)
                                .map_err(|_| "stored resource is not JSON".to_string())?;
                            let pats = extract::patients(&v);
                            !pats.is_empty()
                                && spec
                                    .patients
                                    .as_ref()
                                    .is_none_or(|p| pats.iter().any(|x| p.contains(x)))
                        };
                        if !in_scope {
                            continue;
                        }
                    }
                    if !guard
                        .permits_record(Action::Export, &r)
                        .map_err(|e| e.to_string())?
                    {
                        continue;
                    }
                    if writer.as_ref().is_some_and(|w| w.lines >= LINES_PER_FILE)
                        && let Some(w) = writer.take()
                    {
                        outputs.push(w.finish(job, base)?);
                    }
                    if writer.is_none() {
                        part += 1;
                        let name = format!("{rtype}-{part}.ndjson");
                        writer = Some(SealedWriter::create(job, dir, name)?);
                    }
                    if let Some(w) = writer.as_mut() {
                        w.line(&r.body)?;
                    }
                    job.progress.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(w) = writer.take() {
            outputs.push(w.finish(job, base)?);
        }
    }
    Ok(outputs)
}

fn cipher(job: &Job) -> Result<LessSafeKey, String> {
    UnboundKey::new(&AES_256_GCM, &job.key[..])
        .map(LessSafeKey::new)
        .map_err(|_| "cannot set up the export key".to_string())
}

fn chunk_aad(job: &str, file: &str, index: u64, last: bool) -> Vec<u8> {
    format!("caldicott export v1 job={job} file={file} chunk={index} last={last}").into_bytes()
}

fn nonce(index: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Writes one output file as sealed chunks: `[u32 length][ciphertext+tag]`, repeated.
struct SealedWriter {
    key: LessSafeKey,
    job: String,
    name: String,
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    buf: Zeroizing<Vec<u8>>,
    chunks: u64,
    lines: u64,
}

impl SealedWriter {
    fn create(job: &Job, dir: &std::path::Path, name: String) -> Result<Self, String> {
        let path = dir.join(&name);
        let file = std::fs::File::create(&path)
            .map_err(|e| format!("cannot create an export file: {e}"))?;
        Ok(SealedWriter {
            key: cipher(job)?,
            job: job.id.clone(),
            name,
            path,
            file: std::io::BufWriter::new(file),
            buf: Zeroizing::new(Vec::with_capacity(CHUNK + 4096)),
            chunks: 0,
            lines: 0,
        })
    }

    fn line(&mut self, json: &[u8]) -> Result<(), String> {
        self.buf.extend_from_slice(json);
        self.buf.push(b'\n');
        self.lines += 1;
        if self.buf.len() >= CHUNK {
            self.seal(false)?;
        }
        Ok(())
    }

    fn seal(&mut self, last: bool) -> Result<(), String> {
        let aad = chunk_aad(&self.job, &self.name, self.chunks, last);
        let mut data = std::mem::take(&mut *self.buf);
        self.key
            .seal_in_place_append_tag(nonce(self.chunks), Aad::from(&aad[..]), &mut data)
            .map_err(|_| "cannot seal an export chunk".to_string())?;
        let len = u32::try_from(data.len()).map_err(|_| "export chunk too large".to_string())?;
        self.file
            .write_all(&len.to_be_bytes())
            .and_then(|_| self.file.write_all(&data))
            .map_err(|e| format!("cannot write an export file: {e}"))?;
        self.chunks += 1;
        Ok(())
    }

    fn finish(mut self, job: &Job, base: &str) -> Result<Value, String> {
        self.seal(true)?;
        self.file
            .flush()
            .map_err(|e| format!("cannot write an export file: {e}"))?;
        job.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.name.clone(), (self.path.clone(), self.chunks));
        let rtype = self.name.split('-').next().unwrap_or("").to_owned();
        Ok(json!({
            "type": rtype,
            "url": format!("{base}/$export-file/{}/{}", self.job, self.name),
            "count": self.lines,
        }))
    }
}

/// A job, if the caller started it (anyone else's looks like none).
fn owned_job(api: &FhirApi, guard: &Guard, job_id: &str) -> Result<Arc<Job>, ApiError> {
    api.exports
        .get(job_id)
        .filter(|j| j.owner == guard.caller().auth.user.name)
        .ok_or_else(|| ApiError::not_found("no such export job"))
}

/// Reads a file back, checking every chunk.
fn open_file(
    job: &Job,
    name: &str,
    path: &std::path::Path,
    chunks: u64,
) -> Result<Vec<u8>, ApiError> {
    let key = cipher(job).map_err(ApiError::internal)?;
    let mut f =
        std::fs::File::open(path).map_err(|_| ApiError::not_found("this export file is gone"))?;
    let mut out = Vec::new();
    for i in 0..chunks {
        let mut len = [0u8; 4];
        f.read_exact(&mut len)
            .map_err(|_| ApiError::internal("an export file is truncated"))?;
        let mut data = vec![0u8; u32::from_be_bytes(len) as usize];
        f.read_exact(&mut data)
            .map_err(|_| ApiError::internal("an export file is truncated"))?;
        let aad = chunk_aad(&job.id, name, i, i + 1 == chunks);
        let plain = key
            .open_in_place(nonce(i), Aad::from(&aad[..]), &mut data)
            .map_err(|_| ApiError::internal("an export file failed its integrity check"))?;
        out.extend_from_slice(plain);
    }
    Ok(out)
}

/// Status: 202 while running (with `X-Progress`), 200 with the manifest when done, an
/// error outcome if it failed; DELETE cancels and removes the job.
pub fn status(
    api: &FhirApi,
    guard: &Guard,
    job_id: &str,
    method: &Method,
) -> Result<Response, ApiError> {
    let job = owned_job(api, guard, job_id)?;
    if *method == Method::DELETE {
        api.exports.remove(job_id);
        return Ok(response::value(
            StatusCode::ACCEPTED,
            &information("export cancelled and removed"),
        ));
    }
    if *method != Method::GET {
        return Err(ApiError::not_supported(
            "use GET or DELETE on an export status URL",
        ));
    }
    let state = job.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match state {
        State::Running => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::ACCEPTED;
            let p = format!("{} resources written", job.progress.load(Ordering::Relaxed));
            if let Ok(v) = HeaderValue::from_str(&p) {
                r.headers_mut().insert("x-progress", v);
            }
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(r)
        }
        State::Done(manifest) => {
            let mut r = Response::new(Body::from(
                serde_json::to_vec(&manifest).unwrap_or_default(),
            ));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        State::Failed(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueType::Exception,
            format!("the export failed: {e}"),
        )),
    }
}

/// One output file, decrypted, as NDJSON.
pub fn file(api: &FhirApi, guard: &Guard, job_id: &str, name: &str) -> Result<Response, ApiError> {
    let job = owned_job(api, guard, job_id)?;
    let (path, chunks) = job
        .files
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("no such export file"))?;
    let body = open_file(&job, name, &path, chunks)?;
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+ndjson"),
    );
    Ok(r)
}
