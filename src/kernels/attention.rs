//! `shaders/attention.wgsl`: causal grouped-query attention over the KV cache.

use anyhow::{bail, Result};
use bytemuck::{Pod, Zeroable};

use super::{compile_with, u, Shader};
use crate::device::Recorder;

/// The uniform `Params` of `shaders/attention.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub tokens: u32,
    pub heads_q: u32,
    pub heads_kv: u32,
    pub head_dim: u32,
    pub q_stride: u32,
    pub q_offset: u32,
    pub out_stride: u32,
    pub window: u32,
    pub scale: f32,
}

pub struct Attention {
    pub heads_q: usize,
    pub heads_kv: usize,
    pub head_dim: usize,
    /// Mistral's sliding window: a query attends to itself and the `window - 1` keys before it.
    pub window: Option<usize>,
}

impl Attention {
    /// out[t, h*d..] = softmax(q·kᵀ / sqrt(d)) · v for query rows at `q_offset + t * q_stride`.
    #[allow(clippy::too_many_arguments)]
    pub fn record(&self, rec: &mut Recorder, q: &wgpu::Buffer, q_offset: usize, q_stride: usize, tokens: usize, meta: &wgpu::Buffer, k_cache: &wgpu::Buffer, v_cache: &wgpu::Buffer, out: &wgpu::Buffer) -> Result<()> {
        if self.head_dim > 256 || self.head_dim % 4 != 0 || self.heads_q % self.heads_kv != 0 {
            bail!("attention: head_dim {} (a multiple of 4, at most 256) / heads {} over kv heads {}", self.head_dim, self.heads_q, self.heads_kv);
        }
        if q_offset % 4 != 0 || q_stride % 4 != 0 {
            bail!("attention: query rows must start on multiples of 4 floats");
        }
        let k = compile_with(rec.gpu(), Shader::Attention, &[], &[("D4", u("D4", self.head_dim / 4)?)])?;
        let p = Params {
            tokens: u("tokens", tokens)?,
            heads_q: u("heads_q", self.heads_q)?,
            heads_kv: u("heads_kv", self.heads_kv)?,
            head_dim: u("head_dim", self.head_dim)?,
            q_stride: u("q_stride", q_stride)?,
            q_offset: u("q_offset", q_offset)?,
            out_stride: u("out_stride", self.heads_q * self.head_dim)?,
            window: u("window", self.window.unwrap_or(0))?,
            scale: 1.0 / (self.head_dim as f32).sqrt(),
        };
        rec.dispatch_linear(k, &p, &[q, k_cache, v_cache, meta, out], u("workgroups", (tokens * self.heads_q).div_ceil(64))?);
        Ok(())
    }
}
