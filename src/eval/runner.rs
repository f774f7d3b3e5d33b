//! Runs tasks on the engine and writes the evidence: `samples_<task>.jsonl` (one record per
//! document, appended and flushed as each chunk finishes, so a crash loses nothing finished),
//! `results.json` (scores, stderr, n, resolved configs, manifest) and `summary.md`. Rerunning
//! into the same folder resumes; a changed model, data or config refuses to.

use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde_json::{json, Value};

use super::metrics::{self, Filter};
use super::item::{Item, ItemKind};
use super::samples_file;
use super::metrics::Metric;
pub use super::plan::{ExactMatch, TaskRun};
use crate::engine::{Engine, UntilRequest};

pub struct RunOptions {
    pub out: PathBuf,
    /// Items per engine call (a chunk is written when it finishes).
    pub chunk: usize,
    /// Settings that identify the run (seed, few-shot, limit, ...), recorded and checked on resume.
    pub settings: Value,
    pub progress: bool,
    /// This process scores one shard of every task (its items already kept by
    /// [`super::shard::Shard::apply`]); recorded in run.json and the manifest.
    pub shard: Option<super::shard::Shard>,
}

/// What scoring a task's records needs, recorded in run.json so `pingce merge` can score shards
/// without the model or the data.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskSpec {
    pub name: String,
    pub metrics: Vec<Metric>,
    /// Filter pipelines whose `exact_match`/`contains` are reported ("none" when the task has none).
    pub filters: Vec<String>,
    pub groups: Vec<String>,
    /// Documents this run (or shard) scores.
    pub documents: usize,
}

impl TaskSpec {
    pub fn of(t: &TaskRun) -> TaskSpec {
        let filters = if t.filters.is_empty() { vec!["none".into()] } else { t.filters.iter().map(|f| f.name.clone()).collect() };
        TaskSpec { name: t.name.clone(), metrics: t.metrics.clone(), filters, groups: t.groups.clone(), documents: t.items.len() }
    }
}

/// path → sha256 of each file.
fn hash_files(files: &[PathBuf]) -> Result<BTreeMap<String, String>> {
    Ok(crate::digest::hash_files(files)?.into_iter().map(|h| (h.path, h.sha256)).collect())
}

/// Reads the finished records of a samples file (checksums verified; a torn last line dropped),
/// whatever documents they hold: `pingce report` reads finished runs with it.
pub fn read_records(path: &Path) -> Result<Vec<Value>> {
    samples_file::read_any(path)
}

