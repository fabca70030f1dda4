//! The mail quarantine page: the messages the mail gateway holds, with the reasons for each,
//! and what a Caldicott guardian or a sysadmin may do with them: release, delete, or mark
//! as not spam.
//!
//! | request | what |
//! |---|---|
//! | `GET /mail` | the held messages, oldest first: received, direction, sender, subject, size, verdict and each named symbol with its score and reason |
//! | `POST /mail/{id}/release` | into the gateway's queue for delivery, then out of the quarantine |
//! | `POST /mail/{id}/delete` | gone for good; inbound mail is kept (sealed) as spam for training, as the CLI's delete does |
//! | `POST /mail/{id}/not-spam` | (inbound only) kept as ham for training, released, removed |
//!
//! What it is: the console face of `caldicott mail quarantine` (`src/mail_quarantine.rs`),
//! over the same `caldicott_mail::quarantine::VaultQuarantine` (sealed in the vault) and
//! doing the same steps in the same order: each action is recorded first as the CLI
//! records it (an `admin` event `mail-release`, `mail-delete` or `mail-mark-not-spam`,
//! `rtype` `MailMessage`, the message id, purpose `mail-quarantine`, never the content),
//! then a release writes the message into the gateway's durable queue directory with
//! `quarantine::requeue` (the running gateway picks it up on its next queue scan) and only
//! then deletes it from the quarantine. "Not spam" is the CLI's `mark-not-spam`: the
//! message (as released, gateway verdict fields stripped) is kept under
//! `mail-ham-feedback/<id>`, which `caldicott mail train --quarantine-feedback DATA` reads
//! as ham, and the message is released.
//!
//! Where the queue is: the gateway's configuration file names its queue directory; the
//! console process does not read that file. The gateway (or an administrator) records the
//! queue directory of a gateway whose quarantine is this vault with [`register_gateway`]
//! (a directory entry `console-mail-gateway/queue-dir`); the page reads it with
//! [`gateway_queue_dir`]. With no registration and nothing held, the page says the gateway
//! is not set up; with messages held but no registration, it lists them and allows delete,
//! and says that release needs the command line (`caldicott mail quarantine release
//! --config`), because the console cannot know where to queue them.
//!
//! What it is not: a mail reader. The body of a held message is never shown here (the CLI's
//! `show --raw` is audited for that), and the quarantine belongs to the deployment's
//! gateway, not to one organisation.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use caldicott_api::audit::{EventKind, Outcome, security_event};
use caldicott_mail::quarantine::{self, Direction, Entry, QuarantineError, VaultQuarantine};
use caldicott_policy::Role;
use caldicott_vault::{Vault, VaultError};

use crate::web::{self, Errors, FieldError, Layout, Viewer};
use crate::{ConsoleState, tri};

/// Who may act on quarantined mail (the CLI's `--by` roles).
const MAIL_ROLES: &[Role] = &[Role::CaldicottGuardian, Role::Sysadmin];

/// The directory entry naming the gateway's queue directory.
pub const GATEWAY_KIND: &str = "console-mail-gateway";
const QUEUE_KEY: &str = "queue-dir";

/// Why the gateway's registration could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the mail queue directory {0:?} is not valid UTF-8")]
    NotUtf8(PathBuf),
    #[error("the mail queue directory must be an absolute path, not {0:?}")]
    NotAbsolute(PathBuf),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// Records that the mail gateway whose quarantine is this vault queues mail in
/// `queue_dir` (replacing an earlier registration): the console then releases held
/// messages into it. To be called by `caldicott mail serve` when `[gateway] data` names
/// this data directory.
pub fn register_gateway(vault: &Vault, queue_dir: &Path) -> Result<(), GatewayError> {
    if !queue_dir.is_absolute() {
        return Err(GatewayError::NotAbsolute(queue_dir.to_owned()));
    }
    let Some(text) = queue_dir.to_str() else {
        return Err(GatewayError::NotUtf8(queue_dir.to_owned()));
    };
    let current = vault.dir_get(GATEWAY_KIND, QUEUE_KEY)?;
    if current
        .as_ref()
        .is_some_and(|e| e.value.as_slice() == text.as_bytes())
    {
        return Ok(());
    }
    vault.dir_put(
        GATEWAY_KIND,
        QUEUE_KEY,
        text.as_bytes(),
        current.map(|e| e.version),
    )?;
    Ok(())
}

