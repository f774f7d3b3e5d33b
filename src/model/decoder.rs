//! The decoder shared by Llama, Mistral, Qwen2, Qwen3, their MoE variants and DeepSeek-V2/V3
//! (multi-head latent attention: [`mla`](super::mla)), read top to bottom
//! like the diagram: embed → N × [RMSNorm → attention (fused q/k/v, q/k norm, RoPE, KV cache,
//! GQA) → + residual → RMSNorm → MLP (dense SwiGLU, or sparse: see [`moe`](super::moe)) → plus
//! residual] → final RMSNorm → LM head → log-softmax.
//! The architectures differ only in config switches (biases, q/k norm, windows, tied head, which
//! layers are sparse).

use anyhow::{bail, Context, Result};

use super::config::Config;
use super::expert_cache::ExpertCache;
use super::mla::{MlaActivations, MlaAttention};
use super::moe::{MoeActivations, SparseMlp};
use super::plan::ExpertsOn;
use super::split::LoadOptions;
use super::weights::{TensorRef, TensorSource};
use crate::device::{Gpu, Recorder};
use crate::kernels::attention::{Attention, Lanes};
use crate::kernels::linear::{linear, Path, Rows};
use crate::kernels::rmsnorm::{self, RmsNorm};
use crate::kernels::rope::{rope, rope_kv, KvColumns, RopeTable};
use crate::kernels::{embedding, kv_write, log_softmax, logprobs, matvec, swiglu};
use crate::tensor::Matrix;

pub struct Layer {
    input_norm: wgpu::Buffer,
    /// q, k and v projections stacked: `[q_dim + 2 * kv_dim, hidden]` (no rows with MLA).
    qkv: Matrix,
    /// Multi-head latent attention (DeepSeek), which builds the q/k/v rows instead of `qkv`.
    mla: Option<MlaAttention>,
    qkv_bias: Option<wgpu::Buffer>,
    q_norm: Option<wgpu::Buffer>,
    k_norm: Option<wgpu::Buffer>,
    o: Matrix,
    o_bias: Option<wgpu::Buffer>,
    post_norm: wgpu::Buffer,
    mlp: Mlp,
    attention: Attention,
}

/// A layer's MLP: dense SwiGLU, or a mixture of experts.
pub enum Mlp {
    Dense {
        /// gate and up projections stacked: `[2 * intermediate, hidden]`.
        gate_up: Matrix,
        down: Matrix,
    },
    Sparse(SparseMlp),
}

pub struct Decoder {
    pub cfg: Config,
    /// `None` on the devices after the first of a split model.
    embed: Option<Matrix>,
    /// Layers `first_layer ..` of the model (all of them unless split across devices).
    layers: Vec<Layer>,
    first_layer: usize,
    /// The final norm; `None` on the devices before the last of a split model.
    norm: Option<wgpu::Buffer>,
    /// `None` when tied to the embedding (on one device; split, the last device holds a copy).
    lm_head: Option<Matrix>,
    rope: RopeTable,
    /// The GPU cache of host-resident routed experts (`--experts-on host`).
    pub expert_cache: Option<std::sync::Arc<ExpertCache>>,
}

/// The working buffers of one pass over `tokens` rows (f32 unless noted).
pub struct Activations {
    pub tokens: usize,
    pub ids: wgpu::Buffer,
    /// Per token `[position, cache row of position 0]` (u32).
    pub meta: wgpu::Buffer,
    x: wgpu::Buffer,
    h: wgpu::Buffer,
    qkv: wgpu::Buffer,
    att: wgpu::Buffer,
    gu: wgpu::Buffer,
    act: wgpu::Buffer,
    /// Buffers of the sparse layers (MoE models only).
    moe: Option<MoeActivations>,
    /// Buffers of multi-head latent attention (DeepSeek only).
    mla: Option<MlaActivations>,
}

