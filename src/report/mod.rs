//! `pingce report`: reads eval output folders (results.json, run.json, samples_<task>.jsonl) and
//! builds what [`html`] and [`markdown`] render: scores with 95% intervals, group micro and macro
//! averages, per-subject tables for groups of many subtasks (C-Eval, CMMLU, MMLU), every run's
//! manifest, and paired comparisons of runs on the same items ([`compare`]).
//!
//! Intervals: accuracy-type metrics (acc, acc_norm, mc1, exact_match, contains: one 0/1 per item)
//! get the Wilson score interval; mc2 gets mean ± 1.96·stderr; perplexities get none.

pub mod compare;
pub mod html;
pub mod markdown;
pub mod sections;
pub mod svg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use crate::stats;

/// The bootstrap seed used unless `--seed` says otherwise (recorded in every report).
pub const DEFAULT_SEED: u64 = 20240607;

/// A group with at least this many tasks gets a per-subject table and heat map.
pub const MANY_SUBTASKS: usize = 5;

pub struct Options {
    pub seed: u64,
    pub resamples: usize,
    pub progress: bool,
}

/// One eval output folder.
pub struct Run {
    /// "A", "B", ...
    pub label: String,
    pub model: String,
    pub dir: PathBuf,
    pub results: Value,
    pub run: Value,
}

impl Run {
    pub fn name(&self) -> String {
        format!("{} · {}", self.label, self.model)
    }

    /// Per-item values of `metric` (a results.json key) for `task`, by doc_id.
    pub fn items(&self, task: &str, metric: &str) -> Result<BTreeMap<u64, f64>> {
        let path = self.dir.join(format!("samples_{task}.jsonl"));
        let recs = crate::eval::runner::read_records(&path)?;
        let mut out = BTreeMap::new();
        for r in recs {
            let Some(id) = r["doc_id"].as_u64() else { continue };
            let v = match metric.split_once(',') {
                Some((m, filter)) => r["filtered"][filter][m].as_f64(),
                None if metric == "mc1" => r["acc"].as_f64(),
                None => r[metric].as_f64(),
            };
            if let Some(v) = v {
                out.insert(id, v);
            }
        }
        Ok(out)
    }
}

/// Whether a metric is one 0/1 per item (results.json key, e.g. `exact_match,strict-match`).
pub fn is_accuracy(metric: &str) -> bool {
    let base = metric.split(',').next().unwrap_or_default();
    matches!(base, "acc" | "acc_norm" | "mc1" | "exact_match" | "contains")
}

/// The metric a task is compared on: acc, else exact_match/contains of its first filter, else mc1.
pub fn primary_metric(metrics: &serde_json::Map<String, Value>) -> Option<String> {
    if metrics.contains_key("acc") {
        return Some("acc".into());
    }
    metrics.keys().find(|k| is_accuracy(k)).cloned()
}

/// A score with its interval.
#[derive(Clone, Debug)]
pub struct Score {
    pub value: f64,
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    pub n: u64,
    /// "Wilson", "±1.96·se" or "".
    pub method: &'static str,
}

pub fn score(metric: &str, value: f64, stderr: Option<f64>, n: u64) -> Score {
    if is_accuracy(metric) && n > 0 && value.is_finite() {
        let (lo, hi) = stats::wilson(value * n as f64, n as f64, stats::Z95);
        Score { value, lo: Some(lo), hi: Some(hi), n, method: "Wilson" }
    } else if let (Some(se), true) = (stderr, metric == "mc2") {
        Score { value, lo: Some(value - stats::Z95 * se), hi: Some(value + stats::Z95 * se), n, method: "±1.96·se" }
    } else {
        Score { value, lo: None, hi: None, n, method: "" }
    }
}

/// One row of the scores table: a task or a group (micro), one metric, a score per run.
pub struct Row {
    pub name: String,
    pub metric: String,
    pub is_group: bool,
    pub scores: Vec<Option<Score>>,
    /// Groups only: macro average per run.
    pub macro_: Vec<Option<f64>>,
}

/// A group of many subtasks: per-subject scores of its primary metric across runs.
pub struct Subjects {
    pub group: String,
    pub metric: String,
    pub subjects: Vec<String>,
    /// [subject][run]
    pub values: Vec<Vec<Option<f64>>>,
}

pub struct Report {
    pub runs: Vec<Run>,
    pub rows: Vec<Row>,
    pub subjects: Vec<Subjects>,
    pub comparisons: compare::Comparisons,
    pub seed: u64,
    pub resamples: usize,
}

fn read_json(p: &Path) -> Result<Value> {
    let t = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&t).with_context(|| format!("{}: not valid JSON", p.display()))
}

/// The model's name: its file (GGUF) or folder.
fn model_name(results: &Value) -> String {
    let files: Vec<&String> = results["manifest"]["model_files"].as_object().map(|o| o.keys().collect()).unwrap_or_default();
    let Some(first) = files.first() else { return "?".into() };
    let p = Path::new(first.as_str());
    let name = if files.len() == 1 { p.file_name() } else { p.parent().and_then(|d| d.file_name()) };
    name.map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| first.to_string())
}

