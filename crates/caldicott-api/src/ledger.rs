//! The audit ledger's transparency endpoints, at `/ledger`: its signed checkpoint, its
//! leaves for authorised readers, and inclusion and consistency proofs for anyone, so that
//! auditors, witnesses and `caldicott ledger verify|witness` can check that the log only
//! ever grows.
//!
//! | request | answer (`200`) |
//! |---|---|
//! | `GET /ledger/checkpoint` | the latest signed checkpoint (C2SP `tlog-checkpoint` in a signed note), `text/plain; charset=utf-8` |
//! | `GET /ledger/entries?start=S&end=E` | `{"start":S,"end":E',"entries":[…]}`: leaves `[S, E')` as standard padded base64; needs a bearer token the view accepts |
//! | `GET /ledger/proof/inclusion?index=I&size=N` | `{"index":I,"size":N,"proof":[…]}`: RFC 9162 inclusion proof of leaf `I` in the tree of `N` leaves |
//! | `GET /ledger/proof/consistency?from=M&to=N` | `{"from":M,"to":N,"proof":[…]}`: RFC 9162 consistency proof from the tree of `M` leaves to that of `N` (empty when `M = N`) |
//! | `GET /ledger/epochs` | `{"current":C,"epochs":[…]}`, oldest first: each `{"epoch","state":"sealed"\|"open","size","root","entries":"stored"\|"gone"}`, a sealed one with `"seal"` (its final signed checkpoint, the note's text), the open one with `"checkpoint"` (the latest), and each epoch ≥ 2 whose first entry is the public record of the seal before it with `"first_entry"` (base64 leaf bytes) |
//!
//! Proof hashes are standard padded base64. Sizes and indices are decimal `u64`s; each
//! parameter must be given exactly once, and no other parameter is accepted.
//!
//! **Epochs.** Without `epoch` every endpoint answers about the current (open) epoch, as it
//! always has. `epoch=N` (at least 1) names one: `/ledger/checkpoint?epoch=N` answers a
//! sealed epoch's seal (the current one's latest checkpoint); `entries`, `proof/inclusion`
//! and `proof/consistency` with `epoch=N` answer within that epoch, bounded by its size,
//! and echo `"epoch":N`. The same access rules apply. An epoch after the current one, or
//! one deleted as a whole, is 404; a sealed epoch whose entries were archived or deleted
//! still answers its seal, but its entries and proofs are 410. Clients checking the link
//! between epochs (`caldicott ledger verify --url`, `ledger witness`) use these.
//!
//! **Entries are paged.** One answer holds at most [`MAX_ENTRIES`] leaves: for a larger
//! range it holds leaves `[S, S + 1000)` and `end` is `S + 1000`, where the client
//! continues. `start = end` answers an empty list. Leaves name users and pseudonymous
//! patients, so they are answered with `Cache-Control: no-store`; checkpoints and proofs
//! are public.
//!
//! Errors are JSON `{"error": "…"}`:
//!
//! | status | when |
//! |---|---|
//! | 400 | a parameter missing, repeated, unknown, not a decimal number, negative, above 2^64 − 1, or out of range (`start 5 is after end 3`, `index 10 is not below size 10`, `size 20 is beyond the log's 12 entries`, `from must be at least 1`, …); messages quote numbers, never other input |
//! | 401, 403 | `/ledger/entries` without an accepted token (as [`LedgerView::authorize_entries`] decides) |
//! | 404 | `epoch=N` names an epoch the log does not have (`epoch 5 does not exist: the log is in epoch 4`) |
//! | 410 | `epoch=N` names a sealed epoch whose entries are no longer stored (entries and proofs; its seal is still answered) |
//! | 405 | a method other than `GET` or `HEAD` |
//! | 500 | the view failed unexpectedly (a panic, or it broke its contract) |
//! | 503 | the ledger's storage failed (details are logged, not returned) |
//!
//! The storage is behind [`LedgerView`], a blocking trait: every call runs on Tokio's
//! blocking pool. Its epoch methods have defaults for a log that was never sealed.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use caldicott_ledger::Hash;
use serde_json::json;

/// Most leaves one `/ledger/entries` answer holds.
pub const MAX_ENTRIES: u64 = 1000;

