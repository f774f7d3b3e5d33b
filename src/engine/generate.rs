//! Greedy generation: prefill the prompts, then decode one token per sequence per step with
//! the matrix-vector path, stopping at EOS, a stop string or the token limit.

use anyhow::{bail, Context, Result};

use super::batch::{run, submit_any, InFlight, Segment};
use super::prefix::shared_prefix;
use super::requests::{cut_at_stop, generation_context, stop_sequences, Encode};
use super::Engine;
use crate::kernels::logprobs::NO_TARGET;

#[derive(Clone, Debug)]
pub struct GenRequest {
    pub prompt: Vec<u32>,
    pub until: Vec<String>,
    pub max_tokens: usize,
}

/// lm-eval's `generate_until` request: a text context, stop strings and a token budget.
#[derive(Clone, Debug)]
pub struct UntilRequest {
    pub context: String,
    pub until: Vec<String>,
    pub max_gen_toks: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Eos,
    StopString,
    MaxTokens,
}

#[derive(Clone, Debug)]
pub struct Generation {
    /// Generated ids, EOS excluded.
    pub tokens: Vec<u32>,
    /// Decoded text, cut before the first stop string.
    pub text: String,
    pub stop: StopReason,
}

/// What one pass of [`Engine::generate_observed`] did.
#[derive(Clone, Copy, Debug)]
pub struct Pass {
    /// Sequences that decoded their next token.
    pub decoded: usize,
    /// Prompts prefilled (each yielding its sequence's first token).
    pub prompts: usize,
}

/// A sequence being decoded in one slot of the KV cache.
struct Slot {
    /// Names the slot in the passes that compute its tokens (unique within a call).
    id: usize,
    req: usize,
    /// Cache row of the sequence's position 0.
    base: usize,
    /// Generated tokens read back so far.
    gen: Vec<u32>,
    /// Generated tokens whose computation has been submitted: `gen.len()` or one more (the
    /// pass in flight computes it).
    issued: usize,
}

/// A submitted pass: which slot each of its scored rows belongs to, and what it holds.
struct Submitted {
    flight: InFlight,
    slots: Vec<usize>,
    prompts: usize,
}

impl Engine {
    /// lm-eval `generate_until` on token prompts, greedily, with continuous batching: up to
    /// `batch_size` sequences decode together, and a finished one's slot is refilled at once
    /// with the next request (its prompt prefilled in the same pass as the others' next token).
    /// Each sequence's tokens do not depend on its batch: every kernel computes a row the same
    /// way whatever shares the pass.
    pub fn generate(&mut self, reqs: &[GenRequest]) -> Result<Vec<Generation>> {
        self.generate_observed(reqs, &mut |_| {})
    }

