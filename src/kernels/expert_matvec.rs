//! `shaders/expert_matvec.wgsl`: the decode path of [`expert_matmul`](super::expert_matmul), the
//! same rows with the same bits, for experts holding a few rows each.

use anyhow::{bail, Result};

use super::expert_matmul::{Experts, Gathered, Params};
use super::{compile, compile_with, u, Shader};
use crate::device::Recorder;

/// Weight rows per workgroup (64 invocations of 4 rows each; with the split-K form, 4 rows per
/// group of `SLOTS` invocations, as matvec.wgsl's `SPLITK`).
fn rows_per_group(split: bool, k: usize) -> usize {
    if split { 4 * 64 / super::matvec::slots(k) } else { 256 }
}

/// Whether the kernel can run: it reads x as vec4, so the columns and `x_stride` must be
/// multiples of 4.
pub fn aligned(w: &Experts, g: &Gathered) -> bool {
    w.matrix.cols.is_multiple_of(4) && g.x_stride.is_multiple_of(4)
}

/// Records y[row] = x[row] · w_eᵀ for every expert's gathered rows, 4 rows at a time.
pub fn record(rec: &mut Recorder, w: &Experts, g: &Gathered) -> Result<()> {
    if !aligned(w, g) {
        bail!("expert_matvec: cols {} and x_stride {} must be multiples of 4", w.matrix.cols, g.x_stride);
    }
    for c in &w.matrix.chunks {
        let split = super::linear::split_k(rec.gpu());
        let kernel = if split {
            compile_with(rec.gpu(), Shader::ExpertMatvec, &[c.dtype.define(), "SPLITK"], &[("SLOTS", u("slots", super::matvec::slots(w.matrix.cols))?), super::linear::KSEG])?
        } else {
            compile(rec.gpu(), Shader::ExpertMatvec, &[c.dtype.define()])?
        };
        let p = Params::chunk(w, c, g)?;
        let groups = [u("workgroups", w.rows.div_ceil(rows_per_group(split, w.matrix.cols)))?, 1, u("workgroups", c.rows / w.rows)?];
        rec.dispatch(kernel, &p, &[g.x, &c.buf, g.y, g.counts, g.lists], groups);
    }
    Ok(())
}
