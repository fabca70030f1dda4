//! Delivery status notifications (RFC 3464): the `multipart/report` bounce sent back to the
//! envelope sender when the next hop refuses a recipient for good or a message outlives the
//! queue's maximum age.
//!
//! Built by hand (a few fixed parts). The bounce returns the original **headers only**
//! (`text/rfc822-headers`), never the body: a message to or from a care organisation may
//! carry patient data, and a bounce can go to an address the sender mistyped or forged.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// One recipient that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub recipient: String,
    /// The reply or reason, e.g. `550 5.1.1 no such user` or `4.4.7 … expired`.
    pub diagnostic: String,
}

/// The enhanced status code in a reply (`5.1.1`), or a default by class.
pub fn status_of(diagnostic: &str) -> String {
    let words = diagnostic.split_whitespace().take(2);
    for w in words {
        let parts: Vec<&str> = w.split('.').collect();
        if parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return w.to_owned();
        }
    }
    if diagnostic.starts_with('4') {
        "4.0.0".into()
    } else {
        "5.0.0".into()
    }
}

/// Removes CR, LF and other controls from text put into a header or report field.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(900)
        .collect()
}

/// The header section of a raw message (up to the first empty line).
fn header_section(raw: &[u8]) -> &[u8] {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 2)
        .unwrap_or(raw.len().min(64 << 10));
    &raw[..end.min(64 << 10)]
}

/// Builds the bounce: `From: MAILER-DAEMON@hostname`, to `sender`, reporting `failed`, with
/// the original header section. `id` makes the boundary and Message-ID unique.
pub fn build(
    hostname: &str,
    id: &str,
    sender: &str,
    received_at: OffsetDateTime,
    failed: &[Failed],
    original: &[u8],
    now: OffsetDateTime,
) -> Vec<u8> {
    let date = now.format(&Rfc2822).unwrap_or_default();
    let arrival = received_at.format(&Rfc2822).unwrap_or_default();
    let boundary = format!("=_caldicott_dsn_{id}");
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
    ));
    m.push_str(&format!("To: <{}>\r\n", clean(sender)));
    m.push_str("Subject: Undelivered Mail Returned to Sender\r\n");
    m.push_str(&format!("Date: {date}\r\n"));
    m.push_str(&format!("Message-ID: <dsn.{id}@{hostname}>\r\n"));
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"
    ));
    m.push_str("\r\nThis is a MIME-encapsulated delivery status notification.\r\n");
    // 1: for people.
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n"
    ));
    m.push_str(&format!(
        "This is the mail gateway at {hostname}.\r\n\r\n\
         Your message could not be delivered to the following recipient(s):\r\n\r\n"
    ));
    for f in failed {
        m.push_str(&format!(
            "  <{}>: {}\r\n",
            clean(&f.recipient),
            clean(&f.diagnostic)
        ));
    }
    m.push_str(
        "\r\nThe message's headers are attached; its body is not returned, as it may hold\r\n\
         confidential information.\r\n",
    );
    // 2: for programs.
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
    ));
    m.push_str(&format!("Reporting-MTA: dns; {hostname}\r\n"));
    m.push_str(&format!("X-Caldicott-Queue-ID: {id}\r\n"));
    m.push_str(&format!("Arrival-Date: {arrival}\r\n"));
    for f in failed {
        m.push_str("\r\n");
        m.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            clean(&f.recipient)
        ));
        m.push_str("Action: failed\r\n");
        m.push_str(&format!("Status: {}\r\n", status_of(&f.diagnostic)));
        let diag = clean(&f.diagnostic);
        if diag
            .split_whitespace()
            .next()
            .is_some_and(|w| w.len() == 3 && w.bytes().all(|b| b.is_ascii_digit()))
        {
            m.push_str(&format!("Diagnostic-Code: smtp; {diag}\r\n"));
        } else {
            m.push_str(&format!("Diagnostic-Code: X-Caldicott; {diag}\r\n"));
        }
        m.push_str(&format!("Last-Attempt-Date: {date}\r\n"));
    }
    // 3: the original headers.
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ));
    let mut out = m.into_bytes();
    let headers = header_section(original);
    out.extend_from_slice(headers);
    if !headers.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(status_of("550 5.1.1 no such user"), "5.1.1");
        assert_eq!(status_of("552 too big"), "5.0.0");
        assert_eq!(status_of("4.4.7 expired"), "4.4.7");
    }

    #[test]
    fn report_has_the_parts_and_no_body() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let raw = b"Subject: Results\r\nFrom: a@b.example\r\n\r\nNHS 943 476 5919\r\n";
        let dsn = build(
            "mx.example",
            "abc",
            "a@b.example",
            now,
            &[Failed {
                recipient: "x@y.example".into(),
                diagnostic: "550 5.1.1 no\r\nInjected: yes".into(),
            }],
            raw,
            now,
        );
        let text = String::from_utf8(dsn).unwrap();
        assert!(text.contains("report-type=delivery-status"));
        assert!(
            text.contains(
                "Final-Recipient: rfc822; x@y.example\r\nAction: failed\r\nStatus: 5.1.1"
            )
        );
        assert!(text.contains("Subject: Results"));
        assert!(!text.contains("943 476"));
        assert!(!text.contains("\r\nInjected"));
        let parsed = mail_parser::MessageParser::new()
            .parse(text.as_bytes())
            .unwrap();
        assert_eq!(parsed.parts.len(), 4);
    }
}
