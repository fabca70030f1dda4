//! The per-site statistical classifier: Robinson's per-token probabilities combined with
//! Fisher's chi-square method (as SpamBayes does), over hashed features of the subject,
//! selected headers, links and the decoded body text.
//!
//! Features are 32-bit hashes, so the model stores no words: only, for each feature seen at
//! least `min_count` times in training, in how many ham and spam messages it occurred. The
//! file is a sorted table of varint-coded deltas (see [`BayesModel::to_bytes`]).

use std::collections::HashMap;

use mail_parser::{HeaderValue, MimeHeaders};

use crate::check::{Check, Symbols};
use crate::domains;
use crate::mail::Mail;
use crate::symbols::{BAYES_HAM, BAYES_SPAM};

/// Why a model file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("not a Caldicott mail model (bad magic)")]
    Magic,
    #[error("model format version {0} is not supported (this build reads {FORMAT_VERSION})")]
    Version(u8),
    #[error(
        "model was trained with tokenizer version {0}; this build uses {TOKENIZER_VERSION}: retrain it"
    )]
    Tokenizer(u8),
    #[error("model file is truncated or corrupt")]
    Corrupt,
    #[error("model checksum does not match: the file is damaged")]
    Checksum,
}

const MAGIC: &[u8; 8] = b"CALDBAYS";
const FORMAT_VERSION: u8 = 1;
/// Bumped whenever [`features`] changes, so an old model is refused rather than misread.
pub const TOKENIZER_VERSION: u8 = 2;

/// Robinson's strength of the prior for rare tokens, and the prior itself.
const PRIOR_STRENGTH: f64 = 0.45;
const PRIOR: f64 = 0.5;
/// Tokens nearer 0.5 than this are ignored.
const MIN_STRENGTH: f64 = 0.1;
/// Most tokens combined (the most extreme ones).
const MAX_CLUES: usize = 150;

/// A trained model: per feature, the number of ham and spam training messages containing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BayesModel {
    nham: u32,
    nspam: u32,
    hashes: Vec<u32>,
    counts: Vec<(u32, u32)>,
    /// Open-addressing table (hash, ham, spam) for lookups: a binary search over the sorted
    /// rows cost a cache miss per step.
    slots: Vec<(u32, u32, u32)>,
}

/// The classifier's opinion of one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classification {
    /// Spam probability in 0..=1 (0.5 when there is no evidence).
    pub probability: f64,
    /// How many tokens were combined.
    pub clues: usize,
    /// Fisher's spam and ham evidence (each 0..=1); the probability is `(s - h + 1) / 2`.
    pub spam_evidence: f64,
    pub ham_evidence: f64,
}

impl BayesModel {
    /// Ham and spam messages trained on.
    pub fn trained(&self) -> (u32, u32) {
        (self.nham, self.nspam)
    }

