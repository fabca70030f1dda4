//! The pure pipeline: table + policy + hierarchies → optimal transformation → released rows
//! and report. No I/O here; [`crate::io`] reads and writes files around it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::encode::{Encoded, Generaliser};
use crate::error::DeidError;
use crate::groupify::{Classes, Hist, group};
use crate::hierarchy::{Hierarchy, HierarchySpec};
use crate::lattice::Lattice;
use crate::metric;
use crate::mondrian::{self, LocalRows, SplitRule};
use crate::policy::{AttributeKind, GroundDistance, LVariant, Policy, Recoding, SuppressedRows};
use crate::privacy::{self, Criteria, Part, journalist_risk};
use crate::report::{
    ClassSizeCount, JournalistRisk, LAchieved, PrivacyAchieved, QiLevel, RecordsAtRisk, Report,
    Risk, Search, TAchieved, Utility,
};
use crate::search::{self, Config, Found};
use crate::table::Table;
use crate::transform::{PseudonymKey, Transformer};

/// Materialised hierarchies of the quasi-identifiers whose policy entry is
/// `hierarchy = { csv = ... }`, by column name.
pub type Hierarchies = BTreeMap<String, Hierarchy>;

/// The search algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ARX's Flash (the product's choice).
    Flash,
    /// Every transformation evaluated (for checking Flash).
    Exhaustive,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Flash => "flash",
            Algorithm::Exhaustive => "exhaustive",
        }
    }
}

/// The optimal transformation found by a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// One level per quasi-identifier, in input column order.
    pub levels: Vec<u8>,
    /// The policy's utility metric at that transformation.
    pub value: f64,
    /// Records suppressed by it.
    pub suppressed: u64,
    /// The algorithm used.
    pub algorithm: Algorithm,
    /// Transformations in the lattice.
    pub lattice_nodes: u64,
    /// Transformations checked (classified anonymous or not by a check rather than by
    /// predictive tagging).
    pub nodes_checked: u64,
    /// Of those, transformations whose equivalence classes had to be computed (the others
    /// were refused from the value frequencies of one quasi-identifier or a pair, or from
    /// one record's class).
    pub nodes_grouped: u64,
    /// Of the others, transformations refused from the frequencies of a pair of
    /// quasi-identifiers.
    pub nodes_refused_by_pair: u64,
    /// Of the others, transformations refused by counting one record's class (a witness, see
    /// `src/witness.rs`); the rest were refused by one quasi-identifier's frequencies.
    pub nodes_refused_by_witness: u64,
    /// Pair frequency tables (projections) the prechecks computed.
    pub projections: u64,
    /// Wall time of the search.
    pub search_time: Duration,
}

/// One transformation's figures (for tests and diagnostics).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Whether it satisfies the privacy model within the suppression limit.
    pub anonymous: bool,
    /// Records in classes the model refuses.
    pub violating: u64,
    /// Number of equivalence classes (refused ones included).
    pub classes: u64,
    /// Smallest class.
    pub min_class_size: u64,
    /// The policy's metric, with the refused classes suppressed.
    pub value: f64,
    /// Loss, discernibility and non-uniform entropy, with the refused classes suppressed.
    pub loss: f64,
    /// Loss per quasi-identifier.
    pub loss_per_attribute: Vec<f64>,
    /// See [`crate::metric`].
    pub discernibility: f64,
    /// See [`crate::metric`].
    pub non_uniform_entropy: f64,
}

/// A table prepared for de-identification under a policy: values encoded, lattice built,
/// distinct rows grouped. Search it, then release the optimum.
pub struct Anonymiser<'t> {
    pub(crate) table: &'t Table,
    pub(crate) policy: &'t Policy,
    pub(crate) enc: Encoded,
    lattice: Lattice,
    base: Arc<Classes>,
    row_base: Vec<u32>,
    pub(crate) criteria: Criteria,
    /// Per table column: its role, and for quasi-identifiers their index.
    pub(crate) roles: Vec<(AttributeKind, Option<usize>)>,
}

