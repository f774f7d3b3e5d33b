//! The memory plan: what each adapter will hold — weights by dtype, the rotary table, the expert
//! cache, the KV cache and the working buffers of a pass — computed from the config and the
//! tensor headers only (no weight is read), with the same arithmetic the loader uses (buffer
//! sizes rounded to 4 bytes, 16-bit rows padded to even length, matrices and expert banks split
//! into chunks of at most the adapter's largest storage binding). `pingce plan` prints it, and
//! loading refuses with it, before any allocation, when the weights would not fit.
//!
//! wgpu reports no adapter's memory size, so a device's limit is the `--gpu-memory-budget` given
//! (per device); without one only the per-binding and per-buffer limits are checked.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use anyhow::{bail, Result};
use serde::Serialize;

use super::config::Config;
use super::weights::TensorSource;
use crate::kernels::logprobs::OUT_STRIDE;
use crate::tensor::DType;

/// Where the tensor dtypes come from: the weight files' headers, or one dtype assumed for every
/// matrix (a config.json without weights, for sizing a model before downloading it).
pub enum Dtypes<'a> {
    Source(&'a dyn TensorSource),
    Assumed(DType),
}

impl Dtypes<'_> {
    fn dtype(&self, name: &str) -> Result<DType> {
        match self {
            Dtypes::Source(s) => s.dtype_of(name),
            Dtypes::Assumed(d) => Ok(*d),
        }
    }
    fn contains(&self, name: &str, assumed: bool) -> bool {
        match self {
            Dtypes::Source(s) => s.contains(name),
            Dtypes::Assumed(_) => assumed,
        }
    }
}

/// Where the routed experts' weights live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpertsOn {
    Gpu,
    Host,
}

/// The size of the GPU expert cache (`--expert-cache`): bytes, or a number of expert slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheSize {
    Bytes(u64),
    Experts(usize),
}

impl CacheSize {
    /// `512M`, `2G`, `1048576` (bytes, powers of 1024) or `16experts` / `16e` (slots).
    pub fn parse(s: &str) -> std::result::Result<CacheSize, String> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        for suffix in ["experts", "expert", "e"] {
            if let Some(n) = lower.strip_suffix(suffix) {
                return match n.trim().parse::<usize>() {
                    Ok(0) => Err("an expert cache needs at least 1 slot".into()),
                    Ok(n) => Ok(CacheSize::Experts(n)),
                    Err(_) => Err(format!("{s:?} is not a size such as 512M, 2G or 16experts")),
                };
            }
        }
        let (digits, shift) = match lower.char_indices().last() {
            Some((i, 'k')) => (&t[..i], 10),
            Some((i, 'm')) => (&t[..i], 20),
            Some((i, 'g')) => (&t[..i], 30),
            _ => (t, 0),
        };
        let n: u64 = digits.trim().parse().map_err(|_| format!("{s:?} is not a size such as 512M, 2G or 16experts"))?;
        n.checked_mul(1 << shift).map(CacheSize::Bytes).ok_or_else(|| format!("{s:?} is too large"))
    }
}

/// One adapter the plan places layers on.
#[derive(Clone, Debug)]
pub struct DeviceSpec {
    /// How the device is named in messages (`--devices` entry and adapter name).
    pub label: String,
    /// Largest storage binding (bytes): matrices and expert banks are chunked to it.
    pub max_binding: u64,
    /// Largest buffer (bytes).
    pub max_buffer: u64,
    /// The memory this device may use (`--gpu-memory-budget`), if known.
    pub limit: Option<u64>,
}

/// What a plan is made for.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub devices: Vec<DeviceSpec>,
    /// Positions per sequence the KV cache is sized for.
    pub context: usize,
    /// Sequences per pass.
    pub batch_size: usize,
    /// Tokens per prefill pass (the engine's `max_batch_tokens`).
    pub max_batch_tokens: usize,
    pub experts_on: ExpertsOn,
    pub expert_cache: Option<CacheSize>,
}

/// Bytes of a storage buffer of `n` bytes as [`Gpu::buffer`](crate::device::Gpu::buffer) rounds it.
fn buf(n: u64) -> u64 {
    n.max(16).next_multiple_of(16)
}

