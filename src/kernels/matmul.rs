//! `shaders/matmul.wgsl` (tiled, prefill) and `shaders/matvec.wgsl` (decode): y = x · wᵀ (+ bias)
//! (+ y), with w a `[out, in]` [`Matrix`] in its stored dtype, chunk by chunk.

use anyhow::Result;

use super::{compile, u};
use crate::device::Recorder;
use crate::tensor::Matrix;

/// Which kernel computes a linear layer. Both accumulate every output in the same order and give
/// bit-identical results (tests/kernels.rs), so the choice is only about speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Tiled,
    Vector,
}

/// Where the `m` input rows and output rows live (offsets and strides in f32 elements).
pub struct Rows<'a> {
    pub x: &'a wgpu::Buffer,
    pub x_offset: usize,
    pub x_stride: usize,
    pub y: &'a wgpu::Buffer,
    pub y_offset: usize,
    pub y_stride: usize,
    pub m: usize,
}

/// Rows up to which the matrix-vector kernel beats the tiled one (it streams the weights once per
/// 4 rows; the tiled kernel computes 64-row tiles).
pub const VECTOR_MAX_ROWS: usize = 32;

/// Rows and columns of output per workgroup of the tiled kernel.
const TILE: usize = 128;

impl Path {
    pub fn for_rows(m: usize) -> Path {
        if m <= VECTOR_MAX_ROWS { Path::Vector } else { Path::Tiled }
    }
}

/// Records y[m, :] (+)= x[m, :] · wᵀ (+ bias) with the faster kernel for `m` rows.
/// `accumulate` adds onto what y holds (the residual add).
pub fn linear(rec: &mut Recorder, w: &Matrix, bias: Option<&wgpu::Buffer>, accumulate: bool, r: &Rows) -> Result<()> {
    linear_path(rec, Path::for_rows(r.m), w, bias, accumulate, r)
}

/// [`linear`] with the kernel chosen by the caller. The vector kernel reads x four floats at a
/// time; where `cols`, `x_offset` or `x_stride` is not a multiple of 4 the tiled kernel (which
/// gives the same bits) runs instead.
pub fn linear_path(rec: &mut Recorder, path: Path, w: &Matrix, bias: Option<&wgpu::Buffer>, accumulate: bool, r: &Rows) -> Result<()> {
    if r.m == 0 {
        return Ok(());
    }
    let aligned = w.cols % 4 == 0 && r.x_offset % 4 == 0 && r.x_stride % 4 == 0;
    let path = if aligned { path } else { Path::Tiled };
    let file = match path {
        Path::Tiled => "matmul",
        Path::Vector => "matvec",
    };
    for c in &w.chunks {
        let defines: &[&str] = if bias.is_some() { &[c.dtype.define(), "BIAS"] } else { &[c.dtype.define()] };
        let kernel = compile(rec.gpu(), file, defines)?;
        let params = [
            u(r.m), u(c.rows), u(w.cols), u(c.stride),
            u(r.x_offset), u(r.x_stride), u(r.y_offset), u(r.y_stride),
            u(c.row0), accumulate as u32,
        ];
        let mut bufs = vec![r.x, &c.buf, r.y];
        if let Some(b) = bias {
            bufs.push(b);
        }
        match path {
            Path::Tiled => {
                rec.dispatch(kernel.clone(), &params, &bufs, [u(c.rows.div_ceil(TILE)), u(r.m.div_ceil(TILE)), 1])
            }
            Path::Vector => rec.dispatch_linear(kernel.clone(), &params, &bufs, u(c.rows.div_ceil(256))),
        }
    }
    Ok(())
}