impl<'t> Anonymiser<'t> {
    /// Checks the table against the policy and encodes it. Fails on an unknown or unclassified
    /// column, a quasi-identifier without its hierarchy, or a value without a place in its
    /// hierarchy.
    pub fn new(
        table: &'t Table,
        policy: &'t Policy,
        hierarchies: &Hierarchies,
    ) -> Result<Self, DeidError> {
        policy.validate()?;
        for a in &policy.attributes {
            if table.column_index(&a.name).is_none() {
                return Err(DeidError::UnknownColumn {
                    column: a.name.clone(),
                });
            }
        }
        let mut roles = Vec::with_capacity(table.num_columns());
        let mut columns = Vec::new();
        for (c, name) in table.header().iter().enumerate() {
            let Some(a) = policy.attribute(name) else {
                return Err(DeidError::UnclassifiedColumn {
                    column: name.clone(),
                });
            };
            if a.kind == AttributeKind::QuasiIdentifier {
                let generaliser = match a.hierarchy.as_ref() {
                    Some(HierarchySpec::Csv(path)) => {
                        Generaliser::Table(hierarchies.get(name).ok_or_else(|| {
                            DeidError::InvalidPolicy(format!(
                                "quasi-identifier `{name}` uses CSV hierarchy {}, but no hierarchy was loaded for it",
                                path.display()
                            ))
                        })?)
                    }
                    Some(spec) => Generaliser::Builtin(spec),
                    None => {
                        return Err(DeidError::InvalidPolicy(format!(
                            "quasi-identifier `{name}` has no hierarchy"
                        )));
                    }
                };
                roles.push((a.kind, Some(columns.len())));
                columns.push((c, generaliser));
            } else {
                roles.push((a.kind, None));
            }
        }
        if table.num_rows() == 0 {
            return Err(DeidError::NoRecords);
        }
        let criteria = Criteria::new(policy, table, hierarchies)?;
        let enc = Encoded::new(table, &columns)?;
        let lattice = Lattice::new(enc.qis.iter().map(|qi| qi.height).collect())?;

        // The bottom node: group the rows by their original values.
        let q = enc.q();
        let rows = table.num_rows();
        let mut row_keys = Vec::with_capacity(rows * q);
        let codes: Vec<&[u32]> = enc
            .qis
            .iter()
            .map(|qi| table.column(qi.table_column).codes.as_slice())
            .collect();
        for i in 0..rows {
            row_keys.extend(codes.iter().map(|c| c[i]));
        }
        let maps: Vec<&[u32]> = enc.qis.iter().map(|qi| qi.up_map(0, 0)).collect();
        let cards: Vec<u32> = enc.qis.iter().map(|qi| qi.cardinality(0) as u32).collect();
        let ones = vec![1u32; if q == 0 { rows } else { 0 }];
        let (keys, counts, mapping) = group(
            &row_keys,
            (q == 0).then_some(ones.as_slice()),
            q,
            &maps,
            &vec![true; q],
            &cards,
            true,
            usize::MAX,
        )
        .expect("no class limit");
        drop(row_keys);
        let row_base = mapping.unwrap_or_default();
        // The bottom node's histograms of the constrained sensitive attributes, from the rows.
        let hists = criteria
            .sensitive_columns()
            .iter()
            .map(|s| Hist::rows(&table.column(s.table_column).codes).merge(&row_base, counts.len()))
            .collect();
        let base = Arc::new(Classes {
            levels: vec![0; q],
            keys,
            counts,
            hists,
        });
        Ok(Self {
            table,
            policy,
            enc,
            lattice,
            base,
            row_base,
            criteria,
            roles,
        })
    }

    /// The bottom node's classes (for the prechecks' tests).
    #[cfg(test)]
    pub(crate) fn base_classes(&self) -> &Classes {
        &self.base
    }

    /// Number of transformations in the lattice.
    pub fn lattice_size(&self) -> u64 {
        u64::from(self.lattice.size())
    }