/// Elements per stored row: padded to even for 16-bit dtypes (as `Matrix::append`).
fn stride(dtype: DType, cols: usize) -> usize {
    if dtype.block_bytes() == 2 {
        cols.next_multiple_of(2)
    } else {
        cols
    }
}

fn check_blocks(name: &str, dtype: DType, cols: usize) -> Result<()> {
    if !cols.is_multiple_of(dtype.block_size()) {
        bail!("{name}: rows of {cols} elements are not whole {dtype:?} blocks of {}", dtype.block_size());
    }
    Ok(())
}

/// Bytes `Matrix::upload` allocates for a `[rows, cols]` matrix.
pub fn matrix_bytes(dtype: DType, rows: usize, cols: usize, max_binding: u64) -> u64 {
    let stored_row = dtype.bytes_for(stride(dtype, cols)) as u64;
    let per_chunk = (max_binding / stored_row).max(1);
    let rows = rows as u64;
    let full = rows / per_chunk;
    let rest = rows % per_chunk;
    full * buf(per_chunk * stored_row) + if rest > 0 { buf(rest * stored_row) } else { 0 }
}

/// Bytes of one expert `[rows, cols]` in its stored layout.
pub fn expert_bytes(dtype: DType, rows: usize, cols: usize) -> u64 {
    (dtype.bytes_for(stride(dtype, cols)) * rows) as u64
}

/// Bytes `Experts::push` allocates for `n` experts of `[rows, cols]`.
pub fn bank_bytes(dtype: DType, n: usize, rows: usize, cols: usize, max_binding: u64) -> u64 {
    let e = expert_bytes(dtype, rows, cols);
    let per = ((max_binding / e.max(1)) as usize).max(1);
    let n = n as u64;
    let per = per as u64;
    (n / per) * buf(per * e) + if !n.is_multiple_of(per) { buf((n % per) * e) } else { 0 }
}

/// Weights tallied by dtype.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tally(pub BTreeMap<String, u64>);

