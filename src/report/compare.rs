//! Paired comparisons of runs on the same items. For each pair of runs and each task both hold,
//! on the task's accuracy-type metric ([`super::primary_metric`]): the difference A − B with a
//! paired-bootstrap 95% interval (fixed seed), the exact McNemar p-value on the discordant items,
//! Holm-corrected across the whole table, and a verdict at α = 0.05. Groups are compared on their
//! items pooled (micro). Pairs that are not comparable — different settings (limit, few-shot,
//! seed, split), data files, task configurations or documents — are listed apart with the reason.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::Value;

use super::{primary_metric, Options, Run};
use crate::stats;

/// Significance level of the verdicts (after Holm's correction).
pub const ALPHA: f64 = 0.05;

pub struct Pair {
    pub a: usize,
    pub b: usize,
    /// A task, or "GROUP (micro)".
    pub name: String,
    pub is_group: bool,
    pub metric: String,
    pub n: usize,
    pub mean_a: f64,
    pub mean_b: f64,
    /// mean(A) − mean(B).
    pub diff: f64,
    pub lo: f64,
    pub hi: f64,
    /// Items A gets right and B wrong, and the reverse.
    pub a_only: u64,
    pub b_only: u64,
    pub p: f64,
    pub p_holm: f64,
    pub verdict: String,
}

/// A pair of runs (or one task of it) not compared, and why.
pub struct Apart {
    pub a: usize,
    pub b: usize,
    pub what: String,
    pub reason: String,
}

#[derive(Default)]
pub struct Comparisons {
    pub pairs: Vec<Pair>,
    pub apart: Vec<Apart>,
}

/// A task compared: its metric and the paired items of A and B.
type Compared = (String, Vec<f64>, Vec<f64>);

/// Settings that make two runs' items different when they differ.
const SETTINGS: [&str; 4] = ["limit", "num_fewshot", "seed", "split"];

