//! Sender authentication at the gateway: SPF, DKIM, DMARC and ARC on inbound mail, DKIM
//! signing of submitted mail, and the `Authentication-Results:` field (RFC 8601).
//!
//! [`AuthScreen`] wraps another [`Screen`] (normally the content scanner). For a message on
//! the inbound port it verifies, through Stalwart's `mail-auth` and the `[dns]` resolver,
//!
//! - SPF (RFC 7208) for the `MAIL FROM` domain (the HELO name for bounces),
//! - every DKIM signature (RFC 6376, RSA and Ed25519),
//! - the ARC chain (RFC 8617),
//! - DMARC (RFC 7489 / DMARCbis) for the From domain, from the SPF and DKIM results,
//!
//! while the inner screen runs, and adds named, scored symbols (`SPF_*`, `DKIM_*`, `DMARC_*`,
//! `ARC_*`, weights and floors overridable in `[symbols]` like every other symbol). The
//! sender's DMARC policy is honoured through floors: a failing message from a `p=reject`
//! domain gets `DMARC_POLICY_REJECT` (floor `reject`: `550` at the end of DATA), from a
//! `p=quarantine` domain `DMARC_POLICY_QUARANTINE` (floor `quarantine`). **The ARC rule**: if
//! the ARC chain verifies (`cv=pass` all the way) and the sealer of its newest set is in
//! `auth.trusted_arc_sealers`, and that sealer's `ARC-Authentication-Results` recorded
//! `dmarc=pass` or `dkim=pass`, the policy is not applied (a mailing list or forwarder the
//! site trusts vouched that the message passed before it changed it); `DMARC_ARC_OVERRIDE`
//! fires instead, with a small score and no floor. An untrusted or broken chain changes
//! nothing.
//!
//! Without `[dns]` nothing is looked up (offline scans stay offline); without `[dns]` or on
//! the submission port no authentication symbols are added. For authenticated (submission)
//! mail the screen instead signs with the `[[auth.sign]]` keys ([`crate::dkim_sign`]).
//!
//! The decision from results to symbols ([`decide`]) is a pure function over an
//! [`AuthOutcome`], tested without a network; the lookups are in [`verify`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, MessageAuthenticator,
    SpfResult,
};
use serde::{Deserialize, Serialize};

use crate::check::{Envelope, Symbols, Weights, round3};
use crate::config::{ConfigError, MailConfig, Thresholds};
use crate::dkim_sign::{SignConfig, SignError, Signer};
use crate::smtp::{Additions, BoxFuture, Screen};
use crate::symbols::*;
use crate::verdict::{Report, Verdict};

