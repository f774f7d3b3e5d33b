//! `tokenizer.json` through the `tokenizers` crate, plus the special tokens lm-eval relies on.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

/// Turns text into token ids as lm-evaluation-harness 0.4.13's HF backend does
/// (`HFLM.tok_encode` with `add_bos_token` unset): [`encode`](Encode::encode) adds the
/// tokenizer's own special tokens (its post-processor: a BOS for Llama-style tokenizers, nothing
/// for byte-level BPE ones such as Qwen's or SmolLM's) unless the text already starts with the
/// prefix token's text; [`encode_plain`](Encode::encode_plain) never adds any
/// (`add_special_tokens=False`).
pub trait Encode {
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        self.encode(text)
    }
}

pub struct Tokenizer {
    pub inner: tokenizers::Tokenizer,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
}

fn special(cfg: &serde_json::Value, key: &str) -> Option<String> {
    match cfg.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(String::from),
        _ => None,
    }
}

impl Tokenizer {
    /// Loads `dir/tokenizer.json`; bos/eos come from `tokenizer_config.json`, else from the
    /// model config's ids.
    pub fn load(dir: &Path, bos_fallback: Option<u32>, eos_fallback: Option<u32>) -> Result<Tokenizer> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            bail!("{}: missing (pingce needs the Hugging Face fast tokenizer file)", path.display());
        }
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = if cfg_path.exists() {
            let t = std::fs::read_to_string(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?;
            serde_json::from_str(&t).with_context(|| format!("{}: not valid JSON", cfg_path.display()))?
        } else {
            serde_json::Value::Null
        };
        let id = |key: &str| special(&cfg, key).and_then(|s| inner.token_to_id(&s));
        let bos_id = id("bos_token").or(bos_fallback);
        let eos_id = id("eos_token").or(eos_fallback);
        Ok(Tokenizer { inner, bos_id, eos_id })
    }

    /// Largest id the tokenizer can produce, plus one.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// lm-eval's `prefix_token_id`: BOS if the tokenizer has one, else EOS.
    pub fn prefix_token(&self) -> Result<u32> {
        self.bos_id.or(self.eos_id).context("tokenizer has neither a BOS nor an EOS token to prefix an empty context")
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| anyhow!("decoding tokens: {e}"))
    }
}

impl Tokenizer {
    fn encode_with(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        Ok(self.inner.encode(text, special).map_err(|e| anyhow!("tokenizing {:?}: {e}", text.chars().take(40).collect::<String>()))?.get_ids().to_vec())
    }

    /// lm-eval's `has_bos_prefix(text, tokenizer.decode(prefix_token_id))`.
    fn starts_with_prefix_token(&self, text: &str) -> bool {
        let Some(id) = self.bos_id.or(self.eos_id) else { return false };
        match self.inner.decode(&[id], false) {
            Ok(p) if !p.is_empty() => text.starts_with(&p),
            _ => false,
        }
    }
}

impl Encode for Tokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, !self.starts_with_prefix_token(text))
    }

    fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, false)
    }
}
