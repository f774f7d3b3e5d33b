//! `shaders/expert_matmul.wgsl`: the matmul of a mixture-of-experts layer over each expert's
//! gathered rows, with the experts' weights stacked in one [`Experts`] bank in their stored dtype.

use anyhow::{bail, Result};
use bytemuck::{Pod, Zeroable};

use super::linear::Path;
use super::{compile_with, expert_matvec, u, Shader};
use crate::device::{Gpu, Recorder};
use crate::tensor::{Chunk, DType, Layout, Matrix};

/// The uniform `Params` of `shaders/expert_matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub n: u32,
    pub k: u32,
    pub w_stride: u32,
    pub cap: u32,
    pub x_stride: u32,
    pub x_div: u32,
    pub y_stride: u32,
    pub y_div: u32,
    pub e0: u32,
}

impl Params {
    /// The parameters for chunk `c` of bank `w`.
    pub(super) fn chunk(w: &Experts, c: &Chunk, g: &Gathered) -> Result<Params> {
        Ok(Params {
            n: u("n", w.rows)?,
            k: u("k", w.matrix.cols)?,
            w_stride: u("w_stride", c.stride)?,
            cap: u("cap", g.cap)?,
            x_stride: u("x_stride", g.x_stride)?,
            x_div: u("x_div", g.x_div.max(1))?,
            y_stride: u("y_stride", g.y_stride)?,
            y_div: u("y_div", g.y_div.max(1))?,
            e0: u("e0", c.row0 / w.rows)?,
        })
    }
}

/// Rows and columns of output per workgroup (as matmul.wgsl).
pub const TILE: usize = 128;

/// `experts` matrices of `[rows, cols]` each, stacked expert after expert; every chunk of the
/// underlying [`Matrix`] holds whole experts (so a chunk never splits one).
pub struct Experts {
    pub experts: usize,
    pub rows: usize,
    pub matrix: Matrix,
}

impl Experts {
    /// An empty bank of `[rows, cols]` experts, filled with [`push`](Self::push).
    pub fn new(rows: usize, cols: usize) -> Experts {
        Experts { experts: 0, rows, matrix: Matrix { rows: 0, cols, chunks: Vec::new() } }
    }

    /// Appends experts given as raw bytes of `n * rows` rows in `dtype`: in one chunk where they
    /// fit in a storage binding (and share the last chunk's dtype they still get a chunk of their
    /// own: chunks are cheap), else in chunks of as many whole experts as fit.
    pub fn push(&mut self, gpu: &Gpu, name: &str, dtype: DType, n: usize, bytes: &[u8]) -> Result<()> {
        let cols = self.matrix.cols;
        let stride = if dtype.block_bytes() == 2 { cols.next_multiple_of(2) } else { cols };
        let expert_bytes = (dtype.bytes_for(stride) * self.rows) as u64;
        if expert_bytes > gpu.max_binding {
            bail!("{name}: one expert is {expert_bytes} bytes, above the largest storage binding ({} bytes)", gpu.max_binding);
        }
        let per = ((gpu.max_binding / expert_bytes) as usize).max(1);
        let row_bytes = dtype.bytes_for(cols);
        let mut e = 0;
        while e < n {
            let c = per.min(n - e);
            let src = &bytes[e * self.rows * row_bytes..(e + c) * self.rows * row_bytes];
            let before = self.matrix.chunks.len();
            // As stored: the expert kernels read ggml blocks, and the expert cache writes them.
            self.matrix.append_as(gpu, name, dtype, Layout::Ggml, c * self.rows, src)?;
            if self.matrix.chunks.len() != before + 1 {
                bail!("internal: {name}: experts split across chunks");
            }
            e += c;
        }
        self.experts += n;
        Ok(())
    }

    pub fn bytes_on_gpu(&self) -> u64 {
        self.matrix.bytes_on_gpu()
    }
}

/// Where an expert matmul reads and writes: rows of expert e are the entries at
/// `lists[e * cap ..][.. counts[e]]`; entry v reads x row `v / x_div` and writes y row `v / y_div`.
pub struct Gathered<'a> {
    pub x: &'a wgpu::Buffer,
    pub x_stride: usize,
    pub x_div: usize,
    pub y: &'a wgpu::Buffer,
    pub y_stride: usize,
    pub y_div: usize,
    pub counts: &'a wgpu::Buffer,
    pub lists: &'a wgpu::Buffer,
    pub cap: usize,
}

/// Records y[row] = x[row] · w_eᵀ for every expert's gathered rows with the faster kernel for
/// `g.cap` tokens (each expert holds at most that many rows): the vector kernel up to
/// [`VECTOR_MAX_ROWS`](super::linear::VECTOR_MAX_ROWS) (any number on a CPU adapter, for ggml 32-weight blocks), else the tiled one. Both give the same bits.
pub fn record(rec: &mut Recorder, w: &Experts, g: &Gathered) -> Result<()> {
    record_path(rec, Path::for_expert_rows(rec.gpu(), g.cap, &w.matrix), w, g)
}

/// [`record`] with the kernel chosen by the caller (the tiled one where the vector kernel's
/// alignment does not hold).
pub fn record_path(rec: &mut Recorder, path: Path, w: &Experts, g: &Gathered) -> Result<()> {
    if g.cap == 0 {
        return Ok(());
    }
    if path == Path::Vector && expert_matvec::aligned(w, g) {
        return expert_matvec::record(rec, w, g);
    }
    for c in &w.matrix.chunks {
        let mut defs = vec![c.dtype.define()];
        let split = super::linear::split_k(rec.gpu());
        if split {
            defs.push("SPLITK");
        }
        let kernel = compile_with(rec.gpu(), Shader::ExpertMatmul, &defs, if split { &[super::linear::KSEG] } else { &[] })?;
        let p = Params::chunk(w, c, g)?;
        let groups = [u("workgroups", w.rows.div_ceil(TILE))?, u("workgroups", g.cap.div_ceil(TILE))?, u("workgroups", c.rows / w.rows)?];
        rec.dispatch(kernel, &p, &[g.x, &c.buf, g.y, g.counts, g.lists], groups);
    }
    Ok(())
}
