//! Data-sharing agreements over HTTPS (`/admin/agreements`), in process: propose, approve by
//! the guardian only (never the proposer), amend, revoke; another organisation's agreement
//! is invisible; bad bodies get precise errors; every change and refusal is audited.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use caldicott_access::Directory;
use caldicott_api::agreements::{AgreementsState, router};
use caldicott_api::audit::{AuditSink, MemorySink, Outcome};
use caldicott_core::OdsCode;
use caldicott_policy::{Purpose, Role};
use caldicott_share::Book;
use caldicott_vault::{Backend, LocalKek, SqliteBackend, Vault};
use serde_json::{Value, json};
use tower::ServiceExt;

struct App {
    router: axum::Router,
    audit: Arc<MemorySink>,
    tokens: std::collections::HashMap<&'static str, String>,
    _dir: tempfile::TempDir,
}

impl App {
    fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        let backend = SqliteBackend::open(&dir.path().join("vault.db"), true).unwrap();
        backend.migrate().unwrap();
        let kek = Arc::new(LocalKek::generate().unwrap().0);
        let vault = Arc::new(Vault::open(Box::new(backend), kek).unwrap());
        let directory = Arc::new(Directory::new(Arc::clone(&vault)));
        let (a, b) = (
            OdsCode::parse("A81001").unwrap(),
            OdsCode::parse("B82002").unwrap(),
        );
        directory.add_org(&a, "Castle Practice").unwrap();
        directory.add_org(&b, "Moor Practice").unwrap();
        let mut tokens = std::collections::HashMap::new();
        for (name, org, role) in [
            ("rita", &a, Role::Researcher),
            ("gina", &a, Role::CaldicottGuardian),
            ("gary", &a, Role::Gp),
            ("gus", &b, Role::CaldicottGuardian),
        ] {
            directory.add_user(name, org, role, None).unwrap();
            let t = directory
                .issue_token(
                    name,
                    &"user/*.read".parse().unwrap(),
                    Purpose::Research,
                    600,
                )
                .unwrap();
            tokens.insert(name, t.to_string());
        }
        let audit = Arc::new(MemorySink::default());
        let state = AgreementsState {
            directory,
            book: Book::new(vault),
            audit: Arc::clone(&audit) as Arc<dyn AuditSink>,
        };
        App {
            router: router(Arc::new(state)),
            audit,
            tokens,
            _dir: dir,
        }
    }

    async fn send(&self, who: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = self.tokens.get(who) {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let mut req = req.body(Body::from(body.to_owned())).unwrap();
        req.extensions_mut().insert(ConnectInfo(
            "192.0.2.7:50000".parse::<SocketAddr>().unwrap(),
        ));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn terms() -> Value {
    json!({
        "title": "Diabetes outcomes",
        "recipient": {
            "name": "University of Leeds",
            "age_key": "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
        },
        "purpose": "research",
        "legal_basis": { "kind": "section251", "reference": "CAG 21/CAG/0001" },
        "dataset": {
            "column": [
                { "name": "sex", "path": "Patient.gender" },
                { "name": "birth_date", "path": "Patient.birthDate" }
            ]
        },
        "deid_profile": "metric = \"loss\"\n[privacy]\nmodel = \"k-anonymity\"\nk = 5\n[[attribute]]\nname = \"sex\"\nkind = \"insensitive\"\n[[attribute]]\nname = \"birth_date\"\nkind = \"quasi-identifier\"\nhierarchy = { date = \"yyyy-mm-dd\" }\n",
        "frequency": "monthly",
        "expires": "2099-12-31"
    })
}

#[tokio::test]
async fn agreements_over_http() {
    let app = App::new();
    // No token: 401. A GP cannot list.
    assert_eq!(
        app.send("nobody", "GET", "/admin/agreements", "").await.0,
        401
    );
    assert_eq!(
        app.send("gary", "GET", "/admin/agreements", "").await.0,
        403
    );

    // Bad bodies: precise errors, nothing stored.
    let (s, v) = app.send("rita", "POST", "/admin/agreements", "{").await;
    assert_eq!(s, 400, "{v}");
    let mut bad = terms();
    bad["recipient"]["age_key"] = json!("AGE-SECRET-KEY-1QQQQ");
    let (s, v) = app
        .send("rita", "POST", "/admin/agreements", &bad.to_string())
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("age key"), "{v}");
    assert!(
        !v.to_string().contains("QQQQ"),
        "the key is not echoed: {v}"
    );
    let mut bad = terms();
    bad["dataset"]["column"][1]["name"] = json!("dob");
    let (s, v) = app
        .send("rita", "POST", "/admin/agreements", &bad.to_string())
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("`dob`"), "{v}");
    let (_, v) = app.send("gina", "GET", "/admin/agreements", "").await;
    assert_eq!(v["agreements"], json!([]));

    // Proposed by the researcher.
    let (s, a) = app
        .send("rita", "POST", "/admin/agreements", &terms().to_string())
        .await;
    assert_eq!(s, 201, "{a}");
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(a["state"]["state"], "proposed");

    // The proposer and a GP cannot approve; the other practice's guardian sees nothing.
    for who in ["rita", "gary", "gus"] {
        let (s, v) = app
            .send(who, "POST", &format!("/admin/agreements/{id}/approve"), "")
            .await;
        assert_eq!(s, 403, "{who}: {v}");
    }
    let (s, _) = app
        .send("gus", "GET", &format!("/admin/agreements/{id}"), "")
        .await;
    assert_eq!(s, 404);
    let (_, v) = app.send("gus", "GET", "/admin/agreements", "").await;
    assert_eq!(v["agreements"], json!([]));

    let (s, v) = app
        .send(
            "gina",
            "POST",
            &format!("/admin/agreements/{id}/approve"),
            "",
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"]["by"], "gina");

    // Amended: version 2 proposed, version 1 still the approved one.
    let mut t2 = terms();
    t2["title"] = json!("Diabetes outcomes, extended");
    let (s, v) = app
        .send(
            "rita",
            "POST",
            &format!("/admin/agreements/{id}/amend"),
            &t2.to_string(),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["version"], 2);
    let (_, v) = app
        .send("gina", "GET", &format!("/admin/agreements/{id}"), "")
        .await;
    assert_eq!(v["summary"]["approved_version"], 1);
    assert_eq!(v["summary"]["version"], 2);
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);

    // Revocation needs a reason, then is final.
    let path = format!("/admin/agreements/{id}/revoke");
    assert_eq!(app.send("gina", "POST", &path, "{}").await.0, 400);
    assert_eq!(
        app.send("gina", "POST", &path, r#"{"reason":"  "}"#)
            .await
            .0,
        422
    );
    let (s, v) = app
        .send("gina", "POST", &path, r#"{"reason":"study closed"}"#)
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = app
        .send("gina", "POST", &path, r#"{"reason":"again"}"#)
        .await;
    assert_eq!(s, 403);
    let (_, v) = app.send("rita", "GET", "/admin/agreements", "").await;
    assert_eq!(v["agreements"][0]["state"], "revoked");
    assert_eq!(
        app.send(
            "gina",
            "POST",
            &format!("/admin/agreements/{id}/unknown"),
            ""
        )
        .await
        .0,
        404
    );

    // Every change and every refused change, audited.
    let events = app.audit.0.lock().unwrap().clone();
    let seen: Vec<(String, String, Outcome)> = events
        .iter()
        .map(|e| (e.action.clone(), e.user.clone(), e.outcome))
        .collect();
    let want = [
        ("agreement-propose", "rita", Outcome::Permit),
        ("agreement-approve", "rita", Outcome::Deny),
        ("agreement-approve", "gary", Outcome::Deny),
        ("agreement-approve", "gus", Outcome::Deny),
        ("agreement-approve", "gina", Outcome::Permit),
        ("agreement-amend", "rita", Outcome::Permit),
        ("agreement-revoke", "gina", Outcome::Permit),
        ("agreement-revoke", "gina", Outcome::Deny),
    ];
    let want: Vec<(String, String, Outcome)> = want
        .iter()
        .map(|(a, u, o)| (a.to_string(), u.to_string(), *o))
        .collect();
    assert_eq!(seen, want);
    assert!(events.iter().all(|e| e.id.as_deref() == Some(id.as_str())));
}