impl Tally {
    fn add(&mut self, dtype: DType, bytes: u64) {
        *self.0.entry(format!("{dtype:?}")).or_default() += bytes;
    }
    fn merge(&mut self, o: &Tally) {
        for (k, v) in &o.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// One sparse layer's routed-expert banks: dtypes and shapes of its gate/up and down experts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BankClass {
    pub gate_up: DType,
    pub down: DType,
}

/// The dtypes of layer prefix `p`'s expert banks, in the loader's order of preference (fused
/// tensors, stacked `[n, rows, cols]` tensors, per-expert tensors).
pub fn bank_class(d: &Dtypes, p: &str) -> Result<BankClass> {
    let fused = format!("{p}.experts.gate_up_proj");
    if d.contains(&fused, false) {
        return Ok(BankClass { gate_up: d.dtype(&fused)?, down: d.dtype(&format!("{p}.experts.down_proj"))? });
    }
    let stacked = |w: &str| format!("{p}.experts.{w}_proj.weight");
    if d.contains(&stacked("gate"), false) {
        return Ok(BankClass { gate_up: d.dtype(&stacked("gate"))?, down: d.dtype(&stacked("down"))? });
    }
    let first = d.dtype(&format!("{p}.experts.0.gate_proj.weight"))?;
    Ok(BankClass { gate_up: first, down: first })
}

/// Per layer: weights on the GPU by dtype, and bytes of routed experts (host or GPU).
struct LayerSize {
    gpu: Tally,
    experts: Tally,
    class: Option<BankClass>,
}

fn stacked(d: &Dtypes, t: &mut Tally, parts: &[(String, usize)], cols: usize, mb: u64) -> Result<()> {
    let dtypes: Vec<DType> = parts.iter().map(|(n, _)| d.dtype(n)).collect::<Result<_>>()?;
    for ((n, _), dt) in parts.iter().zip(&dtypes) {
        check_blocks(n, *dt, cols)?;
    }
    if parts.len() > 1 && dtypes.iter().all(|x| *x == dtypes[0]) {
        let rows = parts.iter().map(|p| p.1).sum();
        t.add(dtypes[0], matrix_bytes(dtypes[0], rows, cols, mb));
    } else {
        for ((_, rows), dt) in parts.iter().zip(&dtypes) {
            t.add(*dt, matrix_bytes(*dt, *rows, cols, mb));
        }
    }
    Ok(())
}

fn layer_size(cfg: &Config, d: &Dtypes, l: usize, mb: u64) -> Result<LayerSize> {
    let (h, q, kv, inter) = (cfg.hidden_size, cfg.q_dim(), cfg.kv_dim(), cfg.intermediate_size);
    let p = |s: &str| format!("model.layers.{l}.{s}");
    let f32s = |n: usize| buf(n as u64 * 4);
    let mut t = Tally::default();
    let mut norms = f32s(h) * 2;
    if cfg.qkv_bias {
        norms += f32s(q + 2 * kv);
    }
    if cfg.qk_norm {
        norms += 2 * f32s(cfg.head_dim);
    }
    if cfg.o_bias {
        norms += f32s(h);
    }
    match &cfg.mla {
        // Multi-head latent attention, as `MlaAttention::load` uploads it: [q_a | kv_a] (or
        // [q_proj | kv_a]) stacked, the two latent norms, q_b, kv_b; o_proj reads heads × v_head_dim.
        Some(m) => {
            let a = |s: &str| p(&format!("self_attn.{s}"));
            let kv_a = (a("kv_a_proj_with_mqa.weight"), m.kv_lora_rank + m.qk_rope_head_dim);
            let qk = cfg.num_heads * m.qk_head_dim();
            match m.q_lora_rank {
                Some(r) => {
                    stacked(d, &mut t, &[(a("q_a_proj.weight"), r), kv_a], h, mb)?;
                    norms += f32s(r);
                    stacked(d, &mut t, &[(a("q_b_proj.weight"), qk)], r, mb)?;
                }
                None => stacked(d, &mut t, &[(a("q_proj.weight"), qk), kv_a], h, mb)?,
            }
            norms += f32s(m.kv_lora_rank);
            stacked(d, &mut t, &[(a("kv_b_proj.weight"), cfg.num_heads * (m.qk_nope_head_dim + m.v_head_dim))], m.kv_lora_rank, mb)?;
            stacked(d, &mut t, &[(a("o_proj.weight"), h)], cfg.num_heads * m.v_head_dim, mb)?;
        }
        None => {
            stacked(d, &mut t, &[(p("self_attn.q_proj.weight"), q), (p("self_attn.k_proj.weight"), kv), (p("self_attn.v_proj.weight"), kv)], h, mb)?;
            stacked(d, &mut t, &[(p("self_attn.o_proj.weight"), h)], q, mb)?;
        }
    }
    let mut experts = Tally::default();
    let mut class = None;
    match &cfg.moe {
        Some(m) if m.sparse_layers[l] => {
            let mp = p("mlp");
            let mut router = vec![(format!("{mp}.gate.weight"), m.num_experts)];
            if let Some(si) = m.shared_intermediate {
                // DeepSeek's shared experts are ungated (`shared_experts`, no gate row in the
                // router); Qwen2-MoE's one shared expert has a sigmoid gate row.
                let sp = |s: &str| {
                    if m.router.ungated_shared {
                        format!("{mp}.shared_experts.{s}_proj.weight")
                    } else {
                        format!("{mp}.shared_expert.{s}_proj.weight")
                    }
                };
                if !m.router.ungated_shared {
                    router.push((format!("{mp}.shared_expert_gate.weight"), 1));
                }
                stacked(d, &mut t, &[(sp("gate"), si), (sp("up"), si)], h, mb)?;
                stacked(d, &mut t, &[(sp("down"), h)], si, mb)?;
            }
            stacked(d, &mut t, &router, h, mb)?;
            if m.router.correction_bias {
                // DeepSeek-V3's e_score_correction_bias, uploaded as f32.
                norms += f32s(m.num_experts);
            }
            let c = bank_class(d, &mp)?;
            check_blocks(&format!("{mp}.experts (gate/up)"), c.gate_up, h)?;
            check_blocks(&format!("{mp}.experts (down)"), c.down, m.expert_intermediate)?;
            experts.add(c.gate_up, bank_bytes(c.gate_up, m.num_experts, 2 * m.expert_intermediate, h, mb));
            experts.add(c.down, bank_bytes(c.down, m.num_experts, h, m.expert_intermediate, mb));
            class = Some(c);
        }
        _ => {
            stacked(d, &mut t, &[(p("mlp.gate_proj.weight"), inter), (p("mlp.up_proj.weight"), inter)], h, mb)?;
            stacked(d, &mut t, &[(p("mlp.down_proj.weight"), h)], inter, mb)?;
        }
    }
    t.add(DType::F32, norms);
    Ok(LayerSize { gpu: t, experts, class })
}

/// Splits `layer_bytes.len()` layers into `n` contiguous ranges of about equal bytes, counting
/// `first_extra` (the embedding) on the first device and `last_extra` (the head) on the last;
/// every device gets at least one layer.
pub fn split_layers(layer_bytes: &[u64], first_extra: u64, last_extra: u64, n: usize) -> Result<Vec<Range<usize>>> {
    let l = layer_bytes.len();
    if n == 0 {
        bail!("no device to place the model on");
    }
    if n > l {
        bail!("{n} devices for a model of {l} layers: each device needs at least one layer");
    }
    let total = first_extra as u128 + layer_bytes.iter().map(|&b| b as u128).sum::<u128>() + last_extra as u128;
    let mut starts = vec![0usize];
    let mut acc = first_extra as u128;
    for (i, &b) in layer_bytes.iter().enumerate() {
        let d = starts.len();
        if d < n && i > *starts.last().unwrap() && (acc * n as u128 >= total * d as u128 || l - i == n - d) {
            starts.push(i);
        }
        acc += b as u128;
    }
    starts.push(l);
    Ok(starts.windows(2).map(|w| w[0]..w[1]).collect())
}

/// What one device holds.
#[derive(Clone, Debug, Serialize)]
pub struct DevicePlan {
    pub device: String,
    /// Decoder layers `[start, end)` on this device.
    pub layers: [usize; 2],
    pub embedding: bool,
    pub head: bool,
    /// Weights on this device by stored dtype (norms and biases are F32).
    pub weights_by_dtype: BTreeMap<String, u64>,
    pub weights: u64,
    pub rope_table: u64,
    pub expert_cache_slots: usize,
    pub expert_cache: u64,
    /// What loading allocates: weights + rotary table + expert cache.
    pub load: u64,
    pub kv_cache: u64,
    pub activations: u64,
    /// `load + kv_cache + activations`.
    pub total: u64,
    pub limit: Option<u64>,
    pub max_binding: u64,
    /// What does not fit, one line each.
    pub problems: Vec<String>,
    /// Problems that stop loading itself (a subset of `problems`).
    #[serde(skip)]
    pub load_problems: Vec<String>,
}

/// The plan of a model over its devices.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryPlan {
    pub model: String,
    pub architecture: String,
    pub layers: usize,
    pub context: usize,
    pub batch_size: usize,
    /// Tokens of the largest pass the activations are sized for.
    pub tokens_per_pass: usize,
    pub kv_rows: usize,
    pub experts_on: ExpertsOn,
    /// Routed-expert bytes kept in host memory (host residency).
    pub host_expert_bytes: u64,
    pub host_experts_by_dtype: BTreeMap<String, u64>,
    pub devices: Vec<DevicePlan>,
    pub fits: bool,
    /// Whether `dtypes` came from an assumption rather than weight headers.
    pub assumed_dtype: Option<String>,
}