/// `[auth]`: sender authentication and outbound signing.
///
/// ```toml
/// [auth]
/// authserv_id = "mx.sunnyvale-care.co.uk"   # default: gateway.hostname
/// trusted_arc_sealers = ["lists.nhs.net"]
/// timeout = "20s"
///
/// [[auth.sign]]
/// domain = "sunnyvale-care.co.uk"
/// selector = "cald2026"
/// key = "/etc/caldicott/mail/dkim-cald2026.pem"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The authserv-id in `Authentication-Results:` (default: `gateway.hostname`).
    pub authserv_id: Option<String>,
    /// ARC sealers (`d=` of the newest ARC-Seal) whose word overrides a DMARC policy.
    pub trusted_arc_sealers: Vec<String>,
    /// Longest the whole verification of one message may take (default `20s`); past it the
    /// message is screened without the remaining results (`DMARC_TEMPERROR`).
    pub timeout: String,
    /// Outbound DKIM keys for submitted mail.
    pub sign: Vec<SignConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            authserv_id: None,
            trusted_arc_sealers: Vec::new(),
            timeout: "20s".into(),
            sign: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// Checks names and the timeout.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.timeout_duration()?;
        if let Some(id) = &self.authserv_id
            && !is_token(id)
        {
            return Err(ConfigError::Invalid(format!(
                "auth.authserv_id: {id:?} must be a host name (letters, digits, '.', '-')"
            )));
        }
        for (i, s) in self.trusted_arc_sealers.iter().enumerate() {
            if !is_token(s) {
                return Err(ConfigError::Invalid(format!(
                    "auth.trusted_arc_sealers[{i}]: {s:?} is not a domain"
                )));
            }
        }
        for (i, s) in self.sign.iter().enumerate() {
            if !is_token(&s.domain) {
                return Err(ConfigError::Invalid(format!(
                    "auth.sign[{i}].domain: {:?} is not a domain",
                    s.domain
                )));
            }
            if !is_token(&s.selector) {
                return Err(ConfigError::Invalid(format!(
                    "auth.sign[{i}].selector: {:?} is not a selector (letters, digits, '.', '-')",
                    s.selector
                )));
            }
        }
        Ok(())
    }

    fn timeout_duration(&self) -> Result<Duration, ConfigError> {
        let t = self.timeout.trim();
        let d = t
            .strip_suffix("ms")
            .and_then(|n| n.parse().ok().map(Duration::from_millis))
            .or_else(|| {
                t.strip_suffix('s')
                    .and_then(|n| n.parse().ok().map(Duration::from_secs))
            });
        d.filter(|d| !d.is_zero()).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "auth.timeout: {:?} is not a duration such as 20s or 500ms",
                self.timeout
            ))
        })
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// Why the authentication screen could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// SPF's outcome, in our terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfOutcome {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    PermError,
    TempError,
}

/// One DKIM signature's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimOutcome {
    Pass,
    Fail,
    TempError,
}

/// DMARC's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcOutcome {
    Pass,
    Fail,
    /// No record (or the message is exempt, e.g. several From domains).
    None,
    TempError,
}

/// The From domain's requested policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

/// The ARC chain's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArcOutcome {
    /// `None` when the message has no ARC sets.
    pub pass: Option<bool>,
    /// `d=` of the newest ARC-Seal.
    pub sealer: Option<String>,
    /// The newest ARC-Authentication-Results says `dmarc=pass` or `dkim=pass`.
    pub sealer_saw_pass: bool,
}

/// Everything verification found, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthOutcome {
    pub spf: SpfOutcome,
    /// The domain SPF was checked for.
    pub spf_domain: String,
    /// Per signature: its `d=` and outcome.
    pub dkim: Vec<(String, DkimOutcome)>,
    pub arc: ArcOutcome,
    pub dmarc: DmarcOutcome,
    pub dmarc_policy: DmarcPolicy,
    /// The From domain DMARC was evaluated for.
    pub from_domain: String,
    /// True when verification ran out of time before finishing.
    pub timed_out: bool,
}