    /// Features stored.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    fn new(nham: u32, nspam: u32, hashes: Vec<u32>, counts: Vec<(u32, u32)>) -> Self {
        let cap = (hashes.len() * 2).next_power_of_two().max(1);
        let mut slots = vec![(0u32, 0u32, 0u32); cap];
        for (&h, &(ham, spam)) in hashes.iter().zip(&counts) {
            if ham == 0 && spam == 0 {
                continue;
            }
            let mut i = slot_of(h, cap);
            while slots[i].1 != 0 || slots[i].2 != 0 {
                i = (i + 1) & (cap - 1);
            }
            slots[i] = (h, ham, spam);
        }
        Self {
            nham,
            nspam,
            hashes,
            counts,
            slots,
        }
    }

    fn lookup(&self, h: u32) -> Option<(u32, u32)> {
        let mask = self.slots.len() - 1;
        let mut i = slot_of(h, self.slots.len());
        loop {
            let (k, ham, spam) = self.slots[i];
            if ham == 0 && spam == 0 {
                return None;
            }
            if k == h {
                return Some((ham, spam));
            }
            i = (i + 1) & mask;
        }
    }

    /// Classifies a message's feature set (sorted, deduplicated, as [`features`] returns it).
    pub fn classify(&self, features: &[u32]) -> Classification {
        let none = Classification {
            probability: 0.5,
            clues: 0,
            spam_evidence: 0.0,
            ham_evidence: 0.0,
        };
        if self.nham == 0 || self.nspam == 0 {
            return none;
        }
        let (nham, nspam) = (f64::from(self.nham), f64::from(self.nspam));
        let mut probs: Vec<f64> = features
            .iter()
            .filter_map(|&f| {
                let (h, s) = self.lookup(f)?;
                let hr = (f64::from(h) / nham).min(1.0);
                let sr = (f64::from(s) / nspam).min(1.0);
                let p = sr / (hr + sr);
                let n = f64::from(h) + f64::from(s);
                let p = (PRIOR_STRENGTH * PRIOR + n * p) / (PRIOR_STRENGTH + n);
                ((p - 0.5).abs() >= MIN_STRENGTH).then_some(p)
            })
            .collect();
        if probs.is_empty() {
            return none;
        }
        if probs.len() > MAX_CLUES {
            probs.sort_by(|a, b| (b - 0.5).abs().total_cmp(&(a - 0.5).abs()));
            probs.truncate(MAX_CLUES);
        }
        let n = probs.len();
        let (mut ln_ham, mut ln_spam) = (0.0, 0.0);
        for p in &probs {
            let p = p.clamp(1e-6, 1.0 - 1e-6);
            ln_ham += p.ln();
            ln_spam += (1.0 - p).ln();
        }
        let s = 1.0 - chi2q(-2.0 * ln_spam, 2 * n);
        let h = 1.0 - chi2q(-2.0 * ln_ham, 2 * n);
        Classification {
            probability: ((s - h + 1.0) / 2.0).clamp(0.0, 1.0),
            clues: n,
            spam_evidence: s,
            ham_evidence: h,
        }
    }

    /// The model file: `CALDBAYS`, format version, tokenizer version, ham and spam counts
    /// (u32 LE), feature count (u32 LE), then per feature (ascending) the varint delta of its
    /// hash and varints of its ham and spam counts, then an FNV-1a-64 checksum (LE) of all
    /// that precedes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(22 + self.hashes.len() * 5);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(TOKENIZER_VERSION);
        out.extend_from_slice(&self.nham.to_le_bytes());
        out.extend_from_slice(&self.nspam.to_le_bytes());
        out.extend_from_slice(
            &u32::try_from(self.hashes.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        let mut prev = 0u32;
        for (h, (ham, spam)) in self.hashes.iter().zip(&self.counts) {
            put_varint(&mut out, h - prev);
            put_varint(&mut out, *ham);
            put_varint(&mut out, *spam);
            prev = *h;
        }
        let sum = fnv1a(0, &out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Reads a model file, checking its magic, versions, order and checksum.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ModelError> {
        if b.len() < 8 || &b[..8] != MAGIC {
            return Err(ModelError::Magic);
        }
        if b.len() < 30 {
            return Err(ModelError::Corrupt);
        }
        if b[8] != FORMAT_VERSION {
            return Err(ModelError::Version(b[8]));
        }
        if b[9] != TOKENIZER_VERSION {
            return Err(ModelError::Tokenizer(b[9]));
        }
        let (body, sum) = b.split_at(b.len() - 8);
        let sum = u64::from_le_bytes(sum.try_into().map_err(|_| ModelError::Corrupt)?);
        if fnv1a(0, body) != sum {
            return Err(ModelError::Checksum);
        }
        let u32_at = |i: usize| -> Result<u32, ModelError> {
            let s = body.get(i..i + 4).ok_or(ModelError::Corrupt)?;
            Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        };
        let nham = u32_at(10)?;
        let nspam = u32_at(14)?;
        let n = u32_at(18)? as usize;
        if n > body.len() {
            return Err(ModelError::Corrupt);
        }
        let mut pos = 22;
        let mut hashes = Vec::with_capacity(n);
        let mut counts = Vec::with_capacity(n);
        let mut prev = 0u32;
        for i in 0..n {
            let d = get_varint(body, &mut pos)?;
            let h = prev.checked_add(d).ok_or(ModelError::Corrupt)?;
            if i > 0 && d == 0 {
                return Err(ModelError::Corrupt);
            }
            let ham = get_varint(body, &mut pos)?;
            let spam = get_varint(body, &mut pos)?;
            hashes.push(h);
            counts.push((ham, spam));
            prev = h;
        }
        if pos != body.len() {
            return Err(ModelError::Corrupt);
        }
        Ok(Self::new(nham, nspam, hashes, counts))
    }
}

/// Accumulates training messages.
#[derive(Debug, Default, Clone)]
pub struct Trainer {
    nham: u32,
    nspam: u32,
    counts: HashMap<u32, (u32, u32)>,
}

impl Trainer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one message's features (see [`features`]); each counts once per message.
    pub fn add(&mut self, features: &[u32], spam: bool) {
        if spam {
            self.nspam = self.nspam.saturating_add(1);
        } else {
            self.nham = self.nham.saturating_add(1);
        }
        let mut prev = None;
        for &f in features {
            if prev == Some(f) {
                continue;
            }
            prev = Some(f);
            let c = self.counts.entry(f).or_default();
            if spam {
                c.1 = c.1.saturating_add(1);
            } else {
                c.0 = c.0.saturating_add(1);
            }
        }
    }

    /// Ham and spam messages added.
    pub fn trained(&self) -> (u32, u32) {
        (self.nham, self.nspam)
    }

    /// The model, keeping features seen in at least `min_count` messages (2 drops the
    /// one-off tokens, which carry little evidence and most of the size).
    pub fn finish(&self, min_count: u32) -> BayesModel {
        let mut rows: Vec<(u32, (u32, u32))> = self
            .counts
            .iter()
            .filter(|(_, (h, s))| h.saturating_add(*s) >= min_count)
            .map(|(k, v)| (*k, *v))
            .collect();
        rows.sort_unstable_by_key(|r| r.0);
        BayesModel::new(
            self.nham,
            self.nspam,
            rows.iter().map(|r| r.0).collect(),
            rows.iter().map(|r| r.1).collect(),
        )
    }
}

/// The classifier as a check: `BAYES_SPAM` (score ≥ 0) or `BAYES_HAM` (below), by
/// [`bayes_score`].
pub struct BayesCheck {
    model: BayesModel,
    min_trained: u32,
}

impl BayesCheck {
    pub fn new(model: BayesModel, min_trained: u32) -> Self {
        Self { model, min_trained }
    }
}

/// The classifier's score: `OFFSET + SLOPE · logit(p) / logit(1 − P_EDGE)`, with `p` held in
/// `[P_EDGE, 1 − P_EDGE]`. It is continuous in the probability, so messages keep the order the
/// classifier gives them when the rules' scores are added (a step mapping made ties of most of
/// the spam and ham near the threshold). 3.5 at an undecided 0.5 (a rule of 1.5 must agree to
/// reach the tag threshold 5), 5 at 0.97 (the classifier alone tags), 7.5 at 0.9999 and above;
/// 0 at about 0.0012 and −0.5 at the sure-ham end. Chosen on a 10-fold cross-validation
/// inside the train part of the corpus: see `docs/mail.md`.
const OFFSET: f64 = 3.5;
const SLOPE: f64 = 4.0;
const P_EDGE: f64 = 1e-4;
/// `BAYES_SPAM`'s and `BAYES_HAM`'s default weights: the score is emitted as a fraction of
/// them, so a site that changes a weight scales that side of the curve.
const SPAM_WEIGHT: f64 = 8.0;
const HAM_WEIGHT: f64 = -3.0;

/// The classifier's contribution to a message's score for a spam probability (see [`OFFSET`]).
pub fn bayes_score(probability: f64) -> f64 {
    let p = if probability.is_finite() {
        probability.clamp(P_EDGE, 1.0 - P_EDGE)
    } else {
        0.5
    };
    let edge = ((1.0 - P_EDGE) / P_EDGE).ln();
    OFFSET + SLOPE * (p / (1.0 - p)).ln() / edge
}

impl Check for BayesCheck {
    fn name(&self) -> &'static str {
        "bayes"
    }

    fn check(&self, mail: &Mail<'_>, out: &mut Symbols<'_>) {
        let (h, s) = self.model.trained();
        if h < self.min_trained || s < self.min_trained {
            return;
        }
        let c = self.model.classify(&features(mail));
        if c.clues < 5 {
            return;
        }
        let reason = || {
            format!(
                "spam probability {:.4} (spam evidence {:.4}, ham evidence {:.4}) from {} tokens",
                c.probability, c.spam_evidence, c.ham_evidence, c.clues
            )
        };
        let v = bayes_score(c.probability);
        if v >= 0.0 {
            out.add_graded(BAYES_SPAM, v / SPAM_WEIGHT, reason());
        } else {
            out.add_graded(BAYES_HAM, v / HAM_WEIGHT, reason());
        }
    }
}