/// Why a ledger request failed; each variant has its HTTP status
/// ([`LedgerHttpError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerHttpError {
    /// A parameter is missing, malformed or out of range (400). The message is returned.
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or credentials not recognised (401). The message is returned.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials recognised but not allowed to read leaves (403). The message is returned.
    #[error("{0}")]
    Forbidden(String),
    /// An epoch the log does not have (404). The message is returned.
    #[error("{0}")]
    NotFound(String),
    /// A sealed epoch whose entries are no longer stored (archived or deleted): only its
    /// seal is answered (410). The message is returned.
    #[error("{0}")]
    Gone(String),
    /// The storage failed (503). The message is logged, not returned.
    #[error("the ledger is unavailable: {0}")]
    Unavailable(String),
    /// A bug: the view panicked or broke its contract (500). The message is logged, not
    /// returned.
    #[error("the ledger failed unexpectedly: {0}")]
    Internal(String),
}

impl LedgerHttpError {
    /// The HTTP status of this error.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            LedgerHttpError::BadRequest(_) => StatusCode::BAD_REQUEST,
            LedgerHttpError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            LedgerHttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            LedgerHttpError::NotFound(_) => StatusCode::NOT_FOUND,
            LedgerHttpError::Gone(_) => StatusCode::GONE,
            LedgerHttpError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            LedgerHttpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for LedgerHttpError {
    fn into_response(self) -> Response {
        let message = match &self {
            LedgerHttpError::BadRequest(m)
            | LedgerHttpError::Unauthorized(m)
            | LedgerHttpError::Forbidden(m)
            | LedgerHttpError::NotFound(m)
            | LedgerHttpError::Gone(m) => m.as_str(),
            LedgerHttpError::Unavailable(_) => {
                tracing::warn!(error = %self, "ledger request failed");
                "the ledger is unavailable; try again later"
            }
            LedgerHttpError::Internal(_) => {
                tracing::error!(error = %self, "ledger request failed");
                "the ledger request failed unexpectedly"
            }
        };
        let mut r = (self.status(), axum::Json(json!({ "error": message }))).into_response();
        if matches!(self, LedgerHttpError::Unauthorized(_)) {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// What the endpoints read: the ledger's storage, seen through blocking calls.
///
/// The router checks every parameter against [`LedgerView::size`] before it asks for
/// entries or proofs, so an implementation may treat an out-of-range request as a bug.
pub trait LedgerView: Send + Sync + 'static {
    /// The latest signed checkpoint (a C2SP signed note, text).
    ///
    /// # Errors
    /// [`LedgerHttpError::Unavailable`] when storage fails.
    fn checkpoint(&self) -> Result<String, LedgerHttpError>;

    /// Number of leaves proofs can be asked about (≥ the latest checkpoint's size).
    ///
    /// # Errors
    /// [`LedgerHttpError::Unavailable`] when storage fails.
    fn size(&self) -> Result<u64, LedgerHttpError>;

    /// Leaf bytes `[start, end)`, exactly `end - start` of them (`start ≤ end ≤ size`, at
    /// most [`MAX_ENTRIES`]).
    ///
    /// # Errors
    /// [`LedgerHttpError::Unavailable`] when storage fails.
    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, LedgerHttpError>;

    /// The inclusion proof of leaf `index` in the tree of `size` leaves
    /// (`index < size ≤` [`LedgerView::size`]).
    ///
    /// # Errors
    /// [`LedgerHttpError::Unavailable`] when storage fails.
    fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerHttpError>;

    /// The consistency proof from the tree of `from` leaves to that of `to`
    /// (`0 < from ≤ to ≤` [`LedgerView::size`]).
    ///
    /// # Errors
    /// [`LedgerHttpError::Unavailable`] when storage fails.
    fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, LedgerHttpError>;

    /// Whether this request may read leaf contents (they name users and pseudonymous
    /// patients): the implementation checks the bearer token. Checkpoints and proofs are
    /// public.
    ///
    /// # Errors
    /// [`LedgerHttpError::Unauthorized`] without recognised credentials,
    /// [`LedgerHttpError::Forbidden`] when they do not allow it,
    /// [`LedgerHttpError::Unavailable`] when the check cannot be made.
    fn authorize_entries(&self, headers: &HeaderMap) -> Result<(), LedgerHttpError>;

    /// The log's epochs: the current one's number and the sealed ones still known. The
    /// default is a log that was never sealed (epoch 1 only).
    ///
    /// # Errors
    /// [`LedgerHttpError::Unavailable`] when storage fails.
    fn epochs(&self) -> Result<Epochs, LedgerHttpError> {
        Ok(Epochs {
            current: 1,
            sealed: Vec::new(),
        })
    }

    /// The first entry of `epoch` (≥ 2) when it is the record of the seal before it, which
    /// is public (it names the sealed epoch's size and root, an administrator's role and
    /// organisation, never a patient); `None` when the epoch is empty, no longer stored,
    /// or its first entry is anything else. The default has none.
    ///
    /// # Errors
    /// [`LedgerHttpError::Unavailable`] when storage fails.
    fn link_entry(&self, epoch: u64) -> Result<Option<Vec<u8>>, LedgerHttpError> {
        let _ = epoch;
        Ok(None)
    }

    /// [`LedgerView::entries`] of `epoch` (the current one or a sealed one still stored;
    /// `end ≤` its size). The default serves epoch 1 only.
    ///
    /// # Errors
    /// [`LedgerHttpError::Gone`] when the epoch's entries are no longer stored,
    /// [`LedgerHttpError::Unavailable`] when storage fails.
    fn epoch_entries(
        &self,
        epoch: u64,
        start: u64,
        end: u64,
    ) -> Result<Vec<Vec<u8>>, LedgerHttpError> {
        one_epoch(epoch)?;
        self.entries(start, end)
    }

    /// [`LedgerView::inclusion`] in `epoch`. The default serves epoch 1 only.
    ///
    /// # Errors
    /// As [`LedgerView::epoch_entries`].
    fn epoch_inclusion(
        &self,
        epoch: u64,
        index: u64,
        size: u64,
    ) -> Result<Vec<Hash>, LedgerHttpError> {
        one_epoch(epoch)?;
        self.inclusion(index, size)
    }

    /// [`LedgerView::consistency`] in `epoch`. The default serves epoch 1 only.
    ///
    /// # Errors
    /// As [`LedgerView::epoch_entries`].
    fn epoch_consistency(
        &self,
        epoch: u64,
        from: u64,
        to: u64,
    ) -> Result<Vec<Hash>, LedgerHttpError> {
        one_epoch(epoch)?;
        self.consistency(from, to)
    }
}

/// The defaults' answer for a view of one epoch: the router never asks for another.
fn one_epoch(epoch: u64) -> Result<(), LedgerHttpError> {
    if epoch == 1 {
        Ok(())
    } else {
        Err(LedgerHttpError::Internal(format!(
            "asked for epoch {epoch} of a view that has only epoch 1"
        )))
    }
}

/// The log's epochs, as [`LedgerView::epochs`] sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epochs {
    /// The open epoch's number (new entries go there).
    pub current: u64,
    /// The sealed epochs still known, oldest first (all below `current`).
    pub sealed: Vec<SealedEpoch>,
}

/// A sealed epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedEpoch {
    /// Its number.
    pub epoch: u64,
    /// Its final signed checkpoint (the signed note's text): the epoch's size and root.
    pub seal: String,
    /// Whether its entries and nodes are still stored. Once archived or deleted, only the
    /// seal is answered; entries and proofs are 410.
    pub stored: bool,
}

/// The `/ledger` routes over `view`.
pub fn router<V: LedgerView>(view: Arc<V>) -> Router {
    Router::new()
        .route("/ledger/checkpoint", only_get(get(checkpoint::<V>)))
        .route("/ledger/epochs", only_get(get(epochs::<V>)))
        .route("/ledger/entries", only_get(get(entries::<V>)))
        .route("/ledger/proof/inclusion", only_get(get(inclusion::<V>)))
        .route("/ledger/proof/consistency", only_get(get(consistency::<V>)))
        .with_state(view)
}

/// `GET` (and so `HEAD`) only; anything else is a JSON 405 with `Allow`.
fn only_get<V: LedgerView>(route: MethodRouter<Arc<V>>) -> MethodRouter<Arc<V>> {
    route.fallback(|| async {
        let mut r = (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::Json(json!({ "error": "only GET is allowed here" })),
        )
            .into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    })
}

/// Runs `f` on the blocking pool.
async fn blocking<V: LedgerView, T: Send + 'static>(
    view: Arc<V>,
    f: impl FnOnce(&V) -> Result<T, LedgerHttpError> + Send + 'static,
) -> Result<T, LedgerHttpError> {
    tokio::task::spawn_blocking(move || f(&view))
        .await
        .map_err(|e| LedgerHttpError::Internal(format!("the ledger task failed: {e}")))?
}