/// From verification results to symbols (pure: no I/O).
pub fn decide(o: &AuthOutcome, trusted_arc_sealers: &[String], out: &mut Symbols<'_>) {
    let d = &o.spf_domain;
    match o.spf {
        SpfOutcome::Pass => out.add(SPF_PASS, format!("client authorised by {d}")),
        SpfOutcome::Fail => out.add(SPF_FAIL, format!("{d} does not authorise the client")),
        SpfOutcome::SoftFail => out.add(SPF_SOFTFAIL, format!("{d}: ~all for the client")),
        SpfOutcome::Neutral => out.add(SPF_NEUTRAL, format!("{d}: ?all for the client")),
        SpfOutcome::None => out.add(SPF_NONE, format!("{d} has no SPF record")),
        SpfOutcome::PermError => out.add(SPF_PERMERROR, format!("{d}: SPF record is broken")),
        SpfOutcome::TempError => out.add(SPF_TEMPERROR, format!("{d}: DNS failed")),
    }
    if o.dkim.is_empty() {
        out.add(DKIM_NONE, "no DKIM-Signature");
    }
    for (domain, r) in &o.dkim {
        match r {
            DkimOutcome::Pass => out.add(DKIM_VALID, format!("d={domain}")),
            DkimOutcome::Fail => out.add(DKIM_INVALID, format!("d={domain}")),
            DkimOutcome::TempError => out.add(DKIM_TEMPERROR, format!("d={domain}")),
        }
    }
    let sealer = o.arc.sealer.as_deref().unwrap_or("");
    let trusted = o.arc.pass == Some(true)
        && trusted_arc_sealers
            .iter()
            .any(|t| t.eq_ignore_ascii_case(sealer));
    match o.arc.pass {
        Some(true) if trusted => out.add(ARC_TRUSTED, format!("sealed by {sealer}")),
        Some(true) => out.add(ARC_PASS, format!("sealed by {sealer}")),
        Some(false) => out.add(ARC_FAIL, format!("newest seal by {sealer}")),
        None => {}
    }
    let f = &o.from_domain;
    match o.dmarc {
        DmarcOutcome::Pass => out.add(DMARC_PASS, format!("aligned with {f}")),
        DmarcOutcome::None => out.add(DMARC_NONE, format!("{f} has no DMARC record")),
        DmarcOutcome::TempError => {
            let why = if o.timed_out {
                "verification timed out"
            } else {
                "DNS failed"
            };
            out.add(DMARC_TEMPERROR, format!("{f}: {why}"))
        }
        DmarcOutcome::Fail => {
            let vouched = trusted && o.arc.sealer_saw_pass;
            match o.dmarc_policy {
                DmarcPolicy::Reject | DmarcPolicy::Quarantine if vouched => out.add(
                    DMARC_ARC_OVERRIDE,
                    format!(
                        "{f} p={} not applied: trusted ARC sealer {sealer} saw it pass",
                        policy_name(o.dmarc_policy)
                    ),
                ),
                DmarcPolicy::Reject => out.add(
                    DMARC_POLICY_REJECT,
                    format!("{f} failed DMARC and asks for p=reject"),
                ),
                DmarcPolicy::Quarantine => out.add(
                    DMARC_POLICY_QUARANTINE,
                    format!("{f} failed DMARC and asks for p=quarantine"),
                ),
                DmarcPolicy::None => out.add(
                    DMARC_POLICY_NONE,
                    format!("{f} failed DMARC (p=none: monitoring only)"),
                ),
            }
        }
    }
}

fn policy_name(p: DmarcPolicy) -> &'static str {
    match p {
        DmarcPolicy::None => "none",
        DmarcPolicy::Quarantine => "quarantine",
        DmarcPolicy::Reject => "reject",
    }
}

fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map_or("", |(_, d)| d)
}

