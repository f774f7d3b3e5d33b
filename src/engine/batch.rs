//! One pass of the model over a batch of segments packed row after row (no padding): each
//! segment is a run of tokens of one sequence at known positions, with the positions to score.

use anyhow::{bail, Result};

use super::kv_cache::KvCache;
use crate::device::Gpu;
use crate::kernels::logprobs::{self, TokenScore, NO_TARGET};
use crate::model::decoder::{Activations, HeadBuffers};
use crate::model::Decoder;

/// A later device of a model split by layers: its slice of the model and its own buffers.
pub struct Stage {
    pub gpu: Gpu,
    pub model: Decoder,
    pub ws: Workspace,
}

/// Tokens of one sequence at positions `start_pos ..`, cached at rows `base + position`.
pub struct Segment<'a> {
    pub tokens: &'a [u32],
    pub start_pos: usize,
    pub base: usize,
    /// (index in `tokens` whose output is scored, target id or [`NO_TARGET`]).
    pub score: Vec<(usize, u32)>,
}

/// Buffers reused from pass to pass, grown when a pass needs more.
#[derive(Default)]
pub struct Workspace {
    acts: Option<Activations>,
    head: Option<HeadBuffers>,
    /// The scored rows' indices and targets (u32 each), written each pass rather than created.
    score_rows: Option<(usize, wgpu::Buffer, wgpu::Buffer)>,
    pub cache: Option<KvCache>,
    /// Rows per KV cache chunk when smaller than the adapter's largest binding allows (tests).
    pub kv_chunk_rows: Option<usize>,
}

impl Workspace {
    /// Makes sure the cache holds `rows` rows. Growing it drops what it held, so callers only
    /// grow it before a batch whose sequences are all written afresh.
    pub fn ensure_cache(&mut self, gpu: &Gpu, model: &Decoder, rows: usize) -> Result<()> {
        if self.cache.as_ref().is_none_or(|c| c.rows < rows) {
            self.cache = None;
            self.cache = Some(KvCache::with_chunk_rows(gpu, model.layer_range().len(), model.cfg.kv_dim(), rows.next_multiple_of(256), self.kv_chunk_rows)?);
        }
        Ok(())
    }
}

/// Runs one sequence through the model and returns the whole log-softmax row at each of
/// `positions` (the row at p predicts token p + 1).
pub fn full_rows(gpu: &Gpu, model: &Decoder, ws: &mut Workspace, rest: &mut [Stage], tokens: &[u32], positions: &[usize]) -> Result<Vec<Vec<f32>>> {
    let seg = Segment { tokens, start_pos: 0, base: 0, score: positions.iter().map(|&p| (p, NO_TARGET)).collect() };
    ensure_cache(gpu, model, ws, rest, tokens.len())?;
    run(gpu, model, ws, rest, std::slice::from_ref(&seg), 0)?;
    let (gpu, model, ws) = match rest.last_mut() {
        Some(s) => (&s.gpu, &s.model, &mut s.ws),
        None => (gpu, model, ws),
    };
    let gather: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
    let gather_buf = gpu.upload("gather", bytemuck::cast_slice(&gather))?;
    let mut out = Vec::with_capacity(positions.len());
    model.full_rows(gpu, ws.acts.as_ref().unwrap(), positions.len(), &gather_buf, ws.head.as_ref().unwrap(), &mut out)?;
    Ok(out)
}

/// [`Workspace::ensure_cache`] on every device of the model.
pub fn ensure_cache(gpu: &Gpu, model: &Decoder, ws: &mut Workspace, rest: &mut [Stage], rows: usize) -> Result<()> {
    ws.ensure_cache(gpu, model, rows)?;
    for s in rest {
        s.ws.ensure_cache(&s.gpu, &s.model, rows)?;
    }
    Ok(())
}

/// Runs `segs` through the model in one submission and returns, per segment, the scores of its
/// scored positions, in order.
pub fn run(gpu: &Gpu, model: &Decoder, ws: &mut Workspace, rest: &mut [Stage], segs: &[Segment], topk: usize) -> Result<Vec<Vec<TokenScore>>> {
    run_after_copies(gpu, model, ws, rest, &[], segs, topk)
}

