//! `pingce compare REF CAND`: a candidate logit dump against a reference one; prints the metrics
//! and a PASS/FAIL table and exits non-zero on FAIL or on any error.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use pingce::conformance::compare::{check_layout, compare, MissingEstimate, Thresholds, ThresholdsFile};
use pingce::conformance::Dump;

#[derive(Args)]
pub struct CompareArgs {
    /// Reference dump (e.g. tools/export_reference.py, or a golden pingce run).
    reference: PathBuf,
    /// Candidate dump (`pingce logits` on the device under test).
    candidate: PathBuf,
    /// JSON object with any of max_mean_kld, min_top1_agreement, max_abs_dlogprob, max_flips,
    /// max_p99_kld, max_max_kld, max_rms_dp; flags given here override it.
    #[arg(long)]
    thresholds: Option<PathBuf>,
    /// Largest mean KL divergence (default 1e-3).
    #[arg(long, visible_alias = "max-kld")]
    max_mean_kld: Option<f64>,
    /// Smallest fraction of positions whose argmax ids agree (default 0.99).
    #[arg(long)]
    min_top1_agreement: Option<f64>,
    /// Largest |Δ log-prob| of a target token (default 5e-2).
    #[arg(long)]
    max_abs_dlogprob: Option<f64>,
    /// Most multiple-choice items whose chosen answer may change (default 0).
    #[arg(long)]
    max_flips: Option<u64>,
    /// Largest 99th-percentile KL divergence (unchecked by default).
    #[arg(long)]
    max_p99_kld: Option<f64>,
    /// Largest KL divergence at any position (unchecked by default).
    #[arg(long)]
    max_max_kld: Option<f64>,
    /// Largest RMS of the target tokens' Δp (unchecked by default).
    #[arg(long)]
    max_rms_dp: Option<f64>,
    /// How a reference top-k id missing from the candidate's top-k enters the KL estimate.
    #[arg(long, value_enum, default_value = "tail-average")]
    missing: MissingEstimate,
    /// Compare dumps of different model files (the token streams must still match).
    #[arg(long)]
    allow_different_models: bool,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: CompareArgs) -> Result<()> {
    let mut t = Thresholds::default();
    if let Some(p) = &a.thresholds {
        ThresholdsFile::read(p)?.apply(&mut t);
    }
    let flags = ThresholdsFile {
        max_mean_kld: a.max_mean_kld,
        min_top1_agreement: a.min_top1_agreement,
        max_abs_dlogprob: a.max_abs_dlogprob,
        max_flips: a.max_flips,
        max_p99_kld: a.max_p99_kld,
        max_max_kld: a.max_max_kld,
        max_rms_dp: a.max_rms_dp,
    };
    flags.apply(&mut t);
    t.validate()?;
    let r = Dump::read(&a.reference)?;
    let c = Dump::read(&a.candidate)?;
    check_layout(&a.reference, &r, &a.candidate, &c, a.allow_different_models)?;
    let report = compare(&a.reference, &r, &a.candidate, &c, &t, a.missing);
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if a.json {
        serde_json::to_writer_pretty(&mut w, &report)?;
        writeln!(w)?;
    } else {
        write!(w, "{}", report.text())?;
    }
    w.flush()?;
    if !report.pass {
        let failed: Vec<&str> = report.checks.iter().filter(|c| !c.pass).map(|c| c.metric.as_str()).collect();
        return Err(super::CheckFailed(format!("FAIL: {}", failed.join(", "))).into());
    }
    Ok(())
}