/// Verifies one message through `resolver`: the outcome and the `Authentication-Results:`
/// field (CRLF-terminated). `None` when the message has no parseable header.
pub async fn verify(
    resolver: &MessageAuthenticator,
    authserv_id: &str,
    envelope: &Envelope,
    raw: &[u8],
) -> Option<(AuthOutcome, String)> {
    let message = AuthenticatedMessage::parse(raw)?;
    let ip = envelope
        .client_ip
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let helo = envelope.helo.as_deref().unwrap_or("unknown");
    let mail_from = envelope.mail_from.as_deref().unwrap_or("");
    let spf = if mail_from.is_empty() {
        resolver
            .verify_spf(SpfParameters::verify_ehlo(ip, helo, authserv_id))
            .await
    } else {
        resolver
            .verify_spf(SpfParameters::verify_mail_from(
                ip,
                helo,
                authserv_id,
                mail_from,
            ))
            .await
    };
    let dkim = resolver.verify_dkim(&message).await;
    let arc = resolver.verify_arc(&message).await;
    let mail_from_domain = if mail_from.is_empty() {
        helo
    } else {
        domain_of(mail_from)
    };
    let dmarc = resolver
        .verify_dmarc(DmarcParameters::new(
            &message,
            &dkim,
            mail_from_domain,
            &spf,
        ))
        .await;
    let from_addr = message.from.first().cloned().unwrap_or_default();
    let mut ar = AuthenticationResults::new(authserv_id).with_dkim_results(&dkim, &from_addr);
    ar = if mail_from.is_empty() {
        ar.with_spf_ehlo_result(&spf, ip, helo)
    } else {
        ar.with_spf_mailfrom_result(&spf, ip, mail_from, helo)
    };
    if !arc.sets().is_empty() {
        ar = ar.with_arc_result(&arc, ip);
    }
    ar = ar.with_dmarc_result(&dmarc);

    let spf_outcome = match spf.result() {
        SpfResult::Pass => SpfOutcome::Pass,
        SpfResult::Fail => SpfOutcome::Fail,
        SpfResult::SoftFail => SpfOutcome::SoftFail,
        SpfResult::Neutral => SpfOutcome::Neutral,
        SpfResult::TempError => SpfOutcome::TempError,
        SpfResult::PermError => SpfOutcome::PermError,
        SpfResult::None => SpfOutcome::None,
    };
    let dkim_outcomes = dkim
        .iter()
        .filter(|d| *d.result() != DkimResult::None)
        .map(|d| {
            let domain = d.signature().map(|s| s.d.clone()).unwrap_or_default();
            let r = match d.result() {
                DkimResult::Pass => DkimOutcome::Pass,
                DkimResult::TempError(_) => DkimOutcome::TempError,
                _ => DkimOutcome::Fail,
            };
            (domain, r)
        })
        .collect();
    let arc_outcome = match arc.sets().last() {
        None => ArcOutcome {
            pass: None,
            sealer: None,
            sealer_saw_pass: false,
        },
        Some(newest) => {
            let aar = String::from_utf8_lossy(newest.results.value).to_ascii_lowercase();
            ArcOutcome {
                pass: Some(*arc.result() == DkimResult::Pass),
                sealer: Some(newest.seal.header.d.to_ascii_lowercase()),
                sealer_saw_pass: aar.contains("dmarc=pass") || aar.contains("dkim=pass"),
            }
        }
    };
    let dmarc_outcome = match dmarc.result() {
        DmarcResult::Pass => DmarcOutcome::Pass,
        DmarcResult::TempError(_) => DmarcOutcome::TempError,
        DmarcResult::None => DmarcOutcome::None,
        DmarcResult::Fail(_) | DmarcResult::PermError(_) => DmarcOutcome::Fail,
    };
    let policy = match dmarc.policy() {
        Policy::Reject => DmarcPolicy::Reject,
        Policy::Quarantine => DmarcPolicy::Quarantine,
        Policy::None | Policy::Unspecified => DmarcPolicy::None,
    };
    let from_domain = if dmarc.domain().is_empty() {
        domain_of(&from_addr).to_owned()
    } else {
        dmarc.domain().to_owned()
    };
    let outcome = AuthOutcome {
        spf: spf_outcome,
        spf_domain: spf.domain().to_owned(),
        dkim: dkim_outcomes,
        arc: arc_outcome,
        dmarc: dmarc_outcome,
        dmarc_policy: policy,
        from_domain,
        timed_out: false,
    };
    Some((outcome, ar.to_header()))
}

