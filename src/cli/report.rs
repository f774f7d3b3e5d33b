//! `pingce report RUN_DIR... --output DIR`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct ReportArgs {
    /// Output folders of `pingce eval` (or `pingce merge`), one per model or setting.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Folder for report.html and report.md.
    #[arg(long)]
    output: PathBuf,
    /// Seed of the paired bootstrap (recorded in the report).
    #[arg(long, default_value_t = pingce::report::DEFAULT_SEED)]
    seed: u64,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 2000)]
    resamples: usize,
}

pub fn run(a: ReportArgs) -> Result<()> {
    let opts = pingce::report::Options { seed: a.seed, resamples: a.resamples, progress: true };
    let r = pingce::report::build(&a.runs, &opts)?;
    std::fs::create_dir_all(&a.output)?;
    std::fs::write(a.output.join("report.html"), pingce::report::html::render(&r))?;
    std::fs::write(a.output.join("report.md"), pingce::report::markdown::render(&r))?;
    eprintln!("report: {} and report.md", a.output.join("report.html").display());
    Ok(())
}
