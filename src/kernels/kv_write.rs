//! `shaders/kv_write.wgsl`: copies each token's key and value heads into the KV cache; and
//! `shaders/kv_copy.wgsl`: duplicates cached rows.

use anyhow::Result;

use super::{compile, u};
use crate::device::Recorder;

/// Stores `kv_dim` keys from column `k_offset` and values from `v_offset` of each `row_stride`
/// row of `qkv` at cache row `base + pos` (from `meta`).
#[allow(clippy::too_many_arguments)]
pub fn kv_write(rec: &mut Recorder, qkv: &wgpu::Buffer, row_stride: usize, k_offset: usize, v_offset: usize, kv_dim: usize, tokens: usize, meta: &wgpu::Buffer, k_cache: &wgpu::Buffer, v_cache: &wgpu::Buffer) -> Result<()> {
    let k = compile(rec.gpu(), "kv_write", &[])?;
    let p = [u(tokens), u(kv_dim), u(row_stride), u(k_offset), u(v_offset)];
    rec.dispatch_linear(k, &p, &[qkv, meta, k_cache, v_cache], u((tokens * kv_dim).div_ceil(64)));
    Ok(())
}

/// `shaders/kv_copy.wgsl`: duplicates `rows` cached positions from row `src` to row `dst`.
#[allow(clippy::too_many_arguments)]
pub fn kv_copy(rec: &mut Recorder, k_cache: &wgpu::Buffer, v_cache: &wgpu::Buffer, kv_dim: usize, rows: usize, src: usize, dst: usize) -> Result<()> {
    if rows == 0 {
        return Ok(());
    }
    let k = compile(rec.gpu(), "kv_copy", &[])?;
    rec.dispatch_linear(k, &[u(rows), u(kv_dim), u(src), u(dst)], &[k_cache, v_cache], u((rows * kv_dim).div_ceil(64)));
    Ok(())
}
