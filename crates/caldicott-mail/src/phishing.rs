//! Phishing: senders and links imitating NHS, government, CQC or the organisation's own
//! domains; link text that shows one domain and goes to another; links to bare IP addresses;
//! password forms; and urgency or credential-harvesting wording.

use std::collections::BTreeSet;

use crate::check::{Check, Symbols};
use crate::config::PhishingConfig;
use crate::domains::{self, DomainMatcher, Imitation};
use crate::mail::Mail;
use crate::phrases::PhraseList;
use crate::symbols::*;

/// Urgency and credential-harvesting phrases with their weights; the symbol's weight caps the
/// sum. Matched case-insensitively on the subject and the decoded text.
pub const PHISH_PHRASES: &[(&str, f64)] = &[
    ("verify your account", 2.5),
    ("verify your identity", 2.0),
    ("verify your email", 2.0),
    ("confirm your account", 2.0),
    ("confirm your identity", 2.0),
    ("confirm your password", 3.0),
    ("validate your account", 2.5),
    ("validate your mailbox", 3.0),
    ("update your payment", 2.0),
    ("update your billing", 2.0),
    ("update your account information", 2.0),
    ("your account has been suspended", 3.0),
    ("your account will be suspended", 3.0),
    ("your account will be closed", 2.5),
    ("account has been locked", 2.5),
    ("account has been disabled", 2.5),
    ("unusual sign-in activity", 2.5),
    ("unusual login activity", 2.5),
    ("suspicious activity", 1.5),
    ("password will expire", 2.5),
    ("password expires today", 2.5),
    ("password has expired", 2.5),
    ("keep your current password", 3.0),
    ("mailbox is full", 2.5),
    ("mailbox quota", 2.5),
    ("exceeded the storage limit", 2.5),
    ("exceeded its storage limit", 2.5),
    ("within 24 hours", 1.5),
    ("within 48 hours", 1.5),
    ("immediate action required", 2.0),
    ("urgent action required", 2.0),
    ("click here to verify", 3.0),
    ("click here to login", 3.0),
    ("click here to log in", 3.0),
    ("click the link below to verify", 3.0),
    ("reactivate your account", 2.5),
    ("re-activate your account", 2.5),
    ("failure to verify", 2.5),
    ("enter your password", 2.5),
    ("provide your password", 3.0),
    ("your login credentials", 2.0),
    ("sign in to view", 1.5),
    ("shared a document with you", 1.5),
    ("sent you a secure message", 1.5),
    ("view the secure document", 2.0),
    ("you are eligible for a refund", 2.5),
    ("tax refund", 2.0),
    ("dear account holder", 2.0),
    ("dear valued customer", 1.5),
    ("dear user", 1.5),
    ("dear customer", 1.0),
    ("gift card", 1.0),
    ("wire transfer", 1.0),
    ("change of bank details", 2.0),
    ("new bank details", 2.0),
];

/// Names a display name may claim, besides the protected domains themselves.
const PROTECTED_NAMES: &[&str] = &[
    "nhs",
    "nhsmail",
    "nhs mail",
    "national health service",
    "gov.uk",
    "govuk",
    "hm government",
    "hmrc",
    "cqc",
    "care quality commission",
];

/// The phishing check.
pub struct PhishingCheck {
    matcher: DomainMatcher,
    names: Vec<String>,
    phrases: PhraseList,
}

impl PhishingCheck {
    pub fn new(config: &PhishingConfig) -> Self {
        let matcher = DomainMatcher::new(
            config
                .protected_domains
                .iter()
                .chain(&config.organisation_domains)
                .map(String::as_str),
        );
        let mut names: Vec<String> = PROTECTED_NAMES
            .iter()
            .copied()
            .chain(
                config
                    .protected_domains
                    .iter()
                    .chain(&config.organisation_domains)
                    .chain(&config.organisation_names)
                    .map(|n| n.trim()),
            )
            .map(domains::skeleton_lower)
            .filter(|n| n.len() >= 3)
            .collect();
        names.sort();
        names.dedup();
        let phrases = PhraseList::new(PHISH_PHRASES);
        Self {
            matcher,
            names,
            phrases,
        }
    }

