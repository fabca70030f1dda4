//! Administration (role `sysadmin` only): the users of the administrator's organisation,
//! adding one (its one-time password shown once), disabling, re-enabling and resetting a
//! user's authenticator; the organisation's API clients (system users) with issuing a
//! token for one (shown once) and revoking a token by pasting it; and the status of the
//! National Data Opt-out and Type 1 lists.
//!
//! | route | what |
//! |---|---|
//! | `GET /administration`, `GET /administration/users` | the organisation's users |
//! | `GET /administration/users/new`, `POST /administration/users` | add a user; the result page shows the one-time password |
//! | `POST /administration/users/{name}/disable`, `/enable`, `/reset-mfa` | change a user, then back to the list |
//! | `GET /administration/tokens`, `POST /administration/tokens` | system clients; issue a token (≤ 24 h), shown once |
//! | `POST /administration/tokens/revoke` | revoke a pasted token |
//! | `GET /administration/opt-outs` | the opt-out lists' size and when they were last replaced |
//!
//! Rules, and where they come from: the same directory calls as the API's `/admin` routes
//! (`caldicott_api::admin`) and the same audit events (`admin` events `user-add`,
//! `user-disable`, `user-enable`, `user-reset-mfa` naming the administrator, with the user
//! as the event's `id`; a change whose event cannot be recorded is reported with 503, the
//! change standing, as the API does). The user name, role and token rules are the
//! directory's (its error becomes the field's message); the practitioner rule
//! (`Practitioner/…`) is the API's. One difference, deliberately stricter: the API lets a
//! sysadmin manage every organisation's users, the console only their own organisation's
//! (a user of another organisation is "not found"). Token issue and revocation have no
//! API route; they record `admin` events `token-issue` (the client as `id`, never the
//! token) and `token-revoke` like the command line's actions are recorded.
//!
//! What it is not: organisation management (`caldicott org add`), or a list of issued
//! tokens (the directory keeps only their hashes: a token is revoked by pasting it).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use caldicott_access::{AccessError, TOKEN_PREFIX, User};
use caldicott_api::audit::{EventKind, Outcome, security_event};
use caldicott_core::OdsCode;
use caldicott_policy::{Purpose, Role, Scopes};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::web::{self, Errors, FieldError, Form, Layout, Viewer};
use crate::{ConsoleState, tri};

/// The longest token an administrator may issue here: a day. Longer-lived tokens are the
/// command line's (`caldicott token issue`), deliberately.
pub const MAX_CONSOLE_TOKEN_HOURS: u64 = 24;

const ADMIN: &[Role] = &[Role::Sysadmin];

pub fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/administration", get(users_page))
        .route("/administration/users", get(users_page).post(add_user))
        .route("/administration/users/new", get(new_user_page))
        .route("/administration/users/{name}/{action}", post(change_user))
        .route("/administration/tokens", get(tokens_page).post(issue_token))
        .route("/administration/tokens/revoke", post(revoke_token))
        .route("/administration/opt-outs", get(optouts_page))
}

// ---------------------------------------------------------------------------------------
// Shared pieces

/// Records an administrative change, as the API's admin routes do; `Err` is the 503 page
/// (the change stands).
fn changed(
    state: &ConsoleState,
    viewer: &Viewer,
    action: &str,
    target: Option<&str>,
    reason: &str,
) -> Result<(), Response> {
    let u = viewer.user();
    let mut event = security_event(
        EventKind::Admin,
        action,
        &u.name,
        &u.org,
        &u.role,
        &viewer.origin,
        Outcome::Permit,
        reason,
        state.now(),
    );
    event.id = target.map(str::to_owned);
    state.audit.record(vec![event]).map_err(|e| {
        tracing::error!(error = %e, "audit trail unavailable for an administrative change");
        web::error_page(
            Some(viewer),
            StatusCode::SERVICE_UNAVAILABLE,
            "The change was made, but it could not be recorded",
            "The change was made, but the audit trail cannot be written just now. Tell your Caldicott guardian, and try again later.",
        )
    })
}

