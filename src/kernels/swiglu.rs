//! `shaders/swiglu.wgsl`: silu(gate) * up from the fused gate_up projection.

use anyhow::Result;

use super::{compile, u};
use crate::device::Recorder;

pub fn swiglu(rec: &mut Recorder, gate_up: &wgpu::Buffer, out: &wgpu::Buffer, tokens: usize, inter: usize) -> Result<()> {
    let k = compile(rec.gpu(), "swiglu", &[])?;
    rec.dispatch_linear(k, &[u(tokens), u(inter)], &[gate_up, out], u((tokens * inter).div_ceil(64)));
    Ok(())
}
