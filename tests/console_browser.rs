//! The web console in a real headless Chromium (issue 8): sign-in with a one-time password,
//! the forced password change, TOTP enrolment, home, sign-out and signing in again with a
//! code, with axe-core run in every page (no serious or critical violation allowed).
//!
//! The browser comes from `tests/common/browser.rs` (a small WebDriver client for
//! chromedriver). `cargo xtask test` installs Chromium, chromedriver and axe-core and sets
//! `CALDICOTT_TEST_CHROMEDRIVER`, `CALDICOTT_TEST_CHROMIUM`, `CALDICOTT_TEST_AXE` and
//! `CALDICOTT_REQUIRE_BROWSER=1`; without them these tests print "skipping: no browser" and
//! pass. (The screenshots in `docs/screenshots/` come from `console_walk.rs`.)

mod common;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use caldicott_identity::{Totp, TotpSecret};
use common::browser::Browser;
use common::*;

/// The new password chosen at first sign-in: long, not common, free of the user's name.
const NEW_PASSWORD: &str = "lantern orchard quietly 47 ferns";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What every console page has: one main landmark with the skip-link target and one `h1`,
/// and never a server error.
fn assert_page_shape(browser: &Browser, page: &str) {
    assert!(
        browser.try_find("main#main-content").is_some(),
        "the {page} page has no <main id=\"main-content\">:\n{}",
        browser.source()
    );
    assert_eq!(
        browser.find_all("h1").len(),
        1,
        "the {page} page must have exactly one h1:\n{}",
        browser.source()
    );
    let title = browser.title();
    assert!(
        !title.is_empty() && !title.contains("500") && !title.to_lowercase().contains("error 5"),
        "the {page} page's title is {title:?}"
    );
}

/// The error summary of a refused form: present, announced (role=alert), and naming what
/// is wrong.
fn assert_error_summary(browser: &Browser, page: &str) -> String {
    let summary = browser.try_find(".nhsuk-error-summary").unwrap_or_else(|| {
        panic!(
            "the {page} page shows no .nhsuk-error-summary:\n{}",
            browser.source()
        )
    });
    assert_eq!(
        browser.attr(&summary, "role").as_deref(),
        Some("alert"),
        "the error summary on the {page} page must have role=alert"
    );
    let text = browser.text(&summary);
    assert!(
        !text.trim().is_empty(),
        "the error summary on {page} is empty"
    );
    text
}

/// A data directory with an organisation and one GP; returns it and the GP's one-time
/// password.
fn deployment(dir: &Path) -> (PathBuf, String) {
    let data = dir.join("data");
    ok(caldicott().args(["init", "--data"]).arg(&data));
    ok(caldicott()
        .args([
            "org",
            "add",
            "--ods",
            "A81001",
            "--name",
            "Castle Practice",
            "--data",
        ])
        .arg(&data));
    let added = ok(caldicott()
        .args([
            "user", "add", "--org", "A81001", "--role", "gp", "ann", "--data",
        ])
        .arg(&data));
    let otp = added
        .lines()
        .find_map(|l| l.strip_prefix("one-time password"))
        .and_then(|rest| rest.rsplit(": ").next())
        .map(|p| p.trim().to_owned())
        .unwrap_or_else(|| panic!("no one-time password in:\n{added}"));
    (data, otp)
}

