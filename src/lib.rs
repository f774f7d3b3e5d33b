//! pingce: reproducible evaluation of open-weight LLMs on WGSL kernels through wgpu.
//!
//! Data flows top to bottom through the modules:
//! [`device`] (adapter, queue, pipelines, buffers) → [`tensor`] and [`kernels`] (WGSL compute) →
//! [`model`] (config, weights, tokenizer, decoder architectures) → [`engine`] (batching, KV cache,
//! scoring, generation) → the `pingce` command line.

pub mod device;
pub mod engine;
pub mod eval;
pub mod kernels;
pub mod model;
pub mod tensor;

pub use anyhow::{Error, Result};

/// Where `tools/fetch-default-model` puts the default model, relative to the repository root.
pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The model to use when none is named: `$PINGCE_MODEL`, else [`DEFAULT_MODEL`] under the current
/// directory.
pub fn default_model() -> std::path::PathBuf {
    std::env::var_os("PINGCE_MODEL").map(Into::into).unwrap_or_else(|| DEFAULT_MODEL.into())
}

/// Version string written into every result manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
