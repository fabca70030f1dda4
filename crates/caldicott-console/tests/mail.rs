//! The mail quarantine page: messages held the way the gateway holds them (screened by the
//! real scanner, stored through the gateway's `Quarantine` interface into the vault), listed
//! with their reasons, and released, deleted or marked not spam with the effect checked
//! where it lands (the gateway's queue directory, the ham kept for training).

mod common;

use std::sync::Arc;

use caldicott_api::audit::{EventKind, Outcome};
use caldicott_mail::quarantine::{QuarantineError, VaultQuarantine};
use caldicott_mail::smtp::Quarantine as _;
use caldicott_mail::{Envelope, MailConfig, Scanner};
use caldicott_policy::Role;
use common::{App, ORG};

fn phishing(subject: &str, marker: &str) -> Vec<u8> {
    format!(
        "From: \"NHS Payroll\" <payroll@nhs-net.co>\r\nTo: bob@care.example\r\n\
         Subject: {subject}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
         Message-ID: <{marker}@nhs-net.co>\r\n\r\nClick here to verify within 24 hours. {marker}\r\n"
    )
    .into_bytes()
}

/// Holds a message as the gateway does: screened, then stored under a hex queue id.
fn hold(app: &App, id: &str, message: &[u8], authenticated: bool) {
    let scanner = Scanner::new(MailConfig::default(), None).unwrap();
    let envelope = Envelope {
        client_ip: Some("198.51.100.9".parse().unwrap()),
        helo: Some("mx.nhs-net.co".into()),
        mail_from: Some("payroll@nhs-net.co".into()),
        rcpt_to: vec!["bob@care.example".into()],
        authenticated,
    };
    let report = scanner.scan_with(message, Some(&envelope));
    VaultQuarantine::new(Arc::clone(&app.vault))
        .store(id, &envelope, message, &report)
        .unwrap();
}

fn audited(app: &App, action: &str, id: &str) -> bool {
    app.events().iter().any(|e| {
        e.kind == EventKind::Admin
            && e.action == action
            && e.outcome == Outcome::Permit
            && e.rtype.as_deref() == Some("MailMessage")
            && e.id.as_deref() == Some(id)
            && e.purpose == "mail-quarantine"
    })
}

#[tokio::test]
async fn the_quarantine_is_listed_and_acted_on() {
    let app = App::new();
    let mut g = app.signed_in("grace", ORG, Role::CaldicottGuardian).await;
    // Nothing held and no gateway: not set up, with the command.
    let r = g.get(&app, "/mail").await.expect(200);
    assert!(r.body.contains("Mail gateway not set up"), "{}", r.body);
    assert!(r.body.contains("caldicott mail serve"));

    let queue = app.dir.path().join("mail-queue");
    caldicott_console::mail::register_gateway(&app.vault, &queue).unwrap();
    hold(
        &app,
        "0a1",
        &phishing("Verify <b>your</b> account", "M-0a1"),
        false,
    );
    hold(&app, "0b2", &phishing("Payroll update", "M-0b2"), false);
    hold(&app, "0c3", &phishing("Second notice", "M-0c3"), false);
    let q = VaultQuarantine::new(Arc::clone(&app.vault));
    let held = q.entry("0a1").unwrap();
    let strongest = held
        .symbols
        .iter()
        .filter(|s| s.score > 0.0)
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .expect("the scanner gave a reason")
        .clone();

    let list = g.get(&app, "/mail").await.expect(200);
    assert!(list.body.contains("id=\"messages\""), "{}", list.body);
    for id in ["0a1", "0b2", "0c3"] {
        assert!(list.body.contains(&format!("id=\"message-{id}\"")));
    }
    // The subject is escaped; the reasons are named with their scores.
    assert!(
        list.body
            .contains("Verify &#60;b&#62;your&#60;/b&#62; account")
    );
    assert!(!list.body.contains("<b>your</b>"));
    assert!(
        list.body
            .contains(&format!("<code>{}</code>", strongest.name))
    );
    assert!(list.body.contains(&format!("({:+.2})", strongest.score)));
    assert!(list.body.contains("payroll@nhs-net.co"));
    assert!(!list.body.contains("M-0a1"), "the body is never shown");

    // Delete: gone from the quarantine, nothing queued, audited.
    let r = g.post(&app, "/mail/0a1/delete", &[]).await.expect(303);
    assert_eq!(r.location(), "/mail?done=delete");
    assert!(matches!(q.entry("0a1"), Err(QuarantineError::NotFound(_))));
    assert!(!queue.join("msg").join("0a1").exists());
    assert!(audited(&app, "mail-delete", "0a1"));
    // Deleted inbound mail trains the classifier as spam, as the CLI's delete does.
    let spam = q.spam().unwrap();
    assert_eq!(spam.len(), 1);
    assert_eq!(spam[0].0, "0a1");
    assert!(String::from_utf8_lossy(&spam[0].1).contains("M-0a1"));
    let list = g.get(&app, r.location()).await.expect(200);
    assert!(!list.body.contains("id=\"message-0a1\""));
    assert!(list.body.contains("id=\"notice\""));

    // Release: in the gateway's queue (envelope line, then the message without the
    // gateway's verdict fields), out of the quarantine, audited.
    g.post(&app, "/mail/0b2/release", &[]).await.expect(303);
    let queued = std::fs::read(queue.join("msg").join("0b2")).expect("queued for delivery");
    let text = String::from_utf8_lossy(&queued);
    let (envelope, message) = text.split_once('\n').unwrap();
    let envelope: serde_json::Value = serde_json::from_str(envelope).unwrap();
    assert_eq!(envelope["rcpt_to"][0], "bob@care.example");
    assert!(message.contains("M-0b2"));
    assert!(matches!(q.entry("0b2"), Err(QuarantineError::NotFound(_))));
    assert!(audited(&app, "mail-release", "0b2"));

    // Not spam: kept as ham for training, released, removed, audited.
    g.post(&app, "/mail/0c3/not-spam", &[]).await.expect(303);
    let ham = q.ham().unwrap();
    assert_eq!(ham.len(), 1);
    assert_eq!(ham[0].0, "0c3");
    assert!(String::from_utf8_lossy(&ham[0].1).contains("M-0c3"));
    assert!(queue.join("msg").join("0c3").exists());
    assert!(matches!(q.entry("0c3"), Err(QuarantineError::NotFound(_))));
    assert!(audited(&app, "mail-mark-not-spam", "0c3"));

    // Acting on a message that is no longer held, or on a malformed id: 404, not 500.
    g.post(&app, "/mail/0c3/release", &[]).await.expect(404);
    g.post(&app, "/mail/..%2Fx/delete", &[]).await.expect(404);
    g.post(&app, "/mail/0c3/show", &[]).await.expect(404);
    // Without the form's CSRF token: refused.
    hold(&app, "0d4", &phishing("Fourth", "M-0d4"), false);
    g.post(&app, "/mail/0d4/delete", &[("csrf", "forged")])
        .await
        .expect(403);
    assert!(q.entry("0d4").is_ok());
}