/// The queue directory registered with [`register_gateway`], if any.
pub fn gateway_queue_dir(vault: &Vault) -> Result<Option<PathBuf>, GatewayError> {
    Ok(vault
        .dir_get(GATEWAY_KIND, QUEUE_KEY)?
        .and_then(|e| String::from_utf8(e.value.to_vec()).ok())
        .map(PathBuf::from))
}

pub fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/mail", get(list_page))
        .route("/mail/{id}/{action}", post(action_post))
}

// ---------------------------------------------------------------------------------------
// The list

struct ReasonRow {
    name: String,
    score: String,
    reason: String,
}

struct MessageRow {
    id: String,
    received: String,
    direction: &'static str,
    inbound: bool,
    sender: String,
    recipients: String,
    subject: String,
    size: String,
    verdict: String,
    score: String,
    reasons: Vec<ReasonRow>,
}

/// A size as people read it.
fn size(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} bytes")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    }
}

fn row(e: &Entry) -> MessageRow {
    let sender = e.from.clone().unwrap_or_else(|| e.mail_from.clone());
    // The reasons a person reads: symbols that scored, and outbound holds (which may
    // score nothing but are why the message is held), as the CLI's list shows them.
    let mut symbols: Vec<_> = e
        .symbols
        .iter()
        .filter(|s| s.score != 0.0 || s.name.starts_with("OUTBOUND_"))
        .collect();
    symbols.sort_by(|a, b| b.score.total_cmp(&a.score));
    MessageRow {
        id: e.id.clone(),
        received: web::date_time(e.received_at.saturating_mul(1_000_000)),
        direction: match e.direction {
            Direction::Inbound => "Inbound",
            Direction::Outbound => "Outbound",
        },
        inbound: e.direction == Direction::Inbound,
        sender: if sender.is_empty() {
            "(no sender: a bounce)".to_owned()
        } else {
            sender
        },
        recipients: e.rcpt_to.join(", "),
        subject: e.subject.clone().unwrap_or_default(),
        size: size(e.size),
        verdict: serde_json::to_value(e.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        score: format!("{:.2}", e.score),
        reasons: symbols
            .into_iter()
            .map(|s| ReasonRow {
                name: s.name.clone(),
                score: format!("{:+.2}", s.score),
                reason: s.reason.clone(),
            })
            .collect(),
    }
}

#[derive(askama::Template)]
#[template(path = "mail/list.html")]
struct ListPage {
    layout: Layout,
    errors: Errors,
    notice: Option<&'static str>,
    rows: Vec<MessageRow>,
    can_release: bool,
}

#[derive(askama::Template)]
#[template(path = "mail/not_set_up.html")]
struct NotSetUpPage {
    layout: Layout,
    /// What was just done (deleting the last message held before any gateway registered).
    notice: Option<&'static str>,
}

/// The held messages and the registered queue directory.
async fn load(
    state: &Arc<ConsoleState>,
    viewer: &Viewer,
) -> Result<(Vec<Entry>, Option<PathBuf>), Response> {
    let vault = Arc::clone(&state.vault);
    let r = web::blocking(move || {
        let q = VaultQuarantine::new(Arc::clone(&vault));
        let entries = q.list().map_err(|e| e.to_string())?;
        let queue = gateway_queue_dir(&vault).map_err(|e| e.to_string())?;
        Ok::<_, String>((entries, queue))
    })
    .await?;
    r.map_err(|e| {
        tracing::error!(error = %e, "the mail quarantine cannot be read");
        web::error_page(
            Some(viewer),
            StatusCode::SERVICE_UNAVAILABLE,
            "Sorry, the service is unavailable",
            "The mail quarantine cannot be read just now. Try again in a few minutes.",
        )
    })
}

fn list_view(
    viewer: &Viewer,
    status: StatusCode,
    entries: &[Entry],
    queue: Option<&PathBuf>,
    errors: Errors,
    notice: Option<&'static str>,
) -> Response {
    if entries.is_empty() && queue.is_none() {
        return web::render(
            StatusCode::OK,
            &NotSetUpPage {
                layout: Layout::new(viewer, "Mail gateway not set up", "mail"),
                notice,
            },
        );
    }
    web::render(
        status,
        &ListPage {
            layout: Layout::new(viewer, "Mail quarantine", "mail"),
            errors,
            notice,
            rows: entries.iter().map(row).collect(),
            can_release: queue.is_some(),
        },
    )
}

async fn list_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), MAIL_ROLES).await);
    let (entries, queue) = tri!(load(&state, &viewer).await);
    let notice = match query.as_deref() {
        Some("done=release") => {
            Some("The message was released into the gateway's queue for delivery.")
        }
        Some("done=delete") => Some("The message was deleted."),
        Some("done=not-spam") => Some(
            "The message was released and kept as an example of good mail for the next training.",
        ),
        _ => None,
    };
    list_view(
        &viewer,
        StatusCode::OK,
        &entries,
        queue.as_ref(),
        Errors::default(),
        notice,
    )
}

