//! Users' own question banks: a task YAML reads a local `jsonl`, `csv` or `tsv` file (UTF-8 or
//! GBK) and maps its columns to normalised document keys, with no code.
//!
//! ```yaml
//! dataset:
//!   format: csv                 # jsonl | csv | tsv (CSV/TSV: a header row; TSV has no quoting)
//!   encoding: gbk               # utf-8 (default) | gbk
//!   files: {test: ./bank.csv}   # `./` and `../`: relative to this YAML file
//!   fields:
//!     id: 编号                  # optional; duplicate ids are errors
//!     question: 题目
//!     choices: [A, B, C, D, E]  # option columns (trailing empty cells dropped), or one column
//!                               # holding a JSON list or `choices_separator`-separated options
//!     choices_separator: "|"    # optional, for a single choices column
//!     answer: 答案
//!     answer_format: auto       # auto | letter | index (0-based) | index1 (1-based) | text
//!     category: 科目            # optional: one subtask per category, grouped under the task
//! ```
//!
//! Every row becomes a document holding its own columns plus the normalised keys `question`,
//! `answer`, and when mapped `id` and `category` (cells trimmed). With `choices` (multiple
//! choice, 2 to 26 options) it also holds `choices` (the option texts), `letters` (`A`, `B`, …
//! one per option), `options` (`"A. …\nB. …"`), `answer` (the 0-based index), `answer_letter`
//! and `answer_text`. Without `choices` (generation) `answer` is the reference text.
//!
//! A malformed row (missing field, empty question, fewer than 2 options, an answer outside the
//! options, a duplicate id, undecodable text) is reported with its file and line; any such row
//! refuses the whole task, listing every one ([`check`] for `pingce tasks --check`).
//!
//! Files: [`decode`] (bytes to lines), [`rows`] (CSV/TSV/JSONL rows), [`fields`] (a row into a
//! document), [`check`] (problems and the report), [`split`] (one task per category).

pub mod check;
mod decode;
mod fields;
mod rows;
pub mod split;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::data::Format;
use super::task::TaskConfig;
use super::Doc;
pub use check::{check_task, Problem, Report};

/// The text encoding of a bank file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    #[default]
    #[serde(rename = "utf-8", alias = "utf8", alias = "UTF-8")]
    Utf8,
    /// GBK (and its subset GB2312), decoded as the WHATWG `gbk` decoder does.
    #[serde(rename = "gbk", alias = "GBK", alias = "gb2312", alias = "GB2312")]
    Gbk,
}

/// Option columns: a list of columns, or one column holding all the options.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChoiceColumns {
    Columns(Vec<String>),
    Column(String),
}

/// How the answer cell names the correct option.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerFormat {
    /// A letter (`A`…) or an option's text, whichever matches; both matching different options
    /// is an error. Numbers are not guessed (0- or 1-based?): declare `index` or `index1`.
    #[default]
    Auto,
    /// `A`, `B`, … (case-insensitive).
    Letter,
    /// 0-based option number.
    Index,
    /// 1-based option number.
    Index1,
    /// The option's text.
    Text,
}

/// The `dataset.fields` mapping: which column holds what.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    #[serde(default)]
    pub id: Option<String>,
    pub question: String,
    #[serde(default)]
    pub choices: Option<ChoiceColumns>,
    #[serde(default)]
    pub choices_separator: Option<String>,
    pub answer: String,
    #[serde(default)]
    pub answer_format: AnswerFormat,
    #[serde(default)]
    pub category: Option<String>,
}

/// The formats a bank may use (the generic ones).
pub fn is_generic(format: Format) -> bool {
    matches!(format, Format::Jsonl | Format::Csv | Format::Tsv)
}

/// Configuration errors, found when the YAML is loaded.
pub fn check_config(c: &TaskConfig) -> Result<()> {
    let d = &c.dataset;
    let generic = is_generic(d.format);
    if !generic && (d.fields.is_some() || d.encoding != Encoding::Utf8) {
        bail!("dataset: `fields` and `encoding` need format jsonl, csv or tsv");
    }
    if let Some(f) = &d.fields {
        let mc = c.output_type == super::task::OutputType::MultipleChoice;
        if mc && f.choices.is_none() {
            bail!("dataset.fields: output_type multiple_choice needs `choices`");
        }
        if let Some(ChoiceColumns::Columns(cols)) = &f.choices {
            if !(2..=26).contains(&cols.len()) {
                bail!("dataset.fields.choices: {} columns; give 2 to 26, or one column holding a list", cols.len());
            }
        }
        if f.choices_separator.as_deref() == Some("") {
            bail!("dataset.fields.choices_separator is empty");
        }
    }
    Ok(())
}

/// The documents of one split's files and every problem found in them (all rows are read).
pub fn read(d: &super::task::DatasetConfig, files: &[PathBuf]) -> (Vec<Doc>, Vec<Problem>) {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    let mut ids: std::collections::HashMap<String, (PathBuf, u64)> = std::collections::HashMap::new();
    for file in files {
        let (rows, mut found) = match std::fs::read(file) {
            Ok(bytes) => rows::read(d.format, d.encoding, &bytes, d.fields.as_ref()),
            Err(e) => (vec![], vec![(0, format!("cannot read: {e}"))]),
        };
        for row in rows {
            let Some(f) = &d.fields else {
                docs.push(row.values);
                continue;
            };
            if let Some(id) = f.id.as_deref().and_then(|c| fields::cell(&row.values, c)) {
                if let Some((pf, pl)) = ids.get(&id) {
                    let at = if pf == file { format!("line {pl}") } else { format!("{}:{pl}", pf.display()) };
                    found.push((row.line, format!("duplicate id `{id}` (first at {at})")));
                } else {
                    ids.insert(id, (file.clone(), row.line));
                }
            }
            match fields::to_doc(&row.values, f) {
                Ok(doc) => {
                    let in_category = d.category.is_none() || doc.get("category").and_then(|v| v.as_str()) == d.category.as_deref();
                    if in_category {
                        docs.push(doc);
                    }
                }
                Err(errs) => found.extend(errs.into_iter().map(|e| (row.line, e))),
            }
        }
        found.sort_by_key(|p| p.0);
        problems.extend(found.into_iter().map(|(line, message)| Problem { file: file.clone(), line, message }));
    }
    (docs, problems)
}

/// The documents of one split's files; refuses (naming every malformed line) if any row is bad.
pub fn read_docs(d: &super::task::DatasetConfig, files: &[PathBuf]) -> Result<Vec<Doc>> {
    let (docs, problems) = read(d, files);
    if !problems.is_empty() {
        bail!("{}", check::refusal(&problems));
    }
    Ok(docs)
}

/// A `files` entry starting with `./` or `../` is relative to the task YAML's folder; any other
/// is relative to the data directory.
pub fn files_root<'a>(pattern: &str, yaml: &'a Path, data_dir: &'a Path) -> &'a Path {
    if pattern.starts_with("./") || pattern.starts_with("../") {
        yaml.parent().unwrap_or(Path::new("."))
    } else {
        data_dir
    }
}