    /// The quasi-identifiers, in input column order (the order of levels everywhere).
    pub fn quasi_identifiers(&self) -> Vec<&str> {
        self.enc.qis.iter().map(|qi| qi.name.as_str()).collect()
    }

    /// Each quasi-identifier's highest level.
    pub fn heights(&self) -> Vec<u8> {
        self.lattice.heights().to_vec()
    }

    /// Distinct combinations of quasi-identifier values in the input.
    pub fn distinct_rows(&self) -> usize {
        self.base.len()
    }

    /// The privacy model resolved against this table: the per-class predicate
    /// ([`Criteria::class_ok`]) other algorithms can call.
    pub fn criteria(&self) -> &Criteria {
        &self.criteria
    }

    fn config(&self) -> Config<'_> {
        let limit = self.policy.suppression_limit * self.enc.records as f64;
        Config {
            model: &self.criteria,
            metric: self.policy.metric,
            max_suppressed: (limit.floor() as u64).min(self.enc.records),
        }
    }

    fn classes(&self, levels: &[u8]) -> Classes {
        search::rollup(&self.enc, &self.base, levels, false).0
    }

    /// Figures of one transformation.
    pub fn evaluate(&self, levels: &[u8]) -> Evaluation {
        assert_eq!(levels.len(), self.enc.q(), "one level per quasi-identifier");
        for (l, h) in levels.iter().zip(self.lattice.heights()) {
            assert!(l <= h, "level {l} above the hierarchy's height {h}");
        }
        let classes = self.classes(levels);
        let config = self.config();
        let verdict = config.model.verdict(&classes, Part::Full);
        let violating = verdict.records;
        let u = metric::utility(&self.enc, &classes, &verdict.flags);
        Evaluation {
            anonymous: violating <= config.max_suppressed,
            violating,
            classes: classes.len() as u64,
            min_class_size: classes.counts.iter().copied().min().map_or(0, u64::from),
            value: metric::value(config.metric, &self.enc, &classes, &verdict.flags),
            loss: u.loss,
            loss_per_attribute: u.loss_per_qi,
            discernibility: u.discernibility,
            non_uniform_entropy: u.non_uniform_entropy,
        }
    }

    /// Finds the transformation with the best utility among those that satisfy the privacy
    /// model within the suppression limit.
    ///
    /// Flash's predictive tagging needs a monotonic privacy model; for one that is not (with
    /// suppression: entropy ℓ-diversity, t-closeness), Flash tags with its monotonic part and
    /// checks the whole model on every node that part accepts (see [`crate::search`]).
    pub fn search(&self, algorithm: Algorithm) -> Result<Solution, DeidError> {
        let config = self.config();
        let (found, stats) = match algorithm {
            Algorithm::Flash => search::flash(&self.lattice, &self.enc, &self.base, config),
            Algorithm::Exhaustive => {
                search::exhaustive(&self.lattice, &self.enc, &self.base, config)
            }
        };
        let Some(Found { node, value }) = found else {
            return Err(self.unsatisfiable());
        };
        let levels = self.lattice.levels(node);
        let suppressed = config
            .model
            .verdict(&self.classes(&levels), Part::Full)
            .records;
        Ok(Solution {
            levels,
            value,
            suppressed,
            algorithm,
            lattice_nodes: self.lattice_size(),
            nodes_checked: stats.checked,
            nodes_grouped: stats.grouped,
            nodes_refused_by_pair: stats.precheck.pair,
            nodes_refused_by_witness: stats.precheck.witness,
            projections: stats.precheck.projections,
            search_time: stats.elapsed,
        })
    }

    fn unsatisfiable(&self) -> DeidError {
        let config = self.config();
        let top = self.lattice.levels(self.lattice.top());
        let violating = config
            .model
            .verdict(&self.classes(&top), Part::Full)
            .records;
        let model = &self.policy.privacy;
        if model.l_diversity.is_empty()
            && model.t_closeness.is_empty()
            && model.risk.as_ref().is_none_or(|r| r.average.is_none())
        {
            // Class sizes alone decide: say which size.
            DeidError::Unsatisfiable {
                model: model.describe(),
                k: config.model.min_class_size(),
                records: self.enc.records,
                violating,
                limit: self.policy.suppression_limit,
                allowed: config.max_suppressed,
            }
        } else {
            DeidError::UnsatisfiableModel {
                model: model.describe(),
                records: self.enc.records,
                violating,
                limit: self.policy.suppression_limit,
                allowed: config.max_suppressed,
            }
        }
    }

    /// Applies a solution: which rows are suppressed, the released values and the report.
    pub fn release(&self, solution: &Solution) -> Release<'_, 't> {
        let config = self.config();
        let (classes, mapping) = search::rollup(&self.enc, &self.base, &solution.levels, true);
        let mapping = mapping.unwrap_or_default();
        let verdict = config.model.verdict(&classes, Part::Full);
        let refused = &verdict.flags;
        let base_suppressed: Vec<bool> = mapping
            .iter()
            .map(|&c| privacy::suppressed(refused, c as usize))
            .collect();

        let mut sizes: BTreeMap<u64, u64> = BTreeMap::new();
        let mut suppressed = 0u64;
        for (i, &c) in classes.counts.iter().enumerate() {
            if privacy::suppressed(refused, i) {
                suppressed += u64::from(c);
            } else {
                *sizes.entry(u64::from(c)).or_default() += 1;
            }
        }
        let published = self.enc.records - suppressed;
        let n_classes: u64 = sizes.values().sum();
        let min = sizes.keys().next().copied().unwrap_or(0);
        let max = sizes.keys().next_back().copied().unwrap_or(0);
        let u = metric::utility(&self.enc, &classes, refused);
        let rows_written = match self.policy.suppressed_rows {
            SuppressedRows::Star => self.enc.records,
            SuppressedRows::Remove => published,
        };
        let warnings = self.suppression_warnings(suppressed);
        let risk = self.risk_figures(&sizes, published, n_classes, min);
        let privacy = self.privacy_figures(&classes, refused);
        let report = Report {
            records: self.enc.records,
            records_suppressed: suppressed,
            suppressed_rows: self.policy.suppressed_rows,
            rows_written,
            privacy_model: self.policy.privacy.clone(),
            suppression_limit: self.policy.suppression_limit,
            identifiers_removed: self
                .table
                .header()
                .iter()
                .zip(&self.roles)
                .filter(|(_, (k, _))| *k == AttributeKind::Identifier)
                .map(|(n, _)| n.clone())
                .collect(),
            transformation: self
                .enc
                .qis
                .iter()
                .zip(&solution.levels)
                .map(|(qi, &level)| QiLevel {
                    attribute: qi.name.clone(),
                    level,
                    max_level: qi.height,
                })
                .collect(),
            equivalence_classes: n_classes,
            min_class_size: min,
            max_class_size: max,
            class_sizes: sizes
                .iter()
                .map(|(&size, &classes)| ClassSizeCount { size, classes })
                .collect(),
            risk,
            privacy,
            utility: Utility {
                metric: self.policy.metric,
                value: metric::value(config.metric, &self.enc, &classes, refused),
                loss: u.loss,
                loss_per_attribute: u.loss_per_qi,
                discernibility: u.discernibility,
                non_uniform_entropy: u.non_uniform_entropy,
            },
            search: Search {
                algorithm: solution.algorithm.name().into(),
                lattice_nodes: solution.lattice_nodes,
                nodes_checked: solution.nodes_checked,
                nodes_grouped: solution.nodes_grouped,
                search_ms: solution.search_time.as_secs_f64() * 1e3,
            },
            warnings,
            local_recoding: None,
        };
        Release {
            anonymiser: self,
            levels: solution.levels.clone(),
            base_suppressed,
            report,
            transformer: None,
            local: None,
        }
    }

    /// The warnings about suppressed rows that every release carries.
    pub(crate) fn suppression_warnings(&self, suppressed: u64) -> Vec<String> {
        let k = self.criteria.min_class_size();
        let mut warnings = Vec::new();
        if self.policy.suppressed_rows == SuppressedRows::Star && suppressed > 0 && suppressed < k {
            warnings.push(format!(
                "the {suppressed} suppressed rows are kept with every quasi-identifier written `*`: together they form one class smaller than {k}, so an attacker who knows a target is in the release and matches no published class can narrow the target down to them and read their other values; set suppressed_rows = \"remove\" to leave them out"
            ));
        }
        warnings
    }

    /// De-identifies by the policy's `algorithm`: the optimal full-domain generalisation
    /// (Flash, then [`Anonymiser::release`]) or local recoding
    /// ([`Anonymiser::local_recoding`]). Column transformations are attached by the caller
    /// ([`Release::with_transformer`]).
    pub fn anonymise(&self) -> Result<Release<'_, 't>, DeidError> {
        match self.policy.algorithm {
            Recoding::Optimal => Ok(self.release(&self.search(Algorithm::Flash)?)),
            Recoding::LocalRecoding => self.local_recoding(SplitRule::Relaxed),
            Recoding::LocalRecodingStrict => self.local_recoding(SplitRule::Strict),
        }
    }

    /// Local recoding: Mondrian-style top-down partitioning over the hierarchies (see
    /// `docs/local-recoding.md`), on all the machine's cores (at most 8).
    pub fn local_recoding(&self, rule: SplitRule) -> Result<Release<'_, 't>, DeidError> {
        self.local_recoding_on(rule, mondrian::default_threads())
    }

    /// [`Anonymiser::local_recoding`] on `threads` threads (the result does not depend on it).
    pub fn local_recoding_on(
        &self,
        rule: SplitRule,
        threads: usize,
    ) -> Result<Release<'_, 't>, DeidError> {
        let (rows, report) = mondrian::run(self, rule, threads)?;
        Ok(Release {
            anonymiser: self,
            levels: Vec::new(),
            base_suppressed: Vec::new(),
            report,
            transformer: None,
            local: Some(rows),
        })
    }
}