// ---------------------------------------------------------------------------------------
// Actions

/// What a form asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Release,
    Delete,
    NotSpam,
}

impl Action {
    /// The URL's last segment.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "release" => Some(Action::Release),
            "delete" => Some(Action::Delete),
            "not-spam" => Some(Action::NotSpam),
            _ => None,
        }
    }

    /// The audit event's action and reason, as `caldicott mail quarantine` records them.
    fn audit(self) -> (&'static str, &'static str) {
        match self {
            Action::Release => ("mail-release", "released from mail quarantine"),
            Action::Delete => ("mail-delete", "deleted from mail quarantine"),
            Action::NotSpam => (
                "mail-mark-not-spam",
                "released and kept as ham for training",
            ),
        }
    }

    fn done(self) -> &'static str {
        match self {
            Action::Release => "release",
            Action::Delete => "delete",
            Action::NotSpam => "not-spam",
        }
    }
}

/// Why an action was not done.
enum Refusal {
    /// Shown inline on the list (409).
    Inline(String),
    NotFound,
    /// The vault, the queue or the audit trail failed.
    Failed(Response),
}

async fn action_post(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    UrlPath((id, action)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), MAIL_ROLES).await);
    let _form = tri!(web::checked_form(&state, &headers, &viewer, &body));
    let not_found = |viewer: &Viewer| {
        web::error_page(
            Some(viewer),
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is no such message in the mail quarantine. It may have been released or deleted already.",
        )
    };
    let Some(action) = Action::parse(&action) else {
        return not_found(&viewer);
    };
    if !quarantine::valid_id(&id) {
        return not_found(&viewer);
    }
    let st = Arc::clone(&state);
    let u = viewer.user().clone();
    let origin = viewer.origin.clone();
    let purpose_now = state.now();
    let msg_id = id.clone();
    let outcome = tri!(
        web::blocking(move || {
            let q = VaultQuarantine::new(Arc::clone(&st.vault));
            let entry = match q.entry(&msg_id) {
                Ok(e) => e,
                Err(QuarantineError::NotFound(_) | QuarantineError::BadId(_)) => {
                    return Err(Refusal::NotFound);
                }
                Err(e) => return Err(failed(&e.to_string())),
            };
            let queue = match action {
                Action::Delete => None,
                Action::Release | Action::NotSpam => {
                    match gateway_queue_dir(&st.vault) {
                        Ok(Some(p)) => Some(p),
                        Ok(None) => {
                            return Err(Refusal::Inline(
                                "The console does not know the mail gateway's queue, so it cannot release messages. Release it with caldicott mail quarantine release --config".to_owned(),
                            ));
                        }
                        Err(e) => return Err(failed(&e.to_string())),
                    }
                }
            };
            if action == Action::NotSpam && entry.direction == Direction::Outbound {
                return Err(Refusal::Inline(
                    "This is outbound mail held for its content, not spam: release it instead if it may be sent".to_owned(),
                ));
            }
            // Recorded before anything happens, as the CLI does: no action goes
            // unaudited. Should a later step fail, the message stays held and a second
            // attempt (recorded again) repeats it.
            let (name, reason) = action.audit();
            // Deleting held inbound mail says it was spam: a sealed copy trains the site's
            // classifier (`caldicott mail train --quarantine-feedback`), as the CLI's delete
            // does. Outbound holds are the organisation's own mail: never spam.
            let spam_feedback =
                action == Action::Delete && entry.direction == Direction::Inbound;
            let reason = if spam_feedback {
                "deleted from mail quarantine; kept as spam for training"
            } else {
                reason
            };
            let mut event = security_event(
                EventKind::Admin,
                name,
                &u.name,
                &u.org,
                &u.role,
                &origin,
                Outcome::Permit,
                reason,
                purpose_now,
            );
            event.rtype = Some("MailMessage".to_owned());
            event.id = Some(entry.id.clone());
            event.purpose = "mail-quarantine".to_owned();
            if let Err(r) = web::record(&st, None, vec![event]) {
                return Err(Refusal::Failed(r));
            }
            let result = (|| {
                match action {
                    Action::Delete => {
                        if spam_feedback {
                            let message = q.message(&entry.id)?;
                            q.add_spam(&entry.id, &quarantine::released_bytes(&message))?;
                        }
                    }
                    Action::Release => {
                        let message = q.message(&entry.id)?;
                        if let Some(dir) = &queue {
                            quarantine::requeue(dir, &entry, &message)?;
                        }
                    }
                    Action::NotSpam => {
                        let message = q.message(&entry.id)?;
                        q.add_ham(&entry.id, &quarantine::released_bytes(&message))?;
                        if let Some(dir) = &queue {
                            quarantine::requeue(dir, &entry, &message)?;
                        }
                    }
                }
                q.delete(&entry.id)?;
                Ok::<_, QuarantineError>(())
            })();
            result.map_err(|e| failed(&e.to_string()))
        })
        .await
    );
    match outcome {
        Ok(()) => web::redirect(&format!("/mail?done={}", action.done())),
        Err(Refusal::NotFound) => not_found(&viewer),
        Err(Refusal::Failed(r)) => r,
        Err(Refusal::Inline(message)) => {
            let (entries, queue) = tri!(load(&state, &viewer).await);
            let mut errors = Errors::default();
            errors.push(FieldError::new("messages", message));
            list_view(
                &viewer,
                StatusCode::CONFLICT,
                &entries,
                queue.as_ref(),
                errors,
                None,
            )
        }
    }
}

/// A failed step: logged (the id and error only), a 503 page.
fn failed(why: &str) -> Refusal {
    tracing::error!(error = %why, "a mail quarantine action failed");
    Refusal::Failed(web::error_page(
        None,
        StatusCode::SERVICE_UNAVAILABLE,
        "Sorry, the service is unavailable",
        "The mail quarantine or the gateway's queue could not be written just now. The message is still held. Try again in a few minutes.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_sizes() {
        assert_eq!(Action::parse("release"), Some(Action::Release));
        assert_eq!(Action::parse("not-spam"), Some(Action::NotSpam));
        assert_eq!(Action::parse("delete"), Some(Action::Delete));
        assert_eq!(Action::parse("show"), None);
        assert_eq!(size(10), "10 bytes");
        assert_eq!(size(2048), "2.0 KB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MB");
    }
}