    /// [`generate`](Self::generate), calling `after_pass` once each pass has run and its tokens
    /// are read: `pingce bench` times the decode steps after the last pass that prefilled prompts.
    ///
    /// On a model held by one device (and unless `opts.pipeline` is off) each step is submitted
    /// before the step before it is read back, its input tokens copied from that step's argmax
    /// on the device: the host checks stops and records the next step while the device runs,
    /// instead of the device waiting on the host between steps. A sequence that turns out to
    /// have stopped has run one step more, whose result is dropped (its cache rows are past its
    /// end and written afresh by the slot's next sequence); no number changes.
    pub fn generate_observed(&mut self, reqs: &[GenRequest], after_pass: &mut dyn FnMut(Pass)) -> Result<Vec<Generation>> {
        let max_len = self.max_length();
        let prefix = self.tokenizer.prefix_token()?;
        let eos: Vec<u32> = self.tokenizer.eos_id.into_iter().chain(self.model.cfg.eos_token_ids.iter().copied()).collect();
        let prompts: Vec<Vec<u32>> = reqs.iter().map(|r| if r.prompt.is_empty() { vec![prefix] } else { r.prompt.clone() }).collect();
        let mut slot_rows = 0;
        for (i, (r, p)) in reqs.iter().zip(&prompts).enumerate() {
            if p.len() + r.max_tokens > max_len {
                bail!("generation request {i}: prompt of {} tokens + {} new tokens exceeds the model's context of {max_len}", p.len(), r.max_tokens);
            }
            if r.max_tokens > 0 {
                slot_rows = slot_rows.max(p.len() + r.max_tokens);
            }
        }
        let mut results: Vec<Option<Generation>> = vec![None; reqs.len()];
        // Requests with no token budget finish without running.
        let mut queue = std::collections::VecDeque::new();
        for (i, r) in reqs.iter().enumerate() {
            if r.max_tokens == 0 {
                results[i] = Some(Generation { tokens: Vec::new(), text: String::new(), stop: StopReason::MaxTokens });
            } else {
                queue.push_back(i);
            }
        }
        let slots = self.opts.batch_size.max(1).min(queue.len());
        if slots == 0 {
            return Ok(results.into_iter().map(Option::unwrap).collect());
        }
        // The first prompt's rows stay in cache rows 0..root.len() when later prompts begin like
        // it (the same few-shot examples): each starts from a copy of what it shares.
        let first = &prompts[*queue.front().unwrap()];
        let root: &[u32] = if self.opts.share_prefixes && queue.iter().skip(1).any(|&i| shared_prefix(&prompts[i], first) > 0) { first } else { &[] };
        super::batch::ensure_cache(&self.gpu, &self.model, &mut self.ws, &mut self.rest, root.len() + slots * slot_rows)?;
        if !root.is_empty() {
            run(&self.gpu, &self.model, &mut self.ws, &mut self.rest, &[Segment { tokens: root, start_pos: 0, base: 0, score: vec![(root.len() - 1, NO_TARGET)] }], 0)?;
        }
        let pipelined = self.rest.is_empty() && self.opts.pipeline;
        let mut free: Vec<usize> = (0..slots).rev().map(|s| root.len() + s * slot_rows).collect();
        let mut active: Vec<Slot> = Vec::with_capacity(slots);
        let mut next_id = 0;
        let max_prefill = self.opts.max_batch_tokens.max(1);
        let mut flight: Option<Submitted> = None;
        // Reads a finished pass: each row's token goes to its slot, if that is still running.
        let mut read = |this: &mut Engine, done: Submitted, active: &mut Vec<Slot>, free: &mut Vec<usize>, results: &mut Vec<Option<Generation>>| -> Result<()> {
            let out = done.flight.finish(&this.gpu)?;
            debug_assert_eq!(out.len(), done.slots.len());
            // Rows of decode steps come first, then the prompts'.
            let steps = done.slots.len() - done.prompts;
            let mut decoded = 0;
            for (row, (id, sc)) in done.slots.iter().zip(out).enumerate() {
                // A sequence that stopped in the pass before ran this step for nothing.
                let Some(k) = active.iter().position(|s| s.id == *id) else { continue };
                decoded += usize::from(row < steps);
                let s = &mut active[k];
                let next = sc[0].argmax;
                let r = &reqs[s.req];
                let stop = if eos.contains(&next) {
                    Some(StopReason::Eos)
                } else {
                    s.gen.push(next);
                    if cut_at_stop(&this.tokenizer.decode(&s.gen)?, &r.until).1 {
                        Some(StopReason::StopString)
                    } else if s.gen.len() >= r.max_tokens {
                        Some(StopReason::MaxTokens)
                    } else {
                        None
                    }
                };
                if let Some(stop) = stop {
                    let mut s = active.remove(k);
                    let text = cut_at_stop(&this.tokenizer.decode(&s.gen)?, &r.until).0;
                    results[s.req] = Some(Generation { tokens: std::mem::take(&mut s.gen), text, stop });
                    free.push(s.base);
                }
            }
            after_pass(Pass { decoded, prompts: done.prompts });
            Ok(())
        };
        while !active.is_empty() || !queue.is_empty() || flight.is_some() {
            if !pipelined {
                if let Some(done) = flight.take() {
                    read(self, done, &mut active, &mut free, &mut results)?;
                }
            }
            // The next pass: a step of every sequence that wants another token (its input read
            // back, or, in flight, taken from the pass before on the device), then prompts of new
            // ones into free slots while the pass stays under `max_batch_tokens` (at least one).
            let mut inputs: Vec<u32> = Vec::with_capacity(active.len());
            let mut steps = Vec::with_capacity(active.len());
            let mut links = Vec::new();
            let mut row_slots = Vec::with_capacity(slots);
            for s in active.iter_mut().filter(|s| s.issued < reqs[s.req].max_tokens) {
                // Generated token `issued - 1` is the input, at position prompt + issued - 1.
                let input = s.issued - 1;
                match s.gen.get(input) {
                    Some(&t) => inputs.push(t),
                    None => {
                        let prev = flight.as_ref().context("internal: a generated token neither read nor in flight")?;
                        let row = prev.slots.iter().position(|&id| id == s.id).context("internal: a generated token missing from the pass in flight")?;
                        links.push((steps.len(), row));
                        inputs.push(0);
                    }
                }
                steps.push((prompts[s.req].len() + input, s.base));
                row_slots.push(s.id);
                s.issued += 1;
            }
            let mut segs: Vec<Segment> = steps.iter().zip(&inputs).map(|(&(pos, base), t)| Segment { tokens: std::slice::from_ref(t), start_pos: pos, base, score: vec![(0, NO_TARGET)] }).collect();
            let decoded = segs.len();
            let mut prefill_tokens = 0;
            let mut copies = Vec::new();
            while let (Some(&i), Some(&base)) = (queue.front(), free.last()) {
                let p = &prompts[i];
                let shared = shared_prefix(p, root);
                if prefill_tokens > 0 && prefill_tokens + p.len() - shared > max_prefill {
                    break;
                }
                prefill_tokens += p.len() - shared;
                queue.pop_front();
                free.pop();
                if shared > 0 {
                    copies.push((shared, 0, base));
                }
                segs.push(Segment { tokens: &p[shared..], start_pos: shared, base, score: vec![(p.len() - 1 - shared, NO_TARGET)] });
                active.push(Slot { id: next_id, req: i, base, gen: Vec::new(), issued: 1 });
                row_slots.push(next_id);
                next_id += 1;
            }
            let next = if segs.is_empty() {
                None
            } else {
                let chain = flight.as_ref().filter(|f| f.flight.chains()).map(|f| (&f.flight, links.as_slice()));
                if chain.is_none() && !links.is_empty() {
                    bail!("internal: chained tokens with no pass to take them from");
                }
                let flight = submit_any(&self.gpu, &self.model, &mut self.ws, &mut self.rest, &copies, &segs, 0, chain)?;
                Some(Submitted { flight, slots: row_slots, prompts: segs.len() - decoded })
            };
            drop(segs);
            if let Some(done) = flight.take() {
                read(self, done, &mut active, &mut free, &mut results)?;
            }
            flight = next;
        }
        Ok(results.into_iter().map(|g| g.expect("every request finished")).collect())
    }