    /// The matcher for protected domains (for other checks and tests).
    pub fn matcher(&self) -> &DomainMatcher {
        &self.matcher
    }

    fn claimed_name(&self, display: &str) -> Option<&str> {
        // Both orders: `Н` (Cyrillic capital) only looks like `H` before lowercasing.
        let as_written: String = unicode_security::skeleton(display).collect::<String>();
        let forms = [
            normalise_words(&domains::skeleton_lower(display)),
            normalise_words(&domains::skeleton_lower(&as_written)),
        ];
        self.names
            .iter()
            .find(|n| {
                let nw = normalise_words(n);
                !nw.is_empty() && forms.iter().any(|f| contains_words(f, &nw))
            })
            .map(String::as_str)
    }

    fn sender(&self, mail: &Mail<'_>, out: &mut Symbols<'_>) {
        let Some(from) = &mail.from else { return };
        let from_domain = from.domain.as_deref().unwrap_or_default();
        let genuine = !from_domain.is_empty() && self.matcher.is_genuine(from_domain);
        if let Some((how, protected)) = self.matcher.imitation(from_domain) {
            let name = match how {
                Imitation::Confusable => FROM_CONFUSABLE_PROTECTED,
                Imitation::Lookalike => FROM_LOOKALIKE_PROTECTED,
                Imitation::Embeds => FROM_EMBEDS_PROTECTED,
            };
            out.add(
                name,
                format!(
                    "sender domain {} {} {protected}",
                    show(from_domain),
                    how.describe()
                ),
            );
        }
        if let Some(display) = from.name.as_deref() {
            if !genuine && let Some(claim) = self.claimed_name(display) {
                out.add(
                    DISPLAY_NAME_IMPERSONATION,
                    format!(
                        "display name {:?} claims {claim:?} but the sender domain is {}",
                        shorten(display),
                        show(if from_domain.is_empty() {
                            "missing"
                        } else {
                            from_domain
                        })
                    ),
                );
            }
            if let Some(shown) = display_domain(display)
                && !from_domain.is_empty()
                && domains::registrable(&shown) != domains::registrable(from_domain)
            {
                out.add(
                    DISPLAY_NAME_ADDRESS_MISMATCH,
                    format!(
                        "display name shows {} but the sender domain is {}",
                        show(&shown),
                        show(from_domain)
                    ),
                );
            }
        }
        for r in &mail.reply_to {
            let Some(rd) = r.domain.as_deref() else {
                continue;
            };
            if let Some((how, protected)) = self.matcher.imitation(rd) {
                out.add(
                    REPLYTO_LOOKALIKE_PROTECTED,
                    format!(
                        "reply-to domain {} {} {protected}",
                        show(rd),
                        how.describe()
                    ),
                );
            } else if genuine
                && !self.matcher.is_genuine(rd)
                && domains::registrable(rd) != domains::registrable(from_domain)
            {
                out.add(
                    REPLYTO_DIFFERS_PROTECTED,
                    format!(
                        "sender {} but replies go to {}",
                        show(from_domain),
                        show(rd)
                    ),
                );
            }
        }
    }

