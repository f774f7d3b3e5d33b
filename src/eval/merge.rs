//! `pingce merge`: joins the output folders of `pingce eval --shard i/N` into the folder an
//! unsharded run would have written. results.json, summary.md and every samples file are the same
//! bytes as an unsharded run's (records are kept as the shards wrote them and put back in
//! document order; scores come from [`super::runner::results_json`], the function `eval` uses).
//!
//! Refused, naming the problem: a missing shard, a shard given twice, shards of different counts,
//! models, data, task configurations, settings or pingce versions, and an unfinished shard.
//!
//! Manifest fields that may legitimately differ between shards (each GPU has its own adapter,
//! driver and batch size; results do not depend on them) keep a single value when every shard
//! agrees — then results.json is byte-identical to an unsharded run on that setup — and become
//! the list of the shards' values, in shard order, when they do not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use super::runner::{self, TaskSpec};
use super::shard::Shard;

/// Manifest fields allowed to differ between shards (see the module documentation).
pub const PER_SHARD_FIELDS: [&str; 4] = ["adapter", "backend", "driver", "batch_size"];

struct ShardDir {
    dir: PathBuf,
    shard: Shard,
    run: Value,
    results: Value,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

fn open_shard(dir: &Path) -> Result<ShardDir> {
    let run_path = dir.join("run.json");
    ensure!(run_path.exists(), "{}: no run.json, not the output folder of `pingce eval --shard`", dir.display());
    let run = read_json(&run_path)?;
    let shard: Shard = match run.get("shard") {
        Some(s) => serde_json::from_value(s.clone()).with_context(|| format!("{}: bad shard in run.json", run_path.display()))?,
        None => bail!("{} is not a shard: its run was not started with --shard", dir.display()),
    };
    let res_path = dir.join("results.json");
    ensure!(res_path.exists(), "shard {shard} ({}) is unfinished: it has no results.json yet; rerun its `pingce eval` to resume it", dir.display());
    let results = read_json(&res_path)?;
    Ok(ShardDir { dir: dir.to_path_buf(), shard, run, results })
}

fn what(key: &str) -> &str {
    match key {
        "model_files" => "models (model files or their sha256)",
        "data_files" => "data (data files or their sha256)",
        "task_configs_sha256" => "task configurations",
        "settings" => "settings",
        "tasks" => "tasks",
        "pingce_version" | "git_commit" => "pingce versions",
        _ => key,
    }
}

/// Reads a samples file as raw lines keyed by doc_id (a torn last line is not a record).
fn raw_records(path: &Path) -> Result<Vec<(u64, String, Value)>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            break;
        }
        let Some(v) = super::samples_file::decode(line.trim_end_matches('\n').as_bytes()) else {
            bail!("{}: a record was edited or damaged (its line_sha256 does not match)", path.display());
        };
        let id = v["doc_id"].as_u64().with_context(|| format!("{}: a record without doc_id", path.display()))?;
        out.push((id, line.to_string(), v));
    }
    Ok(out)
}