fn respond(r: Result<Response, LedgerHttpError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// "1 entry", "12 entries".
fn entries_phrase(n: u64) -> String {
    if n == 1 {
        "1 entry".to_owned()
    } else {
        format!("{n} entries")
    }
}

fn bad(message: String) -> LedgerHttpError {
    LedgerHttpError::BadRequest(message)
}

/// A parameter value: decimal digits of a `u64`. The message names the parameter, never
/// quotes the value.
fn parse_number(name: &str, value: &str) -> Result<u64, LedgerHttpError> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = value.strip_prefix('-')
        && digits(rest)
    {
        return Err(bad(format!("{name} must not be negative")));
    }
    if !digits(value) {
        return Err(bad(format!("{name} must be a decimal number")));
    }
    value
        .parse()
        .map_err(|_| bad(format!("{name} is too large: at most {}", u64::MAX)))
}

/// The query's values for exactly these parameter names, each given once, and the optional
/// `epoch` (at least 1).
fn parameters<const N: usize>(
    query: Option<&str>,
    names: [&'static str; N],
) -> Result<([u64; N], Option<u64>), LedgerHttpError> {
    let mut values: [Option<u64>; N] = [None; N];
    let mut epoch = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "epoch" {
            if epoch.is_some() {
                return Err(bad("epoch is given more than once".to_owned()));
            }
            epoch = Some(parse_epoch(&value)?);
            continue;
        }
        let Some(i) = names.iter().position(|n| *n == key) else {
            return Err(bad(format!(
                "unknown query parameter; this endpoint takes {} (and optionally epoch)",
                names.join(" and ")
            )));
        };
        if values[i].is_some() {
            return Err(bad(format!("{} is given more than once", names[i])));
        }
        values[i] = Some(parse_number(names[i], &value)?);
    }
    let mut out = [0u64; N];
    for (i, v) in values.into_iter().enumerate() {
        out[i] = v.ok_or_else(|| bad(format!("{} is required", names[i])))?;
    }
    Ok((out, epoch))
}

