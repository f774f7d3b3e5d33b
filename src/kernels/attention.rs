//! `shaders/attention.wgsl`: causal grouped-query attention over the KV cache, tiled with an
//! online softmax over key blocks of [`KEY_BLOCK`] positions in a fixed order (see the shader).
//! On CPU adapters with subgroups (`Gpu::subgroup_x`) `shaders/attention_lanes.wgsl` runs
//! instead: one query token per invocation, the same arithmetic and bits. Blocks go in spans of
//! [`KEY_SPAN`] positions folded in order (`shaders/lib/key_spans.wgsl`), so that on a GPU a
//! decode step over a long context spreads its spans over workgroups and
//! `shaders/attention_combine.wgsl` folds them: the numbers of walking them in one.

use anyhow::{bail, Result};
use bytemuck::{Pod, Zeroable};

use super::rope::RopeTable;
use super::{compile_with, u, Shader};
use crate::device::{Gpu, Recorder};
use crate::model::decoder::LayerCache;

/// Keys per block of the online softmax (`KB` in the shader): blocks start at multiples of it.
pub const KEY_BLOCK: usize = 16;
/// Keys per span (`KS` in the shaders; a multiple of [`KEY_BLOCK`]): each span's online softmax
/// starts afresh and the spans are folded in ascending order, so a context of up to `KEY_SPAN`
/// keys is one span, and a longer one can be split over workgroups without changing a bit.
pub const KEY_SPAN: usize = 256;
/// Query tokens per workgroup (`QT`) and invocations per token (`LANES`) of the tiled kernel, by
/// the pass's [`Lanes`] layout: 8 tokens of 8 lanes for prefill; for decoding one token of 64
/// lanes, so that a workgroup never serves the tokens of several sequences one after another
/// (a decode step's consecutive tokens are different sequences). The same bits either way: the
/// kernel reads them at run time (`Params::qt`), one compiled kernel for both.
fn query_tile(layout: Lanes) -> (usize, usize) {
    match layout {
        Lanes::Tokens => (8, 8),
        Lanes::Heads => (1, 64),
    }
}
/// Most chunks a layer's cache may be split in (bindings k0..k3, v0..v3 of the shader).
pub const MAX_CHUNKS: usize = 4;

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
    pub chunk_rows: u32,
    /// With `ROPE_KV`: where the sines start in the rope table (`RopeTable::sin_offset`).
    pub sin_offset: u32,
    /// Query tokens per workgroup of the tiled kernel ([`query_tile`]); unused by the lanes one.
    pub qt: u32,
    /// 0, or key spans per (token, head) of a split pass ([`Attention::spans`]): a workgroup each.
    pub spans: u32,
    pub pad: [u32; 3],
}

/// How the kernels lay a pass out: the CPU-adapter kernel (`attention_lanes.wgsl`) its lanes, the
/// tiled one its tokens per workgroup ([`query_tile`]). Both give the same bits
/// (tests/kernels.rs); only the speed differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lanes {
    /// 8 consecutive tokens of one query head per workgroup: prefill, where they share their
    /// sequence's keys.
    Tokens,
    /// One token per workgroup, lanes over the query heads of one kv head (`HEADS`): decoding,
    /// where consecutive tokens belong to different sequences.
    Heads,
}

impl Lanes {
    /// The layout for a pass of `tokens` rows from `seqs` sequences: by tokens per sequence, below
    /// 4 (a decode step has 1) the heads layout. Never changes a number.
    pub fn for_pass(tokens: usize, seqs: usize) -> Lanes {
        if tokens < 4 * seqs.max(1) { Lanes::Heads } else { Lanes::Tokens }
    }
}

pub struct Attention {
    pub heads_q: usize,
    pub heads_kv: usize,
    pub head_dim: usize,
    /// Mistral's sliding window: a query attends to itself and the `window - 1` keys before it.
    pub window: Option<usize>,
}

