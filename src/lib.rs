//! pingce: reproducible evaluation of open-weight LLMs on WGSL kernels through wgpu.
//!
//! Data flows top to bottom through the modules:
//! [`device`] (adapter, queue, pipelines, buffers) → [`tensor`] and [`kernels`] (WGSL compute) →
//! [`model`] (config, weights, tokenizer, decoder architectures) → [`engine`] (batching, KV cache,
//! scoring, generation) → the `pingce` command line.

pub mod conformance;
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

/// The git commit pingce was built from ("unknown" outside a checkout).
pub const GIT_COMMIT: &str = env!("PINGCE_GIT_COMMIT");

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &std::path::Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("hashing {}: {e}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Hex sha256 of bytes.
pub fn sha256_bytes(b: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(b))
}
