//! `pingce determinism`: scores the same requests at several batch sizes and orders, and by
//! incremental decoding, and checks that every log-prob is bit-identical; exits non-zero if not.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use pingce::engine::request_file;
use super::ModelArgs;

#[derive(Args)]
pub struct DeterminismArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSONL file of {"context", "continuation"} pairs (as for `pingce score`).
    #[arg(long, default_value = "evals/samples/requests.jsonl")]
    requests: PathBuf,
    /// Batch sizes to compare (the first is the reference).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,8,64")]
    batch_sizes: Vec<usize>,
    /// Also re-score each request token by token through the decode path.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    incremental: bool,
}

/// The first (request, token) whose bits differ between two runs.
fn first_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> Option<(usize, usize, f32, f32)> {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        for (t, (p, q)) in x.iter().zip(y).enumerate() {
            if p.to_bits() != q.to_bits() {
                return Some((i, t, *p, *q));
            }
        }
        if x.len() != y.len() {
            return Some((i, x.len().min(y.len()), f32::NAN, f32::NAN));
        }
    }
    None
}

pub fn run(a: DeterminismArgs) -> Result<()> {
    let pairs = request_file::pairs(&request_file::read_requests(&a.requests)?);
    let mut engine = a.model.engine()?;
    if a.batch_sizes.is_empty() {
        bail!("--batch-sizes: give at least one");
    }
    let n = pairs.len();
    // Orders: as given, reversed, and a fixed shuffle.
    let mut shuffled: Vec<usize> = (0..n).collect();
    let mut s = 0x9E3779B97F4A7C15u64;
    for i in (1..n).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        shuffled.swap(i, (s % (i as u64 + 1)) as usize);
    }
    let orders: [(&str, Vec<usize>); 3] = [("input order", (0..n).collect()), ("reversed", (0..n).rev().collect()), ("shuffled", shuffled)];
    let mut reference: Option<Vec<Vec<f32>>> = None;
    let mut failures = 0;
    println!("{n} requests on {}", engine.describe_devices());
    for &bs in &a.batch_sizes {
        for (name, order) in &orders {
            engine.opts.batch_size = bs.max(1);
            let permuted: Vec<(String, String)> = order.iter().map(|&i| pairs[i].clone()).collect();
            let scored = engine.loglikelihood(&permuted, 0)?;
            let mut run: Vec<Vec<f32>> = vec![Vec::new(); n];
            for (s, &i) in scored.into_iter().zip(order) {
                run[i] = s.logprobs;
            }
            let label = format!("batch size {bs:>3}, {name}");
            match &reference {
                None => {
                    println!("{label:<32} reference");
                    reference = Some(run);
                }
                Some(r) => match first_difference(r, &run) {
                    None => println!("{label:<32} bit-identical"),
                    Some((i, t, p, q)) => {
                        failures += 1;
                        println!("{label:<32} DIFFERENT: request {} token {t}: {p:?} vs {q:?}", i + 1);
                    }
                },
            }
        }
    }
    if a.incremental {
        let reference = reference.unwrap();
        let prefix = engine.tokenizer.prefix_token()?;
        let mut worst: Option<(usize, usize, f32, f32)> = None;
        for (i, (ctx, cont)) in pairs.iter().enumerate() {
            let (c, t) = pingce::engine::requests::loglikelihood_tokens(&engine.tokenizer, ctx, cont, prefix)?;
            let mut tokens = c.clone();
            tokens.extend(&t);
            let inc = engine.score_incremental(&tokens, c.len())?;
            if let Some((_, k, p, q)) = first_difference(std::slice::from_ref(&reference[i]), std::slice::from_ref(&inc)) {
                worst.get_or_insert((i, k, p, q));
            }
        }
        match worst {
            None => println!("{:<32} bit-identical", "incremental decode"),
            Some((i, t, p, q)) => {
                failures += 1;
                println!("{:<32} DIFFERENT: request {} token {t}: {p:?} vs {q:?}", "incremental decode", i + 1);
            }
        }
    }
    if failures > 0 {
        return Err(super::CheckFailed(format!("{failures} configuration(s) gave different log-probs")).into());
    }
    println!("PASS: every configuration gave bit-identical log-probs");
    Ok(())
}
