//! `pingce eval` and `pingce tasks`: run YAML-declared tasks (evals/) on a model and write
//! results.json, samples_<task>.jsonl and summary.md into --output.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use pingce::eval::plan::{self, PlanOptions};
use pingce::eval::runner::{self, RunOptions};
use pingce::eval::task;
use serde_json::json;

use super::ModelArgs;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Task names, groups or globs, comma-separated (see `pingce tasks`).
    #[arg(long, value_delimiter = ',', required = true)]
    tasks: Vec<String>,
    #[command(flatten)]
    plan: PlanArgs,
    /// Output folder; rerunning into it resumes.
    #[arg(long)]
    output: PathBuf,
    /// Documents per engine call (each finished chunk is written to disk).
    #[arg(long, default_value_t = 32)]
    chunk: usize,
}

/// How tasks' documents are chosen and rendered (shared by `eval` and `logits --tasks`).
#[derive(Args)]
pub struct PlanArgs {
    /// Folder holding the datasets in their published layouts.
    #[arg(long, default_value = "evals/samples")]
    pub data_dir: PathBuf,
    /// Only the first N documents of each task (N ≥ 1).
    #[arg(long, value_parser = super::at_least_one)]
    pub limit: Option<usize>,
    /// Few-shot examples (default: each task's own setting).
    #[arg(long)]
    pub num_fewshot: Option<usize>,
    /// Few-shot sampling seed for every task (default: each task's `fewshot_seed`, lm-eval's 1234
    /// unless its YAML says otherwise).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Folder of task YAML files.
    #[arg(long, default_value = "evals")]
    pub tasks_dir: PathBuf,
    /// Let task files and dataset paths (`..`, absolute paths, symlinks) lead outside
    /// --tasks-dir and --data-dir.
    #[arg(long)]
    pub allow_outside_paths: bool,
}

impl PlanArgs {
    pub fn options(&self) -> PlanOptions {
        PlanOptions {
            data_dir: self.data_dir.clone(),
            limit: self.limit,
            num_fewshot: self.num_fewshot,
            seed: self.seed,
            allow_outside_paths: self.allow_outside_paths,
        }
    }
}

#[derive(Args)]
pub struct TasksArgs {
    /// Folder of task YAML files.
    #[arg(long, default_value = "evals")]
    tasks_dir: PathBuf,
}

pub fn list(a: TasksArgs) -> Result<()> {
    let tasks = task::load_tasks(&a.tasks_dir)?;
    let mut groups: BTreeSet<&str> = BTreeSet::new();
    for t in &tasks {
        println!("{:<40} {:<24} {}", t.name, format!("{:?}", t.config.output_type), t.groups.join(","));
        groups.extend(t.groups.iter().map(String::as_str));
    }
    println!("\n{} tasks; groups: {}", tasks.len(), groups.into_iter().collect::<Vec<_>>().join(", "));
    Ok(())
}

pub fn run(a: EvalArgs) -> Result<()> {
    let chosen = plan::select_tasks(&a.plan.tasks_dir, &a.tasks, a.plan.allow_outside_paths)?;
    let o = a.plan.options();
    let runs = plan::prepare(&chosen, &o)?;
    let mut engine = a.model.engine()?;
    let opts = RunOptions {
        out: a.output.clone(),
        chunk: a.chunk,
        settings: json!({"tasks": chosen.iter().map(|t| &t.name).collect::<Vec<_>>(), "limit": o.limit, "num_fewshot": o.num_fewshot, "seed": o.seed, "data_dir": o.data_dir}),
        progress: true,
    };
    let results = runner::run(&mut engine, &runs, &opts)?;
    println!("{}", runner::summary(&results));
    eprintln!("results: {}", a.output.join("results.json").display());
    Ok(())
}
