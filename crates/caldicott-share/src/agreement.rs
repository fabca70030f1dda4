//! Data-sharing agreements: what may be released, to whom, why, on what legal basis, how
//! it is de-identified, how often and until when; and the rules that decide whether a
//! release may happen now.
//!
//! Everything here is pure: an [`Agreement`] is a value, its state changes are functions
//! that check who is acting ([`Agreement::approve`] refuses the proposer and anyone who is
//! not the organisation's Caldicott guardian), and [`may_release`] decides from the
//! agreement's versions, the releases already made and today's date. Storage is in
//! [`crate::book`].
//!
//! Versions: amending an agreement makes a new version that needs its own approval; until
//! then releases use the newest approved version. Revoking applies to the agreement, every
//! version, and is final.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, Month};

use crate::day::Day;

use crate::dataset::DatasetSpec;
use crate::error::ShareError;

/// An agreement's identifier: `DSA-` and 12 upper-case hex digits (48 random bits: ids are
/// not secrets, only unique within a deployment).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgreementId(String);

impl AgreementId {
    /// Parses an id, e.g. `DSA-0A1B2C3D4E5F` (case-insensitive; kept upper case).
    pub fn parse(s: &str) -> Result<Self, ShareError> {
        let up = s.trim().to_ascii_uppercase();
        let ok = up.len() == 16
            && up.starts_with("DSA-")
            && up[4..].bytes().all(|b| b.is_ascii_hexdigit());
        if ok {
            Ok(AgreementId(up))
        } else {
            Err(ShareError::Invalid(
                "an agreement id is DSA- followed by 12 hexadecimal digits".into(),
            ))
        }
    }

    /// A new random id.
    pub fn random() -> Self {
        let bits: u64 = rand::random::<u64>() & 0xFFFF_FFFF_FFFF;
        AgreementId(format!("DSA-{bits:012X}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AgreementId {
    type Error = ShareError;
    fn try_from(s: String) -> Result<Self, ShareError> {
        AgreementId::parse(&s)
    }
}

impl From<AgreementId> for String {
    fn from(id: AgreementId) -> String {
        id.0
    }
}

impl fmt::Display for AgreementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why the data is shared. Direct care is not shared through releases (it is served by the
/// FHIR API to the care team), so it is not a purpose here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SharePurpose {
    /// Medical research.
    Research,
    /// Planning and commissioning of services.
    Planning,
}

impl SharePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            SharePurpose::Research => "research",
            SharePurpose::Planning => "planning",
        }
    }
}

/// The lawful basis for the disclosure under the common-law duty of confidentiality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BasisKind {
    /// Section 251 support (Confidentiality Advisory Group approval): the National Data
    /// Opt-out applies.
    Section251,
    /// The data leaves anonymised in line with the ICO's code: neither opt-out applies in
    /// law, but Caldicott honours both by default (see [`OptOutRule`]).
    Anonymised,
    /// Every patient in the cohort consented explicitly: opt-outs do not apply.
    Consent,
    /// A legal requirement (a court order, a direction under the Health and Social Care Act
    /// 2012): opt-outs do not apply.
    LegalRequirement,
}

/// The legal basis: its kind and its reference (CAG number, direction, DPIA).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegalBasis {
    pub kind: BasisKind,
    /// E.g. `CAG 21/CAG/0001`, the direction's title, or the DPIA's reference.
    pub reference: String,
}

/// Which opt-outs a release removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOutRule {
    /// The National Data Opt-out.
    pub national: bool,
    /// Type 1 opt-outs (objections recorded at the GP practice).
    pub type1: bool,
}

impl OptOutRule {
    /// The rule for a purpose and basis (domain rules: both opt-outs cover uses beyond
    /// direct care, research and planning; neither applies with consent or a legal
    /// requirement). For anonymised data the law does not require it, but patients who
    /// opted out expect it and a re-identification can never be ruled out, so Caldicott
    /// removes them too.
    pub fn for_basis(_purpose: SharePurpose, basis: BasisKind) -> Self {
        let applies = matches!(basis, BasisKind::Section251 | BasisKind::Anonymised);
        OptOutRule {
            national: applies,
            type1: applies,
        }
    }
}

/// How often releases may be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Frequency {
    /// One release only.
    Once,
    /// At most one per calendar month.
    Monthly,
    /// At most one per calendar quarter.
    Quarterly,
    /// At most one per calendar year.
    Yearly,
}

