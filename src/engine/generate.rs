//! Greedy generation: prefill the prompts, then decode one token per sequence per step with
//! the matrix-vector path, stopping at EOS, a stop string or the token limit.

use anyhow::{bail, Result};

use super::batch::{run, run_after_copies, Segment};
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
    req: usize,
    /// Cache row of the sequence's position 0.
    base: usize,
    gen: Vec<u32>,
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
        let mut free: Vec<usize> = (0..slots).rev().map(|s| root.len() + s * slot_rows).collect();
        let mut active: Vec<Slot> = Vec::with_capacity(slots);
        let max_prefill = self.opts.max_batch_tokens.max(1);
        while !active.is_empty() || !queue.is_empty() {
            // This pass: the next token of every active sequence, then prompts of new ones into
            // free slots while the pass stays under `max_batch_tokens` (at least one prompt).
            let last: Vec<u32> = active.iter().map(|s| *s.gen.last().unwrap()).collect();
            let mut segs: Vec<Segment> = active
                .iter()
                .zip(&last)
                .map(|(s, t)| Segment { tokens: std::slice::from_ref(t), start_pos: prompts[s.req].len() + s.gen.len() - 1, base: s.base, score: vec![(0, NO_TARGET)] })
                .collect();
            let (decoded, mut prefill_tokens) = (segs.len(), 0);
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
                active.push(Slot { req: i, base, gen: Vec::new() });
            }
            let out = run_after_copies(&self.gpu, &self.model, &mut self.ws, &mut self.rest, &copies, &segs, 0)?;
            after_pass(Pass { decoded, prompts: segs.len() - decoded });
            drop(segs);
            debug_assert_eq!(out.len(), active.len());
            let mut still = Vec::with_capacity(slots);
            for (mut s, sc) in active.drain(..).zip(out) {
                let next = sc[0].argmax;
                let r = &reqs[s.req];
                let stop = if eos.contains(&next) {
                    Some(StopReason::Eos)
                } else {
                    s.gen.push(next);
                    if cut_at_stop(&self.tokenizer.decode(&s.gen)?, &r.until).1 {
                        Some(StopReason::StopString)
                    } else if s.gen.len() >= r.max_tokens {
                        Some(StopReason::MaxTokens)
                    } else {
                        None
                    }
                };
                match stop {
                    Some(stop) => {
                        let text = cut_at_stop(&self.tokenizer.decode(&s.gen)?, &r.until).0;
                        results[s.req] = Some(Generation { tokens: std::mem::take(&mut s.gen), text, stop });
                        free.push(s.base);
                    }
                    None => still.push(s),
                }
            }
            active = still;
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