/// Expert cache slots per bank class for `size` on a device whose sparse layers have `classes`.
pub fn cache_slots(size: Option<CacheSize>, classes: &[(BankClass, u64)], experts_per_layer: usize) -> usize {
    let per_slot: u64 = classes.iter().map(|c| c.1).sum();
    match size {
        None => experts_per_layer,
        Some(CacheSize::Experts(n)) => n,
        Some(CacheSize::Bytes(b)) => (b / per_slot.max(1)) as usize,
    }
}

impl MemoryPlan {
    /// Plans `cfg` over `opts.devices`; `dtypes` gives each tensor's stored dtype.
    pub fn new(model: &str, cfg: &Config, d: &Dtypes, opts: &PlanOptions) -> Result<MemoryPlan> {
        cfg.validate()?;
        let n = opts.devices.len();
        let mb = opts.devices.iter().map(|x| x.max_binding).min().unwrap_or(u64::MAX);
        let h = cfg.hidden_size;
        let host = opts.experts_on == ExpertsOn::Host;
        if host && cfg.moe.is_none() {
            bail!("--experts-on host: the model has no routed experts ({} is dense)", model);
        }
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for l in 0..cfg.num_layers {
            layers.push(layer_size(cfg, d, l, mb)?);
        }
        let embed_dt = d.dtype("model.embed_tokens.weight")?;
        check_blocks("model.embed_tokens.weight", embed_dt, h)?;
        let embed = matrix_bytes(embed_dt, cfg.vocab_size, h, mb);
        let untied_head = !cfg.tie_word_embeddings && d.contains("lm_head.weight", true);
        if !cfg.tie_word_embeddings && !untied_head {
            bail!("weights: no tensor named lm_head.weight, and config.json has tie_word_embeddings false");
        }
        let head_dt = if untied_head { d.dtype("lm_head.weight")? } else { embed_dt };
        // On one device a tied head reads the embedding; split, the last device holds a copy.
        let head_matrix = if untied_head || n > 1 { matrix_bytes(head_dt, cfg.vocab_size, h, mb) } else { 0 };
        let norm = buf(h as u64 * 4);
        let gpu_layer: Vec<u64> = layers.iter().map(|l| l.gpu.total() + if host { 0 } else { l.experts.total() }).collect();
        let ranges = split_layers(&gpu_layer, embed, head_matrix + norm, n)?;
        let rope = buf((2 * cfg.max_position_embeddings * cfg.inv_freq().len() * 4) as u64);

        let kv_rows = (opts.batch_size.max(1) * opts.context.max(1)).next_multiple_of(256);
        let tokens = (opts.batch_size.max(1) * opts.context.max(1)).min(opts.max_batch_tokens.max(opts.context)).max(1).next_multiple_of(64);
        let kv_layer = (kv_rows * cfg.kv_dim() * 4) as u64;
        let acts = activation_bytes(cfg, tokens);
        let mut host_experts = Tally::default();
        let mut devices = Vec::with_capacity(n);
        for (i, (spec, r)) in opts.devices.iter().zip(&ranges).enumerate() {
            let (first, last) = (i == 0, i + 1 == n);
            let mut w = Tally::default();
            if first {
                w.add(embed_dt, embed);
            }
            if last {
                if head_matrix > 0 {
                    w.add(head_dt, head_matrix);
                }
                w.add(DType::F32, norm);
            }
            let mut classes: BTreeMap<BankClass, u64> = BTreeMap::new();
            let mut experts_per_layer = 0;
            for l in r.clone() {
                w.merge(&layers[l].gpu);
                if host {
                    host_experts.merge(&layers[l].experts);
                    if let (Some(c), Some(m)) = (layers[l].class, &cfg.moe) {
                        classes.insert(c, expert_bytes(c.gate_up, 2 * m.expert_intermediate, h) + expert_bytes(c.down, h, m.expert_intermediate));
                        experts_per_layer = m.num_experts;
                    }
                } else {
                    w.merge(&layers[l].experts);
                }
            }
            let mut problems = Vec::new();
            let mut load_problems = Vec::new();
            let (slots, cache) = if classes.is_empty() {
                (0, 0)
            } else {
                let m = cfg.moe.as_ref().unwrap();
                let classes: Vec<(BankClass, u64)> = classes.into_iter().collect();
                let slots = cache_slots(opts.expert_cache, &classes, experts_per_layer);
                if slots == 0 {
                    let p = format!("device {}: --expert-cache holds no expert (one expert of each kind takes {} bytes)", spec.label, classes.iter().map(|c| c.1).sum::<u64>());
                    problems.push(p.clone());
                    load_problems.push(p);
                }
                let mut bytes = 0;
                for (c, _) in &classes {
                    bytes += bank_bytes(c.gate_up, slots, 2 * m.expert_intermediate, h, spec.max_binding);
                    bytes += bank_bytes(c.down, slots, h, m.expert_intermediate, spec.max_binding);
                }
                // Per-slot token counts (the lists, sized by the pass, count as activations).
                bytes += buf(slots as u64 * 4);
                (slots, bytes)
            };
            let weights = w.total();
            let load = weights + rope + cache;
            let layers_here = r.len();
            let kv = 2 * layers_here as u64 * buf(kv_layer);
            if kv_layer > spec.max_binding {
                problems.push(format!(
                    "device {}: the KV cache of {kv_rows} positions needs {kv_layer} bytes per layer, above the adapter's largest binding ({} bytes): lower --batch-size or --context",
                    spec.label, spec.max_binding
                ));
            }
            let mut activations = acts;
            if slots > 0 {
                activations += buf((slots * tokens) as u64 * 4);
            }
            if last {
                activations += head_bytes(cfg, tokens, spec.max_binding);
            }
            for (l, ls) in r.clone().map(|l| (l, &layers[l])) {
                if let (Some(c), Some(m)) = (ls.class, &cfg.moe) {
                    for (what, dt, rows, cols) in [("gate/up", c.gate_up, 2 * m.expert_intermediate, h), ("down", c.down, h, m.expert_intermediate)] {
                        let e = expert_bytes(dt, rows, cols);
                        if e > spec.max_binding {
                            let p = format!("device {}: layer {l}: one {what} expert is {e} bytes, above the adapter's largest binding ({} bytes)", spec.label, spec.max_binding);
                            problems.push(p.clone());
                            load_problems.push(p);
                        }
                    }
                }
            }
            let total = load + kv + activations;
            if let Some(limit) = spec.limit {
                if load > limit {
                    let p = format!(
                        "device {}: loading needs {} ({load} bytes: weights {weights}, rotary table {rope}, expert cache {cache}) but the device's limit is the --gpu-memory-budget of {limit} bytes ({}): short by {} ({} bytes)",
                        spec.label,
                        human(load),
                        human(limit),
                        human(load - limit),
                        load - limit
                    );
                    problems.push(p.clone());
                    load_problems.push(p);
                } else if total > limit {
                    problems.push(format!(
                        "device {}: a pass of {} sequences × {} positions needs {} in all ({total} bytes: load {load}, KV cache {kv}, activations {activations}) but the limit is {} ({limit} bytes): short by {} ({} bytes)",
                        spec.label,
                        opts.batch_size,
                        opts.context,
                        human(total),
                        human(limit),
                        human(total - limit),
                        total - limit
                    ));
                }
            }
            devices.push(DevicePlan {
                device: spec.label.clone(),
                layers: [r.start, r.end],
                embedding: first,
                head: last,
                weights_by_dtype: w.0,
                weights,
                rope_table: rope,
                expert_cache_slots: slots,
                expert_cache: cache,
                load,
                kv_cache: kv,
                activations,
                total,
                limit: spec.limit,
                max_binding: spec.max_binding,
                problems,
                load_problems,
            });
        }
        let fits = devices.iter().all(|d| d.problems.is_empty());
        Ok(MemoryPlan {
            model: model.to_string(),
            architecture: format!("{:?}", cfg.arch),
            layers: cfg.num_layers,
            context: opts.context,
            batch_size: opts.batch_size,
            tokens_per_pass: tokens,
            kv_rows,
            experts_on: opts.experts_on,
            host_expert_bytes: host_experts.total(),
            host_experts_by_dtype: host_experts.0,
            devices,
            fits,
            assumed_dtype: match d {
                Dtypes::Assumed(x) => Some(format!("{x:?}")),
                Dtypes::Source(_) => None,
            },
        })
    }

