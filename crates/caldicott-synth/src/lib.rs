//! Deterministic synthetic UK patients as FHIR R4 JSON, for tests, demos and benchmarks.
//!
//! This crate makes a population of made-up patients registered with 5–10 made-up GP
//! practices, and writes each as UK Core-shaped FHIR R4 resources: a `Patient` (one NHS number
//! from the `999` test range with a verification-status extension, name, gender, birth date,
//! address with a real-shaped postcode, an Ofcom drama-range mobile number, and the GP
//! practice), 1–4 `Encounter`s, 2–10 vital-sign `Observation`s (LOINC codes, UCUM units),
//! 0–3 `Condition`s (SNOMED CT) and 0–3 `MedicationStatement`s (SNOMED CT clinical drugs with
//! dm+d names), plus one `Organization` per practice. Every clinical date falls in the five
//! years before a fixed reference date, 2026-01-01.
//!
//! Output is a pure function of the seed (and the patient index): no clock, no network, no
//! data files, no hash-map ordering and no third-party random number generator, so the same
//! seed gives byte-identical output on every machine and with every dependency version.
//! Each patient depends only on `(seed, index)`, so patients can be generated in parallel and
//! in any order. [`write_ndjson`] streams a whole data set as NDJSON; [`Generator`] gives
//! single patients.
//!
//! It is *not* a clinical simulator: the records are plausible in shape and roughly in
//! proportion (older patients have more conditions, care-home residents get home visits,
//! babies are weighed to 10 g), but no disease course, prescribing rule or epidemiology is
//! modelled, and nothing here should be read as medical fact. It is *not* an anonymiser and
//! never reads real data: every name, street, practice and number is drawn from small lists
//! written into this crate and from ranges reserved for fiction or testing. It does not
//! validate FHIR; it writes structurally valid R4 and leaves profile validation to tools
//! built for it.
//!
//! ```
//! use caldicott_synth::{SynthConfig, write_ndjson};
//!
//! let mut out = Vec::new();
//! let summary = write_ndjson(&SynthConfig { patients: 10, seed: 7 }, &mut out, |_| {})?;
//! assert_eq!(summary.patients, 10);
//! assert_eq!(summary.resources, out.iter().filter(|b| **b == b'\n').count());
//! # Ok::<(), caldicott_synth::SynthError>(())
//! ```

#![forbid(unsafe_code)]

mod codes;
mod data;
mod date;
mod fhir;
mod generate;
mod rng;

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};

pub use generate::Generator;

/// The most patients one seed can have with distinct NHS numbers (900,000 of the roughly
/// 909,000 valid numbers in the `999 000 0000`–`999 999 9999` test range).
pub const MAX_PATIENTS: usize = generate::NHS_SLOTS as usize;

/// The fixed "today" of every data set (not the clock): clinical dates fall in the five
/// years before it, and ages are counted to it.
pub const REFERENCE_DATE: &str = "2026-01-01";

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SynthConfig {
    /// Number of patients, at most [`MAX_PATIENTS`].
    pub patients: usize,
    /// The seed: the same seed always gives the same data set.
    pub seed: u64,
}

/// One generated resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthResource {
    /// The FHIR resource type, e.g. `Patient`.
    pub resource_type: &'static str,
    /// The resource's logical id (a lowercase UUID, deterministic in the seed).
    pub id: String,
    /// The resource as compact JSON on one line (no trailing newline).
    pub json: String,
}

/// What [`write_ndjson`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Patients written.
    pub patients: usize,
    /// Resources (lines) written, Organizations included.
    pub resources: usize,
    /// Resources written, by resource type.
    pub by_type: BTreeMap<&'static str, usize>,
}

/// Why a data set could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    /// More patients were asked for than the NHS number test range can keep distinct.
    #[error(
        "{requested} patients requested, but one data set holds at most {max} (distinct NHS numbers in the 999 test range)"
    )]
    TooManyPatients {
        /// Patients requested.
        requested: usize,
        /// [`MAX_PATIENTS`].
        max: usize,
    },
    /// Writing the output failed.
    #[error("writing synthetic data failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes Organization resources first, then each patient's resources, one JSON object per
/// line (NDJSON).
///
/// Output is buffered internally and flushed before returning. `progress` is called after
/// each patient with the number of patients written so far. Fails with
/// [`SynthError::TooManyPatients`] (before writing anything) when `cfg.patients` exceeds
/// [`MAX_PATIENTS`], and with [`SynthError::Io`] when the writer fails.
pub fn write_ndjson<W: Write>(
    cfg: &SynthConfig,
    out: W,
    mut progress: impl FnMut(usize),
) -> Result<Summary, SynthError> {
    if cfg.patients > MAX_PATIENTS {
        return Err(SynthError::TooManyPatients {
            requested: cfg.patients,
            max: MAX_PATIENTS,
        });
    }
    let generator = Generator::new(cfg.seed);
    let mut out = BufWriter::with_capacity(256 * 1024, out);
    let mut summary = Summary::default();
    let mut write = |r: &SynthResource, summary: &mut Summary| -> std::io::Result<()> {
        out.write_all(r.json.as_bytes())?;
        out.write_all(b"\n")?;
        summary.resources += 1;
        *summary.by_type.entry(r.resource_type).or_default() += 1;
        Ok(())
    };
    for r in &generator.organizations() {
        write(r, &mut summary)?;
    }
    let mut batch = Vec::with_capacity(32);
    for index in 0..cfg.patients {
        batch.clear();
        generator.patient_into(index as u64, &mut batch);
        for r in &batch {
            write(r, &mut summary)?;
        }
        summary.patients += 1;
        progress(summary.patients);
    }
    out.flush()?;
    Ok(summary)
}
