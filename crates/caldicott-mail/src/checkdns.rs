//! `caldicott mail check-dns`: which SPF, DKIM, DMARC, MTA-STS and TLS-RPT records a care
//! home should publish, what it publishes, and for each whether it is right, missing or wrong
//! and why.
//!
//! [`check`] fetches the records through the `[dns]` resolver (the domain's TXT and MX, SPF
//! includes and redirects to count lookups, `_dmarc`, `<selector>._domainkey`, `_mta-sts`,
//! `_smtp._tls`) into a [`Fetched`]; [`analyse`] is the pure judgement of those records,
//! tested without a network; [`render_text`] and the JSON form ([`CheckReport`] is
//! `Serialize`) present it. The MTA-STS policy file itself is served over HTTPS and is not
//! fetched: the report gives its exact text to publish.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use mail_auth::hickory_resolver::proto::rr::{Name, RData, RecordType};
use serde::Serialize;

use crate::config::ConfigError;
use crate::dkim_sign::{SigningKey, rsa_modulus_bits};
use crate::dns::DnsConfig;

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// The mail domain, e.g. `sunnyvale-care.co.uk`.
    pub domain: String,
    /// The DKIM selector to check (`<selector>._domainkey.<domain>`).
    pub selector: Option<String>,
    /// The gateway's public host name (the MX, and what SPF must allow).
    pub mx_host: Option<String>,
    /// The DKIM private key (PEM) the gateway signs with: the published key must match it.
    pub dkim_key_pem: Option<Vec<u8>>,
    /// Where DMARC aggregate reports should go (default `dmarc-reports@<domain>`).
    pub rua: Option<String>,
}

/// How one record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Published and right.
    Ok,
    /// Published, works, but could be better.
    Warning,
    /// Not checked (e.g. no selector given).
    NotChecked,
    /// Not published.
    Missing,
    /// Published but wrong.
    Wrong,
    /// The lookup failed; try again.
    DnsError,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::NotChecked => "NOT CHECKED",
            Status::Missing => "MISSING",
            Status::Wrong => "WRONG",
            Status::DnsError => "DNS ERROR",
        }
    }
}

/// One finding about one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `spf`, `dkim`, `dmarc`, `mta-sts`, `tls-rpt` or `mx`.
    pub kind: &'static str,
    /// The DNS name.
    pub name: String,
    pub status: Status,
    /// Why, in words a site administrator can act on.
    pub why: String,
    /// What is published there (TXT text or MX hosts).
    pub published: Vec<String>,
    /// The record to publish (exact TXT text), when there is a recommendation.
    pub publish: Option<String>,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub domain: String,
    pub findings: Vec<Finding>,
    /// The MTA-STS policy file to serve at `https://mta-sts.<domain>/.well-known/mta-sts.txt`.
    pub mta_sts_policy: Option<String>,
}

impl CheckReport {
    /// True when nothing is missing, wrong or unresolved (warnings allowed).
    pub fn passes(&self) -> bool {
        self.findings
            .iter()
            .all(|f| matches!(f.status, Status::Ok | Status::Warning | Status::NotChecked))
    }
}

/// A lookup's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Records(Vec<String>),
    /// NXDOMAIN or no records of the type.
    None,
    /// Timeout, SERVFAIL and the like.
    Error(String),
}

impl Answer {
    fn records(&self) -> &[String] {
        match self {
            Answer::Records(r) => r,
            _ => &[],
        }
    }
}

/// Every record [`analyse`] reads, by (lowercase) DNS name.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub txt: BTreeMap<String, Answer>,
    pub mx: BTreeMap<String, Answer>,
}

impl Fetched {
    fn txt(&self, name: &str) -> Answer {
        self.txt.get(name).cloned().unwrap_or(Answer::None)
    }
}

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0:?} is not a domain name")]
    Domain(String),
    #[error("--dkim-key: {0}")]
    Key(String),
}

