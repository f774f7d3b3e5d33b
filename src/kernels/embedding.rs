//! `shaders/embedding.wgsl`: gathers embedding rows for token ids, chunk by chunk.

use anyhow::Result;

use super::{compile, u};
use crate::device::Recorder;
use crate::tensor::Matrix;

/// out[t, :] = table[ids[t], :] for `tokens` ids (the caller checks ids < table.rows).
pub fn embedding(rec: &mut Recorder, table: &Matrix, ids: &wgpu::Buffer, tokens: usize, out: &wgpu::Buffer) -> Result<()> {
    for c in &table.chunks {
        let k = compile(rec.gpu(), "embedding", &[c.dtype.define()])?;
        let p = [u(tokens), u(table.cols), u(c.stride), u(c.row0), u(c.rows)];
        rec.dispatch_linear(k.clone(), &p, &[ids, &c.buf, out], u((tokens * table.cols).div_ceil(64)));
    }
    Ok(())
}