    /// The layer ranges, device by device.
    pub fn ranges(&self) -> Vec<Range<usize>> {
        self.devices.iter().map(|d| d.layers[0]..d.layers[1]).collect()
    }

    /// Whether loading would fail; the problems that stop it.
    pub fn load_problems(&self) -> Vec<String> {
        self.devices.iter().flat_map(|d| d.load_problems.iter().cloned()).collect()
    }

    /// The plan as a table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "memory plan for {} ({}, {} layers)", self.model, self.architecture, self.layers);
        if let Some(d) = &self.assumed_dtype {
            let _ = writeln!(s, "  dtypes: every matrix assumed {d} (no weight files read); norms and biases F32");
        }
        let _ = writeln!(
            s,
            "  sized for --batch-size {} × --context {}: KV cache of {} rows per layer, passes of up to {} tokens",
            self.batch_size, self.context, self.kv_rows, self.tokens_per_pass
        );
        if self.experts_on == ExpertsOn::Host {
            let by: Vec<String> = self.host_experts_by_dtype.iter().map(|(k, v)| format!("{k} {}", human(*v))).collect();
            let _ = writeln!(s, "  routed experts in host memory: {} ({})", human(self.host_expert_bytes), by.join(", "));
        }
        for d in &self.devices {
            let mut parts = Vec::new();
            if d.embedding {
                parts.push("embedding".to_string());
            }
            parts.push(format!("layers {}..{}", d.layers[0], d.layers[1]));
            if d.head {
                parts.push("head".to_string());
            }
            let _ = writeln!(s, "device {}: {}", d.device, parts.join(" + "));
            let by: Vec<String> = d.weights_by_dtype.iter().map(|(k, v)| format!("{k} {}", human(*v))).collect();
            let _ = writeln!(s, "  weights        {:>12}  ({})", human(d.weights), by.join(", "));
            let _ = writeln!(s, "  rotary table   {:>12}", human(d.rope_table));
            if d.expert_cache_slots > 0 {
                let _ = writeln!(s, "  expert cache   {:>12}  ({} slots per expert kind)", human(d.expert_cache), d.expert_cache_slots);
            }
            let _ = writeln!(s, "  = at load     {:>12}", human(d.load));
            let _ = writeln!(s, "  KV cache       {:>12}", human(d.kv_cache));
            let _ = writeln!(s, "  activations    {:>12}", human(d.activations));
            let limit = match d.limit {
                Some(l) => format!("limit {} (--gpu-memory-budget)", human(l)),
                None => "limit unknown (wgpu reports no memory size; give --gpu-memory-budget)".into(),
            };
            let _ = writeln!(s, "  = total        {:>12}  {limit}; largest binding {}", human(d.total), human(d.max_binding));
            for p in &d.problems {
                let _ = writeln!(s, "  DOES NOT FIT: {p}");
            }
        }
        let _ = writeln!(s, "{}", if self.fits { "fits" } else { "does not fit" });
        s
    }
}