fn unavailable(viewer: &Viewer, e: &AccessError) -> Response {
    tracing::error!(error = %e, "administration: the directory cannot be read or written");
    web::error_page(
        Some(viewer),
        StatusCode::SERVICE_UNAVAILABLE,
        "Sorry, the service is unavailable",
        "The directory cannot be read just now. Try again in a few minutes.",
    )
}

fn not_found(viewer: &Viewer) -> Response {
    web::error_page(
        Some(viewer),
        StatusCode::NOT_FOUND,
        "User not found",
        "There is no such user in your organisation.",
    )
}

/// A user as the list shows them.
pub struct UserRow {
    pub name: String,
    pub role: String,
    pub mfa_enrolled: bool,
    pub last_sign_in: String,
    pub disabled: bool,
    pub practitioner: String,
    pub system: bool,
}

fn row(u: &User) -> UserRow {
    let role = u.role().ok();
    UserRow {
        name: u.name.clone(),
        role: role.map_or_else(|| u.role.clone(), |r| web::role_label(r).to_owned()),
        mfa_enrolled: u.totp_secret.is_some(),
        last_sign_in: u
            .last_sign_in_at
            .map_or_else(|| "Never".to_owned(), web::date_time),
        disabled: u.disabled,
        practitioner: u.practitioner.clone().unwrap_or_default(),
        system: role == Some(Role::System),
    }
}

/// The users of `org`, by name.
fn org_users(state: &ConsoleState, org: &str) -> Result<Vec<User>, AccessError> {
    Ok(state
        .directory
        .users()?
        .into_iter()
        .filter(|u| u.org == org)
        .collect())
}

// ---------------------------------------------------------------------------------------
// Users

#[derive(Deserialize)]
struct Notice {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

impl Notice {
    /// The sentence to show after a change, built from fixed words (the name is escaped
    /// by the template like any other text).
    fn text(&self) -> Option<String> {
        let what = match self.done.as_deref()? {
            "disable" => "is disabled: their sessions and tokens no longer work",
            "enable" => "is enabled again",
            "reset-mfa" => "will set up a new authenticator at their next sign-in",
            _ => return None,
        };
        let user: String = self.user.as_deref()?.chars().take(64).collect();
        Some(format!("{user} {what}."))
    }
}

#[derive(askama::Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    layout: Layout,
    org: String,
    users: Vec<UserRow>,
    notice: Option<String>,
}

async fn users_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    Query(notice): Query<Notice>,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), ADMIN).await);
    let st = Arc::clone(&state);
    let org = viewer.org().to_owned();
    let users = tri!(web::blocking(move || org_users(&st, &org)).await);
    let users = match users {
        Ok(u) => u,
        Err(e) => return unavailable(&viewer, &e),
    };
    web::render(
        StatusCode::OK,
        &UsersPage {
            layout: Layout::new(&viewer, "Users", "admin"),
            org: viewer.org().to_owned(),
            users: users.iter().map(row).collect(),
            notice: notice.text(),
        },
    )
}

/// The roles an administrator can give, as the form offers them.
fn role_options(selected: &str) -> Vec<(&'static str, &'static str, bool)> {
    Role::ALL
        .iter()
        .map(|r| (r.name(), web::role_label(*r), r.name() == selected))
        .collect()
}

#[derive(askama::Template)]
#[template(path = "admin/new_user.html")]
struct NewUserPage {
    layout: Layout,
    errors: Errors,
    name: String,
    practitioner: String,
    roles: Vec<(&'static str, &'static str, bool)>,
}

async fn new_user_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), ADMIN).await);
    web::render(
        StatusCode::OK,
        &NewUserPage {
            layout: Layout::new(&viewer, "Add a user", "admin"),
            errors: Errors::default(),
            name: String::new(),
            practitioner: String::new(),
            roles: role_options(""),
        },
    )
}

#[derive(askama::Template)]
#[template(path = "admin/user_added.html")]
struct UserAddedPage {
    layout: Layout,
    name: String,
    role: String,
    one_time_password: Zeroizing<String>,
}

/// A new user's fields, checked as far as the console checks them (the directory checks
/// the name).
struct NewUser {
    name: String,
    role: Role,
    practitioner: Option<String>,
}

