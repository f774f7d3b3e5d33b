//! Task definitions (`evals/*.yaml`) and the items they render.
//!
//! The YAML schema follows lm-evaluation-harness's task YAML (`lm_eval/config/task.py`,
//! `TaskConfig`) and the rendering follows `ConfigurableTask` (`lm_eval/api/task.py`, lm-eval
//! 0.4.13): `fewshot_context`, `build_qa_turn`, `multiple_input_context`, `doc_to_text`,
//! `doc_to_target`, `doc_to_choice`, `construct_requests`; few-shot sampling as
//! `lm_eval/api/samplers.py` (`ContextSampler`, `FirstNSampler`).
//!
//! Facts that shape the output:
//! * Context = description (rendered as a template, no delimiter added) + for each few-shot doc
//!   `doc_to_text + target_delimiter + answer + fewshot_delimiter` + the doc's `doc_to_text`.
//!   A few-shot doc whose target is `""` contributes only its text.
//! * A template that is exactly a field name returns the field's value (`doc_to_text in
//!   self.features`); otherwise it is rendered with Jinja (strict undefined, trailing newline
//!   kept). A rendered text or target made of digits becomes an int when `doc_to_choice` is set;
//!   a rendered target `[...]` is read as a Python literal. `doc_to_choice` is read as a Python
//!   list literal (here: a single `{{ expr }}` is evaluated directly).
//! * `doc_to_text` giving an int means "multiple inputs" (winogrande): each choice completes the
//!   context and the continuation is `target_delimiter + target`; the gold index is that int.
//! * Few-shot: one `random.Random(seed)` per task, drawn from in document order;
//!   `sample(pool, n)`, or when `fewshot_split == test_split` (both unset counts as equal)
//!   `sample(pool, n + 1)` minus docs equal to the evaluated one, first `n` (resampling from the
//!   pool without those docs if fewer remain). `first_n` takes the pool's first `n` (minus the
//!   evaluated doc under the same condition). The default seed is lm-eval's 1234.
//! * The evaluated split is `test_split` if set, else `validation_split`; the few-shot pool is
//!   `fewshot_split`, else `training_split`, else `validation_split`, else `test_split`.
//!
//! pingce extensions to lm-eval's keys: `dataset {format, files, options}` (local files instead
//! of a hub dataset), `subtasks` (one task per entry, `${var}` substituted in every string),
//! `group` (list; lm-eval's `tag` is accepted too), `fewshot_seed`, `doc_to_labels` (per-choice
//! 0/1 labels, for mc2), `doc_to_count_text` (the text whose words/bytes normalise rolling
//! perplexity; default the target), and `process_docs` naming a built-in preprocessor.

use super::data::{self, jinja, pyrandom::PyRandom, Format, ProcessDocs};
use super::Doc;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a task scores a document (lm-eval's `output_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    MultipleChoice,
    Loglikelihood,
    LoglikelihoodRolling,
    GenerateUntil,
}

/// One document turned into what the engine must compute.
#[derive(Clone, Debug)]
pub struct Item {
    /// Index of the document in the evaluated split.
    pub doc_id: usize,
    pub doc: Doc,
    /// The full context: description, few-shot examples and this document's input. For
    /// [`ItemKind::ChoiceContexts`] it is the shared part (description and few-shot examples);
    /// for [`ItemKind::Rolling`] it is empty.
    pub context: String,
    pub kind: ItemKind,
}

#[derive(Clone, Debug)]
pub enum ItemKind {
    /// Score each continuation after `context` (lm-eval `multiple_choice`). `continuations[i]`
    /// is already `target_delimiter + choices[i]`, the exact string lm-eval passes; `choices`
    /// are the bare choice texts (their `len()` in chars normalises acc_norm). `gold` lists the
    /// correct choices (one for acc/mc1; the true ones for mc2); `labels` gives 0/1 per choice.
    Choices { continuations: Vec<String>, choices: Vec<String>, gold: Vec<usize>, labels: Vec<u8> },
    /// lm-eval "multiple inputs" (winogrande, partial scoring): score `continuation` (already
    /// `target_delimiter + target`) after each full context `contexts[i]` (few-shot prefix +
    /// `choices[i]`); `gold` is the correct context. `choices` are the per-choice inputs (their
    /// lengths normalise acc_norm, as in lm-eval).
    ChoiceContexts { contexts: Vec<String>, continuation: String, choices: Vec<String>, gold: Vec<usize> },
    /// Log-likelihood of one continuation (lm-eval `loglikelihood`).
    Continuation { continuation: String },
    /// Perplexity of a whole text (lm-eval `loglikelihood_rolling`). `words` and `bytes` are the
    /// normalisers, `len(re.split(r"\s+", t))` and `len(t.encode())` of the counted text (the
    /// scored text, or what `doc_to_count_text` names: wikitext counts the original page).
    Rolling { text: String, words: usize, bytes: usize },
    /// Generation until a stop string; `target` is the reference answer.
    Generate { until: Vec<String>, max_gen_toks: usize, target: String },
}

