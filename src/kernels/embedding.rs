//! `shaders/embedding.wgsl`: gathers embedding rows for token ids, chunk by chunk.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::Recorder;
use crate::tensor::Matrix;

/// The uniform `Params` of `shaders/embedding.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub dim: u32,
    pub w_stride: u32,
    pub row0: u32,
    pub rows: u32,
    /// Word offset of the scales plane of a planar chunk ([`Chunk::scales_word`](crate::tensor::Chunk::scales_word)).
    pub w_scales: u32,
}

/// out[t, :] = table[ids[t], :] for `tokens` ids (the caller checks ids < table.rows).
pub fn embedding(rec: &mut Recorder, table: &Matrix, ids: &wgpu::Buffer, tokens: usize, out: &wgpu::Buffer) -> Result<()> {
    for c in &table.chunks {
        let k = compile(rec.gpu(), Shader::Embedding, &c.defines())?;
        let p = Params {
            tokens: u("tokens", tokens)?,
            dim: u("dim", table.cols)?,
            w_stride: u("w_stride", c.stride)?,
            row0: u("row0", c.row0)?,
            rows: u("rows", c.rows)?,
            w_scales: u("w_scales", c.scales_word())?,
        };
        rec.dispatch_linear(k.clone(), &p, &[ids, &c.buf, out], u("workgroups", (tokens * table.cols).div_ceil(64))?);
    }
    Ok(())
}
