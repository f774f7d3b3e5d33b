//! Scoring: log-probabilities of given tokens, for loglikelihood and loglikelihood_rolling.

use anyhow::{bail, Context, Result};

use super::batch::{submit_any, Ahead, Segment};
use super::choices::ChoicePlan;
use super::requests::{loglikelihood_tokens, rolling_windows};
use super::Engine;
use crate::kernels::logprobs::TokenScore;

/// Score `tokens[score_from..]`, each given the tokens before it.
#[derive(Clone, Debug)]
pub struct ScoreRequest {
    pub tokens: Vec<u32>,
    pub score_from: usize,
}

/// A scored continuation.
#[derive(Clone, Debug)]
pub struct Scored {
    pub context_tokens: Vec<u32>,
    pub continuation_tokens: Vec<u32>,
    pub logprobs: Vec<f32>,
    pub is_greedy: Vec<bool>,
    pub topk: Vec<Vec<(u32, f32)>>,
}

impl Scored {
    /// A continuation's result from the scores of its tokens, in order.
    pub fn new(context_tokens: Vec<u32>, continuation_tokens: Vec<u32>, s: &[TokenScore]) -> Scored {
        Scored {
            logprobs: s.iter().map(|x| x.logprob).collect(),
            is_greedy: s.iter().zip(&continuation_tokens).map(|(x, &id)| x.argmax == id).collect(),
            topk: s.iter().map(|x| x.topk.clone()).collect(),
            context_tokens,
            continuation_tokens,
        }
    }

    /// Sum of the log-probs, accumulated in f64 in token order.
    pub fn sum_logprob(&self) -> f64 {
        self.logprobs.iter().map(|&x| x as f64).sum()
    }
    /// Every continuation token is the argmax (lm-eval's is_greedy).
    pub fn all_greedy(&self) -> bool {
        self.is_greedy.iter().all(|&g| g)
    }
}

impl Engine {
    /// Scores each request's tokens from `score_from` on. Requests are packed into passes by
    /// length; results do not depend on the packing (see tests/models.rs).
    pub fn score(&mut self, reqs: &[ScoreRequest], topk: usize) -> Result<Vec<Vec<TokenScore>>> {
        for (i, r) in reqs.iter().enumerate() {
            if r.score_from == 0 || r.score_from > r.tokens.len() {
                bail!("request {i}: score_from {} must be in 1..={}", r.score_from, r.tokens.len());
            }
            // The last token is only a target: max_length + 1 tokens fit, as in lm-eval.
            if r.tokens.len() > self.max_length() + 1 {
                bail!("request {i}: {} tokens, longer than the model's context of {} (+1 target)", r.tokens.len(), self.max_length());
            }
        }
        // Longest first, as lm-eval orders requests: fewer, fuller passes.
        let mut order: Vec<usize> = (0..reqs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(reqs[i].tokens.len()));
        let mut results: Vec<Vec<TokenScore>> = vec![Vec::new(); reqs.len()];
        // Each pass is submitted before the one before it is read (`Ahead`); a pass's tag is the
        // index of its requests in `passes`, whose scores go to those requests in order.
        let mut passes: Vec<Vec<usize>> = Vec::new();
        let mut ahead = Ahead::default();
        let mut take = |done: Option<(usize, Vec<Vec<TokenScore>>)>, passes: &[Vec<usize>]| {
            if let Some((tag, out)) = done {
                for (&i, o) in passes[tag].iter().zip(out) {
                    results[i].extend(o);
                }
            }
        };
        let mut k = 0;
        while k < order.len() {
            // A request longer than a pass holds (its activations would outgrow the adapter's
            // bindings) runs alone, in consecutive passes over its KV cache: each token's
            // attention reads the same keys in the same order as in one pass, so the scores are
            // bit-identical (tests/models.rs).
            let r = &reqs[order[k]];
            let pass = self.opts.max_batch_tokens.max(1);
            if r.tokens.len() - 1 > pass {
                super::batch::ensure_cache(&self.gpu, &self.model, &mut self.ws, &mut self.rest, r.tokens.len())?;
                let mut s = 0;
                while s < r.tokens.len() - 1 {
                    let e = (s + pass).min(r.tokens.len() - 1);
                    let score = (r.score_from.max(s + 1)..=e).map(|p| (p - 1 - s, r.tokens[p])).collect();
                    let seg = Segment { tokens: &r.tokens[s..e], start_pos: s, base: 0, score };
                    let f = submit_any(&self.gpu, &self.model, &mut self.ws, &mut self.rest, &[], std::slice::from_ref(&seg), topk, None)?;
                    passes.push(vec![order[k]]);
                    take(ahead.push(&self.gpu, passes.len() - 1, f)?, &passes);
                    s = e;
                }
                k += 1;
                continue;
            }
            let mut batch = vec![order[k]];
            let mut total = reqs[order[k]].tokens.len();
            k += 1;
            while k < order.len() && batch.len() < self.opts.batch_size && total + reqs[order[k]].tokens.len() <= self.opts.max_batch_tokens {
                total += reqs[order[k]].tokens.len();
                batch.push(order[k]);
                k += 1;
            }
            let mut segs = Vec::with_capacity(batch.len());
            let mut base = 0;
            for &i in &batch {
                let r = &reqs[i];
                // The output at row p predicts token p + 1: score rows score_from-1 .. len-1.
                let score = (r.score_from..r.tokens.len()).map(|p| (p - 1, r.tokens[p])).collect();
                // The last token is only a target: it need not run through the model.
                segs.push(Segment { tokens: &r.tokens[..r.tokens.len() - 1], start_pos: 0, base, score });
                base += r.tokens.len();
            }
            super::batch::ensure_cache(&self.gpu, &self.model, &mut self.ws, &mut self.rest, base)?;
            let f = submit_any(&self.gpu, &self.model, &mut self.ws, &mut self.rest, &[], &segs, topk, None)?;
            passes.push(batch);
            take(ahead.push(&self.gpu, passes.len() - 1, f)?, &passes);
        }
        for done in ahead.finish(&self.gpu)? {
            take(Some(done), &passes);
        }
        Ok(results)
    }

