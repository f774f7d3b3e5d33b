//! One pass of the model over a batch of segments packed row after row (no padding): each
//! segment is a run of tokens of one sequence at known positions, with the positions to score.

use anyhow::{bail, Result};

use super::kv_cache::KvCache;
use crate::device::Gpu;
use crate::kernels::logprobs::{self, TokenScore, NO_TARGET};
use crate::model::decoder::{Activations, HeadBuffers};
use crate::model::Decoder;

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
            self.cache = Some(KvCache::with_chunk_rows(gpu, model.cfg.num_layers, model.cfg.kv_dim(), rows.next_multiple_of(256), self.kv_chunk_rows)?);
        }
        Ok(())
    }
}

/// Runs one sequence through the model and returns the whole log-softmax row at each of
/// `positions` (the row at p predicts token p + 1).
pub fn full_rows(gpu: &Gpu, model: &Decoder, ws: &mut Workspace, tokens: &[u32], positions: &[usize]) -> Result<Vec<Vec<f32>>> {
    let seg = Segment { tokens, start_pos: 0, base: 0, score: positions.iter().map(|&p| (p, NO_TARGET)).collect() };
    ws.ensure_cache(gpu, model, tokens.len())?;
    run(gpu, model, ws, std::slice::from_ref(&seg), 0)?;
    let gather: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
    let gather_buf = gpu.upload("gather", bytemuck::cast_slice(&gather))?;
    let mut out = Vec::with_capacity(positions.len());
    model.full_rows(gpu, ws.acts.as_ref().unwrap(), positions.len(), &gather_buf, ws.head.as_ref().unwrap(), &mut out)?;
    Ok(out)
}

/// Runs `segs` through the model in one submission and returns, per segment, the scores of its
/// scored positions, in order.
pub fn run(gpu: &Gpu, model: &Decoder, ws: &mut Workspace, segs: &[Segment], topk: usize) -> Result<Vec<Vec<TokenScore>>> {
    run_after_copies(gpu, model, ws, &[], segs, topk)
}

/// [`run`], after first duplicating cached rows: each `(rows, src, dst)` copies `rows` positions
/// from cache row `src` to `dst` (a shared context given to each continuation).
pub fn run_after_copies(gpu: &Gpu, model: &Decoder, ws: &mut Workspace, copies: &[(usize, usize, usize)], segs: &[Segment], topk: usize) -> Result<Vec<Vec<TokenScore>>> {
    let tokens: usize = segs.iter().map(|s| s.tokens.len()).sum();
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
    if ws.cache.as_ref().is_none_or(|c| c.rows < need_rows) {
        bail!("internal: KV cache smaller than the batch ({need_rows} rows needed)");
    }
    if ws.acts.as_ref().is_none_or(|a| a.tokens < tokens) {
        ws.acts = None;
        ws.acts = Some(model.activations(gpu, tokens.next_multiple_of(64))?);
    }
    let rows = gather.len();
    if ws.head.as_ref().is_none_or(|h| h.rows < rows) {
        ws.head = None;
        ws.head = Some(model.head_buffers(gpu, rows.next_multiple_of(64))?);
    }
    let (acts, head, cache) = (ws.acts.as_ref().unwrap(), ws.head.as_ref().unwrap(), ws.cache.as_ref().unwrap());
    gpu.write(&acts.ids, 0, bytemuck::cast_slice(&ids));
    gpu.write(&acts.meta, 0, bytemuck::cast_slice(&meta));
    let gather_buf = gpu.upload("gather", bytemuck::cast_slice(&gather))?;
    let target_buf = gpu.upload("targets", bytemuck::cast_slice(&targets))?;
    let mut rec = gpu.recorder();
    for &(rows, src, dst) in copies {
        if src + rows > cache.rows || dst + rows > cache.rows {
            bail!("internal: KV copy outside the cache");
        }
        cache.record_copy(&mut rec, model.cfg.kv_dim(), rows, src, dst)?;
    }
    model.record_layers(&mut rec, acts, tokens, &cache.layers())?;
    if rows > 0 {
        model.record_head(&mut rec, acts, rows, &gather_buf, &target_buf, topk, head)?;
    }
    rec.submit(&format!("running a batch of {} sequences ({tokens} tokens)", segs.len()))?;
    let words = gpu.read_u32(&head.out, 0, rows * logprobs::OUT_STRIDE)?;
    let scores = logprobs::decode(&words, rows, topk);
    let mut out = Vec::with_capacity(segs.len());
    let mut it = scores.into_iter();
    for s in segs {
        out.push(it.by_ref().take(s.score.len()).collect());
    }
    debug_assert!(targets.iter().all(|&t| t == NO_TARGET || (t as usize) < model.vocab_size()));
    Ok(out)
}
