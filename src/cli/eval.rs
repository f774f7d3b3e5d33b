//! `pingce eval` and `pingce tasks`: run YAML-declared tasks (evals/) on a model and write
//! results.json, samples_<task>.jsonl and summary.md into --output.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use pingce::eval::runner::{self, ExactMatch, RunOptions, TaskRun};
use pingce::eval::task::{self, Task};
use serde_json::json;

use super::ModelArgs;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Task names, groups or globs, comma-separated (see `pingce tasks`).
    #[arg(long, value_delimiter = ',', required = true)]
    tasks: Vec<String>,
    /// Folder holding the datasets in their published layouts.
    #[arg(long, default_value = "evals/samples")]
    data_dir: PathBuf,
    /// Output folder; rerunning into it resumes.
    #[arg(long)]
    output: PathBuf,
    /// Evaluate only the first N documents of each task.
    #[arg(long)]
    limit: Option<usize>,
    /// Few-shot examples (default: each task's own setting).
    #[arg(long)]
    num_fewshot: Option<usize>,
    /// Few-shot sampling seed (lm-eval's default 1234).
    #[arg(long, default_value_t = task::DEFAULT_FEWSHOT_SEED)]
    seed: u64,
    /// Folder of task YAML files.
    #[arg(long, default_value = "evals")]
    tasks_dir: PathBuf,
    /// Documents per engine call (each finished chunk is written to disk).
    #[arg(long, default_value_t = 32)]
    chunk: usize,
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

fn task_run(t: &Task, a: &EvalArgs) -> Result<TaskRun> {
    let (mut docs, pool) = t.docs(&a.data_dir)?;
    if let Some(n) = a.limit {
        docs.truncate(n);
    }
    let items = t.items(&docs, &pool, a.num_fewshot, a.seed)?;
    let mut data_files = Vec::new();
    for split in [t.eval_split(), t.fewshot_split()].into_iter().flatten() {
        if let Some(f) = t.split_files(&a.data_dir, split)? {
            data_files.extend(f);
        }
    }
    let metrics: Vec<String> = t
        .config
        .metric_list
        .iter()
        .map(|m| serde_json::to_value(m.metric).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default())
        .collect();
    let mut em = ExactMatch::default();
    for m in &t.config.metric_list {
        if let Some(v) = m.options.get("ignore_case").and_then(|v| v.as_bool()) {
            em.ignore_case = v;
        }
        if let Some(v) = m.options.get("ignore_punctuation").and_then(|v| v.as_bool()) {
            em.ignore_punctuation = v;
        }
        if let Some(v) = m.options.get("regexes_to_ignore").and_then(|v| v.as_array()) {
            em.regexes_to_ignore = v.iter().filter_map(|x| x.as_str().map(String::from)).collect();
        }
    }
    let filters = t.config.filter_list.clone();
    let config = json!({
        "task": t.name,
        "file": t.file.display().to_string(),
        "file_sha256": pingce::sha256_file(&t.file)?,
        "target_delimiter": t.config.target_delimiter,
        "num_fewshot": a.num_fewshot.or(t.config.num_fewshot),
        "fewshot_seed": a.seed,
        "eval_split": t.eval_split(),
        "fewshot_split": t.fewshot_split(),
        "resolved": t.config,
    });
    Ok(TaskRun { name: t.name.clone(), metrics, filters, exact_match: em, config, data_files, items, groups: t.groups.clone() })
}

pub fn run(a: EvalArgs) -> Result<()> {
    let all = task::load_tasks(&a.tasks_dir)?;
    let mut chosen: Vec<&Task> = Vec::new();
    for spec in &a.tasks {
        for t in task::select(&all, spec)? {
            if !chosen.iter().any(|c| c.name == t.name) {
                chosen.push(t);
            }
        }
    }
    let runs: Vec<TaskRun> = chosen.iter().map(|t| task_run(t, &a).with_context(|| format!("preparing task {}", t.name))).collect::<Result<_>>()?;
    let mut engine = a.model.engine()?;
    let opts = RunOptions {
        out: a.output.clone(),
        chunk: a.chunk,
        settings: json!({"tasks": chosen.iter().map(|t| &t.name).collect::<Vec<_>>(), "limit": a.limit, "num_fewshot": a.num_fewshot, "seed": a.seed, "data_dir": a.data_dir}),
        progress: true,
    };
    let results = runner::run(&mut engine, &runs, &opts)?;
    println!("{}", runner::summary(&results));
    eprintln!("results: {}", a.output.join("results.json").display());
    Ok(())
}