fn f32s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Scores a chunk of items into sample records.
fn score_items(engine: &mut Engine, task: &TaskRun, items: &[&Item]) -> Result<Vec<Value>> {
    let mut shared = Vec::new();
    let mut contexts = Vec::new();
    let mut pairs = Vec::new();
    let mut gens = Vec::new();
    let mut texts = Vec::new();
    for it in items {
        match &it.kind {
            ItemKind::Choices { continuations, .. } => shared.push((it.context.clone(), continuations.clone())),
            ItemKind::ChoiceContexts { .. } => contexts.push(it.loglikelihood_requests()),
            ItemKind::Continuation { .. } => pairs.extend(it.loglikelihood_requests()),
            ItemKind::Rolling { text, .. } => texts.push(text.clone()),
            ItemKind::Generate { until, max_gen_toks, .. } => gens.push(UntilRequest { context: it.context.clone(), until: until.clone(), max_gen_toks: *max_gen_toks }),
        }
    }
    // Choices share their context's prefill (bit-identical to scoring each pair).
    let mut choice_scores = engine.loglikelihood_choices(&shared)?.into_iter();
    // Choices in their contexts (Winogrande) share the tokens their contexts begin with.
    let mut context_scores = engine.loglikelihood_choice_contexts(&contexts)?.into_iter();
    let mut scored = engine.loglikelihood(&pairs, 0)?.into_iter();
    let mut rolled = engine.loglikelihood_rolling(&texts, 0)?.into_iter();
    let mut generated = engine.generate_until(&gens)?.into_iter();
    let em_ignore: Vec<Regex> = task.exact_match.regexes_to_ignore.iter().map(|r| Regex::new(r)).collect::<Result<_, _>>()?;
    let mut records = Vec::with_capacity(items.len());
    for it in items {
        let arguments = request_arguments(it);
        // lm-eval's prompt_hash: the first request's first argument (its context, or a rolling text).
        let first = arguments[0][0].as_str().unwrap_or_default();
        let mut r = json!({"doc_id": it.doc_id, "prompt_sha256": crate::digest::sha256_hex(first.as_bytes()), "arguments": arguments});
        match &it.kind {
            ItemKind::Choices { choices, gold, labels, .. } => {
                let s = choice_scores.next().unwrap();
                let labels: &[u8] = if task.metrics.contains(&Metric::Mc2) { labels } else { &[] };
                choice_record(&mut r, &s, choices, gold, labels);
            }
            ItemKind::ChoiceContexts { choices, gold, .. } => {
                let s = context_scores.next().unwrap();
                choice_record(&mut r, &s, choices, gold, &[]);
            }
            ItemKind::Continuation { .. } => {
                let s = scored.next().unwrap();
                r["loglikelihood"] = json!(s.sum_logprob());
                r["is_greedy"] = json!(s.all_greedy());
                r["logprobs"] = json!(f32s(&s.logprobs));
            }
            ItemKind::Rolling { words, bytes, .. } => {
                let windows = rolled.next().unwrap();
                let ll: f64 = windows.iter().map(|w| w.sum_logprob()).sum();
                r["loglikelihood"] = json!(ll);
                r["words"] = json!(words);
                r["bytes"] = json!(bytes);
            }
            ItemKind::Generate { target, .. } => {
                let g = generated.next().unwrap();
                r["generated"] = json!(g.text);
                r["target"] = json!(target);
                let mut filtered = serde_json::Map::new();
                let pipelines = if task.filters.is_empty() { vec![Filter { name: "none".into(), filter: vec![] }] } else { task.filters.clone() };
                for f in &pipelines {
                    let ans = f.apply(&g.text)?;
                    let em = metrics::exact_match(&ans, target, task.exact_match.ignore_case, task.exact_match.ignore_punctuation, &em_ignore);
                    let mut rec = json!({"answer": ans, "exact_match": em});
                    if task.metrics.contains(&Metric::Contains) {
                        rec["contains"] = json!(metrics::contains(&ans, target, task.exact_match.ignore_case, task.exact_match.ignore_punctuation, &em_ignore));
                    }
                    filtered.insert(f.name.clone(), rec);
                }
                r["filtered"] = Value::Object(filtered);
            }
        }
        records.push(r);
    }
    Ok(records)
}

/// The requests an item sends, as lm-eval's `--log_samples` records their `arguments`:
/// `[context, continuation]` per log-likelihood request, `[text]` for a rolling text,
/// `[context, {until, max_gen_toks}]` for generation.
fn request_arguments(it: &Item) -> Value {
    match &it.kind {
        ItemKind::Rolling { text, .. } => json!([[text]]),
        ItemKind::Generate { until, max_gen_toks, .. } => json!([[it.context, {"until": until, "max_gen_toks": max_gen_toks}]]),
        _ => json!(it.loglikelihood_requests().into_iter().map(|(c, x)| [c, x]).collect::<Vec<_>>()),
    }
}

/// The multiple-choice fields of a sample record.
fn choice_record(r: &mut Value, s: &[crate::engine::Scored], choices: &[String], gold: &[usize], labels: &[u8]) {
    let lls: Vec<f64> = s.iter().map(|x| x.sum_logprob()).collect();
    let cs = metrics::choice_scores(&lls, choices, gold);
    r["loglikelihoods"] = json!(lls);
    r["is_greedy"] = json!(s.iter().map(|x| x.all_greedy()).collect::<Vec<_>>());
    r["target"] = json!(gold);
    r["pred"] = json!(cs.pred);
    r["acc"] = json!(cs.acc);
    r["acc_norm"] = json!(cs.acc_norm);
    if !labels.is_empty() {
        r["mc2"] = json!(metrics::mc2(&lls, labels));
    }
}