#[test]
fn a_gp_signs_in_changes_password_enrols_signs_out_and_back_in() {
    let Some(browser) = Browser::start_or_skip() else {
        return;
    };
    let started = Instant::now();
    let t = tempfile::tempdir().unwrap();
    let (data, otp) = deployment(t.path());
    let server = Server::start_logged(
        caldicott()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data),
        &t.path().join("server.log"),
    );
    let url = |path: &str| format!("{}{path}", server.url);

    // Signed out, the console sends people to the sign-in page.
    browser.goto(&url("/"));
    assert!(
        browser.current_path().starts_with("/signin"),
        "signed out, / went to {}",
        browser.current_url()
    );
    browser.goto(&url("/signin"));
    assert_eq!(browser.current_path(), "/signin");
    assert_page_shape(&browser, "sign-in");
    browser.assert_accessible("sign-in");

    // A wrong password: the same page again with an accessible error, not a server error.
    browser.fill("input[name=user]", "ann");
    browser.fill("input[name=password]", "not the right password");
    browser.click("#continue");
    assert!(
        browser.current_path().starts_with("/signin"),
        "a wrong password led to {}",
        browser.current_url()
    );
    assert_page_shape(&browser, "sign-in (wrong password)");
    assert_error_summary(&browser, "sign-in (wrong password)");
    browser.assert_accessible("sign-in (wrong password)");
    assert!(
        !browser.source().contains(&otp),
        "the page repeats a password"
    );

    // The one-time password leads to the forced password change.
    browser.fill("input[name=user]", "ann");
    browser.fill("input[name=password]", &otp);
    browser.click("#continue");
    assert_eq!(browser.current_path(), "/signin/new-password");
    assert_page_shape(&browser, "new password");
    browser.assert_accessible("new password");

    // Two passwords that differ are refused next to the field.
    browser.fill("input[name=new_password]", NEW_PASSWORD);
    browser.fill(
        "input[name=confirm_password]",
        "lantern orchard quietly 48 ferns",
    );
    browser.click("#continue");
    assert_eq!(browser.current_path(), "/signin/new-password");
    assert_error_summary(&browser, "new password (mismatch)");
    browser.find("#confirm_password-error");
    browser.assert_accessible("new password (mismatch)");

    browser.fill("input[name=new_password]", NEW_PASSWORD);
    browser.fill("input[name=confirm_password]", NEW_PASSWORD);
    browser.click("#continue");
    assert_eq!(
        browser.current_path(),
        "/signin/enrol",
        "{}",
        browser.source()
    );
    assert_page_shape(&browser, "MFA enrolment");
    browser.assert_accessible("MFA enrolment");

    // Enrolment: the secret as text (for manual entry), the QR code, recovery codes.
    let secret_text = browser.text_of("#totp-secret");
    let secret = TotpSecret::from_base32(&secret_text)
        .unwrap_or_else(|e| panic!("#totp-secret is not a base32 secret ({e:?}): {secret_text:?}"));
    let qr = browser.find("img#totp-qr");
    assert!(
        browser
            .attr(&qr, "alt")
            .is_some_and(|a| !a.trim().is_empty()),
        "the QR code needs a text alternative"
    );
    let recovery = browser.find_all("#recovery-codes li");
    assert!(!recovery.is_empty(), "no recovery codes shown");
    let totp = Totp::new(secret);
    let enrol_step = totp.step_at(now());
    browser.fill("input[name=code]", &totp.code_for_step(enrol_step));
    browser.click("#continue");
    assert_eq!(
        browser.current_path(),
        "/",
        "a correct code at enrolment should lead home"
    );

    // Home: the signed-in frame for a GP.
    assert_page_shape(&browser, "home");
    browser.find("#sign-out");
    for link in ["#nav-home", "#nav-patients"] {
        assert!(browser.try_find(link).is_some(), "a GP should see {link}");
    }
    for link in ["#nav-admin", "#nav-guardian"] {
        assert!(browser.try_find(link).is_none(), "a GP must not see {link}");
    }
    browser.assert_accessible("home");
    let cookies = browser.cookies();
    assert!(!cookies.is_empty(), "signed in without a cookie?");
    for c in &cookies {
        assert!(
            c.secure && c.http_only,
            "cookie {} must be Secure and HttpOnly: {c:?}",
            c.name
        );
    }

    // Sign-out is a POST; afterwards the old session no longer opens the console.
    browser.click("#sign-out");
    assert!(
        browser.current_path().starts_with("/signin"),
        "sign-out led to {}",
        browser.current_url()
    );
    browser.goto(&url("/"));
    assert!(
        browser.current_path().starts_with("/signin"),
        "after sign-out, / went to {}",
        browser.current_url()
    );

    // Signing in again: password, then a code with a purpose. A code is accepted once per
    // 30-second step; the next step is within the allowed drift, so no need to wait.
    browser.goto(&url("/signin"));
    browser.fill("input[name=user]", "ann");
    browser.fill("input[name=password]", NEW_PASSWORD);
    browser.click("#continue");
    assert_eq!(browser.current_path(), "/signin/code");
    assert_page_shape(&browser, "sign-in code");
    browser.assert_accessible("sign-in code");
    browser.select("select[name=purpose]", "direct-care");
    let step = totp.step_at(now()).max(enrol_step + 1);
    browser.fill("input[name=code]", &totp.code_for_step(step));
    browser.click("#continue");
    assert_eq!(browser.current_path(), "/", "signing in with a code");
    browser.find("#sign-out");

    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr().lock(),
        format_args!(
            "console browser walk took {:.1}s\n",
            started.elapsed().as_secs_f64()
        ),
    );
}