/// The KV cache of one layer: keys and values, `[rows, kv_dim]` each, split in chunks of
/// `chunk_rows` rows (one buffer per chunk; see `engine::kv_cache`).
pub struct LayerCache<'a> {
    pub k: &'a [wgpu::Buffer],
    pub v: &'a [wgpu::Buffer],
    pub chunk_rows: usize,
}

fn norm_buf(gpu: &Gpu, src: &dyn TensorSource, name: &str, dim: usize) -> Result<wgpu::Buffer> {
    let t = src.tensor(name)?;
    t.expect_shape(&[dim])?;
    gpu.upload(name, bytemuck::cast_slice(&t.to_f32()))
}

/// Stacks the rows of several `[rows_i, cols]` tensors into one matrix: concatenated when they
/// share a format, else as chunks of different formats.
fn stacked(gpu: &Gpu, src: &dyn TensorSource, parts: &[(String, usize)], cols: usize) -> Result<Matrix> {
    let tensors: Vec<TensorRef> = parts.iter().map(|(n, _)| src.tensor(n)).collect::<Result<_>>()?;
    for (t, (_, rows)) in tensors.iter().zip(parts) {
        t.expect_shape(&[*rows, cols])?;
    }
    let name = &parts[0].0;
    let dtype = tensors[0].dtype;
    if tensors.len() > 1 && tensors.iter().all(|t| t.dtype == dtype) {
        let rows: usize = parts.iter().map(|p| p.1).sum();
        let bytes: Vec<u8> = tensors.iter().flat_map(|t| t.bytes.iter().copied()).collect();
        return Matrix::upload(gpu, name, dtype, rows, cols, &bytes);
    }
    let mut m = Matrix { rows: 0, cols, chunks: Vec::new() };
    for (t, (n, rows)) in tensors.iter().zip(parts) {
        m.append(gpu, n, t.dtype, *rows, &t.bytes)?;
    }
    Ok(m)
}

fn bias(gpu: &Gpu, src: &dyn TensorSource, names: &[(String, usize)]) -> Result<wgpu::Buffer> {
    let mut v = Vec::new();
    for (n, len) in names {
        let t = src.tensor(n)?;
        t.expect_shape(&[*len])?;
        v.extend(t.to_f32());
    }
    gpu.upload(&names[0].0, bytemuck::cast_slice(&v))
}

impl Activations {
    /// The hidden states `[tokens, hidden]` (f32) between layers: what one device of a split
    /// model hands to the next.
    pub fn hidden(&self) -> &wgpu::Buffer {
        &self.x
    }
}

impl Decoder {
    /// Uploads every weight, checking names, shapes and dtypes against `cfg`.
    pub fn load(gpu: &Gpu, cfg: Config, src: &dyn TensorSource) -> Result<Decoder> {
        let opts = LoadOptions::whole(&cfg);
        Decoder::load_with(gpu, cfg, src, &opts)
    }

