//! What a de-identification run did, for the data controller and for audit: serialised as
//! JSON next to the output, and rendered as a self-contained HTML page ([`Report::to_html`]:
//! no scripts, no external resources, every value escaped).

use serde::{Deserialize, Serialize};

use std::fmt::Write as _;

use crate::policy::{PrivacyModel, SuppressedRows, UtilityMetric};

/// The report of one de-identification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Data rows in the input.
    pub records: u64,
    /// Records suppressed (their quasi-identifiers starred, or the rows removed).
    pub records_suppressed: u64,
    /// What was done with suppressed rows.
    pub suppressed_rows: SuppressedRows,
    /// Rows written to the output.
    pub rows_written: u64,
    /// The privacy model.
    pub privacy_model: PrivacyModel,
    /// The suppression limit (fraction of records).
    pub suppression_limit: f64,
    /// Columns removed (written as `*`).
    pub identifiers_removed: Vec<String>,
    /// The chosen generalisation: one level per quasi-identifier, in input column order.
    pub transformation: Vec<QiLevel>,
    /// Equivalence classes among the published (not suppressed) records.
    pub equivalence_classes: u64,
    /// Smallest published class.
    pub min_class_size: u64,
    /// Largest published class.
    pub max_class_size: u64,
    /// How many published classes have each size, smallest first.
    pub class_sizes: Vec<ClassSizeCount>,
    /// Re-identification risk of the published records.
    pub risk: Risk,
    /// The privacy model's figures as achieved by the published records.
    pub privacy: PrivacyAchieved,
    /// Information loss of the output.
    pub utility: Utility,
    /// How the transformation was found.
    pub search: Search,
    /// Things the data controller should know before releasing the output.
    pub warnings: Vec<String>,
    /// For local recoding (`algorithm = "local-recoding"`): how the partitioning went and the
    /// levels the records were released at. Then `transformation` gives, per quasi-identifier,
    /// the coarsest level any published class uses, and the `search` lattice counts are 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_recoding: Option<LocalRecoding>,
}

/// What a local recoding did (see `docs/local-recoding.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRecoding {
    /// `strict` (every part of a split satisfies the model) or `relaxed` (children that do not
    /// are grouped into a remainder that keeps the parent's label).
    pub split_rule: String,
    /// Threads the partitioning ran on.
    pub threads: u64,
    /// Splits in which every child became a partition.
    pub strict_splits: u64,
    /// Splits with a remainder.
    pub relaxed_splits: u64,
    /// Labels specialised without a split (all the records of a partition under one child).
    pub specialisations: u64,
    /// Times one attribute's children were counted over one partition.
    pub histogram_passes: u64,
    /// Published classes suppressed afterwards to meet the average-risk threshold.
    pub suppressed_for_average_risk: u64,
    /// Per quasi-identifier, in input column order: published records at each level.
    pub records_per_level: Vec<LevelRecords>,
}

/// Published records per generalisation level of one quasi-identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelRecords {
    /// The column.
    pub attribute: String,
    /// `records[l]`: published records whose value is released at level `l`.
    pub records: Vec<u64>,
}

/// A quasi-identifier's generalisation level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QiLevel {
    /// The column.
    pub attribute: String,
    /// The chosen level (0 = original values).
    pub level: u8,
    /// The hierarchy's highest level.
    pub max_level: u8,
}

/// Number of classes of one size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassSizeCount {
    /// Records per class.
    pub size: u64,
    /// Classes of that size.
    pub classes: u64,
}

/// Re-identification risk of the published records. `max_risk`, `average_risk` and
/// `records_at_max_risk` are under the prosecutor model (the attacker knows the target is in
/// the release). The journalist risk (the attacker does not know) needs the sampling fraction;
/// without it, it is bounded above by the prosecutor figures, since a population class is never
/// smaller than the sample class it contains. Definitions: `docs/anonymise.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// Highest prosecutor risk of any record: `1 / min_class_size`.
    pub max_risk: f64,
    /// Mean prosecutor risk over records: `equivalence_classes / published records` (also the
    /// marketer risk: the expected share of records re-identified by linking everything).
    pub average_risk: f64,
    /// Share of published records at the highest risk.
    pub records_at_max_risk: f64,
    /// Journalist risk, when the policy gives a population or sampling fraction.
    pub journalist: Option<JournalistRisk>,
    /// Shares of published records whose risk is above each threshold: the policy's and
    /// 0.5, 0.2, 0.1, 0.05, 0.01, highest first.
    pub records_at_risk: Vec<RecordsAtRisk>,
}

/// Journalist risk (Benedetti–Franconi estimate of `E[1 / population class size]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalistRisk {
    /// The sampling fraction used (records / population).
    pub sampling_fraction: f64,
    /// Highest estimated risk of any published record.
    pub max_risk: f64,
    /// Mean estimated risk over published records.
    pub average_risk: f64,
}

