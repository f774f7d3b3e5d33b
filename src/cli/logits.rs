//! `pingce logits`: every scored position's target log-prob, top-k and tail mass, written as a
//! safetensors logit dump (docs/logit-dump.md) for `pingce compare`.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use pingce::conformance::{hash_files, sha256_bytes, sha256_file, tail_logmass, Dump, InputInfo, Manifest, ModelInfo, FORMAT, FORMAT_VERSION, MAX_TOPK};
use pingce::engine::requests::loglikelihood_tokens;
use pingce::engine::Engine;

use super::score::{read_requests, Request};
use super::ModelArgs;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["requests", "text", "tasks"]))]
pub struct LogitsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSONL file, one {"context": str, "continuation": str} per line (optionally "gold": bool,
    /// marking the right choice of a multiple-choice item); the continuation tokens are scored.
    #[arg(long)]
    requests: Option<PathBuf>,
    /// A text file scored whole, in lm-eval's disjoint rolling windows of the model's context.
    #[arg(long)]
    text: Option<PathBuf>,
    /// Tasks (names, groups, globs; see `pingce tasks`) whose log-likelihood requests are dumped:
    /// every choice of a multiple-choice item, marked gold where it is the answer.
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<String>,
    /// With --tasks: folder holding the datasets.
    #[arg(long, default_value = "evals/samples")]
    data_dir: PathBuf,
    /// With --tasks: only the first N documents of each task.
    #[arg(long)]
    limit: Option<usize>,
    /// With --tasks: few-shot examples (default: each task's own).
    #[arg(long)]
    num_fewshot: Option<usize>,
    /// With --tasks: few-shot seed.
    #[arg(long, default_value_t = pingce::eval::task::DEFAULT_FEWSHOT_SEED)]
    seed: u64,
    /// With --tasks: folder of task YAML files.
    #[arg(long, default_value = "evals")]
    tasks_dir: PathBuf,
    /// Output safetensors file (written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Top-k ids and log-probs stored per position (1..=32).
    #[arg(long, default_value_t = 32)]
    top_k: usize,
    /// Also store the whole log-softmax row of the first N positions (vocab floats each; at most
    /// a few thousand), so `compare` computes their KL divergence exactly.
    #[arg(long, default_value_t = 0)]
    full_rows: usize,
}

/// The log-likelihood requests of `--tasks`: each choice of a multiple-choice item after its
/// shared context (consecutive requests, so `compare` groups them into items and counts flips),
/// marked gold where it is the answer. Generation and perplexity items are left out.
fn task_requests(a: &LogitsArgs) -> Result<Vec<Request>> {
    use pingce::eval::task::{self, ItemKind};
    let all = task::load_tasks(&a.tasks_dir)?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for spec in &a.tasks {
        for t in task::select(&all, spec)? {
            if !seen.insert(t.name.clone()) {
                continue;
            }
            let (mut docs, pool) = t.docs(&a.data_dir)?;
            if let Some(n) = a.limit {
                docs.truncate(n);
            }
            let mut skipped = 0;
            for it in t.items(&docs, &pool, a.num_fewshot, a.seed)? {
                match &it.kind {
                    ItemKind::Choices { continuations, gold, .. } => {
                        for (i, c) in continuations.iter().enumerate() {
                            out.push(Request { context: it.context.clone(), continuation: c.clone(), gold: Some(gold.contains(&i)) });
                        }
                    }
                    ItemKind::ChoiceContexts { contexts, continuation, gold, .. } => {
                        for (i, c) in contexts.iter().enumerate() {
                            out.push(Request { context: c.clone(), continuation: continuation.clone(), gold: Some(gold.contains(&i)) });
                        }
                    }
                    ItemKind::Continuation { continuation } => out.push(Request { context: it.context.clone(), continuation: continuation.clone(), gold: None }),
                    ItemKind::Rolling { .. } | ItemKind::Generate { .. } => skipped += 1,
                }
            }
            if skipped > 0 {
                eprintln!("note: task {}: {skipped} generation/perplexity items are not log-likelihood requests; use --text for perplexity", t.name);
            }
        }
    }
    ensure!(!out.is_empty(), "--tasks {}: no log-likelihood requests", a.tasks.join(","));
    Ok(out)
}

