//! `pingce eval` and `pingce tasks`: run YAML-declared tasks (evals/) on a model and write
//! results.json, samples_<task>.jsonl and summary.md into --output.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use pingce::eval::plan::{self, PlanOptions};
use pingce::eval::runner::{self, RunOptions};
use pingce::eval::shard::Shard;
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
    /// Score one shard of every task: `i/N` keeps the documents with doc_id % N == i; `auto`
    /// reads a Slurm job array or a Kubernetes Indexed Job (with --shards). Each shard writes its
    /// own --output; `pingce merge` joins them (see docs/fleet.md).
    #[arg(long, value_name = "i/N|auto")]
    shard: Option<String>,
    /// The number of shards, for `--shard auto` under a Kubernetes Indexed Job (its completions).
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
}

/// How tasks' documents are chosen and rendered (shared by `eval` and `logits --tasks`).
#[derive(Args)]
pub struct PlanArgs {
    /// Folder holding the datasets in their published layouts.
    #[arg(long, default_value = "evals/samples")]
    pub data_dir: PathBuf,
    /// Only the first N documents of each task.
    #[arg(long)]
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
    /// Evaluate another split than each task's standard one (smoke runs): NAME for every task,
    /// or TASK=NAME for a task or a group; repeatable or comma-separated. Recorded in
    /// results.json and flagged in summary.md.
    #[arg(long, value_delimiter = ',')]
    pub split: Vec<String>,
}

impl PlanArgs {
    /// Loads the tasks `specs` select, with the `--split` overrides applied.
    pub fn tasks(&self, specs: &[String]) -> Result<Vec<pingce::eval::task::Task>> {
        let mut tasks = plan::select_tasks(&self.tasks_dir, specs)?;
        plan::apply_splits(&mut tasks, &self.split)?;
        Ok(tasks)
    }

    pub fn options(&self) -> PlanOptions {
        PlanOptions { data_dir: self.data_dir.clone(), limit: self.limit, num_fewshot: self.num_fewshot, seed: self.seed }
    }
}

#[derive(Args)]
pub struct TasksArgs {
    /// Folder of task YAML files.
    #[arg(long, default_value = "evals")]
    tasks_dir: PathBuf,
    /// Validate this task YAML and its data without a model: rows per split and category, and
    /// every malformed row with its line; exits non-zero if any.
    #[arg(long, value_name = "FILE.yaml")]
    check: Option<PathBuf>,
    /// Folder holding the datasets (`files` not starting with `./` or `../`).
    #[arg(long, default_value = "evals/samples")]
    data_dir: PathBuf,
}

/// `pingce tasks --check FILE.yaml`.
fn check(file: &std::path::Path, data_dir: &std::path::Path) -> Result<()> {
    let mut problems = 0;
    for t in task::load_task_file(file)? {
        let report = pingce::eval::bank::check_task(&t, data_dir)?;
        print!("{report}");
        problems += report.problems.len();
    }
    if problems > 0 {
        anyhow::bail!("{}: {problems} problem(s)", file.display());
    }
    Ok(())
}

pub fn list(a: TasksArgs) -> Result<()> {
    if let Some(file) = &a.check {
        return check(file, &a.data_dir);
    }
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
    let chosen = a.plan.tasks(&a.tasks)?;
    let o = a.plan.options();
    let shard = match a.shard.as_deref() {
        None => {
            anyhow::ensure!(a.shards.is_none(), "--shards goes with --shard auto");
            None
        }
        Some("auto") => {
            let (s, from) = Shard::auto(a.shards, &|k| std::env::var(k).ok())?;
            eprintln!("{from}");
            Some(s)
        }
        Some(spec) => {
            let s = Shard::parse(spec)?;
            if let Some(n) = a.shards {
                anyhow::ensure!(n == s.count, "--shards {n} disagrees with --shard {spec}");
            }
            Some(s)
        }
    };
    let mut runs = plan::prepare(&chosen, &o)?;
    if let Some(s) = shard {
        s.apply(&mut runs);
        eprintln!("shard {s}: {} of the documents", runs.iter().map(|r| r.items.len()).sum::<usize>());
    }
    let mut engine = a.model.engine()?;
    let opts = RunOptions {
        out: a.output.clone(),
        chunk: a.chunk,
        settings: json!({"tasks": chosen.iter().map(|t| &t.name).collect::<Vec<_>>(), "limit": o.limit, "num_fewshot": o.num_fewshot, "seed": o.seed, "data_dir": o.data_dir, "split": a.plan.split}),
        progress: pingce::progress::on_terminal(),
        shard,
    };
    let results = runner::run(&mut engine, &runs, &opts)?;
    println!("{}", runner::summary(&results));
    eprintln!("results: {}", a.output.join("results.json").display());
    Ok(())
}