// Feature kinds: the first byte hashed, so the same word in different places differs.
const K_SUBJECT: u8 = 1;
const K_BODY: u8 = 2;
const K_BIGRAM: u8 = 3;
const K_SKIP: u8 = 4;
const K_URL_HOST: u8 = 5;
const K_URL_DOMAIN: u8 = 6;
const K_HEADER_NAME: u8 = 7;
const K_FROM_ADDR: u8 = 8;
const K_FROM_DOMAIN: u8 = 9;
const K_FROM_NAME: u8 = 10;
const K_MAILER: u8 = 11;
const K_CTYPE: u8 = 12;
const K_CHARSET: u8 = 13;
const K_MSGID: u8 = 14;
const K_RECEIVED: u8 = 15;
const K_HTML_TAG: u8 = 16;
const K_ATTACH: u8 = 17;
const K_NUMBER: u8 = 18;
const K_CJK: u8 = 19;
const K_PART: u8 = 20;
const K_URL_PATH: u8 = 22;
const K_URL_SCHEME: u8 = 23;

/// Most body words tokenized per message.
const MAX_WORDS: usize = 5000;

/// The message's features, sorted and deduplicated.
pub fn features(mail: &Mail<'_>) -> Vec<u32> {
    let mut f = Vec::with_capacity(1024);
    words(&mail.subject, K_SUBJECT, false, &mut f);
    words(&mail.text, K_BODY, true, &mut f);
    let m = mail.message;
    if let Some(part) = m.parts.first() {
        for h in &part.headers {
            f.push(hash(
                K_HEADER_NAME,
                h.name().to_ascii_lowercase().as_bytes(),
            ));
        }
        if let Some(ct) = part.content_type() {
            let t = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""));
            f.push(hash(K_CTYPE, t.to_ascii_lowercase().as_bytes()));
            if let Some(cs) = ct.attribute("charset") {
                f.push(hash(K_CHARSET, cs.to_ascii_lowercase().as_bytes()));
            }
        }
    }
    if let Some(from) = &mail.from {
        if let Some(a) = &from.address {
            f.push(hash(K_FROM_ADDR, a.to_lowercase().as_bytes()));
        }
        if let Some(d) = &from.domain {
            f.push(hash(K_FROM_DOMAIN, d.as_bytes()));
            f.push(hash(K_FROM_DOMAIN, domains::registrable(d).as_bytes()));
        }
        if let Some(n) = &from.name {
            words(n, K_FROM_NAME, false, &mut f);
        }
    }
    if let Some(x) = crate::mail::header_text(m, "X-Mailer") {
        let x: String = x.chars().take(40).collect();
        f.push(hash(K_MAILER, x.to_ascii_lowercase().as_bytes()));
    }
    if let Some(id) = m.message_id() {
        f.push(hash(K_MSGID, shape(id).as_bytes()));
        if let Some((_, host)) = id.rsplit_once('@') {
            f.push(hash(
                K_MSGID,
                domains::registrable(&host.to_ascii_lowercase()).as_bytes(),
            ));
        }
    }
    for v in m.header_values("Received").take(3) {
        if let HeaderValue::Received(r) = v
            && let Some(host) = r.from()
        {
            let h = host.to_string().to_ascii_lowercase();
            f.push(hash(K_RECEIVED, domains::registrable(&h).as_bytes()));
        }
    }
    received_tokens(m, &mut f);
    for l in mail.links.iter().take(100) {
        if let Some(h) = &l.host {
            f.push(hash(K_URL_HOST, h.as_bytes()));
            f.push(hash(K_URL_DOMAIN, domains::registrable(h).as_bytes()));
        }
        url_tokens(&l.href, &mut f);
    }
    // Every part's type and transfer encoding (spam base64-encodes its text).
    for part in m.parts.iter().take(50) {
        if let Some(cte) = part.content_transfer_encoding() {
            f.push(hash(
                K_PART,
                format!("cte:{}", cte.to_ascii_lowercase()).as_bytes(),
            ));
        }
        if let Some(ct) = part.content_type() {
            let t = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""));
            f.push(hash(K_PART, t.to_ascii_lowercase().as_bytes()));
        }
    }
    for html in &mail.html {
        for t in &html.tags {
            f.push(hash(K_HTML_TAG, t.as_bytes()));
        }
    }
    for a in &mail.attachments {
        let kind = format!(
            "{:?}",
            crate::attach::sniff(&a.data[..a.data.len().min(64 << 10)])
        );
        f.push(hash(K_ATTACH, kind.as_bytes()));
        if let Some(ct) = &a.content_type {
            f.push(hash(K_ATTACH, ct.as_bytes()));
        }
    }
    f.sort_unstable();
    f.dedup();
    f
}

