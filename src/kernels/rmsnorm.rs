//! `shaders/rmsnorm.wgsl`: RMSNorm of hidden rows, of each head of a projection (Qwen3's q/k
//! norm), or of a gathered subset of rows (the final norm before the LM head).

use anyhow::Result;

use super::{compile, u};
use crate::device::Recorder;

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
    fn params(&self, rows: usize, x: &Rows, out_offset: usize, out_stride: usize) -> [u32; 8] {
        [u(rows), u(self.dim), u(x.per), self.eps.to_bits(), u(x.offset), u(x.stride), u(out_offset), u(out_stride)]
    }

    /// Normalises `rows` rows of `x` where they are.
    pub fn in_place(&self, rec: &mut Recorder, rows: usize, x: &Rows) -> Result<()> {
        let k = compile(rec.gpu(), "rmsnorm", &["INPLACE"])?;
        let p = self.params(rows, x, x.offset, x.stride);
        rec.dispatch_linear(k, &p, &[x.buf, self.weight], u(rows));
        Ok(())
    }

    /// Writes the normalised rows of `x` to `out` (dense, `out_stride` apart; `x.per` must be 1
    /// when gathering). With `gather`, output row r normalises input row `gather[r]`.
    pub fn to(&self, rec: &mut Recorder, rows: usize, x: &Rows, out: &wgpu::Buffer, out_stride: usize, gather: Option<&wgpu::Buffer>) -> Result<()> {
        let p = self.params(rows, x, 0, out_stride);
        match gather {
            Some(idx) => {
                let k = compile(rec.gpu(), "rmsnorm", &["GATHER"])?;
                rec.dispatch_linear(k, &p, &[x.buf, self.weight, out, idx], u(rows));
            }
            None => {
                let k = compile(rec.gpu(), "rmsnorm", &[])?;
                rec.dispatch_linear(k, &p, &[x.buf, self.weight, out], u(rows));
            }
        }
        Ok(())
    }
}
