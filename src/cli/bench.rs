//! `pingce bench`: prefill and decode throughput of a model on the selected adapter.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use pingce::engine::{GenRequest, ScoreRequest};

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
    /// Sequences decoded together.
    #[arg(long, default_value_t = 1)]
    decode_batch: usize,
}

pub fn run(a: BenchArgs) -> Result<()> {
    let mut engine = a.model.engine()?;
    let vocab = engine.tokenizer.vocab_size().min(engine.model.vocab_size()) as u64;
    let len = a.prompt_tokens.min(engine.max_length());
    // Deterministic pseudo-random prompts.
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % vocab) as u32
    };
    let reqs: Vec<ScoreRequest> = (0..a.prefill_batch).map(|_| ScoreRequest { tokens: (0..len).map(|_| next()).collect(), score_from: len - 1 }).collect();
    println!("adapter: {}", engine.gpu.describe());
    let path = a.model.path()?;
    let file_bytes: u64 = engine.files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    println!(
        "model: {} ({:.1} MiB of weights on the GPU; {:.1} MiB of model files)",
        path.display(),
        engine.model.weight_bytes() as f64 / 1048576.0,
        file_bytes as f64 / 1048576.0
    );
    engine.opts.batch_size = a.prefill_batch.max(a.decode_batch);
    engine.opts.max_batch_tokens = engine.opts.max_batch_tokens.max(a.prefill_batch * len);
    // Warm-up compiles the pipelines and sizes the buffers.
    engine.score(&reqs[..1], 0)?;
    let t = Instant::now();
    engine.score(&reqs, 0)?;
    let prefill_s = t.elapsed().as_secs_f64();
    let ptoks = a.prefill_batch * len;
    println!("prefill: {ptoks} tokens ({} x {len}) in {prefill_s:.2} s = {:.1} tokens/s", a.prefill_batch, ptoks as f64 / prefill_s);

    let prompt: Vec<u32> = (0..16).map(|_| next()).collect();
    let gen = |n: usize| -> Vec<GenRequest> { (0..a.decode_batch).map(|_| GenRequest { prompt: prompt.clone(), until: vec![], max_tokens: n }).collect() };
    engine.generate(&gen(2))?;
    let t = Instant::now();
    engine.generate(&gen(1))?;
    let first = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let out = engine.generate(&gen(a.decode_tokens))?;
    let total = t.elapsed().as_secs_f64();
    let steps = out.iter().map(|g| g.tokens.len()).max().unwrap_or(0).saturating_sub(1).max(1);
    let decode_s = (total - first).max(1e-9);
    println!(
        "decode: {} sequence(s) x {steps} steps in {decode_s:.2} s = {:.1} tokens/s ({:.1} ms per step)",
        a.decode_batch,
        (steps * a.decode_batch) as f64 / decode_s,
        decode_s * 1e3 / steps as f64
    );
    Ok(())
}