/// The SPF mechanisms and modifiers that cost a DNS lookup (RFC 7208 §4.6.4).
fn spf_lookup_targets(record: &str, domain: &str) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut follow = Vec::new();
    for term in record.split_ascii_whitespace().skip(1) {
        let t = term
            .trim_start_matches(['+', '-', '~', '?'])
            .to_ascii_lowercase();
        let (name, arg) = match t.split_once([':', '=']) {
            Some((n, a)) => (n.to_owned(), Some(a.to_owned())),
            None => (t.split('/').next().unwrap_or("").to_owned(), None),
        };
        match name.as_str() {
            "include" | "redirect" => {
                count += 1;
                if let Some(a) = arg.filter(|a| !a.contains('%')) {
                    follow.push(a.trim_end_matches('.').to_owned());
                }
            }
            "a" | "mx" | "ptr" | "exists" => count += 1,
            _ => {}
        }
    }
    let _ = domain;
    (count, follow)
}

fn spf_records(answer: &Answer) -> Vec<&String> {
    answer
        .records()
        .iter()
        .filter(|r| {
            let l = r.to_ascii_lowercase();
            l == "v=spf1" || l.starts_with("v=spf1 ")
        })
        .collect()
}

/// Total lookups of `domain`'s SPF, includes and redirects followed (each name once).
fn count_spf_lookups(fetched: &Fetched, domain: &str) -> usize {
    let mut total = 0;
    let mut queue = VecDeque::from([domain.to_owned()]);
    let mut seen = std::collections::BTreeSet::new();
    while let Some(d) = queue.pop_front() {
        if !seen.insert(d.clone()) || seen.len() > 50 {
            continue;
        }
        if let Some(r) = spf_records(&fetched.txt(&d)).first() {
            let (n, follow) = spf_lookup_targets(r, &d);
            total += n;
            queue.extend(follow);
        }
    }
    total
}

/// The recommended SPF record.
pub fn recommended_spf(opts: &CheckOptions) -> String {
    match &opts.mx_host {
        Some(h) => format!("v=spf1 mx a:{h} -all"),
        None => "v=spf1 mx -all".into(),
    }
}

/// The recommended DMARC record.
pub fn recommended_dmarc(opts: &CheckOptions) -> String {
    let rua = opts
        .rua
        .clone()
        .unwrap_or_else(|| format!("dmarc-reports@{}", opts.domain));
    format!("v=DMARC1; p=quarantine; rua=mailto:{rua}")
}

fn tags(record: &str) -> BTreeMap<String, String> {
    record
        .split(';')
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect()
}