/// [`run`], after first duplicating cached rows: each `(rows, src, dst)` copies `rows` positions
/// from cache row `src` to `dst` (a shared context given to each continuation).
///
/// With `rest` (the later devices of a model split by layers) each device runs its layers in
/// one submission and hands the hidden states to the next through host memory: one readback
/// and one upload of `tokens × hidden` floats per boundary, nothing else.
pub fn run_after_copies(gpu: &Gpu, model: &Decoder, ws: &mut Workspace, rest: &mut [Stage], copies: &[(usize, usize, usize)], segs: &[Segment], topk: usize) -> Result<Vec<Vec<TokenScore>>> {
    let tokens: usize = segs.iter().map(|s| s.tokens.len()).sum();
    // The longest context any token of the pass attends to (picks kernel layouts, not numbers).
    let keys = segs.iter().map(|s| s.start_pos + s.tokens.len()).max().unwrap_or(0);
    let max_pos = model.cfg.max_position_embeddings;
    let mut ids = Vec::with_capacity(tokens);
    let mut meta = Vec::with_capacity(2 * tokens);
    let mut gather = Vec::new();
    let mut targets = Vec::new();
    let mut need_rows = 0;
    for s in segs {
        let end = s.start_pos + s.tokens.len();
        if end > max_pos {
            bail!("sequence of {end} tokens is longer than the model's context ({max_pos} positions, max_position_embeddings)");
        }
        need_rows = need_rows.max(s.base + end);
        for &(i, t) in &s.score {
            gather.push((ids.len() + i) as u32);
            targets.push(t);
        }
        for (i, &id) in s.tokens.iter().enumerate() {
            if id as usize >= model.vocab_size() {
                bail!("token id {id} is outside the model's vocabulary ({} entries)", model.vocab_size());
            }
            ids.push(id);
            meta.extend([(s.start_pos + i) as u32, s.base as u32]);
        }
    }
    if tokens == 0 {
        return Ok(segs.iter().map(|_| Vec::new()).collect());
    }
    let rows = gather.len();
    let n_stages = 1 + rest.len();
    let mut stages: Vec<(&Gpu, &Decoder, &mut Workspace)> = vec![(gpu, model, ws)];
    stages.extend(rest.iter_mut().map(|s| (&s.gpu, &s.model, &mut s.ws)));
    // The hidden states handed from one device to the next (host memory).
    let mut hidden: Vec<u8> = Vec::new();
    let mut words = Vec::new();
    for (i, (gpu, model, ws)) in stages.into_iter().enumerate() {
        let (first, last) = (i == 0, i + 1 == n_stages);
        if ws.cache.as_ref().is_none_or(|c| c.rows < need_rows) {
            bail!("internal: KV cache smaller than the batch ({need_rows} rows needed)");
        }
        if ws.acts.as_ref().is_none_or(|a| a.tokens < tokens) {
            ws.acts = None;
            ws.acts = Some(model.activations(gpu, tokens.next_multiple_of(64))?);
        }
        if last && ws.head.as_ref().is_none_or(|h| h.rows < rows) {
            ws.head = None;
            ws.head = Some(model.head_buffers(gpu, rows.next_multiple_of(64))?);
        }
        // The scored rows' indices and targets: buffers kept in the workspace, not made per step.
        if last && ws.score_rows.as_ref().is_none_or(|b| b.0 < rows) {
            let cap = rows.next_multiple_of(64);
            ws.score_rows = None;
            ws.score_rows = Some((cap, gpu.storage("gather", cap as u64 * 4)?, gpu.storage("targets", cap as u64 * 4)?));
        }
        let (acts, cache) = (ws.acts.as_ref().unwrap(), ws.cache.as_ref().unwrap());
        if first {
            gpu.write(&acts.ids, 0, bytemuck::cast_slice(&ids));
        } else {
            gpu.write(acts.hidden(), 0, &hidden);
        }
        gpu.write(&acts.meta, 0, bytemuck::cast_slice(&meta));
        let mut rec = gpu.recorder();
        for &(rows, src, dst) in copies {
            if src + rows > cache.rows || dst + rows > cache.rows {
                bail!("internal: KV copy outside the cache");
            }
            cache.record_copy(&mut rec, model.cfg.kv_dim(), rows, src, dst)?;
        }
        model.record_layers(&mut rec, acts, tokens, segs.len(), keys, &cache.layers())?;
        let head = ws.head.as_ref();
        if last && rows > 0 {
            let (_, gather_buf, target_buf) = ws.score_rows.as_ref().unwrap();
            gpu.write(gather_buf, 0, bytemuck::cast_slice(&gather));
            gpu.write(target_buf, 0, bytemuck::cast_slice(&targets));
            model.record_head(&mut rec, acts, rows, gather_buf, target_buf, topk, head.unwrap())?;
        }
        let layers = model.layer_range();
        let what = if n_stages == 1 {
            format!("running a batch of {} sequences ({tokens} tokens)", segs.len())
        } else {
            format!("running layers {}..{} of a batch of {} sequences ({tokens} tokens) on device {i} ({})", layers.start, layers.end, segs.len(), gpu.info.name)
        };
        // The results come back in the pass's own submission.
        if last {
            let b = rec.submit_read(&what, &head.unwrap().out, 0, (rows * logprobs::OUT_STRIDE * 4) as u64)?;
            words = bytemuck::pod_collect_to_vec(&b);
        } else {
            hidden = rec.submit_read(&what, acts.hidden(), 0, (tokens * model.cfg.hidden_size * 4) as u64)?;
        }
    }
    let scores = logprobs::decode(&words, rows, topk);
    let mut out = Vec::with_capacity(segs.len());
    let mut it = scores.into_iter();
    for s in segs {
        out.push(it.by_ref().take(s.score.len()).collect());
    }
    debug_assert!(targets.iter().all(|&t| t == NO_TARGET || (t as usize) < model.vocab_size()));
    Ok(out)
}
