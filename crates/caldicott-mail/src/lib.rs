//! Caldicott's mail screening engine: the offline, pure part of the mail gateway.
//!
//! **What it is.** Given the raw bytes of one RFC 5322 message, a [`Scanner`] parses it with
//! Stalwart's `mail-parser` under configured [limits](config::Limits), runs its
//! [checks](Check) and returns a [`Report`]: every named, scored [`Symbol`] that fired (with a
//! reason a person can read) and the [`Verdict`] they add up to (`accept`, `tag`, `quarantine`,
//! `reject`), by the [thresholds](config::Thresholds) of a [`MailConfig`] and the floors some
//! symbols carry (an executable attachment is rejected whatever else the message scores). The
//! standard checks are:
//!
//! - [`attach`]: attachments by content, not name: executables (PE, ELF, Mach-O, …), Windows
//!   and Unix scripts, macro-enabled Office files (OLE VBA storages, OOXML `vbaProject.bin`),
//!   zip/gzip/tar archives opened and inspected to a depth (encrypted members quarantined,
//!   unopenable formats such as RAR or ISO too), HTML smuggling and lying file names;
//! - [`phishing`]: senders and links imitating `nhs.net`, `nhs.uk`, `gov.uk`, `cqc.org.uk` or
//!   the organisation's domains (confusable characters by UTS #39 skeleton, punycode, edit
//!   distance, embedding), link text showing another domain than the link's, bare-IP links,
//!   password forms and credential-harvesting wording;
//! - [`rules`]: header and body spam rules;
//! - [`bayes`]: a per-site classifier (Robinson–Fisher over hashed features) trained with
//!   [`bayes::Trainer`] and stored compactly ([`BayesModel::to_bytes`]).
//!
//! [`dlp`] finds NHS numbers and names with dates of birth in outbound text (counts only,
//! never the values), for the outbound gateway. [`eval`] measures the whole on a labelled
//! corpus with a deterministic train/test split.
//!
//! **The gateway.** [`smtp`] is the ESMTP server around the engine (`caldicott mail serve`):
//! it screens each message through a [`smtp::Screen`], keeps quarantined ones with a
//! [`smtp::Quarantine`], writes the rest durably to the [`queue`] before answering `250`, and
//! [`relay`]s them to the next hop with retries, bouncing failures with an RFC 3464 [`dsn`].
//!
//! Quarantined messages are kept sealed in the vault ([`quarantine::VaultQuarantine`]);
//! submitted mail with patient-identifiable data to a domain outside the secure list is held
//! there too, and partner domains can require verified TLS ([`outbound`]): pinned roots, or
//! DANE ([`dane`]) and MTA-STS ([`mta_sts`]) found through the DNS ([`tls_policy`], [`dnsq`]).
//!
//! **Sender authentication.** [`auth::AuthScreen`] wraps the gateway's screen: with a
//! [`dns`] resolver configured it verifies SPF, DKIM, DMARC and ARC (Stalwart's `mail-auth`),
//! adds `SPF_*`/`DKIM_*`/`DMARC_*`/`ARC_*` symbols, honours the sender's DMARC policy and
//! writes `Authentication-Results:`; on the submission port it DKIM-signs ([`dkim_sign`]).
//! [`checkdns`] tells a site which DNS records to publish. A scan itself does no I/O, so it
//! is deterministic and testable — except for the optional virus scan: with `[clamav]`
//! configured, [`clamav::ClamavCheck`] sends each whole message to ClamAV's `clamd`
//! (`INSTREAM`, bounded by a timeout) and adds `CLAMAV_*` symbols.
//!
//! Hostile input is expected: oversize messages, header bombs, deep nesting, zip bombs and
//! garbage bytes each produce a defined symbol and verdict, never a panic (checks are also run
//! under `catch_unwind`, and a failure quarantines the message with `SCAN_INTERNAL_ERROR`).
//!
//! ```
//! use caldicott_mail::{MailConfig, Scanner, Verdict};
//!
//! let scanner = Scanner::new(MailConfig::default(), None)?;
//! let raw = b"From: \"NHS Payroll\" <payroll@nhs-net.co>\r\nTo: a@example.org\r\n\
//!     Subject: Verify your account\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
//!     Message-ID: <1@nhs-net.co>\r\n\r\nClick here to verify within 24 hours.\r\n";
//! let report = scanner.scan(raw);
//! assert!(report.has("FROM_LOOKALIKE_PROTECTED"));
//! assert_eq!(report.verdict, Verdict::Quarantine);
//! # Ok::<(), caldicott_mail::ConfigError>(())
//! ```

#![forbid(unsafe_code)]

pub mod attach;
pub mod auth;
pub mod bayes;
mod check;
pub mod checkdns;
pub mod clamav;
pub mod config;
pub mod dane;
pub mod dkim_sign;
pub mod dlp;
pub mod dns;
pub mod dnsq;
pub mod domains;
pub mod dsn;
pub mod eval;
pub mod html;
pub mod mail;
pub mod mta_sts;
pub mod outbound;
pub mod phishing;
mod phrases;
pub mod quarantine;
pub mod queue;
pub mod relay;
pub mod rules;
mod scanner;
pub mod sendas;
pub mod smtp;
pub mod symbols;
pub mod tls_policy;
mod verdict;

pub use bayes::{BayesModel, ModelError, Trainer};
pub use check::{Check, Envelope, Symbols};
pub use config::{ConfigError, MailConfig};
pub use mail::Mail;
pub use scanner::Scanner;
pub use verdict::{Report, Symbol, Verdict};

/// The parser crate, re-exported for checks that read the parsed message.
pub use mail_parser;