fn read_new_user(form: &Form) -> (NewUser, Errors, String, String) {
    let mut errors = Errors::default();
    let name = form
        .required("name", "User name", 64)
        .map_err(|e| errors.push(e))
        .unwrap_or_default();
    let role_text = form.get("role").to_owned();
    let role = match role_text.parse::<Role>() {
        Ok(r) => r,
        Err(_) => {
            errors.push(FieldError::new("role", "Select a role from the list"));
            Role::CareWorker
        }
    };
    let practitioner = form
        .text("practitioner", "Practitioner reference", 128)
        .map_err(|e| errors.push(e))
        .unwrap_or_default();
    // The API's rule for the reference (`caldicott_api::admin`).
    if !practitioner.is_empty() && !practitioner.starts_with("Practitioner/") {
        errors.push(FieldError::new(
            "practitioner",
            "Practitioner reference must be a reference such as Practitioner/123",
        ));
    }
    let shown_name: String = form.get("name").chars().take(64).collect();
    (
        NewUser {
            name,
            role,
            practitioner: (!practitioner.is_empty()).then_some(practitioner.clone()),
        },
        errors,
        shown_name,
        practitioner,
    )
}

async fn add_user(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), ADMIN).await);
    let form = tri!(web::checked_form(&state, &headers, &viewer, &body));
    let (new, mut errors, shown_name, practitioner) = read_new_user(&form);
    let role_text = form.get("role").to_owned();
    let invalid = |viewer: &Viewer, errors: Errors| {
        web::render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &NewUserPage {
                layout: Layout::new(viewer, "Add a user", "admin"),
                errors,
                name: shown_name.clone(),
                practitioner: practitioner.clone(),
                roles: role_options(&role_text),
            },
        )
    };
    if !errors.is_empty() {
        return invalid(&viewer, errors);
    }
    let Ok(org) = OdsCode::parse(viewer.org()) else {
        return web::unavailable();
    };
    let st = Arc::clone(&state);
    let NewUser {
        name,
        role,
        practitioner: pr,
    } = new;
    let added = tri!(web::blocking(move || st.directory.add_user(&name, &org, role, pr)).await);
    match added {
        Ok((user, password)) => {
            tracing::info!(target: "caldicott::audit", admin = %viewer.user().name, user = %user.name, org = %user.org, role = %user.role, "user added");
            tri!(changed(
                &state,
                &viewer,
                "user-add",
                Some(&user.name),
                "done"
            ));
            web::render(
                StatusCode::OK,
                &UserAddedPage {
                    layout: Layout::new(&viewer, "User added", "admin"),
                    name: user.name.clone(),
                    role: web::role_label(role).to_owned(),
                    one_time_password: password,
                },
            )
        }
        Err(AccessError::BadUserName(_)) => {
            errors.push(FieldError::new(
                "name",
                "User name must be 1 to 64 of a-z, 0-9, '.', '-' and '_', starting with a letter or digit",
            ));
            invalid(&viewer, errors)
        }
        Err(AccessError::UserExists(_)) => {
            errors.push(FieldError::new(
                "name",
                "A user with this name already exists",
            ));
            invalid(&viewer, errors)
        }
        Err(e) => unavailable(&viewer, &e),
    }
}

async fn change_user(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), ADMIN).await);
    let _form = tri!(web::checked_form(&state, &headers, &viewer, &body));
    if !matches!(action.as_str(), "disable" | "enable" | "reset-mfa") {
        return web::error_page(
            Some(&viewer),
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is no such action (disable, enable, reset-mfa).",
        );
    }
    let st = Arc::clone(&state);
    let org = viewer.org().to_owned();
    let (n, a) = (name.clone(), action.clone());
    let result = tri!(
        web::blocking(move || -> Result<Option<User>, AccessError> {
            // Only the administrator's own organisation's users.
            match st.directory.user(&n)? {
                Some(u) if u.org == org => {}
                _ => return Ok(None),
            }
            match a.as_str() {
                "disable" => st.directory.set_disabled(&n, true),
                "enable" => st.directory.set_disabled(&n, false),
                _ => st.directory.reset_mfa(&n),
            }
            .map(Some)
        })
        .await
    );
    match result {
        Ok(Some(_)) => {
            tracing::info!(target: "caldicott::audit", admin = %viewer.user().name, user = %name, %action, "user changed");
            tri!(changed(
                &state,
                &viewer,
                &format!("user-{action}"),
                Some(&name),
                "done"
            ));
            let to: String = form_urlencoded::Serializer::new(String::from("/administration?"))
                .append_pair("user", &name)
                .append_pair("done", &action)
                .finish();
            web::redirect(&to)
        }
        Ok(None) | Err(AccessError::UnknownUser(_)) => not_found(&viewer),
        Err(e) => unavailable(&viewer, &e),
    }
}

