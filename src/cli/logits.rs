//! `pingce logits`: every scored position's target log-prob, top-k and tail mass, written as a
//! safetensors logit dump (docs/logit-dump.md) for `pingce compare`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use pingce::conformance::record::{record, Input, RecordOptions};
use pingce::conformance::MAX_TOPK;
use pingce::eval::plan;

use super::eval::PlanArgs;
use super::ModelArgs;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["requests", "text", "tasks"]))]
pub struct LogitsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSONL file, one {"context": str, "continuation": str} per line (optionally "gold": bool,
    /// marking the right choice of a multiple-choice item); the continuation tokens are scored.
    #[arg(long)]
    requests: Option<PathBuf>,
    /// A text file scored whole, in lm-eval's disjoint rolling windows of the model's context.
    #[arg(long)]
    text: Option<PathBuf>,
    /// Tasks (names, groups, globs; see `pingce tasks`) whose log-likelihood requests are dumped:
    /// every choice of a multiple-choice item, marked gold where it is the answer.
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<String>,
    /// With --tasks: which documents and how they are rendered.
    #[command(flatten)]
    plan: PlanArgs,
    /// Output safetensors file (written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Top-k ids and log-probs stored per position (1..=32).
    #[arg(long, default_value_t = 32)]
    top_k: usize,
    /// Also store the whole log-softmax row of the first N positions (vocab floats each; at most
    /// a few thousand), so `compare` computes their KL divergence exactly.
    #[arg(long, default_value_t = 0)]
    full_rows: usize,
}

/// The log-likelihood requests of `--tasks`.
fn task_input(a: &LogitsArgs) -> Result<Input> {
    let tasks = plan::select_tasks(&a.plan.tasks_dir, &a.tasks, a.plan.allow_outside_paths)?;
    let (requests, skipped) = plan::loglikelihood_requests(&plan::prepare(&tasks, &a.plan.options())?)?;
    for (task, n) in skipped {
        eprintln!("note: task {task}: {n} generation/perplexity items are not log-likelihood requests; use --text for perplexity");
    }
    Ok(Input::Tasks { spec: a.tasks.join(","), requests })
}

pub fn run(a: LogitsArgs) -> Result<()> {
    let k = a.top_k;
    if k == 0 || k > MAX_TOPK {
        bail!("--top-k {k}: must be 1..={MAX_TOPK}");
    }
    // Read the input before loading the model, so a bad file fails fast.
    let input = match (&a.requests, &a.text, a.tasks.is_empty()) {
        (Some(p), None, true) => Input::requests(p)?,
        (None, Some(p), true) => Input::text(p)?,
        (None, None, false) => task_input(&a)?,
        _ => bail!("give exactly one of --requests, --text and --tasks"),
    };
    let model_path = a.model.path()?;
    let mut engine = a.model.engine()?;
    let dump = record(&mut engine, &model_path, &input, &RecordOptions { top_k: k, full_rows: a.full_rows })?;
    dump.write(&a.out)?;
    let unit = if matches!(input, Input::Text { .. }) { "rolling windows" } else { "requests" };
    eprintln!("wrote {} ({} positions in {} {unit}, top-{k})", a.out.display(), dump.len(), dump.manifest.requests);
    Ok(())
}
