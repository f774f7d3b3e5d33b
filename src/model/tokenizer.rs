//! `tokenizer.json` through the `tokenizers` crate, plus the special tokens lm-eval relies on.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

/// Anything that turns text into token ids without adding special tokens (lm-eval's tok_encode
/// with add_special_tokens=False for causal models).
pub trait Encode {
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
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

impl Encode for Tokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.inner.encode(text, false).map_err(|e| anyhow!("tokenizing {:?}: {e}", text.chars().take(40).collect::<String>()))?.get_ids().to_vec())
    }
}