/// Judges what was fetched (pure).
pub fn analyse(opts: &CheckOptions, key: Option<&SigningKey>, fetched: &Fetched) -> CheckReport {
    let d = opts.domain.as_str();
    let mut findings = Vec::new();
    let mut add = |kind, name: &str, status, why: String, published: &[String], publish: &str| {
        findings.push(Finding {
            kind,
            name: name.to_owned(),
            status,
            why,
            published: published.to_vec(),
            publish: (!publish.is_empty()).then(|| publish.to_owned()),
        })
    };

    // SPF
    let spf_publish = recommended_spf(opts);
    let answer = fetched.txt(d);
    let spf = spf_records(&answer);
    let published: Vec<String> = spf.iter().map(|s| s.to_string()).collect();
    if let Answer::Error(e) = &answer {
        add(
            "spf",
            d,
            Status::DnsError,
            format!("lookup failed: {e}"),
            &[],
            &spf_publish,
        );
    } else if spf.is_empty() {
        add(
            "spf",
            d,
            Status::Missing,
            "no SPF record: receivers cannot tell which servers may send as the domain".into(),
            &[],
            &spf_publish,
        );
    } else if spf.len() > 1 {
        add(
            "spf",
            d,
            Status::Wrong,
            format!(
                "{} SPF records: more than one is a permanent error (merge them into one)",
                spf.len()
            ),
            &published,
            &spf_publish,
        );
    } else {
        let r = spf[0].to_ascii_lowercase();
        let mut problems = 0;
        let terms: Vec<&str> = r.split_ascii_whitespace().collect();
        let all = terms
            .iter()
            .find(|t| t.trim_start_matches(['+', '-', '~', '?']) == "all");
        match all {
            Some(t) if *t == "all" || *t == "+all" => {
                add(
                    "spf",
                    d,
                    Status::Wrong,
                    format!("{t}: anyone on the internet may send as {d} (use -all)"),
                    &published,
                    &spf_publish,
                );
                problems += 1;
            }
            Some(&"?all") => {
                add(
                    "spf",
                    d,
                    Status::Wrong,
                    "?all: says nothing about other servers (use -all)".into(),
                    &published,
                    &spf_publish,
                );
                problems += 1;
            }
            Some(&"~all") => {
                add(
                    "spf",
                    d,
                    Status::Warning,
                    "~all: others only soft-fail; -all is stronger once every sender is listed"
                        .into(),
                    &published,
                    &spf_publish,
                );
                problems += 1;
            }
            Some(_) => {}
            None if !r.contains("redirect=") => {
                add(
                    "spf",
                    d,
                    Status::Warning,
                    "no 'all' at the end: other servers are neutral (end with -all)".into(),
                    &published,
                    &spf_publish,
                );
                problems += 1;
            }
            None => {}
        }
        let lookups = count_spf_lookups(fetched, d);
        if lookups > 10 {
            add(
                "spf",
                d,
                Status::Wrong,
                format!(
                    "{lookups} DNS lookups (include, a, mx, ptr, exists, redirect): over the limit of 10, so SPF fails with a permanent error"
                ),
                &published,
                &spf_publish,
            );
            problems += 1;
        }
        if terms.iter().any(|t| {
            t.trim_start_matches(['+', '-', '~', '?'])
                .starts_with("ptr")
        }) {
            add(
                "spf",
                d,
                Status::Warning,
                "uses ptr, which RFC 7208 says not to use (slow, unreliable)".into(),
                &published,
                &spf_publish,
            );
            problems += 1;
        }
        if let Some(h) = &opts.mx_host {
            let h = h.to_ascii_lowercase();
            let covered = terms.iter().any(|t| {
                let t = t.trim_start_matches('+');
                t == "mx"
                    || t == format!("a:{h}")
                    || t.starts_with("include:")
                    || t.starts_with("ip4:")
                    || t.starts_with("ip6:")
                    || r.contains("redirect=")
            });
            if !covered {
                add(
                    "spf",
                    d,
                    Status::Wrong,
                    format!("does not allow the gateway {h} (add mx or a:{h})"),
                    &published,
                    &spf_publish,
                );
                problems += 1;
            }
        }
        if problems == 0 {
            add(
                "spf",
                d,
                Status::Ok,
                format!("one record, {lookups} lookups, ends -all"),
                &published,
                "",
            );
        }
    }

    // DKIM
    let dkim_publish = key.map(|k| k.dns_record()).unwrap_or_default();
    match &opts.selector {
        None => {
            let why = "give --selector (and --dkim-key) to check the DKIM key".to_owned();
            add(
                "dkim",
                &format!("<selector>._domainkey.{d}"),
                Status::NotChecked,
                why,
                &[],
                &dkim_publish,
            );
        }
        Some(sel) => {
            let name = format!("{sel}._domainkey.{d}");
            let answer = fetched.txt(&name);
            let recs: Vec<String> = answer
                .records()
                .iter()
                .filter(|r| r.contains("p="))
                .cloned()
                .collect();
            if let Answer::Error(e) = &answer {
                add(
                    "dkim",
                    &name,
                    Status::DnsError,
                    format!("lookup failed: {e}"),
                    &[],
                    &dkim_publish,
                );
            } else if recs.is_empty() {
                add(
                    "dkim",
                    &name,
                    Status::Missing,
                    "no DKIM key record: signatures with this selector cannot be verified".into(),
                    answer.records(),
                    &dkim_publish,
                );
            } else {
                let t = tags(&recs[0]);
                let k = t
                    .get("k")
                    .map(|s| s.to_ascii_lowercase())
                    .unwrap_or_else(|| "rsa".into());
                let p = t.get("p").cloned().unwrap_or_default();
                let p: String = p.split_ascii_whitespace().collect();
                let der = base64::engine::general_purpose::STANDARD.decode(p.as_bytes());
                let mut problems = 0;
                if recs.len() > 1 {
                    add(
                        "dkim",
                        &name,
                        Status::Wrong,
                        format!(
                            "{} key records at one selector: verifiers pick one at random",
                            recs.len()
                        ),
                        &recs,
                        &dkim_publish,
                    );
                    problems += 1;
                }
                if t.get("v").is_some_and(|v| v != "DKIM1") {
                    add(
                        "dkim",
                        &name,
                        Status::Wrong,
                        "v= must be DKIM1".into(),
                        &recs,
                        &dkim_publish,
                    );
                    problems += 1;
                }
                match (&der, k.as_str()) {
                    (_, _) if p.is_empty() => {
                        add(
                            "dkim",
                            &name,
                            Status::Wrong,
                            "p= is empty: the key is revoked".into(),
                            &recs,
                            &dkim_publish,
                        );
                        problems += 1;
                    }
                    (Err(_), _) => {
                        add(
                            "dkim",
                            &name,
                            Status::Wrong,
                            "p= is not valid base64".into(),
                            &recs,
                            &dkim_publish,
                        );
                        problems += 1;
                    }
                    (Ok(der), "rsa") => match rsa_modulus_bits(der) {
                        None => {
                            add(
                                "dkim",
                                &name,
                                Status::Wrong,
                                "p= is not an RSA public key".into(),
                                &recs,
                                &dkim_publish,
                            );
                            problems += 1;
                        }
                        Some(bits) if bits < 1024 => {
                            add(
                                "dkim",
                                &name,
                                Status::Wrong,
                                format!(
                                    "RSA key of {bits} bits is too short: receivers ignore keys under 1024 bits (use 2048)"
                                ),
                                &recs,
                                &dkim_publish,
                            );
                            problems += 1;
                        }
                        Some(bits) if bits < 2048 => {
                            add(
                                "dkim",
                                &name,
                                Status::Warning,
                                format!("RSA key of {bits} bits: 2048 is recommended"),
                                &recs,
                                &dkim_publish,
                            );
                            problems += 1;
                        }
                        Some(_) => {}
                    },
                    (Ok(der), "ed25519") if der.len() != 32 => {
                        add(
                            "dkim",
                            &name,
                            Status::Wrong,
                            "an Ed25519 key is 32 bytes".into(),
                            &recs,
                            &dkim_publish,
                        );
                        problems += 1;
                    }
                    (Ok(_), "ed25519") => {}
                    (Ok(_), other) => {
                        add(
                            "dkim",
                            &name,
                            Status::Wrong,
                            format!("k={other} is not a DKIM key type (rsa or ed25519)"),
                            &recs,
                            &dkim_publish,
                        );
                        problems += 1;
                    }
                }
                if t.get("t")
                    .is_some_and(|v| v.split(':').any(|f| f.trim() == "y"))
                {
                    add(
                        "dkim",
                        &name,
                        Status::Warning,
                        "t=y: testing mode, receivers may treat signatures as unsigned".into(),
                        &recs,
                        &dkim_publish,
                    );
                    problems += 1;
                }
                if let (Some(key), Ok(der)) = (key, &der)
                    && !p.is_empty()
                    && der.as_slice() != key.public_key()
                {
                    add("dkim", &name, Status::Wrong, "the published key does not match --dkim-key: the gateway's signatures will fail".into(), &recs, &dkim_publish);
                    problems += 1;
                }
                if problems == 0 {
                    let size = match der.as_ref().ok().and_then(|d| rsa_modulus_bits(d)) {
                        Some(b) if k == "rsa" => format!("{b}-bit RSA key"),
                        _ => format!("{k} key"),
                    };
                    let m = if key.is_some() {
                        ", matches --dkim-key"
                    } else {
                        ""
                    };
                    add("dkim", &name, Status::Ok, format!("{size}{m}"), &recs, "");
                }
            }
        }
    }

    // DMARC
    let dmarc_publish = recommended_dmarc(opts);
    let name = format!("_dmarc.{d}");
    let answer = fetched.txt(&name);
    let recs: Vec<String> = answer
        .records()
        .iter()
        .filter(|r| r.trim_start().to_ascii_lowercase().starts_with("v=dmarc1"))
        .cloned()
        .collect();
    if let Answer::Error(e) = &answer {
        add(
            "dmarc",
            &name,
            Status::DnsError,
            format!("lookup failed: {e}"),
            &[],
            &dmarc_publish,
        );
    } else if recs.is_empty() {
        add(
            "dmarc",
            &name,
            Status::Missing,
            "no DMARC record: receivers apply no policy to mail forged in the domain's name".into(),
            answer.records(),
            &dmarc_publish,
        );
    } else if recs.len() > 1 {
        add(
            "dmarc",
            &name,
            Status::Wrong,
            format!("{} DMARC records: receivers ignore them all", recs.len()),
            &recs,
            &dmarc_publish,
        );
    } else {
        let t = tags(&recs[0]);
        let mut problems = 0;
        match t.get("p").map(|p| p.to_ascii_lowercase()).as_deref() {
            Some("reject") | Some("quarantine") => {}
            Some("none") => {
                add("dmarc", &name, Status::Wrong, "p=none: monitoring only, mail forged in the domain's name is still delivered (use p=quarantine, then p=reject)".into(), &recs, &dmarc_publish);
                problems += 1;
            }
            Some(other) => {
                add(
                    "dmarc",
                    &name,
                    Status::Wrong,
                    format!("p={other} is not a policy (none, quarantine, reject)"),
                    &recs,
                    &dmarc_publish,
                );
                problems += 1;
            }
            None => {
                add(
                    "dmarc",
                    &name,
                    Status::Wrong,
                    "no p= tag: no policy applies".into(),
                    &recs,
                    &dmarc_publish,
                );
                problems += 1;
            }
        }
        if t.get("sp").is_some_and(|s| s.eq_ignore_ascii_case("none")) {
            add(
                "dmarc",
                &name,
                Status::Warning,
                "sp=none: subdomains can be forged freely".into(),
                &recs,
                &dmarc_publish,
            );
            problems += 1;
        }
        if let Some(pct) = t.get("pct").and_then(|p| p.parse::<u32>().ok())
            && pct < 100
        {
            add(
                "dmarc",
                &name,
                Status::Warning,
                format!("pct={pct}: the policy applies to only {pct}% of failing mail"),
                &recs,
                &dmarc_publish,
            );
            problems += 1;
        }
        if !t.contains_key("rua") {
            add(
                "dmarc",
                &name,
                Status::Warning,
                "no rua=: you receive no reports of who sends as the domain".into(),
                &recs,
                &dmarc_publish,
            );
            problems += 1;
        }
        if problems == 0 {
            let p = t.get("p").cloned().unwrap_or_default();
            add(
                "dmarc",
                &name,
                Status::Ok,
                format!("p={p} with reports"),
                &recs,
                "",
            );
        }
    }

    // MTA-STS (RFC 8461)
    let sts_id = "20260101000000";
    let sts_publish = format!("v=STSv1; id={sts_id}");
    let name = format!("_mta-sts.{d}");
    let answer = fetched.txt(&name);
    let recs: Vec<String> = answer
        .records()
        .iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"))
        .cloned()
        .collect();
    let policy_note = format!(
        "(the policy file at https://mta-sts.{d}/.well-known/mta-sts.txt is served over HTTPS and not checked here)"
    );
    if let Answer::Error(e) = &answer {
        add(
            "mta-sts",
            &name,
            Status::DnsError,
            format!("lookup failed: {e}"),
            &[],
            &sts_publish,
        );
    } else if recs.is_empty() {
        add(
            "mta-sts",
            &name,
            Status::Missing,
            format!(
                "no MTA-STS policy: senders may deliver to the domain without TLS or to a forged MX {policy_note}"
            ),
            answer.records(),
            &sts_publish,
        );
    } else if recs.len() > 1 {
        add(
            "mta-sts",
            &name,
            Status::Wrong,
            format!("{} MTA-STS records: senders ignore them all", recs.len()),
            &recs,
            &sts_publish,
        );
    } else {
        let t = tags(&recs[0]);
        match t.get("id") {
            Some(id)
                if !id.is_empty()
                    && id.len() <= 32
                    && id.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                add(
                    "mta-sts",
                    &name,
                    Status::Ok,
                    format!("id={id} {policy_note}"),
                    &recs,
                    "",
                );
            }
            _ => add(
                "mta-sts",
                &name,
                Status::Wrong,
                "id= must be 1 to 32 letters and digits (change it whenever the policy changes)"
                    .into(),
                &recs,
                &sts_publish,
            ),
        }
    }

    // TLS-RPT (RFC 8460)
    let rpt_publish = format!("v=TLSRPTv1; rua=mailto:tls-reports@{d}");
    let name = format!("_smtp._tls.{d}");
    let answer = fetched.txt(&name);
    let recs: Vec<String> = answer
        .records()
        .iter()
        .filter(|r| r.trim_start().starts_with("v=TLSRPTv1"))
        .cloned()
        .collect();
    if let Answer::Error(e) = &answer {
        add(
            "tls-rpt",
            &name,
            Status::DnsError,
            format!("lookup failed: {e}"),
            &[],
            &rpt_publish,
        );
    } else if recs.is_empty() {
        add(
            "tls-rpt",
            &name,
            Status::Warning,
            "no TLS-RPT record: you will not hear when senders fail to reach you over TLS".into(),
            &[],
            &rpt_publish,
        );
    } else if !tags(&recs[0]).contains_key("rua") {
        add(
            "tls-rpt",
            &name,
            Status::Wrong,
            "no rua=: reports have nowhere to go".into(),
            &recs,
            &rpt_publish,
        );
    } else {
        add(
            "tls-rpt",
            &name,
            Status::Ok,
            "reports requested".into(),
            &recs,
            "",
        );
    }

    // MX
    if let Some(h) = &opts.mx_host {
        let h = h.trim_end_matches('.').to_ascii_lowercase();
        let answer = fetched.mx.get(d).cloned().unwrap_or(Answer::None);
        let hosts = answer.records().to_vec();
        let publish = format!("10 {h}.");
        match &answer {
            Answer::Error(e) => add(
                "mx",
                d,
                Status::DnsError,
                format!("lookup failed: {e}"),
                &[],
                &publish,
            ),
            _ if hosts.is_empty() => add(
                "mx",
                d,
                Status::Missing,
                "no MX record: mail goes to the domain's A record, if any".into(),
                &[],
                &publish,
            ),
            _ if hosts
                .iter()
                .any(|m| m.trim_end_matches('.').eq_ignore_ascii_case(&h)) =>
            {
                add("mx", d, Status::Ok, format!("{h} is an MX"), &hosts, "")
            }
            _ => add(
                "mx",
                d,
                Status::Wrong,
                format!("{h} is not among the MX hosts: mail does not reach the gateway"),
                &hosts,
                &publish,
            ),
        }
    }

    let mta_sts_policy = Some(format!(
        "version: STSv1\nmode: enforce\nmx: {}\nmax_age: 604800\n",
        opts.mx_host.as_deref().unwrap_or("<your MX host>")
    ));
    CheckReport {
        domain: d.to_owned(),
        findings,
        mta_sts_policy,
    }
}

