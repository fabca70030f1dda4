//! Measuring the screening on a labelled corpus laid out as the SpamAssassin public corpus is
//! in `../shared/data/spamassassin` (`ham_easy/`, `ham_hard/`, `spam/`, one `.eml` per file),
//! with a deterministic train/test split.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::bayes::{BayesModel, Trainer};
use crate::config::MailConfig;
use crate::scanner::Scanner;
use crate::verdict::{Report, Verdict};

/// Which side of the split a file is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// The split: FNV-1a-64 of the file name (not the path) modulo 100; below 70 trains, the rest
/// tests. Stable across machines and runs, and independent of directory order.
pub fn split_of(file_name: &str) -> Split {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in file_name.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    if h % 100 < 70 {
        Split::Train
    } else {
        Split::Test
    }
}

/// One labelled message file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub path: PathBuf,
    /// The folder it came from (`ham_easy`, `ham_hard`, `spam`).
    pub set: String,
    pub spam: bool,
    pub split: Split,
}

/// The corpus's files, sorted by set then name. Sets whose folder is missing are skipped.
pub fn load_corpus(dir: &Path) -> std::io::Result<Vec<Sample>> {
    let mut out = Vec::new();
    for (set, spam) in [("ham_easy", false), ("ham_hard", false), ("spam", true)] {
        let d = dir.join(set);
        if !d.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for path in files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(Sample {
                split: split_of(&name),
                path,
                set: set.to_string(),
                spam,
            });
        }
    }
    Ok(out)
}

/// Trains a model on the given samples (features counted once per message).
pub fn train(
    samples: &[&Sample],
    config: &MailConfig,
    min_count: u32,
) -> std::io::Result<BayesModel> {
    let scanner = Scanner::new(config.clone(), None).map_err(std::io::Error::other)?;
    let mut trainer = Trainer::new();
    for s in samples {
        let raw = std::fs::read(&s.path)?;
        if let Some(f) = scanner.features(&raw) {
            trainer.add(&f, s.spam);
        }
    }
    Ok(trainer.finish(min_count))
}

/// Verdict counts for one set of test messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    /// Verdict at least `tag`.
    pub tagged: usize,
    /// Verdict at least `quarantine`.
    pub quarantined: usize,
    pub rejected: usize,
}

impl Counts {
    fn add(&mut self, v: Verdict) {
        self.total += 1;
        self.tagged += usize::from(v >= Verdict::Tag);
        self.quarantined += usize::from(v >= Verdict::Quarantine);
        self.rejected += usize::from(v >= Verdict::Reject);
    }

    fn pct(n: usize, d: usize) -> f64 {
        if d == 0 {
            0.0
        } else {
            100.0 * n as f64 / d as f64
        }
    }
}

/// The result of training on the train split and scanning the test split.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub train_ham: usize,
    pub train_spam: usize,
    pub model_features: usize,
    pub model_bytes: usize,
    pub ham_easy: Counts,
    pub ham_hard: Counts,
    pub spam: Counts,
    /// Test messages whose verdict was wrong at the tag threshold, with their reports.
    pub mistakes: Vec<(Sample, Report)>,
}

impl Evaluation {
    /// All ham (easy and hard).
    pub fn ham(&self) -> Counts {
        Counts {
            total: self.ham_easy.total + self.ham_hard.total,
            tagged: self.ham_easy.tagged + self.ham_hard.tagged,
            quarantined: self.ham_easy.quarantined + self.ham_hard.quarantined,
            rejected: self.ham_easy.rejected + self.ham_hard.rejected,
        }
    }

    /// Percentage of test ham wrongly tagged (or worse).
    pub fn ham_fp_at_tag(&self) -> f64 {
        let h = self.ham();
        Counts::pct(h.tagged, h.total)
    }

    /// Percentage of test spam tagged (or worse).
    pub fn spam_caught_at_tag(&self) -> f64 {
        Counts::pct(self.spam.tagged, self.spam.total)
    }
}

