//! The headers the gateway adds to a message it accepts (`Received:`, `X-Caldicott-Verdict`,
//! `X-Caldicott-Symbols`, `X-Spam-Flag`), and the removal of those same fields when a sender
//! forged them: only this gateway may say what it decided.

use crate::verdict::{Report, Verdict};

/// Header fields only the gateway writes (lower case).
const OURS: [&str; 3] = ["x-caldicott-verdict", "x-caldicott-symbols", "x-spam-flag"];

/// Removes our own fields (with their continuation lines) from the header section.
pub fn strip_forged(raw: &[u8]) -> Vec<u8> {
    let end = header_end(raw);
    let mut out = Vec::with_capacity(raw.len());
    let mut skipping = false;
    let mut pos = 0;
    while pos < end {
        let line_end = raw[pos..end]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i + 1)
            .unwrap_or(end);
        let line = &raw[pos..line_end];
        let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !continuation {
            skipping = line
                .iter()
                .position(|&b| b == b':')
                .map(|c| &line[..c])
                .and_then(|n| std::str::from_utf8(n).ok())
                .is_some_and(|n| OURS.contains(&n.trim().to_ascii_lowercase().as_str()));
        }
        if !skipping {
            out.extend_from_slice(line);
        }
        pos = line_end;
    }
    out.extend_from_slice(&raw[end..]);
    out
}

/// Where the header section ends (just after the CRLF that ends the last field; before the
/// empty line), or the whole message when there is no body.
fn header_end(raw: &[u8]) -> usize {
    if raw.starts_with(b"\r\n") {
        return 0;
    }
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 2)
        .unwrap_or(raw.len())
}

/// What a `Received:` field records.
#[derive(Debug, Clone)]
pub struct Trace<'a> {
    pub helo: &'a str,
    pub client_ip: std::net::IpAddr,
    pub hostname: &'a str,
    pub tls: bool,
    pub authenticated: bool,
    pub id: &'a str,
    /// Named only when there is one recipient (several would tell each about the others).
    pub single_recipient: Option<&'a str>,
    pub date: time::OffsetDateTime,
}

/// Replaces characters that could end or fold a header line, or that RFC 5322 forbids there.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || c == '(' || c == ')' {
                '_'
            } else {
                c
            }
        })
        .take(255)
        .collect()
}

/// The fields to prepend, CRLF-terminated, in order.
pub fn added_fields(trace: &Trace<'_>, report: &Report) -> String {
    // RFC 3848 protocol names: ESMTP, with S for TLS and A for authenticated.
    let with = match (trace.tls, trace.authenticated) {
        (true, true) => "ESMTPSA",
        (true, false) => "ESMTPS",
        (false, true) => "ESMTPA",
        (false, false) => "ESMTP",
    };
    let date = trace
        .date
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let mut out = format!(
        "Received: from {} ([{}])\r\n\tby {} (Caldicott) with {} id {}",
        safe(trace.helo),
        trace.client_ip,
        trace.hostname,
        with,
        trace.id
    );
    if let Some(r) = trace.single_recipient {
        out.push_str(&format!("\r\n\tfor <{}>", safe(r)));
    }
    out.push_str(&format!("; {date}\r\n"));
    out.push_str(&format!(
        "X-Caldicott-Verdict: {} score={}\r\n",
        report.verdict, report.score
    ));
    // Symbol names and scores only: reasons may name things from the message.
    let mut line = String::from("X-Caldicott-Symbols:");
    let mut width = line.len();
    if report.symbols.is_empty() {
        line.push_str(" none");
    }
    for (i, s) in report.symbols.iter().enumerate() {
        let item = format!(
            " {}({}){}",
            s.name,
            s.score,
            if i + 1 < report.symbols.len() {
                ","
            } else {
                ""
            }
        );
        if width + item.len() > 76 {
            line.push_str("\r\n\t");
            width = 1;
        }
        width += item.len();
        line.push_str(&item);
    }
    out.push_str(&line);
    out.push_str("\r\n");
    if report.verdict >= Verdict::Tag {
        out.push_str("X-Spam-Flag: YES\r\n");
    }
    out
}

/// The message as relayed: our fields first, forged copies of them removed.
pub fn rewrite(raw: &[u8], trace: &Trace<'_>, report: &Report) -> Vec<u8> {
    let mut out = added_fields(trace, report).into_bytes();
    out.extend_from_slice(&strip_forged(raw));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_fields_go_and_the_rest_stays() {
        let raw = b"Subject: a\r\nX-Spam-Flag: NO\r\nx-caldicott-verdict: accept\r\n\tscore=0\r\nFrom: b@c\r\n\r\nX-Spam-Flag: body\r\n";
        assert_eq!(
            strip_forged(raw),
            b"Subject: a\r\nFrom: b@c\r\n\r\nX-Spam-Flag: body\r\n".to_vec()
        );
    }

    #[test]
    fn received_is_one_safe_field() {
        let report = Report {
            verdict: Verdict::Tag,
            score: 6.0,
            symbols: vec![],
        };
        let t = Trace {
            helo: "evil\r\nX-Injected: 1",
            client_ip: "127.0.0.1".parse().unwrap(),
            hostname: "mx.example",
            tls: true,
            authenticated: false,
            id: "abc",
            single_recipient: Some("a@b.example"),
            date: time::OffsetDateTime::UNIX_EPOCH,
        };
        let f = added_fields(&t, &report);
        assert!(!f.contains("\r\nX-Injected"));
        assert!(f.starts_with("Received: from evil__X-Injected: 1 ([127.0.0.1])"));
        assert!(f.contains("X-Spam-Flag: YES\r\n"));
        assert!(f.contains("with ESMTPS id abc\r\n\tfor <a@b.example>;"));
    }
}
