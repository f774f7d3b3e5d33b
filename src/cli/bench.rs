//! `pingce bench`: prefill and decode throughput of a model on the selected adapter, optionally
//! multiple-choice items per second on a fixed suite of real data, as text or JSON (`--json`,
//! for comparing commits and devices).

use pingce::device::recorder::profile;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use pingce::engine::{Engine, GenRequest, ScoreRequest};
use pingce::eval::plan::{self, PlanOptions};
use pingce::eval::runner::{self, RunOptions};
use serde_json::{json, Value};

use super::ModelArgs;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Sequences prefilled together.
    #[arg(long, default_value_t = 8)]
    prefill_batch: usize,
    /// Tokens per prefilled sequence.
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    /// Tokens generated per sequence in the decode measurement.
    #[arg(long, default_value_t = 32)]
    decode_tokens: usize,
    /// Sequences decoded together, one measurement each.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    decode_batch: Vec<usize>,
    /// Prompt tokens before decoding starts (the context each decoded token attends to).
    #[arg(long, default_value_t = 16)]
    decode_context: usize,
    /// Also measure multiple-choice items per second on the fixed suite (200 items each of
    /// ARC-Challenge, HellaSwag, MMLU and C-Eval) read from this folder, laid out as
    /// ../shared/datasets is (the suite uses its dev/validation splits).
    #[arg(long, value_name = "DATA_DIR")]
    mc_suite: Option<PathBuf>,
    /// Items per suite member for `--mc-suite` (200 is the reference suite; fewer for a quick look,
    /// recorded in the output).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    mc_items: u64,
    /// Measure prefill and each decode this many times and report the best run (and the median
    /// and every run's figure): on a machine shared with other work, the best of several runs is
    /// the figure least disturbed by it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The best of `runs` (highest `tokens_per_s`), with `median_tokens_per_s` and `runs_tokens_per_s`
/// (every run's figure, in order) added when there was more than one.
fn best_of(runs: Vec<Value>) -> Value {
    let rate = |v: &Value| v["tokens_per_s"].as_f64().unwrap_or(0.0);
    let mut rates: Vec<f64> = runs.iter().map(rate).collect();
    let n = runs.len();
    let mut best = runs.into_iter().max_by(|a, b| rate(a).total_cmp(&rate(b))).unwrap_or(Value::Null);
    if n > 1 {
        best["runs_tokens_per_s"] = json!(rates.clone());
        rates.sort_by(f64::total_cmp);
        let median = if n % 2 == 1 { rates[n / 2] } else { (rates[n / 2 - 1] + rates[n / 2]) / 2.0 };
        best["median_tokens_per_s"] = json!(median);
    }
    best
}

/// The suite `--mc-suite` runs: (task or group, smoke split); `--mc-items` items of each.
const SUITE: [(&str, &str); 4] = [("arc_challenge", "validation"), ("hellaswag", "validation"), ("mmlu", "validation"), ("ceval-valid", "dev")];

/// Deterministic pseudo-random token ids below `vocab`.
fn tokens(vocab: u64) -> impl FnMut() -> u32 {
    let mut state = 0x2545F4914F6CDD1Du64;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % vocab) as u32
    }
}

/// The prefill measurement's requests: `prefill_batch` random prompts of `prompt_tokens`.
fn prefill_requests(engine: &Engine, a: &BenchArgs, next: &mut impl FnMut() -> u32) -> Vec<ScoreRequest> {
    let len = a.prompt_tokens.min(engine.max_length());
    (0..a.prefill_batch).map(|_| ScoreRequest { tokens: (0..len).map(|_| next()).collect(), score_from: len - 1 }).collect()
}

fn prefill(engine: &mut Engine, a: &BenchArgs, reqs: &[ScoreRequest]) -> Result<Value> {
    let len = reqs[0].tokens.len();
    engine.opts.max_batch_tokens = engine.opts.max_batch_tokens.max(a.prefill_batch * len);
    // Warm-up compiles the pipelines and sizes the buffers.
    engine.score(&reqs[..1], 0)?;
    let (t, c) = (Instant::now(), cpu_seconds());
    engine.score(reqs, 0)?;
    let s = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(c).map(|(b, a)| b - a);
    let n = a.prefill_batch * len;
    Ok(json!({"sequences": a.prefill_batch, "tokens_per_sequence": len, "seconds": s, "tokens_per_s": n as f64 / s, "cpu_seconds": cpu}))
}

