//! One pass of the model over a batch of segments packed row after row (no padding): each
//! segment is a run of tokens of one sequence at known positions, with the positions to score.

use anyhow::{bail, Context, Result};

use super::kv_cache::KvCache;
use crate::device::recorder::Pending;
use crate::device::{Gpu, Recorder};
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

/// A pass's inputs as the kernels take them.
struct Plan {
    /// Token ids, row after row.
    ids: Vec<u32>,
    /// Per row: position, cache base.
    meta: Vec<u32>,
    /// Rows scored, and their targets.
    gather: Vec<u32>,
    targets: Vec<u32>,
    /// Cache rows the pass writes up to.
    need_rows: usize,
    /// The longest context any token of the pass attends to (picks kernel layouts, not numbers).
    keys: usize,
    /// Scored rows per segment.
    counts: Vec<usize>,
}

impl Plan {
    fn new(model: &Decoder, segs: &[Segment]) -> Result<Plan> {
        let tokens: usize = segs.iter().map(|s| s.tokens.len()).sum();
        let keys = segs.iter().map(|s| s.start_pos + s.tokens.len()).max().unwrap_or(0);
        let max_pos = model.cfg.max_position_embeddings;
        let mut p = Plan { ids: Vec::with_capacity(tokens), meta: Vec::with_capacity(2 * tokens), gather: Vec::new(), targets: Vec::new(), need_rows: 0, keys, counts: Vec::with_capacity(segs.len()) };
        for s in segs {
            let end = s.start_pos + s.tokens.len();
            if end > max_pos {
                bail!("sequence of {end} tokens is longer than the model's context ({max_pos} positions, max_position_embeddings)");
            }
            p.need_rows = p.need_rows.max(s.base + end);
            for &(i, t) in &s.score {
                p.gather.push((p.ids.len() + i) as u32);
                p.targets.push(t);
            }
            p.counts.push(s.score.len());
            for (i, &id) in s.tokens.iter().enumerate() {
                if id as usize >= model.vocab_size() {
                    bail!("token id {id} is outside the model's vocabulary ({} entries)", model.vocab_size());
                }
                p.ids.push(id);
                p.meta.extend([(s.start_pos + i) as u32, s.base as u32]);
            }
        }
        debug_assert!(p.targets.iter().all(|&t| t == NO_TARGET || (t as usize) < model.vocab_size()));
        Ok(p)
    }

    fn tokens(&self) -> usize {
        self.ids.len()
    }

    /// The scores read back, split per segment.
    fn split(&self, words: &[u32], topk: usize) -> Vec<Vec<TokenScore>> {
        let mut it = logprobs::decode(words, self.gather.len(), topk).into_iter();
        self.counts.iter().map(|&n| it.by_ref().take(n).collect()).collect()
    }
}