impl<'t> Anonymiser<'t> {
    /// Like [`release`](Self::release), with the policy's column transformations (pseudonyms,
    /// date shifts, top/bottom coding, free-text scrubbing) prepared under `key`; fails as
    /// [`Transformer::new`] does.
    pub fn release_with_key(
        &self,
        solution: &Solution,
        key: Option<&PseudonymKey>,
    ) -> Result<Release<'_, 't>, DeidError> {
        let transformer = Transformer::new(self.table, self.policy, key)?;
        Ok(self.release(solution).with_transformer(transformer))
    }
}

impl Anonymiser<'_> {
    /// Risk figures of the published classes (`sizes`: class size -> number of classes).
    pub(crate) fn risk_figures(
        &self,
        sizes: &BTreeMap<u64, u64>,
        published: u64,
        classes: u64,
        min: u64,
    ) -> Risk {
        let share = |records: u64| {
            if published == 0 {
                0.0
            } else {
                records as f64 / published as f64
            }
        };
        let pi = self.criteria.sampling_fraction();
        let journalist = pi.map(|pi| {
            let mut total = 0.0;
            let mut highest: f64 = 0.0;
            for (&size, &n) in sizes {
                let r = journalist_risk(size, pi);
                total += r * (size * n) as f64;
                highest = highest.max(r);
            }
            JournalistRisk {
                sampling_fraction: pi,
                max_risk: highest,
                average_risk: if published == 0 {
                    0.0
                } else {
                    total / published as f64
                },
            }
        });
        let thresholds = self.policy.privacy.risk.clone().unwrap_or_default();
        let mut levels: Vec<f64> = vec![0.5, 0.2, 0.1, 0.05, 0.01];
        levels.extend(
            [
                thresholds.average,
                thresholds.prosecutor,
                thresholds.journalist,
            ]
            .into_iter()
            .flatten(),
        );
        levels.sort_by(|a, b| b.total_cmp(a));
        levels.dedup();
        let records_at_risk = levels
            .into_iter()
            .map(|threshold| RecordsAtRisk {
                threshold,
                prosecutor: share(
                    sizes
                        .iter()
                        .filter(|&(&size, _)| 1.0 / size as f64 > threshold)
                        .map(|(&size, &n)| size * n)
                        .sum(),
                ),
                journalist: pi.map(|pi| {
                    share(
                        sizes
                            .iter()
                            .filter(|&(&size, _)| journalist_risk(size, pi) > threshold)
                            .map(|(&size, &n)| size * n)
                            .sum(),
                    )
                }),
            })
            .collect();
        Risk {
            max_risk: if min == 0 { 0.0 } else { 1.0 / min as f64 },
            average_risk: share(classes),
            records_at_max_risk: share(sizes.get(&min).copied().unwrap_or(0) * min),
            journalist,
            records_at_risk,
        }
    }

    /// Achieved ℓ and t of the published classes.
    pub(crate) fn privacy_figures(&self, classes: &Classes, refused: &[bool]) -> PrivacyAchieved {
        let achieved = self.criteria.achieved(classes, refused);
        let model = &self.policy.privacy;
        PrivacyAchieved {
            model: model.describe(),
            min_class_size_required: self.criteria.min_class_size(),
            l_diversity: model
                .l_diversity
                .iter()
                .zip(&achieved.l)
                .map(|(l, &a)| LAchieved {
                    attribute: l.attribute.clone(),
                    variant: match l.variant {
                        LVariant::Distinct => "distinct".into(),
                        LVariant::Entropy => "entropy".into(),
                    },
                    required: l.l,
                    achieved: a,
                })
                .collect(),
            t_closeness: model
                .t_closeness
                .iter()
                .zip(&achieved.t)
                .map(|(t, &a)| TAchieved {
                    attribute: t.attribute.clone(),
                    distance: match t.distance {
                        GroundDistance::Equal => "equal".into(),
                        GroundDistance::Hierarchy(_) => "hierarchical".into(),
                    },
                    required: t.t,
                    achieved: a,
                })
                .collect(),
        }
    }
}

