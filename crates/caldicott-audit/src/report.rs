//! The patient access report: "who has looked at my record".
//!
//! Why: a patient has the right to know who used their record and why (UK GDPR Article 15,
//! the NHS Constitution), and an audit trail the patient cannot check is one they must take
//! on trust. So the report comes in two forms from the same entries, both pure functions of
//! what the caller gives:
//!
//! - [`to_bundle`]: a FHIR R4 `Bundle` of type `collection`, one `AuditEvent` (from
//!   [`crate::fhir`]) per entry, for the patient's app or another service. The inclusion
//!   proof travels **inside each resource**, as two more `detail`s of its ledger entity
//!   (`ledger-tree-size`, and `ledger-inclusion-proof`: the audit path's base64 hashes from
//!   the leaf up, joined with `,`), so a resource copied out of the bundle keeps its proof and
//!   no extension needs defining. The checkpoint and the verifier key, which the proofs are
//!   checked against, are two `Binary` entries (`ledger-checkpoint`, `ledger-verifier-key`,
//!   `text/plain`): a `Bundle` has no element of its own for them (it is a `Resource`, not a
//!   `DomainResource`, so it has no extensions either), and `collection` allows any resource.
//!   The patient heading is not in the bundle: the resources name the patient only by
//!   pseudonym, and the bundle should not undo that.
//! - [`to_html`]: one complete HTML5 page in plain English in the NHS style, readable on a
//!   phone, printable, accessible (a language, landmarks, a captioned table with header
//!   cells, `<time>` elements, no meaning carried by colour alone), and self-contained: no
//!   script, no external resource, and a Content-Security-Policy that forbids both in case a
//!   browser is ever persuaded otherwise. Every string that came from an event or the header
//!   is HTML-escaped. Times are UK local (GMT or BST, named).
//!
//! Both list entries newest first. The log origin that FHIR's `source.observer` names is the
//! first line of the checkpoint (a C2SP checkpoint starts with its origin).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::fhir::{self, EntryRef, Extras, Proof};
use crate::{AuditEvent, EventKind, Outcome, uktime, words};

/// One ledger entry in the report, with its proof of inclusion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEntry {
    pub epoch: u32,
    pub index: u64,
    pub event: AuditEvent,
    /// The leaf's RFC 9162 hash, base64.
    pub leaf_hash_b64: String,
    /// The inclusion proof's hashes, base64, from the leaf's sibling up to the root.
    pub inclusion_proof_b64: Vec<String>,
    /// The tree size the proof is against (the checkpoint's).
    pub tree_size: u64,
}

/// What the report says about itself.
#[derive(Clone, PartialEq, Eq)]
pub struct ReportHeader {
    /// How the patient is named at the top of the page, chosen by the caller (e.g. the NHS
    /// number formatted 3-3-4). Shown only in the HTML.
    pub patient_display: String,
    /// When the report was made, microseconds since the Unix epoch.
    pub generated_at_us: i64,
    /// The signed checkpoint (C2SP signed note) the proofs are against, verbatim.
    pub checkpoint_text: String,
    /// The key that verifies the checkpoint's signature (C2SP verifier key), verbatim.
    pub verifier_key: String,
    /// Organisation names by ODS code, for the reader.
    pub organisation_names: BTreeMap<String, String>,
}

/// The patient's identifier stays out of logs.
impl std::fmt::Debug for ReportHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportHeader")
            .field("patient_display", &"<redacted>")
            .field("generated_at_us", &self.generated_at_us)
            .field("checkpoint_text", &self.checkpoint_text)
            .field("verifier_key", &self.verifier_key)
            .field("organisation_names", &self.organisation_names)
            .finish()
    }
}

/// The log origin: the checkpoint's first line.
pub(crate) fn origin(header: &ReportHeader) -> &str {
    header.checkpoint_text.lines().next().unwrap_or("").trim()
}

/// Entries newest first (ties by ledger position, latest first), so every form agrees.
pub(crate) fn newest_first(entries: &[ReportEntry]) -> Vec<&ReportEntry> {
    let mut sorted: Vec<&ReportEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| std::cmp::Reverse((e.event.at_us, e.epoch, e.index)));
    sorted
}