/// Scores and standard errors of one task from its records.
/// Generated answers that no filter could read (an empty answer, as OpenCompass's
/// post-processors give, or lm-eval's `[invalid]` fallback), per filter: their count and doc ids.
/// They are scored as wrong, and listed here so that none is silently counted.
fn unparsable(records: &[Value]) -> serde_json::Map<String, Value> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in records {
        for (name, f) in r["filtered"].as_object().into_iter().flatten() {
            let a = f["answer"].as_str().unwrap_or_default();
            let bad = out.entry(name.clone()).or_default();
            if a.trim().is_empty() || a == "[invalid]" {
                bad.push(r["doc_id"].as_u64().unwrap_or_default());
            }
        }
    }
    out.into_iter().map(|(k, v)| (k, json!({"count": v.len(), "doc_ids": v}))).collect()
}

fn task_scores(task: &TaskSpec, records: &[Value]) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    let col = |key: &str| -> Vec<f64> { records.iter().filter_map(|r| r.get(key).and_then(Value::as_f64)).collect() };
    for &m in &task.metrics {
        match m {
            Metric::Acc | Metric::AccNorm | Metric::Mc1 | Metric::Mc2 => {
                let key = if m == Metric::Mc1 { "acc" } else { m.name() };
                let (mean, se) = metrics::mean_stderr(&col(key));
                out.insert(m.name().to_string(), json!({"value": mean, "stderr": se, "n": records.len()}));
            }
            Metric::ExactMatch | Metric::Contains => {
                for n in &task.filters {
                    let v: Vec<f64> = records.iter().filter_map(|r| r["filtered"][n][m.name()].as_f64()).collect();
                    let (mean, se) = metrics::mean_stderr(&v);
                    out.insert(format!("{},{n}", m.name()), json!({"value": mean, "stderr": se, "n": v.len()}));
                }
            }
            Metric::WordPerplexity | Metric::BytePerplexity | Metric::BitsPerByte => {
                let w = if m == Metric::WordPerplexity { "words" } else { "bytes" };
                let items: Vec<(f64, f64)> = records.iter().map(|r| (r["loglikelihood"].as_f64().unwrap_or(0.0), r[w].as_f64().unwrap_or(0.0))).collect();
                let v = if m == Metric::BitsPerByte { metrics::bits_per_byte(&items) } else { metrics::weighted_perplexity(&items) };
                // lm-eval bootstraps these stderrs; pingce reports none rather than a different estimate.
                out.insert(m.name().to_string(), json!({"value": v, "stderr": null, "n": records.len()}));
            }
        }
    }
    Ok(out)
}

/// Atomic writes of the run's files (see [`samples_file::write_atomic`]).
pub(crate) use samples_file::write_atomic;

/// What identifies a run: the model and data files, the task configurations and the settings.
/// Recorded in `run.json`; resuming into a folder whose run differs is refused.
fn identity(engine: &Engine, tasks: &[TaskRun], opts: &RunOptions) -> Result<Value> {
    let mut data_files: Vec<PathBuf> = tasks.iter().flat_map(|t| t.data_files.clone()).collect();
    data_files.sort();
    data_files.dedup();
    let configs: BTreeMap<&str, &Value> = tasks.iter().map(|t| (t.name.as_str(), &t.config)).collect();
    let mut id = json!({
        "model_files": hash_files(&engine.files)?,
        "data_files": hash_files(&data_files)?,
        "task_configs_sha256": crate::digest::sha256_hex(serde_json::to_string(&configs)?.as_bytes()),
        "settings": opts.settings,
        "tasks": tasks.iter().map(TaskSpec::of).collect::<Vec<_>>(),
    });
    if let Some(s) = opts.shard {
        id["shard"] = json!(s);
    }
    Ok(id)
}

/// The keys of run.json that must match to resume into a folder (or to merge shards).
pub const IDENTITY_KEYS: [&str; 5] = ["model_files", "data_files", "task_configs_sha256", "settings", "shard"];