/// The whole relay chain: the client's /16 and /24, each relay's domain, the protocol, and the
/// number of hops (as SpamBayes's received tokens): a site's ham arrives by a few known paths,
/// spam by many.
fn received_tokens(m: &mail_parser::Message<'_>, f: &mut Vec<u32>) {
    let mut hops = 0u8;
    for v in m.header_values("Received").take(50) {
        hops = hops.saturating_add(1);
        let HeaderValue::Received(r) = v else {
            continue;
        };
        if let Some(std::net::IpAddr::V4(ip)) = r.from_ip() {
            let [a, b, c, _] = ip.octets();
            f.push(hash(K_RECEIVED, &[b'i', a, b]));
            f.push(hash(K_RECEIVED, &[b'i', a, b, c]));
        }
        if let Some(by) = r.by() {
            let h = by.to_string().to_ascii_lowercase();
            f.push(hash(
                K_RECEIVED,
                format!("by:{}", domains::registrable(&h)).as_bytes(),
            ));
        }
        if let Some(w) = r.with() {
            f.push(hash(K_RECEIVED, format!("with:{w:?}").as_bytes()));
        }
    }
    f.push(hash(K_RECEIVED, &[b'#', hops.min(12)]));
}

/// A link's scheme, whether it has a port, user info or a query, and up to 8 words of its path
/// (as SpamBayes's url tokens): spam links carry tracking paths a site's ham does not.
fn url_tokens(href: &str, f: &mut Vec<u32>) {
    let href = href.to_ascii_lowercase();
    let b = href.as_bytes();
    let scheme = href.split_once(':').map_or(&b[..0], |(a, _)| a.as_bytes());
    f.push(hash(K_URL_SCHEME, &scheme[..scheme.len().min(10)]));
    let Some((_, rest)) = href.split_once("://") else {
        return;
    };
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    if hostport.contains(':') {
        f.push(hash(K_URL_PATH, b":port"));
    }
    if hostport.contains('@') {
        f.push(hash(K_URL_PATH, b"@userinfo"));
    }
    if path.contains('?') {
        f.push(hash(K_URL_PATH, b"?query"));
    }
    for seg in path
        .split(['/', '?', '&', '=', '.', '-', '_'])
        .filter(|x| x.len() >= 3)
        .take(8)
    {
        f.push(hash(K_URL_PATH, &seg.as_bytes()[..seg.len().min(20)]));
    }
}