/// The From domain of a raw message (first address), for choosing a signing key.
fn from_domain(raw: &[u8]) -> Option<String> {
    let m = AuthenticatedMessage::parse(raw)?;
    m.from
        .first()
        .map(|a| domain_of(a).to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

/// Sender authentication and signing, ready to wrap a screen ([`AuthLayer::wrap`]).
pub struct AuthLayer {
    resolver: Option<MessageAuthenticator>,
    weights: Weights,
    thresholds: Thresholds,
    authserv_id: String,
    trusted_arc_sealers: Vec<String>,
    timeout: Duration,
    signer: Signer,
}

/// A [`Screen`] adding sender authentication (inbound) and DKIM signing (submission) to an
/// inner screen. In the gateway it must be the outermost screen
/// ([`crate::smtp::Gateway::wrap_screen`]), as only the outermost adds header fields.
pub struct AuthScreen {
    inner: Arc<dyn Screen>,
    layer: AuthLayer,
}

impl std::ops::Deref for AuthScreen {
    type Target = AuthLayer;
    fn deref(&self) -> &AuthLayer {
        &self.layer
    }
}

impl AuthLayer {
    /// Builds from `config`'s `[dns]` and `[auth]` (the signing keys are loaded now; the
    /// resolver must be built inside a tokio runtime). `hostname` is the default authserv-id.
    pub fn new(config: &MailConfig, hostname: &str) -> Result<Self, AuthError> {
        config.auth.validate()?;
        let resolver = match &config.dns {
            Some(d) => Some(d.authenticator()?),
            None => None,
        };
        Ok(Self {
            resolver,
            weights: Weights::new(config),
            thresholds: config.thresholds,
            authserv_id: config
                .auth
                .authserv_id
                .clone()
                .unwrap_or_else(|| hostname.to_owned()),
            trusted_arc_sealers: config.auth.trusted_arc_sealers.clone(),
            timeout: config.auth.timeout_duration()?,
            signer: Signer::load(&config.auth.sign)?,
        })
    }

    /// The screen running `inner` with authentication around it.
    pub fn wrap(self, inner: Arc<dyn Screen>) -> AuthScreen {
        AuthScreen { inner, layer: self }
    }

    /// True when inbound verification will run (a resolver is configured).
    pub fn verifies(&self) -> bool {
        self.resolver.is_some()
    }

    async fn authenticate(&self, envelope: &Envelope, message: &[u8]) -> (AuthOutcome, String) {
        let timed_out = |from: String| AuthOutcome {
            spf: SpfOutcome::TempError,
            spf_domain: domain_of(envelope.mail_from.as_deref().unwrap_or("")).to_owned(),
            dkim: Vec::new(),
            arc: ArcOutcome {
                pass: None,
                sealer: None,
                sealer_saw_pass: false,
            },
            dmarc: DmarcOutcome::TempError,
            dmarc_policy: DmarcPolicy::None,
            from_domain: from,
            timed_out: true,
        };
        let Some(resolver) = &self.resolver else {
            return (timed_out(String::new()), String::new());
        };
        match tokio::time::timeout(
            self.timeout,
            verify(resolver, &self.authserv_id, envelope, message),
        )
        .await
        {
            Ok(Some(r)) => r,
            Ok(None) => (
                timed_out(String::new()),
                format!(
                    "Authentication-Results: {}; none (unparseable header)\r\n",
                    self.authserv_id
                ),
            ),
            Err(_) => (
                timed_out(from_domain(message).unwrap_or_default()),
                format!(
                    "Authentication-Results: {}; dmarc=temperror (timed out)\r\n",
                    self.authserv_id
                ),
            ),
        }
    }

    /// Adds the authentication symbols to the inner report and re-derives score and verdict
    /// (never milder than the inner verdict).
    fn merge(&self, mut report: Report, outcome: &AuthOutcome) -> Report {
        let mut out = Symbols::new(&self.weights);
        decide(outcome, &self.trusted_arc_sealers, &mut out);
        report.symbols.extend(out.finish());
        report.score = round3(report.symbols.iter().map(|s| s.score).sum());
        let floor = report
            .symbols
            .iter()
            .map(|s| s.min_verdict)
            .max()
            .unwrap_or(Verdict::Accept);
        report.verdict = report
            .verdict
            .max(self.thresholds.verdict(report.score))
            .max(floor);
        report
    }
}

impl AuthScreen {
    /// [`AuthLayer::new`] then [`AuthLayer::wrap`].
    pub fn new(
        inner: Arc<dyn Screen>,
        config: &MailConfig,
        hostname: &str,
    ) -> Result<Self, AuthError> {
        Ok(AuthLayer::new(config, hostname)?.wrap(inner))
    }
}

impl Screen for AuthScreen {
    fn screen<'a>(
        &'a self,
        envelope: &'a Envelope,
        message: Arc<Vec<u8>>,
    ) -> BoxFuture<'a, Report> {
        Box::pin(async move { self.screen_with_additions(envelope, message).await.0 })
    }

    fn screen_with_additions<'a>(
        &'a self,
        envelope: &'a Envelope,
        message: Arc<Vec<u8>>,
    ) -> BoxFuture<'a, (Report, Additions)> {
        Box::pin(async move {
            // Copies of our own Authentication-Results sent by the client go (RFC 8601 §5).
            let mut additions = Additions {
                fields: String::new(),
                remove_auth_results_of: Some(self.authserv_id.clone()),
            };
            if envelope.authenticated {
                let report = self.inner.screen(envelope, message.clone()).await;
                if report.verdict != Verdict::Reject && !self.signer.is_empty() {
                    match from_domain(&message).map(|d| self.signer.sign(&d, &message)) {
                        Some(Ok(fields)) => additions.fields = fields,
                        Some(Err(e)) => tracing::warn!(error = %e, "DKIM signing failed"),
                        None => {}
                    }
                }
                return (report, additions);
            }
            if self.resolver.is_none() {
                let report = self.inner.screen(envelope, message).await;
                return (report, additions);
            }
            let (report, (outcome, ar)) = tokio::join!(
                self.inner.screen(envelope, message.clone()),
                self.authenticate(envelope, &message)
            );
            additions.fields = ar;
            (self.merge(report, &outcome), additions)
        })
    }
}

