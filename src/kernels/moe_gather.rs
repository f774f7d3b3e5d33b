//! `shaders/moe_gather.wgsl`: each expert's token list, built on the GPU from the routing ids.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::Recorder;

/// The uniform `Params` of `shaders/moe_gather.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub k: u32,
    pub experts: u32,
    pub cap: u32,
}

/// From `ids` (`[tokens, k]`): `counts[e]` and, at `lists[e * cap ..]`, the entries `t * k + slot`
/// routed to expert e in ascending token order. `cap` is at least `tokens`.
#[allow(clippy::too_many_arguments)]
pub fn gather(rec: &mut Recorder, ids: &wgpu::Buffer, tokens: usize, k: usize, experts: usize, cap: usize, counts: &wgpu::Buffer, lists: &wgpu::Buffer) -> Result<()> {
    anyhow::ensure!(cap >= tokens, "moe_gather: list capacity {cap} below {tokens} tokens");
    let kernel = compile(rec.gpu(), Shader::MoeGather, &[])?;
    let p = Params { tokens: u("tokens", tokens)?, k: u("k", k)?, experts: u("experts", experts)?, cap: u("cap", cap)? };
    rec.dispatch_linear(kernel, &p, &[ids, counts, lists], u("workgroups", experts)?);
    Ok(())
}
