//! `shaders/kv_write.wgsl`: copies each token's key and value heads into the KV cache.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::Recorder;

/// The uniform `Params` of `shaders/kv_write.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub kv_dim: u32,
    pub row_stride: u32,
    pub k_offset: u32,
    pub v_offset: u32,
}

/// Stores `kv_dim` keys from column `k_offset` and values from `v_offset` of each `row_stride`
/// row of `qkv` at cache row `base + pos` (from `meta`).
#[allow(clippy::too_many_arguments)]
pub fn kv_write(rec: &mut Recorder, qkv: &wgpu::Buffer, row_stride: usize, k_offset: usize, v_offset: usize, kv_dim: usize, tokens: usize, meta: &wgpu::Buffer, k_cache: &wgpu::Buffer, v_cache: &wgpu::Buffer) -> Result<()> {
    let k = compile(rec.gpu(), Shader::KvWrite, &[])?;
    let p = Params {
        tokens: u("tokens", tokens)?,
        kv_dim: u("kv_dim", kv_dim)?,
        row_stride: u("row_stride", row_stride)?,
        k_offset: u("k_offset", k_offset)?,
        v_offset: u("v_offset", v_offset)?,
    };
    rec.dispatch_linear(k, &p, &[qkv, meta, k_cache, v_cache], u("workgroups", (tokens * kv_dim).div_ceil(64))?);
    Ok(())
}