/// Writes `run.json`, or checks that the one already in `out` is the same run.
fn check_resume(out: &Path, identity: &Value) -> Result<()> {
    let run_path = out.join("run.json");
    if !run_path.exists() {
        return write_atomic(&run_path, &serde_json::to_string_pretty(identity)?);
    }
    let prev: Value = serde_json::from_str(&std::fs::read_to_string(&run_path)?).with_context(|| format!("{}: not valid JSON", run_path.display()))?;
    for key in IDENTITY_KEYS {
        if prev.get(key) != identity.get(key) {
            bail!("{} holds a run with a different {key}: refusing to resume into it (use another --output folder)", out.display());
        }
    }
    Ok(())
}

fn progress_bar(task: &TaskRun, done: usize, show: bool) -> indicatif::ProgressBar {
    let b = crate::progress::bar(task.items.len() as u64, &task.name, show);
    b.set_position(done as u64);
    b
}

/// Scores what `samples_<task>.jsonl` does not hold yet, appending each finished chunk, and
/// returns every record of the task in document order.
fn run_task(engine: &mut Engine, task: &TaskRun, opts: &RunOptions) -> Result<Vec<Value>> {
    let path = opts.out.join(format!("samples_{}.jsonl", task.name));
    let ids: HashSet<u64> = task.items.iter().map(|it| it.doc_id as u64).collect();
    let mut records = samples_file::read(&path, &ids).with_context(|| format!("task {}", task.name))?;
    let done: HashSet<u64> = records.iter().filter_map(|r| r["doc_id"].as_u64()).collect();
    let todo: Vec<&Item> = task.items.iter().filter(|it| !done.contains(&(it.doc_id as u64))).collect();
    let bar = progress_bar(task, done.len(), opts.progress);
    let mut file = OpenOptions::new().create(true).append(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
    for chunk in todo.chunks(opts.chunk.max(1)) {
        let recs = score_items(engine, task, chunk).with_context(|| format!("task {}", task.name))?;
        samples_file::append(&mut file, &recs)?;
        records.extend(recs);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    records.sort_by_key(|r| r["doc_id"].as_u64());
    Ok(records)
}

/// Group scores: micro (size-weighted, lm-eval) and macro (plain mean, OpenCompass) averages of
/// each metric over the group's tasks. `tasks`: name → (documents, scores, groups).
fn group_scores(tasks: &BTreeMap<String, (usize, BTreeMap<String, Value>, Vec<String>)>) -> serde_json::Map<String, Value> {
    let mut groups: BTreeMap<(String, String), Vec<(f64, Option<f64>, usize)>> = BTreeMap::new();
    for (n, scores, gs) in tasks.values() {
        for g in gs {
            for (metric, v) in scores {
                if let Some(val) = v["value"].as_f64() {
                    groups.entry((g.clone(), metric.clone())).or_default().push((val, v["stderr"].as_f64(), *n));
                }
            }
        }
    }
    let mut out = serde_json::Map::new();
    for ((g, metric), parts) in groups {
        let s = metrics::group(&parts);
        let entry = out.entry(g).or_insert_with(|| json!({}));
        entry[metric] = json!({"micro": s.micro, "micro_stderr": s.micro_stderr, "macro": s.macro_, "n": s.n, "tasks": parts.len()});
    }
    out
}

/// Runs every task, resuming from what `opts.out` already holds, and returns results.json.
pub fn run(engine: &mut Engine, tasks: &[TaskRun], opts: &RunOptions) -> Result<Value> {
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    let identity = identity(engine, tasks, opts)?;
    check_resume(&opts.out, &identity)?;
    let mut records = BTreeMap::new();
    for task in tasks {
        records.insert(task.name.clone(), run_task(engine, task, opts)?);
    }
    let mut manifest = json!({
        "pingce_version": crate::VERSION,
        "git_commit": crate::GIT_COMMIT,
        "adapter": engine.describe_devices(),
        "backend": format!("{:?}", engine.gpu.info.backend),
        "driver": format!("{} {}", engine.gpu.info.driver, engine.gpu.info.driver_info),
        "batch_size": engine.opts.batch_size,
        "model_files": identity["model_files"],
        "data_files": identity["data_files"],
        "settings": opts.settings,
    });
    if let Some(s) = opts.shard {
        manifest["shard"] = json!(s);
    }
    let specs: Vec<TaskSpec> = tasks.iter().map(TaskSpec::of).collect();
    let configs: BTreeMap<String, Value> = tasks.iter().map(|t| (t.name.clone(), t.config.clone())).collect();
    let out = results_json(&specs, &configs, &records, manifest)?;
    write_results(&opts.out, &out)?;
    Ok(out)
}

/// results.json from the records of each task (any order; scored in document order), the
/// tasks' configurations and the manifest. `pingce eval` and `pingce merge` both end here, so a
/// merged run's results are the same bytes as an unsharded run's.
pub fn results_json(specs: &[TaskSpec], configs: &BTreeMap<String, Value>, records: &BTreeMap<String, Vec<Value>>, manifest: Value) -> Result<Value> {
    let mut results = serde_json::Map::new();
    let mut unreadable = serde_json::Map::new();
    let mut per_task = BTreeMap::new();
    for spec in specs {
        let mut recs: Vec<&Value> = records.get(&spec.name).map(|r| r.iter().collect()).unwrap_or_default();
        recs.sort_by_key(|r| r["doc_id"].as_u64());
        let recs: Vec<Value> = recs.into_iter().cloned().collect();
        let scores = task_scores(spec, &recs)?;
        results.insert(spec.name.clone(), json!(scores));
        let bad = unparsable(&recs);
        if !bad.is_empty() {
            unreadable.insert(spec.name.clone(), Value::Object(bad));
        }
        per_task.insert(spec.name.clone(), (recs.len(), scores, spec.groups.clone()));
    }
    let configs: BTreeMap<&str, &Value> = specs.iter().filter_map(|t| configs.get(&t.name).map(|c| (t.name.as_str(), c))).collect();
    Ok(json!({
        "results": results,
        "groups": group_scores(&per_task),
        "configs": configs,
        "n": per_task.iter().map(|(k, v)| (k.clone(), v.0)).collect::<BTreeMap<_, _>>(),
        "unparsable": unreadable,
        "manifest": manifest,
    }))
}

/// Writes results.json and summary.md into `out`.
pub fn write_results(out: &Path, results: &Value) -> Result<()> {
    write_atomic(&out.join("results.json"), &serde_json::to_string_pretty(results)?)?;
    write_atomic(&out.join("summary.md"), &summary(results))
}

/// A Markdown table of every task and group score.
pub fn summary(results: &Value) -> String {
    let mut s = String::from("| task | metric | value | stderr | n |\n|---|---|---|---|---|\n");
    let mut off_split = Vec::new();
    if let Some(r) = results["results"].as_object() {
        for (name, metrics) in r {
            let cfg = &results["configs"][name];
            let task = if cfg["split_is_standard"] == json!(false) {
                off_split.push(format!("{name} evaluated split `{}`, not `{}`", cfg["eval_split"].as_str().unwrap_or("?"), cfg["standard_split"].as_str().unwrap_or("?")));
                format!("{name} ⚠ split {}", cfg["eval_split"].as_str().unwrap_or("?"))
            } else {
                name.clone()
            };
            for (m, v) in metrics.as_object().into_iter().flatten() {
                let se = v["stderr"].as_f64().map_or("–".into(), |x| format!("{x:.4}"));
                s += &format!("| {task} | {m} | {:.4} | {se} | {} |\n", v["value"].as_f64().unwrap_or(f64::NAN), v["n"]);
            }
        }
    }
    if let Some(g) = results["groups"].as_object() {
        for (group, metrics) in g {
            for (m, v) in metrics.as_object().into_iter().flatten() {
                let se = v["micro_stderr"].as_f64().map_or("–".into(), |x| format!("{x:.4}"));
                s += &format!("| {group} (micro) | {m} | {:.4} | {se} | {} |\n", v["micro"].as_f64().unwrap_or(f64::NAN), v["n"]);
                s += &format!("| {group} (macro) | {m} | {:.4} | – | {} |\n", v["macro"].as_f64().unwrap_or(f64::NAN), v["n"]);
            }
        }
    }
    if !off_split.is_empty() {
        s += &format!(
            "\n⚠ Non-standard split (a smoke run; not comparable with published scores): {} task(s), e.g. {}.\n",
            off_split.len(),
            off_split[0]
        );
    }
    s
}
