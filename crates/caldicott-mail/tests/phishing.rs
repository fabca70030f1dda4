//! Impersonation of NHS, government, CQC and the organisation's own domains; deceptive links.

mod common;

use caldicott_mail::symbols::*;
use caldicott_mail::{MailConfig, Scanner, Verdict};
use common::*;

const BODY: &str = "Hello, the rota for next week is attached. Thanks, Jo";

#[test]
fn genuine_nhs_mail_is_accepted() {
    let r = scan(&plain("Jo Bloggs <jo.bloggs@nhs.net>", "Rota", BODY));
    assert_eq!(r.verdict, Verdict::Accept, "{r:#?}");
    let r = scan(&plain(
        "NHS Jobs <noreply@jobs.nhs.uk>",
        "Your application",
        BODY,
    ));
    assert!(!r.has(DISPLAY_NAME_IMPERSONATION), "{r:#?}");
    let r = scan(&html(
        "CQC <enquiries@cqc.org.uk>",
        "Inspection report",
        r#"<p>Read the report at <a href="https://www.cqc.org.uk/location/1-123">https://www.cqc.org.uk/location/1-123</a></p>"#,
    ));
    assert_eq!(r.verdict, Verdict::Accept, "{r:#?}");
}

#[test]
fn lookalike_sender_domains() {
    let r = scan(&plain("NHS Mail <admin@nhs-net.co>", "Mailbox", BODY));
    assert!(r.has(FROM_LOOKALIKE_PROTECTED), "{r:#?}");
    assert!(r.verdict >= Verdict::Quarantine, "{r:#?}");
    let r = scan(&plain(
        "Payroll <pay@nhs.uk.verify-login.com>",
        "Payslip",
        BODY,
    ));
    assert!(r.has(FROM_EMBEDS_PROTECTED), "{r:#?}");
    let r = scan(&plain("Inspector <team@cqc-org.uk>", "Inspection", BODY));
    assert!(r.has(FROM_LOOKALIKE_PROTECTED), "{r:#?}");
    let r = scan(&plain("GOV.UK <noreply@gov-uk.com>", "Refund", BODY));
    assert!(r.has(FROM_LOOKALIKE_PROTECTED), "{r:#?}");
}

#[test]
fn cyrillic_homoglyph_sender() {
    // `nһs.net` with U+04BB CYRILLIC SMALL LETTER SHHA for the `h`, as an SMTPUTF8 address.
    let r = scan(&plain(
        "IT Service Desk <it@nһs.net>",
        "Password expiry",
        BODY,
    ));
    let s = r
        .symbol(FROM_CONFUSABLE_PROTECTED)
        .unwrap_or_else(|| panic!("{r:#?}"));
    assert!(
        s.reason.contains("\\u{4bb}"),
        "the reason shows the hidden character: {}",
        s.reason
    );
    assert!(r.verdict >= Verdict::Quarantine, "{r:#?}");
    // The same domain in punycode.
    let r = scan(&plain("IT <it@xn--ns-4wc.net>", "Password expiry", BODY));
    assert!(r.has(FROM_CONFUSABLE_PROTECTED), "{r:#?}");
}

#[test]
fn display_name_impersonation() {
    let r = scan(&plain(
        "NHS Payroll <payroll.dept@gmail.com>",
        "Payslip",
        BODY,
    ));
    assert!(r.has(DISPLAY_NAME_IMPERSONATION), "{r:#?}");
    // Look-alike letters in the display name are seen through: Cyrillic capital EN (Н) for
    // the H and DZE (Ѕ) for the S.
    let r = scan(&plain(
        "N\u{41D}\u{405} Service Desk <desk@example.com>",
        "Mailbox",
        BODY,
    ));
    assert!(r.has(DISPLAY_NAME_IMPERSONATION), "{r:#?}");
    let r = scan(&plain("\"jo.bloggs@nhs.net\" <jo@example.com>", "Hi", BODY));
    assert!(r.has(DISPLAY_NAME_ADDRESS_MISMATCH), "{r:#?}");
}

