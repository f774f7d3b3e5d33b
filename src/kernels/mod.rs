//! WGSL compute kernels. Each file here wraps the shader of the same name in `shaders/`, records
//! its dispatches into a [`Recorder`](crate::device::Recorder), and is tested against a plain CPU
//! reference in `tests/kernels.rs`.

pub mod attention;
pub mod embedding;
pub mod kv_write;
pub mod logprobs;
pub mod matmul;
pub mod rmsnorm;
pub mod rope;
pub mod swiglu;

use std::sync::Arc;

use anyhow::{bail, Result};

use crate::device::{shader, Gpu, Kernel};

const WEIGHTS: &str = include_str!("../../shaders/weights.wgsl");

fn source(file: &str) -> Result<&'static str> {
    Ok(match file {
        "attention" => include_str!("../../shaders/attention.wgsl"),
        "embedding" => include_str!("../../shaders/embedding.wgsl"),
        "kv_write" => include_str!("../../shaders/kv_write.wgsl"),
        "kv_copy" => include_str!("../../shaders/kv_copy.wgsl"),
        "logprobs" => include_str!("../../shaders/logprobs.wgsl"),
        "log_softmax" => include_str!("../../shaders/log_softmax.wgsl"),
        "matmul" => include_str!("../../shaders/matmul.wgsl"),
        "matvec" => include_str!("../../shaders/matvec.wgsl"),
        "rmsnorm" => include_str!("../../shaders/rmsnorm.wgsl"),
        "rope" => include_str!("../../shaders/rope.wgsl"),
        "swiglu" => include_str!("../../shaders/swiglu.wgsl"),
        other => bail!("no shader named {other}"),
    })
}

/// The pipeline for `shaders/<file>.wgsl` with `defines`, compiled on first use and cached.
/// A `W_*` define prepends the weight-format snippet.
pub(crate) fn compile(gpu: &Gpu, file: &str, defines: &[&str]) -> Result<Arc<Kernel>> {
    compile_with(gpu, file, defines, &[])
}

/// [`compile`] with `const NAME: u32 = value;` declarations prepended (sizes a kernel is
/// specialised for, so its loops have constant bounds).
pub(crate) fn compile_with(gpu: &Gpu, file: &str, defines: &[&str], consts: &[(&str, u32)]) -> Result<Arc<Kernel>> {
    let c: Vec<String> = consts.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let key = format!("{file}[{}][{}]", defines.join(","), c.join(","));
    gpu.kernel(&key, || {
        let mut src = String::new();
        for (n, v) in consts {
            src.push_str(&format!("const {n}: u32 = {v}u;\n"));
        }
        if defines.iter().any(|d| d.starts_with("W_")) {
            src.push_str(WEIGHTS);
        }
        src.push_str(source(file)?);
        shader::preprocess(&src, defines)
    })
}

/// Converts a size or offset to the u32 that kernel parameters hold.
pub(crate) fn u(n: usize) -> u32 {
    u32::try_from(n).expect("kernel parameter above u32::MAX")
}
