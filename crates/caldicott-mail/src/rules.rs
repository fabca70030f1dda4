//! Header and body rules: a modest set in the spirit of SpamAssassin's, each a named symbol.

use mail_parser::HeaderValue;

use crate::check::{Check, Symbols};
use crate::mail::{Mail, header_text};
use crate::phrases::PhraseList;
use crate::symbols::*;

/// Spam phrases with their weights; the symbol's weight caps the sum.
pub const SPAM_PHRASE_LIST: &[(&str, f64)] = &[
    ("100% free", 1.5),
    ("100% satisfied", 1.5),
    ("act now", 1.0),
    ("limited time offer", 1.0),
    ("risk free", 1.0),
    ("risk-free", 1.0),
    ("no obligation", 1.0),
    ("work from home", 1.5),
    ("make money", 1.5),
    ("extra income", 1.5),
    ("million dollars", 1.5),
    ("dear friend", 1.5),
    ("this is not spam", 2.0),
    ("this is not a spam", 2.0),
    ("remove from our list", 1.5),
    ("removed from our mailing list", 1.0),
    ("to be removed from", 1.0),
    ("you have been selected", 1.5),
    ("order now", 1.0),
    ("lowest price", 1.0),
    ("bulk email", 1.5),
    ("satisfaction guaranteed", 1.5),
    ("as seen on", 1.0),
    ("cash bonus", 1.5),
    ("no credit check", 2.0),
    ("mortgage rates", 1.0),
    ("viagra", 2.0),
    ("cialis", 2.0),
    ("weight loss", 1.0),
    ("lose weight", 1.0),
    ("online casino", 1.5),
    ("financial freedom", 1.5),
    ("be your own boss", 1.5),
    ("while supplies last", 1.0),
    ("multi-level marketing", 1.5),
    ("pre-approved", 1.5),
    ("earn $", 1.5),
    ("$$$", 1.5),
    ("increase sales", 1.0),
    ("targeted email", 1.5),
    ("email addresses for", 1.5),
    ("million email addresses", 2.0),
    ("debt consolidation", 1.5),
    ("eliminate debt", 1.5),
    ("home based business", 1.5),
    ("online pharmacy", 2.0),
    ("no prescription", 1.5),
    ("next of kin", 1.0),
    ("transfer the sum", 2.0),
    ("confidential business", 1.5),
    ("click below", 0.5),
    ("click here", 0.5),
    ("free gift", 1.0),
    ("special promotion", 1.0),
    ("amazing offer", 1.0),
];

/// The header and body rules.
pub struct RulesCheck {
    phrases: PhraseList,
}

impl Default for RulesCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl RulesCheck {
    pub fn new() -> Self {
        let phrases = PhraseList::new(SPAM_PHRASE_LIST);
        Self { phrases }
    }
}

impl Check for RulesCheck {
    fn name(&self) -> &'static str {
        "rules"
    }

    fn check(&self, mail: &Mail<'_>, out: &mut Symbols<'_>) {
        let m = mail.message;
        if m.date().is_none() {
            out.add(MISSING_DATE, "no Date header");
        }
        match m.message_id() {
            None => out.add(MISSING_MESSAGE_ID, "no Message-ID header"),
            Some(id) if !id.contains('@') => {
                out.add(INVALID_MESSAGE_ID, "the Message-ID has no @");
            }
            Some(_) => {}
        }
        if mail
            .from
            .as_ref()
            .and_then(|f| f.address.as_ref())
            .is_none()
        {
            out.add(MISSING_FROM, "no From address");
        }
        if let Some(mailer) = header_text(m, "X-Mailer").or_else(|| mail.header_raw("X-Mailer")) {
            let mailer_l = mailer.to_ascii_lowercase();
            let id = m.message_id().unwrap_or_default();
            if mailer_l.contains("microsoft outlook express")
                && !mailer_l.contains("macintosh")
                && !outlook_message_id(id)
                && !hotmail_message_id(id)
            {
                out.add(
                    FORGED_OUTLOOK,
                    "X-Mailer claims Outlook but the Message-ID is not in Outlook's form",
                );
            } else if outlook_message_id(id)
                && !["outlook", "microsoft", "mimeole", "exchange"]
                    .iter()
                    .any(|k| mailer_l.contains(k))
            {
                out.add(
                    FORGED_OUTLOOK_MSGID,
                    "the Message-ID is in Outlook's form but X-Mailer names another program",
                );
            }
        }
        subject_rules(&mail.subject, out);
        self.body_rules(mail, out);
        date_rules(mail, out);
        header_rules(mail, out);
    }
}