#[test]
fn deceptive_links() {
    let r = scan(&html(
        "Support <support@example.com>",
        "Action required",
        r#"<p>Log in at <a href="http://203.0.113.9/owa/">https://www.nhs.uk/login</a></p>"#,
    ));
    assert!(r.has(LINK_TEXT_PROTECTED_MISMATCH), "{r:#?}");
    assert!(r.has(URI_BARE_IP), "{r:#?}");
    let r = scan(&html(
        "Support <support@example.com>",
        "Shared file",
        r#"<a href="https://nhs.uk.verify-login.com/auth">Open document</a>
           <a href="https://xn--ns-4wc.net/login">nһs.net</a>
           <a href="http://3232235777/">here</a>"#,
    ));
    assert!(r.has(URI_EMBEDS_PROTECTED), "{r:#?}");
    assert!(
        r.has(URI_CONFUSABLE_PROTECTED) && r.has(URI_PUNYCODE) && r.has(URI_MIXED_SCRIPT),
        "{r:#?}"
    );
    assert!(r.has(URI_BARE_IP), "{r:#?}");
    assert!(r.verdict >= Verdict::Quarantine, "{r:#?}");
    // Plain-text links count too.
    let r = scan(&plain(
        "a@example.com",
        "x",
        "Update at https://nhs-net.co/portal now",
    ));
    assert!(r.has(URI_LOOKALIKE_PROTECTED), "{r:#?}");
}

#[test]
fn credential_harvesting() {
    let r = scan(&html(
        "Mailbox Admin <admin@mail-quota.example>",
        "Your mailbox is full",
        r#"<p>Your mailbox is full. Verify your account within 24 hours or your account will be suspended.</p>
           <form action="https://collect.example/p"><input name=u><input type="password" name=p></form>"#,
    ));
    assert!(r.has(PHISH_WORDING) && r.has(HTML_PASSWORD_FORM), "{r:#?}");
    assert!(r.verdict >= Verdict::Tag, "{r:#?}");
    let w = r.symbol(PHISH_WORDING).unwrap();
    assert!(
        w.score <= 6.0 && w.score > 5.0,
        "capped at its weight: {w:?}"
    );
}

#[test]
fn organisation_domains_are_protected() {
    let config = MailConfig::from_toml_str(
        "[phishing]\norganisation_domains = [\"sunnyvale-care.co.uk\"]\norganisation_names = [\"Sunnyvale Care\"]\n",
    )
    .unwrap();
    let s = Scanner::new(config, None).unwrap();
    let r = s.scan(&plain(
        "Manager <manager@sunnyvale-care.co.uk>",
        "Rota",
        BODY,
    ));
    assert_eq!(r.verdict, Verdict::Accept, "{r:#?}");
    let r = s.scan(&plain(
        "Manager <manager@sunnyva1e-care.co.uk>",
        "Invoice",
        BODY,
    ));
    assert!(r.has(FROM_CONFUSABLE_PROTECTED), "{r:#?}");
    let r = s.scan(&plain(
        "Manager <manager@sunnyvalecare.co.uk>",
        "Invoice",
        BODY,
    ));
    assert!(r.has(FROM_LOOKALIKE_PROTECTED), "{r:#?}");
    let r = s.scan(&plain(
        "Sunnyvale Care Payroll <pay@payroll.example>",
        "Payslip",
        BODY,
    ));
    assert!(r.has(DISPLAY_NAME_IMPERSONATION), "{r:#?}");
}

#[test]
fn json_shape() {
    let r = scan(&plain("NHS Mail <admin@nhs-net.co>", "Mailbox", BODY));
    let v: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(v["verdict"], "quarantine");
    let sym = v["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == FROM_LOOKALIKE_PROTECTED)
        .unwrap();
    assert!(sym["score"].is_number() && sym["reason"].is_string());
    assert_eq!(sym["min_verdict"], "quarantine");
}

#[test]
fn outbound_dlp_counts_identifiers_without_values() {
    let raw = plain(
        "Office <office@sunnyvale-care.co.uk>",
        "Referral",
        "Resident: Mrs Edith Jones, DOB: 03/04/1931, NHS number 943 476 5919.\r\nAlso 9000000009.",
    );
    let findings = scanner().dlp(&raw);
    let json = serde_json::to_string(&findings).unwrap();
    assert_eq!(
        json,
        r#"[{"kind":"nhs_number","count":2},{"kind":"name_with_date_of_birth","count":1}]"#
    );
    assert!(!json.contains("943") && !json.contains("Edith"));
    assert!(
        scanner()
            .dlp(&plain("a@example.com", "Hi", "Lunch at 12?"))
            .is_empty()
    );
}