/// The released data of a solution: rows produced on demand from the input table.
///
/// Each output row has the input's columns in the input's order: identifiers written `*`;
/// quasi-identifiers as the chosen level's label, spelled as in the hierarchy, or `*` in a
/// suppressed row; sensitive and insensitive values unchanged; pseudonym, date-shift,
/// top-bottom-coded and free-text columns as their [`Transformer`] computes them (in
/// suppressed rows too), or `*` when none is attached. Suppressed rows are kept (all
/// quasi-identifiers `*`, as ARX does) or left out, as the policy says.
pub struct Release<'a, 't> {
    anonymiser: &'a Anonymiser<'t>,
    levels: Vec<u8>,
    base_suppressed: Vec<bool>,
    report: Report,
    /// The column transformations; without them, transformed columns are written `*`.
    transformer: Option<Transformer>,
    /// Set for a local recoding (then `levels` and `base_suppressed` are empty).
    local: Option<LocalRows>,
}

impl<'a, 't> Release<'a, 't> {
    /// The report.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The report, by value.
    pub fn into_report(self) -> Report {
        self.report
    }

    /// Attaches the column transformations (prepared for this release's table). Without
    /// them every pseudonym, date-shift, top-bottom-coded and free-text column is written
    /// `*`, so a raw value can never be released by forgetting them.
    pub fn with_transformer(mut self, transformer: Transformer) -> Self {
        self.transformer = Some(transformer);
        self
    }