/// Records above one risk threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordsAtRisk {
    /// The threshold.
    pub threshold: f64,
    /// Share of published records whose prosecutor risk (`1 / class size`) is above it.
    pub prosecutor: f64,
    /// Share whose journalist risk is above it, when it is known.
    pub journalist: Option<f64>,
}

/// The privacy model's figures, as achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivacyAchieved {
    /// The model, spelled out.
    pub model: String,
    /// The smallest class the model allows (k, ℓ, prosecutor and journalist thresholds).
    pub min_class_size_required: u64,
    /// Per ℓ-diversity rule, in policy order.
    pub l_diversity: Vec<LAchieved>,
    /// Per t-closeness rule, in policy order.
    pub t_closeness: Vec<TAchieved>,
}

/// An ℓ-diversity rule and the smallest ℓ of any published class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LAchieved {
    /// The sensitive attribute.
    pub attribute: String,
    /// `distinct` or `entropy`.
    pub variant: String,
    /// ℓ required.
    pub required: f64,
    /// Smallest over published classes: distinct values, or `exp(entropy)`; `None` when
    /// nothing is published.
    pub achieved: Option<f64>,
}

/// A t-closeness rule and the largest distance of any published class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TAchieved {
    /// The sensitive attribute.
    pub attribute: String,
    /// `equal` or `hierarchical`.
    pub distance: String,
    /// t required.
    pub required: f64,
    /// Largest EMD over published classes; `None` when nothing is published.
    pub achieved: Option<f64>,
}

/// Information loss figures (see [`crate::metric`] for the formulas).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Utility {
    /// The metric that chose the transformation.
    pub metric: UtilityMetric,
    /// Its value.
    pub value: f64,
    /// ARX Loss, 0..1 (geometric mean over quasi-identifiers).
    pub loss: f64,
    /// Loss per quasi-identifier, in input column order.
    pub loss_per_attribute: Vec<f64>,
    /// Discernibility.
    pub discernibility: f64,
    /// Non-uniform entropy, bits.
    pub non_uniform_entropy: f64,
}

/// The search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Search {
    /// `flash` or `exhaustive`.
    pub algorithm: String,
    /// Transformations in the lattice.
    pub lattice_nodes: u64,
    /// Transformations checked (the others were classified by predictive tagging or pruned).
    pub nodes_checked: u64,
    /// Of those, transformations whose equivalence classes were computed.
    pub nodes_grouped: u64,
    /// Wall time of the search, milliseconds (data loading and output excluded).
    pub search_ms: f64,
}

/// Escapes text for HTML element content and quoted attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

