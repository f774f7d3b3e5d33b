//! `shaders/moe_route.wgsl`: mixture-of-experts routing on the GPU (softmax over the router
//! logits, top-k with ties to the lower expert id, optional renormalisation).

use anyhow::{bail, Result};
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::Recorder;

/// Most experts per token the kernel handles.
pub const MAX_TOP_K: usize = 16;

/// The uniform `Params` of `shaders/moe_route.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub experts: u32,
    pub k: u32,
    pub logit_stride: u32,
    pub norm: u32,
}

/// For each of `tokens` rows of `logits` (`logit_stride` apart, the first `experts` columns the
/// router's): the top `k` expert ids into `ids` and their weights into `weights` (`[tokens, k]`).
#[allow(clippy::too_many_arguments)]
pub fn route(rec: &mut Recorder, logits: &wgpu::Buffer, logit_stride: usize, experts: usize, k: usize, norm: bool, tokens: usize, ids: &wgpu::Buffer, weights: &wgpu::Buffer) -> Result<()> {
    if k == 0 || k > MAX_TOP_K || k > experts || logit_stride < experts {
        bail!("moe_route: top-k {k} of {experts} experts (stride {logit_stride}) is outside what the kernel handles (1..={MAX_TOP_K})");
    }
    let kernel = compile(rec.gpu(), Shader::MoeRoute, &[])?;
    let p = Params { tokens: u("tokens", tokens)?, experts: u("experts", experts)?, k: u("k", k)?, logit_stride: u("logit_stride", logit_stride)?, norm: norm as u32 };
    rec.dispatch_linear(kernel, &p, &[logits, ids, weights], u("workgroups", tokens.div_ceil(64))?);
    Ok(())
}