    /// The output's column names (the input's).
    pub fn header(&self) -> &'t [String] {
        self.anonymiser.table.header()
    }

    /// Calls `f` with each output row, in input order.
    pub fn for_each_row<E>(&self, mut f: impl FnMut(&[&str]) -> Result<(), E>) -> Result<(), E> {
        let a = self.anonymiser;
        let table = a.table;
        let remove = a.policy.suppressed_rows == SuppressedRows::Remove;
        // Per quasi-identifier: code -> label at the chosen level.
        let labels: Vec<Vec<&str>> = a
            .enc
            .qis
            .iter()
            .zip(&self.levels)
            .map(|(qi, &l)| {
                if l == 0 {
                    table.column(qi.table_column).values.iter().collect()
                } else {
                    qi.map[l as usize]
                        .iter()
                        .map(|&id| qi.labels[l as usize][id as usize].as_str())
                        .collect()
                }
            })
            .collect();
        let mut spare: Vec<&'static str> = Vec::with_capacity(table.num_columns());
        for i in 0..table.num_rows() {
            let suppressed = match &self.local {
                Some(local) => local.suppressed(i),
                None => self.base_suppressed[a.row_base[i] as usize],
            };
            if suppressed && remove {
                continue;
            }
            // Transformed values of this row, in column order (owned when computed).
            let transformed: Vec<Cow<'_, str>> = match &self.transformer {
                Some(t) => (0..table.num_columns())
                    .filter(|&c| a.roles[c].0.is_transformed())
                    .map(|c| t.value(table, i, c).unwrap_or(Cow::Borrowed("*")))
                    .collect(),
                None => Vec::new(),
            };
            let mut next_transformed = transformed.iter();
            let mut row: Vec<&str> = recycle(std::mem::take(&mut spare));
            for (c, (kind, qi)) in a.roles.iter().enumerate() {
                let value = match (kind, qi) {
                    (AttributeKind::Identifier, _) => "*",
                    (k, _) if k.is_transformed() => {
                        next_transformed.next().map_or("*", |v| v.as_ref())
                    }
                    (_, Some(_)) if suppressed => "*",
                    (_, Some(j)) => match &self.local {
                        Some(local) => local.label(a, i, *j),
                        None => labels[*j][table.column(c).codes[i] as usize],
                    },
                    _ => table.value(i, c),
                };
                row.push(value);
            }
            f(&row)?;
            spare = recycle(row);
        }
        Ok(())
    }

    /// The output as a table.
    pub fn to_table(&self) -> Result<Table, DeidError> {
        let mut out = Table::new(self.header().to_vec())?;
        self.for_each_row(|row| out.push_row(row))?;
        Ok(out)
    }
}

