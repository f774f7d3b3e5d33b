//! Linear layers, y = x · wᵀ (+ bias) (+ y) with w a `[out, in]` [`Matrix`] in its stored dtype:
//! chooses between the tiled kernel ([`matmul`], prefill) and the matrix-vector one ([`matvec`],
//! decode), which give the same bits: one `fma` chain over k on CPU adapters, its split-K form on
//! GPUs ([`split_k`]).

use anyhow::Result;

use super::{matmul, matvec};
use crate::device::{Gpu, Recorder};
use crate::tensor::{Chunk, Matrix};

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

/// Whether the canonical order takes its split-K form on `gpu`: k in segments of
/// [`SPLIT_K_SEGMENT`] (the last one shorter), each segment one `fma` chain from 0 over its k in
/// order, and each output the segments' sums added in segment order onto 0. GPUs take it (`SPLITK`
/// in matmul.wgsl and matvec.wgsl), so that decoding spreads one output's k over many invocations
/// instead of one invocation streaming whole rows; CPU adapters (`Gpu::subgroup_x`) keep the plain
/// chain over all of k, which their lane-per-row kernels compute at no cost. Either way the tiled
/// and matrix-vector kernels give the same bits on one adapter, and the choice depends on the
/// adapter alone, never on the batch. With k at most one segment the two forms are the same.
pub fn split_k(gpu: &Gpu) -> bool {
    !gpu.subgroup_x
}

/// The split-K segment length in k (see [`split_k`]).
pub const SPLIT_K_SEGMENT: usize = 256;

// A multiple of 32: the matrix-vector kernels take whole 32-weight blocks, the tiled ones k-tiles of 16.
const _: () = assert!(SPLIT_K_SEGMENT.is_multiple_of(32));

/// `const KSEG` for the kernels' `SPLITK` form: the shaders take the segment from here alone.
pub(crate) const KSEG: (&str, u32) = ("KSEG", SPLIT_K_SEGMENT as u32);

/// Rows up to which the matrix-vector kernel beats the tiled one on a GPU (it streams the weights
/// once per 8 rows; the tiled kernel computes tiles of [`matmul::TILE`] rows).
pub const VECTOR_MAX_ROWS: usize = 32;

impl Path {
    /// The faster kernel for `m` rows of `w` on `gpu`. On a software adapter (lavapipe) with
    /// ggml 32-weight blocks or float weights the vector kernel wins at every size: its weight
    /// rows differ per lane but its x reads are shared through subgroups, while the tiled kernel's
    /// workgroup-memory reads differ per lane and a CPU driver serves those one lane at a time
    /// (512x1536x576: Q4_1 39 vs 12 GFLOP/s, f32 34 vs 13, bf16 42 vs 13); so do Q4_K, Q5_K
    /// and planar Q6_K, read a sub-block at a time. Q6_K as stored, read byte by byte, keeps
    /// the tiled kernel. Either way the bits are the same.
    pub fn for_rows(gpu: &Gpu, m: usize, w: &Matrix) -> Path {
        Self::choose(gpu, m, w, matvec::reads_whole_blocks)
    }

    /// [`for_rows`](Self::for_rows) for the expert kernels: their matrix-vector kernel reads
    /// only ggml 32-weight blocks a block at a time, so other experts keep the tiled kernel
    /// above [`VECTOR_MAX_ROWS`] everywhere.
    pub fn for_expert_rows(gpu: &Gpu, m: usize, w: &Matrix) -> Path {
        Self::choose(gpu, m, w, |c| c.dtype.block_size() == 32)
    }

    /// The vector kernel up to [`VECTOR_MAX_ROWS`], and at every row count on a CPU adapter when
    /// every chunk's format is `fast` there.
    fn choose(gpu: &Gpu, m: usize, w: &Matrix, fast: fn(&Chunk) -> bool) -> Path {
        if m <= VECTOR_MAX_ROWS || (gpu.subgroup_x && w.chunks.iter().all(fast)) { Path::Vector } else { Path::Tiled }
    }
}

/// Records y[m, :] (+)= x[m, :] · wᵀ (+ bias) with the faster kernel for `m` rows.
/// `accumulate` adds onto what y holds (the residual add).
pub fn linear(rec: &mut Recorder, w: &Matrix, bias: Option<&wgpu::Buffer>, accumulate: bool, r: &Rows) -> Result<()> {
    linear_path(rec, Path::for_rows(rec.gpu(), r.m, w), w, bias, accumulate, r)
}

/// [`linear`] with the kernel chosen by the caller. The vector kernel reads x four floats at a
/// time; where `cols`, `x_offset` or `x_stride` is not a multiple of 4 the tiled kernel (which
/// gives the same bits) runs instead.
pub fn linear_path(rec: &mut Recorder, path: Path, w: &Matrix, bias: Option<&wgpu::Buffer>, accumulate: bool, r: &Rows) -> Result<()> {
    if r.m == 0 {
        return Ok(());
    }
    match path {
        Path::Vector if matvec::aligned(w, r) => matvec::record(rec, w, bias, accumulate, r),
        _ => matmul::record(rec, w, bias, accumulate, r),
    }
}