fn binary(id: &str, text: &str) -> Value {
    let mut b = serde_json::Map::new();
    b.insert("resourceType".into(), "Binary".into());
    b.insert("id".into(), id.into());
    b.insert("contentType".into(), "text/plain".into());
    if !text.is_empty() {
        b.insert(
            "data".into(),
            base64::engine::general_purpose::STANDARD
                .encode(text.as_bytes())
                .into(),
        );
    }
    json!({ "resource": b })
}

/// The report as a FHIR R4 `Bundle` (type `collection`).
#[must_use]
pub fn to_bundle(header: &ReportHeader, entries: &[ReportEntry]) -> Value {
    let source_name = origin(header).to_owned();
    let mut out: Vec<Value> = newest_first(entries)
        .into_iter()
        .map(|e| {
            let entry = EntryRef {
                epoch: e.epoch,
                index: e.index,
                leaf_hash_b64: e.leaf_hash_b64.clone(),
                source_name: source_name.clone(),
            };
            let extras = Extras {
                org_name: header
                    .organisation_names
                    .get(&e.event.org)
                    .map(String::as_str),
                proof: Some(Proof {
                    hashes_b64: &e.inclusion_proof_b64,
                    tree_size: e.tree_size,
                }),
            };
            json!({ "resource": fhir::render(&e.event, &entry, &extras) })
        })
        .collect();
    out.push(binary("ledger-checkpoint", &header.checkpoint_text));
    out.push(binary("ledger-verifier-key", &header.verifier_key));
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": fhir::instant(header.generated_at_us),
        "entry": out,
    })
}

/// Escapes text for HTML element content and quoted attribute values. C0 controls other
/// than tab, CR and LF (invalid in HTML) become U+FFFD.
#[must_use]
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A purpose of use as the patient would say it.
/// Why, in plain words (not escaped: for the PDF; HTML escapes it).
pub(crate) fn purpose_plain(purpose: &str) -> String {
    match purpose {
        "direct-care" => "Your care".to_owned(),
        "emergency" => "Emergency care".to_owned(),
        "research" => "Research".to_owned(),
        "planning" => "Planning health and care services".to_owned(),
        "audit" => "Checking that records are used properly".to_owned(),
        "" => "Not recorded".to_owned(),
        other => other.to_owned(),
    }
}

fn purpose_words(purpose: &str) -> String {
    escape_html(&purpose_plain(purpose))
}

/// What was done, in plain words (not escaped).
pub(crate) fn what_plain(event: &AuditEvent) -> String {
    let action = words::action(event);
    match (&event.kind, event.rtype.as_deref()) {
        (EventKind::Access, Some(rtype)) if !rtype.is_empty() => {
            format!("{action}: {}", words::record_type_or_code(rtype))
        }
        _ => action.to_owned(),
    }
}

fn what_words(event: &AuditEvent) -> String {
    escape_html(&what_plain(event))
}

fn organisation(header: &ReportHeader, ods: &str) -> String {
    match (header.organisation_names.get(ods), ods.is_empty()) {
        (_, true) => "Not recorded".to_owned(),
        (Some(name), false) => format!(
            "{} <span class=\"code\">({})</span>",
            escape_html(name),
            escape_html(ods)
        ),
        (None, false) => escape_html(ods),
    }
}

/// A `<time>` element: UK local words, UTC machine-readable (HTML allows at most
/// millisecond fractions; seconds are enough).
fn time_element(at_us: i64) -> String {
    let local = uktime::uk_local(at_us);
    let u = uktime::utc(at_us);
    let words = format!(
        "{}<br>{} {}",
        local.long_date(),
        local.clock(),
        local.zone()
    );
    if (1..=9999).contains(&u.year) {
        format!(
            "<time datetime=\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z\">{words}</time>",
            u.year, u.month, u.day, u.hour, u.minute, u.second
        )
    } else {
        words
    }
}

