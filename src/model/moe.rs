//! The sparse (mixture-of-experts) MLP of Qwen2-MoE, Qwen3-MoE and DeepSeek-V2/V3, read top to bottom:
//! router linear → softmax + top-k (GPU) → per-expert token lists (GPU) → each expert's
//! gate/up matmul over its gathered rows → SwiGLU → down matmul → combine: each token's expert
//! outputs times their weights summed in ascending expert id, plus the sigmoid-gated shared
//! expert (Qwen2-MoE), added onto the residual. No host round trip: the whole layer is recorded
//! into the pass's one submission.
//!
//! Reproducible by construction: every expert row is a matmul row whose value depends only on
//! that row and the weights, and the combine sums each token's experts in one fixed order, so a
//! token's result does not depend on the batch it shares a pass with.

use std::borrow::Cow;
use std::sync::Arc;

use anyhow::{bail, Result};

use super::config::{MoeConfig, Router};
use super::expert_cache::ExpertCache;
use super::weights::{TensorRef, TensorSource};
use crate::device::{Gpu, Recorder};
use crate::kernels::expert_matmul::{self, Experts, Gathered};
use crate::kernels::linear::{linear, Rows};
use crate::kernels::moe_combine::{self, Shared};
use crate::kernels::{moe_gather, moe_route, swiglu};
use crate::tensor::{DType, Matrix};

/// The shared expert of Qwen2-MoE: a dense SwiGLU MLP whose output is scaled by
/// `sigmoid(shared_expert_gate · x)` (the gate is the router matrix's last row).
pub struct SharedExpert {
    gate_up: Matrix,
    down: Matrix,
    inter: usize,
}

pub struct SparseMlp {
    /// The router `[experts, hidden]`, with the shared expert's gate row appended when there is one.
    router: Matrix,
    gate_up: Experts,
    down: Experts,
    shared: Option<SharedExpert>,
    experts: usize,
    top_k: usize,
    norm_topk_prob: bool,
    inter: usize,
    /// Scoring, groups and scaling of the router (Qwen: plain softmax).
    route: Router,
    /// DeepSeek-V3's `e_score_correction_bias` (f32), added to the scores for choosing only.
    correction_bias: Option<wgpu::Buffer>,
    /// With `--experts-on host`: the cache holding this layer's experts, and the layer index
    /// (`gate_up` and `down` are then empty).
    host: Option<(Arc<ExpertCache>, usize)>,
}

/// The working buffers of the sparse layers for passes of up to `tokens` rows.
pub struct MoeActivations {
    logits: wgpu::Buffer,
    ids: wgpu::Buffer,
    weights: wgpu::Buffer,
    counts: wgpu::Buffer,
    lists: wgpu::Buffer,
    gu: wgpu::Buffer,
    act: wgpu::Buffer,
    out: wgpu::Buffer,
    shared_gu: Option<wgpu::Buffer>,
    shared_act: Option<wgpu::Buffer>,
    shared_out: Option<wgpu::Buffer>,
}

impl MoeActivations {
    pub fn new(gpu: &Gpu, m: &MoeConfig, hidden: usize, tokens: usize) -> Result<MoeActivations> {
        let t = tokens.max(1) as u64;
        let (e, k, i) = (m.num_experts as u64, m.top_k as u64, m.expert_intermediate as u64);
        let f = |name: &str, n: u64| gpu.storage(name, n * 4);
        let shared = |name: &str, w: usize| m.shared_intermediate.map(|s| f(name, t * (w.max(1) * s) as u64)).transpose();
        Ok(MoeActivations {
            logits: f("router logits", t * (e + 1))?,
            ids: f("expert ids", t * k)?,
            weights: f("expert weights", t * k)?,
            counts: f("expert counts", e)?,
            lists: f("expert lists", e * t)?,
            gu: f("expert gate_up", t * k * 2 * i)?,
            act: f("expert act", t * k * i)?,
            out: f("expert out", t * k * hidden as u64)?,
            shared_gu: shared("shared gate_up", 2)?,
            shared_act: shared("shared act", 1)?,
            shared_out: m.shared_intermediate.map(|_| f("shared out", t * hidden as u64)).transpose()?,
        })
    }
}

