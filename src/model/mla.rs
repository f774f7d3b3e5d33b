//! Multi-head latent attention (DeepSeek-V2/V3), read top to bottom:
//! [q_a_proj | kv_a_proj_with_mqa] (one stacked linear; q_proj instead of q_a_proj without q LoRA)
//! → RMSNorm of q_a → q_b_proj; RMSNorm of the compressed kv → kv_b_proj (per head k_nope and v)
//! → per-head Q = [q_nope, rope(q_pe)], K = [k_nope, rope(k_pe)], V, each padded with zeros to
//! the attention head size, the query pre-scaled so the attention kernel's 1/sqrt(head size)
//! gives MLA's softmax scale (see `kernels::mla`). The decoder then caches K and V and runs the
//! ordinary attention kernel over them, and [`MlaAttention::output`] drops the value padding
//! before o_proj.
//!
//! This is "naive" MLA: the cache holds the expanded per-head keys and values (heads × head size
//! × 2 floats per position and layer) rather than the compressed latent, so the KV cache and the
//! attention kernel are the ones every other architecture uses, and every value depends only on
//! its own token (batch-invariant by construction).

use anyhow::{Context, Result};

use super::config::{Config, MlaConfig};
use super::weights::TensorSource;
use crate::device::{Gpu, Recorder};
use crate::kernels::linear::{linear, Rows};
use crate::kernels::mla::{self, Inputs, Shape};
use crate::kernels::rmsnorm::{self, RmsNorm};
use crate::kernels::rope::RopeTable;
use crate::tensor::Matrix;

/// transformers builds q_a_layernorm and kv_a_layernorm with the RMSNorm default epsilon, not
/// `rms_norm_eps`.
const LATENT_NORM_EPS: f32 = 1e-6;

pub struct MlaAttention {
    /// q_a_proj (or q_proj) and kv_a_proj_with_mqa stacked: `[first + kv_lora + rope, hidden]`.
    a: Matrix,
    /// Width of the first part of `a`'s rows: q_lora_rank, or heads * (nope + rope) without LoRA.
    first: usize,
    q_a_norm: Option<wgpu::Buffer>,
    q_b: Option<Matrix>,
    kv_a_norm: wgpu::Buffer,
    kv_b: Matrix,
    shape: Shape,
    kv_lora: usize,
    q_scale: f32,
}

/// The working buffers of the MLA layers for passes of up to `tokens` rows.
pub struct MlaActivations {
    a: wgpu::Buffer,
    q: Option<wgpu::Buffer>,
    kv: wgpu::Buffer,
    out: wgpu::Buffer,
}

impl MlaActivations {
    pub fn new(gpu: &Gpu, c: &Config, m: &MlaConfig, tokens: usize) -> Result<MlaActivations> {
        let t = tokens.max(1) as u64;
        let h = c.num_heads;
        let first = m.q_lora_rank.unwrap_or(h * m.qk_head_dim());
        let f = |name: &str, w: usize| gpu.storage(name, t * w as u64 * 4);
        Ok(MlaActivations {
            a: f("mla latent", first + m.kv_lora_rank + m.qk_rope_head_dim)?,
            q: m.q_lora_rank.map(|_| f("mla q", h * m.qk_head_dim())).transpose()?,
            kv: f("mla kv", h * (m.qk_nope_head_dim + m.v_head_dim))?,
            out: f("mla out", h * m.v_head_dim)?,
        })
    }
}

fn norm(gpu: &Gpu, src: &dyn TensorSource, name: &str, dim: usize) -> Result<wgpu::Buffer> {
    let t = src.tensor(name)?;
    t.expect_shape(&[dim])?;
    gpu.upload(name, bytemuck::cast_slice(&t.to_f32()))
}