/// Merges the shard folders `dirs` into `out` and returns the merged results.json.
pub fn merge(dirs: &[PathBuf], out: &Path, progress: bool) -> Result<Value> {
    ensure!(!dirs.is_empty(), "give the shard folders to merge");
    let mut shards = Vec::new();
    for d in dirs {
        ensure!(d.canonicalize().ok() != out.canonicalize().ok() || !out.exists(), "--output {} is one of the shard folders", out.display());
        shards.push(open_shard(d)?);
    }
    // Counts, duplicates, gaps.
    let count = shards[0].shard.count;
    for s in &shards {
        ensure!(
            s.shard.count == count,
            "shards of different counts: {} is shard {} but {} is shard {}",
            shards[0].dir.display(),
            shards[0].shard,
            s.dir.display(),
            s.shard
        );
    }
    let mut by_index: BTreeMap<usize, &ShardDir> = BTreeMap::new();
    for s in &shards {
        if let Some(prev) = by_index.insert(s.shard.index, s) {
            bail!("shard {} given twice: {} and {}", s.shard, prev.dir.display(), s.dir.display());
        }
    }
    let missing: Vec<String> = (0..count).filter(|i| !by_index.contains_key(i)).map(|i| format!("{i}/{count}")).collect();
    ensure!(missing.is_empty(), "shard(s) {} missing: {count} shards make the run, {} given", missing.join(", "), shards.len());
    let ordered: Vec<&ShardDir> = by_index.values().copied().collect();
    let first = ordered[0];
    // Same run: identity and version.
    for s in &ordered[1..] {
        for key in ["model_files", "data_files", "task_configs_sha256", "settings"] {
            if first.run.get(key) != s.run.get(key) {
                bail!("shards of different {}: {} (shard {}) and {} (shard {}) differ in run.json `{key}`", what(key), first.dir.display(), first.shard, s.dir.display(), s.shard);
            }
        }
        for key in ["pingce_version", "git_commit"] {
            let (a, b) = (&first.results["manifest"][key], &s.results["manifest"][key]);
            if a != b {
                bail!("shards of different pingce versions: {} (shard {}) has {key} {a} but {} (shard {}) has {b}", first.dir.display(), first.shard, s.dir.display(), s.shard);
            }
        }
        if first.results["configs"] != s.results["configs"] {
            bail!("shards of different task configurations: {} and {} record different configs", first.dir.display(), s.dir.display());
        }
    }
    let spec_of = |s: &ShardDir| -> Result<Vec<TaskSpec>> {
        serde_json::from_value(s.run["tasks"].clone()).with_context(|| format!("{}: run.json lacks its tasks (written by an older pingce?)", s.dir.display()))
    };
    let specs0 = spec_of(first)?;
    let bar = crate::progress::bar(specs0.len() as u64, "merge", progress);
    // Records, checked complete, in document order.
    let mut specs = Vec::new();
    let mut records: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut raw: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for (ti, spec) in specs0.iter().enumerate() {
        let mut all = Vec::new();
        let mut documents = 0;
        for s in &ordered {
            let sspec = spec_of(s)?;
            let Some(mine) = sspec.get(ti).filter(|x| x.name == spec.name) else { bail!("shards of different tasks: {} lacks task {}", s.dir.display(), spec.name) };
            ensure!(mine.metrics == spec.metrics && mine.filters == spec.filters && mine.groups == spec.groups, "shards of different task configurations: {} scores {} differently", s.dir.display(), spec.name);
            let path = s.dir.join(format!("samples_{}.jsonl", spec.name));
            let recs = raw_records(&path)?;
            ensure!(
                recs.len() == mine.documents,
                "shard {} ({}) is unfinished: {} holds {} of its {} documents; rerun its `pingce eval` to resume it",
                s.shard,
                s.dir.display(),
                path.display(),
                recs.len(),
                mine.documents
            );
            for (id, _, _) in &recs {
                ensure!(s.shard.keeps(*id as usize), "{}: doc_id {id} does not belong to shard {}", path.display(), s.shard);
            }
            documents += mine.documents;
            all.extend(recs);
        }
        all.sort_by_key(|r| r.0);
        for w in all.windows(2) {
            ensure!(w[0].0 != w[1].0, "task {}: doc_id {} appears twice across the shards", spec.name, w[0].0);
        }
        specs.push(TaskSpec { documents, ..spec.clone() });
        raw.insert(spec.name.clone(), all.iter().map(|r| (r.0, r.1.clone())).collect());
        records.insert(spec.name.clone(), all.into_iter().map(|r| r.2).collect());
        bar.inc(1);
    }
    bar.finish_and_clear();
    // The manifest, per-shard fields reconciled.
    let mut manifest = first.results["manifest"].clone();
    let m = manifest.as_object_mut().context("results.json without a manifest")?;
    m.remove("shard");
    for key in PER_SHARD_FIELDS {
        let values: Vec<Value> = ordered.iter().map(|s| s.results["manifest"][key].clone()).collect();
        if values.iter().any(|v| *v != values[0]) {
            m.insert(key.to_string(), Value::Array(values));
        }
    }
    let configs: BTreeMap<String, Value> = first.results["configs"].as_object().map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    let results = runner::results_json(&specs, &configs, &records, manifest)?;
    // Write: samples, results, summary, run.json (the unsharded identity, and where it came from).
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (name, recs) in &raw {
        let text: String = recs.iter().map(|r| r.1.as_str()).collect();
        runner::write_atomic(&out.join(format!("samples_{name}.jsonl")), &text)?;
    }
    runner::write_results(out, &results)?;
    let mut run = first.run.clone();
    let r = run.as_object_mut().context("run.json is not an object")?;
    r.remove("shard");
    r.insert("tasks".into(), json!(specs));
    r.insert(
        "merged_from".into(),
        json!(ordered
            .iter()
            .map(|s| json!({"shard": s.shard, "dir": s.dir.display().to_string(), "adapter": s.results["manifest"]["adapter"], "batch_size": s.results["manifest"]["batch_size"]}))
            .collect::<Vec<_>>()),
    );
    runner::write_atomic(&out.join("run.json"), &serde_json::to_string_pretty(&run)?)?;
    Ok(results)
}