/// Rows of a dump, filled request by request.
#[derive(Default)]
struct Rows {
    target_logprob: Vec<f32>,
    topk_ids: Vec<i32>,
    topk_logprobs: Vec<f32>,
    tail_logmass: Vec<f32>,
    token_ids: Vec<i32>,
    request_index: Vec<i32>,
    position: Vec<i32>,
    is_argmax: Vec<u8>,
}

impl Rows {
    /// Request `r`'s scored tokens, the first at index `first_pos` of its token sequence:
    /// (target id, target log-prob, target is the argmax, top-k).
    fn push<'a>(&mut self, r: usize, first_pos: usize, scored: impl Iterator<Item = (u32, f32, bool, &'a [(u32, f32)])>, k: usize) -> Result<()> {
        for (j, (t, lp, is_argmax, topk)) in scored.enumerate() {
            ensure!(topk.len() == k, "request {}: {} top-k entries, asked for {k}", r + 1, topk.len());
            let lps: Vec<f32> = topk.iter().map(|x| x.1).collect();
            self.target_logprob.push(lp);
            self.topk_ids.extend(topk.iter().map(|x| x.0 as i32));
            self.tail_logmass.push(tail_logmass(&lps) as f32);
            self.topk_logprobs.extend(lps);
            self.token_ids.push(t as i32);
            self.request_index.push(r as i32);
            self.position.push((first_pos + j) as i32);
            self.is_argmax.push(is_argmax as u8);
        }
        Ok(())
    }
}

fn tokenizer_info(engine: &Engine, model: &Path) -> serde_json::Value {
    let is_gguf = model.is_file();
    serde_json::json!({
        "source": if is_gguf { "gguf metadata (tokenizer.ggml.*)" } else { "tokenizer.json" },
        "path": if is_gguf { model.display().to_string() } else { model.join("tokenizer.json").display().to_string() },
        "vocab_size": engine.tokenizer.vocab_size(),
        "bos_id": engine.tokenizer.bos_id,
        "eos_id": engine.tokenizer.eos_id,
        "prefix_token": engine.tokenizer.prefix_token().ok(),
        "add_special_tokens": false,
    })
}