/// Empties a vector of borrowed strings and returns its allocation with a fresh lifetime
/// (an in-place collect of an empty iterator), so one row buffer serves rows that borrow
/// from per-row values.
fn recycle<'b>(mut v: Vec<&str>) -> Vec<&'b str> {
    v.clear();
    v.into_iter().map(|_| "").collect()
}

/// Pure one-shot: de-identifies by the policy's `algorithm` ([`Anonymiser::anonymise`]) and
/// returns the output table and the report.
pub fn anonymise_table(
    table: &Table,
    policy: &Policy,
    hierarchies: &Hierarchies,
) -> Result<(Table, Report), DeidError> {
    let transformer = Transformer::new(table, policy, None)?;
    let anonymiser = Anonymiser::new(table, policy, hierarchies)?;
    let release = anonymiser.anonymise()?.with_transformer(transformer);
    let out = release.to_table()?;
    Ok((out, release.into_report()))
}

/// Pure one-shot with the agreement key for pseudonym and date-shift columns (the release
/// pipeline's entry point): de-identifies by the policy's `algorithm`, applies the policy's
/// transformations and returns the output table and the report. The transformations are
/// checked before the search, so a bad value or a missing key fails fast.
pub fn anonymise_table_with_key(
    table: &Table,
    policy: &Policy,
    hierarchies: &Hierarchies,
    key: Option<&PseudonymKey>,
) -> Result<(Table, Report), DeidError> {
    let transformer = Transformer::new(table, policy, key)?;
    let anonymiser = Anonymiser::new(table, policy, hierarchies)?;
    let release = anonymiser.anonymise()?.with_transformer(transformer);
    let out = release.to_table()?;
    Ok((out, release.into_report()))
}
