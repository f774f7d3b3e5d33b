//! `shaders/matmul.wgsl`: the tiled kernel of [`linear`](super::linear) (prefill), y = x · wᵀ
//! (+ bias) (+ y), chunk by chunk of w.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::linear::Rows;
use super::{compile_with, u, Shader};
use crate::device::Recorder;
use crate::tensor::{Chunk, Matrix};

/// The uniform `Params` of `shaders/matmul.wgsl` (and of `shaders/matvec.wgsl`, which declares
/// the same struct). `n` is the chunk's rows, `n_offset` its first row, `k` the columns.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub w_stride: u32,
    pub x_offset: u32,
    pub x_stride: u32,
    pub y_offset: u32,
    pub y_stride: u32,
    pub n_offset: u32,
    pub accumulate: u32,
    /// Word offset of the scales plane of a planar chunk ([`Chunk::scales_word`]).
    pub w_scales: u32,
    /// RMSNorm's epsilon for matvec.wgsl's `NORM` (x normalised in the kernel); else unused.
    pub eps: f32,
}

impl Params {
    /// The parameters for chunk `c` of `w`.
    pub(super) fn chunk(w: &Matrix, c: &Chunk, accumulate: bool, r: &Rows) -> Result<Params> {
        Ok(Params {
            m: u("m", r.m)?,
            n: u("n", c.rows)?,
            k: u("k", w.cols)?,
            w_stride: u("w_stride", c.stride)?,
            x_offset: u("x_offset", r.x_offset)?,
            x_stride: u("x_stride", r.x_stride)?,
            y_offset: u("y_offset", r.y_offset)?,
            y_stride: u("y_stride", r.y_stride)?,
            n_offset: u("n_offset", c.row0)?,
            accumulate: accumulate as u32,
            w_scales: u("w_scales", c.scales_word())?,
            eps: 0.0,
        })
    }
}

/// Rows and columns of output per workgroup.
pub const TILE: usize = 128;

/// The defines for chunk `c`: its format's, and `BIAS` with a bias.
pub(super) fn defines(c: &Chunk, bias: bool) -> Vec<&'static str> {
    let mut d = c.defines();
    if bias {
        d.push("BIAS");
    }
    d
}

/// The bindings: x, the chunk's weights, y and the bias if any.
pub(super) fn buffers<'a>(c: &'a Chunk, bias: Option<&'a wgpu::Buffer>, r: &Rows<'a>) -> Vec<&'a wgpu::Buffer> {
    let mut bufs = vec![r.x, &c.buf, r.y];
    bufs.extend(bias);
    bufs
}

/// Records y[m, :] (+)= x[m, :] · wᵀ (+ bias) over tiles of `TILE` x `TILE` outputs.
pub fn record(rec: &mut Recorder, w: &Matrix, bias: Option<&wgpu::Buffer>, accumulate: bool, r: &Rows) -> Result<()> {
    for c in &w.chunks {
        let mut defs = defines(c, bias.is_some());
        let split = super::linear::split_k(rec.gpu());
        if split {
            defs.push("SPLITK");
        }
        let kernel = compile_with(rec.gpu(), Shader::Matmul, &defs, if split { &[super::linear::KSEG] } else { &[] })?;
        let p = Params::chunk(w, c, accumulate, r)?;
        let groups = [u("workgroups", c.rows.div_ceil(TILE))?, u("workgroups", r.m.div_ceil(TILE))?, 1];
        rec.dispatch(kernel, &p, &buffers(c, bias, r), groups);
    }
    Ok(())
}