pub fn run(a: LogitsArgs) -> Result<()> {
    let k = a.top_k;
    if k == 0 || k > MAX_TOPK {
        bail!("--top-k {k}: must be 1..={MAX_TOPK}");
    }
    // Read the input before loading the model, so a bad file fails fast.
    let (kind, input_path) = match (&a.requests, &a.text, a.tasks.is_empty()) {
        (Some(p), None, true) => ("requests", p.clone()),
        (None, Some(p), true) => ("text", p.clone()),
        (None, None, false) => ("tasks", PathBuf::from(format!("tasks:{}", a.tasks.join(",")))),
        _ => bail!("give exactly one of --requests, --text and --tasks"),
    };
    let requests = match kind {
        "requests" => Some(read_requests(&input_path)?),
        "tasks" => Some(task_requests(&a)?),
        _ => None,
    };
    let text = if kind == "text" {
        let t = std::fs::read_to_string(&input_path).with_context(|| format!("reading {} (must be UTF-8 text)", input_path.display()))?;
        ensure!(!t.is_empty(), "{}: empty text", input_path.display());
        Some(t)
    } else {
        None
    };
    let input_sha = match (kind, &requests) {
        // Task requests are made here: hash exactly what is scored.
        ("tasks", Some(reqs)) => {
            let text: String = reqs.iter().map(|r| format!("{}\u{0}{}\u{0}{:?}\n", r.context, r.continuation, r.gold)).collect();
            pingce::sha256_bytes(text.as_bytes())
        }
        _ => sha256_file(&input_path)?.0,
    };
    let model_path = a.model.path()?;
    let mut engine = a.model.engine()?;
    let max_len = engine.max_length();
    let mut rows = Rows::default();
    // (context, continuation) tokens of each request or window, in dump order.
    let mut seqs: Vec<(Vec<u32>, Vec<u32>)> = Vec::new();
    let (n_requests, context_sha256, gold) = if let Some(reqs) = &requests {
        let prefix = engine.tokenizer.prefix_token()?;
        for (i, r) in reqs.iter().enumerate() {
            let (c, t) = loglikelihood_tokens(&engine.tokenizer, &r.context, &r.continuation, prefix)?;
            if c.len() + t.len() > max_len + 1 {
                bail!("{}: request {}: {} tokens, longer than the model's context of {max_len}", input_path.display(), i + 1, c.len() + t.len());
            }
            if t.is_empty() {
                bail!("{}: request {}: the continuation encodes to no tokens", input_path.display(), i + 1);
            }
            if c.is_empty() {
                bail!("{}: request {}: the context encodes to no tokens (whitespace only?)", input_path.display(), i + 1);
            }
        }
        let pairs: Vec<(String, String)> = reqs.iter().map(|r| (r.context.clone(), r.continuation.clone())).collect();
        let scored = engine.loglikelihood(&pairs, k)?;
        seqs.extend(scored.iter().map(|s| (s.context_tokens.clone(), s.continuation_tokens.clone())));
        for (i, s) in scored.iter().enumerate() {
            let it = (0..s.logprobs.len()).map(|j| (s.continuation_tokens[j], s.logprobs[j], s.is_greedy[j], s.topk[j].as_slice()));
            rows.push(i, s.context_tokens.len(), it, k)?;
        }
        let hashes = reqs.iter().map(|r| sha256_bytes(r.context.as_bytes())).collect();
        let gold = reqs.iter().any(|r| r.gold.is_some()).then(|| reqs.iter().map(|r| r.gold.map_or(-1, |g| g as i8)).collect());
        (reqs.len(), Some(hashes), gold)
    } else {
        // lm-eval loglikelihood_rolling's windows, scored with top-k.
        let text = text.as_ref().unwrap();
        let windows = engine.loglikelihood_rolling(std::slice::from_ref(text), k)?.remove(0);
        seqs.extend(windows.iter().map(|s| (s.context_tokens.clone(), s.continuation_tokens.clone())));
        ensure!(!windows.is_empty(), "{}: the text encodes to no tokens", input_path.display());
        for (w, s) in windows.iter().enumerate() {
            let it = (0..s.logprobs.len()).map(|j| (s.continuation_tokens[j], s.logprobs[j], s.is_greedy[j], s.topk[j].as_slice()));
            rows.push(w, s.context_tokens.len(), it, k)?;
        }
        (windows.len(), None, None)
    };
    let files = hash_files(&engine.files)?;
    let n = rows.target_logprob.len();
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        producer: format!("pingce {}", pingce::VERSION),
        pingce_version: Some(pingce::VERSION.into()),
        model: ModelInfo { path: model_path.display().to_string(), files, vocab_size: engine.model.cfg.vocab_size, max_length: max_len },
        tokenizer: tokenizer_info(&engine, &model_path),
        input: InputInfo { kind: kind.into(), path: input_path.display().to_string(), sha256: input_sha },
        adapter: engine.gpu.describe(),
        top_k: k,
        positions: n,
        requests: n_requests,
        // No batch size: it never changes the numbers, so dumps are the same bytes for any.
        extra: serde_json::Map::new(),
    };
    let (full_row_index, full_logprobs) = if a.full_rows > 0 {
        let (mut idx, mut vals) = (Vec::new(), Vec::new());
        let mut offset = 0;
        for (c, t) in &seqs {
            if idx.len() >= a.full_rows {
                break;
            }
            let take = t.len().min(a.full_rows - idx.len());
            let mut tokens = c.clone();
            tokens.extend(t);
            tokens.pop(); // the last token is only a target
            let positions: Vec<usize> = (0..take).map(|j| c.len() - 1 + j).collect();
            for row in engine.full_logprob_rows(&tokens, &positions)? {
                vals.extend(row);
            }
            idx.extend((0..take).map(|j| (offset + j) as i32));
            offset += t.len();
        }
        (Some(idx), Some(vals))
    } else {
        (None, None)
    };
    let dump = Dump {
        full_row_index,
        full_logprobs,
        manifest,
        k,
        target_logprob: rows.target_logprob,
        topk_ids: rows.topk_ids,
        topk_logprobs: rows.topk_logprobs,
        tail_logmass: rows.tail_logmass,
        token_ids: rows.token_ids,
        request_index: rows.request_index,
        position: rows.position,
        is_argmax: rows.is_argmax,
        context_sha256,
        gold,
    };
    dump.write(&a.out)?;
    let unit = if kind == "text" { "rolling windows" } else { "requests" };
    eprintln!("wrote {} ({n} positions in {n_requests} {unit}, top-{k})", a.out.display());
    Ok(())
}
