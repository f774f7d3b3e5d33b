//! The command line: each subcommand parses its arguments, calls the library and prints.

mod bench;
mod compare;
mod determinism;
mod devices;
mod eval;
mod generate;
mod logits;
mod merge;
mod plan;
mod report;
mod safety;
mod score;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use pingce::device::{DeviceOptions, Gpu};
use pingce::engine::split::Placement;
use pingce::engine::{Engine, EngineOptions};
use pingce::model::plan::{CacheSize, ExpertsOn};

#[derive(Parser)]
#[command(name = "pingce", version, about = "Reproducible LLM evaluation on WGSL kernels (Vulkan, Metal, DX12, lavapipe)")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the adapters wgpu sees and which one would be used.
    Devices(devices::DevicesArgs),
    /// Score {"context", "continuation"} pairs from a JSONL file; one JSON line out per pair.
    Score(score::ScoreArgs),
    /// Greedy generation from a prompt.
    Generate(generate::GenerateArgs),
    /// Measure prefill and decode throughput.
    Bench(bench::BenchArgs),
    /// Evaluate a model on benchmark tasks (YAML in evals/).
    Eval(eval::EvalArgs),
    /// List the tasks and groups.
    Tasks(eval::TasksArgs),
    /// Check that log-probs are bit-identical across batch sizes, orders and decode paths.
    Determinism(determinism::DeterminismArgs),
    /// Write every scored position's log-probs, top-k and tail mass to a safetensors dump.
    Logits(logits::LogitsArgs),
    /// Compare a candidate logit dump against a reference: KLD, top-1, flips; PASS/FAIL.
    Compare(compare::CompareArgs),
    /// Join the output folders of `eval --shard i/N` into the folder an unsharded run writes.
    Merge(merge::MergeArgs),
    /// An HTML and Markdown report of eval runs: scores with intervals, per-subject tables,
    /// paired comparisons with significance.
    Report(report::ReportArgs),
    /// Safety assessment for generative-AI filing (TC260-003 / GB/T 45654-2025).
    Safety(safety::SafetyArgs),
    /// The memory each adapter will need (weights by dtype, KV cache, activations, expert
    /// cache), from the config and tensor headers only, and what does not fit.
    Plan(plan::PlanArgs),
}

/// Adapter selection, shared by every subcommand that runs kernels.
#[derive(Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Adapter index (see `pingce devices`) or a case-insensitive substring of its name.
    #[arg(long, conflicts_with = "devices")]
    pub device: Option<String>,
    /// Split the model's layers across these adapters, in order (indices or name substrings,
    /// comma-separated; the same adapter may be named twice). The embedding lives on the first,
    /// the head on the last; hidden states pass between them through host memory.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Backend: vulkan, metal, dx12 or gl (default: every primary backend).
    #[arg(long)]
    pub backend: Option<String>,
    /// Fail GPU allocations past this size in all (bytes, or with a K, M or G suffix), as a
    /// full GPU would: to test, or to stay within a share of a device. With --devices, per
    /// device; loading refuses, with the memory plan, weights that would not fit it.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub gpu_memory_budget: Option<u64>,
}

impl DeviceArgs {
    pub fn options(&self) -> DeviceOptions {
        DeviceOptions { backend: self.backend.clone(), device: self.device.clone(), memory_budget: self.gpu_memory_budget }
    }

    /// The `--devices` entries, or the one `--device` (or default) adapter.
    pub fn specs(&self) -> Vec<Option<String>> {
        if self.devices.is_empty() {
            vec![self.device.clone()]
        } else {
            self.devices.iter().map(|d| Some(d.trim().to_string())).collect()
        }
    }

