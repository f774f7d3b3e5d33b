//! `pingce tasks --check`: a task's data validated without a model — rows per split and per
//! category, and every malformed row with its file and line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::eval::task::Task;
use crate::eval::Doc;

/// A malformed row (or file, at line 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: u64,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.message),
            l => write!(f, "{}:{l}: {}", self.file.display(), self.message),
        }
    }
}

/// The refusal message naming every problem.
pub fn refusal(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    let rows: std::collections::BTreeSet<(&Path, u64)> = problems.iter().map(|p| (p.file.as_path(), p.line)).collect();
    format!("{} problem(s) in {} row(s); nothing is evaluated:\n{}", problems.len(), rows.len(), lines.join("\n"))
}

/// What one split holds.
#[derive(Clone, Debug, Default)]
pub struct SplitCount {
    pub split: String,
    pub rows: usize,
    /// Rows per category, for a bank with a `category` field.
    pub categories: BTreeMap<String, usize>,
}

/// The check of one task.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub task: String,
    pub splits: Vec<SplitCount>,
    pub problems: Vec<Problem>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(f, "task {}:", self.task)?;
        for s in &self.splits {
            writeln!(f, "  {}: {} valid rows", s.split, s.rows)?;
            for (c, n) in &s.categories {
                writeln!(f, "    {c}: {n}")?;
            }
        }
        match self.problems.len() {
            0 => writeln!(f, "  ok"),
            n => {
                writeln!(f, "  {n} problem(s):")?;
                self.problems.iter().try_for_each(|p| writeln!(f, "    {p}"))
            }
        }
    }
}

/// Reads every split of `t` (bank files relative to the YAML or `data_dir`, see
/// [`super::files_root`]) and renders the evaluated documents, collecting all problems.
pub fn check_task(t: &Task, data_dir: &Path) -> Result<Report> {
    let mut report = Report { task: t.name.clone(), ..Default::default() };
    let eval_split = t.eval_split().unwrap_or_default().to_string();
    let mut eval_docs = None;
    let mut pool = Vec::new();
    for (split, pattern) in &t.config.dataset.files {
        let Some(files) = t.split_files(data_dir, split, false)? else {
            if *split == eval_split {
                let root = super::files_root(pattern, &t.file, data_dir);
                report.problems.push(Problem { file: root.join(pattern), line: 0, message: format!("no file matches (split `{split}`)") });
            }
            continue;
        };
        let (docs, problems) = read_split(t, &files);
        let mut count = SplitCount { split: split.clone(), rows: docs.len(), ..Default::default() };
        for d in &docs {
            if let Some(c) = d.get("category").and_then(|v| v.as_str()).filter(|_| has_category(t)) {
                *count.categories.entry(c.to_string()).or_default() += 1;
            }
        }
        report.splits.push(count);
        let clean = problems.is_empty();
        report.problems.extend(problems);
        if Some(split.as_str()) == t.fewshot_split() {
            pool = docs.clone();
        }
        if *split == eval_split && clean {
            eval_docs = Some(docs);
        }
    }
    // Templates against every evaluated document (only once its rows are sound).
    if let (Some(docs), true) = (eval_docs, report.problems.is_empty()) {
        if let Err(e) = t.items(&docs, &pool, None, t.config.fewshot_seed) {
            report.problems.push(Problem { file: t.file.clone(), line: 0, message: format!("{e:#}") });
        }
    }
    Ok(report)
}

fn has_category(t: &Task) -> bool {
    t.config.dataset.fields.as_ref().is_some_and(|f| f.category.is_some())
}

/// A split's documents and problems: every row of a bank, or the first error of another reader.
fn read_split(t: &Task, files: &[PathBuf]) -> (Vec<Doc>, Vec<Problem>) {
    if super::is_generic(t.config.dataset.format) {
        return super::read(&t.config.dataset, files);
    }
    match t.read_split(files) {
        Ok(docs) => (docs, vec![]),
        Err(e) => (vec![], vec![Problem { file: t.file.clone(), line: 0, message: format!("{e:#}") }]),
    }
}
