//! `shaders/rmsnorm.wgsl`: RMSNorm of hidden rows, of each head of a projection (Qwen3's q/k
//! norm), or of a gathered subset of rows (the final norm before the LM head).

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::Recorder;

/// The uniform `Params` of `shaders/rmsnorm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub rows: u32,
    pub dim: u32,
    pub per: u32,
    pub eps: f32,
    pub in_offset: u32,
    pub in_stride: u32,
    pub out_offset: u32,
    pub out_stride: u32,
}

/// `rows` rows of `dim` elements; row r starts at `offset + (r / per) * stride + (r % per) * dim`.
pub struct Rows<'a> {
    pub buf: &'a wgpu::Buffer,
    pub offset: usize,
    pub stride: usize,
    pub per: usize,
}

pub struct RmsNorm<'a> {
    pub weight: &'a wgpu::Buffer,
    pub dim: usize,
    pub eps: f32,
}

impl RmsNorm<'_> {
    fn params(&self, rows: usize, x: &Rows, out_offset: usize, out_stride: usize) -> Result<Params> {
        Ok(Params {
            rows: u("rows", rows)?,
            dim: u("dim", self.dim)?,
            per: u("per", x.per)?,
            eps: self.eps,
            in_offset: u("in_offset", x.offset)?,
            in_stride: u("in_stride", x.stride)?,
            out_offset: u("out_offset", out_offset)?,
            out_stride: u("out_stride", out_stride)?,
        })
    }

    /// Normalises `rows` rows of `x` where they are.
    pub fn in_place(&self, rec: &mut Recorder, rows: usize, x: &Rows) -> Result<()> {
        let k = kernel(rec, "INPLACE")?;
        let p = self.params(rows, x, x.offset, x.stride)?;
        rec.dispatch_linear(k, &p, &[x.buf, self.weight], p.rows);
        Ok(())
    }

    /// Writes the normalised rows of `x` to `out` (dense, `out_stride` apart; `x.per` must be 1
    /// when gathering). With `gather`, output row r normalises input row `gather[r]`.
    pub fn to(&self, rec: &mut Recorder, rows: usize, x: &Rows, out: &wgpu::Buffer, out_stride: usize, gather: Option<&wgpu::Buffer>) -> Result<()> {
        let p = self.params(rows, x, 0, out_stride)?;
        match gather {
            Some(idx) => {
                let k = kernel(rec, "GATHER")?;
                rec.dispatch_linear(k, &p, &[x.buf, self.weight, out, idx], p.rows);
            }
            None => {
                let k = kernel(rec, "")?;
                rec.dispatch_linear(k, &p, &[x.buf, self.weight, out], p.rows);
            }
        }
        Ok(())
    }
}

/// The kernel with `variant` (INPLACE, GATHER or none), in its one-subgroup form (`X_SUBGROUP`:
/// no barriers, the same bits) where the Gpu prefers it (`Gpu::subgroup_x`).
fn kernel(rec: &Recorder, variant: &'static str) -> Result<std::sync::Arc<crate::device::Kernel>> {
    let mut defs: Vec<&str> = [variant].into_iter().filter(|v| !v.is_empty()).collect();
    if rec.gpu().subgroup_x {
        defs.push("X_SUBGROUP");
    }
    compile(rec.gpu(), Shader::RmsNorm, &defs)
}