/// The routed experts' `[2 * inter, hidden]` gate/up and `[hidden, inter]` down banks, from
/// per-expert tensors (`experts.{e}.{gate,up,down}_proj.weight`, as published), from the fused
/// `experts.gate_up_proj` / `experts.down_proj` tensors transformers 5 holds in memory, or from
/// stacked `experts.{gate,up,down}_proj.weight` `[n, rows, cols]` (GGUF's `ffn_*_exps`).
fn expert_banks(gpu: &Gpu, src: &dyn TensorSource, p: &str, n: usize, hidden: usize, inter: usize) -> Result<(Experts, Experts)> {
    let mut gate_up = Experts::new(2 * inter, hidden);
    let mut down = Experts::new(hidden, inter);
    let b = expert_bank_bytes(src, p, n, hidden, inter)?;
    gate_up.push(gpu, &b.gate_up_name, b.gate_up_dtype, n, &b.gate_up)?;
    down.push(gpu, &b.down_name, b.down_dtype, n, &b.down)?;
    Ok((gate_up, down))
}

/// The bytes of a layer's routed experts, stacked expert after expert (gate rows then up rows).
struct BankBytes<'a> {
    gate_up_name: String,
    gate_up_dtype: DType,
    gate_up: Cow<'a, [u8]>,
    down_name: String,
    down_dtype: DType,
    down: Cow<'a, [u8]>,
}

fn expert_bank_bytes<'a>(src: &'a dyn TensorSource, p: &str, n: usize, hidden: usize, inter: usize) -> Result<BankBytes<'a>> {
    let fused = format!("{p}.experts.gate_up_proj");
    if src.contains(&fused) {
        let gu = src.tensor(&fused)?;
        gu.expect_shape(&[n, 2 * inter, hidden])?;
        let d = src.tensor(&format!("{p}.experts.down_proj"))?;
        d.expect_shape(&[n, hidden, inter])?;
        return Ok(BankBytes { gate_up_name: fused, gate_up_dtype: gu.dtype, gate_up: gu.bytes, down_name: format!("{p}.experts.down_proj"), down_dtype: d.dtype, down: d.bytes });
    }
    let stacked = |w: &str| format!("{p}.experts.{w}_proj.weight");
    if src.contains(&stacked("gate")) {
        let (g, u, d) = (src.tensor(&stacked("gate"))?, src.tensor(&stacked("up"))?, src.tensor(&stacked("down"))?);
        g.expect_shape(&[n, inter, hidden])?;
        u.expect_shape(&[n, inter, hidden])?;
        d.expect_shape(&[n, hidden, inter])?;
        if g.dtype != u.dtype {
            bail!("{p}.experts: gate and up stored in different dtypes ({:?}, {:?})", g.dtype, u.dtype);
        }
        let (gb, ub) = (g.bytes.len() / n, u.bytes.len() / n);
        let mut gu_bytes = Vec::with_capacity(g.bytes.len() + u.bytes.len());
        for e in 0..n {
            gu_bytes.extend_from_slice(&g.bytes[e * gb..(e + 1) * gb]);
            gu_bytes.extend_from_slice(&u.bytes[e * ub..(e + 1) * ub]);
        }
        return Ok(BankBytes { gate_up_name: stacked("gate_up"), gate_up_dtype: g.dtype, gate_up: Cow::Owned(gu_bytes), down_name: stacked("down"), down_dtype: d.dtype, down: d.bytes });
    }
    let get = |e: usize, w: &str, shape: [usize; 2]| -> Result<TensorRef> {
        let t = src.tensor(&format!("{p}.experts.{e}.{w}_proj.weight"))?;
        t.expect_shape(&shape)?;
        Ok(t)
    };
    let first = get(0, "gate", [inter, hidden])?;
    let dtype = first.dtype;
    let (mut gu_bytes, mut d_bytes) = (Vec::new(), Vec::new());
    for e in 0..n {
        let parts = [get(e, "gate", [inter, hidden])?, get(e, "up", [inter, hidden])?, get(e, "down", [hidden, inter])?];
        if parts.iter().any(|t| t.dtype != dtype) {
            bail!("{p}.experts.{e}: expert weights stored in mixed dtypes (pingce stacks experts of one dtype)");
        }
        gu_bytes.extend_from_slice(&parts[0].bytes);
        gu_bytes.extend_from_slice(&parts[1].bytes);
        d_bytes.extend_from_slice(&parts[2].bytes);
    }
    if src.contains(&format!("{p}.experts.{n}.gate_proj.weight")) {
        bail!("{p}: weights hold more experts than the {n} the config states (num_experts)");
    }
    Ok(BankBytes {
        gate_up_name: format!("{p}.experts.gate_up"),
        gate_up_dtype: dtype,
        gate_up: Cow::Owned(gu_bytes),
        down_name: format!("{p}.experts.down"),
        down_dtype: dtype,
        down: Cow::Owned(d_bytes),
    })
}