/// Bytes of `Decoder::activations` for `tokens` rows (including the MoE buffers).
pub fn activation_bytes(c: &Config, tokens: usize) -> u64 {
    let t = tokens.max(1) as u64;
    let f = |w: usize| buf(t * w as u64 * 4);
    let all_sparse = c.moe.as_ref().is_some_and(|m| m.sparse_layers.iter().all(|&s| s));
    let inter = if all_sparse { 1 } else { c.intermediate_size };
    let mut n = f(1) + f(2) + 2 * f(c.hidden_size) + f(c.q_dim() + 2 * c.kv_dim()) + f(c.q_dim()) + f(2 * inter) + f(inter);
    if let Some(m) = c.moe.as_ref().filter(|m| m.sparse_layers.iter().any(|&s| s)) {
        let (e, k, i, h) = (m.num_experts as u64, m.top_k as u64, m.expert_intermediate as u64, c.hidden_size as u64);
        let g = |x: u64| buf(x * 4);
        n += g(t * (e + 1)) + 2 * g(t * k) + g(e) + g(e * t) + g(t * k * 2 * i) + g(t * k * i) + g(t * k * h);
        if let Some(s) = m.shared_intermediate {
            n += g(t * 2 * s as u64) + g(t * s as u64) + g(t * h);
        }
    }
    if let Some(m) = &c.mla {
        // `MlaActivations`: the stacked latent, q_b's output (with q LoRA), kv_b's output and
        // the unpadded attention output.
        let heads = c.num_heads;
        let first = m.q_lora_rank.unwrap_or(heads * m.qk_head_dim());
        n += f(first + m.kv_lora_rank + m.qk_rope_head_dim) + f(heads * (m.qk_nope_head_dim + m.v_head_dim)) + f(heads * m.v_head_dim);
        if m.q_lora_rank.is_some() {
            n += f(heads * m.qk_head_dim());
        }
    }
    n
}