/// CPU time (user + system, all threads, so a software adapter's workers count) this process
/// has used, in seconds: on a machine shared with other work it moves less than wall time.
/// `None` where /proc is not there.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks / 100.0)
}

/// The prompt of a decode measurement: `context` tokens (clamped to leave room for the steps).
fn decode_prompt(engine: &Engine, steps_asked: usize, context: usize, next: &mut impl FnMut() -> u32) -> Vec<u32> {
    let context = context.clamp(1, engine.max_length().saturating_sub(steps_asked + 1).max(1));
    (0..context).map(|_| next()).collect()
}

/// Decodes `steps_asked` tokens for `batch` copies of `prompt` (greedy, so every copy and every
/// repetition does the same work, stopping where EOS comes, if it does), timing the passes after
/// the last one that prefilled prompts (`max_batch_tokens` may split the prompts over several).
fn decode(engine: &mut Engine, batch: usize, steps_asked: usize, prompt: &[u32]) -> Result<Value> {
    let context = prompt.len();
    let gen = |n: usize| -> Vec<GenRequest> { (0..batch).map(|_| GenRequest { prompt: prompt.to_vec(), until: vec![], max_tokens: n }).collect() };
    engine.generate(&gen(2))?;
    let (mut start, mut steps, mut tokens) = (None, 0, 0);
    engine.generate_observed(&gen(steps_asked), &mut |pass| {
        if pass.prompts > 0 {
            (start, steps, tokens) = (Some((Instant::now(), cpu_seconds())), 0, 0);
        } else {
            steps += 1;
            tokens += pass.decoded;
        }
    })?;
    let Some((t, c)) = start else { bail!("internal: the decode measurement ran no pass") };
    if steps == 0 {
        bail!("no decode step to time: every sequence ended (EOS) in the pass that prefilled it; try another --decode-context or more --decode-tokens");
    }
    let (s, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds().zip(c).map(|(b, a)| b - a));
    // Weights read once per step: the bandwidth decode achieves (KV reads left out).
    let gbps = engine.weight_bytes() as f64 * steps as f64 / s / 1e9;
    Ok(json!({"sequences": batch, "context": context, "steps": steps, "seconds": s, "tokens_per_s": tokens as f64 / s, "ms_per_step": s * 1e3 / steps as f64, "weight_gb_per_s": gbps,
        "cpu_ms_per_step": cpu.map(|c| c * 1e3 / steps as f64)}))
}

