//! The engine: limits, parsing, the checks in order, and the verdict.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::MessageParser;

use crate::attach::AttachmentCheck;
use crate::bayes::{self, BayesCheck, BayesModel};
use crate::check::{Check, Envelope, Symbols, Weights, round3};
use crate::clamav::ClamavCheck;
use crate::config::{ConfigError, MailConfig};
use crate::mail::Mail;
use crate::phishing::PhishingCheck;
use crate::rules::RulesCheck;
use crate::symbols::*;
use crate::verdict::{Report, Verdict};

/// Screens messages. Build one per configuration and share it across threads: scanning takes
/// `&self` and allocates only per message.
pub struct Scanner {
    config: MailConfig,
    weights: Weights,
    parser: MessageParser,
    checks: Vec<Box<dyn Check>>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field(
                "checks",
                &self.checks.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Scanner {
    /// A scanner with the standard checks (attachments, phishing, rules, and the classifier
    /// when a model is given and enabled).
    pub fn new(config: MailConfig, model: Option<BayesModel>) -> Result<Self, ConfigError> {
        let checks = Self::standard_checks(&config, model);
        Self::with_checks(config, checks)
    }

    /// A scanner with exactly these checks.
    pub fn with_checks(
        config: MailConfig,
        checks: Vec<Box<dyn Check>>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            weights: Weights::new(&config),
            config,
            parser: MessageParser::new(),
            checks,
        })
    }

    /// The standard checks, in the order they run.
    pub fn standard_checks(config: &MailConfig, model: Option<BayesModel>) -> Vec<Box<dyn Check>> {
        let mut checks: Vec<Box<dyn Check>> = vec![
            Box::new(AttachmentCheck::new(config.limits)),
            Box::new(PhishingCheck::new(&config.phishing)),
            Box::new(RulesCheck::new()),
        ];
        if let Some(m) = model
            && config.bayes.enabled
        {
            checks.push(Box::new(BayesCheck::new(m, config.bayes.min_trained)));
        }
        // The virus scan, when configured (an invalid `[clamav]` is refused by validation).
        if let Some(c) = config
            .clamav
            .as_ref()
            .and_then(|c| ClamavCheck::new(c).ok())
        {
            checks.push(Box::new(c));
        }
        checks
    }

    /// Adds a check after the others (the network checks will arrive this way).
    pub fn push_check(&mut self, check: Box<dyn Check>) {
        self.checks.push(check);
    }

    pub fn config(&self) -> &MailConfig {
        &self.config
    }

    /// Screens one raw RFC 5322 message.
    pub fn scan(&self, raw: &[u8]) -> Report {
        self.scan_with(raw, None)
    }

    /// Screens one message with what the SMTP session knew about it.
    pub fn scan_with(&self, raw: &[u8], envelope: Option<&Envelope>) -> Report {
        let mut out = Symbols::new(&self.weights);
        let limits = &self.config.limits;
        if raw.len() > limits.max_message_bytes {
            out.add(
                MESSAGE_TOO_LARGE,
                format!("{} bytes (limit {})", raw.len(), limits.max_message_bytes),
            );
            return self.finish(out);
        }
        // Checks are written not to panic (and fuzzed for it); should one still do so, the
        // message is held for a person rather than passed unscreened or the gateway lost.
        let run = catch_unwind(AssertUnwindSafe(|| {
            self.run_checks(raw, envelope, &mut out)
        }));
        if let Err(p) = run {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            out.add(
                SCAN_INTERNAL_ERROR,
                format!(
                    "screening failed: {}",
                    what.chars().take(120).collect::<String>()
                ),
            );
        }
        self.finish(out)
    }

    fn run_checks(&self, raw: &[u8], envelope: Option<&Envelope>, out: &mut Symbols<'_>) {
        if raw.contains(&0) {
            out.add(MESSAGE_HAS_NUL, "the message contains NUL bytes");
        }
        let header_end = find_header_end(raw);
        let header = &raw[..header_end];
        if header.iter().any(|&b| b >= 0x80) && std::str::from_utf8(header).is_err() {
            out.add(
                HEADER_8BIT,
                "raw 8-bit bytes that are not UTF-8 in the header",
            );
        }
        // A header section needs at least one `name: value` field.
        let has_field = header.contains(&b':');
        let Some(message) = self
            .parser
            .parse(raw)
            .filter(|m| has_field && !m.parts.is_empty())
        else {
            out.add(MIME_UNPARSEABLE, "no RFC 5322 header found");
            return;
        };
        let valid_name =
            |n: &str| !n.is_empty() && n.bytes().all(|b| (33..=126).contains(&b) && b != b':');
        if !message.parts[0]
            .headers
            .iter()
            .any(|h| valid_name(h.name()))
        {
            out.add(MIME_UNPARSEABLE, "no RFC 5322 header found");
            return;
        }
        let mail = Mail::extract(raw, &message, envelope, &self.config.limits, out);
        for check in &self.checks {
            check.check(&mail, out);
        }
    }

    fn finish(&self, out: Symbols<'_>) -> Report {
        let symbols = out.finish();
        let score = round3(symbols.iter().map(|s| s.score).sum());
        let floor = symbols
            .iter()
            .map(|s| s.min_verdict)
            .max()
            .unwrap_or(Verdict::Accept);
        Report {
            verdict: self.config.thresholds.verdict(score).max(floor),
            score,
            symbols,
        }
    }

    /// Outbound data-loss check of a raw message: patient identifiers in the subject, the body
    /// text and text attachments (counts by kind, never the values; see [`crate::dlp`]).
    pub fn dlp(&self, raw: &[u8]) -> Vec<crate::dlp::Finding> {
        let raw = &raw[..raw.len().min(self.config.limits.max_message_bytes)];
        let Some(message) = self.parser.parse(raw).filter(|m| !m.parts.is_empty()) else {
            return crate::dlp::scan_text(&String::from_utf8_lossy(raw));
        };
        let mut scratch = Symbols::new(&self.weights);
        let mail = Mail::extract(raw, &message, None, &self.config.limits, &mut scratch);
        let mut text = format!("{}\n{}", mail.subject, mail.text);
        for a in &mail.attachments {
            if let Ok(t) = std::str::from_utf8(&a.data) {
                text.push('\n');
                text.push_str(crate::html::truncate(t, self.config.limits.max_text_bytes));
            }
        }
        crate::dlp::scan_text(&text)
    }

    /// The classifier features of a raw message, for training (`None` when it does not parse).
    pub fn features(&self, raw: &[u8]) -> Option<Vec<u32>> {
        let raw = &raw[..raw.len().min(self.config.limits.max_message_bytes)];
        let message = self.parser.parse(raw).filter(|m| !m.parts.is_empty())?;
        let mut scratch = Symbols::new(&self.weights);
        catch_unwind(AssertUnwindSafe(|| {
            let mail = Mail::extract(raw, &message, None, &self.config.limits, &mut scratch);
            bayes::features(&mail)
        }))
        .ok()
    }
}

/// Where the header section ends (the first empty line), or the whole input.
fn find_header_end(raw: &[u8]) -> usize {
    let limit = raw.len().min(1 << 20);
    let r = &raw[..limit];
    r.windows(2)
        .position(|w| w == b"\n\n")
        .or_else(|| r.windows(4).position(|w| w == b"\r\n\r\n"))
        .unwrap_or(limit)
}
