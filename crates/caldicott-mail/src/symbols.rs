//! Every symbol a check may emit, with its default weight and verdict floor.
//!
//! A symbol's score is `weight × factor`: most checks emit a factor of 1; graded ones (the
//! Bayes classifier, the phrase lists) emit a factor between 0 and 1 and the weight is then
//! their largest possible score. Weights and floors can be overridden per site in the
//! configuration (`[symbols.NAME] weight = …, min_verdict = "…"`); `docs/mail.md` lists the
//! same table.

use crate::verdict::Verdict;

/// What a symbol is about; used to group the documentation and the JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Limits and malformed input.
    Structure,
    /// Attachments, by content.
    Attachment,
    /// Impersonation, deceptive links and credential harvesting.
    Phishing,
    /// Header and body rules.
    Spam,
    /// The statistical classifier.
    Bayes,
    /// Sender authentication: SPF, DKIM, DMARC, ARC (needs `[dns]`; see `crate::auth`).
    Auth,
    /// Virus scanning by clamd (needs `[clamav]`; see `crate::clamav`).
    Virus,
}

/// A symbol's definition: its default weight and floor, and what it means.
#[derive(Debug, Clone, Copy)]
pub struct SymbolDef {
    pub name: &'static str,
    pub weight: f64,
    pub min_verdict: Verdict,
    pub group: Group,
    pub description: &'static str,
}