async fn lookup(
    resolver: &mail_auth::MessageAuthenticator,
    name: &str,
    kind: RecordType,
) -> Answer {
    let Ok(n) = Name::from_str_relaxed(format!("{}.", name.trim_end_matches('.'))) else {
        return Answer::Error(format!("{name:?} is not a DNS name"));
    };
    match resolver.resolver().lookup(n, kind).await {
        Ok(l) => Answer::Records(
            l.answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => Some(
                        t.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect::<String>(),
                    ),
                    RData::MX(m) => Some(m.exchange.to_ascii()),
                    _ => None,
                })
                .collect(),
        ),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Answer::None,
        Err(e) => Answer::Error(e.to_string()),
    }
}

/// Fetches what [`analyse`] needs and judges it.
pub async fn check(dns: &DnsConfig, opts: &CheckOptions) -> Result<CheckReport, CheckError> {
    let domain = opts
        .domain
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if domain.is_empty()
        || !domain.contains('.')
        || !domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err(CheckError::Domain(opts.domain.clone()));
    }
    let opts = CheckOptions {
        domain: domain.clone(),
        ..opts.clone()
    };
    let key = match &opts.dkim_key_pem {
        Some(pem) => Some(
            SigningKey::from_pem(
                &domain,
                opts.selector.as_deref().unwrap_or("selector"),
                pem,
                Path::new("--dkim-key"),
            )
            .map_err(|e| CheckError::Key(e.to_string()))?,
        ),
        None => None,
    };
    let resolver = dns.authenticator()?;
    let mut f = Fetched::default();
    let mut names = vec![
        format!("_dmarc.{domain}"),
        format!("_mta-sts.{domain}"),
        format!("_smtp._tls.{domain}"),
    ];
    if let Some(s) = &opts.selector {
        names.push(format!("{s}._domainkey.{domain}"));
    }
    for n in names {
        let a = lookup(&resolver, &n, RecordType::TXT).await;
        f.txt.insert(n, a);
    }
    // SPF with its includes and redirects, breadth first, each name once (bounded).
    let mut queue = VecDeque::from([domain.clone()]);
    while let Some(n) = queue.pop_front() {
        if f.txt.contains_key(&n) || f.txt.len() > 60 {
            continue;
        }
        let a = lookup(&resolver, &n, RecordType::TXT).await;
        if let Some(r) = spf_records(&a).first() {
            queue.extend(spf_lookup_targets(r, &n).1);
        }
        f.txt.insert(n, a);
    }
    if opts.mx_host.is_some() {
        let a = lookup(&resolver, &domain, RecordType::MX).await;
        f.mx.insert(domain.clone(), a);
    }
    Ok(analyse(&opts, key.as_ref(), &f))
}