    /// lm-eval `generate_until`: the EOS token's text joins the stop strings, the context is
    /// left-truncated to `max_length - max_gen_toks` tokens, and the text is cut at the first stop.
    pub fn generate_until(&mut self, reqs: &[UntilRequest]) -> Result<Vec<Generation>> {
        let eos_text = match self.tokenizer.eos_id {
            Some(id) => Some(self.tokenizer.decode(&[id])?),
            None => None,
        };
        let mut gen = Vec::with_capacity(reqs.len());
        for r in reqs {
            let tokens = self.tokenizer.encode(&r.context)?;
            gen.push(GenRequest {
                prompt: generation_context(&tokens, self.max_length(), r.max_gen_toks)?,
                until: stop_sequences(r.until.clone(), eos_text.as_deref()),
                max_tokens: r.max_gen_toks,
            });
        }
        self.generate(&gen)
    }

    /// Teacher-forced incremental decode: prefill `tokens[..prefix]`, then feed the rest one at a
    /// time through the decode path, returning the log-prob of every token after the prefix.
    /// Used to check that prefill and decode agree.
    pub fn score_incremental(&mut self, tokens: &[u32], prefix: usize) -> Result<Vec<f32>> {
        if prefix == 0 || prefix >= tokens.len() {
            bail!("prefix must be in 1..{}", tokens.len());
        }
        super::batch::ensure_cache(&self.gpu, &self.model, &mut self.ws, &mut self.rest, tokens.len())?;
        let seg = Segment { tokens: &tokens[..prefix], start_pos: 0, base: 0, score: vec![(prefix - 1, tokens[prefix])] };
        let mut lps = vec![run(&self.gpu, &self.model, &mut self.ws, &mut self.rest, &[seg], 0)?[0][0].logprob];
        for p in prefix..tokens.len() - 1 {
            let seg = Segment { tokens: &tokens[p..p + 1], start_pos: p, base: 0, score: vec![(0, tokens[p + 1])] };
            lps.push(run(&self.gpu, &self.model, &mut self.ws, &mut self.rest, &[seg], 0)?[0][0].logprob);
        }
        Ok(lps)
    }
}
