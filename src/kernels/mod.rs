//! WGSL compute kernels. Each file here wraps the shader of the same name in `shaders/` (listed
//! in [`Shader`]): a `Params` struct laid out as the shader's uniform `Params`, and functions that
//! record its dispatches into a [`Recorder`](crate::device::Recorder). [`linear`] picks between
//! the two matrix kernels. Each is tested against a plain CPU reference in `tests/kernels.rs`.

pub mod attention;
pub mod attention_combine;
pub mod embedding;
pub mod expert_matmul;
pub mod expert_matvec;
pub mod kv_copy;
pub mod kv_write;
pub mod linear;
pub mod log_softmax;
pub mod logprobs;
pub mod matmul;
pub mod matvec;
pub mod mla;
pub mod moe_combine;
pub mod moe_gather;
pub mod moe_route;
pub mod rmsnorm;
pub mod rope;
pub mod swiglu;

use std::sync::Arc;

use anyhow::{anyhow, Result};

use crate::device::shader::preprocess;
use crate::device::{Gpu, Kernel};

/// `shaders/lib/weights.wgsl`: weight decoding (`w_at`, `w_pair`, `w_quad`) for each `W_*` dtype.
const WEIGHTS: &str = include_str!("../../shaders/lib/weights.wgsl");
/// `shaders/lib/row_lse.wgsl`: the max, argmax and log-sum-exp of a logits row.
const ROW_LSE: &str = include_str!("../../shaders/lib/row_lse.wgsl");
/// `shaders/lib/kv_cache.wgsl`: the attention kernels' Params, bindings and chunked cache reads.
const KV_CACHE: &str = include_str!("../../shaders/lib/kv_cache.wgsl");
/// `shaders/lib/key_spans.wgsl`: folding the online-softmax states of spans of keys.
const KEY_SPANS: &str = include_str!("../../shaders/lib/key_spans.wgsl");

/// The kernels in `shaders/`, one per `.wgsl` file there (the snippets in `shaders/lib/` are not
/// kernels: they are prepended to the kernels that use them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    Attention,
    AttentionCombine,
    AttentionLanes,
    Embedding,
    ExpertMatmul,
    ExpertMatvec,
    KvCopy,
    KvWrite,
    LogSoftmax,
    Logprobs,
    Matmul,
    Matvec,
    MlaOut,
    MlaQkv,
    MoeCombine,
    MoeGather,
    MoeRoute,
    RmsNorm,
    Rope,
    Swiglu,
}

impl Shader {
    /// The file stem: `shaders/<name>.wgsl`.
    pub fn name(self) -> &'static str {
        match self {
            Shader::Attention => "attention",
            Shader::AttentionCombine => "attention_combine",
            Shader::AttentionLanes => "attention_lanes",
            Shader::Embedding => "embedding",
            Shader::ExpertMatmul => "expert_matmul",
            Shader::ExpertMatvec => "expert_matvec",
            Shader::KvCopy => "kv_copy",
            Shader::KvWrite => "kv_write",
            Shader::LogSoftmax => "log_softmax",
            Shader::Logprobs => "logprobs",
            Shader::Matmul => "matmul",
            Shader::Matvec => "matvec",
            Shader::MlaOut => "mla_out",
            Shader::MlaQkv => "mla_qkv",
            Shader::MoeCombine => "moe_combine",
            Shader::MoeGather => "moe_gather",
            Shader::MoeRoute => "moe_route",
            Shader::RmsNorm => "rmsnorm",
            Shader::Rope => "rope",
            Shader::Swiglu => "swiglu",
        }
    }

    /// The WGSL source of the kernel itself.
    fn source(self) -> &'static str {
        match self {
            Shader::Attention => include_str!("../../shaders/attention.wgsl"),
            Shader::AttentionCombine => include_str!("../../shaders/attention_combine.wgsl"),
            Shader::AttentionLanes => include_str!("../../shaders/attention_lanes.wgsl"),
            Shader::Embedding => include_str!("../../shaders/embedding.wgsl"),
            Shader::ExpertMatmul => include_str!("../../shaders/expert_matmul.wgsl"),
            Shader::ExpertMatvec => include_str!("../../shaders/expert_matvec.wgsl"),
            Shader::KvCopy => include_str!("../../shaders/kv_copy.wgsl"),
            Shader::KvWrite => include_str!("../../shaders/kv_write.wgsl"),
            Shader::LogSoftmax => include_str!("../../shaders/log_softmax.wgsl"),
            Shader::Logprobs => include_str!("../../shaders/logprobs.wgsl"),
            Shader::Matmul => include_str!("../../shaders/matmul.wgsl"),
            Shader::Matvec => include_str!("../../shaders/matvec.wgsl"),
            Shader::MlaOut => include_str!("../../shaders/mla_out.wgsl"),
            Shader::MlaQkv => include_str!("../../shaders/mla_qkv.wgsl"),
            Shader::MoeCombine => include_str!("../../shaders/moe_combine.wgsl"),
            Shader::MoeGather => include_str!("../../shaders/moe_gather.wgsl"),
            Shader::MoeRoute => include_str!("../../shaders/moe_route.wgsl"),
            Shader::RmsNorm => include_str!("../../shaders/rmsnorm.wgsl"),
            Shader::Rope => include_str!("../../shaders/rope.wgsl"),
            Shader::Swiglu => include_str!("../../shaders/swiglu.wgsl"),
        }
    }

    /// The snippets prepended to the source.
    fn snippets(self) -> &'static [&'static str] {
        match self {
            Shader::Embedding | Shader::ExpertMatmul | Shader::ExpertMatvec | Shader::Matmul | Shader::Matvec => &[WEIGHTS],
            Shader::Logprobs | Shader::LogSoftmax => &[ROW_LSE],
            Shader::Attention | Shader::AttentionLanes => &[KV_CACHE, KEY_SPANS],
            Shader::AttentionCombine => &[KEY_SPANS],
            _ => &[],
        }
    }

    /// The file stems (in `shaders/lib/`) of [`snippets`](Self::snippets), in the same order.
    fn snippet_names(self) -> &'static [&'static str] {
        match self {
            Shader::Embedding | Shader::ExpertMatmul | Shader::ExpertMatvec | Shader::Matmul | Shader::Matvec => &["weights"],
            Shader::Logprobs | Shader::LogSoftmax => &["row_lse"],
            Shader::Attention | Shader::AttentionLanes => &["kv_cache", "key_spans"],
            Shader::AttentionCombine => &["key_spans"],
            _ => &[],
        }
    }
}

