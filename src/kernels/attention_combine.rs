//! `shaders/attention_combine.wgsl`: folds the key spans of a split decode pass
//! ([`Attention::spans`](super::attention::Attention::spans)) in ascending order and writes the
//! attention output: the numbers `shaders/attention.wgsl` gives walking the spans itself.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{compile_with, u, Shader};
use crate::device::Recorder;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Params {
    tokens: u32,
    heads_q: u32,
    spans: u32,
    out_stride: u32,
}

/// out[t, h*d..] from `part`, the states of `spans` spans per (token, query head) that
/// attention.wgsl wrote (acc as head_dim / 4 vec4, then m and l), `consts` the attention
/// kernel's (`D4`, `KS`).
#[allow(clippy::too_many_arguments)]
pub fn combine(rec: &mut Recorder, part: &wgpu::Buffer, out: &wgpu::Buffer, out_stride: u32, tokens: usize, heads_q: usize, head_dim: usize, spans: usize, consts: &[(&str, u32)]) -> Result<()> {
    let k = compile_with(rec.gpu(), Shader::AttentionCombine, &[], consts)?;
    let p = Params { tokens: u("tokens", tokens)?, heads_q: u("heads_q", heads_q)?, spans: u("spans", spans)?, out_stride };
    rec.dispatch_linear(k, &p, &[part, out], u("workgroups", (tokens * heads_q * head_dim / 4).div_ceil(64))?);
    Ok(())
}