impl Frequency {
    /// The period a date falls in (releases are limited to one per period).
    fn period(self, d: Date) -> (i32, u8) {
        match self {
            Frequency::Once => (0, 0),
            Frequency::Monthly => (d.year(), u8::from(d.month())),
            Frequency::Quarterly => (d.year(), (u8::from(d.month()) - 1) / 3),
            Frequency::Yearly => (d.year(), 0),
        }
    }

    /// The first day of the period after the one `d` falls in.
    fn next_period_start(self, d: Date) -> Option<Date> {
        let first = |y: i32, m: u8| {
            Month::try_from(m)
                .ok()
                .and_then(|m| Date::from_calendar_date(y, m, 1).ok())
        };
        match self {
            Frequency::Once => None,
            Frequency::Monthly => {
                let m = u8::from(d.month());
                if m == 12 {
                    first(d.year() + 1, 1)
                } else {
                    first(d.year(), m + 1)
                }
            }
            Frequency::Quarterly => {
                let q = (u8::from(d.month()) - 1) / 3;
                if q == 3 {
                    first(d.year() + 1, 1)
                } else {
                    first(d.year(), (q + 1) * 3 + 1)
                }
            }
            Frequency::Yearly => first(d.year() + 1, 1),
        }
    }
}

/// The recipient of the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// The organisation's name.
    pub name: String,
    /// Its ODS code, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ods: Option<String>,
    /// Its `age` X25519 public key (`age1...`): every file of a release is encrypted to it.
    pub age_key: String,
}

/// What the proposer writes: everything an agreement says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    /// A short title, e.g. `Diabetes outcomes study (University of Leeds)`.
    pub title: String,
    pub recipient: Recipient,
    pub purpose: SharePurpose,
    pub legal_basis: LegalBasis,
    /// Which data: cohort, period, columns.
    pub dataset: DatasetSpec,
    /// The de-identification profile: a `caldicott-deid` policy (TOML text) naming each
    /// column of the dataset and the privacy model.
    pub deid_profile: String,
    pub frequency: Frequency,
    /// The last day a release may be made.
    pub expires: Day,
}

impl Terms {
    /// Checks what can be checked without the data.
    pub fn validate(&self) -> Result<(), ShareError> {
        let bad = |m: String| Err(ShareError::Invalid(m));
        if self.title.trim().is_empty() || self.title.len() > 200 {
            return bad("the title must be 1 to 200 characters".into());
        }
        if self.recipient.name.trim().is_empty() {
            return bad("the recipient needs a name".into());
        }
        if let Some(ods) = &self.recipient.ods {
            caldicott_core::OdsCode::parse(ods).map_err(|_| {
                ShareError::Invalid("the recipient's ODS code is not a valid ODS code".into())
            })?;
        }
        crate::output::RecipientKey::parse(&self.recipient.age_key)
            .map_err(|e| ShareError::Invalid(format!("the recipient's age key: {e}")))?;
        if self.legal_basis.reference.trim().is_empty() {
            return bad("the legal basis needs a reference (CAG number, direction, DPIA)".into());
        }
        self.dataset.validate()?;
        let policy = caldicott_deid::Policy::from_toml_str(&self.deid_profile)
            .map_err(|e| ShareError::Invalid(format!("the de-identification profile: {e}")))?;
        for c in &self.dataset.columns {
            if policy.attribute(&c.name).is_none() {
                return bad(format!(
                    "dataset column `{}` is not named in the de-identification profile: every column needs a role",
                    c.name
                ));
            }
        }
        for a in &policy.attributes {
            if !self.dataset.columns.iter().any(|c| c.name == a.name) {
                return bad(format!(
                    "the de-identification profile names `{}`, which is not a dataset column",
                    a.name
                ));
            }
        }
        Ok(())
    }

    /// Which opt-outs releases under these terms remove.
    pub fn opt_outs(&self) -> OptOutRule {
        OptOutRule::for_basis(self.purpose, self.legal_basis.kind)
    }
}

/// A person acting on an agreement, as the directory knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor<'a> {
    pub user: &'a str,
    pub org: &'a str,
    pub role: &'a str,
}

/// The role that approves agreements.
pub const GUARDIAN_ROLE: &str = "caldicott-guardian";

/// Where a version stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    /// Waiting for the Caldicott guardian.
    Proposed,
    /// Approved: releases may be made under it.
    Approved { by: String, at_us: i64 },
    /// Revoked: no release ever again under any version.
    Revoked {
        by: String,
        at_us: i64,
        reason: String,
    },
}