impl Item {
    /// The (context, continuation) pairs lm-eval sends as `loglikelihood` requests, in order
    /// (empty for generation and rolling items).
    pub fn loglikelihood_requests(&self) -> Vec<(String, String)> {
        match &self.kind {
            ItemKind::Choices { continuations, .. } => {
                continuations.iter().map(|c| (self.context.clone(), c.clone())).collect()
            }
            ItemKind::ChoiceContexts { contexts, continuation, .. } => {
                contexts.iter().map(|c| (c.clone(), continuation.clone())).collect()
            }
            ItemKind::Continuation { continuation } => vec![(self.context.clone(), continuation.clone())],
            _ => vec![],
        }
    }
}

/// lm-eval's default `fewshot_random_seed`.
pub const DEFAULT_FEWSHOT_SEED: u64 = 1234;

/// A template key: a string (field name or Jinja template), an int, or a list.
#[derive(Clone, Debug, serde::Serialize, Deserialize)]
#[serde(untagged)]
pub enum TemplateSpec {
    Int(i64),
    Text(String),
    List(Vec<String>),
}

#[derive(Clone, Debug, Default, serde::Serialize, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StringOrList::None => vec![],
            StringOrList::One(s) => vec![s.clone()],
            StringOrList::Many(v) => v.clone(),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    pub format: Format,
    /// Split name → file glob relative to the data directory.
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, Json>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampler {
    #[default]
    Default,
    FirstN,
}

#[derive(Clone, Debug, Default, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewshotConfig {
    #[serde(default)]
    pub sampler: Sampler,
}

#[derive(Clone, Debug, Default, serde::Serialize, Deserialize)]
pub struct GenerationKwargs {
    #[serde(default)]
    pub until: Option<StringOrList>,
    #[serde(default)]
    pub max_gen_toks: Option<usize>,
    #[serde(default)]
    pub do_sample: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f64>,
}

pub use super::metrics::{Filter as FilterConfig, FilterStep};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Acc,
    AccNorm,
    Mc1,
    Mc2,
    ExactMatch,
    WordPerplexity,
    BytePerplexity,
    BitsPerByte,
}

#[derive(Clone, Debug, serde::Serialize, Deserialize)]
pub struct MetricConfig {
    pub metric: Metric,
    #[serde(default)]
    pub aggregation: Option<String>,
    #[serde(default)]
    pub higher_is_better: Option<bool>,
    /// Metric arguments (e.g. exact_match's `ignore_case`, `regexes_to_ignore`).
    #[serde(flatten)]
    pub options: BTreeMap<String, Json>,
}

fn default_target_delimiter() -> String {
    " ".into()
}
fn default_fewshot_delimiter() -> String {
    "\n\n".into()
}
fn default_seed() -> u64 {
    DEFAULT_FEWSHOT_SEED
}

/// A task YAML, after `subtasks` expansion.
#[derive(Clone, Debug, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    pub task: String,
    #[serde(default, alias = "tag", alias = "groups")]
    pub group: StringOrList,
    #[serde(default)]
    pub task_alias: Option<String>,
    pub dataset: DatasetConfig,
    #[serde(default)]
    pub training_split: Option<String>,
    #[serde(default)]
    pub validation_split: Option<String>,
    #[serde(default)]
    pub test_split: Option<String>,
    #[serde(default)]
    pub fewshot_split: Option<String>,
    #[serde(default)]
    pub fewshot_config: FewshotConfig,
    #[serde(default)]
    pub num_fewshot: Option<usize>,
    #[serde(default = "default_seed")]
    pub fewshot_seed: u64,
    #[serde(default)]
    pub description: String,
    pub doc_to_text: TemplateSpec,
    pub doc_to_target: TemplateSpec,
    #[serde(default)]
    pub doc_to_choice: Option<TemplateSpec>,
    #[serde(default)]
    pub doc_to_labels: Option<String>,
    #[serde(default)]
    pub doc_to_count_text: Option<String>,
    #[serde(default = "default_target_delimiter")]
    pub target_delimiter: String,
    #[serde(default = "default_fewshot_delimiter")]
    pub fewshot_delimiter: String,
    pub output_type: OutputType,
    #[serde(default)]
    pub generation_kwargs: Option<GenerationKwargs>,
    #[serde(default)]
    pub filter_list: Vec<FilterConfig>,
    #[serde(default)]
    pub metric_list: Vec<MetricConfig>,
    #[serde(default)]
    pub process_docs: Option<ProcessDocs>,
    #[serde(default)]
    pub metadata: Option<Json>,
}

/// A loaded task.
#[derive(Clone, Debug)]
pub struct Task {
    pub name: String,
    pub groups: Vec<String>,
    /// The YAML file it was declared in.
    pub file: PathBuf,
    pub config: TaskConfig,
}

/// Read every `*.yaml` in `dir` (sorted by file name) into tasks, expanding `subtasks`.
pub fn load_tasks(dir: &Path) -> Result<Vec<Task>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the task directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml") && p.is_file())
        .collect();
    files.sort();
    let mut tasks: Vec<Task> = Vec::new();
    for f in files {
        for t in load_task_file(&f)? {
            if let Some(prev) = tasks.iter().find(|p| p.name == t.name) {
                bail!(
                    "task `{}` is declared twice: {} and {}",
                    t.name,
                    prev.file.display(),
                    f.display()
                );
            }
            tasks.push(t);
        }
    }
    Ok(tasks)
}