/// The report for a person.
pub fn render_text(r: &CheckReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "DNS records for {}\n", r.domain);
    for f in &r.findings {
        let _ = writeln!(
            out,
            "[{}] {} {}",
            f.status.label(),
            f.kind.to_uppercase(),
            f.name
        );
        let _ = writeln!(out, "    {}", f.why);
        for p in &f.published {
            let _ = writeln!(out, "    published: \"{p}\"");
        }
        if let Some(p) = &f.publish {
            let kind = if f.kind == "mx" { "MX" } else { "TXT" };
            let _ = writeln!(out, "    publish:   {} {kind} \"{p}\"", f.name);
        }
    }
    if let Some(p) = &r.mta_sts_policy {
        let _ = writeln!(
            out,
            "\nMTA-STS policy file, served at https://mta-sts.{}/.well-known/mta-sts.txt:\n",
            r.domain
        );
        for l in p.lines() {
            let _ = writeln!(out, "    {l}");
        }
    }
    let _ = writeln!(
        out,
        "\n{}",
        if r.passes() {
            "Nothing missing or wrong."
        } else {
            "Some records are missing or wrong: publish the records shown."
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(txt: &[(&str, &[&str])]) -> Fetched {
        let mut f = Fetched::default();
        for (n, r) in txt {
            f.txt.insert(
                n.to_string(),
                Answer::Records(r.iter().map(|s| s.to_string()).collect()),
            );
        }
        f
    }

    fn opts() -> CheckOptions {
        CheckOptions {
            domain: "care.example".into(),
            ..CheckOptions::default()
        }
    }

    #[test]
    fn spf_lookups_are_counted_through_includes() {
        let f = fetched(&[
            (
                "care.example",
                &["v=spf1 mx a include:a.example redirect=b.example"],
            ),
            (
                "a.example",
                &["v=spf1 include:c.example ip4:192.0.2.1 -all"],
            ),
            ("b.example", &["v=spf1 exists:%{i}.x.example -all"]),
            ("c.example", &["v=spf1 a:h.example ~all"]),
        ]);
        // care: mx, a, include, redirect (4); a: include (1); b: exists (1); c: a (1).
        assert_eq!(count_spf_lookups(&f, "care.example"), 7);
    }

    #[test]
    fn several_spf_records_and_missing_records_are_reported() {
        let f = fetched(&[("care.example", &["v=spf1 -all", "v=spf1 mx -all"])]);
        let r = analyse(&opts(), None, &f);
        let spf: Vec<_> = r.findings.iter().filter(|x| x.kind == "spf").collect();
        assert_eq!(spf[0].status, Status::Wrong);
        assert!(spf[0].why.contains("2 SPF records"));
        let dmarc = r.findings.iter().find(|x| x.kind == "dmarc").unwrap();
        assert_eq!(dmarc.status, Status::Missing);
        assert_eq!(
            dmarc.publish.as_deref(),
            Some("v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@care.example")
        );
        assert!(!r.passes());
    }
}