    /// Uploads the slice of the model `opts` names (layers, embedding, head) and keeps the
    /// routed experts where `opts` says.
    pub fn load_with(gpu: &Gpu, cfg: Config, src: &dyn TensorSource, opts: &LoadOptions) -> Result<Decoder> {
        cfg.validate()?;
        if opts.layers.end > cfg.num_layers || opts.layers.is_empty() {
            bail!("internal: layer slice {:?} of a {}-layer model", opts.layers, cfg.num_layers);
        }
        // DeepSeek-V3 checkpoints carry their multi-token-prediction layer after the last one
        // (transformers ignores it too).
        let mtp = |l: usize| cfg.mla.is_some() && src.contains(&format!("model.layers.{l}.eh_proj.weight"));
        if src.contains(&format!("model.layers.{}.input_layernorm.weight", cfg.num_layers)) && !mtp(cfg.num_layers) {
            bail!("weights hold more layers than the {} the config states (num_hidden_layers / block_count)", cfg.num_layers);
        }
        let (h, q, kv, inter) = (cfg.hidden_size, cfg.q_dim(), cfg.kv_dim(), cfg.intermediate_size);
        let embed = if opts.embedding { Some(stacked(gpu, src, &[("model.embed_tokens.weight".into(), cfg.vocab_size)], h)?) } else { None };
        let expert_cache = match (&cfg.moe, opts.experts_on) {
            // A slice without sparse layers (DeepSeek's dense leading layers on the first device
            // of a split) has no experts to cache, and allocates no slots (as the memory plan says).
            (Some(m), ExpertsOn::Host) if !opts.layers.clone().any(|l| m.sparse_layers[l]) => None,
            (Some(m), ExpertsOn::Host) => Some(std::sync::Arc::new(ExpertCache::new(gpu, &cfg, m, src, opts)?)),
            (None, ExpertsOn::Host) => bail!("--experts-on host: the model has no routed experts"),
            _ => None,
        };
        let mut layers = Vec::with_capacity(opts.layers.len());
        for l in opts.layers.clone() {
            let p = |s: &str| format!("model.layers.{l}.{s}");
            let qkv_parts = [(p("self_attn.q_proj.weight"), q), (p("self_attn.k_proj.weight"), kv), (p("self_attn.v_proj.weight"), kv)];
            let mla = match &cfg.mla {
                Some(m) => Some(MlaAttention::load(gpu, src, &p("self_attn"), &cfg, m, |parts, cols| stacked(gpu, src, parts, cols))?),
                None => None,
            };
            // o_proj reads the attention output: heads * v_head_dim columns with MLA.
            let o_cols = cfg.mla.as_ref().map_or(q, |m| cfg.num_heads * m.v_head_dim);
            let qkv_bias = if cfg.qkv_bias {
                Some(bias(gpu, src, &[(p("self_attn.q_proj.bias"), q), (p("self_attn.k_proj.bias"), kv), (p("self_attn.v_proj.bias"), kv)])?)
            } else {
                None
            };
            let (q_norm, k_norm) = if cfg.qk_norm {
                (Some(norm_buf(gpu, src, &p("self_attn.q_norm.weight"), cfg.head_dim)?), Some(norm_buf(gpu, src, &p("self_attn.k_norm.weight"), cfg.head_dim)?))
            } else {
                (None, None)
            };
            layers.push(Layer {
                input_norm: norm_buf(gpu, src, &p("input_layernorm.weight"), h)?,
                qkv: if mla.is_some() { Matrix { rows: 0, cols: h, chunks: Vec::new() } } else { stacked(gpu, src, &qkv_parts, h)? },
                mla,
                qkv_bias,
                q_norm,
                k_norm,
                o: stacked(gpu, src, &[(p("self_attn.o_proj.weight"), h)], o_cols)?,
                o_bias: if cfg.o_bias { Some(bias(gpu, src, &[(p("self_attn.o_proj.bias"), h)])?) } else { None },
                post_norm: norm_buf(gpu, src, &p("post_attention_layernorm.weight"), h)?,
                mlp: match &cfg.moe {
                    Some(m) if m.sparse_layers[l] => Mlp::Sparse(SparseMlp::load(gpu, src, &p("mlp"), m, h, |parts, cols| stacked(gpu, src, parts, cols), expert_cache.as_ref().map(|c| (c, l)))?),
                    _ => Mlp::Dense {
                        gate_up: stacked(gpu, src, &[(p("mlp.gate_proj.weight"), inter), (p("mlp.up_proj.weight"), inter)], h)?,
                        down: stacked(gpu, src, &[(p("mlp.down_proj.weight"), h)], inter)?,
                    },
                },
                attention: Attention { heads_q: cfg.num_heads, heads_kv: cfg.num_kv_heads, head_dim: cfg.head_dim, window: cfg.layer_windows[l] },
            });
        }
        let (norm, lm_head) = if opts.head {
            let norm = norm_buf(gpu, src, "model.norm.weight", h)?;
            let lm_head = if src.contains("lm_head.weight") && !cfg.tie_word_embeddings {
                Some(stacked(gpu, src, &[("lm_head.weight".into(), cfg.vocab_size)], h)?)
            } else if cfg.tie_word_embeddings {
                // Tied: the head reads the embedding, which a later device of a split lacks.
                if embed.is_none() {
                    Some(stacked(gpu, src, &[("model.embed_tokens.weight".into(), cfg.vocab_size)], h)?)
                } else {
                    None
                }
            } else {
                bail!("weights: no tensor named lm_head.weight, and config.json has tie_word_embeddings false");
            };
            (Some(norm), lm_head)
        } else {
            (None, None)
        };
        let rope = RopeTable::scaled(gpu, &cfg.inv_freq(), cfg.max_position_embeddings, cfg.rope_attention_factor())?;
        gpu.check("uploading weights")?;
        Ok(Decoder { cfg, embed, layers, first_layer: opts.layers.start, norm, lm_head, rope, expert_cache })
    }

