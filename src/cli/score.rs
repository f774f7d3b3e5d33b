//! `pingce score`: log-likelihoods of {"context", "continuation"} pairs, one JSON line each.
//! Everything is computed before anything is printed, so a failure leaves no partial output.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use pingce::engine::requests::loglikelihood_tokens;
use serde::{Deserialize, Serialize};

use super::ModelArgs;

#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSONL file, one {"context": str, "continuation": str} per line.
    requests: PathBuf,
}

/// One request line. `gold` (optional) marks the correct continuation of a multiple-choice item
/// for `pingce logits` / `compare`; `score` ignores it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub context: String,
    pub continuation: String,
    #[serde(default)]
    pub gold: Option<bool>,
}

#[derive(Serialize)]
struct Output<'a> {
    context_tokens: &'a [u32],
    continuation_tokens: &'a [u32],
    logprobs: &'a [f32],
    is_greedy: &'a [bool],
    sum_logprob: f64,
}

/// Parses the request file, naming the line of any problem.
pub fn read_requests(path: &Path) -> Result<Vec<Request>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}: not valid UTF-8 text", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: Request = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: expected {{\"context\": string, \"continuation\": string}} (and optionally \"gold\": bool)", path.display(), i + 1))?;
        out.push(r);
    }
    if out.is_empty() {
        bail!("{}: no requests (the file is empty)", path.display());
    }
    Ok(out)
}

/// The (context, continuation) pairs of a request file.
pub fn read_pairs(path: &Path) -> Result<Vec<(String, String)>> {
    Ok(read_requests(path)?.into_iter().map(|r| (r.context, r.continuation)).collect())
}

pub fn run(a: ScoreArgs) -> Result<()> {
    let pairs = read_pairs(&a.requests)?;
    let mut engine = a.model.engine()?;
    let prefix = engine.tokenizer.prefix_token()?;
    for (i, (ctx, cont)) in pairs.iter().enumerate() {
        let (c, t) = loglikelihood_tokens(&engine.tokenizer, ctx, cont, prefix)?;
        let n = c.len() + t.len();
        if n > engine.max_length() + 1 {
            bail!("{}: request {}: {n} tokens, longer than the model's context of {}", a.requests.display(), i + 1, engine.max_length());
        }
        if t.is_empty() {
            bail!("{}: request {}: the continuation encodes to no tokens", a.requests.display(), i + 1);
        }
    }
    let scored = engine.loglikelihood(&pairs, 0)?;
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