#[tokio::test]
async fn outbound_holds_are_not_spam_and_release_needs_the_queue() {
    let app = App::new();
    let mut admin = app.signed_in("sam", ORG, Role::Sysadmin).await;
    hold(&app, "1a", &phishing("Referral", "M-1a"), true);
    // Held but no registered queue: listed, release explained, only delete offered.
    let list = admin.get(&app, "/mail").await.expect(200);
    assert!(list.body.contains("id=\"message-1a\""), "{}", list.body);
    assert!(list.body.contains("id=\"release-unavailable\""));
    assert!(!list.body.contains("id=\"release-1a\""));
    assert!(list.body.contains("id=\"delete-1a\""));
    let r = admin.post(&app, "/mail/1a/release", &[]).await.expect(409);
    assert!(r.body.contains("nhsuk-error-summary"));
    assert!(!audited(&app, "mail-release", "1a"));
    // Deleting the last message held before any gateway registered still says it was
    // deleted (on the "not set up" page, which is what is left).
    let r = admin.post(&app, "/mail/1a/delete", &[]).await.expect(303);
    assert_eq!(r.location(), "/mail?done=delete");
    let page = admin.get(&app, "/mail?done=delete").await.expect(200);
    assert!(page.body.contains("id=\"not-set-up\""), "{}", page.body);
    assert!(page.body.contains("The message was deleted."));
    hold(&app, "1a", &phishing("Referral", "M-1a"), true);

    let queue = app.dir.path().join("q");
    caldicott_console::mail::register_gateway(&app.vault, &queue).unwrap();
    let list = admin.get(&app, "/mail").await.expect(200);
    assert!(list.body.contains("id=\"release-1a\""));
    assert!(
        !list.body.contains("id=\"not-spam-1a\""),
        "outbound mail is not offered as not spam"
    );
    let r = admin.post(&app, "/mail/1a/not-spam", &[]).await.expect(409);
    assert!(r.body.contains("outbound mail held for its content"));
    assert!(
        VaultQuarantine::new(Arc::clone(&app.vault))
            .entry("1a")
            .is_ok()
    );
    assert!(!queue.join("msg").join("1a").exists());
}

#[tokio::test]
async fn a_receptionist_cannot_see_the_quarantine() {
    let app = App::new();
    hold(&app, "2a", &phishing("Hello", "M-2a"), false);
    let mut desk = app.signed_in("rita", ORG, Role::Receptionist).await;
    desk.get(&app, "/mail").await.expect(403);
    desk.post(&app, "/mail/2a/delete", &[]).await.expect(403);
    assert!(
        VaultQuarantine::new(Arc::clone(&app.vault))
            .entry("2a")
            .is_ok()
    );
    let home = desk.get(&app, "/").await.expect(200);
    assert!(!home.body.contains("id=\"nav-mail\""));
}