    /// Bytes of weights held on the GPU.
    pub fn weight_bytes(&self) -> u64 {
        let mut n = self.embed.as_ref().map_or(0, |m| m.bytes_on_gpu()) + self.lm_head.as_ref().map_or(0, |m| m.bytes_on_gpu());
        for l in &self.layers {
            n += l.qkv.bytes_on_gpu() + l.o.bytes_on_gpu() + l.mla.as_ref().map_or(0, |m| m.bytes_on_gpu());
            n += match &l.mlp {
                Mlp::Dense { gate_up, down } => gate_up.bytes_on_gpu() + down.bytes_on_gpu(),
                Mlp::Sparse(s) => s.bytes_on_gpu(),
            };
        }
        n
    }

    fn lm_head(&self) -> Result<&Matrix> {
        self.lm_head.as_ref().or(self.embed.as_ref()).context("internal: this slice of the model holds no LM head")
    }

    fn final_norm(&self) -> Result<&wgpu::Buffer> {
        self.norm.as_ref().context("internal: this slice of the model holds no final norm")
    }

    /// Layers held here (all of them unless the model is split across devices).
    pub fn layer_range(&self) -> std::ops::Range<usize> {
        self.first_layer..self.first_layer + self.layers.len()
    }

    pub fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    /// Working buffers for passes of up to `tokens` rows.
    pub fn activations(&self, gpu: &Gpu, tokens: usize) -> Result<Activations> {
        let c = &self.cfg;
        let t = tokens.max(1) as u64;
        let f = |name: &str, width: usize| gpu.storage(name, t * width as u64 * 4);
        // A model whose layers are all sparse needs no dense MLP buffers.
        let all_sparse = c.moe.as_ref().is_some_and(|m| m.sparse_layers.iter().all(|&s| s));
        let dense_inter = if all_sparse { 1 } else { c.intermediate_size };
        Ok(Activations {
            tokens,
            ids: f("ids", 1)?,
            meta: f("token meta", 2)?,
            x: f("hidden", c.hidden_size)?,
            h: f("normed", c.hidden_size)?,
            qkv: f("qkv", c.q_dim() + 2 * c.kv_dim())?,
            att: f("attention out", c.q_dim())?,
            gu: f("gate_up", 2 * dense_inter)?,
            act: f("mlp act", dense_inter)?,
            moe: match &c.moe {
                Some(m) if m.sparse_layers.iter().any(|&s| s) => Some(MoeActivations::new(gpu, m, c.hidden_size, t as usize)?),
                _ => None,
            },
            mla: c.mla.as_ref().map(|m| MlaActivations::new(gpu, c, m, t as usize)).transpose()?,
        })
    }

