//! Recording a logit dump: score requests (or a text in rolling windows) on the engine and keep,
//! per scored position, the target's log-prob, the top-k and the tail mass; optionally whole
//! log-softmax rows for the first positions.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use super::{tail_logmass, Dump, InputInfo, Manifest, ModelInfo, FORMAT, FORMAT_VERSION};
use crate::digest;
use crate::engine::request_file::{self, Request};
use crate::engine::{Engine, Scored};

/// What a dump scores.
pub enum Input {
    /// A request file (`--requests`).
    Requests { path: PathBuf, requests: Vec<Request> },
    /// Requests made from tasks (`--tasks`); `spec` names them.
    Tasks { spec: String, requests: Vec<Request> },
    /// One text, scored whole in lm-eval's disjoint rolling windows (`--text`).
    Text { path: PathBuf, text: String },
}

impl Input {
    /// Reads a text file, refusing an empty one.
    pub fn text(path: &Path) -> Result<Input> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {} (must be UTF-8 text)", path.display()))?;
        ensure!(!text.is_empty(), "{}: empty text", path.display());
        Ok(Input::Text { path: path.to_path_buf(), text })
    }

    /// Reads a request file.
    pub fn requests(path: &Path) -> Result<Input> {
        Ok(Input::Requests { path: path.to_path_buf(), requests: request_file::read_requests(path)? })
    }

    fn info(&self) -> Result<InputInfo> {
        Ok(match self {
            Input::Requests { path, .. } => InputInfo { kind: "requests".into(), path: path.display().to_string(), sha256: digest::sha256_file(path)? },
            Input::Text { path, .. } => InputInfo { kind: "text".into(), path: path.display().to_string(), sha256: digest::sha256_file(path)? },
            // Task requests are made here: hash exactly what is scored.
            Input::Tasks { spec, requests } => {
                let text: String = requests.iter().map(|r| format!("{}\u{0}{}\u{0}{:?}\n", r.context, r.continuation, r.gold)).collect();
                InputInfo { kind: "tasks".into(), path: format!("tasks:{spec}"), sha256: digest::sha256_hex(text.as_bytes()) }
            }
        })
    }

    /// Where errors point.
    fn name(&self) -> String {
        match self {
            Input::Requests { path, .. } | Input::Text { path, .. } => path.display().to_string(),
            Input::Tasks { spec, .. } => format!("tasks {spec}"),
        }
    }
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
    /// Request (or window) `r`'s scored tokens; the first sits at index `context_tokens.len()`
    /// of its token sequence.
    fn push(&mut self, r: usize, s: &Scored, k: usize) -> Result<()> {
        let first_pos = s.context_tokens.len();
        for j in 0..s.logprobs.len() {
            let topk = &s.topk[j];
            ensure!(topk.len() == k, "request {}: {} top-k entries, asked for {k}", r + 1, topk.len());
            let lps: Vec<f32> = topk.iter().map(|x| x.1).collect();
            self.target_logprob.push(s.logprobs[j]);
            self.topk_ids.extend(topk.iter().map(|x| x.0 as i32));
            self.tail_logmass.push(tail_logmass(&lps) as f32);
            self.topk_logprobs.extend(lps);
            self.token_ids.push(s.continuation_tokens[j] as i32);
            self.request_index.push(r as i32);
            self.position.push((first_pos + j) as i32);
            self.is_argmax.push(s.is_greedy[j] as u8);
        }
        Ok(())
    }
}

/// How much a dump keeps.
pub struct RecordOptions {
    /// Top-k ids and log-probs per position (1..=[`super::MAX_TOPK`]).
    pub top_k: usize,
    /// Whole log-softmax rows for the first N positions (0: none).
    pub full_rows: usize,
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

/// Whole log-softmax rows of the first `n` scored positions of `scored`: the dump rows they
/// belong to and their `[rows, vocab]` values.
fn full_rows(engine: &mut Engine, scored: &[Scored], n: usize) -> Result<(Vec<i32>, Vec<f32>)> {
    let (mut idx, mut vals) = (Vec::new(), Vec::new());
    let mut offset = 0;
    for s in scored {
        if idx.len() >= n {
            break;
        }
        let (c, t) = (&s.context_tokens, &s.continuation_tokens);
        let take = t.len().min(n - idx.len());
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
    Ok((idx, vals))
}

/// Scores `input` on `engine` (loaded from `model_path`) into a dump.
pub fn record(engine: &mut Engine, model_path: &Path, input: &Input, o: &RecordOptions) -> Result<Dump> {
    let k = o.top_k;
    ensure!((1..=super::MAX_TOPK).contains(&k), "top-k {k}: must be 1..={}", super::MAX_TOPK);
    let info = input.info()?;
    let (scored, context_sha256, gold) = match input {
        Input::Requests { requests, .. } | Input::Tasks { requests, .. } => {
            let scored = engine.loglikelihood(&request_file::pairs(requests), k).with_context(|| input.name())?;
            let hashes = requests.iter().map(|r| digest::sha256(r.context.as_bytes())).collect();
            let gold = requests.iter().any(|r| r.gold.is_some()).then(|| requests.iter().map(|r| r.gold.map_or(-1, |g| g as i8)).collect());
            (scored, Some(hashes), gold)
        }
        // lm-eval loglikelihood_rolling's windows, scored with top-k.
        Input::Text { text, .. } => {
            let windows = engine.loglikelihood_rolling(std::slice::from_ref(text), k)?.remove(0);
            ensure!(!windows.is_empty(), "{}: the text encodes to no tokens", input.name());
            (windows, None, None)
        }
    };
    let mut rows = Rows::default();
    for (i, s) in scored.iter().enumerate() {
        rows.push(i, s, k)?;
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        producer: format!("pingce {}", crate::VERSION),
        pingce_version: Some(crate::VERSION.into()),
        model: ModelInfo {
            path: model_path.display().to_string(),
            files: digest::hash_files(&engine.files)?,
            vocab_size: engine.model.cfg.vocab_size,
            max_length: engine.max_length(),
        },
        tokenizer: tokenizer_info(engine, model_path),
        input: info,
        adapter: engine.describe_devices(),
        top_k: k,
        positions: rows.target_logprob.len(),
        requests: scored.len(),
        // No batch size: it never changes the numbers, so dumps are the same bytes for any.
        extra: serde_json::Map::new(),
    };
    let (full_row_index, full_logprobs) = match o.full_rows {
        0 => (None, None),
        n => {
            let (i, v) = full_rows(engine, &scored, n)?;
            (Some(i), Some(v))
        }
    };
    Ok(Dump {
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
    })
}