/// Bytes of `Decoder::head_buffers` for `rows` scored positions.
pub fn head_bytes(c: &Config, rows: usize, max_binding: u64) -> u64 {
    let rows = rows.max(1);
    let chunk = ((max_binding.min(64 << 20) / (c.vocab_size as u64 * 4)) as usize).max(1).min(rows);
    buf((rows * c.hidden_size * 4) as u64) + buf((chunk * c.vocab_size * 4) as u64) + buf((rows * OUT_STRIDE * 4) as u64)
}

/// Bytes in KiB/MiB/GiB with two decimals.
pub fn human(b: u64) -> String {
    let f = b as f64;
    if b >= 1 << 30 {
        format!("{:.2} GiB", f / (1u64 << 30) as f64)
    } else if b >= 1 << 20 {
        format!("{:.2} MiB", f / (1u64 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.2} KiB", f / 1024.0)
    } else {
        format!("{b} B")
    }
}

/// A dtype by name, for `--assume-dtype` (`F32`, `F16`, `BF16`, `Q8_0`, `Q4_0`, `Q4_1`, `Q4_K`,
/// `Q5_K`, `Q6_K`; case-insensitive).
pub fn parse_dtype(s: &str) -> Result<DType> {
    Ok(match s.to_ascii_uppercase().as_str() {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "Q8_0" => DType::Q8_0,
        "Q4_0" => DType::Q4_0,
        "Q4_1" => DType::Q4_1,
        "Q4_K" => DType::Q4_K,
        "Q5_K" => DType::Q5_K,
        "Q6_K" => DType::Q6_K,
        _ => bail!("unknown dtype {s:?}: expected F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K or Q6_K"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_balanced_and_covers_every_layer() {
        let r = split_layers(&[10; 8], 0, 0, 2).unwrap();
        assert_eq!(r, vec![0..4, 4..8]);
        // A big embedding pushes layers to the second device.
        let r = split_layers(&[10; 8], 40, 0, 2).unwrap();
        assert_eq!(r, vec![0..2, 2..8]);
        let r = split_layers(&[10; 3], 1000, 0, 3).unwrap();
        assert_eq!(r, vec![0..1, 1..2, 2..3]);
        assert!(split_layers(&[10; 2], 0, 0, 3).is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(CacheSize::parse("16experts"), Ok(CacheSize::Experts(16)));
        assert_eq!(CacheSize::parse("3e"), Ok(CacheSize::Experts(3)));
        assert_eq!(CacheSize::parse("2M"), Ok(CacheSize::Bytes(2 << 20)));
        assert_eq!(CacheSize::parse("100"), Ok(CacheSize::Bytes(100)));
        assert!(CacheSize::parse("0experts").is_err());
        assert!(CacheSize::parse("lots").is_err());
    }

    #[test]
    fn chunked_sizes_follow_the_binding() {
        // 10 rows of 6 f16 (12 bytes each) with a 48-byte binding: chunks of 4, 4 and 2 rows
        // (each buffer rounded up to 16 bytes).
        assert_eq!(matrix_bytes(DType::F16, 10, 6, 48), 48 + 48 + 32);
        // Odd 16-bit rows are padded: 3 cols → 4 stored → 8 bytes per row; 24 → 32.
        assert_eq!(matrix_bytes(DType::BF16, 3, 3, 1 << 20), 32);
        // 5 experts of 2 rows × 32 Q8_0 (34 bytes per row): 68 bytes each, 2 per 150-byte binding.
        assert_eq!(bank_bytes(DType::Q8_0, 5, 2, 32, 150), 144 + 144 + 80);
    }
}