impl RulesCheck {
    fn body_rules(&self, mail: &Mail<'_>, out: &mut Symbols<'_>) {
        let text = &mail.text;
        let exclaims = text.bytes().filter(|&b| b == b'!').count();
        let words = text.split_whitespace().count().max(1);
        let triples = text.matches("!!!").count();
        if (exclaims >= 10 && exclaims * 20 >= words) || triples >= 3 {
            out.add(
                BODY_EXCLAIM,
                format!("{exclaims} exclamation marks in {words} words"),
            );
        }
        let hits = self.phrases.hits(&[mail.subject.as_str(), text.as_str()]);
        if !hits.is_empty() {
            let sum: f64 = hits.iter().map(|(_, w)| w).sum();
            let cap = lookup(SPAM_PHRASES).map_or(4.0, |d| d.weight);
            let quoted: Vec<String> = hits.iter().take(4).map(|(p, _)| format!("{p:?}")).collect();
            out.add_graded(
                SPAM_PHRASES,
                sum / cap,
                format!("{} phrase(s): {}", hits.len(), quoted.join(", ")),
            );
        }
        if !mail.html.is_empty() {
            if !mail.has_plain_text {
                out.add(HTML_ONLY, "HTML without a plain-text part");
            }
            let hidden: usize = mail.html.iter().map(|h| h.hidden_chars).sum();
            if hidden >= 20 {
                out.add(
                    HTML_HIDDEN_TEXT,
                    format!("{hidden} characters of hidden text"),
                );
            }
            let images: usize = mail.html.iter().map(|h| h.images).sum();
            let visible: usize = mail
                .html
                .iter()
                .map(|h| h.text.chars().filter(|c| c.is_alphanumeric()).count())
                .sum();
            if images > 0 && visible < 100 && !mail.has_plain_text {
                out.add(
                    HTML_IMAGE_ONLY,
                    format!("{images} image(s) and {visible} letters of text"),
                );
            }
        }
    }
}

fn subject_rules(subject: &str, out: &mut Symbols<'_>) {
    let letters: Vec<char> = subject.chars().filter(|c| c.is_alphabetic()).collect();
    let words = subject
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphabetic))
        .count();
    if letters.len() >= 8
        && words >= 2
        && letters.iter().all(|c| !c.is_lowercase())
        && letters.iter().any(|c| c.is_uppercase())
    {
        out.add(SUBJECT_ALL_CAPS, "the subject is in capitals");
    }
    if subject.matches('!').count() >= 3 {
        out.add(
            SUBJECT_EXCLAIM,
            "three or more exclamation marks in the subject",
        );
    }
}