impl SparseMlp {
    /// Uploads the sparse MLP of layer prefix `p` (`model.layers.N.mlp`).
    /// With `host` (the expert cache and this layer's index) the routed experts stay in host
    /// memory and stream through the cache.
    pub fn load(
        gpu: &Gpu,
        src: &dyn TensorSource,
        p: &str,
        m: &MoeConfig,
        hidden: usize,
        stacked: impl Fn(&[(String, usize)], usize) -> Result<Matrix>,
        host: Option<(&Arc<ExpertCache>, usize)>,
    ) -> Result<SparseMlp> {
        let (n, inter) = (m.num_experts, m.expert_intermediate);
        let mut router_rows = vec![(format!("{p}.gate.weight"), n)];
        let shared = match m.shared_intermediate {
            // DeepSeek: `n_shared_experts` ungated experts as one MLP.
            Some(si) if m.router.ungated_shared => {
                let sp = |s: &str| format!("{p}.shared_experts.{s}_proj.weight");
                Some(SharedExpert { gate_up: stacked(&[(sp("gate"), si), (sp("up"), si)], hidden)?, down: stacked(&[(sp("down"), hidden)], si)?, inter: si })
            }
            Some(si) => {
                router_rows.push((format!("{p}.shared_expert_gate.weight"), 1));
                let sp = |s: &str| format!("{p}.shared_expert.{s}_proj.weight");
                Some(SharedExpert { gate_up: stacked(&[(sp("gate"), si), (sp("up"), si)], hidden)?, down: stacked(&[(sp("down"), hidden)], si)?, inter: si })
            }
            None => None,
        };
        let router = stacked(&router_rows, hidden)?;
        let (gate_up, down) = match host {
            None => expert_banks(gpu, src, p, n, hidden, inter)?,
            Some((cache, layer)) => {
                if !cache.register_mapped(layer, src, p, n)? {
                    let b = expert_bank_bytes(src, p, n, hidden, inter)?;
                    cache.register(layer, b.gate_up_dtype, &b.gate_up, b.down_dtype, &b.down)?;
                }
                (Experts::new(2 * inter, hidden), Experts::new(hidden, inter))
            }
        };
        let host = host.map(|(c, l)| (c.clone(), l));
        let correction_bias = if m.router.correction_bias {
            let name = format!("{p}.gate.e_score_correction_bias");
            let t = src.tensor(&name)?;
            t.expect_shape(&[n])?;
            Some(gpu.upload(&name, bytemuck::cast_slice(&t.to_f32()))?)
        } else {
            None
        };
        Ok(SparseMlp { router, gate_up, down, shared, experts: n, top_k: m.top_k, norm_topk_prob: m.norm_topk_prob, inter, route: m.router.clone(), correction_bias, host })
    }