fn number(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}\
table{border-collapse:collapse;margin:0.5rem 0 1.5rem}th,td{border:1px solid #bbb;padding:0.25rem 0.6rem;text-align:left}\
th{background:#eef}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.bar{background:#4a6fa5;height:0.8rem}.warn{background:#fff3cd;border:1px solid #e0c060;padding:0.5rem}";

impl Report {
    /// The report as one self-contained HTML page for the data controller: the chosen
    /// transformation, records suppressed, the class-size distribution, risk, the privacy
    /// model's achieved figures and utility. No scripts and nothing loaded from elsewhere;
    /// every name and value is escaped.
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let _ = self.write_html(&mut h);
        h
    }

    fn write_html(&self, h: &mut String) -> std::fmt::Result {
        writeln!(h, "<!DOCTYPE html>")?;
        writeln!(h, "<html lang=\"en\"><head><meta charset=\"utf-8\">")?;
        writeln!(
            h,
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        )?;
        writeln!(
            h,
            "<title>De-identification report</title><style>{STYLE}</style></head><body>"
        )?;
        writeln!(h, "<h1>De-identification report</h1>")?;

        writeln!(h, "<h2>Summary</h2><table>")?;
        let row = |h: &mut String, k: &str, v: String| {
            writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v))
        };
        row(h, "Privacy model", self.privacy.model.clone())?;
        row(
            h,
            "Smallest class allowed",
            self.privacy.min_class_size_required.to_string(),
        )?;
        row(h, "Records in the input", self.records.to_string())?;
        row(
            h,
            "Records suppressed",
            format!(
                "{} ({}; limit {})",
                self.records_suppressed,
                percent(if self.records == 0 {
                    0.0
                } else {
                    self.records_suppressed as f64 / self.records as f64
                }),
                percent(self.suppression_limit)
            ),
        )?;
        row(
            h,
            "Suppressed rows",
            match self.suppressed_rows {
                SuppressedRows::Star => "kept, quasi-identifiers written *".into(),
                SuppressedRows::Remove => "removed".into(),
            },
        )?;
        row(h, "Rows written", self.rows_written.to_string())?;
        row(
            h,
            "Equivalence classes published",
            self.equivalence_classes.to_string(),
        )?;
        row(
            h,
            "Smallest / largest class",
            format!("{} / {}", self.min_class_size, self.max_class_size),
        )?;
        row(
            h,
            "Identifiers removed",
            if self.identifiers_removed.is_empty() {
                "none".into()
            } else {
                self.identifiers_removed.join(", ")
            },
        )?;
        writeln!(h, "</table>")?;

        if !self.warnings.is_empty() {
            writeln!(h, "<h2>Warnings</h2>")?;
            for w in &self.warnings {
                writeln!(h, "<p class=\"warn\">{}</p>", esc(w))?;
            }
        }

        writeln!(
            h,
            "<h2>Transformation</h2><table><tr><th>Quasi-identifier</th><th>Level</th><th>Highest level</th></tr>"
        )?;
        for q in &self.transformation {
            writeln!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&q.attribute),
                q.level,
                q.max_level
            )?;
        }
        writeln!(h, "</table>")?;

        writeln!(
            h,
            "<h2>Class sizes</h2><table><tr><th>Records per class</th><th>Classes</th><th>Records</th><th>Share of published records</th></tr>"
        )?;
        let published = self.records.saturating_sub(self.records_suppressed);
        for c in &self.class_sizes {
            let records = c.size * c.classes;
            let share = if published == 0 {
                0.0
            } else {
                records as f64 / published as f64
            };
            writeln!(
                h,
                "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td><div class=\"bar\" style=\"width:{:.1}%\"></div>{}</td></tr>",
                c.size,
                c.classes,
                records,
                share * 100.0,
                percent(share)
            )?;
        }
        writeln!(h, "</table>")?;

        writeln!(h, "<h2>Re-identification risk</h2><table>")?;
        row(
            h,
            "Prosecutor risk, highest (1 / smallest class)",
            number(self.risk.max_risk),
        )?;
        row(
            h,
            "Prosecutor risk, average (classes / records)",
            number(self.risk.average_risk),
        )?;
        row(
            h,
            "Records at the highest risk",
            percent(self.risk.records_at_max_risk),
        )?;
        match &self.risk.journalist {
            Some(j) => {
                row(h, "Sampling fraction", number(j.sampling_fraction))?;
                row(h, "Journalist risk, highest", number(j.max_risk))?;
                row(h, "Journalist risk, average", number(j.average_risk))?;
            }
            None => row(
                h,
                "Journalist risk",
                "not estimated (no population or sampling fraction in the policy); at most the prosecutor risk".into(),
            )?,
        }
        writeln!(h, "</table>")?;
        writeln!(
            h,
            "<table><tr><th>Risk above</th><th>Records (prosecutor)</th><th>Records (journalist)</th></tr>"
        )?;
        for r in &self.risk.records_at_risk {
            writeln!(
                h,
                "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                number(r.threshold),
                percent(r.prosecutor),
                r.journalist.map_or_else(|| "-".to_string(), percent)
            )?;
        }
        writeln!(h, "</table>")?;

        if !self.privacy.l_diversity.is_empty() || !self.privacy.t_closeness.is_empty() {
            writeln!(
                h,
                "<h2>Sensitive attributes</h2><table><tr><th>Attribute</th><th>Criterion</th><th>Required</th><th>Achieved</th></tr>"
            )?;
            for l in &self.privacy.l_diversity {
                writeln!(
                    h,
                    "<tr><td>{}</td><td>{} ℓ-diversity (smallest ℓ)</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    esc(&l.attribute),
                    esc(&l.variant),
                    number(l.required),
                    l.achieved.map_or_else(|| "-".to_string(), number)
                )?;
            }
            for t in &self.privacy.t_closeness {
                writeln!(
                    h,
                    "<tr><td>{}</td><td>t-closeness, {} distance (largest t)</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    esc(&t.attribute),
                    esc(&t.distance),
                    number(t.required),
                    t.achieved.map_or_else(|| "-".to_string(), number)
                )?;
            }
            writeln!(h, "</table>")?;
        }

        writeln!(h, "<h2>Utility</h2><table>")?;
        row(
            h,
            "Metric that chose the transformation",
            format!("{:?}: {}", self.utility.metric, number(self.utility.value)),
        )?;
        row(h, "Loss (0 to 1)", number(self.utility.loss))?;
        for (q, l) in self
            .transformation
            .iter()
            .zip(&self.utility.loss_per_attribute)
        {
            row(h, &format!("Loss of {}", q.attribute), number(*l))?;
        }
        row(h, "Discernibility", number(self.utility.discernibility))?;
        row(
            h,
            "Non-uniform entropy (bits)",
            number(self.utility.non_uniform_entropy),
        )?;
        writeln!(h, "</table>")?;

        writeln!(h, "<h2>Search</h2><table>")?;
        row(h, "Algorithm", self.search.algorithm.clone())?;
        row(
            h,
            "Transformations in the lattice",
            self.search.lattice_nodes.to_string(),
        )?;
        row(
            h,
            "Transformations checked",
            self.search.nodes_checked.to_string(),
        )?;
        row(h, "Search time", format!("{:.1} ms", self.search.search_ms))?;
        writeln!(h, "</table>")?;
        writeln!(h, "</body></html>")
    }
}
