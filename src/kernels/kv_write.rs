//! `shaders/kv_write.wgsl`: copies each token's key and value heads into the KV cache.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::Recorder;
use crate::model::decoder::LayerCache;

/// The uniform `Params` of `shaders/kv_write.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub kv_dim: u32,
    pub row_stride: u32,
    pub k_offset: u32,
    pub v_offset: u32,
    pub lo: u32,
    pub hi: u32,
}

/// Stores `kv_dim` keys from column `k_offset` and values from `v_offset` of each `row_stride`
/// row of `qkv` at cache row `base + pos` (from `meta`): one dispatch per chunk of the cache.
#[allow(clippy::too_many_arguments)]
pub fn kv_write(rec: &mut Recorder, qkv: &wgpu::Buffer, row_stride: usize, k_offset: usize, v_offset: usize, kv_dim: usize, tokens: usize, meta: &wgpu::Buffer, cache: &LayerCache) -> Result<()> {
    if tokens == 0 {
        return Ok(());
    }
    let k = compile(rec.gpu(), Shader::KvWrite, &[])?;
    for (c, (kc, vc)) in cache.k.iter().zip(cache.v).enumerate() {
        let lo = c * cache.chunk_rows;
        let p = Params {
            tokens: u("tokens", tokens)?,
            kv_dim: u("kv_dim", kv_dim)?,
            row_stride: u("row_stride", row_stride)?,
            k_offset: u("k_offset", k_offset)?,
            v_offset: u("v_offset", v_offset)?,
            lo: u("lo", lo)?,
            hi: u("hi", lo.saturating_add(cache.chunk_rows).min(u32::MAX as usize))?,
        };
        rec.dispatch_linear(k.clone(), &p, &[qkv, meta, kc, vc], u("workgroups", (tokens * kv_dim).div_ceil(64))?);
    }
    Ok(())
}