/// Trains on the train split of `dir` and scans its test split with `config`.
pub fn evaluate(dir: &Path, config: &MailConfig) -> std::io::Result<Evaluation> {
    let corpus = load_corpus(dir)?;
    let train_set: Vec<&Sample> = corpus.iter().filter(|s| s.split == Split::Train).collect();
    let test_set: Vec<&Sample> = corpus.iter().filter(|s| s.split == Split::Test).collect();
    evaluate_on(&train_set, &test_set, config)
}

/// Trains on `train` and scans `test`.
pub fn evaluate_on(
    train_set: &[&Sample],
    test_set: &[&Sample],
    config: &MailConfig,
) -> std::io::Result<Evaluation> {
    let model = train(train_set, config, 2)?;
    let model_bytes = model.to_bytes().len();
    let model_features = model.len();
    let scanner = Scanner::new(config.clone(), Some(model)).map_err(std::io::Error::other)?;
    let mut e = Evaluation {
        train_ham: train_set.iter().filter(|s| !s.spam).count(),
        train_spam: train_set.iter().filter(|s| s.spam).count(),
        model_features,
        model_bytes,
        ham_easy: Counts::default(),
        ham_hard: Counts::default(),
        spam: Counts::default(),
        mistakes: Vec::new(),
    };
    for s in test_set {
        let raw = std::fs::read(&s.path)?;
        let report = scanner.scan(&raw);
        let counts = match (s.spam, s.set.as_str()) {
            (true, _) => &mut e.spam,
            (false, "ham_hard") => &mut e.ham_hard,
            (false, _) => &mut e.ham_easy,
        };
        counts.add(report.verdict);
        if (report.verdict >= Verdict::Tag) != s.spam {
            e.mistakes.push(((*s).clone(), report));
        }
    }
    Ok(e)
}

/// K-fold cross-validation over the whole corpus (folds by file-name hash), every message
/// tested once by a model that did not see it; counts summed over the folds, model size and
/// training counts those of the last fold. A robustness check beside the fixed split.
pub fn kfold(dir: &Path, config: &MailConfig, folds: u64) -> std::io::Result<Evaluation> {
    let corpus = load_corpus(dir)?;
    let mut total: Option<Evaluation> = None;
    for k in 0..folds {
        let train_set: Vec<&Sample> = corpus.iter().filter(|s| fold_of(s, folds) != k).collect();
        let test_set: Vec<&Sample> = corpus.iter().filter(|s| fold_of(s, folds) == k).collect();
        let e = evaluate_on(&train_set, &test_set, config)?;
        total = Some(match total {
            None => e,
            Some(mut t) => {
                for (a, b) in [
                    (&mut t.ham_easy, &e.ham_easy),
                    (&mut t.ham_hard, &e.ham_hard),
                    (&mut t.spam, &e.spam),
                ] {
                    a.total += b.total;
                    a.tagged += b.tagged;
                    a.quarantined += b.quarantined;
                    a.rejected += b.rejected;
                }
                t.mistakes.extend(e.mistakes);
                t.train_ham = e.train_ham;
                t.train_spam = e.train_spam;
                t.model_bytes = e.model_bytes;
                t.model_features = e.model_features;
                t
            }
        });
    }
    total.ok_or_else(|| std::io::Error::other("no folds"))
}

/// A fold number from a second hash of the file name (independent of [`split_of`]).
fn fold_of(s: &Sample, folds: u64) -> u64 {
    let name = s
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut h = 0x8422_2325_cbf2_9ce4u64;
    for &b in name.as_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    (h >> 7) % folds.max(1)
}

/// One message of a cross-validation run: its classifier probability and its report.
#[derive(Debug, Clone)]
pub struct CvRow {
    pub sample: Sample,
    pub probability: f64,
    pub clues: usize,
    pub spam_evidence: f64,
    pub ham_evidence: f64,
    pub report: Report,
}

