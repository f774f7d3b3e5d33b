//! Greedy generation: prefill the prompts, then decode one token per sequence per step with
//! the matrix-vector path, stopping at EOS, a stop string or the token limit.

use anyhow::{bail, Result};

use super::batch::{run, Segment};
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

impl Engine {
    /// lm-eval `generate_until` on token prompts, greedily. Batches of `batch_size` prompts
    /// decode together; each sequence's tokens do not depend on its batch.
    pub fn generate(&mut self, reqs: &[GenRequest]) -> Result<Vec<Generation>> {
        let max_len = self.max_length();
        let prefix = self.tokenizer.prefix_token()?;
        let eos: Vec<u32> = self.tokenizer.eos_id.into_iter().chain(self.model.cfg.eos_token_ids.iter().copied()).collect();
        let mut results = Vec::with_capacity(reqs.len());
        for chunk in reqs.chunks(self.opts.batch_size.max(1)) {
            let prompts: Vec<Vec<u32>> = chunk.iter().map(|r| if r.prompt.is_empty() { vec![prefix] } else { r.prompt.clone() }).collect();
            let mut bases = Vec::with_capacity(chunk.len());
            let mut rows = 0;
            for (i, (r, p)) in chunk.iter().zip(&prompts).enumerate() {
                if p.len() + r.max_tokens > max_len {
                    bail!("generation request {i}: prompt of {} tokens + {} new tokens exceeds the model's context of {max_len}", p.len(), r.max_tokens);
                }
                bases.push(rows);
                rows += p.len() + r.max_tokens;
            }
            super::batch::ensure_cache(&self.gpu, &self.model, &mut self.ws, &mut self.rest, rows)?;
            let mut gen: Vec<Vec<u32>> = vec![Vec::new(); chunk.len()];
            let mut done: Vec<Option<StopReason>> = chunk.iter().map(|r| (r.max_tokens == 0).then_some(StopReason::MaxTokens)).collect();
            // Prefill: only the last prompt position is scored (its argmax is the first token).
            let segs: Vec<Segment> = prompts
                .iter()
                .zip(&bases)
                .map(|(p, &base)| Segment { tokens: p, start_pos: 0, base, score: vec![(p.len() - 1, NO_TARGET)] })
                .collect();
            let mut next: Vec<u32> = run(&self.gpu, &self.model, &mut self.ws, &mut self.rest, &segs, 0)?.iter().map(|s| s[0].argmax).collect();
            loop {
                for i in 0..chunk.len() {
                    if done[i].is_some() {
                        continue;
                    }
                    if eos.contains(&next[i]) {
                        done[i] = Some(StopReason::Eos);
                        continue;
                    }
                    gen[i].push(next[i]);
                    if cut_at_stop(&self.tokenizer.decode(&gen[i])?, &chunk[i].until).1 {
                        done[i] = Some(StopReason::StopString);
                    } else if gen[i].len() >= chunk[i].max_tokens {
                        done[i] = Some(StopReason::MaxTokens);
                    }
                }
                let active: Vec<usize> = (0..chunk.len()).filter(|&i| done[i].is_none()).collect();
                if active.is_empty() {
                    break;
                }
                let segs: Vec<Segment> = active
                    .iter()
                    .map(|&i| Segment {
                        tokens: std::slice::from_ref(gen[i].last().unwrap()),
                        start_pos: prompts[i].len() + gen[i].len() - 1,
                        base: bases[i],
                        score: vec![(0, NO_TARGET)],
                    })
                    .collect();
                let out = run(&self.gpu, &self.model, &mut self.ws, &mut self.rest, &segs, 0)?;
                for (&i, s) in active.iter().zip(out) {
                    next[i] = s[0].argmax;
                }
            }
            for (i, tokens) in gen.into_iter().enumerate() {
                let text = cut_at_stop(&self.tokenizer.decode(&tokens)?, &chunk[i].until).0;
                results.push(Generation { tokens, text, stop: done[i].unwrap() });
            }
        }
        Ok(results)
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
