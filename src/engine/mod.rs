//! The engine: a loaded model and tokenizer on a device, with the three request kinds
//! lm-evaluation-harness uses (loglikelihood, loglikelihood_rolling, generate_until).

pub mod batch;
pub mod choices;
pub mod generate;
pub mod kv_cache;
pub mod prefix;
pub mod request_file;
pub mod requests;
pub mod scoring;
pub mod split;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::device::Gpu;
use crate::model::gguf::GgufModel;
use crate::model::gguf_tokenizer;
use crate::model::weights::{Safetensors, TensorSource};
use crate::model::{Config, Decoder, Tokenizer};
pub use generate::{GenRequest, Generation, Pass, StopReason, UntilRequest};
pub use scoring::{Scored, ScoreRequest};

/// A model's config, tokenizer, tensors (nothing read yet) and files.
pub type OpenedModel = (Config, Tokenizer, Box<dyn TensorSource>, Vec<PathBuf>);

/// The most top-k entries a scored position can carry.
pub const MAX_TOPK: usize = crate::kernels::logprobs::MAX_TOPK;

/// Knobs that change throughput, never results.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Sequences per pass.
    pub batch_size: usize,
    /// Tokens per prefill pass (a longer single sequence still runs alone).
    pub max_batch_tokens: usize,
    /// Start contexts and prompts that begin like a call's first one from a copy of its cached
    /// rows ([`prefix`]).
    pub share_prefixes: bool,
    /// Generation submits each decode step before reading the one before it (on a model held by
    /// one device; see [`Engine::generate_observed`]).
    pub pipeline: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { batch_size: 16, max_batch_tokens: 4096, share_prefixes: true, pipeline: true }
    }
}

pub struct Engine {
    pub gpu: Gpu,
    pub model: Decoder,
    pub tokenizer: Tokenizer,
    pub opts: EngineOptions,
    /// Files the model came from (weights, config, tokenizer), for manifests.
    pub files: Vec<PathBuf>,
    ws: batch::Workspace,
    /// The later devices of a model split by layers (`--devices`); `gpu` and `model` are then
    /// the first device and its slice.
    pub rest: Vec<batch::Stage>,
}

impl Engine {
    /// Loads a model: a GGUF file, or a Hugging Face folder (config.json, *.safetensors,
    /// tokenizer.json).
    pub fn load(gpu: Gpu, dir: &Path, opts: EngineOptions) -> Result<Engine> {
        Engine::load_on(vec![gpu], dir, opts, &split::Placement::default())
    }

    /// The model's config, tokenizer, tensors and files, without reading any weight.
    pub fn open_model(dir: &Path) -> Result<OpenedModel> {
        if dir.is_file() && dir.extension().is_some_and(|e| e == "gguf") {
            let g = GgufModel::open(dir)?;
            let tokenizer = gguf_tokenizer::from_gguf(&g.gguf)?;
            let files = g.files();
            return Ok((g.cfg.clone(), tokenizer, Box::new(g), files));
        }
        if !dir.is_dir() {
            bail!("model folder {} does not exist", dir.display());
        }
        let cfg = Config::load(&dir.join("config.json"))?;
        let tokenizer = Tokenizer::load(dir, cfg.bos_token_id, cfg.eos_token_ids.first().copied())?;
        if tokenizer.vocab_size() > cfg.vocab_size {
            bail!(
                "{}: the tokenizer has {} tokens but the model's vocab_size is {} (tokenizer and model do not match)",
                dir.join("tokenizer.json").display(),
                tokenizer.vocab_size(),
                cfg.vocab_size
            );
        }
        let weights = Safetensors::open_dir(dir)?;
        let mut files = weights.files();
        files.push(dir.join("config.json"));
        files.push(dir.join("tokenizer.json"));
        Ok((cfg, tokenizer, Box::new(weights), files))
    }

    pub fn new(gpu: Gpu, model: Decoder, tokenizer: Tokenizer, opts: EngineOptions, files: Vec<PathBuf>) -> Engine {
        Engine { gpu, model, tokenizer, opts, files, ws: batch::Workspace::default(), rest: Vec::new() }
    }

    /// Splits the KV cache in chunks of at most `rows` positions (normally only when it outgrows
    /// the adapter's largest binding): results are bit-identical either way, which tests check.
    pub fn set_kv_chunk_rows(&mut self, rows: Option<usize>) {
        self.ws.kv_chunk_rows = rows;
        self.ws.cache = None;
        for s in &mut self.rest {
            s.ws.kv_chunk_rows = rows;
            s.ws.cache = None;
        }
    }

    /// The model's context length.
    pub fn max_length(&self) -> usize {
        self.model.cfg.max_position_embeddings
    }
}
