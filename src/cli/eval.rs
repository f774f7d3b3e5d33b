//! `pingce eval` and `pingce tasks`: run YAML-declared tasks (evals/) on a model and write
//! results.json, samples_<task>.jsonl and summary.md into --output.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use pingce::eval::chat::ChatOptions;
use pingce::eval::plan::{self, PlanOptions};
use pingce::model::chat_template::{ChatTemplate, Date};
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
    /// Evaluate another split than each task's standard one (smoke runs): NAME for every task,
    /// or TASK=NAME for a task or a group; repeatable or comma-separated. Recorded in
    /// results.json and flagged in summary.md.
    #[arg(long, value_delimiter = ',')]
    pub split: Vec<String>,
    #[command(flatten)]
    pub chat: ChatArgs,
    /// Let task files and dataset paths (`..`, absolute paths, symlinks) lead outside
    /// --tasks-dir and --data-dir.
    #[arg(long)]
    pub allow_outside_paths: bool,
}

/// lm-evaluation-harness's chat options (`--apply_chat_template`, `--system_instruction`,
/// `--fewshot_as_multiturn`).
#[derive(Args)]
pub struct ChatArgs {
    /// Render prompts through the model's chat template (tokenizer_config.json, chat_template.jinja
    /// or GGUF tokenizer.chat_template); NAME picks one of several named templates.
    #[arg(long, num_args = 0..=1, default_missing_value = "default", value_name = "NAME")]
    pub apply_chat_template: Option<String>,
    /// A Jinja file to use as the chat template instead of the model's (implies
    /// --apply-chat-template).
    #[arg(long, value_name = "FILE")]
    pub chat_template: Option<PathBuf>,
    /// System message (joined with each task's description).
    #[arg(long, value_name = "TEXT")]
    pub system_instruction: Option<String>,
    /// Few-shot examples as user/assistant turns instead of one user message.
    #[arg(long)]
    pub fewshot_as_multiturn: bool,
    /// The date the template's strftime_now renders (YYYY-MM-DD; default today). Recorded.
    #[arg(long, value_name = "DATE")]
    pub chat_date: Option<String>,
    /// Extra template variables as a JSON object, e.g. '{"enable_thinking": false}' (lm-eval's
    /// chat_template_args).
    #[arg(long, value_name = "JSON")]
    pub chat_template_args: Option<String>,
}

impl ChatArgs {
    /// The chat options for `model`, or None without --apply-chat-template / --chat-template.
    pub fn options(&self, model: &std::path::Path) -> Result<Option<ChatOptions>> {
        if self.apply_chat_template.is_none() && self.chat_template.is_none() {
            if self.system_instruction.is_some() || self.fewshot_as_multiturn || self.chat_date.is_some() || self.chat_template_args.is_some() {
                anyhow::bail!("--system-instruction, --fewshot-as-multiturn, --chat-date and --chat-template-args need --apply-chat-template");
            }
            return Ok(None);
        }
        let name = self.apply_chat_template.as_deref().filter(|n| *n != "default");
        let mut template = ChatTemplate::for_model(model, name, self.chat_template.as_deref())?;
        if let Some(d) = &self.chat_date {
            template = template.with_date(Date::parse(d)?);
        }
        let kwargs = chat_template_args(self.chat_template_args.as_deref())?;
        Ok(Some(ChatOptions { template: std::sync::Arc::new(template), system_instruction: self.system_instruction.clone(), multiturn: self.fewshot_as_multiturn, kwargs }))
    }
}

impl PlanArgs {
    /// Loads the tasks `specs` select, with the `--split` overrides applied.
    pub fn tasks(&self, specs: &[String]) -> Result<Vec<pingce::eval::task::Task>> {
        let mut tasks = plan::select_tasks(&self.tasks_dir, specs, self.allow_outside_paths)?;
        plan::apply_splits(&mut tasks, &self.split)?;
        Ok(tasks)
    }

    /// The plan options for `model` (its chat template is read when asked for).
    pub fn options(&self, model: &std::path::Path) -> Result<PlanOptions> {
        Ok(PlanOptions {
            data_dir: self.data_dir.clone(),
            limit: self.limit,
            num_fewshot: self.num_fewshot,
            seed: self.seed,
            chat: self.chat.options(model)?,
            allow_outside_paths: self.allow_outside_paths,
        })
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
    let o = a.plan.options(&a.model.path()?)?;
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
        settings: json!({"tasks": chosen.iter().map(|t| &t.name).collect::<Vec<_>>(), "limit": o.limit, "num_fewshot": o.num_fewshot, "seed": o.seed, "data_dir": o.data_dir, "split": a.plan.split, "chat": o.chat.as_ref().map(|c| c.describe())}),
        progress: pingce::progress::on_terminal(),
        shard,
    };
    let results = runner::run(&mut engine, &runs, &opts)?;
    println!("{}", runner::summary(&results));
    eprintln!("results: {}", a.output.join("results.json").display());
    Ok(())
}

/// `--chat-template-args JSON`: extra template variables, a JSON object.
pub(super) fn chat_template_args(json: Option<&str>) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    match json {
        None => Ok(Default::default()),
        Some(j) => match serde_json::from_str(j) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            _ => anyhow::bail!("--chat-template-args {j:?}: expected a JSON object, e.g. '{{\"enable_thinking\": false}}'"),
        },
    }
}