// ---------------------------------------------------------------------------------------
// API clients and tokens

#[derive(Deserialize)]
struct Revoked {
    #[serde(default)]
    revoked: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "admin/tokens.html")]
struct TokensPage {
    layout: Layout,
    clients: Vec<UserRow>,
    errors: Errors,
    /// Which form the errors belong to: `issue` or `revoke`.
    form: &'static str,
    user: String,
    scopes: String,
    purposes: Vec<(&'static str, bool)>,
    ttl_hours: String,
    max_hours: u64,
    revoked: bool,
}

impl TokensPage {
    fn new(viewer: &Viewer, clients: Vec<UserRow>) -> Self {
        TokensPage {
            layout: Layout::new(viewer, "API clients and tokens", "admin"),
            clients,
            errors: Errors::default(),
            form: "",
            user: String::new(),
            scopes: String::new(),
            purposes: purpose_options(""),
            ttl_hours: "8".to_owned(),
            max_hours: MAX_CONSOLE_TOKEN_HOURS,
            revoked: false,
        }
    }
}

fn purpose_options(selected: &str) -> Vec<(&'static str, bool)> {
    Purpose::ALL
        .iter()
        .map(|p| (p.name(), p.name() == selected))
        .collect()
}

/// The organisation's system users (API clients).
async fn clients(state: &Arc<ConsoleState>, viewer: &Viewer) -> Result<Vec<UserRow>, Response> {
    let st = Arc::clone(state);
    let org = viewer.org().to_owned();
    match web::blocking(move || org_users(&st, &org)).await? {
        Ok(users) => Ok(users
            .iter()
            .filter(|u| u.role == Role::System.name())
            .map(row)
            .collect()),
        Err(e) => Err(unavailable(viewer, &e)),
    }
}

async fn tokens_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    Query(q): Query<Revoked>,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), ADMIN).await);
    let clients = tri!(clients(&state, &viewer).await);
    let mut page = TokensPage::new(&viewer, clients);
    page.revoked = q.revoked.is_some();
    web::render(StatusCode::OK, &page)
}

#[derive(askama::Template)]
#[template(path = "admin/token_issued.html")]
struct TokenIssuedPage {
    layout: Layout,
    user: String,
    scopes: String,
    purpose: String,
    hours: u64,
    token: Zeroizing<String>,
}

/// A token request's fields: `(user, scopes, purpose, hours)` or the errors.
fn read_token_request(form: &Form) -> Result<(String, Scopes, Purpose, u64), Errors> {
    let mut errors = Errors::default();
    let user = form
        .required("user", "API client", 64)
        .map_err(|e| errors.push(e))
        .unwrap_or_default();
    let scopes = match form.required("scopes", "Scopes", 1024) {
        Ok(s) => match s.parse::<Scopes>() {
            Ok(sc) => Some(sc),
            Err(e) => {
                errors.push(FieldError::new("scopes", format!("Scopes: {e}")));
                None
            }
        },
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let purpose = form.get("purpose").parse::<Purpose>().ok();
    if purpose.is_none() {
        errors.push(FieldError::new(
            "purpose",
            "Select a purpose of use from the list",
        ));
    }
    let hours = form
        .get("ttl_hours")
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|h| (1..=MAX_CONSOLE_TOKEN_HOURS).contains(h));
    if hours.is_none() {
        errors.push(FieldError::new(
            "ttl_hours",
            format!("Lifetime must be a whole number of hours from 1 to {MAX_CONSOLE_TOKEN_HOURS}"),
        ));
    }
    match (scopes, purpose, hours) {
        (Some(s), Some(p), Some(h)) if errors.is_empty() => Ok((user, s, p, h)),
        _ => Err(errors),
    }
}