    /// Records embedding and every layer for `tokens` rows of `a` (ids and meta already written)
    /// from `seqs` sequences, writing keys and values into `cache`. The final hidden states stay
    /// in `a`. `seqs` and `keys` (the longest context a token of the pass attends to: its
    /// position + 1) only pick kernel layouts that give the same bits.
    pub fn record_layers(&self, rec: &mut Recorder, a: &Activations, tokens: usize, seqs: usize, keys: usize, cache: &[LayerCache]) -> Result<()> {
        let lanes = Lanes::for_pass(tokens, seqs);
        let c = &self.cfg;
        let (hd, q_dim, kv_dim) = (c.hidden_size, c.q_dim(), c.kv_dim());
        let qkv_dim = q_dim + 2 * kv_dim;
        let eps = c.rms_norm_eps as f32;
        if let Some(embed) = &self.embed {
            embedding::embedding(rec, embed, &a.ids, tokens, &a.x)?;
        }
        let hidden = rmsnorm::Rows { buf: &a.x, offset: 0, stride: hd, per: 1 };
        for (layer, lc) in self.layers.iter().zip(cache) {
            // Attention block. Decoding one sequence on a CPU adapter, the q/k/v projection
            // normalises the hidden row itself (the same bits, one dispatch fewer).
            let is_mla = matches!((&layer.mla, &a.mla), (Some(_), Some(_)));
            let xin = Rows { x: &a.x, x_offset: 0, x_stride: hd, y: &a.qkv, y_offset: 0, y_stride: qkv_dim, m: tokens };
            let input_norm = matvec::Norm { weight: &layer.input_norm, eps };
            let qkv_done = !is_mla && matvec::record_normed(rec, &layer.qkv, layer.qkv_bias.as_ref(), false, &xin, &input_norm)?;
            if !qkv_done {
                RmsNorm { weight: &layer.input_norm, dim: hd, eps }.to(rec, tokens, &hidden, &a.h, hd, None)?;
            }
            if let (Some(mla), Some(ma)) = (&layer.mla, &a.mla) {
                // MLA builds the rotated, padded q/k/v rows itself (see model::mla).
                mla.record_qkv(rec, &a.h, hd, tokens, ma, &self.rope, &a.meta, &a.qkv, qkv_dim)?;
                kv_write::kv_write(rec, &a.qkv, qkv_dim, q_dim, q_dim + kv_dim, kv_dim, tokens, &a.meta, lc)?;
                layer.attention.record(rec, &a.qkv, 0, qkv_dim, tokens, lanes, keys, &a.meta, lc, &a.att)?;
            } else {
                if !qkv_done {
                    let rows = Rows { x: &a.h, x_offset: 0, x_stride: hd, y: &a.qkv, y_offset: 0, y_stride: qkv_dim, m: tokens };
                    linear(rec, &layer.qkv, layer.qkv_bias.as_ref(), false, &rows)?;
                }
                if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                    let qr = rmsnorm::Rows { buf: &a.qkv, offset: 0, stride: qkv_dim, per: c.num_heads };
                    RmsNorm { weight: qn, dim: c.head_dim, eps }.in_place(rec, tokens * c.num_heads, &qr)?;
                    let kr = rmsnorm::Rows { buf: &a.qkv, offset: q_dim, stride: qkv_dim, per: c.num_kv_heads };
                    RmsNorm { weight: kn, dim: c.head_dim, eps }.in_place(rec, tokens * c.num_kv_heads, &kr)?;
                }
                // A decode step on a CPU adapter: attention rotates q and k and stores the keys
                // and values itself (the same numbers, one dispatch fewer).
                if layer.attention.rotates_keys(rec.gpu(), lanes, tokens, seqs, lc, &self.rope) {
                    layer.attention.record_rotating(rec, &a.qkv, qkv_dim, tokens, &a.meta, lc, &self.rope, &a.att)?;
                } else {
                    // q heads and k heads sit next to each other in the qkv row: rotate them
                    // together, and store the keys and values in the cache in the same dispatch
                    // where it can.
                    let kv = KvColumns { k_from: c.num_heads, v_offset: q_dim + kv_dim, kv_dim };
                    if !rope_kv(rec, &a.qkv, qkv_dim, tokens, c.num_heads + c.num_kv_heads, &kv, &self.rope, &a.meta, lc)? {
                        rope(rec, &a.qkv, 0, qkv_dim, tokens, c.num_heads + c.num_kv_heads, &self.rope, &a.meta)?;
                        kv_write::kv_write(rec, &a.qkv, qkv_dim, q_dim, q_dim + kv_dim, kv_dim, tokens, &a.meta, lc)?;
                    }
                    layer.attention.record(rec, &a.qkv, 0, qkv_dim, tokens, lanes, keys, &a.meta, lc, &a.att)?;
                }
            }
            // MLA: o_proj reads the value columns of the padded heads.
            let (att, att_stride) = match (&layer.mla, &a.mla) {
                (Some(mla), Some(ma)) => mla.output(rec, &a.att, tokens, ma)?,
                _ => (&a.att, q_dim),
            };
            let rows = Rows { x: att, x_offset: 0, x_stride: att_stride, y: &a.x, y_offset: 0, y_stride: hd, m: tokens };
            linear(rec, &layer.o, layer.o_bias.as_ref(), true, &rows)?;
            // MLP block. Decoding one sequence on a CPU adapter, the gate/up projection
            // normalises the hidden row itself, as q/k/v's above.
            let gate_up_done = match &layer.mlp {
                Mlp::Dense { gate_up, .. } => {
                    let xin = Rows { x: &a.x, x_offset: 0, x_stride: hd, y: &a.act, y_offset: 0, y_stride: c.intermediate_size, m: tokens };
                    matvec::record_swiglu_normed(rec, gate_up, c.intermediate_size, &xin, &matvec::Norm { weight: &layer.post_norm, eps })?
                }
                Mlp::Sparse(_) => false,
            };
            if !gate_up_done {
                RmsNorm { weight: &layer.post_norm, dim: hd, eps }.to(rec, tokens, &hidden, &a.h, hd, None)?;
            }
            match &layer.mlp {
                Mlp::Dense { gate_up, down } => {
                    // Decode: projections and SwiGLU in one dispatch (the same bits).
                    let fused = Rows { x: &a.h, x_offset: 0, x_stride: hd, y: &a.act, y_offset: 0, y_stride: c.intermediate_size, m: tokens };
                    if !gate_up_done && (Path::for_rows(rec.gpu(), tokens, gate_up) != Path::Vector || !matvec::record_swiglu(rec, gate_up, c.intermediate_size, &fused)?) {
                        let rows = Rows { x: &a.h, x_offset: 0, x_stride: hd, y: &a.gu, y_offset: 0, y_stride: 2 * c.intermediate_size, m: tokens };
                        linear(rec, gate_up, None, false, &rows)?;
                        swiglu::swiglu(rec, &a.gu, &a.act, tokens, c.intermediate_size)?;
                    }
                    let rows = Rows { x: &a.act, x_offset: 0, x_stride: c.intermediate_size, y: &a.x, y_offset: 0, y_stride: hd, m: tokens };
                    linear(rec, down, None, true, &rows)?;
                }
                Mlp::Sparse(s) => {
                    let Some(m) = &a.moe else { bail!("internal: no MoE buffers for a sparse layer") };
                    s.record(rec, &a.h, &a.x, hd, tokens, m)?;
                }
            }
        }
        Ok(())
    }

    /// Rows of logits held at once by [`record_head`](Self::record_head).
    pub fn head_chunk_rows(&self, gpu: &Gpu) -> usize {
        let budget = gpu.max_binding.min(64 << 20);
        ((budget / (self.cfg.vocab_size as u64 * 4)) as usize).max(1)
    }

    /// Records final norm → LM head → log-softmax for the hidden rows listed in `gather`
    /// (`rows` of them), scoring `targets[r]`; results land in `out` (see `kernels::logprobs`).
    #[allow(clippy::too_many_arguments)]
    pub fn record_head(&self, rec: &mut Recorder, a: &Activations, rows: usize, gather: &wgpu::Buffer, targets: &wgpu::Buffer, topk: usize, head: &HeadBuffers) -> Result<()> {
        let c = &self.cfg;
        let hd = c.hidden_size;
        let hidden = rmsnorm::Rows { buf: &a.x, offset: 0, stride: hd, per: 1 };
        RmsNorm { weight: self.final_norm()?, dim: hd, eps: c.rms_norm_eps as f32 }.to(rec, rows, &hidden, &head.normed, hd, Some(gather))?;
        let chunk = head.chunk_rows;
        let mut r0 = 0;
        while r0 < rows {
            let n = chunk.min(rows - r0);
            let lr = Rows { x: &head.normed, x_offset: r0 * hd, x_stride: hd, y: &head.logits, y_offset: 0, y_stride: c.vocab_size, m: n };
            linear(rec, self.lm_head()?, None, false, &lr)?;
            logprobs::logprobs(rec, &head.logits, n, c.vocab_size, targets, r0, topk, &head.out)?;
            r0 += n;
        }
        Ok(())
    }

    /// Whole log-softmax rows for the hidden rows listed in `gather` (`rows` of them), read back
    /// chunk by chunk. Only for explicit requests of full rows (conformance dumps): everything
    /// else reads back a few numbers per position.
    pub fn full_rows(&self, gpu: &Gpu, a: &Activations, rows: usize, gather: &wgpu::Buffer, head: &HeadBuffers, out: &mut Vec<Vec<f32>>) -> Result<()> {
        let c = &self.cfg;
        let (hd, v) = (c.hidden_size, c.vocab_size);
        let mut rec = gpu.recorder();
        let hidden = rmsnorm::Rows { buf: &a.x, offset: 0, stride: hd, per: 1 };
        RmsNorm { weight: self.final_norm()?, dim: hd, eps: c.rms_norm_eps as f32 }.to(&mut rec, rows, &hidden, &head.normed, hd, Some(gather))?;
        rec.submit("final norm for full rows")?;
        let mut r0 = 0;
        while r0 < rows {
            let n = head.chunk_rows.min(rows - r0);
            let mut rec = gpu.recorder();
            let lr = Rows { x: &head.normed, x_offset: r0 * hd, x_stride: hd, y: &head.logits, y_offset: 0, y_stride: v, m: n };
            linear(&mut rec, self.lm_head()?, None, false, &lr)?;
            log_softmax::log_softmax(&mut rec, &head.logits, n, v)?;
            rec.submit("full log-softmax rows")?;
            let flat = gpu.read_f32(&head.logits, 0, n * v)?;
            out.extend(flat.chunks(v).map(|r| r.to_vec()));
            r0 += n;
        }
        Ok(())
    }

    /// Buffers for scoring up to `rows` positions at once.
    pub fn head_buffers(&self, gpu: &Gpu, rows: usize) -> Result<HeadBuffers> {
        let rows = rows.max(1);
        let chunk_rows = self.head_chunk_rows(gpu).min(rows);
        Ok(HeadBuffers {
            rows,
            chunk_rows,
            normed: gpu.storage("final norm", (rows * self.cfg.hidden_size * 4) as u64)?,
            logits: gpu.storage("logits", (chunk_rows * self.cfg.vocab_size * 4) as u64).context("allocating the logits chunk")?,
            out: gpu.storage("scores", (rows * logprobs::OUT_STRIDE * 4) as u64)?,
        })
    }
}

/// Buffers of the final step: gathered normed rows, one chunk of logits, and the per-row scores.
pub struct HeadBuffers {
    pub rows: usize,
    pub chunk_rows: usize,
    normed: wgpu::Buffer,
    logits: wgpu::Buffer,
    pub out: wgpu::Buffer,
}