/// Digits as 9, letters as a, runs collapsed: the form of an identifier, not its value.
fn shape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(64) {
        let k = if c.is_ascii_digit() {
            '9'
        } else if c.is_alphabetic() {
            'a'
        } else {
            c
        };
        if !out.ends_with(k) || !matches!(k, '9' | 'a') {
            out.push(k);
        }
    }
    out
}

/// Splits on whitespace, trims surrounding punctuation, lowercases; words of 3 to 16
/// characters are features, longer ones become a "skip" feature of their first character and
/// length band, long numbers a feature of their length. With `bigrams`, adjacent words pair.
fn words(text: &str, kind: u8, bigrams: bool, out: &mut Vec<u32>) {
    let mut prev: Option<u32> = None;
    let mut buf = String::new();
    for raw in text.split_whitespace().take(MAX_WORDS) {
        let w = raw.trim_matches(|c: char| {
            matches!(
                c,
                '"' | '\''
                    | '('
                    | ')'
                    | '['
                    | ']'
                    | '{'
                    | '}'
                    | '<'
                    | '>'
                    | ','
                    | ';'
                    | ':'
                    | '.'
                    | '?'
                    | '*'
                    | '`'
            )
        });
        let ascii = w.is_ascii();
        let n = if ascii { w.len() } else { w.chars().count() };
        if !ascii && n >= 2 && w.chars().any(is_cjk) {
            // Scripts written without spaces: character bigrams.
            let chars: Vec<char> = w.chars().take(256).collect();
            for pair in chars.windows(2) {
                buf.clear();
                buf.extend(pair);
                out.push(hash(K_CJK, buf.as_bytes()));
            }
            continue;
        }
        if n < 3 {
            continue;
        }
        buf.clear();
        if ascii {
            buf.push_str(w);
            buf.make_ascii_lowercase();
        } else {
            for c in w.chars() {
                buf.extend(c.to_lowercase());
            }
        }
        let h = if w
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b',' || b == b'.')
        {
            hash(K_NUMBER, &[u8::try_from(n.min(255)).unwrap_or(255)])
        } else if n > 16 {
            let first = buf.chars().next().unwrap_or(' ');
            hash(K_SKIP, format!("{first}{}", n / 10).as_bytes())
        } else {
            hash(kind, buf.as_bytes())
        };
        out.push(h);
        if bigrams {
            // Adjacent pairs only: wider windows (OSB) measured worse with chi-square combining.
            if let Some(p) = prev {
                out.push(hash(K_BIGRAM, &[p.to_le_bytes(), h.to_le_bytes()].concat()));
            }
            prev = Some(h);
        }
    }
}

