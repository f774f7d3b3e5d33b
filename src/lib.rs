//! pingce: reproducible evaluation of open-weight LLMs on WGSL kernels through wgpu.
//!
//! Data flows top to bottom through the modules:
//! [`device`] (adapter, queue, pipelines, buffers) → [`tensor`] and [`kernels`] (WGSL compute) →
//! [`model`] (config, weights, tokenizer, decoder architectures) → [`engine`] (batching, KV cache,
//! scoring, generation) → the `pingce` command line.

pub mod device;
pub mod engine;
pub mod kernels;
pub mod model;
pub mod tensor;

pub use anyhow::{Error, Result};

/// Version string written into every result manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