/// Removes the `Authentication-Results:` fields whose authserv-id is `id` from the header
/// section of `raw` (the body is untouched).
pub fn strip_auth_results(raw: &[u8], id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    let mut dropping = false;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        if line == b"\r\n" || line == b"\n" {
            out.extend_from_slice(rest);
            return out;
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            dropping = is_our_auth_results(line, id);
        }
        if !dropping {
            out.extend_from_slice(line);
        }
        rest = tail;
    }
    out
}

fn is_our_auth_results(line: &[u8], id: &str) -> bool {
    const NAME: &[u8] = b"authentication-results:";
    if line.len() < NAME.len() || !line[..NAME.len()].eq_ignore_ascii_case(NAME) {
        return false;
    }
    let value = String::from_utf8_lossy(&line[NAME.len()..]);
    let first = value
        .trim()
        .split([';', ' ', '\t', '\r', '\n'])
        .next()
        .unwrap_or("");
    first.eq_ignore_ascii_case(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> AuthOutcome {
        AuthOutcome {
            spf: SpfOutcome::Fail,
            spf_domain: "example.org".into(),
            dkim: vec![("example.org".into(), DkimOutcome::Fail)],
            arc: ArcOutcome {
                pass: None,
                sealer: None,
                sealer_saw_pass: false,
            },
            dmarc: DmarcOutcome::Fail,
            dmarc_policy: DmarcPolicy::Reject,
            from_domain: "example.org".into(),
            timed_out: false,
        }
    }

    fn names(o: &AuthOutcome, trusted: &[String]) -> Vec<(&'static str, Verdict)> {
        let w = Weights::new(&MailConfig::default());
        let mut s = Symbols::new(&w);
        decide(o, trusted, &mut s);
        s.finish()
            .into_iter()
            .map(|s| (s.name, s.min_verdict))
            .collect()
    }

    #[test]
    fn dmarc_policies_become_floors() {
        let o = outcome();
        let n = names(&o, &[]);
        assert!(n.contains(&(SPF_FAIL, Verdict::Accept)));
        assert!(n.contains(&(DKIM_INVALID, Verdict::Accept)));
        assert!(n.contains(&(DMARC_POLICY_REJECT, Verdict::Reject)));
        let q = AuthOutcome {
            dmarc_policy: DmarcPolicy::Quarantine,
            ..outcome()
        };
        assert!(names(&q, &[]).contains(&(DMARC_POLICY_QUARANTINE, Verdict::Quarantine)));
        let none = AuthOutcome {
            dmarc_policy: DmarcPolicy::None,
            ..outcome()
        };
        assert!(names(&none, &[]).contains(&(DMARC_POLICY_NONE, Verdict::Accept)));
    }

    #[test]
    fn only_a_trusted_passing_arc_chain_overrides_the_policy() {
        let arc = |pass, saw| ArcOutcome {
            pass: Some(pass),
            sealer: Some("lists.example.net".into()),
            sealer_saw_pass: saw,
        };
        let trusted = vec!["lists.example.net".to_string()];
        let with = |a| AuthOutcome {
            arc: a,
            ..outcome()
        };
        let ok = names(&with(arc(true, true)), &trusted);
        assert!(ok.iter().any(|(n, _)| *n == DMARC_ARC_OVERRIDE));
        assert!(ok.iter().any(|(n, _)| *n == ARC_TRUSTED));
        assert!(!ok.iter().any(|(n, _)| *n == DMARC_POLICY_REJECT));
        // Not trusted, broken, or the sealer did not see a pass: the policy stands.
        for (o, t) in [
            (with(arc(true, true)), vec![]),
            (with(arc(false, true)), trusted.clone()),
            (with(arc(true, false)), trusted.clone()),
        ] {
            assert!(
                names(&o, &t).contains(&(DMARC_POLICY_REJECT, Verdict::Reject)),
                "{o:?}"
            );
        }
    }

    #[test]
    fn the_sections_parse_and_an_offline_scan_stays_offline() {
        let c = MailConfig::from_toml_str(
            "[dns]\nnameservers = [\"192.0.2.53:53\"]\n[auth]\n\
             trusted_arc_sealers = [\"lists.example.net\"]\n",
        )
        .unwrap();
        assert_eq!(c.dns.as_ref().unwrap().nameservers, ["192.0.2.53:53"]);
        // The scanner never builds a resolver: no authentication symbol, however long the
        // (unreachable) nameserver would take.
        let r = crate::Scanner::new(c, None)
            .unwrap()
            .scan(b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n");
        assert!(r.symbols.iter().all(|s| !s.name.starts_with("SPF_")
            && !s.name.starts_with("DKIM_")
            && !s.name.starts_with("DMARC_")));
        for bad in [
            "[auth]\ntrusted_arc_sealers = [\"a b\"]\n",
            "[auth]\ntimeout = \"soon\"\n",
            "[dns]\nnameservers = []\n",
        ] {
            assert!(MailConfig::from_toml_str(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn additions_go_on_top() {
        let a = Additions {
            fields: "Authentication-Results: mx.x; none\r\n".into(),
            remove_auth_results_of: Some("mx.x".into()),
        };
        assert_eq!(
            a.apply(b"Received: y\r\nAuthentication-Results: mx.x; dkim=pass\r\n\r\nbody".to_vec()),
            b"Authentication-Results: mx.x; none\r\nReceived: y\r\n\r\nbody".to_vec()
        );
    }

    #[test]
    fn forged_auth_results_of_our_id_go_and_others_stay() {
        let raw = b"Authentication-Results: mx.ours.example; dkim=pass\r\n\theader.d=x\r\nSubject: a\r\nauthentication-results: other.example; spf=pass\r\n\r\nAuthentication-Results: mx.ours.example; body\r\n";
        let out = strip_auth_results(raw, "mx.ours.example");
        assert_eq!(
            out,
            b"Subject: a\r\nauthentication-results: other.example; spf=pass\r\n\r\nAuthentication-Results: mx.ours.example; body\r\n".to_vec()
        );
    }
}
