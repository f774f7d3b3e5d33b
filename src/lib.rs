//! pingce: reproducible evaluation of open-weight LLMs on WGSL kernels through wgpu.
//!
//! Data flows top to bottom through the modules:
//! [`device`] (adapter, queue, pipelines, buffers) → [`tensor`] and [`kernels`] (WGSL compute) →
//! [`model`] (config, weights, tokenizer, decoder architectures) → [`engine`] (batching, KV cache,
//! scoring, generation) → [`eval`] (tasks, prompts, metrics, results) and [`conformance`] (logit
//! dumps and their comparison) and [`safety`] (filing safety assessments) → the `pingce` command line (`src/cli`). [`pycompat`] (Python's
//! string, literal and random semantics) and [`digest`] (sha256) sit at the bottom, used by all.

pub mod conformance;
pub mod device;
pub mod digest;
pub mod engine;
pub mod eval;
pub mod kernels;
pub mod model;
pub mod progress;
pub mod pycompat;
pub mod report;
pub mod safety;
pub mod stats;
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

/// The git commit pingce was built from ("unknown" outside a checkout).
pub const GIT_COMMIT: &str = env!("PINGCE_GIT_COMMIT");