/// The pipeline for `shader` with `defines`, compiled on first use and cached. Kernels that read
/// weights take the `W_*` define of the weights' dtype.
pub(crate) fn compile(gpu: &Gpu, shader: Shader, defines: &[&str]) -> Result<Arc<Kernel>> {
    compile_with(gpu, shader, defines, &[])
}

/// [`compile`] with `const NAME: u32 = value;` declarations prepended (sizes a kernel is
/// specialised for, so its loops have constant bounds).
pub(crate) fn compile_with(gpu: &Gpu, shader: Shader, defines: &[&str], consts: &[(&str, u32)]) -> Result<Arc<Kernel>> {
    let c: Vec<String> = consts.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let key = format!("{}[{}][{}]", shader.name(), defines.join(","), c.join(","));
    gpu.kernel(&key, || {
        let mut src = String::new();
        for (n, v) in consts {
            src.push_str(&format!("const {n}: u32 = {v}u;\n"));
        }
        // Kernel development only: in a debug build, PINGCE_SHADER_DIR names a folder laid out as
        // shaders/ whose sources are read at run time, so a kernel can be changed and measured
        // without rebuilding. Release builds (what results are published from) always run the
        // kernels compiled in, whatever the environment says.
        let dev_dir = if cfg!(debug_assertions) { std::env::var_os("PINGCE_SHADER_DIR") } else { None };
        match dev_dir {
            Some(dir) => {
                let dir = std::path::PathBuf::from(dir);
                let read = |f: std::path::PathBuf| std::fs::read_to_string(&f).map_err(|e| anyhow!("PINGCE_SHADER_DIR: reading {}: {e}", f.display()));
                for s in shader.snippet_names() {
                    src.push_str(&read(dir.join("lib").join(format!("{s}.wgsl")))?);
                }
                src.push_str(&read(dir.join(format!("{}.wgsl", shader.name())))?);
            }
            None => {
                for s in shader.snippets() {
                    src.push_str(s);
                }
                src.push_str(shader.source());
            }
        }
        preprocess(&src, defines)
    })
}

/// Converts a size or offset to the u32 that kernel parameters (and workgroup counts) hold; `name`
/// says which in the error.
pub(crate) fn u(name: &str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| anyhow!("kernel parameter {name} = {n} is above u32::MAX"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_parameters_are_errors_naming_them() {
        assert_eq!(u("rows", 7).unwrap(), 7);
        let e = u("x_stride", u32::MAX as usize + 1).unwrap_err().to_string();
        assert!(e.contains("x_stride"), "{e}");
    }
}
