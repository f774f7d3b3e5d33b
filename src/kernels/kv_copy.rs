//! `shaders/kv_copy.wgsl`: duplicates cached rows of the KV cache.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::Recorder;

/// The uniform `Params` of `shaders/kv_copy.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub rows: u32,
    pub kv_dim: u32,
    pub src: u32,
    pub dst: u32,
}

/// Duplicates `rows` cached positions (keys and values) from row `src` to row `dst`.
pub fn kv_copy(rec: &mut Recorder, k_cache: &wgpu::Buffer, v_cache: &wgpu::Buffer, kv_dim: usize, rows: usize, src: usize, dst: usize) -> Result<()> {
    if rows == 0 {
        return Ok(());
    }
    let k = compile(rec.gpu(), Shader::KvCopy, &[])?;
    let p = Params { rows: u("rows", rows)?, kv_dim: u("kv_dim", kv_dim)?, src: u("src", src)?, dst: u("dst", dst)? };
    rec.dispatch_linear(k, &p, &[k_cache, v_cache], u("workgroups", (rows * kv_dim).div_ceil(64))?);
    Ok(())
}