const STYLE: &str = "
body{margin:0;font-family:Arial,Helvetica,sans-serif;font-size:1.1875rem;line-height:1.5;color:#212b32;background:#f0f4f5}
.skip{position:absolute;left:-9999px}.skip:focus{left:1rem;top:1rem;background:#ffeb3b;color:#212b32;padding:.5rem}
header{background:#005eb8;color:#fff;padding:1rem}header p{margin:0;font-weight:bold}
main{max-width:72rem;margin:0 auto;padding:1rem 1rem 3rem}
h1{font-size:2.25rem;line-height:1.2}h2{margin-top:2.5rem}
a{color:#005eb8}a:focus{outline:4px solid #212b32;background:#ffeb3b;color:#212b32}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dl.summary dt{font-weight:bold}dl.summary dd{margin:0}
.table-wrap{overflow-x:auto}.table-wrap:focus{outline:4px solid #ffeb3b}
table{border-collapse:collapse;width:100%;background:#fff}caption{text-align:left;font-weight:bold;padding:.5rem 0}
th,td{text-align:left;vertical-align:top;border-bottom:1px solid #d8dde0;padding:.5rem}
thead th{border-bottom:2px solid #212b32}
tr.refused{background:#fde8e6}tr.emergency{background:#fff9c4}
.tag{display:inline-block;padding:.1rem .4rem;border:2px solid currentColor;font-weight:bold}
.tag-refused{color:#fff;background:#d5281b;border-color:#d5281b}.tag-emergency{color:#212b32;background:#ffeb3b;border-color:#212b32}
.code{color:#4c6272;font-size:.9em}pre,code{font-family:Consolas,Menlo,monospace;font-size:.9rem;word-break:break-all;white-space:pre-wrap}
pre{background:#fff;border:1px solid #d8dde0;padding:.75rem}
details summary{cursor:pointer;color:#005eb8}
@media print{body{background:#fff}header{color:#000;background:#fff;border-bottom:2px solid #000}.skip{display:none}details{display:block}}
";

/// The report as one self-contained HTML5 page.
#[must_use]
pub fn to_html(header: &ReportHeader, entries: &[ReportEntry]) -> String {
    let sorted = newest_first(entries);
    let refused = sorted
        .iter()
        .filter(|e| e.event.outcome == Outcome::Deny)
        .count();
    let emergency = sorted.iter().filter(|e| e.event.break_glass).count();
    let generated = uktime::uk_local(header.generated_at_us).long();

    let mut h = String::with_capacity(8192 + entries.len() * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en-GB\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
    );
    h.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    h.push_str("<title>Who has looked at your record</title>\n<style>");
    h.push_str(STYLE);
    h.push_str("</style>\n</head>\n<body>\n");
    h.push_str("<a class=\"skip\" href=\"#main\">Skip to main content</a>\n");
    h.push_str("<header><p>Your health record: access report</p></header>\n");
    h.push_str("<main id=\"main\">\n<h1>Who has looked at your record</h1>\n");
    let _ = write!(
        h,
        "<dl class=\"summary\">\n<dt>Record of</dt><dd>{}</dd>\n<dt>Report made</dt><dd>{}</dd>\n</dl>\n",
        escape_html(&header.patient_display),
        escape_html(&generated)
    );
    h.push_str(
        "<p>Every time someone reads, searches, changes or copies your health record, or tries \
         to, it is written in an audit log. Entries in the log cannot be changed or removed \
         without it showing. This report lists the entries about you.</p>\n",
    );

    if sorted.is_empty() {
        h.push_str("<p>There are no entries about your record.</p>\n");
    } else {
        let _ = write!(
            h,
            "<p>There {} {} {} about your record.",
            if sorted.len() == 1 { "is" } else { "are" },
            sorted.len(),
            if sorted.len() == 1 {
                "entry"
            } else {
                "entries"
            }
        );
        if emergency > 0 {
            let _ = write!(
                h,
                " {emergency} of them {} emergency access (break-glass).",
                if emergency == 1 { "was" } else { "were" }
            );
        }
        if refused > 0 {
            let _ = write!(
                h,
                " {refused} of them {} refused.",
                if refused == 1 { "was" } else { "were" }
            );
        }
        h.push_str("</p>\n");
        h.push_str("<h2 id=\"entries-heading\">What was done</h2>\n");
        h.push_str(
            "<div class=\"table-wrap\" role=\"region\" aria-labelledby=\"entries-caption\" tabindex=\"0\">\n<table>\n",
        );
        h.push_str("<caption id=\"entries-caption\">Use of your record, newest first</caption>\n");
        h.push_str(
            "<thead><tr><th scope=\"col\">Date and time</th><th scope=\"col\">Person</th>\
             <th scope=\"col\">Their role</th><th scope=\"col\">Organisation</th>\
             <th scope=\"col\">What they did</th><th scope=\"col\">Why</th>\
             <th scope=\"col\">Notes</th><th scope=\"col\">Log entry</th></tr></thead>\n<tbody>\n",
        );
        for e in &sorted {
            row(&mut h, header, e);
        }
        h.push_str("</tbody>\n</table>\n</div>\n");
        if emergency > 0 {
            h.push_str(
                "<h2>About emergency access (break-glass)</h2>\n<p>Staff who urgently need to \
                 see a record they would not normally be able to see can declare an \
                 emergency. This is called break-glass. They must give a reason, the access \
                 lasts a few hours at most, and every use is reviewed by the Caldicott \
                 guardian, the person responsible for protecting patient information.</p>\n",
            );
        }
        if refused > 0 {
            h.push_str(
                "<h2>About refused attempts</h2>\n<p>A refused attempt means the system \
                 blocked it: nothing from your record was shown and nothing was changed. \
                 Refusals are listed so you can see them too.</p>\n",
            );
        }
    }
    h.push_str(
        "<h2>If something looks wrong</h2>\n<p>If you do not recognise an entry, or think \
         someone looked at your record without a good reason, contact your GP surgery or the \
         organisation named and ask to speak to their Caldicott guardian or data protection \
         officer. Give them the log entry number from the table.</p>\n",
    );
    verification(&mut h, header, &sorted);
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

fn row(h: &mut String, header: &ReportHeader, e: &ReportEntry) {
    let ev = &e.event;
    let mut classes = Vec::new();
    let mut notes = Vec::new();
    if ev.break_glass {
        classes.push("emergency");
        notes.push(
            "<strong class=\"tag tag-emergency\">Emergency access (break-glass)</strong>"
                .to_owned(),
        );
    }
    match ev.outcome {
        Outcome::Deny => {
            classes.push("refused");
            let mut note = "<strong class=\"tag tag-refused\">Refused</strong> They were not \
                            allowed to do this, so nothing was shown or changed."
                .to_owned();
            if !ev.reason.is_empty() {
                let _ = write!(
                    note,
                    " <span class=\"code\">Reason recorded: {}</span>",
                    escape_html(&ev.reason)
                );
            }
            notes.push(note);
        }
        Outcome::Permit => notes.push("Allowed".to_owned()),
    }
    let person = if ev.user.is_empty() {
        "Not recorded".to_owned()
    } else {
        escape_html(&ev.user)
    };
    let role = words::roles_or_codes(&ev.role);
    let role = if role.is_empty() {
        "Not recorded".to_owned()
    } else {
        escape_html(&role)
    };
    let position = format!("{}-{}", e.epoch, e.index);
    let class = if classes.is_empty() {
        String::new()
    } else {
        format!(" class=\"{}\"", classes.join(" "))
    };
    let _ = writeln!(
        h,
        "<tr{class}><th scope=\"row\">{}</th><td>{person}</td><td>{role}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td><a href=\"#entry-{position}\">{position}</a></td></tr>",
        time_element(ev.at_us),
        organisation(header, &ev.org),
        what_words(ev),
        purpose_words(&ev.purpose),
        notes.join("<br>"),
    );
}

fn verification(h: &mut String, header: &ReportHeader, sorted: &[&ReportEntry]) {
    h.push_str(
        "<section aria-labelledby=\"check-heading\">\n<h2 id=\"check-heading\">How to check this \
         report</h2>\n<p>The audit log is a Merkle tree log, like the logs that keep web \
         certificates honest. Anyone can check that the entries in this report are in the \
         log, and that the log has not been rewritten, without having to trust us:</p>\n<ol>\n\
         <li>Check the signature on the checkpoint below with the verifier key. The checkpoint \
         states how many entries the log held and a hash of all of them.</li>\n\
         <li>For each entry, check its inclusion proof: starting from the entry's leaf hash, \
         combine it with each proof hash in turn (RFC 9162, SHA-256). You should arrive at \
         the checkpoint's hash.</li>\n\
         <li>Keep this report. A later checkpoint must contain this one (a consistency proof \
         shows it), so entries cannot quietly disappear.</li>\n</ol>\n",
    );
    let _ = write!(
        h,
        "<h3>Signed checkpoint</h3>\n<pre>{}</pre>\n<h3>Verifier key</h3>\n<pre>{}</pre>\n",
        escape_html(&header.checkpoint_text),
        escape_html(&header.verifier_key)
    );
    if sorted.is_empty() {
        h.push_str("</section>\n");
        return;
    }
    h.push_str(
        "<h3>Entries and their proofs</h3>\n<div class=\"table-wrap\" role=\"region\" \
         aria-labelledby=\"proofs-caption\" tabindex=\"0\">\n<table>\n<caption \
         id=\"proofs-caption\">Log entries in this report</caption>\n<thead><tr><th \
         scope=\"col\">Log entry (epoch-index)</th><th scope=\"col\">Leaf hash</th><th \
         scope=\"col\">Tree size</th><th scope=\"col\">Inclusion proof</th></tr></thead>\n<tbody>\n",
    );
    for e in sorted {
        let position = format!("{}-{}", e.epoch, e.index);
        let proof = if e.inclusion_proof_b64.is_empty() && e.tree_size <= 1 {
            "None needed: the entry is the whole tree".to_owned()
        } else if e.inclusion_proof_b64.is_empty() {
            "Not supplied: ask for this entry's proof".to_owned()
        } else {
            let n = e.inclusion_proof_b64.len();
            let mut p = format!(
                "<details><summary>Show the proof ({n} {})</summary><ol>",
                if n == 1 { "hash" } else { "hashes" }
            );
            for hash in &e.inclusion_proof_b64 {
                let _ = write!(p, "<li><code>{}</code></li>", escape_html(hash));
            }
            p.push_str("</ol></details>");
            p
        };
        let _ = writeln!(
            h,
            "<tr id=\"entry-{position}\"><th scope=\"row\">{position}</th><td><code>{}</code></td>\
             <td>{}</td><td>{proof}</td></tr>",
            escape_html(&e.leaf_hash_b64),
            e.tree_size
        );
    }
    h.push_str("</tbody>\n</table>\n</div>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::r4check::check_audit_event;
    use crate::tests::sample;
    use proptest::prelude::*;

    const CHECKPOINT: &str = "caldicott.example.nhs.uk/audit\n1300\nq0ZlN3GGA6bQwz6gPcNJCpWmNZT2jG7jz3V5zMm0KcY=\n\n— caldicott.example.nhs.uk/audit Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";

    fn header() -> ReportHeader {
        ReportHeader {
            patient_display: "943 476 5919".into(),
            generated_at_us: 1_767_225_600_000_000, // 2026-01-01T00:00:00Z
            checkpoint_text: CHECKPOINT.into(),
            verifier_key: "caldicott.example.nhs.uk/audit+cad5a3d2+AfPAH5...".into(),
            organisation_names: BTreeMap::from([(
                "A81001".to_owned(),
                "The Health Centre".to_owned(),
            )]),
        }
    }

    fn entry(index: u64, at_us: i64) -> ReportEntry {
        let mut event = sample();
        event.at_us = at_us;
        ReportEntry {
            epoch: 1,
            index,
            event,
            leaf_hash_b64: format!("leaf{index}hash="),
            inclusion_proof_b64: vec!["aGFzaDE=".into(), "aGFzaDI=".into()],
            tree_size: 1300,
        }
    }

    fn entries() -> Vec<ReportEntry> {
        let mut refused = entry(7, 1_764_500_000_000_000);
        refused.event.outcome = Outcome::Deny;
        refused.event.user = "nurse.patel".into();
        refused.event.role = "registered-nurse".into();
        refused.event.reason = "denied: no legitimate relationship with the patient".into();
        let mut glass = entry(9, 1_751_400_000_000_000); // 1 July 2025, in BST
        glass.event.break_glass = true;
        glass.event.purpose = "emergency".into();
        glass.event.org = "RX1".into();
        vec![entry(5, 1_764_400_000_000_000), refused, glass]
    }

    /// Void elements, which have no end tag.
    const VOID: &[&str] = &["meta", "br", "link", "img", "input", "hr"];

    /// Checks that tags nest properly; returns the element names opened, in order. All text
    /// in the page is escaped, so `<` always starts a tag.
    fn tag_structure(html: &str) -> Result<Vec<String>, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut opened = Vec::new();
        let mut rest = html;
        while let Some(start) = rest.find('<') {
            let end = rest[start..].find('>').ok_or("unclosed tag")? + start;
            let tag = &rest[start + 1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack.pop().ok_or(format!("stray </{name}>"))?;
                if top != name {
                    return Err(format!("</{name}> closes <{top}>"));
                }
            } else {
                let name: String = tag
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                opened.push(name.clone());
                if name == "style" {
                    let close = rest.find("</style>").ok_or("unclosed style")?;
                    rest = &rest[close + "</style>".len()..];
                    continue;
                }
                if !VOID.contains(&name.as_str()) {
                    stack.push(name);
                }
            }
        }
        if stack.is_empty() {
            Ok(opened)
        } else {
            Err(format!("unclosed: {stack:?}"))
        }
    }

    #[test]
    fn the_bundle_is_a_collection_of_valid_audit_events_with_proofs() {
        let b = to_bundle(&header(), &entries());
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "collection");
        assert_eq!(b["timestamp"], "2026-01-01T00:00:00.000000Z");
        assert!(
            b.get("total").is_none(),
            "bdl-1: total only in searchset/history"
        );
        let items = b["entry"].as_array().unwrap();
        assert_eq!(items.len(), 5);
        let ids: Vec<&str> = items
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "1-7",
                "1-5",
                "1-9",
                "ledger-checkpoint",
                "ledger-verifier-key"
            ]
        );
        for item in &items[..3] {
            let r = &item["resource"];
            check_audit_event(r).unwrap();
            assert_eq!(
                r["source"]["observer"]["display"],
                "caldicott.example.nhs.uk/audit"
            );
            let details = r["entity"].as_array().unwrap().last().unwrap()["detail"]
                .as_array()
                .unwrap()
                .clone();
            assert!(
                details.contains(&json!({ "type": "ledger-tree-size", "valueString": "1300" }))
            );
            assert!(details.contains(
                &json!({ "type": "ledger-inclusion-proof", "valueString": "aGFzaDE=,aGFzaDI=" })
            ));
            assert_eq!(
                item.as_object().unwrap().len(),
                1,
                "only `resource` in an entry"
            );
        }
        assert_eq!(
            items[1]["resource"]["agent"][1]["who"]["display"],
            "The Health Centre"
        );
        assert!(
            items[2]["resource"]["agent"][1]["who"]
                .get("display")
                .is_none()
        );
        let cp = &items[3]["resource"];
        assert_eq!(cp["resourceType"], "Binary");
        assert_eq!(cp["contentType"], "text/plain");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(cp["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(decoded, CHECKPOINT.as_bytes());
        // The patient's heading is not in the machine-readable form.
        assert!(!b.to_string().contains("943 476 5919"));
    }

    #[test]
    fn an_empty_report_is_still_valid() {
        let mut hd = header();
        hd.checkpoint_text = String::new();
        let b = to_bundle(&hd, &[]);
        let items = b["entry"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert!(items[0]["resource"].get("data").is_none());
        let html = to_html(&hd, &[]);
        assert!(html.contains("There are no entries about your record."));
        assert!(!html.contains("<table>"));
        tag_structure(&html).unwrap();
    }

    #[test]
    fn the_page_says_who_what_when_why_in_plain_english() {
        let html = to_html(&header(), &entries());
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en-GB\">"));
        assert!(html.contains("<title>Who has looked at your record</title>"));
        assert!(html.contains("<h1>Who has looked at your record</h1>"));
        assert!(html.contains("<dd>943 476 5919</dd>"));
        assert!(html.contains("Thursday 1 January 2026, midnight GMT"));
        assert!(html.contains(
            "There are 3 entries about your record. 1 of them was emergency access (break-glass). 1 of them was refused."
        ));
        // The read on 29 November 2025 at 07:06:40 UTC (GMT).
        assert!(html.contains(
            "<time datetime=\"2025-11-29T07:06:40Z\">Saturday 29 November 2025<br>7:06am GMT</time>"
        ));
        // The break-glass read on 1 July 2025 at 20:00 UTC is 9pm BST.
        assert!(html.contains("Tuesday 1 July 2025<br>9:00pm BST"));
        assert!(html.contains("<td>dr.jones</td><td>GP</td>"));
        assert!(html.contains("<td>Registered nurse</td>"));
        assert!(html.contains("The Health Centre <span class=\"code\">(A81001)</span>"));
        assert!(html.contains("<td>RX1</td>"));
        assert!(html.contains("Read a record: observations and test results"));
        assert!(html.contains("<td>Your care</td>"));
        assert!(html.contains("<td>Emergency care</td>"));
        assert!(html.contains("Emergency access (break-glass)</strong>"));
        assert!(html.contains("<tr class=\"emergency\">"));
        assert!(html.contains("<tr class=\"refused\">"));
        assert!(html.contains("<strong class=\"tag tag-refused\">Refused</strong>"));
        assert!(
            html.contains("Reason recorded: denied: no legitimate relationship with the patient")
        );
        assert!(html.contains("About emergency access (break-glass)"));
        assert!(html.contains("About refused attempts"));
        // Newest first.
        let pos = |needle: &str| html.find(needle).unwrap();
        assert!(pos("href=\"#entry-1-7\"") < pos("href=\"#entry-1-5\""));
        assert!(pos("href=\"#entry-1-5\"") < pos("href=\"#entry-1-9\""));
    }

    #[test]
    fn the_page_shows_how_to_check_it() {
        let html = to_html(&header(), &entries());
        assert!(html.contains(&format!("<pre>{}</pre>", escape_html(CHECKPOINT))));
        assert!(html.contains("<pre>caldicott.example.nhs.uk/audit+cad5a3d2+AfPAH5...</pre>"));
        assert!(html.contains("<tr id=\"entry-1-5\"><th scope=\"row\">1-5</th><td><code>leaf5hash=</code></td><td>1300</td>"));
        assert!(html.contains(
            "<details><summary>Show the proof (2 hashes)</summary><ol><li><code>aGFzaDE=</code></li><li><code>aGFzaDI=</code></li></ol></details>"
        ));
        let mut single = entries();
        single.truncate(1);
        single[0].inclusion_proof_b64.clear();
        single[0].tree_size = 1;
        let html = to_html(&header(), &single);
        assert!(html.contains("None needed: the entry is the whole tree"));
        single[0].tree_size = 2;
        let html = to_html(&header(), &single);
        assert!(html.contains("Not supplied: ask for this entry's proof"));
        assert!(html.contains("There is 1 entry about your record."));
    }

    #[test]
    fn the_page_is_self_contained_accessible_and_well_formed() {
        let html = to_html(&header(), &entries());
        let lower = html.to_lowercase();
        assert!(!lower.contains("<script"));
        assert!(!lower.contains("http:"));
        assert!(!lower.contains("https:"));
        assert!(!lower.contains(" src="));
        assert!(!lower.contains("<link"));
        let handler = lower.match_indices(" on").any(|(i, _)| {
            let name: String = lower[i + 3..]
                .chars()
                .take_while(char::is_ascii_alphabetic)
                .collect();
            lower[i + 3 + name.len()..].starts_with('=')
        });
        assert!(!handler, "no event handler attributes");
        assert!(lower.contains("default-src 'none'"));
        let opened = tag_structure(&html).unwrap();
        for landmark in [
            "main", "header", "section", "caption", "thead", "time", "details",
        ] {
            assert!(opened.iter().any(|t| t == landmark), "{landmark}");
        }
        assert!(html.contains("<th scope=\"col\">Date and time</th>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
    }

    #[test]
    fn hostile_strings_are_escaped_everywhere() {
        let mut hd = header();
        hd.patient_display = "<b>943</b>".into();
        hd.checkpoint_text = "origin\n</pre><script>alert(1)</script>".into();
        hd.verifier_key = "key\"'><img src=x onerror=alert(1)>".into();
        hd.organisation_names
            .insert("A81001".into(), "\"><img src=x onerror=alert(2)>".into());
        let mut es = entries();
        let e = &mut es[0].event;
        e.user = "<script>alert('user')</script>".into();
        e.role = "<i>role</i>".into();
        e.purpose = "<u>why</u>".into();
        e.rtype = Some("<svg onload=alert(3)>".into());
        e.org = "A81001".into();
        e.reason = "</td></tr></table><script>x</script>".into();
        e.outcome = Outcome::Deny;
        es[0].leaf_hash_b64 = "<leaf>".into();
        es[0].inclusion_proof_b64 = vec!["</code><script>".into()];
        let html = to_html(&hd, &es);
        let lower = html.to_lowercase();
        assert!(!lower.contains("<script"), "{html}");
        assert!(!lower.contains("<img"));
        assert!(!lower.contains("<svg"));
        assert!(!lower.contains("<b>943"));
        assert!(!lower.contains("<i>role"));
        assert!(!lower.contains("<u>why"));
        assert!(html.contains("&lt;script&gt;alert(&#39;user&#39;)&lt;/script&gt;"));
        assert!(html.contains("&lt;b&gt;943&lt;/b&gt;"));
        assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
        tag_structure(&html).unwrap();
        // The bundle is JSON: its strings are data, and the checks still hold.
        let b = to_bundle(&hd, &es);
        for item in &b["entry"].as_array().unwrap()[..3] {
            check_audit_event(&item["resource"]).unwrap();
        }
    }

    #[test]
    fn escape_html_covers_the_five_and_controls() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            escape_html("a\u{0}b\u{1b}c\td\n"),
            "a\u{FFFD}b\u{FFFD}c\td\n"
        );
    }

    #[test]
    fn header_debug_redacts_the_patient() {
        let s = format!("{:?}", header());
        assert!(!s.contains("943 476 5919"));
        assert!(s.contains("<redacted>"));
    }

    proptest! {
        #[test]
        fn any_strings_stay_text(
            user in "\\PC{0,16}",
            org_name in "\\PC{0,16}",
            reason in "\\PC{0,16}",
            display in "\\PC{0,16}",
            checkpoint in "\\PC{0,32}",
            at_us in any::<i64>(),
        ) {
            let mut hd = header();
            hd.patient_display = display;
            hd.checkpoint_text = checkpoint;
            hd.organisation_names.insert("A81001".into(), org_name);
            let mut es = entries();
            es[0].event.user = user;
            es[0].event.reason = reason;
            es[0].event.at_us = at_us;
            let html = to_html(&hd, &es);
            prop_assert!(tag_structure(&html).is_ok());
            let opened = tag_structure(&html).unwrap_or_default();
            prop_assert!(!opened.iter().any(|t| t == "script" || t == "img"));
            let b = to_bundle(&hd, &es);
            for item in &b["entry"].as_array().unwrap()[..3] {
                prop_assert!(check_audit_event(&item["resource"]).is_ok());
            }
        }
    }
}