async fn issue_token(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), ADMIN).await);
    let form = tri!(web::checked_form(&state, &headers, &viewer, &body));
    let clients = tri!(clients(&state, &viewer).await);
    let invalid = |viewer: &Viewer, clients: Vec<UserRow>, errors: Errors| {
        let mut page = TokensPage::new(viewer, clients);
        page.errors = errors;
        page.form = "issue";
        page.user = form.get("user").chars().take(64).collect();
        page.scopes = form.get("scopes").chars().take(1024).collect();
        page.purposes = purpose_options(form.get("purpose"));
        page.ttl_hours = form.get("ttl_hours").chars().take(16).collect();
        web::render(StatusCode::UNPROCESSABLE_ENTITY, &page)
    };
    let (user, scopes, purpose, hours) = match read_token_request(&form) {
        Ok(r) => r,
        Err(errors) => return invalid(&viewer, clients, errors),
    };
    // Only the organisation's own API clients.
    if !clients.iter().any(|c| c.name == user && !c.disabled) {
        let mut errors = Errors::default();
        errors.push(FieldError::new(
            "user",
            "Select an enabled API client of your organisation",
        ));
        return invalid(&viewer, clients, errors);
    }
    let st = Arc::clone(&state);
    let (u, sc) = (user.clone(), scopes.clone());
    let issued =
        tri!(web::blocking(move || st.directory.issue_token(&u, &sc, purpose, hours * 3600)).await);
    match issued {
        Ok(token) => {
            tracing::info!(target: "caldicott::audit", admin = %viewer.user().name, client = %user, "token issued");
            tri!(changed(
                &state,
                &viewer,
                "token-issue",
                Some(&user),
                &format!("scopes {scopes}; purpose {purpose}; {hours} h")
            ));
            web::render(
                StatusCode::OK,
                &TokenIssuedPage {
                    layout: Layout::new(&viewer, "Token issued", "admin"),
                    user,
                    scopes: scopes.to_string(),
                    purpose: purpose.to_string(),
                    hours,
                    token,
                },
            )
        }
        Err(AccessError::Policy(m)) => {
            let mut errors = Errors::default();
            errors.push(FieldError::new("scopes", format!("Scopes: {m}")));
            invalid(&viewer, clients, errors)
        }
        Err(AccessError::UserDisabled(_) | AccessError::UnknownUser(_)) => {
            let mut errors = Errors::default();
            errors.push(FieldError::new(
                "user",
                "Select an enabled API client of your organisation",
            ));
            invalid(&viewer, clients, errors)
        }
        Err(e) => unavailable(&viewer, &e),
    }
}

async fn revoke_token(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), ADMIN).await);
    let form = tri!(web::checked_form(&state, &headers, &viewer, &body));
    let clients = tri!(clients(&state, &viewer).await);
    let refuse = |viewer: &Viewer, clients: Vec<UserRow>, message: &str| {
        let mut page = TokensPage::new(viewer, clients);
        page.errors.push(FieldError::new("token", message));
        page.form = "revoke";
        web::render(StatusCode::UNPROCESSABLE_ENTITY, &page)
    };
    let token = Zeroizing::new(form.get("token").trim().to_owned());
    if token.is_empty() {
        return refuse(&viewer, clients, "Paste the token to revoke");
    }
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
        return refuse(
            &viewer,
            clients,
            "This is not a Caldicott token (they start with cdt_)",
        );
    }
    let st = Arc::clone(&state);
    let org = viewer.org().to_owned();
    let result = tri!(
        web::blocking(move || -> Result<Option<String>, AccessError> {
            // A token still in use must belong to this organisation; one that no longer
            // works (expired, its user disabled) is simply removed.
            let owner = st.directory.authenticate(&token, st.now()).ok();
            if owner.as_ref().is_some_and(|a| a.user.org != org) {
                return Ok(None);
            }
            let gone = st.directory.revoke_token(&token)?;
            Ok(gone.then(|| owner.map(|a| a.user.name).unwrap_or_default()))
        })
        .await
    );
    match result {
        Ok(Some(owner)) => {
            tracing::info!(target: "caldicott::audit", admin = %viewer.user().name, "token revoked");
            tri!(changed(
                &state,
                &viewer,
                "token-revoke",
                (!owner.is_empty()).then_some(owner.as_str()),
                "done"
            ));
            web::redirect("/administration/tokens?revoked=1")
        }
        Ok(None) => refuse(
            &viewer,
            clients,
            "No such token: it may have expired or been revoked already",
        ),
        Err(e) => unavailable(&viewer, &e),
    }
}