/// data files by their path under the run's data folder → sha256.
fn data_files(r: &Run) -> BTreeMap<String, String> {
    let m = &r.results["manifest"];
    let dir = m["settings"]["data_dir"].as_str().unwrap_or_default().trim_end_matches('/').to_string();
    m["data_files"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(p, h)| {
            let rel = if dir.is_empty() { p.as_str() } else { p.strip_prefix(&dir).map(|x| x.trim_start_matches('/')).unwrap_or(p) };
            (rel.to_string(), h.as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// Why two runs cannot be compared at all, if they cannot.
fn run_level(a: &Run, b: &Run) -> Option<String> {
    let (sa, sb) = (&a.results["manifest"]["settings"], &b.results["manifest"]["settings"]);
    for k in SETTINGS {
        let (x, y) = (sa.get(k).unwrap_or(&Value::Null), sb.get(k).unwrap_or(&Value::Null));
        if x != y {
            return Some(format!("different {k}: {x} vs {y}"));
        }
    }
    let (da, db) = (data_files(a), data_files(b));
    for (p, h) in &da {
        if let Some(h2) = db.get(p) {
            if h != h2 {
                return Some(format!("different data file {p}: sha256 {}… vs {}…", &h[..h.len().min(12)], &h2[..h2.len().min(12)]));
            }
        }
    }
    None
}

/// Why a task's configurations differ, if they do (the YAML's path may differ, its content not).
fn config_difference(a: &Value, b: &Value) -> Option<String> {
    let keys: std::collections::BTreeSet<&String> = a.as_object().into_iter().flatten().chain(b.as_object().into_iter().flatten()).map(|x| x.0).collect();
    let differing: Vec<&str> = keys.into_iter().filter(|k| k.as_str() != "file" && a.get(k.as_str()) != b.get(k.as_str())).map(|k| k.as_str()).collect();
    (!differing.is_empty()).then(|| format!("different task configuration ({})", differing.join(", ")))
}

fn groups_of(r: &Run) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in r.run["tasks"].as_array().into_iter().flatten() {
        for g in t["groups"].as_array().into_iter().flatten() {
            if let (Some(g), Some(n)) = (g.as_str(), t["name"].as_str()) {
                out.entry(g.to_string()).or_default().push(n.to_string());
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn pair(a: usize, b: usize, name: String, is_group: bool, metric: &str, xa: &[f64], xb: &[f64], o: &Options) -> Pair {
    let n = xa.len();
    let mean_a = xa.iter().sum::<f64>() / n as f64;
    let mean_b = xb.iter().sum::<f64>() / n as f64;
    let (lo, hi) = stats::paired_bootstrap(xa, xb, o.resamples, o.seed);
    let a_only = xa.iter().zip(xb).filter(|(x, y)| **x > 0.5 && **y <= 0.5).count() as u64;
    let b_only = xa.iter().zip(xb).filter(|(x, y)| **x <= 0.5 && **y > 0.5).count() as u64;
    let p = stats::mcnemar_exact(a_only, b_only);
    Pair { a, b, name, is_group, metric: metric.to_string(), n, mean_a, mean_b, diff: mean_a - mean_b, lo, hi, a_only, b_only, p, p_holm: p, verdict: String::new() }
}

pub fn compare(runs: &[Run], o: &Options) -> Result<Comparisons> {
    let mut c = Comparisons::default();
    let n_pairs = runs.len() * runs.len().saturating_sub(1) / 2;
    let bar = crate::progress::bar(n_pairs as u64, "paired comparisons", o.progress);
    for i in 0..runs.len() {
        for j in i + 1..runs.len() {
            bar.inc(1);
            let (ra, rb) = (&runs[i], &runs[j]);
            if let Some(reason) = run_level(ra, rb) {
                c.apart.push(Apart { a: i, b: j, what: "all tasks".into(), reason });
                continue;
            }
            let ta = ra.results["results"].as_object().cloned().unwrap_or_default();
            let tb = rb.results["results"].as_object().cloned().unwrap_or_default();
            // task → (metric, items of A, items of B) for the tasks compared.
            let mut done: BTreeMap<String, Compared> = BTreeMap::new();
            for (task, ma) in &ta {
                if !tb.contains_key(task) {
                    continue;
                }
                if let Some(why) = config_difference(&ra.results["configs"][task], &rb.results["configs"][task]) {
                    c.apart.push(Apart { a: i, b: j, what: task.clone(), reason: why });
                    continue;
                }
                let Some(metric) = ma.as_object().and_then(primary_metric) else {
                    c.apart.push(Apart { a: i, b: j, what: task.clone(), reason: "no per-item accuracy metric (perplexity or mc2): not tested".into() });
                    continue;
                };
                let (ia, ib) = (ra.items(task, &metric)?, rb.items(task, &metric)?);
                if !ia.keys().eq(ib.keys()) {
                    c.apart.push(Apart { a: i, b: j, what: task.clone(), reason: format!("different documents ({} vs {} items, or other doc_ids)", ia.len(), ib.len()) });
                    continue;
                }
                if ia.is_empty() {
                    continue;
                }
                let (xa, xb): (Vec<f64>, Vec<f64>) = ia.values().zip(ib.values()).map(|(x, y)| (*x, *y)).unzip();
                c.pairs.push(pair(i, j, task.clone(), false, &metric, &xa, &xb, o));
                done.insert(task.clone(), (metric, xa, xb));
            }
            // Groups both runs report, when every member task was compared on the same metric.
            let (ga, gb) = (groups_of(ra), groups_of(rb));
            for (g, members) in &ga {
                if gb.get(g) != Some(members) || members.len() < 2 {
                    continue;
                }
                let parts: Option<Vec<&Compared>> = members.iter().map(|t| done.get(t)).collect();
                let Some(parts) = parts else { continue };
                if parts.iter().any(|p| p.0 != parts[0].0) {
                    continue;
                }
                let xa: Vec<f64> = parts.iter().flat_map(|p| p.1.iter().copied()).collect();
                let xb: Vec<f64> = parts.iter().flat_map(|p| p.2.iter().copied()).collect();
                c.pairs.push(pair(i, j, format!("{g} (micro)"), true, &parts[0].0, &xa, &xb, o));
            }
        }
    }
    bar.finish_and_clear();
    let adjusted = stats::holm(&c.pairs.iter().map(|p| p.p).collect::<Vec<_>>());
    for (p, adj) in c.pairs.iter_mut().zip(adjusted) {
        p.p_holm = adj;
        let (la, lb) = (&runs[p.a].label, &runs[p.b].label);
        p.verdict = if adj >= ALPHA || p.diff == 0.0 {
            "no significant difference".into()
        } else if p.diff > 0.0 {
            format!("{la} ahead of {lb}")
        } else {
            format!("{lb} ahead of {la}")
        };
    }
    Ok(c)
}