impl Attention {
    /// out[t, h*d..] = softmax(q·kᵀ / sqrt(d)) · v for query rows at `q_offset + t * q_stride`,
    /// keys and values from `cache` (one or several chunks of rows). `lanes` picks the layout of
    /// the CPU adapters' kernel ([`Lanes::for_pass`]); GPUs run the tiled kernel either way.
    /// `keys`, the pass's longest context (its last position + 1, or more), only picks whether a
    /// GPU splits the key spans over workgroups ([`spans`](Self::spans)): never a number.
    #[allow(clippy::too_many_arguments)]
    pub fn record(&self, rec: &mut Recorder, q: &wgpu::Buffer, q_offset: usize, q_stride: usize, tokens: usize, lanes_layout: Lanes, keys: usize, meta: &wgpu::Buffer, cache: &LayerCache, out: &wgpu::Buffer) -> Result<()> {
        self.record_with(rec, q, q_offset, q_stride, tokens, lanes_layout, keys, meta, cache, out, None)
    }

    /// Key spans per (token, head) that a pass gives a workgroup each, or 0 to walk them in one:
    /// on GPUs (adapters without `Gpu::subgroup_x`), decode passes ([`Lanes::Heads`], one token
    /// per workgroup) whose longest context `keys` is longer than one span. Both ways give the
    /// same bits (`shaders/lib/key_spans.wgsl`); only how many workgroups share the work differs.
    pub fn spans(gpu: &Gpu, lanes: Lanes, keys: usize) -> usize {
        if !gpu.subgroup_x && lanes == Lanes::Heads && keys > KEY_SPAN { keys.div_ceil(KEY_SPAN) } else { 0 }
    }

    /// Whether [`record_rotating`](Self::record_rotating) can run this pass: a CPU adapter's heads
    /// layout, one token per sequence (`tokens == seqs`: a decode step, where each token's key is
    /// read only by its own workgroup), a cache in one chunk, and heads of whole quad pairs.
    pub fn rotates_keys(&self, gpu: &Gpu, lanes: Lanes, tokens: usize, seqs: usize, cache: &LayerCache, table: &RopeTable) -> bool {
        gpu.subgroup_x && lanes == Lanes::Heads && tokens == seqs && cache.k.len() == 1 && cache.v.len() == 1 && self.head_dim % 8 == 0 && 2 * table.half == self.head_dim
    }

    /// [`record`](Self::record) for q/k/v rows straight from the projection (q heads, then the
    /// key heads, then the value heads, as [`rope_kv`](super::rope::rope_kv) reads them): the
    /// kernel rotates the queries and keys and stores each token's key and value row in the
    /// cache itself, the same numbers as `rope_kv` then `record`, one dispatch fewer per layer.
    /// Only where [`rotates_keys`](Self::rotates_keys).
    #[allow(clippy::too_many_arguments)]
    pub fn record_rotating(&self, rec: &mut Recorder, qkv: &wgpu::Buffer, qkv_stride: usize, tokens: usize, meta: &wgpu::Buffer, cache: &LayerCache, table: &RopeTable, out: &wgpu::Buffer) -> Result<()> {
        if !self.rotates_keys(rec.gpu(), Lanes::Heads, tokens, tokens, cache, table) {
            bail!("internal: attention cannot rotate the keys of this pass");
        }
        self.record_with(rec, qkv, 0, qkv_stride, tokens, Lanes::Heads, 0, meta, cache, out, Some(table))
    }