    /// Whole log-softmax rows (vocabulary-wide) predicting `tokens[p + 1]` for each p in
    /// `positions`, for conformance dumps of a few thousand positions at most.
    pub fn full_logprob_rows(&mut self, tokens: &[u32], positions: &[usize]) -> Result<Vec<Vec<f32>>> {
        if tokens.len() > self.max_length() {
            bail!("{} tokens, longer than the model's context of {}", tokens.len(), self.max_length());
        }
        if let Some(&p) = positions.iter().find(|&&p| p >= tokens.len()) {
            bail!("position {p} is outside the {} tokens", tokens.len());
        }
        super::batch::full_rows(&self.gpu, &self.model, &mut self.ws, &mut self.rest, tokens, positions)
    }

    /// Encodes a loglikelihood request as lm-eval does ([`loglikelihood_tokens`]) and checks
    /// that it can be scored: the context and the continuation each encode to tokens, and
    /// together they fit the model's context plus the one token that is only a target (pingce
    /// refuses where lm-eval would silently cut the context from the left).
    pub fn encode_request(&self, context: &str, continuation: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        let prefix = self.tokenizer.prefix_token()?;
        let (c, t) = loglikelihood_tokens(&self.tokenizer, context, continuation, prefix)?;
        if t.is_empty() {
            bail!("the continuation {:?} encodes to no tokens", preview(continuation));
        }
        if c.is_empty() {
            bail!("the context encodes to no tokens (whitespace only?)");
        }
        if c.len() + t.len() > self.max_length() + 1 {
            bail!("{} tokens, longer than the model's context of {}", c.len() + t.len(), self.max_length());
        }
        Ok((c, t))
    }

    /// lm-eval `loglikelihood`: log P(continuation | context) per request, token by token.
    /// Errors name the request (1-based).
    pub fn loglikelihood(&mut self, pairs: &[(String, String)], topk: usize) -> Result<Vec<Scored>> {
        let mut encoded = Vec::with_capacity(pairs.len());
        let mut reqs = Vec::with_capacity(pairs.len());
        for (i, (ctx, cont)) in pairs.iter().enumerate() {
            let (c, t) = self.encode_request(ctx, cont).with_context(|| format!("request {}", i + 1))?;
            let mut tokens = c.clone();
            tokens.extend(&t);
            reqs.push(ScoreRequest { tokens, score_from: c.len() });
            encoded.push((c, t));
        }
        let scores = self.score(&reqs, topk)?;
        Ok(encoded
            .into_iter()
            .zip(scores)
            .map(|((c, t), s)| Scored::new(c, t, &s))
            .collect())
    }