/// Groups of each task, from the run's run.json (falls back to none).
fn task_groups(run: &Value) -> BTreeMap<String, Vec<String>> {
    run["tasks"].as_array().into_iter().flatten().filter_map(|t| Some((t["name"].as_str()?.to_string(), t["groups"].as_array()?.iter().filter_map(|g| g.as_str().map(String::from)).collect()))).collect()
}

pub fn build(dirs: &[PathBuf], o: &Options) -> Result<Report> {
    ensure!(!dirs.is_empty(), "give at least one eval output folder");
    let mut runs = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let results = read_json(&d.join("results.json")).with_context(|| format!("{} is not a finished eval folder", d.display()))?;
        let run = if d.join("run.json").exists() { read_json(&d.join("run.json"))? } else { Value::Null };
        ensure!(run.get("shard").is_none(), "{} holds one shard of a run: merge the shards first (pingce merge)", d.display());
        let label = if i < 26 { ((b'A' + i as u8) as char).to_string() } else { format!("R{}", i + 1) };
        runs.push(Run { label, model: model_name(&results), dir: d.clone(), results, run });
    }
    // Scores: every task and group any run has, in name order; groups after tasks.
    let mut keys: BTreeMap<(bool, String, String), ()> = BTreeMap::new();
    for r in &runs {
        for (t, ms) in r.results["results"].as_object().into_iter().flatten() {
            for m in ms.as_object().into_iter().flatten().map(|x| x.0) {
                keys.insert((false, t.clone(), m.clone()), ());
            }
        }
        for (g, ms) in r.results["groups"].as_object().into_iter().flatten() {
            for m in ms.as_object().into_iter().flatten().map(|x| x.0) {
                keys.insert((true, g.clone(), m.clone()), ());
            }
        }
    }
    let mut rows = Vec::new();
    for (is_group, name, metric) in keys.into_keys() {
        let mut scores = Vec::new();
        let mut macro_ = Vec::new();
        for r in &runs {
            if is_group {
                let v = &r.results["groups"][&name][&metric];
                scores.push(v["micro"].as_f64().map(|x| score(&metric, x, v["micro_stderr"].as_f64(), v["n"].as_u64().unwrap_or(0))));
                macro_.push(v["macro"].as_f64());
            } else {
                let v = &r.results["results"][&name][&metric];
                scores.push(v["value"].as_f64().map(|x| score(&metric, x, v["stderr"].as_f64(), v["n"].as_u64().unwrap_or(0))));
                macro_.push(None);
            }
        }
        rows.push(Row { name, metric, is_group, scores, macro_ });
    }
    // Per-subject tables for groups of many subtasks.
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &runs {
        for (t, gs) in task_groups(&r.run) {
            for g in gs {
                let m = members.entry(g).or_default();
                if !m.contains(&t) {
                    m.push(t.clone());
                }
            }
        }
    }
    let mut subjects = Vec::new();
    for (group, mut tasks) in members {
        if tasks.len() < MANY_SUBTASKS {
            continue;
        }
        tasks.sort();
        let metric = runs.iter().find_map(|r| r.results["results"][&tasks[0]].as_object().and_then(primary_metric)).unwrap_or_else(|| "acc".into());
        let values = tasks.iter().map(|t| runs.iter().map(|r| r.results["results"][t][&metric]["value"].as_f64()).collect()).collect();
        let prefix = format!("{group}_");
        let names = tasks.iter().map(|t| t.strip_prefix(&prefix).unwrap_or(t).to_string()).collect();
        subjects.push(Subjects { group, metric, subjects: names, values });
    }
    let comparisons = compare::compare(&runs, o)?;
    Ok(Report { runs, rows, subjects, comparisons, seed: o.seed, resamples: o.resamples })
}

/// The manifest lines shown per run: (field, value).
pub fn manifest_fields(r: &Run) -> Vec<(String, String)> {
    let m = &r.results["manifest"];
    let s = |v: &Value| match v {
        Value::String(x) => x.clone(),
        Value::Null => "–".into(),
        other => other.to_string(),
    };
    let mut out = vec![("folder".to_string(), r.dir.display().to_string()), ("model".into(), r.model.clone())];
    for (p, h) in m["model_files"].as_object().into_iter().flatten() {
        out.push((format!("model file {p}"), format!("sha256 {}", s(h))));
    }
    for (p, h) in m["data_files"].as_object().into_iter().flatten() {
        out.push((format!("data file {p}"), format!("sha256 {}", s(h))));
    }
    if let Some(h) = r.run.get("task_configs_sha256") {
        out.push(("task configs sha256".into(), s(h)));
    }
    let splits: Vec<String> = r.results["configs"].as_object().into_iter().flatten().filter_map(|(_, c)| c["eval_split"].as_str().map(String::from)).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    out.push(("split".into(), if splits.is_empty() { "–".into() } else { splits.join(", ") }));
    for k in ["pingce_version", "git_commit", "adapter", "backend", "driver", "batch_size"] {
        out.push((k.replace('_', " "), s(&m[k])));
    }
    out.push(("settings".into(), m["settings"].to_string()));
    out
}
