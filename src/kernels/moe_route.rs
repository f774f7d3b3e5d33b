//! `shaders/moe_route.wgsl`: mixture-of-experts routing on the GPU: softmax (Qwen, DeepSeek-V2)
//! or sigmoid (DeepSeek-V3) scores, an optional selection-only correction bias, group-limited
//! choice, top-k with ties to the lower expert id, optional renormalisation and scaling.

use anyhow::{bail, Result};
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::Recorder;
use crate::model::config::Router;

/// Most experts per token the kernel handles.
pub const MAX_TOP_K: usize = 16;
/// Most expert groups the kernel handles.
pub const MAX_GROUPS: usize = 64;

/// The uniform `Params` of `shaders/moe_route.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub experts: u32,
    pub k: u32,
    pub logit_stride: u32,
    pub norm: u32,
    pub groups: u32,
    pub topk_groups: u32,
    pub group_top2: u32,
    pub scale: f32,
}

/// For each of `tokens` rows of `logits` (`logit_stride` apart, the first `experts` columns the
/// router's): softmax, the top `k` expert ids into `ids` and their weights into `weights`
/// (`[tokens, k]`) — Qwen's router.
#[allow(clippy::too_many_arguments)]
pub fn route(rec: &mut Recorder, logits: &wgpu::Buffer, logit_stride: usize, experts: usize, k: usize, norm: bool, tokens: usize, ids: &wgpu::Buffer, weights: &wgpu::Buffer) -> Result<()> {
    route_with(rec, &Router::softmax(), None, logits, logit_stride, experts, k, norm, tokens, ids, weights)
}

/// [`route`] with the scoring, grouping and scaling of `router`; `bias` holds the per-expert
/// correction bias when `router.correction_bias` is set.
#[allow(clippy::too_many_arguments)]
pub fn route_with(
    rec: &mut Recorder,
    router: &Router,
    bias: Option<&wgpu::Buffer>,
    logits: &wgpu::Buffer,
    logit_stride: usize,
    experts: usize,
    k: usize,
    norm: bool,
    tokens: usize,
    ids: &wgpu::Buffer,
    weights: &wgpu::Buffer,
) -> Result<()> {
    if k == 0 || k > MAX_TOP_K || k > experts || logit_stride < experts {
        bail!("moe_route: top-k {k} of {experts} experts (stride {logit_stride}) is outside what the kernel handles (1..={MAX_TOP_K})");
    }
    let (g, kg) = (router.groups, router.topk_groups);
    if g == 0 || g > MAX_GROUPS || !experts.is_multiple_of(g) || kg == 0 || kg > g || k > kg * (experts / g) || (router.group_top2 && experts / g < 2) {
        bail!("moe_route: {g} groups (top {kg}) of {experts} experts with top-k {k} is outside what the kernel handles (groups divide the experts, at most {MAX_GROUPS})");
    }
    if router.correction_bias != bias.is_some() {
        bail!("moe_route: the correction bias buffer is required exactly when the router uses one");
    }
    let mut defines = Vec::new();
    if router.sigmoid {
        defines.push("SIGMOID");
    }
    if bias.is_some() {
        defines.push("BIAS");
    }
    let kernel = compile(rec.gpu(), Shader::MoeRoute, &defines)?;
    let p = Params {
        tokens: u("tokens", tokens)?,
        experts: u("experts", experts)?,
        k: u("k", k)?,
        logit_stride: u("logit_stride", logit_stride)?,
        norm: norm as u32,
        groups: u("groups", g)?,
        topk_groups: u("topk_groups", kg)?,
        group_top2: router.group_top2 as u32,
        scale: router.scale as f32,
    };
    let mut bufs = vec![logits, ids, weights];
    bufs.extend(bias);
    rec.dispatch_linear(kernel, &p, &bufs, u("workgroups", tokens.div_ceil(64))?);
    Ok(())
}
