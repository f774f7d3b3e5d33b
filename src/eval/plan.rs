//! A task resolved for one run: its items rendered from the data, the metrics and filters that
//! score them, the data files behind them and the configuration recorded in results.json. The
//! CLI's `eval` and `logits` commands both start here.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use super::item::{Item, ItemKind};
use super::metrics::{Filter, Metric};
use super::task::{self, Task};
use crate::engine::request_file::Request;

/// exact_match options (lm-eval `metric_list` entries).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ExactMatch {
    #[serde(default)]
    pub ignore_case: bool,
    #[serde(default)]
    pub ignore_punctuation: bool,
    #[serde(default)]
    pub regexes_to_ignore: Vec<String>,
}

/// One task, resolved: its items and how to score them.
pub struct TaskRun {
    pub name: String,
    pub metrics: Vec<Metric>,
    pub filters: Vec<Filter>,
    pub exact_match: ExactMatch,
    /// The resolved task configuration, recorded in results.json and hashed for resume checks.
    pub config: Value,
    pub data_files: Vec<PathBuf>,
    pub items: Vec<Item>,
    /// Groups the task belongs to.
    pub groups: Vec<String>,
}

/// What selects and renders the documents of a run.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Folder holding the datasets in their published layouts.
    pub data_dir: PathBuf,
    /// Only the first N documents of each task.
    pub limit: Option<usize>,
    /// Few-shot examples (None: each task's own setting).
    pub num_fewshot: Option<usize>,
    /// Few-shot seed for every task (None: each task's `fewshot_seed`, lm-eval's 1234 unless the
    /// YAML says otherwise).
    pub seed: Option<u64>,
    /// Render prompts through the model's chat template (None: plain lm-eval prompts).
    pub chat: Option<super::chat::ChatOptions>,
    /// Let task files and dataset paths lead outside `--tasks-dir` and `--data-dir`.
    pub allow_outside_paths: bool,
}

/// Loads the tasks of `tasks_dir` and selects those `specs` name (names, groups, globs), in the
/// order given, each once.
/// Task files must stay inside `tasks_dir` unless `allow_outside`.
pub fn select_tasks(tasks_dir: &Path, specs: &[String], allow_outside: bool) -> Result<Vec<Task>> {
    let is_file = |s: &str| (s.ends_with(".yaml") || s.ends_with(".yml")) && Path::new(s).is_file();
    let all = if specs.iter().all(|s| is_file(s)) { vec![] } else { task::load::load_tasks_in(tasks_dir, allow_outside)? };
    let mut chosen: Vec<Task> = Vec::new();
    for spec in specs {
        // A path to a task YAML file selects its tasks (e.g. evals/examples/quality_bank.yaml).
        if is_file(spec) {
            for t in task::load_task_file(Path::new(spec))? {
                if !chosen.iter().any(|c| c.name == t.name) {
                    chosen.push(t);
                }
            }
            continue;
        }
        for t in task::select(&all, spec)? {
            if !chosen.iter().any(|c| c.name == t.name) {
                chosen.push(t.clone());
            }
        }
    }
    Ok(chosen)
}

/// Evaluates other splits than the YAMLs declare, for smoke runs: each spec is `NAME` (every
/// task) or `TASK=NAME` (a task, or every task of a group). A task without that split, or a
/// `TASK` that names nothing selected, is an error.
pub fn apply_splits(tasks: &mut [Task], specs: &[String]) -> Result<()> {
    for spec in specs {
        let (target, split) = match spec.split_once('=') {
            Some((t, s)) => (Some(t.trim()), s.trim()),
            None => (None, spec.trim()),
        };
        ensure!(!split.is_empty(), "--split {spec:?}: give a split name, or TASK=NAME");
        let mut matched = 0;
        for t in tasks.iter_mut() {
            if target.is_none_or(|g| t.name == g || t.groups.iter().any(|x| x == g)) {
                t.set_eval_split(split).with_context(|| format!("--split {spec}"))?;
                matched += 1;
            }
        }
        ensure!(matched > 0, "--split {spec}: `{}` is not a selected task or group", target.unwrap_or_default());
    }
    Ok(())
}

