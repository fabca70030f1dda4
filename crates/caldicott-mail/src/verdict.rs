//! The outcome of a scan: named, scored symbols and the verdict they add up to.

use serde::{Deserialize, Serialize};

/// What the gateway does with a message, from mildest to strongest.
///
/// The order matters: a verdict is the strongest of what the total score reaches and of the
/// `min_verdict` floors of the symbols that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Deliver as is.
    Accept,
    /// Deliver, marked as suspected spam (a header; the subject tag is the mailbox's business).
    Tag,
    /// Hold for the privacy officer or administrator to release or delete.
    Quarantine,
    /// Refuse (over SMTP: a 5xx with the reason).
    Reject,
}

impl Verdict {
    /// The lowercase name used in JSON and TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Tag => "tag",
            Verdict::Quarantine => "quarantine",
            Verdict::Reject => "reject",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding of one check: a name from [`crate::symbols::SYMBOLS`], the score it adds
/// (negative for evidence of ham) and a reason a person can read.
///
/// Reasons name what was seen (a domain, a file name, a phrase) but never the body text of the
/// message beyond that.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Symbol {
    pub name: &'static str,
    pub score: f64,
    pub reason: String,
    /// The least this symbol alone makes the verdict, whatever the total score (for example
    /// an executable attachment is rejected even when the rest of the message looks like ham).
    #[serde(skip_serializing_if = "is_accept")]
    pub min_verdict: Verdict,
}

fn is_accept(v: &Verdict) -> bool {
    *v == Verdict::Accept
}

/// The result of screening one message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    /// The sum of the symbols' scores, rounded to 3 decimals.
    pub score: f64,
    /// Every symbol that fired, in the order the checks ran.
    pub symbols: Vec<Symbol>,
}

impl Report {
    /// The symbol of that name, if it fired.
    pub fn symbol(&self, name: &str) -> Option<&Symbol> {
        self.symbols.iter().find(|s| s.name == name)
    }

    /// True when a symbol of that name fired.
    pub fn has(&self, name: &str) -> bool {
        self.symbol(name).is_some()
    }
}
