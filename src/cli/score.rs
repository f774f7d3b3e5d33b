//! `pingce score`: log-likelihoods of {"context", "continuation"} pairs, one JSON line each.
//! Everything is computed before anything is printed, so a failure leaves no partial output.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use pingce::engine::request_file;
use serde::Serialize;

use super::ModelArgs;

#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSONL file, one {"context": str, "continuation": str} per line.
    requests: PathBuf,
}

#[derive(Serialize)]
struct Output<'a> {
    context_tokens: &'a [u32],
    continuation_tokens: &'a [u32],
    logprobs: &'a [f32],
    is_greedy: &'a [bool],
    sum_logprob: f64,
}

pub fn run(a: ScoreArgs) -> Result<()> {
    let pairs = request_file::pairs(&request_file::read_requests(&a.requests)?);
    let mut engine = a.model.engine()?;
    let scored = engine.loglikelihood(&pairs, 0).with_context(|| a.requests.display().to_string())?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for s in &scored {
        let o = Output {
            context_tokens: &s.context_tokens,
            continuation_tokens: &s.continuation_tokens,
            logprobs: &s.logprobs,
            is_greedy: &s.is_greedy,
            sum_logprob: s.sum_logprob(),
        };
        serde_json::to_writer(&mut w, &o)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}
