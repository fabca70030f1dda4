//! The `Check` trait every screening check implements, and the symbol collector it writes to.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::MailConfig;
use crate::mail::Mail;
use crate::symbols::{self, SYMBOLS};
use crate::verdict::{Symbol, Verdict};

/// One screening check. Checks are pure: they read the extracted [`Mail`] (and, once the SMTP
/// gateway exists, its [`Envelope`]) and add symbols; they do no I/O.
///
/// Network checks (SPF, DKIM, DMARC, ARC, DNS block lists) will fit the same trait: the
/// gateway resolves what they need asynchronously before screening and hands the results in
/// through the envelope, so a scan itself never waits on the network.
pub trait Check: Send + Sync {
    /// A short name for logs and errors.
    fn name(&self) -> &'static str;
    /// Looks at the message and adds symbols.
    fn check(&self, mail: &Mail<'_>, out: &mut Symbols<'_>);
}

/// What the SMTP session knew about a message (absent for offline scans).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The connecting client's address.
    pub client_ip: Option<IpAddr>,
    /// The HELO/EHLO name.
    pub helo: Option<String>,
    /// The `MAIL FROM` address (empty for bounces).
    pub mail_from: Option<String>,
    /// The `RCPT TO` addresses.
    pub rcpt_to: Vec<String>,
    /// True when the client authenticated (the submission port).
    pub authenticated: bool,
}

/// Default weights and floors with a site's overrides applied, by symbol name.
#[derive(Debug, Clone)]
pub(crate) struct Weights {
    by_name: HashMap<&'static str, (f64, Verdict)>,
}

impl Weights {
    pub(crate) fn new(config: &MailConfig) -> Self {
        let by_name = SYMBOLS
            .iter()
            .map(|d| {
                let o = config.symbols.get(d.name).copied().unwrap_or_default();
                (
                    d.name,
                    (
                        o.weight.unwrap_or(d.weight),
                        o.min_verdict.unwrap_or(d.min_verdict),
                    ),
                )
            })
            .collect();
        Self { by_name }
    }

    fn get(&self, name: &str) -> (f64, Verdict) {
        // Every name checks emit is a constant of `symbols`; tests assert they are all in the
        // table. An unknown one scores nothing rather than failing the scan.
        self.by_name
            .get(name)
            .copied()
            .unwrap_or((0.0, Verdict::Accept))
    }
}

/// Most reasons kept per symbol; further occurrences are counted.
const MAX_REASONS: usize = 3;

/// Collects the symbols of one scan. A symbol emitted twice keeps the larger factor and lists
/// up to three reasons.
#[derive(Debug)]
pub struct Symbols<'w> {
    weights: &'w Weights,
    out: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    name: &'static str,
    factor: f64,
    reasons: Vec<String>,
    more: usize,
}

impl<'w> Symbols<'w> {
    pub(crate) fn new(weights: &'w Weights) -> Self {
        Self {
            weights,
            out: Vec::new(),
        }
    }

    /// Adds a symbol at its full weight.
    pub fn add(&mut self, name: &'static str, reason: impl Into<String>) {
        self.add_graded(name, 1.0, reason);
    }

    /// Adds a symbol at `factor` × its weight (`factor` is clamped to 0..=1).
    pub fn add_graded(&mut self, name: &'static str, factor: f64, reason: impl Into<String>) {
        debug_assert!(symbols::lookup(name).is_some(), "unknown symbol {name}");
        let factor = if factor.is_finite() {
            factor.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if let Some(e) = self.out.iter_mut().find(|e| e.name == name) {
            e.factor = e.factor.max(factor);
            if e.reasons.len() < MAX_REASONS {
                let r = reason.into();
                if !e.reasons.contains(&r) {
                    e.reasons.push(r);
                }
            } else {
                e.more += 1;
            }
            return;
        }
        self.out.push(Entry {
            name,
            factor,
            reasons: vec![reason.into()],
            more: 0,
        });
    }

    /// True when a symbol of that name has been added.
    pub fn has(&self, name: &str) -> bool {
        self.out.iter().any(|e| e.name == name)
    }

    /// The symbols with their scores and floors.
    pub(crate) fn finish(self) -> Vec<Symbol> {
        self.out
            .into_iter()
            .map(|e| {
                let (weight, min_verdict) = self.weights.get(e.name);
                let mut reason = e.reasons.join("; ");
                if e.more > 0 {
                    reason.push_str(&format!("; and {} more", e.more));
                }
                Symbol {
                    name: e.name,
                    score: round3(weight * e.factor),
                    reason,
                    min_verdict,
                }
            })
            .collect()
    }
}

/// Rounds to three decimals, so JSON output is stable and readable.
pub(crate) fn round3(x: f64) -> f64 {
    let r = (x * 1000.0).round() / 1000.0;
    // No "-0" in the output.
    if r == 0.0 { 0.0 } else { r }
}