/// The table slot a feature hash starts probing at (the hash scrambled, then masked).
fn slot_of(h: u32, cap: usize) -> usize {
    (h.wrapping_mul(0x9E37_79B9) as usize) & (cap - 1)
}

fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}' | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}'
        | '\u{AC00}'..='\u{D7AF}' | '\u{FF00}'..='\u{FFEF}')
}

fn hash(kind: u8, data: &[u8]) -> u32 {
    let h = fnv1a(u64::from(kind), data);
    (h ^ (h >> 32)) as u32
}

fn fnv1a(seed: u64, data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x100_0000_01b3);
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Result<u32, ModelError> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *b.get(*pos).ok_or(ModelError::Corrupt)?;
        *pos += 1;
        let bits = u32::from(byte & 0x7F);
        if shift == 28 && bits > 0x0F {
            return Err(ModelError::Corrupt);
        }
        v |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(ModelError::Corrupt)
}

/// The chi-square survival function for an even number of degrees of freedom.
fn chi2q(x2: f64, v: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..v / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let mut t = Trainer::new();
        for i in 0..60u32 {
            t.add(&[1, 2, 3, 1000 + i], false);
            t.add(&[2, 7, 8, 5000 + i], true);
        }
        let m = t.finish(2);
        assert_eq!(m.len(), 5);
        let b = m.to_bytes();
        assert_eq!(BayesModel::from_bytes(&b).as_ref(), Ok(&m));
        let mut bad = b.clone();
        bad[25] ^= 1;
        assert_eq!(BayesModel::from_bytes(&bad), Err(ModelError::Checksum));
        assert_eq!(BayesModel::from_bytes(b"nonsense"), Err(ModelError::Magic));
        assert!(BayesModel::from_bytes(&b[..b.len() - 1]).is_err());
        let spam = m.classify(&[7, 8]);
        let ham = m.classify(&[1, 3]);
        assert!(
            spam.probability > 0.9 && ham.probability < 0.1,
            "{spam:?} {ham:?}"
        );
        assert_eq!(m.classify(&[]).probability, 0.5);
    }

    #[test]
    fn score_is_continuous_and_anchored() {
        assert!((bayes_score(0.5) - 3.5).abs() < 1e-9);
        assert!((bayes_score(1.0) - 7.5).abs() < 1e-9);
        assert!((bayes_score(0.0) + 0.5).abs() < 1e-9);
        assert!(bayes_score(0.97) >= 5.0 && bayes_score(0.96) < 5.0);
        assert_eq!(bayes_score(f64::NAN), 3.5);
        let mut prev = f64::NEG_INFINITY;
        for i in 0..=1000 {
            let v = bayes_score(f64::from(i) / 1000.0);
            assert!(v >= prev, "not monotonic at {i}");
            prev = v;
        }
    }

    #[test]
    fn a_model_from_the_previous_tokenizer_is_refused() {
        let mut t = Trainer::new();
        t.add(&[1, 2], false);
        t.add(&[1, 3], true);
        let mut b = t.finish(1).to_bytes();
        b[9] = TOKENIZER_VERSION - 1;
        let e = BayesModel::from_bytes(&b).unwrap_err();
        assert_eq!(e, ModelError::Tokenizer(TOKENIZER_VERSION - 1));
        assert!(e.to_string().contains("retrain"), "{e}");
    }

    #[test]
    fn relay_chain_and_link_paths_are_features() {
        let mut f = Vec::new();
        url_tokens("HTTP://user@Example.com:8080/a/track-me?id=ab12", &mut f);
        assert!(f.contains(&hash(K_URL_SCHEME, b"http")));
        for t in [&b":port"[..], b"@userinfo", b"?query", b"track", b"ab12"] {
            assert!(
                f.contains(&hash(K_URL_PATH, t)),
                "{}",
                String::from_utf8_lossy(t)
            );
        }
        // Not a panic on non-ASCII, and long path words are cut at 20 bytes.
        url_tokens(
            "http://h/\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}x",
            &mut f,
        );
        let raw = b"Received: from a.example ([192.0.2.7]) by mx.example.org with ESMTP; \
            Tue, 10 Sep 2002 13:53:58 -0500\r\nFrom: a@b.example\r\n\r\nhi\r\n";
        let m = mail_parser::MessageParser::new().parse(&raw[..]).unwrap();
        let mut f = Vec::new();
        received_tokens(&m, &mut f);
        assert!(f.contains(&hash(K_RECEIVED, &[b'i', 192, 0, 2])));
        assert!(f.contains(&hash(K_RECEIVED, &[b'#', 1])));
    }

    #[test]
    fn varints() {
        for v in [0, 1, 127, 128, 300, u32::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut p = 0;
            assert_eq!(get_varint(&b, &mut p), Ok(v));
            assert_eq!(p, b.len());
        }
        let mut p = 0;
        assert!(get_varint(&[0xFF; 6], &mut p).is_err());
    }

    #[test]
    fn chi2() {
        assert!((chi2q(0.0, 2) - 1.0).abs() < 1e-12);
        assert!(chi2q(1000.0, 10) < 1e-100);
    }
}