    pub fn bytes_on_gpu(&self) -> u64 {
        let shared = self.shared.as_ref().map_or(0, |s| s.gate_up.bytes_on_gpu() + s.down.bytes_on_gpu());
        self.router.bytes_on_gpu() + self.gate_up.bytes_on_gpu() + self.down.bytes_on_gpu() + shared
    }

    /// Records x[t] += MoE(h[t]) for `tokens` rows (`h` the post-attention-normed rows).
    pub fn record(&self, rec: &mut Recorder, h: &wgpu::Buffer, x: &wgpu::Buffer, hidden: usize, tokens: usize, a: &MoeActivations) -> Result<()> {
        let (e, k, i) = (self.experts, self.top_k, self.inter);
        let stride = self.router.rows;
        // Router logits (and the shared expert's gate logit in the last column).
        linear(rec, &self.router, None, false, &Rows { x: h, x_offset: 0, x_stride: hidden, y: &a.logits, y_offset: 0, y_stride: stride, m: tokens })?;
        moe_route::route_with(rec, &self.route, self.correction_bias.as_ref(), &a.logits, stride, e, k, self.norm_topk_prob, tokens, &a.ids, &a.weights)?;
        if let Some((cache, layer)) = &self.host {
            // Host-resident experts: the routing decides what to stream (one small readback).
            rec.flush(&format!("layer {layer}: routing before streaming experts"))?;
            let ids = rec.gpu().read_u32(&a.ids, 0, tokens * k)?;
            cache.record(rec, *layer, &ids, tokens, k, h, &a.gu, &a.act, &a.out)?;
        } else {
            moe_gather::gather(rec, &a.ids, tokens, k, e, tokens, &a.counts, &a.lists)?;
            // Rows t * k + slot of gu/act/out belong to token t's slot-th expert.
            let g = Gathered { x: h, x_stride: hidden, x_div: k, y: &a.gu, y_stride: 2 * i, y_div: 1, counts: &a.counts, lists: &a.lists, cap: tokens };
            expert_matmul::record(rec, &self.gate_up, &g)?;
            swiglu::swiglu(rec, &a.gu, &a.act, tokens * k, i)?;
            let g = Gathered { x: &a.act, x_stride: i, x_div: 1, y: &a.out, y_stride: hidden, y_div: 1, ..g };
            expert_matmul::record(rec, &self.down, &g)?;
        }
        let shared_bufs = match (&self.shared, &a.shared_gu, &a.shared_act, &a.shared_out) {
            (Some(s), Some(gu), Some(act), Some(out)) => {
                linear(rec, &s.gate_up, None, false, &Rows { x: h, x_offset: 0, x_stride: hidden, y: gu, y_offset: 0, y_stride: 2 * s.inter, m: tokens })?;
                swiglu::swiglu(rec, gu, act, tokens, s.inter)?;
                linear(rec, &s.down, None, false, &Rows { x: act, x_offset: 0, x_stride: s.inter, y: out, y_offset: 0, y_stride: hidden, m: tokens })?;
                if self.route.ungated_shared {
                    // DeepSeek: routed sum + shared experts, then onto the residual.
                    return moe_combine::combine_ungated(rec, &a.ids, &a.weights, &a.out, x, tokens, hidden, k, out);
                }
                Some(Shared { out, gate: &a.logits, stride, col: e })
            }
            (None, ..) => None,
            _ => bail!("internal: shared-expert buffers missing"),
        };
        moe_combine::combine(rec, &a.ids, &a.weights, &a.out, x, tokens, hidden, k, shared_bufs.as_ref())
    }
}