/// K-fold cross-validation inside the train split only (folds by a second hash of the file
/// name), for tuning weights without looking at the test split.
pub fn cross_validate(dir: &Path, config: &MailConfig, folds: u64) -> std::io::Result<Vec<CvRow>> {
    let corpus = load_corpus(dir)?;
    let train_set: Vec<&Sample> = corpus.iter().filter(|s| s.split == Split::Train).collect();
    let fold_of = |s: &Sample| fold_of(s, folds);
    let mut rows = Vec::new();
    for k in 0..folds {
        let fit: Vec<&Sample> = train_set
            .iter()
            .copied()
            .filter(|s| fold_of(s) != k)
            .collect();
        let model = train(&fit, config, 2)?;
        let scanner =
            Scanner::new(config.clone(), Some(model.clone())).map_err(std::io::Error::other)?;
        for s in train_set.iter().filter(|s| fold_of(s) == k) {
            let raw = std::fs::read(&s.path)?;
            let c = scanner
                .features(&raw)
                .map(|f| model.classify(&f))
                .unwrap_or(crate::bayes::Classification {
                    probability: 0.5,
                    clues: 0,
                    spam_evidence: 0.0,
                    ham_evidence: 0.0,
                });
            rows.push(CvRow {
                sample: (*s).clone(),
                probability: c.probability,
                clues: c.clues,
                spam_evidence: c.spam_evidence,
                ham_evidence: c.ham_evidence,
                report: scanner.scan(&raw),
            });
        }
    }
    Ok(rows)
}

/// Points of a ROC curve at the levels `cargo xtask bench mail --accuracy` reports, from each
/// message's label, score and whether its verdict flags it (`tag` or worse). A message flagged
/// by a floor below the tag score ranks at the tag score, as in the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RocPoints {
    pub ham: usize,
    pub spam: usize,
    /// Ham and spam flagged at the default thresholds.
    pub default_ham: usize,
    pub default_spam: usize,
    /// Spam scoring strictly above the highest ham.
    pub spam_at_zero_ham: usize,
    /// Spam scoring strictly above the (k+1)-th highest ham, k = 0.5% of the ham (rounded
    /// down).
    pub spam_at_half_percent_ham: usize,
    /// Ham scoring at or above the spam score that catches 95% of the spam (rounded up).
    pub ham_at_95_percent_spam: usize,
}

/// The [`RocPoints`] of `(spam, score, flagged)` rows with tag threshold `tag`.
pub fn roc_points(rows: &[(bool, f64, bool)], tag: f64) -> RocPoints {
    let rank = |&(_, score, flagged): &(bool, f64, bool)| {
        if flagged { score.max(tag) } else { score }
    };
    let mut ham: Vec<f64> = rows.iter().filter(|r| !r.0).map(rank).collect();
    let mut spam: Vec<f64> = rows.iter().filter(|r| r.0).map(rank).collect();
    ham.sort_by(|a, b| b.total_cmp(a));
    spam.sort_by(|a, b| b.total_cmp(a));
    let above = |k: usize| match ham.get(k) {
        None => spam.len(),
        Some(&bar) => spam.iter().filter(|&&s| s > bar).count(),
    };
    let need = (spam.len() * 95).div_ceil(100);
    let ham_at_95 = match need.checked_sub(1).and_then(|i| spam.get(i)) {
        None => 0,
        Some(&bar) => ham.iter().filter(|&&h| h >= bar).count(),
    };
    RocPoints {
        ham: ham.len(),
        spam: spam.len(),
        default_ham: rows.iter().filter(|r| !r.0 && r.2).count(),
        default_spam: rows.iter().filter(|r| r.0 && r.2).count(),
        spam_at_zero_ham: above(0),
        spam_at_half_percent_ham: above(ham.len() / 200),
        ham_at_95_percent_spam: ham_at_95,
    }
}

