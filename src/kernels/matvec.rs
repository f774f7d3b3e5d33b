//! `shaders/matvec.wgsl`: the matrix-vector kernel of [`linear`](super::linear) (decode), the
//! same product as [`matmul`](super::matmul) with the same bits, for a few rows of x.

use anyhow::{bail, Result};

use super::linear::Rows;
use super::matmul::{buffers, defines};
use super::{compile, compile_with, u, Shader};
use crate::device::recorder::grid;
use crate::device::Recorder;
use crate::tensor::{Chunk, DType, Layout, Matrix};

/// The uniform `Params` of `shaders/matvec.wgsl`: the same struct as matmul.wgsl's.
pub type Params = super::matmul::Params;

/// Weight rows per workgroup for `k` columns: 8 invocations of 4 rows each with `X_SUBGROUP`
/// (`WG` in the shader); with `SPLITK`, 64 invocations over [`slots`] segments side by side, so
/// 4 * 64 / slots rows. The SWIGLU variant's invocations take 2 outputs (4 weight rows).
fn rows_per_group(rec: &Recorder, k: usize) -> usize {
    if rec.gpu().subgroup_x { 32 } else { 4 * 64 / slots(k) }
}

/// `SLOTS` of the shader's `SPLITK` path: split-K segments computed side by side in a workgroup,
/// the power of two at or above the number of segments, at most 16 (the rest in further rounds).
/// A function of k alone; it changes speed, not bits.
pub(crate) fn slots(k: usize) -> usize {
    k.div_ceil(super::linear::SPLIT_K_SEGMENT).next_power_of_two().clamp(1, 16)
}

/// Whether the kernel can run: it reads x as vec4, so `w.cols`, `x_offset` and `x_stride` must be
/// multiples of 4.
pub fn aligned(w: &Matrix, r: &Rows) -> bool {
    w.cols % 4 == 0 && r.x_offset % 4 == 0 && r.x_stride % 4 == 0
}

/// Records y[m, i] = silu(g) * u with g = x[m, :] · gate_up[i, :] and u = x[m, :] · gate_up[inter + i, :]
/// (the dense MLP's fused gate/up projection and SwiGLU in one dispatch, the same bits as
/// [`linear`](super::linear::linear) then [`swiglu`](super::swiglu::swiglu)). Returns false, recording
/// nothing, where it does not apply: weights in more than one chunk, or x not read as vec4.
pub fn record_swiglu(rec: &mut Recorder, gate_up: &Matrix, inter: usize, r: &Rows) -> Result<bool> {
    swiglu_with(rec, gate_up, inter, r, None)
}

/// [`record_swiglu`] of RMSNorm(x) ([`Norm`]), normalised inside the kernel. Returns false,
/// recording nothing, where that does not apply ([`normalises`]).
pub fn record_swiglu_normed(rec: &mut Recorder, gate_up: &Matrix, inter: usize, r: &Rows, norm: &Norm) -> Result<bool> {
    if !normalises(rec, gate_up, r) {
        return Ok(false);
    }
    swiglu_with(rec, gate_up, inter, r, Some(norm))
}

fn swiglu_with(rec: &mut Recorder, gate_up: &Matrix, inter: usize, r: &Rows, norm: Option<&Norm>) -> Result<bool> {
    let [c] = gate_up.chunks.as_slice() else { return Ok(false) };
    if !aligned(gate_up, r) || c.rows != 2 * inter || r.m == 0 {
        return Ok(false);
    }
    let mut defs = c.defines();
    defs.push("SWIGLU");
    let wv = subgroup_defines(rec, c, &mut defs);
    let mut p = Params::chunk(gate_up, c, false, r)?;
    p.n = u("inter", inter)?;
    let mut b = bindings(c, None, r, wv);
    if let Some(nm) = norm {
        defs.push("NORM");
        p.eps = nm.eps;
        b.push(nm.weight);
    }
    // Two outputs (two gate and two up rows) per invocation.
    let groups = inter.div_ceil(rows_per_group(rec, gate_up.cols) / 2);
    dispatch(rec, defs, wv, &p, &b, groups)?;
    Ok(true)
}

/// RMSNorm (transformers' LlamaRMSNorm, as `shaders/rmsnorm.wgsl` computes it) applied to x by the
/// matrix-vector kernel itself: its weight (x's width) and epsilon.
pub struct Norm<'a> {
    pub weight: &'a wgpu::Buffer,
    pub eps: f32,
}

/// Whether [`record_normed`] and [`record_swiglu_normed`] apply: a single x row (a decode step of
/// one sequence) on a CPU adapter, weights the kernel reads a block at a time (`M1`). There a
/// separate RMSNorm dispatch costs more (about 30 µs of thread hand-off and a workgroup alone on
/// one thread) than every workgroup normalising the one row again.
pub fn normalises(rec: &Recorder, w: &Matrix, r: &Rows) -> bool {
    rec.gpu().subgroup_x && r.m == 1 && aligned(w, r) && w.cols % 32 == 0 && w.chunks.iter().all(reads_whole_blocks)
}

