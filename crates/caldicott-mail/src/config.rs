//! The screening configuration (`mail.toml`): thresholds, limits, protected domains, and
//! per-symbol overrides. Every field has a default, so an empty file is a valid configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::symbols;
use crate::verdict::Verdict;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("mail configuration is not valid")]
    Toml(#[from] toml::de::Error),
    #[error("mail configuration: {0}")]
    Invalid(String),
}

/// The whole screening configuration.
///
/// ```toml
/// [thresholds]
/// tag = 5.0
/// quarantine = 10.0
/// reject = 20.0
///
/// [phishing]
/// organisation_domains = ["sunnyvale-care.co.uk"]
/// organisation_names = ["Sunnyvale Care"]
///
/// [symbols.ATTACH_MACRO_OFFICE]
/// min_verdict = "tag"   # this site receives macro spreadsheets from its payroll bureau
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    pub thresholds: Thresholds,
    pub limits: Limits,
    pub phishing: PhishingConfig,
    pub bayes: BayesConfig,
    /// Per-symbol overrides of the default weight and floor, by symbol name.
    pub symbols: BTreeMap<String, SymbolOverride>,
}

/// Total scores at which a message is tagged, quarantined or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Default 5.0 (SpamAssassin's customary `required_score`).
    pub tag: f64,
    /// Default 10.0.
    pub quarantine: f64,
    /// Default 20.0.
    pub reject: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            tag: 5.0,
            quarantine: 10.0,
            reject: 20.0,
        }
    }
}

impl Thresholds {
    /// The verdict a total score reaches on its own.
    pub fn verdict(&self, score: f64) -> Verdict {
        if score >= self.reject {
            Verdict::Reject
        } else if score >= self.quarantine {
            Verdict::Quarantine
        } else if score >= self.tag {
            Verdict::Tag
        } else {
            Verdict::Accept
        }
    }
}

/// Bounds on the work one message may cause. Past a bound the engine stops looking and emits
/// a symbol saying so (never a panic, never unbounded memory).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest message accepted, in bytes (default 32 MiB). Larger ones are rejected unparsed.
    pub max_message_bytes: usize,
    /// Most header fields in the message and in any part (default 500).
    pub max_headers: usize,
    /// Most MIME parts screened (default 250).
    pub max_parts: usize,
    /// Deepest MIME nesting (multiparts and attached messages, default 20).
    pub max_depth: usize,
    /// Deepest archive nesting inspected (a zip in a zip in a zip …, default 4).
    pub max_archive_depth: usize,
    /// Most members inspected per archive (default 1,000).
    pub max_archive_entries: usize,
    /// Most bytes decompressed from one attachment's archives in total (default 64 MiB).
    pub max_archive_bytes: usize,
    /// Most bytes of one archive member read for inspection (default 16 MiB).
    pub max_member_bytes: usize,
    /// Most bytes of decoded text given to the text rules and the classifier (default 512 KiB).
    pub max_text_bytes: usize,
    /// Most links examined (default 500).
    pub max_links: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 32 << 20,
            max_headers: 500,
            max_parts: 250,
            max_depth: 20,
            max_archive_depth: 4,
            max_archive_entries: 1000,
            max_archive_bytes: 64 << 20,
            max_member_bytes: 16 << 20,
            max_text_bytes: 512 << 10,
            max_links: 500,
        }
    }
}

/// What counts as impersonation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhishingConfig {
    /// Domains whose look-alikes are phishing (default `nhs.net`, `nhs.uk`, `gov.uk`,
    /// `cqc.org.uk`). Subdomains of a protected domain are genuine.
    pub protected_domains: Vec<String>,
    /// The organisation's own domains: protected too.
    pub organisation_domains: Vec<String>,
    /// Names of the organisation that a display name may impersonate.
    pub organisation_names: Vec<String>,
}

impl Default for PhishingConfig {
    fn default() -> Self {
        Self {
            protected_domains: ["nhs.net", "nhs.uk", "gov.uk", "cqc.org.uk"]
                .map(String::from)
                .to_vec(),
            organisation_domains: Vec::new(),
            organisation_names: Vec::new(),
        }
    }
}

/// The statistical classifier's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BayesConfig {
    /// Use the model when one is given (default true).
    pub enabled: bool,
    /// A model trained on fewer ham or fewer spam messages than this is not used (default 50).
    pub min_trained: u32,
}

impl Default for BayesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_trained: 50,
        }
    }
}

/// A site's change to one symbol.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SymbolOverride {
    /// Replaces the default weight.
    pub weight: Option<f64>,
    /// Replaces the default floor (`"accept"` removes it).
    pub min_verdict: Option<Verdict>,
}

impl MailConfig {
    /// Parses and validates a TOML configuration.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: MailConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the thresholds are ordered and finite, the limits non-zero, and every
    /// overridden symbol exists.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.thresholds;
        let finite = [t.tag, t.quarantine, t.reject]
            .iter()
            .all(|v| v.is_finite());
        if !finite || t.tag > t.quarantine || t.quarantine > t.reject {
            return Err(ConfigError::Invalid(
                "thresholds must be finite with tag <= quarantine <= reject".into(),
            ));
        }
        let l = &self.limits;
        if [
            l.max_message_bytes,
            l.max_headers,
            l.max_parts,
            l.max_depth,
            l.max_archive_entries,
            l.max_archive_bytes,
            l.max_member_bytes,
            l.max_text_bytes,
        ]
        .contains(&0)
        {
            return Err(ConfigError::Invalid(
                "limits must be greater than zero".into(),
            ));
        }
        for (name, o) in &self.symbols {
            if symbols::lookup(name).is_none() {
                return Err(ConfigError::Invalid(format!("unknown symbol {name}")));
            }
            if o.weight.is_some_and(|w| !w.is_finite()) {
                return Err(ConfigError::Invalid(format!(
                    "weight of {name} is not finite"
                )));
            }
        }
        Ok(())
    }
}