fn mc_suite(engine: &mut Engine, data: &std::path::Path, per_member: usize) -> Result<Value> {
    let specs: Vec<String> = SUITE.iter().map(|s| s.0.to_string()).collect();
    let mut tasks = plan::select_tasks(std::path::Path::new("evals"), &specs, false)?;
    let splits: Vec<String> = SUITE.iter().map(|(t, s)| format!("{t}={s}")).collect();
    plan::apply_splits(&mut tasks, &splits)?;
    let mut runs = plan::prepare(&tasks, &PlanOptions { data_dir: data.to_path_buf(), limit: Some(per_member), ..Default::default() })?;
    // `per_member` items per suite member: a group's subtasks in order until that many.
    for (name, _) in SUITE {
        let mut left = per_member;
        for r in runs.iter_mut().filter(|r| r.name == name || r.groups.iter().any(|g| g == name)) {
            r.items.truncate(left);
            left -= r.items.len();
        }
    }
    runs.retain(|r| !r.items.is_empty());
    let items: usize = runs.iter().map(|r| r.items.len()).sum();
    let out = std::env::temp_dir().join(format!("pingce-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let opts = RunOptions { out: out.clone(), chunk: 64, settings: json!({"bench": "mc-suite"}), progress: false, shard: None };
    let t = Instant::now();
    let results = runner::run(engine, &runs, &opts)?;
    let s = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&out);
    let acc: serde_json::Map<String, Value> = SUITE
        .iter()
        .filter_map(|(name, ..)| {
            let v = results["results"][name]["acc"]["value"].as_f64().or(results["groups"][name]["acc"]["micro"].as_f64())?;
            Some((name.to_string(), json!(v)))
        })
        .collect();
    Ok(json!({"items_per_member": per_member, "items": items, "seconds": s, "items_per_s": items as f64 / s, "acc": acc}))
}

pub fn run(a: BenchArgs) -> Result<()> {
    let mut engine = a.model.engine()?;
    let vocab = engine.tokenizer.vocab_size().min(engine.model.vocab_size()) as u64;
    let mut next = tokens(vocab);
    let path = a.model.path()?;
    let file_bytes: u64 = engine.files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    engine.opts.batch_size = a.prefill_batch.max(a.decode_batch.iter().copied().max().unwrap_or(1));
    // With PINGCE_PROFILE set, each measurement's kernel times go to stderr after it.
    let profiled = |what: &str| {
        if profile::enabled() {
            eprintln!("{what}: {}", profile::report());
            profile::reset();
        }
    };
    profile::reset();
    let repeat = a.repeat as usize;
    // Each repetition runs the same requests.
    let reqs = prefill_requests(&engine, &a, &mut next);
    let prefill = best_of((0..repeat).map(|_| prefill(&mut engine, &a, &reqs)).collect::<Result<_>>()?);
    profiled("prefill");
    let mut decodes = Vec::new();
    for &b in &a.decode_batch {
        let prompt = decode_prompt(&engine, a.decode_tokens, a.decode_context, &mut next);
        decodes.push(best_of((0..repeat).map(|_| decode(&mut engine, b, a.decode_tokens, &prompt)).collect::<Result<_>>()?));
        profiled(&format!("decode of {b}"));
    }
    let suite = match &a.mc_suite {
        Some(d) => Some(mc_suite(&mut engine, d, a.mc_items as usize)?),
        None => None,
    };
    profiled("multiple choice");
    let report = json!({
        "pingce_version": pingce::VERSION,
        "repeat": repeat,
        "git_commit": pingce::GIT_COMMIT,
        "adapter": engine.describe_devices(),
        // lavapipe's worker threads (see device::select::tune_software_threads): speed only.
        "lp_num_threads": std::env::var(pingce::device::select::LP_NUM_THREADS).ok().and_then(|v| v.parse::<u64>().ok()),
        "model": path.display().to_string(),
        "weights_mib": engine.weight_bytes() as f64 / 1048576.0,
        "model_files_mib": file_bytes as f64 / 1048576.0,
        "gpu_mib_allocated": engine.allocated() as f64 / 1048576.0,
        "prefill": prefill,
        "decode": decodes,
        "mc_suite": suite,
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("adapter: {}", report["adapter"].as_str().unwrap_or_default());
    if let (Some(t), true) = (report["lp_num_threads"].as_u64(), report["adapter"].as_str().unwrap_or_default().contains("llvmpipe")) {
        println!("lavapipe worker threads: {t} (LP_NUM_THREADS)");
    }
    println!("model: {} ({:.1} MiB of weights on the GPU; {:.1} MiB of model files)", path.display(), report["weights_mib"].as_f64().unwrap_or(0.0), report["model_files_mib"].as_f64().unwrap_or(0.0));
    let p = &report["prefill"];
    // With --repeat: the best run, then the median of all.
    let median = |v: &Value| v["median_tokens_per_s"].as_f64().map(|m| format!(" (best of {repeat}; median {m:.1})")).unwrap_or_default();
    println!(
        "prefill: {} tokens ({} x {}) in {:.2} s = {:.1} tokens/s{}",
        p["sequences"].as_u64().unwrap_or(0) * p["tokens_per_sequence"].as_u64().unwrap_or(0),
        p["sequences"],
        p["tokens_per_sequence"],
        p["seconds"].as_f64().unwrap_or(0.0),
        p["tokens_per_s"].as_f64().unwrap_or(0.0),
        median(p)
    );
    for d in report["decode"].as_array().into_iter().flatten() {
        println!(
            "decode: {} sequence(s) x {} steps after {} context tokens in {:.2} s = {:.1} tokens/s ({:.1} ms per step, {:.2} GB/s of weights){}",
            d["sequences"],
            d["steps"],
            d["context"],
            d["seconds"].as_f64().unwrap_or(0.0),
            d["tokens_per_s"].as_f64().unwrap_or(0.0),
            d["ms_per_step"].as_f64().unwrap_or(0.0),
            d["weight_gb_per_s"].as_f64().unwrap_or(0.0),
            median(d)
        );
    }
    if let Some(s) = report["mc_suite"].as_object() {
        println!("multiple choice: {} items in {:.1} s = {:.2} items/s (acc {})", s["items"], s["seconds"].as_f64().unwrap_or(0.0), s["items_per_s"].as_f64().unwrap_or(0.0), s["acc"]);
    }
    println!("GPU memory asked for: {:.1} MiB", report["gpu_mib_allocated"].as_f64().unwrap_or(0.0));
    Ok(())
}