impl ExactMatch {
    /// exact_match's options as a task's `metric_list` gives them.
    pub fn from_metric_list(list: &[task::MetricConfig]) -> ExactMatch {
        let mut em = ExactMatch::default();
        for m in list {
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
        em
    }
}

impl TaskRun {
    /// Reads the task's data and renders its items.
    pub fn prepare(t: &Task, o: &PlanOptions) -> Result<TaskRun> {
        let (mut docs, pool) = t.docs_in(&o.data_dir, o.allow_outside_paths)?;
        if let Some(n) = o.limit {
            docs.truncate(n);
        }
        let seed = o.seed.unwrap_or(t.config.fewshot_seed);
        let num_fewshot = o.num_fewshot.or(t.config.num_fewshot);
        let chat = match (&t.config.chat, &o.chat) {
            (Some(tc), None) if tc.required => {
                bail!("task `{}` is defined for chat models: run it with --apply-chat-template (or --chat-template FILE)", t.name)
            }
            (Some(tc), Some(c)) if tc.fewshot_as_multiturn => Some(super::chat::ChatOptions { multiturn: true, ..c.clone() }),
            (_, c) => c.clone(),
        };
        let items = t.items_with(&docs, &pool, num_fewshot, seed, chat.as_ref())?;
        let mut data_files = Vec::new();
        for split in [t.eval_split(), t.fewshot_split()].into_iter().flatten() {
            if let Some(f) = t.split_files(&o.data_dir, split, o.allow_outside_paths)? {
                let answers: Vec<PathBuf> = f.iter().flat_map(|x| crate::eval::data::answer_files(t.config.dataset.format, x)).collect();
                data_files.extend(f);
                data_files.extend(answers);
            }
        }
        let config = json!({
            "task": t.name,
            "file": t.file.display().to_string(),
            "file_sha256": crate::digest::sha256_file(&t.file)?,
            "target_delimiter": t.config.target_delimiter,
            "num_fewshot": num_fewshot,
            "fewshot_seed": seed,
            "eval_split": t.eval_split(),
            "standard_split": t.standard_split,
            "split_is_standard": t.is_standard_split(),
            "chat": chat.as_ref().map(|c| c.describe()),
            "fewshot_split": t.fewshot_split(),
            "resolved": t.config,
        });
        Ok(TaskRun {
            name: t.name.clone(),
            metrics: t.config.metric_list.iter().map(|m| m.metric).collect(),
            filters: t.config.filter_list.clone(),
            exact_match: ExactMatch::from_metric_list(&t.config.metric_list),
            config,
            data_files,
            items,
            groups: t.groups.clone(),
        })
    }
}

/// Every task of `tasks`, prepared (errors name the task); a question bank with a `category`
/// field becomes one task per category (see [`super::bank::split`]).
pub fn prepare(tasks: &[Task], o: &PlanOptions) -> Result<Vec<TaskRun>> {
    let tasks = super::bank::split::split_categories(tasks, &o.data_dir)?;
    tasks.iter().map(|t| TaskRun::prepare(t, o).with_context(|| format!("preparing task {}", t.name))).collect()
}

/// The log-likelihood requests of prepared tasks: each choice of a multiple-choice item after
/// its context (consecutive, so `compare` groups them into items and counts flips), marked gold
/// where it is the answer. Generation and perplexity items are not log-likelihood requests;
/// their count per task is returned beside.
pub fn loglikelihood_requests(runs: &[TaskRun]) -> Result<(Vec<Request>, Vec<(String, usize)>)> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for run in runs {
        let mut n_skipped = 0;
        for it in &run.items {
            let pairs = it.loglikelihood_requests();
            if pairs.is_empty() {
                n_skipped += 1;
                continue;
            }
            let gold: Vec<Option<bool>> = match &it.kind {
                ItemKind::Choices { gold, .. } | ItemKind::ChoiceContexts { gold, .. } => (0..pairs.len()).map(|i| Some(gold.contains(&i))).collect(),
                _ => vec![None; pairs.len()],
            };
            out.extend(pairs.into_iter().zip(gold).map(|((context, continuation), gold)| Request { context, continuation, gold }));
        }
        if n_skipped > 0 {
            skipped.push((run.name.clone(), n_skipped));
        }
    }
    ensure!(!out.is_empty(), "the tasks hold no log-likelihood requests");
    Ok((out, skipped))
}
