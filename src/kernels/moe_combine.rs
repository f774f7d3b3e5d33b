//! `shaders/moe_combine.wgsl`: each token's routed expert outputs summed in ascending expert id,
//! plus the gated shared expert, added onto the residual.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::Recorder;

/// The uniform `Params` of `shaders/moe_combine.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub hidden: u32,
    pub k: u32,
    pub gate_stride: u32,
    pub gate_col: u32,
}

/// The shared expert of a combine: its output rows `[tokens, hidden]` and the buffer holding
/// its gate logit at `stride * t + col`.
pub struct Shared<'a> {
    pub out: &'a wgpu::Buffer,
    pub gate: &'a wgpu::Buffer,
    pub stride: usize,
    pub col: usize,
}

/// x[t] += Σ over t's experts in ascending id of weight · eo[t * k + slot] (+ σ(gate) · shared).
#[allow(clippy::too_many_arguments)]
pub fn combine(rec: &mut Recorder, ids: &wgpu::Buffer, weights: &wgpu::Buffer, eo: &wgpu::Buffer, x: &wgpu::Buffer, tokens: usize, hidden: usize, k: usize, shared: Option<&Shared>) -> Result<()> {
    let defines: &[&str] = if shared.is_some() { &["SHARED"] } else { &[] };
    record(rec, defines, ids, weights, eo, x, tokens, hidden, k, shared, None)
}

/// x[t] += (Σ over t's experts in ascending id of weight · eo[t * k + slot]) + shared_out[t]:
/// DeepSeek's ungated shared experts (`[tokens, hidden]` rows), added after the routed sum as
/// transformers adds them.
#[allow(clippy::too_many_arguments)]
pub fn combine_ungated(rec: &mut Recorder, ids: &wgpu::Buffer, weights: &wgpu::Buffer, eo: &wgpu::Buffer, x: &wgpu::Buffer, tokens: usize, hidden: usize, k: usize, shared_out: &wgpu::Buffer) -> Result<()> {
    record(rec, &["SHARED", "UNGATED"], ids, weights, eo, x, tokens, hidden, k, None, Some(shared_out))
}

#[allow(clippy::too_many_arguments)]
fn record(
    rec: &mut Recorder,
    defines: &[&str],
    ids: &wgpu::Buffer,
    weights: &wgpu::Buffer,
    eo: &wgpu::Buffer,
    x: &wgpu::Buffer,
    tokens: usize,
    hidden: usize,
    k: usize,
    shared: Option<&Shared>,
    ungated: Option<&wgpu::Buffer>,
) -> Result<()> {
    let kernel = compile(rec.gpu(), Shader::MoeCombine, defines)?;
    let p = Params {
        tokens: u("tokens", tokens)?,
        hidden: u("hidden", hidden)?,
        k: u("k", k)?,
        gate_stride: u("gate_stride", shared.map_or(0, |s| s.stride))?,
        gate_col: u("gate_col", shared.map_or(0, |s| s.col))?,
    };
    let mut bufs = vec![ids, weights, eo, x];
    if let Some(s) = shared {
        bufs.extend([s.gate, s.out]);
    }
    bufs.extend(ungated);
    rec.dispatch_linear(kernel, &p, &bufs, u("workgroups", (tokens * hidden).div_ceil(64))?);
    Ok(())
}