/// An `epoch` value: a decimal number, at least 1.
fn parse_epoch(value: &str) -> Result<u64, LedgerHttpError> {
    match parse_number("epoch", value)? {
        0 => Err(bad(
            "epoch must be at least 1: epochs are numbered from 1".to_owned()
        )),
        n => Ok(n),
    }
}

fn base64_all<T: AsRef<[u8]>>(items: &[T]) -> Vec<String> {
    items.iter().map(|i| STANDARD.encode(i.as_ref())).collect()
}

/// The size and root a checkpoint note states (its second and third lines), unverified:
/// the view signed it; clients verify it.
fn note_head(note: &str) -> Option<(u64, Hash)> {
    let mut lines = note.lines().skip(1);
    let size = lines.next()?.parse().ok()?;
    let root = Hash::from_base64(lines.next()?).ok()?;
    Some((size, root))
}

/// What a request with `epoch=N` is about.
enum Target {
    /// The open epoch.
    Current,
    /// A sealed epoch: its size and seal, and whether its rows are still stored.
    Sealed {
        size: u64,
        seal: String,
        stored: bool,
    },
}

/// Finds epoch `n` among the view's epochs.
fn target<V: LedgerView>(v: &V, n: u64) -> Result<Target, LedgerHttpError> {
    let epochs = v.epochs()?;
    if n == epochs.current {
        return Ok(Target::Current);
    }
    if n > epochs.current {
        return Err(LedgerHttpError::NotFound(format!(
            "epoch {n} does not exist: the log is in epoch {}",
            epochs.current
        )));
    }
    let sealed = epochs
        .sealed
        .into_iter()
        .find(|e| e.epoch == n)
        .ok_or_else(|| {
            LedgerHttpError::NotFound(format!(
                "epoch {n} is no longer kept by this log (deleted as a whole)"
            ))
        })?;
    let (size, _) = note_head(&sealed.seal).ok_or_else(|| {
        LedgerHttpError::Internal(format!("the seal of epoch {n} is not a checkpoint"))
    })?;
    Ok(Target::Sealed {
        size,
        seal: sealed.seal,
        stored: sealed.stored,
    })
}

/// The number of leaves that requests about `epoch` (or the current one, when `None`) may
/// name, refusing an epoch whose entries are gone.
fn bound<V: LedgerView>(v: &V, epoch: Option<u64>) -> Result<u64, LedgerHttpError> {
    let Some(n) = epoch else {
        return v.size();
    };
    match target(v, n)? {
        Target::Current => v.size(),
        Target::Sealed {
            size, stored: true, ..
        } => Ok(size),
        Target::Sealed { stored: false, .. } => Err(LedgerHttpError::Gone(format!(
            "the entries of sealed epoch {n} are no longer stored (archived or deleted); \
             its seal is still at /ledger/checkpoint?epoch={n}"
        ))),
    }
}

