//! The view of a parsed message that checks read: addresses, subject, decoded text, HTML
//! facts, links and attachments, extracted once under the configured limits.

use std::borrow::Cow;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Address, Encoding, HeaderValue, Message, MimeHeaders, PartType};

use crate::check::{Envelope, Symbols};
use crate::config::Limits;
use crate::domains;
use crate::html::{self, HtmlInfo};
use crate::symbols::{
    HEADER_COUNT_EXCEEDED, MIME_ENCODING_PROBLEM, MIME_TOO_DEEP, MIME_TOO_MANY_PARTS,
};

/// A sender or recipient: display name and address, with the address's domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: Option<String>,
    /// Lowercase domain of the address.
    pub domain: Option<String>,
}

/// A link found in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// As written (trimmed).
    pub href: String,
    /// Lowercase host for `http`, `https`, `ftp` and `www.` links.
    pub host: Option<String>,
    /// The text shown for an HTML link.
    pub text: Option<String>,
}

/// A part that is not a body: a file, whatever its declared type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment<'a> {
    /// The file name as declared (Content-Disposition or Content-Type `name`).
    pub name: Option<String>,
    /// The declared `type/subtype`, lowercase.
    pub content_type: Option<String>,
    /// The decoded content: for parts declared as text, the bytes before any charset
    /// conversion (a binary declared `text/plain` keeps its magic numbers).
    pub data: Cow<'a, [u8]>,
}

/// Everything the checks look at, extracted from one parsed message.
#[derive(Debug)]
pub struct Mail<'a> {
    /// The raw message.
    pub raw: &'a [u8],
    /// The parsed message, for checks that need headers not extracted here.
    pub message: &'a Message<'a>,
    /// What the SMTP session knew, when there was one.
    pub envelope: Option<&'a Envelope>,
    pub from: Option<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub subject: String,
    /// Decoded text of the body parts (plain text, and the visible text of HTML parts), of
    /// this message and of attached messages, at most `limits.max_text_bytes`.
    pub text: String,
    /// True when some body part is `text/plain`.
    pub has_plain_text: bool,
    /// The HTML body parts.
    pub html: Vec<HtmlInfo>,
    /// Links from HTML and plain-text bodies, at most `limits.max_links`.
    pub links: Vec<Link>,
    pub attachments: Vec<Attachment<'a>>,
    /// The HTML body parts as written.
    pub html_raw: Vec<&'a str>,
}

