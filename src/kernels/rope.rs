//! `shaders/rope.wgsl`: rotary position embedding from a cos/sin table built on the host.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::{Gpu, Recorder};
use crate::model::decoder::LayerCache;

/// The uniform `Params` of `shaders/rope.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub heads: u32,
    pub head_dim: u32,
    pub row_stride: u32,
    pub offset: u32,
    pub sin_offset: u32,
    pub k_from: u32,
    pub v_offset: u32,
    pub kv_dim: u32,
    /// Rows of the (one-chunk) cache: rows past it are not stored.
    pub cache_rows: u32,
    pub pad: [u32; 2],
}

/// cos and sin of `position * inv_freq[i]` for every position below `max_pos`, on the GPU.
pub struct RopeTable {
    pub buf: wgpu::Buffer,
    pub max_pos: usize,
    pub half: usize,
}

impl RopeTable {
    /// `inv_freq` has head_dim / 2 entries (rope scaling already applied). The angle is rounded to
    /// f32 before cos/sin, as transformers computes it in float32.
    pub fn new(gpu: &Gpu, inv_freq: &[f32], max_pos: usize) -> Result<RopeTable> {
        Self::scaled(gpu, inv_freq, max_pos, 1.0)
    }

    /// [`new`](Self::new) with cos and sin multiplied by `scale` in float32 (YaRN's attention
    /// factor, as transformers scales its cos/sin).
    pub fn scaled(gpu: &Gpu, inv_freq: &[f32], max_pos: usize, scale: f32) -> Result<RopeTable> {
        let half = inv_freq.len();
        let mut t = vec![0f32; 2 * max_pos * half];
        for pos in 0..max_pos {
            for (i, f) in inv_freq.iter().enumerate() {
                let angle = (pos as f32 * f) as f64;
                t[pos * half + i] = angle.cos() as f32 * scale;
                t[max_pos * half + pos * half + i] = angle.sin() as f32 * scale;
            }
        }
        Ok(RopeTable { buf: gpu.upload("rope table", bytemuck::cast_slice(&t))?, max_pos, half })
    }
}

/// Rotates `heads` consecutive heads (starting at element `offset` of each `row_stride` row) of
/// `tokens` rows in place, at the positions in `meta` (`[pos, cache base]` per token).
#[allow(clippy::too_many_arguments)]
pub fn rope(rec: &mut Recorder, x: &wgpu::Buffer, offset: usize, row_stride: usize, tokens: usize, heads: usize, table: &RopeTable, meta: &wgpu::Buffer) -> Result<()> {
    let k = compile(rec.gpu(), Shader::Rope, &[])?;
    let p = Params {
        tokens: u("tokens", tokens)?,
        heads: u("heads", heads)?,
        head_dim: u("head_dim", 2 * table.half)?,
        row_stride: u("row_stride", row_stride)?,
        offset: u("offset", offset)?,
        sin_offset: u("sin_offset", table.max_pos * table.half)?,
        k_from: 0,
        v_offset: 0,
        kv_dim: 0,
        cache_rows: 0,
        pad: [0; 2],
    };
    rec.dispatch_linear(k, &p, &[x, &table.buf, meta], u("workgroups", (tokens * heads * table.half).div_ceil(64))?);
    Ok(())
}

/// Where [`rope_kv`] finds the keys and values in each row of the fused q/k/v projection.
pub struct KvColumns {
    /// Heads `k_from ..` of the rotated ones are the key heads.
    pub k_from: usize,
    /// The value heads: `kv_dim` columns from `v_offset`.
    pub v_offset: usize,
    pub kv_dim: usize,
}

/// [`rope`], then [`kv_write`](super::kv_write::kv_write) of the rotated keys and the values, in
/// one dispatch (the same numbers): for a KV cache in one chunk. Returns false, recording
/// nothing, for a cache in several chunks (call the two instead).
#[allow(clippy::too_many_arguments)]
pub fn rope_kv(rec: &mut Recorder, x: &wgpu::Buffer, row_stride: usize, tokens: usize, heads: usize, kv: &KvColumns, table: &RopeTable, meta: &wgpu::Buffer, cache: &LayerCache) -> Result<bool> {
    let ([kc], [vc]) = (cache.k, cache.v) else { return Ok(false) };
    let head_dim = 2 * table.half;
    if !kv.kv_dim.is_multiple_of(head_dim) {
        return Ok(false);
    }
    if tokens == 0 {
        return Ok(true);
    }
    let k = compile(rec.gpu(), Shader::Rope, &["KV"])?;
    let p = Params {
        tokens: u("tokens", tokens)?,
        heads: u("heads", heads)?,
        head_dim: u("head_dim", head_dim)?,
        row_stride: u("row_stride", row_stride)?,
        offset: 0,
        sin_offset: u("sin_offset", table.max_pos * table.half)?,
        k_from: u("k_from", kv.k_from)?,
        v_offset: u("v_offset", kv.v_offset)?,
        kv_dim: u("kv_dim", kv.kv_dim)?,
        cache_rows: u("cache rows", cache.chunk_rows.min(u32::MAX as usize))?,
        pad: [0; 2],
    };
    let all = heads + kv.kv_dim / head_dim;
    rec.dispatch_linear(k, &p, &[x, &table.buf, meta, kc, vc], u("workgroups", (tokens * all * table.half).div_ceil(64))?);
    Ok(true)
}
