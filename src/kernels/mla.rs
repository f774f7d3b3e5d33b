//! `shaders/mla_qkv.wgsl` and `shaders/mla_out.wgsl`: multi-head latent attention (DeepSeek)
//! around the plain attention kernel — per-head queries, keys and values built from the q
//! projection, the expanded latent and the shared rotary key (RoPE on the rotary part only), and
//! the attention output's head padding dropped before `o_proj`.

use anyhow::{bail, Result};
use bytemuck::{Pod, Zeroable};

use super::rope::RopeTable;
use super::{compile, u, Shader};
use crate::device::Recorder;
use crate::model::config::RopeLayout;

/// The uniform `Params` of `shaders/mla_qkv.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct QkvParams {
    pub tokens: u32,
    pub heads: u32,
    pub d: u32,
    pub nope: u32,
    pub rope: u32,
    pub vhd: u32,
    pub q_stride: u32,
    pub q_offset: u32,
    pub kv_stride: u32,
    pub pe_stride: u32,
    pub pe_offset: u32,
    pub out_stride: u32,
    pub layout: u32,
    pub sin_offset: u32,
    pub q_scale: f32,
    pub _pad: u32,
}

/// The head sizes of one MLA layer.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub heads: usize,
    /// The padded attention head size.
    pub d: usize,
    pub nope: usize,
    pub rope: usize,
    pub vhd: usize,
    pub layout: RopeLayout,
}

/// Where the inputs of [`qkv`] live (offsets and strides in f32 elements).
pub struct Inputs<'a> {
    /// Query rows: `heads` heads of `nope + rope`.
    pub q: &'a wgpu::Buffer,
    pub q_offset: usize,
    pub q_stride: usize,
    /// kv_b_proj rows: `heads` heads of `nope + vhd` (k_nope then v).
    pub kv: &'a wgpu::Buffer,
    pub kv_stride: usize,
    /// The shared, not yet rotated k_pe (`rope` elements) of each token.
    pub pe: &'a wgpu::Buffer,
    pub pe_offset: usize,
    pub pe_stride: usize,
}

/// Writes `tokens` rows `[Q | K | V]` (each `heads * d`, `out_stride` apart) into `out`, with the
/// query multiplied by `q_scale`, RoPE at the positions of `meta`.
#[allow(clippy::too_many_arguments)]
pub fn qkv(rec: &mut Recorder, s: &Shape, x: &Inputs, tokens: usize, table: &RopeTable, meta: &wgpu::Buffer, q_scale: f32, out: &wgpu::Buffer, out_stride: usize) -> Result<()> {
    if s.rope == 0 || !s.rope.is_multiple_of(2) || table.half * 2 != s.rope || s.d < (s.nope + s.rope).max(s.vhd) || out_stride < 3 * s.heads * s.d {
        bail!("mla_qkv: head sizes {s:?} (rope table of {} pairs, out stride {out_stride}) do not fit", table.half);
    }
    let k = compile(rec.gpu(), Shader::MlaQkv, &[])?;
    let p = QkvParams {
        tokens: u("tokens", tokens)?,
        heads: u("heads", s.heads)?,
        d: u("d", s.d)?,
        nope: u("nope", s.nope)?,
        rope: u("rope", s.rope)?,
        vhd: u("vhd", s.vhd)?,
        q_stride: u("q_stride", x.q_stride)?,
        q_offset: u("q_offset", x.q_offset)?,
        kv_stride: u("kv_stride", x.kv_stride)?,
        pe_stride: u("pe_stride", x.pe_stride)?,
        pe_offset: u("pe_offset", x.pe_offset)?,
        out_stride: u("out_stride", out_stride)?,
        layout: match s.layout {
            RopeLayout::Interleaved => 0,
            RopeLayout::InterleavedToHalves => 1,
            RopeLayout::Halves => 2,
        },
        sin_offset: u("sin_offset", table.max_pos * table.half)?,
        q_scale,
        _pad: 0,
    };
    rec.dispatch_linear(k, &p, &[x.q, x.kv, x.pe, &table.buf, meta, out], u("workgroups", (tokens * s.heads * s.d).div_ceil(64))?);
    Ok(())
}

/// The uniform `Params` of `shaders/mla_out.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct OutParams {
    pub tokens: u32,
    pub heads: u32,
    pub d: u32,
    pub vhd: u32,
}

/// out[t, h * vhd + j] = att[t, h * d + j] for `tokens` rows of `heads` heads.
pub fn unpad(rec: &mut Recorder, att: &wgpu::Buffer, out: &wgpu::Buffer, tokens: usize, heads: usize, d: usize, vhd: usize) -> Result<()> {
    if vhd > d {
        bail!("mla_out: value head {vhd} above the padded head {d}");
    }
    let k = compile(rec.gpu(), Shader::MlaOut, &[])?;
    let p = OutParams { tokens: u("tokens", tokens)?, heads: u("heads", heads)?, d: u("d", d)?, vhd: u("vhd", vhd)? };
    rec.dispatch_linear(k, &p, &[att, out], u("workgroups", (tokens * heads * vhd).div_ceil(64))?);
    Ok(())
}