impl fmt::Display for RocPoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "default: ham {}/{}, spam {}/{}; spam caught at 0 ham: {}; at <= {} ham (0.5%): {}; \
             ham flagged at >= 95% spam: {}",
            self.default_ham,
            self.ham,
            self.default_spam,
            self.spam,
            self.spam_at_zero_ham,
            self.ham / 200,
            self.spam_at_half_percent_ham,
            self.ham_at_95_percent_spam
        )
    }
}

impl fmt::Display for Evaluation {
    /// A Markdown table of the results.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "trained on {} ham + {} spam; model {} features, {} bytes",
            self.train_ham, self.train_spam, self.model_features, self.model_bytes
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| test set | messages | tagged or worse | quarantined or worse | rejected |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|")?;
        let ham = self.ham();
        for (name, c) in [
            ("ham (easy)", &self.ham_easy),
            ("ham (hard)", &self.ham_hard),
            ("ham (all)", &ham),
            ("spam", &self.spam),
        ] {
            writeln!(
                f,
                "| {name} | {} | {} ({:.2}%) | {} ({:.2}%) | {} ({:.2}%) |",
                c.total,
                c.tagged,
                Counts::pct(c.tagged, c.total),
                c.quarantined,
                Counts::pct(c.quarantined, c.total),
                c.rejected,
                Counts::pct(c.rejected, c.total),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stable_and_near_70_30() {
        assert_eq!(
            split_of("00001.7848dde101aa985090474a91ec93fcf0.eml"),
            split_of("00001.7848dde101aa985090474a91ec93fcf0.eml")
        );
        let train = (0..10_000)
            .filter(|i| split_of(&format!("{i:05}.eml")) == Split::Train)
            .count();
        assert!((6_700..7_300).contains(&train), "{train}");
    }

    #[test]
    fn roc_points_follow_the_bench_rules() {
        // 400 ham: 0.5% is 2. Ham scores 0..399 / 100 (all below 4), one ham at 9 and one
        // flagged by a floor at score 1 (ranks at 5). Spam: 20 at 10, one at 4.5, one tied
        // with the floored ham at 5.
        let mut rows: Vec<(bool, f64, bool)> = (0..398)
            .map(|i| (false, f64::from(i) / 100.0, false))
            .collect();
        rows.push((false, 9.0, true));
        rows.push((false, 1.0, true));
        rows.extend((0..20).map(|_| (true, 10.0, true)));
        rows.push((true, 4.5, false));
        rows.push((true, 5.0, true));
        let r = roc_points(&rows, 5.0);
        assert_eq!((r.ham, r.spam), (400, 22));
        assert_eq!((r.default_ham, r.default_spam), (2, 21));
        assert_eq!(r.spam_at_zero_ham, 20); // above 9
        assert_eq!(r.spam_at_half_percent_ham, 22); // above the third ham, 3.97
        // 95% of 22 is 21 (rounded up): the 21st spam scores 5.0; ham at or above: 9 and 5.
        assert_eq!(r.ham_at_95_percent_spam, 2);
    }

    /// `cargo xtask bench mail` repeats the rule (xtask depends on no product crate); its
    /// test `split_matches_the_engine` pins the same names and count.
    #[test]
    fn split_pins_known_names() {
        assert_eq!(
            split_of("00001.7848dde101aa985090474a91ec93fcf0.eml"),
            Split::Train
        );
        assert_eq!(
            split_of("00006.5ab5620d3d7c6c0db76234556a16f6c1.eml"),
            Split::Test
        );
        assert_eq!(
            split_of("00010.445affef4c70feec58f9198cfbc22997.eml"),
            Split::Test
        );
        let train = (0..10_000)
            .filter(|i| split_of(&format!("{i:05}.eml")) == Split::Train)
            .count();
        assert_eq!(train, 6_973);
    }
}
