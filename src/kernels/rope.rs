//! `shaders/rope.wgsl`: rotary position embedding from a cos/sin table built on the host.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::{Gpu, Recorder};

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
    };
    rec.dispatch_linear(k, &p, &[x, &table.buf, meta], u("workgroups", (tokens * heads * table.half).div_ceil(64))?);
    Ok(())
}
