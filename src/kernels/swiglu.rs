//! `shaders/swiglu.wgsl`: silu(gate) * up from the fused gate_up projection.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::Recorder;

/// The uniform `Params` of `shaders/swiglu.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub inter: u32,
}

/// out[t, i] = silu(gate_up[t, i]) * gate_up[t, inter + i] for `tokens` rows.
pub fn swiglu(rec: &mut Recorder, gate_up: &wgpu::Buffer, out: &wgpu::Buffer, tokens: usize, inter: usize) -> Result<()> {
    let k = compile(rec.gpu(), Shader::Swiglu, &[])?;
    let p = Params { tokens: u("tokens", tokens)?, inter: u("inter", inter)? };
    rec.dispatch_linear(k, &p, &[gate_up, out], u("workgroups", (tokens * inter).div_ceil(64))?);
    Ok(())
}