/// [`record`] of RMSNorm(x) ([`Norm`]), normalised inside the kernel with the same bits as
/// `RmsNorm` then [`record`]. Returns false, recording nothing, where that does not apply
/// ([`normalises`]).
pub fn record_normed(rec: &mut Recorder, w: &Matrix, bias: Option<&wgpu::Buffer>, accumulate: bool, r: &Rows, norm: &Norm) -> Result<bool> {
    if !normalises(rec, w, r) {
        return Ok(false);
    }
    record_with(rec, w, bias, accumulate, r, Some(norm))?;
    Ok(true)
}

/// Records y[m, :] (+)= x[m, :] · wᵀ (+ bias), x rows 4 at a time (see [`aligned`]).
pub fn record(rec: &mut Recorder, w: &Matrix, bias: Option<&wgpu::Buffer>, accumulate: bool, r: &Rows) -> Result<()> {
    record_with(rec, w, bias, accumulate, r, None)
}

fn record_with(rec: &mut Recorder, w: &Matrix, bias: Option<&wgpu::Buffer>, accumulate: bool, r: &Rows, norm: Option<&Norm>) -> Result<()> {
    if !aligned(w, r) {
        bail!("matvec: cols {}, x_offset {} and x_stride {} must be multiples of 4", w.cols, r.x_offset, r.x_stride);
    }
    for c in &w.chunks {
        let mut defs = defines(c, bias.is_some());
        let wv = subgroup_defines(rec, c, &mut defs);
        let mut p = Params::chunk(w, c, accumulate, r)?;
        let mut b = bindings(c, bias, r, wv);
        if let Some(nm) = norm {
            defs.push("NORM");
            p.eps = nm.eps;
            b.push(nm.weight);
        }
        let groups = c.rows.div_ceil(rows_per_group(rec, w.cols));
        dispatch(rec, defs, wv, &p, &b, groups)?;
    }
    Ok(())
}

/// Weights the kernel reads a 32-weight block at a time with `WV` on CPU adapters (the shader's
/// GROUP8): ggml 32-weight blocks, Q4_K and Q5_K sub-blocks, planar Q6_K sub-blocks, and floats
/// a quad per vector load.
pub fn reads_whole_blocks(c: &Chunk) -> bool {
    let d = c.dtype;
    d.block_size() == 32 || d.is_float() || matches!(d, DType::Q4_K | DType::Q5_K) || (d == DType::Q6_K && c.layout == Layout::Planar)
}

/// Adds `X_SUBGROUP` where the Gpu prefers it, and with it `WV` where [`reads_whole_blocks`]:
/// fewer, wider loads of the same words. Returns whether it added `WV`.
fn subgroup_defines(rec: &Recorder, c: &Chunk, defs: &mut Vec<&'static str>) -> bool {
    if !rec.gpu().subgroup_x {
        return false;
    }
    defs.push("X_SUBGROUP");
    let wv = reads_whole_blocks(c);
    if wv {
        defs.push("WV");
    }
    wv
}

/// The bindings of matmul's [`buffers`], and with `WV` a planar chunk's buffer once more, bound
/// as words for its scales (weights.wgsl's `ws`).
fn bindings<'a>(c: &'a Chunk, bias: Option<&'a wgpu::Buffer>, r: &Rows<'a>, wv: bool) -> Vec<&'a wgpu::Buffer> {
    let mut b = buffers(c, bias, r);
    if wv && c.layout == Layout::Planar {
        b.push(&c.buf);
    }
    b
}

/// Rows of x per workgroup along z (`M_CHUNK` in the shader).
const M_CHUNK: usize = 8;

/// `groups` workgroups of weight rows (over x and y) times the chunks of `p.m` rows of x (over
/// z). A single x row over rows of whole 32-k blocks with `WV` takes the shader's `M1`: the
/// single-row loop without the loops and branches around it, whose loads a software adapter
/// runs under lane masks it tests lane by lane (matvec 1x1536x576: 7-11% faster). The same bits.
fn dispatch(rec: &mut Recorder, mut defs: Vec<&'static str>, wv: bool, p: &Params, buffers: &[&wgpu::Buffer], groups: usize) -> Result<()> {
    if wv && p.m == 1 && p.k % 32 == 0 {
        defs.push("M1");
    }
    let kernel = if super::linear::split_k(rec.gpu()) {
        defs.push("SPLITK");
        compile_with(rec.gpu(), Shader::Matvec, &defs, &[("SLOTS", u("slots", slots(p.k as usize))?), super::linear::KSEG])?
    } else {
        compile(rec.gpu(), Shader::Matvec, &defs)?
    };
    let mut g = grid(u("workgroups", groups)?, rec.gpu().limits.max_compute_workgroups_per_dimension);
    g[2] = u("row chunks", (p.m as usize).div_ceil(M_CHUNK))?;
    rec.dispatch(kernel, p, buffers, g);
    Ok(())
}
