//! The tokenizer stored in GGUF metadata (`tokenizer.ggml.*`), rebuilt as a Hugging Face
//! `tokenizers` pipeline: byte-level BPE with merges (`gpt2` model: SmolLM2, Qwen) with the
//! pre-tokenizer that `tokenizer.ggml.pre` names, or the SentencePiece-style llama vocabulary
//! (`llama` model: BPE over scores with byte fallback).

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value as Json};

use super::gguf::{Gguf, Value};
use super::tokenizer::Tokenizer;

/// ggml token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
const UNKNOWN: u64 = 2;
const CONTROL: u64 = 3;
const USER_DEFINED: u64 = 4;

const GPT2_REGEX: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn strings(g: &Gguf, key: &str) -> Result<Vec<String>> {
    let a = g.get(key).and_then(Value::as_array).with_context(|| format!("{}: metadata is missing {key}", g.path.display()))?;
    a.iter().map(|v| v.as_str().map(String::from).with_context(|| format!("{}: {key} holds a non-string", g.path.display()))).collect()
}

fn byte_level(add_prefix_space: bool, use_regex: bool) -> Json {
    json!({"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": true, "use_regex": use_regex})
}

fn split(regex: &str) -> Json {
    json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false})
}

/// Builds the tokenizer of a GGUF model.
pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
    let model = g.get("tokenizer.ggml.model").and_then(Value::as_str).with_context(|| format!("{}: metadata is missing tokenizer.ggml.model", g.path.display()))?;
    let tokens = strings(g, "tokenizer.ggml.tokens")?;
    let types: Vec<u64> = match g.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
        Some(a) => a.iter().map(|v| v.as_u64().unwrap_or(1)).collect(),
        None => vec![1; tokens.len()],
    };
    let added: Vec<Json> = tokens
        .iter()
        .enumerate()
        // transformers' LlamaTokenizer registers `<unk>` as special too, so it matches whole in text.
        .filter(|(i, _)| matches!(types.get(*i), Some(&CONTROL) | Some(&USER_DEFINED)) || (model == "llama" && types.get(*i) == Some(&UNKNOWN)))
        .map(|(i, t)| json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": types[i] != USER_DEFINED}))
        .collect();
    let vocab: serde_json::Map<String, Json> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let tok = match model {
        "gpt2" => {
            let merges = strings(g, "tokenizer.ggml.merges")?;
            let pre = g.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
            let pre_tokenizer = match pre {
                "smollm" => json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level(false, true)]}),
                "default" | "gpt2" | "gpt-2" => byte_level(false, true),
                "qwen2" => json!({"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), byte_level(false, false)]}),
                "llama3" | "llama-bpe" => json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), byte_level(false, false)]}),
                other => bail!("{}: tokenizer.ggml.pre {other:?} is not supported (smollm, gpt2, qwen2, llama-bpe)", g.path.display()),
            };
            let _ = GPT2_REGEX;
            json!({
                "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
                "pre_tokenizer": pre_tokenizer, "post_processor": null, "decoder": byte_level(true, true),
                "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                          "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                          "vocab": vocab, "merges": merges}
            })
        }
        "llama" => {
            // SentencePiece BPE: merges follow the scores; spaces become ▁ and a ▁ is prepended, as
            // transformers' LlamaTokenizer does it: Metaspace with prepend_scheme "first" (only at
            // the start of the text, not after a special token, and not if it already starts with
            // a space or ▁). Sentencepiece/llama.cpp prepend unconditionally; transformers is the
            // reference (tests/spm_tokenizer.rs).
            let scores: Vec<f64> = match g.get("tokenizer.ggml.scores").and_then(Value::as_array) {
                Some(a) => a.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect(),
                None => bail!("{}: a llama (SentencePiece) vocabulary needs tokenizer.ggml.scores", g.path.display()),
            };
            let merges = spm_merges(&tokens, &scores, &types);
            let add_space = g.get("tokenizer.ggml.add_space_prefix").map(|v| *v != Value::Bool(false)).unwrap_or(true);
            let scheme = if add_space { "first" } else { "never" };
            let pre = json!({"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": scheme, "split": false});
            let unk = g.get("tokenizer.ggml.unknown_token_id").and_then(Value::as_u64).and_then(|i| tokens.get(i as usize)).cloned();
            let mut dec = vec![
                json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
                json!({"type": "ByteFallback"}),
                json!({"type": "Fuse"}),
            ];
            if add_space {
                dec.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
            }
            json!({
                "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
                "normalizer": null, "pre_tokenizer": pre, "post_processor": null,
                "decoder": {"type": "Sequence", "decoders": dec},
                "model": {"type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
                          "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                          "vocab": vocab, "merges": merges}
            })
        }
        other => bail!("{}: tokenizer.ggml.model {other:?} is not supported (gpt2, llama)", g.path.display()),
    };
    let id = |k: &str| g.get(k).and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok());
    let mut tok = tok;
    tok["post_processor"] = post_processor(g, model, &tokens, id("tokenizer.ggml.bos_token_id"), id("tokenizer.ggml.eos_token_id"))?;
    let inner: tokenizers::Tokenizer = serde_json::from_value::<tokenizers::Tokenizer>(tok).map_err(|e| anyhow!("{}: building the tokenizer: {e}", g.path.display()))?;
    Ok(Tokenizer { inner, bos_id: id("tokenizer.ggml.bos_token_id"), eos_id: id("tokenizer.ggml.eos_token_id") })
}