    /// Multiple-choice scoring: for each (context, continuations) item, the context is prefilled
    /// once and every continuation is scored from a copy of its KV cache; a context that begins
    /// like the first one starts from a copy of its rows, kept from batch to batch
    /// ([`ChoicePlan`]). Bit-identical to [`loglikelihood`](Self::loglikelihood) on the separate
    /// pairs (tests/models.rs).
    pub fn loglikelihood_choices(&mut self, items: &[(String, Vec<String>)]) -> Result<Vec<Vec<Scored>>> {
        let prefix = self.tokenizer.prefix_token()?;
        // Encode every pair as lm-eval does; the context tokens are the same for every choice.
        let mut enc: Vec<(Vec<u32>, Vec<Vec<u32>>)> = Vec::with_capacity(items.len());
        for (ctx, conts) in items {
            let mut c0: Option<Vec<u32>> = None;
            let mut ts = Vec::with_capacity(conts.len());
            for cont in conts {
                let (c, t) = self.encode_request(ctx, cont)?;
                match &c0 {
                    Some(prev) if *prev != c => bail!("internal: context tokens differ between choices"),
                    _ => c0 = Some(c),
                }
                ts.push(t);
            }
            enc.push((c0.unwrap_or_else(|| vec![prefix]), ts));
        }
        let scores = self.score_choice_items(&enc)?;
        Ok(enc.into_iter().zip(scores).map(|((c, ts), ss)| ts.into_iter().zip(ss).map(|(t, s)| Scored::new(c.clone(), t, &s)).collect()).collect())
    }

    /// lm-eval `loglikelihood` for items whose choices differ in their contexts and share the
    /// continuation (Winogrande: the sentence up to the blank with each option, then the rest).
    /// The choices' contexts begin alike: the tokens they all begin with are prefilled once and
    /// each choice continues from a copy of those rows, scoring only its continuation ([`ChoicePlan`]
    /// with those tokens as the context). Bit-identical to [`loglikelihood`](Self::loglikelihood)
    /// on each item's pairs, which it falls back to where the contexts share no token or
    /// `share_prefixes` is off (tests/models.rs).
    pub fn loglikelihood_choice_contexts(&mut self, items: &[Vec<(String, String)>]) -> Result<Vec<Vec<Scored>>> {
        let mut shared = Vec::new();
        let mut plain = Vec::new();
        // Per item: whether it is shared, and its encoded pairs.
        let mut encoded: Vec<(bool, Vec<(Vec<u32>, Vec<u32>)>)> = Vec::with_capacity(items.len());
        for pairs in items {
            let enc: Vec<(Vec<u32>, Vec<u32>)> = pairs.iter().map(|(c, t)| self.encode_request(c, t)).collect::<Result<_>>()?;
            // The context tokens every choice begins with, leaving each choice's last context
            // token to be computed (it scores the continuation's first token).
            let common = enc.iter().map(|(c, _)| c.len()).min().unwrap_or(0);
            let common = (0..common).take_while(|&i| enc.iter().all(|(c, _)| c[i] == enc[0].0[i])).count();
            let p = common.min(enc.iter().map(|(c, _)| c.len() - 1).min().unwrap_or(0));
            let share = self.opts.share_prefixes && p >= 1 && enc.len() > 1;
            if share {
                shared.push((enc[0].0[..p].to_vec(), enc.iter().map(|(c, t)| c[p..].iter().chain(t).copied().collect()).collect::<Vec<Vec<u32>>>()));
            } else {
                plain.extend(pairs.iter().cloned());
            }
            encoded.push((share, enc));
        }
        let mut shared_scores = self.score_choice_items(&shared)?.into_iter();
        let mut plain_scores = self.loglikelihood(&plain, 0)?.into_iter();
        let mut out = Vec::with_capacity(items.len());
        for (share, enc) in encoded {
            if share {
                let ss = shared_scores.next().unwrap();
                // Each choice's scores cover its own context tokens after the shared ones, then its
                // continuation: keep the continuation's.
                out.push(enc.into_iter().zip(ss).map(|((c, t), s)| { let from = s.len() - t.len(); Scored::new(c, t, &s[from..]) }).collect());
            } else {
                out.push(enc.iter().map(|_| plain_scores.next().unwrap()).collect());
            }
        }
        Ok(out)
    }