// ---------------------------------------------------------------------------------------
// Opt-out lists

/// One opt-out list's status.
pub struct OptOutStatus {
    pub id: &'static str,
    pub label: &'static str,
    pub entries: usize,
    /// When the list was last replaced; `None` when it never was.
    pub replaced: Option<String>,
}

fn optout_status(vault: &caldicott_vault::Vault) -> Result<Vec<OptOutStatus>, String> {
    use caldicott_access::optout::{self, OptOutKind};
    OptOutKind::ALL
        .iter()
        .map(|&kind| {
            let s = optout::status(vault, kind).map_err(|e| e.to_string())?;
            Ok(OptOutStatus {
                id: match kind {
                    OptOutKind::National => "national",
                    OptOutKind::Type1 => "type1",
                },
                label: kind.label(),
                entries: s.entries,
                replaced: s.replaced_at.map(web::date_time),
            })
        })
        .collect()
}

#[derive(askama::Template)]
#[template(path = "admin/optouts.html")]
struct OptOutsPage {
    layout: Layout,
    lists: Vec<OptOutStatus>,
}

async fn optouts_page(
    State(state): State<Arc<ConsoleState>>,
    ext: Extensions,
    headers: HeaderMap,
) -> Response {
    let viewer = tri!(web::viewer_with(&state, &headers, web::peer(&ext), ADMIN).await);
    let st = Arc::clone(&state);
    let lists = tri!(web::blocking(move || optout_status(&st.vault)).await);
    match lists {
        Ok(lists) => web::render(
            StatusCode::OK,
            &OptOutsPage {
                layout: Layout::new(&viewer, "Opt-out lists", "admin"),
                lists,
            },
        ),
        Err(e) => {
            tracing::error!(error = %e, "administration: the opt-out lists cannot be read");
            web::error_page(
                Some(&viewer),
                StatusCode::SERVICE_UNAVAILABLE,
                "Sorry, the service is unavailable",
                "The opt-out lists cannot be read just now. Try again in a few minutes.",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Form {
        Form::from_bytes(body.as_bytes()).unwrap_or_default()
    }

    #[test]
    fn token_lifetime_is_one_to_twenty_four_hours() {
        let ok = "user=svc&scopes=system%2FPatient.read&purpose=direct-care&ttl_hours=";
        for bad in ["0", "25", "240", "-1", "x", ""] {
            let errs = read_token_request(&form(&format!("{ok}{bad}"))).err();
            assert!(
                errs.is_some_and(|e| e.has("ttl_hours")),
                "ttl {bad:?} accepted"
            );
        }
        let (_, _, p, h) = read_token_request(&form(&format!("{ok}24"))).unwrap_or_else(|e| {
            panic!("refused: {:?}", e.all());
        });
        assert_eq!((p, h), (Purpose::DirectCare, 24));
    }

    #[test]
    fn new_user_fields() {
        let (_, e, ..) = read_new_user(&form("name=ann&role=wizard"));
        assert!(e.has("role") && !e.has("name"));
        let (_, e, ..) = read_new_user(&form("name=ann&role=gp&practitioner=Patient%2F1"));
        assert!(e.has("practitioner"));
        let (u, e, ..) = read_new_user(&form("name=ann&role=gp&practitioner=Practitioner%2F7"));
        assert!(e.is_empty());
        assert_eq!(u.practitioner.as_deref(), Some("Practitioner/7"));
        let (_, e, ..) = read_new_user(&form(&format!("name={}&role=gp", "a".repeat(300))));
        assert!(e.has("name"));
    }
}
