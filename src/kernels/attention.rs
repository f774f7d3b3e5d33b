//! `shaders/attention.wgsl`: causal grouped-query attention over the KV cache.

use anyhow::{bail, Result};

use super::{compile_with, u};
use crate::device::Recorder;

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
        let k = compile_with(rec.gpu(), "attention", &[], &[("D4", u(self.head_dim / 4))])?;
        let scale = 1.0 / (self.head_dim as f32).sqrt();
        let p = [
            u(tokens), u(self.heads_q), u(self.heads_kv), u(self.head_dim),
            u(q_stride), u(q_offset), u(self.heads_q * self.head_dim), u(self.window.unwrap_or(0)),
            scale.to_bits(),
        ];
        rec.dispatch_linear(k, &p, &[q, k_cache, v_cache, meta, out], u((tokens * self.heads_q).div_ceil(64)));
        Ok(())
    }
}
