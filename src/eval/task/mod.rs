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
//! of a hub dataset; `encoding` and `fields` for users' question banks, see [`crate::eval::bank`]), `subtasks` (one task per entry, `${var}` substituted in every string),
//! `group` (list; lm-eval's `tag` is accepted too), `fewshot_seed`, `doc_to_labels` (per-choice
//! 0/1 labels, for mc2), `doc_to_count_text` (the text whose words/bytes normalise rolling
//! perplexity; default the target), and `process_docs` naming a built-in preprocessor.

//!
//! Files: [`schema`] (the YAML keys), [`load`] (files, `subtasks`, `${var}`), [`select`] (names,
//! groups, globs), [`render`] (`doc_to_*` of one document), [`fewshot`] (sampling and few-shot
//! turns), [`items`] (documents into [`Item`]s).

mod fewshot;
mod items;
pub mod load;
mod render;
pub mod schema;
pub mod select;
pub mod yaml_guard;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

pub use super::item::{Item, ItemKind};
pub use load::{load_task_file, load_tasks};
pub use schema::*;
pub use select::{edit_distance, select};

use super::confine;
use super::data;
use super::template;
use super::Doc;

/// A loaded task.
#[derive(Clone, Debug)]
pub struct Task {
    pub name: String,
    pub groups: Vec<String>,
    /// The YAML file it was declared in.
    pub file: PathBuf,
    /// The split the YAML evaluates (lm-eval's); [`Task::set_eval_split`] may evaluate another.
    pub standard_split: String,
    pub config: TaskConfig,
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
        super::bank::check_config(c)?;
        for (k, v) in &c.dataset.options {
            match k.as_str() {
                "category" if v.is_string() && !super::bank::is_generic(c.dataset.format) => {}
                "category" => bail!("dataset.options.category must be a string, on a benchmark format (a question bank maps its category in `fields`)"),
                other => bail!("dataset.options.{other}: unknown option (known: category)"),
            }
        }
        if c.repeats.is_some_and(|r| r != 1) {
            bail!("repeats: {} generations per request are not supported (only 1)", c.repeats.unwrap_or_default());
        }
        let env = template::environment();
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
            template::check_source(&s).map_err(|e| anyhow!("{k}: template refused: {e}"))?;
            env.template_from_str(&s)
                .map_err(|e| anyhow!("{k}: invalid template: {e}"))?;
        }
        Ok(())
    }
    /// `dataset.options.category`: only documents whose `category` field is this (one task per
    /// category of a benchmark published as one file, e.g. SafetyBench).
    fn option_category(&self) -> Option<&str> {
        self.config.dataset.options.get("category").and_then(|v| v.as_str())
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

    /// Whether the evaluated split is the one the YAML declares (a number from another split is
    /// not comparable with published ones).
    pub fn is_standard_split(&self) -> bool {
        self.eval_split() == Some(self.standard_split.as_str())
    }

    /// The files of `split`: under `data_dir`, or beside the YAML for `./` and `../` patterns (a
    /// question bank); they must stay inside that folder unless `allow_outside`.
    pub fn split_files(&self, data_dir: &Path, split: &str, allow_outside: bool) -> Result<Option<Vec<PathBuf>>> {
        let Some(pattern) = self.config.dataset.files.get(split) else {
            return Ok(None);
        };
        let root = super::bank::files_root(pattern, &self.file, data_dir);
        let at = || format!("task `{}` ({}): dataset.files.{split}", self.name, self.file.display());
        confine::check_pattern(root, pattern.strip_prefix("./").unwrap_or(pattern), allow_outside).with_context(at)?;
        let files = data::expand_glob(root, pattern)?;
        let files: Vec<PathBuf> = files.into_iter().filter(|f| f.is_file()).collect();
        // PIQA's labels are a second file beside each data file: it must stay inside too.
        let mut read: Vec<PathBuf> = files.clone();
        if self.config.dataset.format == data::Format::PiqaJsonl {
            read.extend(files.iter().map(|f| data::piqa_labels_path(f)).filter(|p| p.exists()));
        }
        read.extend(files.iter().flat_map(|f| data::answer_files(self.config.dataset.format, f)));
        confine::check_all_inside(root, &read, allow_outside).with_context(at)?;
        Ok((!files.is_empty()).then_some(files))
    }

    /// The documents of one split's files (a bank refuses if any row is malformed).
    pub(crate) fn read_split(&self, files: &[PathBuf]) -> Result<Vec<Doc>> {
        let docs = if super::bank::is_generic(self.config.dataset.format) {
            super::bank::read_docs(&self.config.dataset, files)?
        } else {
            let docs = data::read_files(self.config.dataset.format, files)?;
            match self.option_category() {
                Some(c) => {
                    let docs: Vec<Doc> = docs.into_iter().filter(|d| d.get("category").and_then(|v| v.as_str()) == Some(c)).collect();
                    if docs.is_empty() {
                        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                        bail!("task `{}`: no documents of category {c:?} (dataset.options.category) in {}", self.name, names.join(", "));
                    }
                    docs
                }
                None => docs,
            }
        };
        match self.config.process_docs {
            Some(p) => p.apply(docs),
            None => Ok(docs),
        }
    }

    /// The evaluated documents and the few-shot pool, read from `data_dir`. The pool is empty
    /// when its split has no files there ([`Task::items`] then refuses few-shot examples).
    pub fn docs(&self, data_dir: &Path) -> Result<(Vec<Doc>, Vec<Doc>)> {
        self.docs_in(data_dir, false)
    }

    /// [`Task::docs`], allowing data files outside `data_dir` if `allow_outside`.
    pub fn docs_in(&self, data_dir: &Path, allow_outside: bool) -> Result<(Vec<Doc>, Vec<Doc>)> {
        let split = self.eval_split().unwrap_or_default();
        let pattern = self.config.dataset.files.get(split).ok_or_else(|| {
            anyhow!("task `{}` ({}): no files configured for split `{split}`", self.name, self.file.display())
        })?;
        let files = self.split_files(data_dir, split, allow_outside)?.ok_or_else(|| {
            let others: Vec<&str> = self.config.dataset.files.keys().map(String::as_str).filter(|s| *s != split).collect();
            anyhow!(
                "task `{}` evaluates split `{split}`: expected {} (no file there). Point --data-dir at the benchmark \
                 files laid out as published, or evaluate another split for a smoke run with --split (this task \
                 also declares: {})",
                self.name,
                super::bank::files_root(pattern, &self.file, data_dir).join(pattern).display(),
                others.join(", ")
            )
        })?;
        let docs = self.read_split(&files).with_context(|| format!("task `{}`", self.name))?;
        if let Some(samples) = &self.config.fewshot_config.samples {
            return Ok((docs, samples.clone()));
        }
        let pool = match self.fewshot_split() {
            Some(fs) if fs == split => docs.clone(),
            Some(fs) => match self.split_files(data_dir, fs, allow_outside)? {
                Some(files) => self.read_split(&files).with_context(|| format!("task `{}`", self.name))?,
                None => vec![],
            },
            None => vec![],
        };
        Ok((docs, pool))
    }
}