/// Percent-encodes `html` for a `data:` URL.
fn data_url(html: &str) -> String {
    let mut out = String::from("data:text/html;charset=utf-8,");
    for b in html.bytes() {
        if b.is_ascii_alphanumeric() || b" -_.~<>=/:;'\"()!,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The harness itself, on pages that need no server: forms, script, screenshots, and
/// axe-core both passing a clean page and catching a broken one, all under a CSP that
/// forbids the page's own scripts.
#[test]
fn the_browser_harness_drives_chromium_and_axe_under_a_strict_csp() {
    let Some(browser) = Browser::start_or_skip() else {
        return;
    };
    let csp = r#"<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'self'">"#;
    let page = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">{csp}<title>Harness check</title>
        <script>document.title = 'inline script ran';</script></head>
        <body><main id="main-content"><h1>Harness check</h1>
        <form><label for="name">Name</label><input id="name" name="name" value="old">
        <label for="purpose">Purpose</label><select id="purpose" name="purpose">
        <option value="direct-care">Direct care</option><option value="audit">Audit</option></select>
        <button id="go" type="button">Go</button></form>
        <ul id="items"><li>one</li><li>two</li></ul></main></body></html>"#
    );
    browser.goto(&data_url(&page));
    // The CSP is in force (the inline script did not run), yet WebDriver's script does.
    assert_eq!(browser.title(), "Harness check");
    assert_eq!(
        browser.execute("return arguments[0] + 1;", vec![serde_json::json!(41)]),
        42
    );
    browser.fill("#name", "ann");
    browser.select("select[name=purpose]", "audit");
    let values = browser.execute(
        "return [document.getElementById('name').value, document.getElementById('purpose').value];",
        vec![],
    );
    assert_eq!(values, serde_json::json!(["ann", "audit"]));
    browser.click_in_page("#go");
    assert_eq!(browser.find_all("#items li").len(), 2);
    assert_eq!(browser.text_of("h1"), "Harness check");
    let input = browser.find("#name");
    assert_eq!(browser.attr(&input, "name").as_deref(), Some("name"));
    assert_eq!(browser.attr(&input, "placeholder"), None);
    assert!(browser.try_find("#absent").is_none());
    assert!(browser.source().contains("Harness check"));
    browser.assert_accessible("harness check");

    let t = tempfile::tempdir().unwrap();
    let png = t.path().join("shots/page.png");
    browser.screenshot_png(&png);
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);

    // A page axe-core must fail: an image without a text alternative (critical), a field
    // without a label (critical) and no lang attribute (serious).
    let broken = format!(
        r#"<!doctype html><html><head>{csp}<title>Broken</title></head><body><main>
        <h1>Broken</h1><img src="x.png"><input name="q"></main></body></html>"#
    );
    browser.goto(&data_url(&broken));
    let violations = browser.axe();
    let ids: Vec<&str> = violations.iter().map(|v| v.id.as_str()).collect();
    for expected in ["image-alt", "label", "html-has-lang"] {
        assert!(ids.contains(&expected), "axe missed {expected}: {ids:?}");
    }
    let alt = violations.iter().find(|v| v.id == "image-alt").unwrap();
    assert!(alt.is_blocking() && alt.targets == ["img"], "{alt}");
    let blocking: Vec<String> = browser
        .blocking_violations("broken")
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert!(
        blocking.contains(&"image-alt".to_owned()) && blocking.contains(&"label".to_owned()),
        "{blocking:?}"
    );
}