/// One version of an agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    pub id: AgreementId,
    /// 1 for the first proposal, then one more per amendment.
    pub version: u32,
    /// The releasing organisation (ODS code).
    pub org: String,
    pub terms: Terms,
    pub proposed_by: String,
    pub proposed_at_us: i64,
    pub state: State,
}

impl Agreement {
    /// A new proposal (version 1) by `actor`, for their organisation.
    pub fn propose(actor: &Actor<'_>, terms: Terms, now_us: i64) -> Result<Self, ShareError> {
        if actor.role == "system" {
            return Err(ShareError::Refused(
                "a machine client cannot propose an agreement: a person must".into(),
            ));
        }
        terms.validate()?;
        Ok(Agreement {
            id: AgreementId::random(),
            version: 1,
            org: actor.org.to_owned(),
            terms,
            proposed_by: actor.user.to_owned(),
            proposed_at_us: now_us,
            state: State::Proposed,
        })
    }

    /// A new version with amended terms, awaiting approval again.
    pub fn amend(&self, actor: &Actor<'_>, terms: Terms, now_us: i64) -> Result<Self, ShareError> {
        if let State::Revoked { .. } = self.state {
            return Err(ShareError::Refused(format!(
                "{} is revoked: propose a new agreement",
                self.id
            )));
        }
        if actor.org != self.org {
            return Err(ShareError::Refused(format!(
                "{} belongs to another organisation",
                self.id
            )));
        }
        terms.validate()?;
        Ok(Agreement {
            id: self.id.clone(),
            version: self.version + 1,
            org: self.org.clone(),
            terms,
            proposed_by: actor.user.to_owned(),
            proposed_at_us: now_us,
            state: State::Proposed,
        })
    }

    /// Approval by the organisation's Caldicott guardian, who must not be the proposer:
    /// two people, both recorded.
    pub fn approve(&self, actor: &Actor<'_>, now_us: i64) -> Result<Self, ShareError> {
        match &self.state {
            State::Proposed => {}
            State::Approved { .. } => {
                return Err(ShareError::Refused(format!(
                    "{} version {} is already approved",
                    self.id, self.version
                )));
            }
            State::Revoked { .. } => {
                return Err(ShareError::Refused(format!("{} is revoked", self.id)));
            }
        }
        if actor.role != GUARDIAN_ROLE {
            return Err(ShareError::Refused(format!(
                "only a Caldicott guardian may approve an agreement; {} is {}",
                actor.user, actor.role
            )));
        }
        if actor.org != self.org {
            return Err(ShareError::Refused(format!(
                "{} belongs to another organisation: its own Caldicott guardian must approve it",
                self.id
            )));
        }
        if actor.user == self.proposed_by {
            return Err(ShareError::Refused(
                "the person who proposed an agreement cannot also approve it".into(),
            ));
        }
        let mut next = self.clone();
        next.state = State::Approved {
            by: actor.user.to_owned(),
            at_us: now_us,
        };
        Ok(next)
    }

    /// Revocation by the Caldicott guardian or the proposer's organisation's sysadmin.
    pub fn revoke(&self, actor: &Actor<'_>, reason: &str, now_us: i64) -> Result<Self, ShareError> {
        if let State::Revoked { .. } = self.state {
            return Err(ShareError::Refused(format!(
                "{} is already revoked",
                self.id
            )));
        }
        if actor.org != self.org {
            return Err(ShareError::Refused(format!(
                "{} belongs to another organisation",
                self.id
            )));
        }
        if actor.role != GUARDIAN_ROLE && actor.role != "sysadmin" {
            return Err(ShareError::Refused(format!(
                "only a Caldicott guardian or a sysadmin may revoke an agreement; {} is {}",
                actor.user, actor.role
            )));
        }
        if reason.trim().is_empty() {
            return Err(ShareError::Invalid(
                "say why the agreement is revoked".into(),
            ));
        }
        let mut next = self.clone();
        next.state = State::Revoked {
            by: actor.user.to_owned(),
            at_us: now_us,
            reason: reason.trim().to_owned(),
        };
        Ok(next)
    }
}

/// A release already made (what [`may_release`] needs of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub release_id: String,
    pub version: u32,
    /// The day it was made (UTC).
    pub on: Day,
    pub by: String,
    pub rows: u64,
    /// The signed manifest's SHA-256 (hex).
    pub manifest_sha256: String,
    /// How many patients the opt-outs removed (a count only).
    pub opted_out: u64,
}