/// Grows `ws`'s buffers for `plan` (the head's only on the device that runs it, `last`) and
/// writes the pass's positions and scored rows.
fn prepare(gpu: &Gpu, model: &Decoder, ws: &mut Workspace, plan: &Plan, last: bool) -> Result<()> {
    let (tokens, rows) = (plan.tokens(), plan.gather.len());
    if ws.cache.as_ref().is_none_or(|c| c.rows < plan.need_rows) {
        bail!("internal: KV cache smaller than the batch ({} rows needed)", plan.need_rows);
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
    gpu.write(&ws.acts.as_ref().unwrap().meta, 0, bytemuck::cast_slice(&plan.meta));
    if last && rows > 0 {
        let (_, gather_buf, target_buf) = ws.score_rows.as_ref().unwrap();
        gpu.write(gather_buf, 0, bytemuck::cast_slice(&plan.gather));
        gpu.write(target_buf, 0, bytemuck::cast_slice(&plan.targets));
    }
    Ok(())
}

/// Records the pass's layers after the cache copies, and, if `last`, its head, into `rec`
/// (buffers [`prepare`]d, its inputs written: a pass of host-resident experts submits midway).
#[allow(clippy::too_many_arguments)]
fn record(rec: &mut Recorder, model: &Decoder, ws: &Workspace, plan: &Plan, copies: &[(usize, usize, usize)], segs: usize, topk: usize, last: bool) -> Result<()> {
    let (tokens, rows) = (plan.tokens(), plan.gather.len());
    let (acts, cache) = (ws.acts.as_ref().unwrap(), ws.cache.as_ref().unwrap());
    for &(rows, src, dst) in copies {
        if src + rows > cache.rows || dst + rows > cache.rows {
            bail!("internal: KV copy outside the cache");
        }
        cache.record_copy(rec, model.cfg.kv_dim(), rows, src, dst)?;
    }
    model.record_layers(rec, acts, tokens, segs, plan.keys, &cache.layers())?;
    if last && rows > 0 {
        let (_, gather_buf, target_buf) = ws.score_rows.as_ref().unwrap();
        model.record_head(rec, acts, rows, gather_buf, target_buf, topk, ws.head.as_ref().unwrap())?;
    }
    Ok(())
}

/// [`run`], after first duplicating cached rows: each `(rows, src, dst)` copies `rows` positions
/// from cache row `src` to `dst` (a shared context given to each continuation).
///
/// With `rest` (the later devices of a model split by layers) each device runs its layers in
/// one submission and hands the hidden states to the next through host memory: one readback
/// and one upload of `tokens × hidden` floats per boundary, nothing else.
pub fn run_after_copies(gpu: &Gpu, model: &Decoder, ws: &mut Workspace, rest: &mut [Stage], copies: &[(usize, usize, usize)], segs: &[Segment], topk: usize) -> Result<Vec<Vec<TokenScore>>> {
    if rest.is_empty() {
        return submit(gpu, model, ws, copies, segs, topk, None)?.finish(gpu);
    }
    let plan = Plan::new(model, segs)?;
    let tokens = plan.tokens();
    if tokens == 0 {
        return Ok(segs.iter().map(|_| Vec::new()).collect());
    }
    let rows = plan.gather.len();
    let n_stages = 1 + rest.len();
    let mut stages: Vec<(&Gpu, &Decoder, &mut Workspace)> = vec![(gpu, model, ws)];
    stages.extend(rest.iter_mut().map(|s| (&s.gpu, &s.model, &mut s.ws)));
    // The hidden states handed from one device to the next (host memory).
    let mut hidden: Vec<u8> = Vec::new();
    let mut words = Vec::new();
    for (i, (gpu, model, ws)) in stages.into_iter().enumerate() {
        let (first, last) = (i == 0, i + 1 == n_stages);
        prepare(gpu, model, ws, &plan, last)?;
        let acts = ws.acts.as_ref().unwrap();
        if first {
            gpu.write(&acts.ids, 0, bytemuck::cast_slice(&plan.ids));
        } else {
            gpu.write(acts.hidden(), 0, &hidden);
        }
        let mut rec = gpu.recorder();
        record(&mut rec, model, ws, &plan, copies, segs.len(), topk, last)?;
        let layers = model.layer_range();
        let what = format!("running layers {}..{} of a batch of {} sequences ({tokens} tokens) on device {i} ({})", layers.start, layers.end, segs.len(), gpu.info.name);
        // The results come back in the pass's own submission.
        if last {
            let b = rec.submit_read(&what, &ws.head.as_ref().unwrap().out, 0, (rows * logprobs::OUT_STRIDE * 4) as u64)?;
            words = bytemuck::pod_collect_to_vec(&b);
        } else {
            hidden = rec.submit_read(&what, acts.hidden(), 0, (tokens * model.cfg.hidden_size * 4) as u64)?;
        }
    }
    Ok(plan.split(&words, topk))
}

/// A pass submitted and not read yet ([`submit`]).
pub struct InFlight {
    state: Flight,
    /// The buffer its scores are written to, row after row of [`logprobs::OUT_STRIDE`] words,
    /// and the number of scored rows (None: no rows to take tokens from on the device).
    out: Option<(wgpu::Buffer, usize)>,
}

enum Flight {
    Running { pending: Pending, plan: Box<Plan>, topk: usize },
    Done(Vec<Vec<TokenScore>>),
}

impl InFlight {
    /// Waits for the pass and returns its scores per segment, as [`run`] does.
    pub fn finish(self, gpu: &Gpu) -> Result<Vec<Vec<TokenScore>>> {
        match self.state {
            Flight::Done(scores) => Ok(scores),
            Flight::Running { pending, plan, topk } => {
                let words: Vec<u32> = bytemuck::pod_collect_to_vec(&pending.wait(gpu)?);
                Ok(plan.split(&words, topk))
            }
        }
    }

    /// Whether a later pass can take tokens from this one on the device (see [`submit`]).
    pub fn chains(&self) -> bool {
        self.out.is_some()
    }
}

/// Passes submitted ahead of reading them back: the host prepares and records pass n + 1 while
/// the device runs pass n. Passes run in submission order whatever is read when, so a later pass
/// may use what an earlier one left in the cache; results come back oldest first, tagged.
#[derive(Default)]
pub struct Ahead {
    flights: std::collections::VecDeque<(usize, InFlight)>,
}

impl Ahead {
    /// Adds a submitted pass; with more than one in flight, waits for the oldest and returns it.
    pub fn push(&mut self, gpu: &Gpu, tag: usize, f: InFlight) -> Result<Option<(usize, Vec<Vec<TokenScore>>)>> {
        self.flights.push_back((tag, f));
        if self.flights.len() < 2 {
            return Ok(None);
        }
        let (tag, f) = self.flights.pop_front().unwrap();
        Ok(Some((tag, f.finish(gpu)?)))
    }

    /// Waits for the passes still in flight; their results, oldest first.
    pub fn finish(self, gpu: &Gpu) -> Result<Vec<(usize, Vec<Vec<TokenScore>>)>> {
        self.flights.into_iter().map(|(tag, f)| Ok((tag, f.finish(gpu)?))).collect()
    }
}

/// [`submit`] where the model is held by one device; where it is split over several (`rest`),
/// the pass runs at once (its result kept for [`InFlight::finish`]) and cannot be chained.
#[allow(clippy::too_many_arguments)]
pub fn submit_any(gpu: &Gpu, model: &Decoder, ws: &mut Workspace, rest: &mut [Stage], copies: &[(usize, usize, usize)], segs: &[Segment], topk: usize, chain: Option<(&InFlight, &[(usize, usize)])>) -> Result<InFlight> {
    if rest.is_empty() {
        return submit(gpu, model, ws, copies, segs, topk, chain);
    }
    if chain.is_some_and(|c| !c.1.is_empty()) {
        bail!("internal: chained tokens on a model split over devices");
    }
    Ok(InFlight { state: Flight::Done(run_after_copies(gpu, model, ws, rest, copies, segs, topk)?), out: None })
}

/// Records and submits `segs` (after the cache `copies`) on a model held by one device, without
/// waiting: the host can prepare the next pass while this one runs.
///
/// With `chain = Some((prev, links))`, each `(index, row)` link makes token `index` of this pass
/// (a placeholder in its segment) the argmax of scored row `row` of `prev`, copied on the device
/// before the pass runs: a decode step can be submitted before the step that picks its input
/// has been read back. The numbers are those of the same pass given the token by the host.
pub fn submit(gpu: &Gpu, model: &Decoder, ws: &mut Workspace, copies: &[(usize, usize, usize)], segs: &[Segment], topk: usize, chain: Option<(&InFlight, &[(usize, usize)])>) -> Result<InFlight> {
    let plan = Plan::new(model, segs)?;
    let (tokens, rows) = (plan.tokens(), plan.gather.len());
    if tokens == 0 {
        if chain.is_some_and(|c| !c.1.is_empty()) {
            bail!("internal: chained tokens in an empty pass");
        }
        return Ok(InFlight { state: Flight::Done(segs.iter().map(|_| Vec::new()).collect()), out: None });
    }
    prepare(gpu, model, ws, &plan, true)?;
    let acts = ws.acts.as_ref().unwrap();
    gpu.write(&acts.ids, 0, bytemuck::cast_slice(&plan.ids));
    let mut rec = gpu.recorder();
    if let Some((prev, links)) = chain {
        for &(index, row) in links {
            let out = prev.out.as_ref().filter(|o| row < o.1).context("internal: a chained token from a row the previous pass did not score")?;
            if index >= tokens {
                bail!("internal: a chained token outside the pass");
            }
            // Word 1 of a scored row is its argmax (logprobs.wgsl).
            rec.copy_first(&out.0, ((row * logprobs::OUT_STRIDE + 1) * 4) as u64, &acts.ids, (index * 4) as u64, 4);
        }
    }
    record(&mut rec, model, ws, &plan, copies, segs.len(), topk, true)?;
    let what = format!("running a batch of {} sequences ({tokens} tokens)", segs.len());
    let out = ws.head.as_ref().unwrap().out.clone();
    let pending = rec.submit_read_later(&what, &out, 0, (rows.max(1) * logprobs::OUT_STRIDE * 4) as u64)?;
    Ok(InFlight { state: Flight::Running { pending, plan: Box::new(plan), topk }, out: Some((out, rows)) })
}