    /// The scores of every continuation token of `enc`'s items ((context, continuations) token
    /// lists), per item and continuation, by [`ChoicePlan`]s in batches.
    fn score_choice_items(&mut self, enc: &[(Vec<u32>, Vec<Vec<u32>>)]) -> Result<Vec<Vec<Vec<TokenScore>>>> {
        // Items per batch: within the batch size (counted in continuations) and token budget.
        let mut batches = Vec::new();
        let mut k = 0;
        while k < enc.len() {
            let mut end = k;
            let (mut conts, mut toks) = (0, 0);
            while end < enc.len() {
                let (c, ts) = &enc[end];
                let t: usize = c.len() + ts.iter().map(|t| t.len()).sum::<usize>();
                if end > k && (conts + ts.len() > self.opts.batch_size.max(1) || toks + t > self.opts.max_batch_tokens) {
                    break;
                }
                conts += ts.len();
                toks += t;
                end += 1;
            }
            batches.push(k..end);
            k = end;
        }
        // The first context stays in the cache's first rows for the later batches to copy from,
        // so the cache is sized once for every batch (growing it would drop those rows).
        let root = enc.first().filter(|_| self.opts.share_prefixes).map(|e| e.0.as_slice()).unwrap_or(&[]);
        let plans: Vec<ChoicePlan> = batches.iter().enumerate().map(|(i, r)| ChoicePlan::new(&enc[r.clone()], root, i > 0)).collect();
        super::batch::ensure_cache(&self.gpu, &self.model, &mut self.ws, &mut self.rest, plans.iter().map(|p| p.rows).max().unwrap_or(0))?;
        // Every pass of every batch, each submitted before the one before it is read (`Ahead`):
        // scores[b][j] of batch b's pass j.
        let mut scores: Vec<Vec<Vec<Vec<TokenScore>>>> = plans.iter().map(|p| vec![Vec::new(); p.segs.len()]).collect();
        let tags: Vec<(usize, usize)> = plans.iter().enumerate().flat_map(|(b, p)| (0..p.segs.len()).map(move |j| (b, j))).collect();
        let mut ahead = Ahead::default();
        for (tag, &(b, j)) in tags.iter().enumerate() {
            let f = submit_any(&self.gpu, &self.model, &mut self.ws, &mut self.rest, &plans[b].copies[j], &plans[b].segs[j], 0, None)?;
            if let Some((t, out)) = ahead.push(&self.gpu, tag, f)? {
                scores[tags[t].0][tags[t].1] = out;
            }
        }
        for (t, out) in ahead.finish(&self.gpu)? {
            scores[tags[t].0][tags[t].1] = out;
        }
        let mut results: Vec<Vec<Vec<TokenScore>>> = Vec::with_capacity(enc.len());
        for ((range, plan), mut scores) in batches.into_iter().zip(&plans).zip(scores) {
            for ((_, ts), ((hs, hi), tails)) in enc[range].iter().zip(&plan.items) {
                let firsts = std::mem::take(&mut scores[*hs][*hi]);
                let mut item = Vec::with_capacity(ts.len());
                for (s0, tail) in firsts.into_iter().zip(tails) {
                    let mut s = vec![s0];
                    if let Some((st, si)) = tail {
                        s.extend(std::mem::take(&mut scores[*st][*si]));
                    }
                    item.push(s);
                }
                results.push(item);
            }
        }
        Ok(results)
    }

    /// lm-eval `loglikelihood_rolling`: the log-likelihood of each whole text, scored in
    /// disjoint windows of the model's context; returns per text its windows' scores in order.
    pub fn loglikelihood_rolling(&mut self, texts: &[String], topk: usize) -> Result<Vec<Vec<Scored>>> {
        let prefix = self.tokenizer.prefix_token()?;
        let mut per_text = Vec::new();
        let mut pairs = Vec::new();
        for text in texts {
            let ids = super::requests::Encode::encode(&self.tokenizer, text)?;
            let windows = rolling_windows(&ids, prefix, self.max_length(), 1);
            per_text.push(windows.len());
            pairs.extend(windows);
        }
        let reqs: Vec<ScoreRequest> = pairs
            .iter()
            .map(|(c, t)| {
                let mut tokens = c.clone();
                tokens.extend(t);
                ScoreRequest { tokens, score_from: c.len() }
            })
            .collect();
        let scores = self.score(&reqs, topk)?;
        let mut it = pairs.into_iter().zip(scores);
        Ok(per_text
            .into_iter()
            .map(|n| {
                it.by_ref()
                    .take(n)
                    .map(|((c, t), s)| Scored::new(c, t, &s))
                    .collect()
            })
            .collect())
    }
}

/// The first characters of a text, for error messages.
fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(40).collect();
    if p.len() < s.len() {
        p.push('…');
    }
    p
}
