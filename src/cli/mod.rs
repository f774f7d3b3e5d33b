//! The command line: each subcommand parses its arguments, calls the library and prints.

mod bench;
mod compare;
mod determinism;
mod devices;
mod eval;
mod generate;
mod logits;
mod merge;
mod report;
mod score;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use pingce::device::{DeviceOptions, Gpu};
use pingce::engine::{Engine, EngineOptions};

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
}

/// Adapter selection, shared by every subcommand that runs kernels.
#[derive(Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Adapter index (see `pingce devices`) or a case-insensitive substring of its name.
    #[arg(long)]
    pub device: Option<String>,
    /// Backend: vulkan, metal, dx12 or gl (default: every primary backend).
    #[arg(long)]
    pub backend: Option<String>,
}

impl DeviceArgs {
    pub fn options(&self) -> DeviceOptions {
        DeviceOptions { backend: self.backend.clone(), device: self.device.clone() }
    }

    pub fn open(&self) -> Result<Gpu> {
        let (gpu, note) = Gpu::open(&self.options())?;
        if let Some(n) = note {
            eprintln!("note: {n}");
        }
        eprintln!("adapter: {}", gpu.describe());
        Ok(gpu)
    }
}

/// A model folder and how to batch it.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// A GGUF file or a Hugging Face model folder (config.json, *.safetensors, tokenizer.json).
    /// Default: $PINGCE_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Sequences per pass. Changes speed, never results.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[command(flatten)]
    pub device: DeviceArgs,
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
        let gpu = self.device.open()?;
        let opts = EngineOptions { batch_size: self.batch_size.max(1), ..Default::default() };
        Engine::load(gpu, &path, opts)
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
    }
}