/// Parse one task YAML file (one task, or one per `subtasks` entry).
pub fn load_task_file(path: &Path) -> Result<Vec<Task>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read task file {}", path.display()))?;
    let p = path.display();
    let mut root: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| anyhow!("{p}: invalid YAML: {e}"))?;
    let map = root
        .as_mapping_mut()
        .ok_or_else(|| anyhow!("{p}: a task file must be a YAML mapping"))?;
    let subtasks = map.remove("subtasks");
    let variants: Vec<BTreeMap<String, String>> = match subtasks {
        None => vec![BTreeMap::new()],
        Some(v) => serde_norway::from_value(v)
            .map_err(|e| anyhow!("{p}: `subtasks` must be a list of {{name: value}} maps: {e}"))?,
    };
    let mut out = Vec::new();
    for vars in variants {
        let mut v = root.clone();
        substitute(&mut v, &vars).map_err(|e| anyhow!("{p}: {e}"))?;
        let config: TaskConfig = serde_norway::from_value(v)
            .map_err(|e| anyhow!("{p}: invalid task definition: {e}"))?;
        let task = Task {
            name: config.task.clone(),
            groups: config.group.to_vec(),
            file: path.to_path_buf(),
            config,
        };
        task.check().map_err(|e| anyhow!("{p}: task `{}`: {e}", task.name))?;
        out.push(task);
    }
    Ok(out)
}

/// Replace `${name}` in every string of `v` by `vars[name]`.
fn substitute(v: &mut serde_norway::Value, vars: &BTreeMap<String, String>) -> Result<()> {
    use serde_norway::Value as Y;
    match v {
        Y::String(s) => {
            if !s.contains("${") {
                return Ok(());
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                out.push_str(&rest[..i]);
                let end = rest[i..]
                    .find('}')
                    .ok_or_else(|| anyhow!("unterminated `${{` in {s:?}"))?;
                let name = &rest[i + 2..i + end];
                let val = vars
                    .get(name)
                    .ok_or_else(|| anyhow!("`${{{name}}}` is not defined by `subtasks`"))?;
                out.push_str(val);
                rest = &rest[i + end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        Y::Sequence(seq) => {
            for x in seq {
                substitute(x, vars)?;
            }
        }
        Y::Mapping(m) => {
            for (_, x) in m.iter_mut() {
                substitute(x, vars)?;
            }
        }
        Y::Tagged(t) => substitute(&mut t.value, vars)?,
        _ => {}
    }
    Ok(())
}

/// Levenshtein distance (in chars).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Select tasks by a comma-separated list of task names, group names and globs (`*`, `?`), in
/// the order given (tasks of a group in load order), without duplicates.
pub fn select<'a>(tasks: &'a [Task], spec: &str) -> Result<Vec<&'a Task>> {
    let mut out: Vec<&Task> = Vec::new();
    let push = |t: &'a Task, out: &mut Vec<&'a Task>| {
        if !out.iter().any(|o| std::ptr::eq(*o, t)) {
            out.push(t);
        }
    };
    for term in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(t) = tasks.iter().find(|t| t.name == term) {
            push(t, &mut out);
            continue;
        }
        let in_group: Vec<&Task> = tasks.iter().filter(|t| t.groups.iter().any(|g| g == term)).collect();
        if !in_group.is_empty() {
            for t in in_group {
                push(t, &mut out);
            }
            continue;
        }
        if term.contains(['*', '?']) {
            let matched: Vec<&Task> = tasks.iter().filter(|t| data::wildcard_match(term, &t.name)).collect();
            if matched.is_empty() {
                bail!("no task matches `{term}`");
            }
            for t in matched {
                push(t, &mut out);
            }
            continue;
        }
        let mut names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
        names.extend(tasks.iter().flat_map(|t| t.groups.iter().map(String::as_str)));
        let best = names.iter().min_by_key(|n| (edit_distance(term, n), n.len(), **n));
        match best {
            Some(b) => bail!("unknown task name `{term}` (did you mean `{b}`?)"),
            None => bail!("unknown task name `{term}` (no tasks are loaded)"),
        }
    }
    if out.is_empty() {
        bail!("no tasks selected by `{spec}`");
    }
    Ok(out)
}

/// A value a `doc_to_*` function returns in lm-eval.
#[derive(Clone, Debug, PartialEq)]
enum Py {
    Int(i64),
    Str(String),
    List(Vec<Py>),
    Other(Json),
}