    fn links(&self, mail: &Mail<'_>, out: &mut Symbols<'_>) {
        let mut hosts = BTreeSet::new();
        for link in &mail.links {
            if let Some(h) = &link.host {
                hosts.insert(h.as_str());
            }
            let (Some(text), Some(host)) = (&link.text, &link.host) else {
                continue;
            };
            let Some(shown) = domains::domain_in_text(text) else {
                continue;
            };
            if domains::registrable(&shown) == domains::registrable(host)
                || domains::is_ip_host(&shown)
            {
                continue;
            }
            if self.matcher.is_genuine(&shown) {
                out.add(
                    LINK_TEXT_PROTECTED_MISMATCH,
                    format!(
                        "link text shows {} but goes to {}",
                        show(&shown),
                        show(host)
                    ),
                );
            } else {
                out.add(
                    LINK_TEXT_MISMATCH,
                    format!(
                        "link text shows {} but goes to {}",
                        show(&shown),
                        show(host)
                    ),
                );
            }
        }
        for host in hosts {
            if domains::is_ip_host(host) {
                out.add(
                    URI_BARE_IP,
                    format!("link to the IP address {}", show(host)),
                );
                continue;
            }
            if host.split('.').any(|l| l.starts_with("xn--")) {
                let unicode = domains::to_unicode(host);
                out.add(
                    URI_PUNYCODE,
                    format!("link to {} ({})", show(host), show(&unicode)),
                );
                if domains::is_mixed_script(&unicode) {
                    out.add(
                        URI_MIXED_SCRIPT,
                        format!("link host {} mixes scripts", show(&unicode)),
                    );
                }
            } else if !host.is_ascii() && domains::is_mixed_script(host) {
                out.add(
                    URI_MIXED_SCRIPT,
                    format!("link host {} mixes scripts", show(host)),
                );
            }
            if let Some((how, protected)) = self.matcher.imitation(host) {
                let name = match how {
                    Imitation::Confusable => URI_CONFUSABLE_PROTECTED,
                    Imitation::Lookalike => URI_LOOKALIKE_PROTECTED,
                    Imitation::Embeds => URI_EMBEDS_PROTECTED,
                };
                out.add(
                    name,
                    format!("link host {} {} {protected}", show(host), how.describe()),
                );
            }
        }
    }

    fn forms_and_wording(&self, mail: &Mail<'_>, out: &mut Symbols<'_>) {
        let forms: usize = mail.html.iter().map(|h| h.forms).sum();
        let passwords: usize = mail.html.iter().map(|h| h.password_inputs).sum();
        if passwords > 0 {
            out.add(HTML_PASSWORD_FORM, "the HTML asks for a password");
        } else if forms > 0 {
            out.add(HTML_FORM, "the HTML has a form");
        }
        let hits = self
            .phrases
            .hits(&[mail.subject.as_str(), mail.text.as_str()]);
        if !hits.is_empty() {
            let sum: f64 = hits.iter().map(|(_, w)| w).sum();
            let cap = crate::symbols::lookup(PHISH_WORDING).map_or(6.0, |d| d.weight);
            let quoted: Vec<String> = hits.iter().take(4).map(|(p, _)| format!("{p:?}")).collect();
            out.add_graded(
                PHISH_WORDING,
                sum / cap,
                format!("{} phrase(s): {}", hits.len(), quoted.join(", ")),
            );
        }
    }
}

impl Check for PhishingCheck {
    fn name(&self) -> &'static str {
        "phishing"
    }

    fn check(&self, mail: &Mail<'_>, out: &mut Symbols<'_>) {
        self.sender(mail, out);
        self.links(mail, out);
        self.forms_and_wording(mail, out);
    }
}

/// A domain shown in a display name: an address's domain, or a bare domain.
fn display_domain(display: &str) -> Option<String> {
    for word in display
        .split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | '(' | ')' | ','))
    {
        if let Some((_, d)) = word.rsplit_once('@') {
            let d = domains::normalise_host(d);
            if domains::plausible_domain(&d) {
                return Some(d);
            }
        } else if let Some(d) = domains::domain_in_text(word)
            && d.split('.').count() >= 2
            && !d.chars().next().is_some_and(char::is_numeric)
        {
            return Some(d);
        }
    }
    None
}

/// Lowercase words of letters and digits (a `.` inside a word is kept: `gov.uk`).
fn normalise_words(s: &str) -> Vec<String> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '.'))
        .map(|w| w.trim_matches('.'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// True when `needle` occurs as consecutive words of `hay`.
fn contains_words(hay: &[String], needle: &[String]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
        || (needle.len() == 1 && hay.iter().any(|h| h.split('.').any(|p| p == needle[0])))
}

/// A host for a reason: Unicode shown with its escapes so look-alikes are visible.
fn show(host: &str) -> String {
    let mut s = String::new();
    for c in host.chars().take(100) {
        if c.is_ascii_graphic() {
            s.push(c);
        } else {
            s.push_str(&c.escape_unicode().to_string());
        }
    }
    s
}

fn shorten(s: &str) -> String {
    let t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        format!("{t}…")
    } else {
        t
    }
}