macro_rules! symbols {
    ($( $(#[doc = $doc:literal])+ $id:ident = ($weight:expr, $floor:ident, $group:ident); )+) => {
        $( $(#[doc = $doc])+ pub const $id: &str = stringify!($id); )+
        /// Every symbol, in documentation order.
        pub const SYMBOLS: &[SymbolDef] = &[
            $( SymbolDef {
                name: stringify!($id),
                weight: $weight,
                min_verdict: Verdict::$floor,
                group: Group::$group,
                description: concat!($($doc),+),
            }, )+
        ];
    };
}

symbols! {
    /// The message is larger than `limits.max_message_bytes`; it is not parsed.
    MESSAGE_TOO_LARGE = (0.0, Reject, Structure);
    /// No header could be parsed: not an RFC 5322 message.
    MIME_UNPARSEABLE = (5.0, Quarantine, Structure);
    /// More header fields than `limits.max_headers` (a header bomb).
    HEADER_COUNT_EXCEEDED = (5.0, Reject, Structure);
    /// More MIME parts than `limits.max_parts`; only the first ones are screened.
    MIME_TOO_MANY_PARTS = (5.0, Quarantine, Structure);
    /// MIME nesting deeper than `limits.max_depth`.
    MIME_TOO_DEEP = (5.0, Quarantine, Structure);
    /// A part's transfer encoding or charset could not be decoded cleanly.
    MIME_ENCODING_PROBLEM = (0.5, Accept, Structure);
    /// Raw 8-bit bytes that are not UTF-8 in the header section.
    HEADER_8BIT = (0.5, Accept, Structure);
    /// NUL bytes in the message.
    MESSAGE_HAS_NUL = (2.0, Accept, Structure);
    /// A check failed unexpectedly; the message is held rather than passed unscreened.
    SCAN_INTERNAL_ERROR = (0.0, Quarantine, Structure);

    /// An executable by content: PE/MZ, ELF, Mach-O, Java class, Windows shortcut (LNK).
    ATTACH_EXECUTABLE = (20.0, Reject, Attachment);
    /// A Windows script by content: WSH (VBScript/JScript), PowerShell, HTA, batch, CHM.
    ATTACH_SCRIPT = (15.0, Reject, Attachment);
    /// A Unix script (`#!` line).
    ATTACH_UNIX_SCRIPT = (8.0, Quarantine, Attachment);
    /// Office document with macros: OLE file with a VBA storage, or OOXML with `vbaProject.bin`.
    ATTACH_MACRO_OFFICE = (10.0, Quarantine, Attachment);
    /// A password-protected (encrypted) archive member: it cannot be scanned.
    ATTACH_ENCRYPTED_ARCHIVE = (8.0, Quarantine, Attachment);
    /// An archive this engine cannot open (RAR, 7z, CAB, ISO, ACE, ARJ, corrupt zip).
    ATTACH_ARCHIVE_UNSCANNABLE = (6.0, Quarantine, Attachment);
    /// An archive past the nesting, entry-count or decompressed-size limits (zip bombs).
    ATTACH_ARCHIVE_LIMIT = (6.0, Quarantine, Attachment);
    /// An HTML file that builds a download in the browser (HTML smuggling), or an HTML body
    /// carrying an executable or archive as a data: URI.
    ATTACH_HTML_SMUGGLING = (12.0, Quarantine, Attachment);
    /// A file name with a document extension followed by an executable one (`invoice.pdf.exe`).
    ATTACH_DOUBLE_EXTENSION = (10.0, Quarantine, Attachment);
    /// A file name with an extension Windows runs (`.exe`, `.js`, `.iso`, …), whatever the content.
    ATTACH_DANGEROUS_NAME = (6.0, Quarantine, Attachment);
    /// A file name with a right-to-left override or other bidirectional control.
    ATTACH_BIDI_NAME = (10.0, Quarantine, Attachment);
    /// An OLE compound file that could not be read.
    ATTACH_OLE_UNREADABLE = (3.0, Accept, Attachment);
    /// An RTF document with an embedded OLE object (an exploit carrier).
    ATTACH_RTF_OBJECT = (4.0, Accept, Attachment);
    /// A PDF with JavaScript or a launch action.
    ATTACH_PDF_ACTIVE = (3.0, Accept, Attachment);
    /// An HTML file attached (local phishing pages arrive this way).
    ATTACH_HTML = (1.5, Accept, Attachment);

    /// clamd found a virus signature (the reason names it). Refused: a signature match is
    /// known malware, and refusing it keeps live malware out of the quarantine.
    CLAMAV_VIRUS = (20.0, Reject, Virus);
    /// clamd's heuristics or PUA signatures fired (`Heuristics.*`, `PUA.*`): held for a person,
    /// as these misfire more often than signatures.
    CLAMAV_HEURISTIC = (10.0, Quarantine, Virus);
    /// The message is larger than `clamav.max_bytes` or clamd's `StreamMaxLength`: not scanned.
    CLAMAV_TOO_LARGE = (0.0, Quarantine, Virus);
    /// clamd could not scan (down, timed out, error) and `on_error = "tempfail"`: the gateway
    /// answers `451 4.7.1` so the sender retries; an offline scan holds the message.
    CLAMAV_TEMPFAIL = (0.0, Quarantine, Virus);
    /// clamd could not scan and `on_error = "quarantine"`: held for a person.
    CLAMAV_UNAVAILABLE = (0.0, Quarantine, Virus);
    /// clamd could not scan and `on_error = "accept"`: passed on without a virus scan.
    CLAMAV_UNSCANNED = (0.0, Accept, Virus);

    /// The From domain is a protected domain written with look-alike characters (UTS #39).
    FROM_CONFUSABLE_PROTECTED = (12.0, Quarantine, Phishing);
    /// The From domain is within a small edit distance of, or punctuated like, a protected domain.
    FROM_LOOKALIKE_PROTECTED = (8.0, Quarantine, Phishing);
    /// The From domain carries a protected domain inside another one (`nhs.net.example.com`).
    FROM_EMBEDS_PROTECTED = (6.0, Accept, Phishing);
    /// The Reply-To domain imitates a protected domain.
    REPLYTO_LOOKALIKE_PROTECTED = (6.0, Accept, Phishing);
    /// The From domain is protected but replies go to another domain.
    REPLYTO_DIFFERS_PROTECTED = (3.0, Accept, Phishing);
    /// The display name claims the NHS, government, the CQC or the organisation, but the
    /// address is not from their domains.
    DISPLAY_NAME_IMPERSONATION = (4.0, Accept, Phishing);
    /// The display name shows an address or domain other than the sender's.
    DISPLAY_NAME_ADDRESS_MISMATCH = (1.0, Accept, Phishing);
    /// A link host is a protected domain written with look-alike characters.
    URI_CONFUSABLE_PROTECTED = (8.0, Quarantine, Phishing);
    /// A link host imitates a protected domain by edit distance or punctuation.
    URI_LOOKALIKE_PROTECTED = (6.0, Accept, Phishing);
    /// A link host carries a protected domain inside another one.
    URI_EMBEDS_PROTECTED = (5.0, Accept, Phishing);
    /// A link host mixes scripts within a label (Latin with Cyrillic or Greek).
    URI_MIXED_SCRIPT = (5.0, Accept, Phishing);
    /// A link host is an internationalised (punycode) domain.
    URI_PUNYCODE = (1.0, Accept, Phishing);
    /// A link goes to a bare IP address (dotted, decimal, hex or IPv6).
    URI_BARE_IP = (3.0, Accept, Phishing);
    /// Link text shows one domain while the link goes to another.
    LINK_TEXT_MISMATCH = (1.0, Accept, Phishing);
    /// Link text shows a protected domain while the link goes elsewhere.
    LINK_TEXT_PROTECTED_MISMATCH = (7.0, Accept, Phishing);
    /// The HTML has a form.
    HTML_FORM = (0.5, Accept, Phishing);
    /// The HTML has a password field.
    HTML_PASSWORD_FORM = (6.0, Accept, Phishing);
    /// Urgency or credential-harvesting wording (weighted phrase list; the weight is the cap).
    PHISH_WORDING = (6.0, Accept, Phishing);

    /// No Date header.
    MISSING_DATE = (1.5, Accept, Spam);
    /// No Message-ID header.
    MISSING_MESSAGE_ID = (1.5, Accept, Spam);
    /// A Message-ID without `@`.
    INVALID_MESSAGE_ID = (1.0, Accept, Spam);
    /// No From header.
    MISSING_FROM = (2.0, Accept, Spam);
    /// X-Mailer claims Outlook Express (Windows) but the Message-ID is not in its form.
    FORGED_OUTLOOK = (2.5, Accept, Spam);
    /// The Message-ID is in Outlook's form but X-Mailer names another program.
    FORGED_OUTLOOK_MSGID = (2.0, Accept, Spam);
    /// The subject is in capitals.
    SUBJECT_ALL_CAPS = (1.5, Accept, Spam);
    /// Three or more exclamation marks in the subject.
    SUBJECT_EXCLAIM = (1.0, Accept, Spam);
    /// Many exclamation marks in the body text.
    BODY_EXCLAIM = (1.0, Accept, Spam);
    /// Known spam phrases (weighted list; the weight is the cap).
    SPAM_PHRASES = (4.0, Accept, Spam);
    /// HTML without a plain-text alternative.
    HTML_ONLY = (0.5, Accept, Spam);
    /// Text hidden from the reader in the HTML (display:none, zero-size or invisible font).
    HTML_HIDDEN_TEXT = (2.0, Accept, Spam);
    /// HTML with images and almost no text.
    HTML_IMAGE_ONLY = (1.5, Accept, Spam);
    /// The Date header is more than a day after the message was first received.
    DATE_IN_FUTURE = (2.0, Accept, Spam);
    /// The Date header has no time zone.
    DATE_NO_TIMEZONE = (1.0, Accept, Spam);
    /// X-Priority 1 (highest), which bulk mailers set and people rarely do.
    PRIORITY_HIGHEST = (1.0, Accept, Spam);
    /// An empty Cc header.
    CC_EMPTY = (1.0, Accept, Spam);
    /// The To header is empty or "undisclosed recipients".
    TO_UNDISCLOSED = (1.0, Accept, Spam);

    /// The site's classifier, when its score is positive (3.5 at spam probability 0.5, 5 at
    /// 0.97, 7.5 at 0.9999; a fraction of the weight; see `bayes::bayes_score`).
    BAYES_SPAM = (8.0, Accept, Bayes);
    /// The site's classifier, when its score is negative (probability below about 0.0012;
    /// down to −0.5 by default; a fraction of the weight).
    BAYES_HAM = (-3.0, Accept, Bayes);

    /// SPF (RFC 7208) authorises the client for the envelope sender's domain (or HELO).
    SPF_PASS = (-0.5, Accept, Auth);
    /// SPF says the client is not allowed to send for the domain (`-all`).
    SPF_FAIL = (3.0, Accept, Auth);
    /// SPF says the client is probably not allowed (`~all`).
    SPF_SOFTFAIL = (1.5, Accept, Auth);
    /// SPF makes no assertion about the client (`?all`).
    SPF_NEUTRAL = (0.5, Accept, Auth);
    /// The domain publishes no SPF record.
    SPF_NONE = (0.5, Accept, Auth);
    /// The domain's SPF record is broken (syntax, more than 10 lookups, several records).
    SPF_PERMERROR = (1.0, Accept, Auth);
    /// SPF could not be evaluated: DNS timed out or failed.
    SPF_TEMPERROR = (0.0, Accept, Auth);
    /// A DKIM signature (RFC 6376) verified.
    DKIM_VALID = (-1.0, Accept, Auth);
    /// A DKIM signature did not verify (body or headers changed, wrong key, expired, malformed).
    DKIM_INVALID = (2.0, Accept, Auth);
    /// The message carries no DKIM signature.
    DKIM_NONE = (0.5, Accept, Auth);
    /// A DKIM key could not be fetched: DNS timed out or failed.
    DKIM_TEMPERROR = (0.0, Accept, Auth);
    /// DMARC (RFC 7489): SPF or DKIM passed aligned with the From domain.
    DMARC_PASS = (-1.0, Accept, Auth);
    /// DMARC failed and the From domain asks receivers to reject (`p=reject`).
    DMARC_POLICY_REJECT = (5.0, Reject, Auth);
    /// DMARC failed and the From domain asks receivers to quarantine (`p=quarantine`).
    DMARC_POLICY_QUARANTINE = (3.0, Quarantine, Auth);
    /// DMARC failed; the From domain only monitors (`p=none`).
    DMARC_POLICY_NONE = (1.0, Accept, Auth);
    /// DMARC failed but a trusted ARC sealer vouches the message passed before it was forwarded (policy not applied).
    DMARC_ARC_OVERRIDE = (1.0, Accept, Auth);
    /// The From domain publishes no DMARC record.
    DMARC_NONE = (0.0, Accept, Auth);
    /// DMARC could not be evaluated: DNS timed out or failed.
    DMARC_TEMPERROR = (0.0, Accept, Auth);
    /// An ARC chain (RFC 8617) verified.
    ARC_PASS = (0.0, Accept, Auth);
    /// An ARC chain verified and its last sealer is in `auth.trusted_arc_sealers`.
    ARC_TRUSTED = (-1.0, Accept, Auth);
    /// An ARC chain is present but broken.
    ARC_FAIL = (1.0, Accept, Auth);
}

/// The definition of a symbol by name.
pub fn lookup(name: &str) -> Option<&'static SymbolDef> {
    SYMBOLS.iter().find(|d| d.name == name)
}