    /// Opens every device of `--devices` (a device each, even on one adapter), or the one of
    /// `--device`. `--gpu-memory-budget` applies to each.
    pub fn open_all(&self) -> Result<Vec<Gpu>> {
        let mut gpus = Vec::new();
        for (i, spec) in self.specs().into_iter().enumerate() {
            let opts = DeviceOptions { device: spec, ..self.options() };
            let (gpu, note) = Gpu::open(&opts)?;
            if let Some(n) = note {
                eprintln!("note: {n}");
            }
            if self.devices.is_empty() {
                eprintln!("adapter: {}", gpu.describe());
            } else {
                eprintln!("device {i}: {}", gpu.describe());
            }
            gpus.push(gpu);
        }
        Ok(gpus)
    }
}

/// A model folder and how to batch it.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// A GGUF file or a Hugging Face model folder (config.json, *.safetensors, tokenizer.json).
    /// Default: $PINGCE_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Sequences per pass (≥ 1). Changes speed, never results.
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    pub batch_size: usize,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Where the routed experts of a mixture-of-experts model live: `gpu`, or `host` (host
    /// memory, streamed into a GPU expert cache; one routing readback per sparse layer).
    #[arg(long, value_name = "gpu|host", default_value = "gpu", value_parser = parse_experts_on)]
    pub experts_on: ExpertsOn,
    /// Size of the GPU expert cache with `--experts-on host`: bytes (512M, 2G) or expert slots
    /// (16experts). Default: one layer's experts.
    #[arg(long, value_name = "SIZE", value_parser = CacheSize::parse)]
    pub expert_cache: Option<CacheSize>,
}

pub fn parse_experts_on(s: &str) -> std::result::Result<ExpertsOn, String> {
    match s {
        "gpu" => Ok(ExpertsOn::Gpu),
        "host" => Ok(ExpertsOn::Host),
        _ => Err(format!("{s:?}: expected gpu or host")),
    }
}

impl ModelArgs {
    pub fn path(&self) -> Result<PathBuf> {
        match &self.model {
            Some(p) => Ok(p.clone()),
            None => {
                let p = pingce::default_model();
                if !p.exists() {
                    anyhow::bail!("no --model given and the default model {} is missing: run tools/fetch-default-model", p.display());
                }
                Ok(p)
            }
        }
    }

    pub fn engine(&self) -> Result<Engine> {
        let path = self.path()?;
        if self.expert_cache.is_some() && self.experts_on != ExpertsOn::Host {
            anyhow::bail!("--expert-cache sizes the cache of --experts-on host; add --experts-on host");
        }
        let gpus = self.device.open_all()?;
        let opts = EngineOptions { batch_size: self.batch_size, ..Default::default() };
        let place = Placement { experts_on: self.experts_on, expert_cache: self.expert_cache, context: None };
        let engine = Engine::load_on(gpus, &path, opts, &place)?;
        if !engine.rest.is_empty() {
            let mut ranges = vec![engine.model.layer_range()];
            ranges.extend(engine.rest.iter().map(|s| s.model.layer_range()));
            eprintln!("layers per device: {}", ranges.iter().enumerate().map(|(i, r)| format!("{i}: {}..{}", r.start, r.end)).collect::<Vec<_>>().join(", "));
        }
        Ok(engine)
    }
}

/// `1048576`, `64K`, `512M`, `8G` (powers of 1024) as bytes.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 10),
        Some((i, 'M' | 'm')) => (&t[..i], 20),
        Some((i, 'G' | 'g')) => (&t[..i], 30),
        _ => (t, 0),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a size such as 1048576, 64K, 512M or 8G"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

/// A check that ran and failed (compare FAIL, determinism differences): exit status 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(pub String);

/// A count that must be at least 1 (`--batch-size`, `--limit`).
pub fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("expected a positive integer: {e}")),
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Devices(a) => devices::run(a),
        Command::Score(a) => score::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Determinism(a) => determinism::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Tasks(a) => eval::list(a),
        Command::Logits(a) => logits::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Report(a) => report::run(a),
        Command::Safety(a) => safety::run(a),
        Command::Plan(a) => plan::run(a),
    }
}