impl Py {
    fn from_json(v: &Json) -> Py {
        match v {
            Json::String(s) => Py::Str(s.clone()),
            Json::Number(n) if n.is_i64() => Py::Int(n.as_i64().unwrap_or_default()),
            Json::Number(n) if n.is_u64() => Py::Int(n.as_u64().unwrap_or_default() as i64),
            Json::Array(a) => Py::List(a.iter().map(Py::from_json).collect()),
            other => Py::Other(other.clone()),
        }
    }
    fn describe(&self) -> String {
        match self {
            Py::Int(i) => i.to_string(),
            Py::Str(s) => format!("{s:?}"),
            Py::List(l) => format!("[{}]", l.iter().map(Py::describe).collect::<Vec<_>>().join(", ")),
            Py::Other(j) => j.to_string(),
        }
    }
}

/// Parse a Python literal made of lists, strings and ints (what `ast.literal_eval` reads back
/// from a rendered list).
fn parse_py_literal(s: &str) -> Option<Py> {
    fn ws(c: &[char], i: &mut usize) {
        while *i < c.len() && c[*i].is_whitespace() {
            *i += 1;
        }
    }
    fn val(c: &[char], i: &mut usize) -> Option<Py> {
        ws(c, i);
        match *c.get(*i)? {
            '[' => {
                *i += 1;
                let mut items = Vec::new();
                loop {
                    ws(c, i);
                    if *c.get(*i)? == ']' {
                        *i += 1;
                        return Some(Py::List(items));
                    }
                    items.push(val(c, i)?);
                    ws(c, i);
                    match *c.get(*i)? {
                        ',' => *i += 1,
                        ']' => {}
                        _ => return None,
                    }
                }
            }
            q @ ('\'' | '"') => {
                *i += 1;
                let mut out = String::new();
                loop {
                    let ch = *c.get(*i)?;
                    *i += 1;
                    if ch == q {
                        return Some(Py::Str(out));
                    }
                    if ch == '\\' {
                        let e = *c.get(*i)?;
                        *i += 1;
                        match e {
                            'n' => out.push('\n'),
                            't' => out.push('\t'),
                            'r' => out.push('\r'),
                            '\\' | '\'' | '"' => out.push(e),
                            'x' | 'u' | 'U' => {
                                let n = match e { 'x' => 2, 'u' => 4, _ => 8 };
                                let hex: String = c.get(*i..*i + n)?.iter().collect();
                                *i += n;
                                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                            }
                            _ => return None,
                        }
                    } else {
                        out.push(ch);
                    }
                }
            }
            _ => {
                let start = *i;
                if c[*i] == '-' {
                    *i += 1;
                }
                while *i < c.len() && c[*i].is_ascii_digit() {
                    *i += 1;
                }
                let t: String = c[start..*i].iter().collect();
                t.parse().ok().map(Py::Int)
            }
        }
    }
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let v = val(&c, &mut i)?;
    ws(&c, &mut i);
    (i == c.len()).then_some(v)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

/// A single `{{ expr }}` template: the expression.
fn single_expression(t: &str) -> Option<&str> {
    let inner = t.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then_some(inner.trim())
}

/// `len(re.split(r"\s+", text))`: whitespace runs + 1.
pub fn count_words(text: &str) -> usize {
    let mut n = 1;
    let mut in_ws = false;
    for c in text.chars() {
        let w = crate::engine::requests::python_is_space(c);
        if w && !in_ws {
            n += 1;
        }
        in_ws = w;
    }
    n
}

impl Task {
    fn check(&self) -> Result<()> {
        let c = &self.config;
        if self.eval_split().is_none() {
            bail!("neither test_split nor validation_split is set");
        }
        if c.output_type == OutputType::MultipleChoice && c.doc_to_choice.is_none() {
            bail!("output_type multiple_choice needs doc_to_choice");
        }
        let env = jinja::environment();
        let mut templates = vec![("description", c.description.clone())];
        for (k, t) in [("doc_to_text", &c.doc_to_text), ("doc_to_target", &c.doc_to_target)]
            .into_iter()
            .chain(c.doc_to_choice.as_ref().map(|t| ("doc_to_choice", t)))
        {
            if let TemplateSpec::Text(s) = t {
                templates.push((k, s.clone()));
            }
        }
        for (k, s) in templates {
            env.template_from_str(&s)
                .map_err(|e| anyhow!("{k}: invalid template: {e}"))?;
        }
        Ok(())
    }

    /// The split evaluated: `test_split`, else `validation_split` (lm-eval's `eval_docs`).
    pub fn eval_split(&self) -> Option<&str> {
        self.config.test_split.as_deref().or(self.config.validation_split.as_deref())
    }

    /// The few-shot pool's split: `fewshot_split`, else training, validation, test.
    pub fn fewshot_split(&self) -> Option<&str> {
        let c = &self.config;
        c.fewshot_split
            .as_deref()
            .or(c.training_split.as_deref())
            .or(c.validation_split.as_deref())
            .or(c.test_split.as_deref())
    }

    /// Evaluate `split` instead (as if the YAML said `test_split: <split>`; few-shot docs are
    /// then drawn excluding the evaluated doc when the few-shot split is the same split).
    pub fn set_eval_split(&mut self, split: &str) -> Result<()> {
        if !self.config.dataset.files.contains_key(split) {
            bail!(
                "task `{}` has no split `{split}` (it has: {})",
                self.name,
                self.config.dataset.files.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        self.config.test_split = Some(split.to_string());
        Ok(())
    }

    pub fn split_files(&self, data_dir: &Path, split: &str) -> Result<Option<Vec<PathBuf>>> {
        let Some(pattern) = self.config.dataset.files.get(split) else {
            return Ok(None);
        };
        let files = data::expand_glob(data_dir, pattern)?;
        let files: Vec<PathBuf> = files.into_iter().filter(|f| f.is_file()).collect();
        Ok((!files.is_empty()).then_some(files))
    }

    fn read_split(&self, files: &[PathBuf]) -> Result<Vec<Doc>> {
        let docs = data::read_files(self.config.dataset.format, files)?;
        match self.config.process_docs {
            Some(p) => p.apply(docs),
            None => Ok(docs),
        }
    }

    /// The evaluated documents and the few-shot pool, read from `data_dir`. The pool is empty
    /// when its split has no files there ([`Task::items`] then refuses few-shot examples).
    pub fn docs(&self, data_dir: &Path) -> Result<(Vec<Doc>, Vec<Doc>)> {
        let split = self.eval_split().unwrap_or_default();
        let pattern = self.config.dataset.files.get(split).ok_or_else(|| {
            anyhow!("task `{}` ({}): no files configured for split `{split}`", self.name, self.file.display())
        })?;
        let files = self.split_files(data_dir, split)?.ok_or_else(|| {
            anyhow!(
                "task `{}`: no file matches {} (split `{split}`)",
                self.name,
                data_dir.join(pattern).display()
            )
        })?;
        let docs = self.read_split(&files).with_context(|| format!("task `{}`", self.name))?;
        let pool = match self.fewshot_split() {
            Some(fs) if fs == split => docs.clone(),
            Some(fs) => match self.split_files(data_dir, fs)? {
                Some(files) => self.read_split(&files).with_context(|| format!("task `{}`", self.name))?,
                None => vec![],
            },
            None => vec![],
        };
        Ok((docs, pool))
    }

    fn err(&self, key: &str, doc_id: usize, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}: task `{}`, {key}, doc {doc_id}: {e}", self.file.display(), self.name)
    }

    /// Render a Jinja template against `doc`; unknown fields are errors naming the field.
    fn render(&self, key: &str, src: &str, doc: &Doc, doc_id: usize) -> Result<String> {
        let env = jinja::environment();
        let tmpl = env.template_from_str(src).map_err(|e| self.err(key, doc_id, e))?;
        self.check_fields(key, tmpl.undeclared_variables(false), doc, doc_id)?;
        tmpl.render(minijinja::Value::from(minijinja::value::Serde(doc)))
            .map_err(|e| self.err(key, doc_id, format!("{e:#}")))
    }

    fn check_fields(&self, key: &str, vars: std::collections::HashSet<String>, doc: &Doc, doc_id: usize) -> Result<()> {
        let mut missing: Vec<String> = vars.into_iter().filter(|v| !doc.contains_key(v)).collect();
        missing.sort();
        if let Some(m) = missing.first() {
            return Err(self.err(
                key,
                doc_id,
                format!(
                    "template references unknown field `{m}` (the document has: {})",
                    doc.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn eval_expr(&self, key: &str, expr: &str, doc: &Doc, doc_id: usize) -> Result<Py> {
        let env = jinja::environment();
        let e = env.compile_expression(expr).map_err(|e| self.err(key, doc_id, e))?;
        self.check_fields(key, e.undeclared_variables(false), doc, doc_id)?;
        let v = e
            .eval(minijinja::Value::from(minijinja::value::Serde(doc)))
            .map_err(|e| self.err(key, doc_id, format!("{e:#}")))?;
        let j = serde_json::to_value(&v).map_err(|e| self.err(key, doc_id, e))?;
        Ok(Py::from_json(&j))
    }

    fn doc_to_text(&self, doc: &Doc, doc_id: usize) -> Result<Py> {
        match &self.config.doc_to_text {
            TemplateSpec::Int(i) => Ok(Py::Int(*i)),
            TemplateSpec::Text(s) if doc.contains_key(s) => Ok(Py::from_json(&doc[s])),
            TemplateSpec::Text(s) => {
                let r = self.render("doc_to_text", s, doc, doc_id)?;
                Ok(if is_digits(&r) && self.config.doc_to_choice.is_some() {
                    Py::Int(r.parse().map_err(|e| self.err("doc_to_text", doc_id, e))?)
                } else {
                    Py::Str(r)
                })
            }
            TemplateSpec::List(_) => Err(self.err("doc_to_text", doc_id, "must be a string or an int")),
        }
    }

    fn doc_to_target(&self, doc: &Doc, doc_id: usize) -> Result<Py> {
        match &self.config.doc_to_target {
            TemplateSpec::Int(i) => Ok(Py::Int(*i)),
            TemplateSpec::List(l) => Ok(Py::List(l.iter().cloned().map(Py::Str).collect())),
            TemplateSpec::Text(s) if doc.contains_key(s) => Ok(Py::from_json(&doc[s])),
            TemplateSpec::Text(s) => {
                let r = self.render("doc_to_target", s, doc, doc_id)?;
                if is_digits(&r) && self.config.doc_to_choice.is_some() {
                    return Ok(Py::Int(r.parse().map_err(|e| self.err("doc_to_target", doc_id, e))?));
                }
                if r.len() >= 2 && r.starts_with('[') && r.ends_with(']') {
                    if let Some(v) = parse_py_literal(&r) {
                        return Ok(v);
                    }
                }
                Ok(Py::Str(r))
            }
        }
    }

    fn doc_to_choice(&self, doc: &Doc, doc_id: usize) -> Result<Option<Vec<String>>> {
        let Some(spec) = &self.config.doc_to_choice else { return Ok(None) };
        let v = match spec {
            TemplateSpec::List(l) => return Ok(Some(l.clone())),
            TemplateSpec::Int(_) => return Err(self.err("doc_to_choice", doc_id, "must be a list or a template")),
            TemplateSpec::Text(s) if doc.contains_key(s) => Py::from_json(&doc[s]),
            TemplateSpec::Text(s) => match single_expression(s) {
                Some(e) => self.eval_expr("doc_to_choice", e, doc, doc_id)?,
                None => {
                    let r = self.render("doc_to_choice", s, doc, doc_id)?;
                    parse_py_literal(&r).ok_or_else(|| {
                        self.err("doc_to_choice", doc_id, format!("{r:?} is not a Python list literal"))
                    })?
                }
            },
        };
        match v {
            Py::List(items) => items
                .into_iter()
                .map(|x| match x {
                    Py::Str(s) => Ok(s),
                    other => Err(self.err("doc_to_choice", doc_id, format!("choice {} is not a string", other.describe()))),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            other => Err(self.err("doc_to_choice", doc_id, format!("{} is not a list", other.describe()))),
        }
    }

    fn description(&self, doc: &Doc, doc_id: usize) -> Result<String> {
        let d = &self.config.description;
        if d.is_empty() {
            return Ok(String::new());
        }
        if let Some(v) = doc.get(d) {
            return match v {
                Json::String(s) => Ok(s.clone()),
                other => Ok(other.to_string()),
            };
        }
        self.render("description", d, doc, doc_id)
    }

    /// Whether `doc_to_text` returns an int for the first doc (lm-eval's `multiple_input`).
    fn multiple_input(&self, docs: &[Doc]) -> Result<bool> {
        match docs.first() {
            Some(d) if self.config.doc_to_choice.is_some() => Ok(matches!(self.doc_to_text(d, 0)?, Py::Int(_))),
            _ => Ok(false),
        }
    }

    fn sample_fewshot(
        &self,
        rng: &mut PyRandom,
        pool: &[Doc],
        n: usize,
        eval_doc: Option<&Doc>,
    ) -> Result<Vec<Doc>> {
        if n == 0 {
            return Ok(vec![]);
        }
        let fs_split = self.fewshot_split().unwrap_or("?");
        if pool.is_empty() {
            bail!(
                "task `{}`: {n} few-shot examples asked for, but the few-shot split `{fs_split}` has no documents",
                self.name
            );
        }
        let short = |have: usize| {
            anyhow!(
                "task `{}`: {n} few-shot examples asked for, but the few-shot split `{fs_split}` offers only {have}",
                self.name
            )
        };
        match self.config.fewshot_config.sampler {
            Sampler::FirstN => {
                let pool: Vec<&Doc> = pool.iter().filter(|d| Some(*d) != eval_doc).collect();
                if n > pool.len() {
                    return Err(short(pool.len()));
                }
                Ok(pool[..n].iter().map(|d| (*d).clone()).collect())
            }
            Sampler::Default => match eval_doc {
                None => rng.sample(pool, n).map_err(|_| short(pool.len())),
                Some(ev) => {
                    let drawn = rng.sample(pool, n + 1).map_err(|_| short(pool.len()))?;
                    let mut res: Vec<Doc> = drawn.into_iter().filter(|d| d != ev).take(n).collect();
                    if res.len() < n {
                        let rest: Vec<Doc> = pool.iter().filter(|d| *d != ev).cloned().collect();
                        res = rng.sample(&rest, n).map_err(|_| short(rest.len()))?;
                    }
                    Ok(res)
                }
            },
        }
    }

    /// `build_qa_turn` for a few-shot doc: `text + target_delimiter + answer + fewshot_delimiter`,
    /// or just `text` when the answer is `""`.
    fn fewshot_turn(&self, doc: &Doc, doc_id: usize, multiple_input: bool) -> Result<String> {
        let c = &self.config;
        let q = self.doc_to_text(doc, doc_id)?;
        let choices = self.doc_to_choice(doc, doc_id)?;
        let a = self.doc_to_target(doc, doc_id)?;
        let (q, choices) = if multiple_input {
            let Py::Int(i) = q else { return Err(self.err("doc_to_text", doc_id, "expected an int")) };
            let ch = choices.unwrap_or_default();
            let s = ch.get(i as usize).cloned().ok_or_else(|| {
                self.err("doc_to_text", doc_id, format!("index {i} is outside the {} choices", ch.len()))
            })?;
            (s, None)
        } else {
            match q {
                Py::Str(s) => (s, choices),
                other => return Err(self.err("doc_to_text", doc_id, format!("{} is not a string", other.describe()))),
            }
        };
        let answer = match &a {
            Py::Str(s) if s.is_empty() => return Ok(q),
            Py::Int(i) if choices.as_ref().is_some_and(|c| !c.is_empty()) => {
                let ch = choices.as_ref().unwrap();
                ch.get(*i as usize).cloned().ok_or_else(|| {
                    self.err("doc_to_target", doc_id, format!("index {i} is outside the {} choices", ch.len()))
                })?
            }
            Py::List(l) => match l.first() {
                Some(Py::Str(s)) => s.clone(),
                _ => return Err(self.err("doc_to_target", doc_id, "a list target must start with a string")),
            },
            Py::Str(s) => s.clone(),
            other => return Err(self.err("doc_to_target", doc_id, format!("answer {} is not a string", other.describe()))),
        };
        Ok(format!("{q}{}{answer}{}", c.target_delimiter, c.fewshot_delimiter))
    }

    fn gold_indices(&self, t: &Py, choices: &[String], doc_id: usize) -> Result<Vec<usize>> {
        let one = |x: &Py| -> Result<usize> {
            match x {
                Py::Int(i) if *i >= 0 && (*i as usize) < choices.len() => Ok(*i as usize),
                Py::Str(s) if choices.contains(s) => Ok(choices.iter().position(|c| c == s).unwrap()),
                other => Err(self.err(
                    "doc_to_target",
                    doc_id,
                    format!("answer {} is outside the {} choices {choices:?}", other.describe(), choices.len()),
                )),
            }
        };
        match t {
            Py::List(l) => l.iter().map(one).collect(),
            x => Ok(vec![one(x)?]),
        }
    }

    fn labels(&self, doc: &Doc, doc_id: usize, n: usize, gold: &[usize]) -> Result<Vec<u8>> {
        let Some(src) = &self.config.doc_to_labels else {
            return Ok((0..n).map(|i| u8::from(gold.contains(&i))).collect());
        };
        let v = match single_expression(src) {
            Some(e) => self.eval_expr("doc_to_labels", e, doc, doc_id)?,
            None if doc.contains_key(src) => Py::from_json(&doc[src]),
            None => return Err(self.err("doc_to_labels", doc_id, "must be a field name or `{{ expression }}`")),
        };
        let labels: Option<Vec<u8>> = match &v {
            Py::List(l) => l.iter().map(|x| match x { Py::Int(0) => Some(0), Py::Int(1) => Some(1), _ => None }).collect(),
            _ => None,
        };
        match labels {
            Some(l) if l.len() == n => Ok(l),
            _ => Err(self.err("doc_to_labels", doc_id, format!("{} is not a list of {n} 0/1 labels", v.describe()))),
        }
    }

    /// The normalisers of a rolling item's log-likelihood (also in [`ItemKind::Rolling`]), as
    /// lm-eval's `process_results`:
    /// `(len(re.split(r"\s+", t)), len(t.encode("utf-8")))` of the text named by
    /// `doc_to_count_text` (wikitext: the original `page`), else of the scored text.
    pub fn rolling_counts(&self, item: &Item) -> Result<(usize, usize)> {
        let counted = match (&self.config.doc_to_count_text, &item.kind) {
            (Some(f), _) if item.doc.contains_key(f) => match &item.doc[f] {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            },
            (Some(t), _) => self.render("doc_to_count_text", t, &item.doc, item.doc_id)?,
            (None, ItemKind::Rolling { text, .. }) => text.clone(),
            (None, _) => bail!("task `{}`: item {} is not a rolling item", self.name, item.doc_id),
        };
        Ok((count_words(&counted), counted.len()))
    }

    /// Render every document into an [`Item`], as lm-eval's `build_all_requests` does (in order,
    /// one few-shot generator for the whole task). `num_fewshot`: `None` takes the task's own
    /// (or 0).
    pub fn items(&self, docs: &[Doc], fewshot_pool: &[Doc], num_fewshot: Option<usize>, seed: u64) -> Result<Vec<Item>> {
        let c = &self.config;
        let n = num_fewshot.or(c.num_fewshot).unwrap_or(0);
        let mut rng = PyRandom::new(seed);
        let exclude_self = c.fewshot_split == c.test_split;
        let multiple_input = self.multiple_input(docs)?;
        let mut items = Vec::with_capacity(docs.len());
        for (doc_id, doc) in docs.iter().enumerate() {
            let mut prefix = self.description(doc, doc_id)?;
            let shots = self.sample_fewshot(&mut rng, fewshot_pool, n, exclude_self.then_some(doc))?;
            for fs in &shots {
                prefix.push_str(&self.fewshot_turn(fs, doc_id, multiple_input).map_err(|e| anyhow!("{e:#} (a few-shot example)"))?);
            }
            let item = self.item(doc_id, doc, prefix, multiple_input)?;
            items.push(item);
        }
        Ok(items)
    }

    fn item(&self, doc_id: usize, doc: &Doc, prefix: String, multiple_input: bool) -> Result<Item> {
        let c = &self.config;
        let doc = doc.clone();
        let text = || -> Result<String> {
            match self.doc_to_text(&doc, doc_id)? {
                Py::Str(s) => Ok(s),
                other => Err(self.err("doc_to_text", doc_id, format!("{} is not a string", other.describe()))),
            }
        };
        let kind = match c.output_type {
            OutputType::MultipleChoice => {
                let choices = self.doc_to_choice(&doc, doc_id)?.unwrap_or_default();
                if multiple_input {
                    let gold = match self.doc_to_text(&doc, doc_id)? {
                        Py::Int(i) if i >= 0 && (i as usize) < choices.len() => vec![i as usize],
                        other => return Err(self.err("doc_to_text", doc_id, format!("gold {} is outside the {} choices", other.describe(), choices.len()))),
                    };
                    let target = match self.doc_to_target(&doc, doc_id)? {
                        Py::Str(s) => s,
                        Py::Int(i) => i.to_string(),
                        other => return Err(self.err("doc_to_target", doc_id, format!("{} is not a string", other.describe()))),
                    };
                    let contexts = choices.iter().map(|ch| format!("{prefix}{ch}")).collect();
                    let kind = ItemKind::ChoiceContexts {
                        contexts,
                        continuation: format!("{}{target}", c.target_delimiter),
                        choices,
                        gold,
                    };
                    return Ok(Item { doc_id, doc, context: prefix, kind });
                }
                let target = self.doc_to_target(&doc, doc_id)?;
                let gold = self.gold_indices(&target, &choices, doc_id)?;
                let labels = self.labels(&doc, doc_id, choices.len(), &gold)?;
                let gold = if c.doc_to_labels.is_some() {
                    labels.iter().enumerate().filter(|(_, l)| **l == 1).map(|(i, _)| i).collect()
                } else {
                    gold
                };
                ItemKind::Choices {
                    continuations: choices.iter().map(|ch| format!("{}{ch}", c.target_delimiter)).collect(),
                    choices,
                    gold,
                    labels,
                }
            }
            OutputType::Loglikelihood => {
                let continuation = match self.doc_to_target(&doc, doc_id)? {
                    Py::Str(s) => s,
                    other => return Err(self.err("doc_to_target", doc_id, format!("{} is not a string", other.describe()))),
                };
                ItemKind::Continuation { continuation }
            }
            OutputType::LoglikelihoodRolling => {
                let text = match self.doc_to_target(&doc, doc_id)? {
                    Py::Str(s) => s,
                    other => return Err(self.err("doc_to_target", doc_id, format!("{} is not a string", other.describe()))),
                };
                let mut item = Item { doc_id, doc, context: String::new(), kind: ItemKind::Rolling { text, words: 0, bytes: 0 } };
                let (w, b) = self.rolling_counts(&item)?;
                if let ItemKind::Rolling { words, bytes, .. } = &mut item.kind {
                    (*words, *bytes) = (w, b);
                }
                return Ok(item);
            }
            OutputType::GenerateUntil => {
                let target = match (self.doc_to_target(&doc, doc_id)?, self.doc_to_choice(&doc, doc_id)?) {
                    (Py::Int(i), Some(ch)) => ch.get(i as usize).cloned().ok_or_else(|| {
                        self.err("doc_to_target", doc_id, format!("index {i} is outside the {} choices", ch.len()))
                    })?,
                    (Py::Str(s), _) => s,
                    (Py::Int(i), None) => i.to_string(),
                    (other, _) => return Err(self.err("doc_to_target", doc_id, format!("{} is not a string", other.describe()))),
                };
                let g = c.generation_kwargs.clone().unwrap_or_default();
                ItemKind::Generate {
                    until: g.until.map(|u| u.to_vec()).unwrap_or_else(|| vec![c.fewshot_delimiter.clone()]),
                    max_gen_toks: g.max_gen_toks.unwrap_or(crate::engine::requests::DEFAULT_MAX_GEN_TOKS),
                    target,
                }
            }
        };
        Ok(Item { doc_id, context: format!("{prefix}{}", text()?), doc, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_words() {
        assert_eq!(
            parse_py_literal("['a', \"b'c\", 'd\\n']"),
            Some(Py::List(vec![Py::Str("a".into()), Py::Str("b'c".into()), Py::Str("d\n".into())]))
        );
        assert_eq!(parse_py_literal("[1, -2]"), Some(Py::List(vec![Py::Int(1), Py::Int(-2)])));
        assert_eq!(parse_py_literal("[a]"), None);
        assert_eq!(count_words(" a  b\n"), 4);
        assert_eq!(count_words("a b"), 2);
        assert_eq!(edit_distance("arc_esay", "arc_easy"), 2);
        assert_eq!(single_expression("{{ choices.text }}"), Some("choices.text"));
        assert_eq!(single_expression("Q: {{ q }}"), None);
    }
}