impl<'a> Mail<'a> {
    /// Extracts the view, adding structure symbols (limits exceeded, encoding problems).
    pub(crate) fn extract(
        raw: &'a [u8],
        message: &'a Message<'a>,
        envelope: Option<&'a Envelope>,
        limits: &Limits,
        out: &mut Symbols<'_>,
    ) -> Mail<'a> {
        let mut mail = Mail {
            raw,
            message,
            envelope,
            from: message.from().and_then(first_mailbox),
            reply_to: message
                .reply_to()
                .map(|a| a.iter().map(mailbox).collect())
                .unwrap_or_default(),
            subject: message.subject().unwrap_or_default().to_string(),
            text: String::new(),
            has_plain_text: false,
            html: Vec::new(),
            links: Vec::new(),
            attachments: Vec::new(),
            html_raw: Vec::new(),
        };
        if message.headers().len() > limits.max_headers {
            out.add(
                HEADER_COUNT_EXCEEDED,
                format!(
                    "{} header fields (limit {})",
                    message.headers().len(),
                    limits.max_headers
                ),
            );
        }
        let mut parts_seen = 0usize;
        // Messages to walk: the top one, then attached ones, with their depth.
        let mut stack: Vec<(&'a Message<'a>, usize)> = vec![(message, 0)];
        'messages: while let Some((msg, base_depth)) = stack.pop() {
            let mut depth = vec![base_depth; msg.parts.len()];
            for (i, part) in msg.parts.iter().enumerate() {
                parts_seen += 1;
                if parts_seen > limits.max_parts {
                    out.add(
                        MIME_TOO_MANY_PARTS,
                        format!("more than {} MIME parts", limits.max_parts),
                    );
                    break 'messages;
                }
                let d = depth[i];
                if d > limits.max_depth {
                    out.add(
                        MIME_TOO_DEEP,
                        format!("MIME nesting deeper than {}", limits.max_depth),
                    );
                    continue;
                }
                if i > 0 && part.headers.len() > limits.max_headers {
                    out.add(
                        HEADER_COUNT_EXCEEDED,
                        format!("a MIME part has {} header fields", part.headers.len()),
                    );
                }
                if part.is_encoding_problem {
                    out.add(MIME_ENCODING_PROBLEM, "a part could not be decoded cleanly");
                }
                let id = u32::try_from(i).unwrap_or(u32::MAX);
                let is_body = (msg.text_body.contains(&id) || msg.html_body.contains(&id))
                    && !msg.attachments.contains(&id);
                match &part.body {
                    PartType::Multipart(children) => {
                        for &c in children {
                            if let Some(slot) = depth.get_mut(c as usize)
                                && (c as usize) > i
                            {
                                *slot = d + 1;
                            }
                        }
                    }
                    PartType::Message(inner) => stack.push((inner, d + 1)),
                    PartType::Text(t) if is_body => {
                        mail.has_plain_text |=
                            part.is_content_type("text", "plain") || part.content_type().is_none();
                        mail.add_text(t, limits);
                        mail.add_text_links(t, limits);
                    }
                    PartType::Html(h) if is_body => {
                        let info = html::scan(h, limits.max_text_bytes * 4, limits.max_links);
                        mail.add_text(&info.text, limits);
                        for l in &info.links {
                            if mail.links.len() < limits.max_links {
                                mail.links.push(Link {
                                    host: domains::url_host(&l.href),
                                    href: l.href.clone(),
                                    text: Some(l.text.clone()),
                                });
                            }
                        }
                        mail.html.push(info);
                        mail.html_raw.push(h.as_ref());
                    }
                    PartType::Html(t) | PartType::Text(t) => {
                        let data = raw_body(msg, part).unwrap_or(Cow::Borrowed(t.as_bytes()));
                        mail.attachments.push(attachment(part, data));
                    }
                    PartType::Binary(b) | PartType::InlineBinary(b) => {
                        mail.attachments
                            .push(attachment(part, Cow::Borrowed(b.as_ref())));
                    }
                }
            }
        }
        mail
    }

    fn add_text(&mut self, t: &str, limits: &Limits) {
        let room = limits.max_text_bytes.saturating_sub(self.text.len());
        if room == 0 {
            return;
        }
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(html::truncate(t, room));
    }

    fn add_text_links(&mut self, t: &str, limits: &Limits) {
        let t = html::truncate(t, limits.max_text_bytes);
        for word in t.split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '(' | ')'))
        {
            if self.links.len() >= limits.max_links {
                return;
            }
            let lw = word
                .get(..8)
                .map(str::to_ascii_lowercase)
                .unwrap_or_default();
            if lw.starts_with("http://") || lw.starts_with("https://") || lw.starts_with("www.") {
                let href = word.trim_end_matches(['.', ',', ';', ':', '!', '?', '\'']);
                self.links.push(Link {
                    host: domains::url_host(href),
                    href: href.to_string(),
                    text: None,
                });
            }
        }
    }

    /// A header's raw value (unfolded as in the message), trimmed.
    pub fn header_raw(&self, name: &str) -> Option<&'a str> {
        let h = self
            .message
            .headers()
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))?;
        let bytes = self
            .raw
            .get(h.offset_start as usize..h.offset_end as usize)?;
        std::str::from_utf8(bytes).ok().map(str::trim)
    }
}

/// A part's body with only its transfer encoding undone.
fn raw_body<'a>(
    msg: &'a Message<'a>,
    part: &mail_parser::MessagePart<'_>,
) -> Option<Cow<'a, [u8]>> {
    let raw: &'a [u8] = msg.raw_message.as_ref();
    let body = raw.get(part.offset_body as usize..part.offset_end as usize)?;
    match part.encoding {
        Encoding::None => Some(Cow::Borrowed(body)),
        Encoding::Base64 => base64_decode(body).map(Cow::Owned),
        Encoding::QuotedPrintable => quoted_printable_decode(body).map(Cow::Owned),
    }
}

fn attachment<'a>(part: &mail_parser::MessagePart<'_>, data: Cow<'a, [u8]>) -> Attachment<'a> {
    Attachment {
        name: part.attachment_name().map(str::to_string),
        content_type: part.content_type().map(|ct| {
            let mut s = ct.ctype().to_ascii_lowercase();
            if let Some(sub) = ct.subtype() {
                s.push('/');
                s.push_str(&sub.to_ascii_lowercase());
            }
            s
        }),
        data,
    }
}

fn first_mailbox(a: &Address<'_>) -> Option<Mailbox> {
    a.first().map(mailbox)
}

fn mailbox(a: &mail_parser::Addr<'_>) -> Mailbox {
    let address = a.address.as_ref().map(|s| s.trim().to_string());
    let domain = address.as_deref().and_then(|s| {
        s.rsplit_once('@')
            .map(|(_, d)| domains::normalise_host(d))
            .filter(|d| !d.is_empty())
    });
    Mailbox {
        name: a
            .name
            .as_ref()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        address,
        domain,
    }
}

/// The first header of that name as text, when it parsed as text.
pub(crate) fn header_text<'m>(message: &'m Message<'_>, name: &str) -> Option<&'m str> {
    let h = message
        .headers()
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))?;
    match h.value() {
        HeaderValue::Text(t) => Some(t.as_ref()),
        HeaderValue::TextList(l) => l.first().map(AsRef::as_ref),
        _ => None,
    }
}
