//! `shaders/kv_copy.wgsl`: duplicates cached rows of the KV cache.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::Recorder;
use crate::model::decoder::LayerCache;

/// The uniform `Params` of `shaders/kv_copy.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub rows: u32,
    pub kv_dim: u32,
    pub src: u32,
    pub dst: u32,
}

/// Duplicates `rows` cached positions (keys and values) from row `src` to row `dst`, in pieces
/// that stay within one chunk on each side.
pub fn kv_copy(rec: &mut Recorder, cache: &LayerCache, kv_dim: usize, rows: usize, src: usize, dst: usize) -> Result<()> {
    let cr = cache.chunk_rows;
    let (mut done, mut s, mut d) = (0, src, dst);
    while done < rows {
        let n = (rows - done).min(cr - s % cr).min(cr - d % cr);
        let (sc, dc) = (s / cr, d / cr);
        let p = Params { rows: u("rows", n)?, kv_dim: u("kv_dim", kv_dim)?, src: u("src", s % cr)?, dst: u("dst", d % cr)? };
        let groups = u("workgroups", (n * kv_dim).div_ceil(64))?;
        if sc == dc {
            let k = compile(rec.gpu(), Shader::KvCopy, &[])?;
            rec.dispatch_linear(k, &p, &[&cache.k[dc], &cache.v[dc]], groups);
        } else {
            let k = compile(rec.gpu(), Shader::KvCopy, &["TWO"])?;
            rec.dispatch_linear(k, &p, &[&cache.k[dc], &cache.v[dc], &cache.k[sc], &cache.v[sc]], groups);
        }
        done += n;
        s += n;
        d += n;
    }
    Ok(())
}