    #[allow(clippy::too_many_arguments)]
    fn record_with(&self, rec: &mut Recorder, q: &wgpu::Buffer, q_offset: usize, q_stride: usize, tokens: usize, lanes_layout: Lanes, keys: usize, meta: &wgpu::Buffer, cache: &LayerCache, out: &wgpu::Buffer, rope: Option<&RopeTable>) -> Result<()> {
        if self.head_dim > 256 || self.head_dim % 4 != 0 || self.heads_kv == 0 || self.heads_q % self.heads_kv != 0 {
            bail!("attention: head_dim {} (a multiple of 4, at most 256) / heads {} over kv heads {}", self.head_dim, self.heads_q, self.heads_kv);
        }
        if q_offset % 4 != 0 || q_stride % 4 != 0 {
            bail!("attention: query rows must start on multiples of 4 floats");
        }
        let chunks = cache.k.len();
        if chunks == 0 || chunks != cache.v.len() || chunks > MAX_CHUNKS {
            bail!("attention: the KV cache has {chunks} chunks of keys and {} of values (1 to {MAX_CHUNKS} expected)", cache.v.len());
        }
        if tokens == 0 {
            return Ok(());
        }
        let gpu = rec.gpu();
        let lanes = gpu.subgroup_x;
        let (qt, tile_lanes) = query_tile(lanes_layout);
        let shared = (KEY_BLOCK * self.head_dim + qt * KEY_BLOCK + qt * 4 + 4) * 4;
        if !lanes && shared as u64 > gpu.limits.max_compute_workgroup_storage_size as u64 {
            bail!(
                "attention: head_dim {} needs {shared} bytes of workgroup memory, above the adapter's {}",
                self.head_dim,
                gpu.limits.max_compute_workgroup_storage_size
            );
        }
        let chunked = chunks > 1;
        if chunked && gpu.limits.max_storage_buffers_per_shader_stage < 11 {
            bail!(
                "attention: a KV cache in {chunks} chunks needs 11 storage buffers per shader stage, the adapter allows {}: lower --batch-size or the context length",
                gpu.limits.max_storage_buffers_per_shader_stage
            );
        }
        let heads = lanes && lanes_layout == Lanes::Heads;
        let mut defines = Vec::new();
        if chunked {
            defines.push("CHUNKED");
        }
        if heads {
            defines.push("HEADS");
        }
        if rope.is_some() {
            defines.push("ROPE_KV");
        }
        let shader = if lanes { Shader::AttentionLanes } else { Shader::Attention };
        let consts = [("D4", u("D4", self.head_dim / 4)?), ("KS", KEY_SPAN as u32)];
        let k = compile_with(gpu, shader, &defines, &consts)?;
        let spans = Self::spans(gpu, lanes_layout, keys);
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
            chunk_rows: u("chunk_rows", cache.chunk_rows)?,
            sin_offset: rope.map_or(Ok(0), |t| u("sin_offset", t.max_pos * t.half))?,
            qt: u("qt", qt)?,
            spans: u("spans", spans)?,
            pad: [0; 3],
        };
        // Split: each span's state (acc, then m and l: head_dim / 4 + 1 vec4) into scratch.
        let part = if spans > 0 { Some(rec.scratch((tokens * self.heads_q * spans * (self.head_dim / 4 + 1) * 16) as u64)?) } else { None };
        let mut bufs: Vec<&wgpu::Buffer> = vec![q, &cache.k[0], &cache.v[0], meta, part.as_ref().unwrap_or(out)];
        if let Some(t) = rope {
            bufs.push(&t.buf);
        }
        if chunked {
            for c in 1..MAX_CHUNKS {
                let c = c.min(chunks - 1);
                bufs.extend([&cache.k[c], &cache.v[c]]);
            }
        }
        // attention_lanes.wgsl: 8 tokens of one head per workgroup, or with HEADS one token and up
        // to 8 query heads of one kv head; the tiled kernel: `qt` tokens of one head.
        let groups = if heads {
            tokens * self.heads_kv * (self.heads_q / self.heads_kv).div_ceil(8)
        } else if lanes {
            tokens.div_ceil(8) * self.heads_q
        } else {
            tokens.div_ceil(qt) * self.heads_q
        };
        debug_assert_eq!(qt * tile_lanes, 64);
        rec.dispatch_linear(k, &p, &bufs, u("workgroups", groups * spans.max(1))?);
        if let Some(part) = &part {
            super::attention_combine::combine(rec, part, out, p.out_stride, tokens, self.heads_q, self.head_dim, spans, &consts)?;
        }
        Ok(())
    }
}
