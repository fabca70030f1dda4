//! `caldicott share aggregate`: protects a table of counts before it leaves (small-number
//! suppression, complementary suppression against the totals, rounding to 5), writing a CSV
//! with the totals computed by the tool. The rules are `caldicott_deid::aggregate`'s; this is
//! only the command's edge.

use std::path::{Path, PathBuf};

use anyhow::Context;
use caldicott_deid::aggregate::AggregateRules;

/// The command's arguments, to be embedded in the `share` subcommands as
/// `Aggregate(aggregate_cmd::AggregateArgs)`.
#[derive(Debug, Clone, clap::Args)]
pub struct AggregateArgs {
    /// CSV of counts: a header (row-label heading, then column labels) and one line per row
    /// (label, then non-negative whole counts). No totals: they are computed.
    #[arg(long)]
    pub input: PathBuf,
    /// The protected CSV to write (with a `Total` column and row; suppressed counts written
    /// `[REDACTED]`). Written atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// Counts from 1 to this are suppressed (OpenSAFELY: 7).
    #[arg(long, default_value_t = 7)]
    pub threshold: u64,
    /// Published counts are rounded to the nearest multiple of this (OpenSAFELY: 5; 1 for none).
    #[arg(long, default_value_t = 5)]
    pub rounding: u64,
    /// Suppress zero counts too.
    #[arg(long)]
    pub suppress_zeros: bool,
}

impl AggregateArgs {
    /// Runs the command.
    pub fn run(&self) -> anyhow::Result<()> {
        run(
            &self.input,
            &self.out,
            &AggregateRules {
                threshold: self.threshold,
                rounding: self.rounding,
                suppress_zeros: self.suppress_zeros,
            },
        )
    }
}

/// Protects the counts in `input` under `rules` and writes them to `out`.
pub fn run(input: &Path, out: &Path, rules: &AggregateRules) -> anyhow::Result<()> {
    let protected = caldicott_deid::io::protect_counts_csv(input, out, rules)
        .with_context(|| format!("protecting the counts in {}", input.display()))?;
    let cells: usize = protected.cells.iter().map(Vec::len).sum();
    say!(
        "wrote {} ({} rows x {} columns with totals): {} of {cells} counts suppressed as 1-{}, {} more so they cannot be recovered from the totals; published counts rounded to the nearest {}",
        out.display(),
        protected.row_labels.len(),
        protected.column_labels.len(),
        protected.primary(),
        rules.threshold,
        protected.secondary(),
        rules.rounding.max(1),
    );
    if !protected.exposed_zeros.is_empty() {
        say!(
            "warning: {} suppressed zeros lie in a row or column that is all zero, so its total reveals them",
            protected.exposed_zeros.len()
        );
    }
    Ok(())
}