/// The special tokens added around encoded text, as transformers (5.23) sets them up for a GGUF
/// tokenizer: `tokenizer.ggml.add_bos_token` / `add_eos_token` become the tokenizer's
/// `add_bos_token` / `add_eos_token`, the BOS flag defaulting to true for a `llama`
/// (SentencePiece) vocabulary that does not say, as llama.cpp does, and false otherwise; its
/// `update_post_processor` then builds `[<bos>:0] $A:0 [<eos>:0]` (pair: the same again with type 1).
/// lm-eval's HF backend encodes contexts with these special tokens (see `model::tokenizer`).
fn post_processor(g: &Gguf, model: &str, tokens: &[String], bos: Option<u32>, eos: Option<u32>) -> Result<Json> {
    let flag = |k: &str, default: bool| -> Result<bool> {
        match g.get(k) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => bail!("{}: {k} is not a boolean", g.path.display()),
        }
    };
    let special = |id: Option<u32>, what: &str| -> Result<Option<(String, u32)>> {
        match id {
            None => Ok(None),
            Some(i) => tokens.get(i as usize).map(|t| Some((t.clone(), i))).with_context(|| format!("{}: tokenizer.ggml.{what}_token_id {i} is outside the vocabulary of {}", g.path.display(), tokens.len())),
        }
    };
    // transformers turns a flag off when its token is missing.
    let bos = if flag("tokenizer.ggml.add_bos_token", model == "llama")? { special(bos, "bos")? } else { None };
    let eos = if flag("tokenizer.ggml.add_eos_token", false)? { special(eos, "eos")? } else { None };
    if bos.is_none() && eos.is_none() {
        return Ok(Json::Null);
    }
    let piece = |t: &Option<(String, u32)>, type_id: u32| t.as_ref().map(|(s, _)| json!({"SpecialToken": {"id": s, "type_id": type_id}}));
    let seq = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    let single: Vec<Json> = [piece(&bos, 0), Some(seq("A", 0)), piece(&eos, 0)].into_iter().flatten().collect();
    let mut pair = single.clone();
    pair.extend([piece(&bos, 1), Some(seq("B", 1)), piece(&eos, 1)].into_iter().flatten());
    let specials: serde_json::Map<String, Json> =
        [bos, eos].into_iter().flatten().map(|(s, i)| (s.clone(), json!({"id": s, "ids": [i], "tokens": [s]}))).collect();
    Ok(json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials}))
}

/// Merges of a SentencePiece BPE vocabulary: every split of a normal token into two vocabulary
/// pieces, ordered by the merged token's score (higher first), as transformers' converter does.
fn spm_merges(tokens: &[String], scores: &[f64], types: &[u64]) -> Vec<String> {
    let index: std::collections::HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    let mut merges: Vec<(f64, usize, usize, String)> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if types.get(i).copied().unwrap_or(1) != 1 {
            continue;
        }
        for (k, _) in t.char_indices().skip(1) {
            let (a, b) = t.split_at(k);
            if let (Some(&ia), Some(&ib)) = (index.get(a), index.get(b)) {
                merges.push((scores.get(i).copied().unwrap_or(0.0), ia, ib, format!("{a} {b}")));
            }
        }
    }
    // A total order even for NaN scores from a hostile file (-0.0 counts as 0.0, as before).
    let key = |x: f64| if x == 0.0 { 0.0 } else { x };
    merges.sort_by(|x, y| key(y.0).total_cmp(&key(x.0)).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    merges.into_iter().map(|m| m.3).collect()
}