impl MlaAttention {
    /// Uploads the attention of layer prefix `p` (`model.layers.N.self_attn`); `stacked` stacks
    /// `[rows, cols]` tensors into one matrix (the decoder's loader).
    pub fn load(gpu: &Gpu, src: &dyn TensorSource, p: &str, c: &Config, m: &MlaConfig, stacked: impl Fn(&[(String, usize)], usize) -> Result<Matrix>) -> Result<MlaAttention> {
        let (hd, h) = (c.hidden_size, c.num_heads);
        let qk = m.qk_head_dim();
        let n = |s: &str| format!("{p}.{s}");
        let kv_a = (n("kv_a_proj_with_mqa.weight"), m.kv_lora_rank + m.qk_rope_head_dim);
        let (a, first, q_a_norm, q_b) = match m.q_lora_rank {
            Some(r) => (
                stacked(&[(n("q_a_proj.weight"), r), kv_a], hd)?,
                r,
                Some(norm(gpu, src, &n("q_a_layernorm.weight"), r)?),
                Some(stacked(&[(n("q_b_proj.weight"), h * qk)], r)?),
            ),
            None => (stacked(&[(n("q_proj.weight"), h * qk), kv_a], hd)?, h * qk, None, None),
        };
        // The scale the attention kernel applies is 1/sqrt(head_dim); the query carries the rest.
        let q_scale = (m.softmax_scale * (c.head_dim as f64).sqrt()) as f32;
        Ok(MlaAttention {
            a,
            first,
            q_a_norm,
            q_b,
            kv_a_norm: norm(gpu, src, &n("kv_a_layernorm.weight"), m.kv_lora_rank)?,
            kv_b: stacked(&[(n("kv_b_proj.weight"), h * (m.qk_nope_head_dim + m.v_head_dim))], m.kv_lora_rank)?,
            shape: Shape { heads: h, d: c.head_dim, nope: m.qk_nope_head_dim, rope: m.qk_rope_head_dim, vhd: m.v_head_dim, layout: m.rope_layout },
            kv_lora: m.kv_lora_rank,
            q_scale,
        })
    }

    pub fn bytes_on_gpu(&self) -> u64 {
        self.a.bytes_on_gpu() + self.q_b.as_ref().map_or(0, |m| m.bytes_on_gpu()) + self.kv_b.bytes_on_gpu()
    }

    /// Records the `[Q | K | V]` rows (`qkv_stride` apart) of `tokens` normed hidden rows `h`.
    #[allow(clippy::too_many_arguments)]
    pub fn record_qkv(&self, rec: &mut Recorder, h: &wgpu::Buffer, hidden: usize, tokens: usize, a: &MlaActivations, table: &RopeTable, meta: &wgpu::Buffer, qkv: &wgpu::Buffer, qkv_stride: usize) -> Result<()> {
        let s = &self.shape;
        let a_dim = self.a.rows;
        let qk = s.nope + s.rope;
        linear(rec, &self.a, None, false, &Rows { x: h, x_offset: 0, x_stride: hidden, y: &a.a, y_offset: 0, y_stride: a_dim, m: tokens })?;
        let (q, q_offset, q_stride) = match (&self.q_a_norm, &self.q_b, &a.q) {
            (Some(qn), Some(qb), Some(qbuf)) => {
                let rows = rmsnorm::Rows { buf: &a.a, offset: 0, stride: a_dim, per: 1 };
                RmsNorm { weight: qn, dim: self.first, eps: LATENT_NORM_EPS }.in_place(rec, tokens, &rows)?;
                linear(rec, qb, None, false, &Rows { x: &a.a, x_offset: 0, x_stride: a_dim, y: qbuf, y_offset: 0, y_stride: s.heads * qk, m: tokens })?;
                (qbuf, 0, s.heads * qk)
            }
            (None, None, _) => (&a.a, 0, a_dim),
            _ => anyhow::bail!("internal: MLA q LoRA buffers missing"),
        };
        let rows = rmsnorm::Rows { buf: &a.a, offset: self.first, stride: a_dim, per: 1 };
        RmsNorm { weight: &self.kv_a_norm, dim: self.kv_lora, eps: LATENT_NORM_EPS }.in_place(rec, tokens, &rows)?;
        let kv_stride = s.heads * (s.nope + s.vhd);
        linear(rec, &self.kv_b, None, false, &Rows { x: &a.a, x_offset: self.first, x_stride: a_dim, y: &a.kv, y_offset: 0, y_stride: kv_stride, m: tokens })?;
        let inputs = Inputs { q, q_offset, q_stride, kv: &a.kv, kv_stride, pe: &a.a, pe_offset: self.first + self.kv_lora, pe_stride: a_dim };
        mla::qkv(rec, s, &inputs, tokens, table, meta, self.q_scale, qkv, qkv_stride).context("MLA q/k/v")
    }

    /// The attention output as o_proj reads it: `att` itself when heads carry no padding, else
    /// the value columns copied out (`(buffer, row stride)`).
    pub fn output<'b>(&self, rec: &mut Recorder, att: &'b wgpu::Buffer, tokens: usize, a: &'b MlaActivations) -> Result<(&'b wgpu::Buffer, usize)> {
        let s = &self.shape;
        if s.d == s.vhd {
            return Ok((att, s.heads * s.d));
        }
        mla::unpad(rec, att, &a.out, tokens, s.heads, s.d, s.vhd)?;
        Ok((&a.out, s.heads * s.vhd))
    }
}