/// " of epoch N" when an epoch was named.
fn of_epoch(epoch: Option<u64>) -> String {
    epoch.map_or_else(String::new, |n| format!(" of epoch {n}"))
}

async fn checkpoint<V: LedgerView>(
    State(view): State<Arc<V>>,
    RawQuery(query): RawQuery,
) -> Response {
    respond(
        async move {
            // Only `epoch` means anything here; other parameters are ignored, as before
            // epochs were served.
            let mut epoch = None;
            for (key, value) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
                if key == "epoch" {
                    if epoch.is_some() {
                        return Err(bad("epoch is given more than once".to_owned()));
                    }
                    epoch = Some(parse_epoch(&value)?);
                }
            }
            let note = blocking(view, move |v| match epoch {
                None => v.checkpoint(),
                Some(n) => match target(v, n)? {
                    Target::Current => v.checkpoint(),
                    Target::Sealed { seal, .. } => Ok(seal),
                },
            })
            .await?;
            Ok((
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                note,
            )
                .into_response())
        }
        .await,
    )
}

async fn epochs<V: LedgerView>(State(view): State<Arc<V>>) -> Response {
    respond(
        blocking(view, |v| {
            let epochs = v.epochs()?;
            let mut out = Vec::with_capacity(epochs.sealed.len() + 1);
            let link = |n: u64| -> Result<Option<String>, LedgerHttpError> {
                if n < 2 {
                    return Ok(None);
                }
                Ok(v.link_entry(n)?.map(|l| STANDARD.encode(l)))
            };
            for e in &epochs.sealed {
                let (size, root) = note_head(&e.seal).ok_or_else(|| {
                    LedgerHttpError::Internal(format!(
                        "the seal of epoch {} is not a checkpoint",
                        e.epoch
                    ))
                })?;
                let mut item = json!({
                    "epoch": e.epoch,
                    "state": "sealed",
                    "size": size,
                    "root": root.to_base64(),
                    "seal": e.seal,
                    "entries": if e.stored { "stored" } else { "gone" },
                });
                if e.stored
                    && let Some(first) = link(e.epoch)?
                {
                    item["first_entry"] = first.into();
                }
                out.push(item);
            }
            let note = v.checkpoint()?;
            let (size, root) = note_head(&note).ok_or_else(|| {
                LedgerHttpError::Internal("the latest checkpoint is not a checkpoint".to_owned())
            })?;
            let mut item = json!({
                "epoch": epochs.current,
                "state": "open",
                "size": size,
                "root": root.to_base64(),
                "checkpoint": note,
                "entries": "stored",
            });
            if let Some(first) = link(epochs.current)? {
                item["first_entry"] = first.into();
            }
            out.push(item);
            let body = json!({ "current": epochs.current, "epochs": out });
            Ok(([(header::CACHE_CONTROL, "no-cache")], axum::Json(body)).into_response())
        })
        .await,
    )
}

async fn entries<V: LedgerView>(
    State(view): State<Arc<V>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    respond(
        async move {
            // Authorisation first: a caller without a token learns nothing more here.
            let view2 = Arc::clone(&view);
            blocking(view2, move |v| v.authorize_entries(&headers)).await?;
            let ([start, end], epoch) = parameters(query.as_deref(), ["start", "end"])?;
            if start > end {
                return Err(bad(format!("start {start} is after end {end}")));
            }
            let (end, leaves) = blocking(view, move |v| {
                let size = bound(v, epoch)?;
                if end > size {
                    return Err(bad(format!(
                        "end {end} is beyond the log's {}{}",
                        entries_phrase(size),
                        of_epoch(epoch)
                    )));
                }
                let end = end.min(start.saturating_add(MAX_ENTRIES));
                let leaves = match epoch {
                    None => v.entries(start, end)?,
                    Some(n) => v.epoch_entries(n, start, end)?,
                };
                if leaves.len() as u64 != end - start {
                    return Err(LedgerHttpError::Internal(format!(
                        "asked for {} leaves, the view returned {}",
                        end - start,
                        leaves.len()
                    )));
                }
                Ok((end, leaves))
            })
            .await?;
            let mut body = json!({ "start": start, "end": end, "entries": base64_all(&leaves) });
            if let Some(n) = epoch {
                body["epoch"] = n.into();
            }
            Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response())
        }
        .await,
    )
}

