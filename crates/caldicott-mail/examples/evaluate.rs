//! Trains on the train split of a SpamAssassin-style corpus and scans its test split (see
//! `caldicott_mail::eval`), printing a Markdown table and, with `--mistakes`, every test
//! message misjudged at the tag threshold with its symbols.
//!
//! ```text
//! cargo run --release -p caldicott-mail --example evaluate -- ../shared/data/spamassassin \
//!     [--config mail.toml] [--mistakes] [--kfold 10 | --cv]
//! ```
//!
//! `--kfold N` runs N-fold cross-validation over the whole corpus instead of the fixed split;
//! `--cv` prints one tab-separated row per train-split message from a cross-validation inside
//! the train split (`--folds N`, 10 by default; what the weights were tuned on), and on stderr
//! the verdict counts and the ROC points the accuracy bench reports.
//!
//! ```text
//! ```

use std::path::PathBuf;
use std::time::Instant;

use caldicott_mail::MailConfig;
use caldicott_mail::eval;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut dir = PathBuf::from("../shared/data/spamassassin");
    let mut config = MailConfig::default();
    let mut mistakes = false;
    let mut cv = false;
    let mut kfold: Option<u64> = None;
    let mut folds: u64 = 10;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mistakes" => mistakes = true,
            "--cv" => cv = true,
            "--folds" => folds = args.next().ok_or("--folds needs a number")?.parse()?,
            "--kfold" => kfold = Some(args.next().ok_or("--kfold needs a number")?.parse()?),
            "--config" => {
                let p = args.next().ok_or("--config needs a file")?;
                config = MailConfig::from_toml_str(&std::fs::read_to_string(p)?)?;
            }
            _ => dir = PathBuf::from(a),
        }
    }
    if !dir.join("spam").is_dir() {
        println!("SKIPPED: no corpus at {}", dir.display());
        return Ok(());
    }
    if cv {
        // Tab-separated rows for tuning on the train split: set, probability, clues, score
        // without the classifier, symbols.
        let rows = eval::cross_validate(&dir, &config, folds)?;
        let count = |spam: bool, v: caldicott_mail::Verdict| {
            rows.iter()
                .filter(|r| r.sample.spam == spam && r.report.verdict >= v)
                .count()
        };
        let (nham, nspam) = (
            rows.iter().filter(|r| !r.sample.spam).count(),
            rows.iter().filter(|r| r.sample.spam).count(),
        );
        eprintln!(
            "cross-validation ({folds} folds of the train split): ham tagged {}/{nham}, quarantined {}; spam tagged {}/{nspam}, quarantined {}",
            count(false, caldicott_mail::Verdict::Tag),
            count(false, caldicott_mail::Verdict::Quarantine),
            count(true, caldicott_mail::Verdict::Tag),
            count(true, caldicott_mail::Verdict::Quarantine),
        );
        let points: Vec<(bool, f64, bool)> = rows
            .iter()
            .map(|r| {
                (
                    r.sample.spam,
                    r.report.score,
                    r.report.verdict >= caldicott_mail::Verdict::Tag,
                )
            })
            .collect();
        eprintln!(
            "ROC points: {}",
            eval::roc_points(&points, config.thresholds.tag)
        );
        for r in &rows {
            let rules: f64 = r
                .report
                .symbols
                .iter()
                .filter(|s| !s.name.starts_with("BAYES_"))
                .map(|s| s.score)
                .sum();
            let names: Vec<&str> = r.report.symbols.iter().map(|s| s.name).collect();
            let floor = r.report.symbols.iter().map(|s| s.min_verdict).max();
            println!(
                "{}\t{:.6}\t{}\t{:.3}\t{}\t{}\t{}\t{:.6}\t{:.6}",
                r.sample.set,
                r.probability,
                r.clues,
                rules,
                floor.map_or("accept".into(), |f| f.to_string()),
                names.join(","),
                r.sample.path.display(),
                r.spam_evidence,
                r.ham_evidence
            );
        }
        return Ok(());
    }
    let start = Instant::now();
    let e = match kfold {
        Some(k) => eval::kfold(&dir, &config, k)?,
        None => eval::evaluate(&dir, &config)?,
    };
    println!("{e}");
    println!(
        "thresholds: tag {}, quarantine {}, reject {}; {:.1} s",
        config.thresholds.tag,
        config.thresholds.quarantine,
        config.thresholds.reject,
        start.elapsed().as_secs_f64()
    );
    if mistakes {
        for (s, r) in &e.mistakes {
            let kind = if s.spam { "missed spam" } else { "flagged ham" };
            println!(
                "\n{kind} {} ({}): {} {}",
                s.path.display(),
                s.set,
                r.verdict,
                r.score
            );
            for sym in &r.symbols {
                println!("  {:>7.3} {} {}", sym.score, sym.name, sym.reason);
            }
        }
    }
    Ok(())
}