/// Whether a release may be made today, and under which version: the newest approved one.
/// `versions` are all versions of one agreement (any order), `releases` those made.
pub fn may_release<'a>(
    versions: &'a [Agreement],
    releases: &[ReleaseRecord],
    today: Day,
) -> Result<&'a Agreement, ShareError> {
    let refuse = |m: String| Err(ShareError::Refused(m));
    let Some(newest) = versions.iter().max_by_key(|a| a.version) else {
        return refuse("no such agreement".into());
    };
    if let Some(revoked) = versions
        .iter()
        .find(|a| matches!(a.state, State::Revoked { .. }))
    {
        return refuse(format!("{} is revoked: no release can be made", revoked.id));
    }
    let Some(current) = versions
        .iter()
        .filter(|a| matches!(a.state, State::Approved { .. }))
        .max_by_key(|a| a.version)
    else {
        return refuse(format!(
            "{} is not approved yet: its Caldicott guardian must approve it first",
            newest.id
        ));
    };
    if today > current.terms.expires {
        return refuse(format!(
            "{} expired on {}: no release can be made",
            current.id, current.terms.expires
        ));
    }
    let f = current.terms.frequency;
    if let Some(last) = releases.iter().map(|r| r.on).max() {
        if f == Frequency::Once {
            return refuse(format!("{} allows one release, made on {last}", current.id));
        }
        if f.period(last.0) == f.period(today.0) {
            let next = f
                .next_period_start(last.0)
                .map(|d| d.to_string())
                .unwrap_or_default();
            return refuse(format!(
                "{} allows one release per {} period; the last was on {last}, the next may be made from {next}",
                current.id,
                match f {
                    Frequency::Monthly => "monthly",
                    Frequency::Quarterly => "quarterly",
                    _ => "yearly",
                }
            ));
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn day(d: Date) -> Day {
        Day(d)
    }

    pub(crate) fn terms() -> Terms {
        crate::dataset::tests::example_terms()
    }

    fn actor<'a>(user: &'a str, role: &'a str) -> Actor<'a> {
        Actor {
            user,
            org: "A81001",
            role,
        }
    }

    #[test]
    fn ids_parse_and_print() {
        let id = AgreementId::random();
        assert_eq!(AgreementId::parse(id.as_str()).unwrap(), id);
        assert_eq!(
            AgreementId::parse("dsa-0a1b2c3d4e5f").unwrap().as_str(),
            "DSA-0A1B2C3D4E5F"
        );
        for bad in [
            "",
            "DSA-",
            "DSA-0A1B2C3D4E5",
            "XSA-0A1B2C3D4E5F",
            "DSA-0A1B2C3D4E5G",
        ] {
            assert!(AgreementId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn two_people_approve_and_revocation_is_final() {
        let a = Agreement::propose(&actor("alice", "researcher"), terms(), 1).unwrap();
        assert_eq!(a.state, State::Proposed);
        // The proposer cannot approve, even as a guardian; a GP cannot approve.
        let g = Agreement::propose(&actor("gina", GUARDIAN_ROLE), terms(), 1).unwrap();
        assert!(
            g.approve(&actor("gina", GUARDIAN_ROLE), 2)
                .unwrap_err()
                .to_string()
                .contains("cannot also approve")
        );
        assert!(
            a.approve(&actor("gp1", "gp"), 2)
                .unwrap_err()
                .to_string()
                .contains("only a Caldicott guardian")
        );
        let other_org = Actor {
            user: "gus",
            org: "B82002",
            role: GUARDIAN_ROLE,
        };
        assert!(a.approve(&other_org, 2).is_err());
        let ok = a.approve(&actor("gina", GUARDIAN_ROLE), 2).unwrap();
        assert!(matches!(ok.state, State::Approved { ref by, at_us: 2 } if by == "gina"));
        assert!(ok.approve(&actor("gina", GUARDIAN_ROLE), 3).is_err());
        assert!(ok.revoke(&actor("gp1", "gp"), "x", 3).is_err());
        assert!(ok.revoke(&actor("gina", GUARDIAN_ROLE), " ", 3).is_err());
        let gone = ok
            .revoke(&actor("gina", GUARDIAN_ROLE), "study ended", 3)
            .unwrap();
        assert!(
            gone.revoke(&actor("gina", GUARDIAN_ROLE), "again", 4)
                .is_err()
        );
        assert!(
            gone.amend(&actor("alice", "researcher"), terms(), 4)
                .is_err()
        );
        assert!(gone.approve(&actor("gina", GUARDIAN_ROLE), 4).is_err());
        assert!(Agreement::propose(&actor("svc", "system"), terms(), 1).is_err());
    }

    fn release(on: Day, version: u32) -> ReleaseRecord {
        ReleaseRecord {
            release_id: "r".into(),
            version,
            on,
            by: "alice".into(),
            rows: 1,
            manifest_sha256: String::new(),
            opted_out: 0,
        }
    }

    #[test]
    fn release_rules() {
        let mut t = terms();
        t.frequency = Frequency::Quarterly;
        t.expires = day(date!(2027 - 06 - 30));
        let v1 = Agreement::propose(&actor("alice", "researcher"), t.clone(), 1).unwrap();
        let today = day(date!(2026 - 11 - 29));
        // Proposed only: refused.
        let err = may_release(std::slice::from_ref(&v1), &[], today).unwrap_err();
        assert!(err.to_string().contains("not approved"), "{err}");
        let v1 = v1.approve(&actor("gina", GUARDIAN_ROLE), 2).unwrap();
        // An amendment awaiting approval: version 1 still releases.
        let v2 = v1
            .amend(&actor("alice", "researcher"), t.clone(), 3)
            .unwrap();
        let both = [v1.clone(), v2.clone()];
        assert_eq!(may_release(&both, &[], today).unwrap().version, 1);
        let v2 = v2.approve(&actor("gina", GUARDIAN_ROLE), 4).unwrap();
        let both = [v1.clone(), v2.clone()];
        assert_eq!(may_release(&both, &[], today).unwrap().version, 2);
        // Once per quarter: 2026-10-01 starts Q4, so a release on 10-02 blocks today.
        let err = may_release(&both, &[release(day(date!(2026 - 10 - 02)), 1)], today).unwrap_err();
        assert!(err.to_string().contains("from 2027-01-01"), "{err}");
        assert!(may_release(&both, &[release(day(date!(2026 - 09 - 30)), 1)], today).is_ok());
        // Expired.
        assert!(
            may_release(&both, &[], day(date!(2027 - 07 - 01)))
                .unwrap_err()
                .to_string()
                .contains("expired on 2027-06-30")
        );
        assert!(may_release(&both, &[], day(date!(2027 - 06 - 30))).is_ok());
        // Revoked (any version): refused.
        let r = v2
            .revoke(&actor("gina", GUARDIAN_ROLE), "ended", 5)
            .unwrap();
        let err = may_release(&[v1, r], &[], today).unwrap_err();
        assert!(err.to_string().contains("revoked"), "{err}");
    }

    #[test]
    fn once_and_monthly_and_yearly() {
        let mut t = terms();
        t.expires = day(date!(2030 - 01 - 01));
        for (f, last, today, ok) in [
            (
                Frequency::Once,
                day(date!(2020 - 01 - 01)),
                day(date!(2026 - 01 - 01)),
                false,
            ),
            (
                Frequency::Monthly,
                day(date!(2026 - 11 - 01)),
                day(date!(2026 - 11 - 29)),
                false,
            ),
            (
                Frequency::Monthly,
                day(date!(2026 - 10 - 31)),
                day(date!(2026 - 11 - 01)),
                true,
            ),
            (
                Frequency::Monthly,
                day(date!(2026 - 12 - 31)),
                day(date!(2027 - 01 - 01)),
                true,
            ),
            (
                Frequency::Yearly,
                day(date!(2026 - 01 - 01)),
                day(date!(2026 - 12 - 31)),
                false,
            ),
            (
                Frequency::Yearly,
                day(date!(2025 - 12 - 31)),
                day(date!(2026 - 01 - 01)),
                true,
            ),
        ] {
            t.frequency = f;
            let a = Agreement::propose(&actor("alice", "researcher"), t.clone(), 1)
                .unwrap()
                .approve(&actor("gina", GUARDIAN_ROLE), 2)
                .unwrap();
            let r = may_release(std::slice::from_ref(&a), &[release(last, 1)], today);
            assert_eq!(r.is_ok(), ok, "{f:?} {last} {today}");
        }
    }

    #[test]
    fn opt_out_rules_follow_the_basis() {
        for p in [SharePurpose::Research, SharePurpose::Planning] {
            assert!(OptOutRule::for_basis(p, BasisKind::Section251).national);
            assert!(OptOutRule::for_basis(p, BasisKind::Anonymised).type1);
            assert!(!OptOutRule::for_basis(p, BasisKind::Consent).national);
            assert!(!OptOutRule::for_basis(p, BasisKind::LegalRequirement).type1);
        }
    }
}