async fn inclusion<V: LedgerView>(
    State(view): State<Arc<V>>,
    RawQuery(query): RawQuery,
) -> Response {
    respond(
        async move {
            let ([index, size], epoch) = parameters(query.as_deref(), ["index", "size"])?;
            if index >= size {
                return Err(bad(format!("index {index} is not below size {size}")));
            }
            let proof = blocking(view, move |v| {
                let log = bound(v, epoch)?;
                if size > log {
                    return Err(bad(format!(
                        "size {size} is beyond the log's {}{}",
                        entries_phrase(log),
                        of_epoch(epoch)
                    )));
                }
                match epoch {
                    None => v.inclusion(index, size),
                    Some(n) => v.epoch_inclusion(n, index, size),
                }
            })
            .await?;
            let mut body = json!({ "index": index, "size": size, "proof": base64_all(&proof) });
            if let Some(n) = epoch {
                body["epoch"] = n.into();
            }
            Ok(axum::Json(body).into_response())
        }
        .await,
    )
}

async fn consistency<V: LedgerView>(
    State(view): State<Arc<V>>,
    RawQuery(query): RawQuery,
) -> Response {
    respond(
        async move {
            let ([from, to], epoch) = parameters(query.as_deref(), ["from", "to"])?;
            if from > to {
                return Err(bad(format!("from {from} is after to {to}")));
            }
            if from == 0 {
                return Err(bad(
                    "from must be at least 1: every tree extends the empty tree".to_owned(),
                ));
            }
            let proof = blocking(view, move |v| {
                let log = bound(v, epoch)?;
                if to > log {
                    return Err(bad(format!(
                        "to {to} is beyond the log's {}{}",
                        entries_phrase(log),
                        of_epoch(epoch)
                    )));
                }
                match epoch {
                    None => v.consistency(from, to),
                    Some(n) => v.epoch_consistency(n, from, to),
                }
            })
            .await?;
            let mut body = json!({ "from": from, "to": to, "proof": base64_all(&proof) });
            if let Some(n) = epoch {
                body["epoch"] = n.into();
            }
            Ok(axum::Json(body).into_response())
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("n", "0"), Ok(0));
        assert_eq!(parse_number("n", "007"), Ok(7));
        assert_eq!(parse_number("n", "18446744073709551615"), Ok(u64::MAX));
        let msg = |v: &str| parse_number("n", v).unwrap_err().to_string();
        assert_eq!(msg("-1"), "n must not be negative");
        assert_eq!(
            msg("18446744073709551616"),
            format!("n is too large: at most {}", u64::MAX)
        );
        for v in ["", "+1", " 1", "1 ", "0x10", "1e3", "-", "--1", "1.0", "١"] {
            assert_eq!(msg(v), "n must be a decimal number", "{v:?}");
        }
    }

    #[test]
    fn parameter_sets() {
        assert_eq!(parameters(Some("a=1&b=2"), ["a", "b"]), Ok(([1, 2], None)));
        assert_eq!(parameters(Some("b=2&a=1"), ["a", "b"]), Ok(([1, 2], None)));
        assert_eq!(
            parameters(Some("b=2&epoch=3&a=1"), ["a", "b"]),
            Ok(([1, 2], Some(3)))
        );
        let msg = |q: Option<&str>| parameters(q, ["a", "b"]).unwrap_err().to_string();
        assert_eq!(msg(None), "a is required");
        assert_eq!(msg(Some("a=1")), "b is required");
        assert_eq!(msg(Some("a=1&a=1&b=2")), "a is given more than once");
        assert_eq!(
            msg(Some("a=1&b=2&<script>=1")),
            "unknown query parameter; this endpoint takes a and b (and optionally epoch)"
        );
        assert_eq!(
            msg(Some("a=1&b=2&epoch=0")),
            "epoch must be at least 1: epochs are numbered from 1"
        );
        assert_eq!(
            msg(Some("a=1&b=2&epoch=2&epoch=2")),
            "epoch is given more than once"
        );
        assert_eq!(
            msg(Some("a=1&b=2&epoch=x")),
            "epoch must be a decimal number"
        );
        let note = "o\n12\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n\u{2014} k sig\n";
        assert_eq!(
            note_head(note),
            Some((
                12,
                Hash::from_base64("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").unwrap()
            ))
        );
        assert_eq!(note_head("o\nx\n"), None);
        assert_eq!(msg(Some("a=%2D5&b=1")), "a must not be negative");
        assert_eq!(entries_phrase(1), "1 entry");
        assert_eq!(entries_phrase(0), "0 entries");
    }
}