/// Outlook and Outlook Express write Message-IDs as `<hex12$hex8$hex8@host>`; Exchange Online
/// writes `<…@…outlook.com>`.
fn outlook_message_id(id: &str) -> bool {
    let id = id.trim_matches(['<', '>']);
    let Some((local, host)) = id.split_once('@') else {
        return false;
    };
    if host.to_ascii_lowercase().contains("outlook.com")
        || host.to_ascii_lowercase().contains("exchangelabs.com")
    {
        return true;
    }
    let parts: Vec<&str> = local.split('$').collect();
    parts.len() == 3
        && [12, 8, 8]
            .iter()
            .zip(&parts)
            .all(|(&n, p)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Outlook Express through Hotmail: `<OE…@hotmail.com>` or `@msn.com`.
fn hotmail_message_id(id: &str) -> bool {
    let id = id.trim_matches(['<', '>']).to_ascii_lowercase();
    id.starts_with("oe") && (id.ends_with("@hotmail.com") || id.ends_with("@msn.com"))
}

fn date_rules(mail: &Mail<'_>, out: &mut Symbols<'_>) {
    let Some(date) = mail.message.date() else {
        return;
    };
    let received = mail
        .message
        .header_values("Received")
        .find_map(|v| match v {
            HeaderValue::Received(r) => r.date(),
            _ => None,
        });
    let Some(received) = received else { return };
    let (d, r) = (date.to_timestamp(), received.to_timestamp());
    if d > r + 24 * 3600 {
        out.add(
            DATE_IN_FUTURE,
            format!(
                "Date is {} hours after the message was received",
                (d - r) / 3600
            ),
        );
    }
}

/// Header habits of bulk mailers that SpamAssassin also scores. Each was kept because it fired
/// on at most one ham message in the train part and on about 3–7% of its spam (see
/// `docs/mail.md`).
fn header_rules(mail: &Mail<'_>, out: &mut Symbols<'_>) {
    if let Some(date) = mail.header_raw("Date")
        && !date_has_zone(date)
    {
        out.add(DATE_NO_TIMEZONE, "the Date header has no time zone");
    }
    if let Some(p) = mail.header_raw("X-Priority")
        && p.trim_start().starts_with('1')
    {
        out.add(PRIORITY_HIGHEST, "X-Priority 1");
    }
    if mail.header_raw("Cc").is_some_and(str::is_empty) {
        out.add(CC_EMPTY, "an empty Cc header");
    }
    if let Some(to) = mail.header_raw("To")
        && (to.is_empty() || to.to_ascii_lowercase().contains("undisclosed"))
    {
        out.add(TO_UNDISCLOSED, "the To header names no recipient");
    }
}

/// True when a Date value ends in a numeric offset (`+0100`) or a zone name RFC 822 allowed.
fn date_has_zone(date: &str) -> bool {
    let numeric = date
        .as_bytes()
        .windows(5)
        .any(|w| matches!(w[0], b'+' | b'-') && w[1..].iter().all(u8::is_ascii_digit));
    numeric
        || date.split(|c: char| !c.is_ascii_alphabetic()).any(|w| {
            matches!(
                w.to_ascii_uppercase().as_str(),
                "GMT"
                    | "UT"
                    | "UTC"
                    | "EST"
                    | "EDT"
                    | "CST"
                    | "CDT"
                    | "MST"
                    | "MDT"
                    | "PST"
                    | "PDT"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(raw: &str) -> crate::verdict::Report {
        crate::scanner::Scanner::new(crate::config::MailConfig::default(), None)
            .unwrap()
            .scan(raw.as_bytes())
    }

    #[test]
    fn bulk_mailer_header_habits() {
        const HABITS: [&str; 4] = [DATE_NO_TIMEZONE, PRIORITY_HIGHEST, CC_EMPTY, TO_UNDISCLOSED];
        let bulk = scan(
            "From: Deals <deals@example.com>\r\nTo: Undisclosed Recipients <>\r\nCc: \r\n\
             X-Priority: 1 (Highest)\r\nDate: Wed, 28 Aug 2002 09:17:55\r\n\
             Message-ID: <1@example.com>\r\nSubject: Offer\r\n\r\nHello\r\n",
        );
        for h in HABITS {
            assert!(bulk.has(h), "{h} missing: {bulk:#?}");
        }
        let person = scan(
            "From: Jo <jo@example.com>\r\nTo: Sam <sam@example.org>\r\nCc: Al <al@example.org>\r\n\
             X-Priority: 3\r\nDate: Wed, 28 Aug 2002 09:17:55 +0100\r\n\
             Message-ID: <2@example.com>\r\nSubject: Rota\r\n\r\nHello\r\n",
        );
        for h in HABITS {
            assert!(!person.has(h), "{h} fired: {person:#?}");
        }
    }

    #[test]
    fn date_zones() {
        assert!(date_has_zone("Tue, 10 Sep 2002 13:53:58 -0500"));
        assert!(date_has_zone("Thu, 22 Aug 2002 18:26:25 GMT"));
        assert!(date_has_zone("Mon, 2 Sep 2002 10:00:00 +0100 (IST)"));
        assert!(!date_has_zone("Wed, 28 Aug 2002 09:17:55"));
        assert!(!date_has_zone("Aug 28 2002 9:16:46 AM"));
        assert!(!date_has_zone(""));
    }

    #[test]
    fn outlook_ids() {
        assert!(outlook_message_id(
            "<000801c2d0f5$8f5b8a60$6401a8c0@example>"
        ));
        assert!(outlook_message_id(
            "DB9PR01MB1234.eurprd01.prod.outlook.com@DB9PR01MB1234.eurprd01.prod.outlook.com"
        ));
        assert!(!outlook_message_id("<20020823.1234.spam@example.com>"));
        assert!(!outlook_message_id(""));
    }
}
