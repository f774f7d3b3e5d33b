//! lm-evaluation-harness request semantics, as pure functions.
//!
//! Everything here mirrors EleutherAI/lm-evaluation-harness (HF backend, `HFLM`, causal models)
//! so that token-level inputs and scored positions match lm-eval exactly. Sources read:
//!
//! * `lm_eval/api/model.py` — `TemplateLM._encode_pair`, `TemplateLM.loglikelihood`
//!   (HFLM subclasses `TemplateLM` and inherits both unchanged).
//! * `lm_eval/models/huggingface.py` — `HFLM.prefix_token_id`, `HFLM.tok_encode`,
//!   `HFLM.max_length`, `HFLM.max_gen_toks`, `HFLM.loglikelihood_rolling`,
//!   `HFLM._loglikelihood_tokens`, `HFLM.generate_until`.
//! * `lm_eval/utils.py` — `get_rolling_token_windows`, `make_disjoint_window`.
//! * `lm_eval/models/utils.py` — `handle_stop_sequences`, `postprocess_generated_text`.
//!
//! Facts established from that source:
//!
//! * **Prefix token** (`HFLM.prefix_token_id`): the `prefix_token_id` model argument
//!   (`custom_prefix_token_id`) if given, else `tokenizer.bos_token_id` if not `None`, else
//!   `tokenizer.eos_token_id`. (`TemplateLM`'s default is `eot_token_id`; HFLM overrides it.)
//!   See [`prefix_token_id`].
//! * **Special tokens** (`HFLM.tok_encode`, lm-eval 0.4.13): with `add_special_tokens=None` and
//!   `add_bos_token` unset (the default) it calls `tokenizer.encode(s)` with the tokenizer's own
//!   default (`add_special_tokens=True`: its post-processor, which adds a BOS for Llama-style
//!   tokenizers and nothing for byte-level BPE ones), except that a string already starting with
//!   the prefix token's text is encoded with `add_special_tokens=False` (`has_bos_prefix`), so a
//!   BOS a chat template wrote is never doubled. Both halves of [`encode_pair`], the rolling
//!   token list and generation contexts are encoded that way; an empty context's continuation is
//!   encoded with `add_special_tokens=False` ([`loglikelihood_tokens`]). See [`Encode`].
//! * **Overlong loglikelihood input** (`HFLM._loglikelihood_tokens`): it asserts
//!   `len(context_enc) > 0`, `len(continuation_enc) > 0`, `len(continuation_enc) <= max_length`,
//!   then feeds `(context_enc + continuation_enc)[-(max_length + 1):][:-1]` (left truncation,
//!   only logs a warning) and scores the last `len(continuation_enc)` logits. See
//!   [`model_input`] and [`check_loglikelihood_request`].
//! * **Max length** (`HFLM.max_length`): the `max_length` argument if set, else the first of the
//!   model config's `n_positions`, `max_position_embeddings`, `n_ctx`, else
//!   `tokenizer.model_max_length` unless it is the "infinite" sentinel
//!   `1000000000000000019884624838656`, else [`DEFAULT_MAX_LENGTH`] (2048).
//! * **generate_until**: `eos = tok_decode(eot_token_id, skip_special_tokens=False)` (with
//!   `eot_token_id = tokenizer.eos_token_id`); `until = handle_stop_sequences(kwargs.pop("until",
//!   None), eos=eos)` turns a str into `[str]`, `None` into `[]`, and appends `eos` only if it is
//!   not already in the list (see [`stop_sequences`]). `max_gen_toks` comes from the request's
//!   gen_kwargs, else `HFLM.max_gen_toks`, which is hard-coded to **256**
//!   ([`DEFAULT_MAX_GEN_TOKS`]). The context is left-truncated to `max_length - max_gen_toks`
//!   tokens (asserted `> 0`; see [`generation_context`]). The decoded continuation is passed
//!   through `postprocess_generated_text`, which for each non-empty term does
//!   `generation = generation.split(term)[0]` (see [`cut_at_stop`]); if a `think_end_token`
//!   string is configured it then keeps `generation.split(think_end_token)[-1].lstrip()` (not
//!   mirrored here).

use anyhow::{bail, ensure, Result};

/// Fallback of `HFLM.max_length` (`HFLM._DEFAULT_MAX_LENGTH`).
pub const DEFAULT_MAX_LENGTH: usize = 2048;

/// `HFLM.max_gen_toks` (hard-coded property), used when a request's gen_kwargs has no
/// `max_gen_toks`.
pub const DEFAULT_MAX_GEN_TOKS: usize = 256;

pub use crate::model::tokenizer::Encode;

/// Mirrors `HFLM.prefix_token_id` (`lm_eval/models/huggingface.py`): custom prefix, else BOS,
/// else EOS. `None` only if all three are absent.
pub fn prefix_token_id(custom: Option<u32>, bos: Option<u32>, eos: Option<u32>) -> Option<u32> {
    custom.or(bos).or(eos)
}

/// lm-eval `HFLM._encode_pair`: trailing whitespace of the context moves to the continuation;
/// the whole string is encoded and split at the context's encoded length.
///
/// Mirrors `TemplateLM._encode_pair` in `lm_eval/api/model.py` (causal branch):
/// `n_spaces = len(context) - len(context.rstrip())`; the trailing whitespace is prepended to the
/// continuation; `whole_enc = tok_encode(context + continuation)`, `context_enc =
/// tok_encode(context)`, `continuation_enc = whole_enc[len(context_enc):]`. Like lm-eval, it does
/// not check that `whole_enc` starts with `context_enc`. A whitespace-only context yields an empty
/// `context_enc`, which `_loglikelihood_tokens` then rejects (see [`check_loglikelihood_request`]).
pub fn encode_pair(
    tok: &impl Encode,
    context: &str,
    continuation: &str,
) -> anyhow::Result<(Vec<u32>, Vec<u32>)> {
    let split = crate::pycompat::text::rstrip_len(context);
    let context_stripped = &context[..split];
    // context_stripped + (trailing whitespace + continuation) == context + continuation.
    let whole = format!("{context}{continuation}");
    let whole_enc = tok.encode(&whole)?;
    let context_enc = tok.encode(context_stripped)?;
    let continuation_enc = whole_enc.get(context_enc.len()..).unwrap_or(&[]).to_vec();
    Ok((context_enc, continuation_enc))
}

/// What `HFLM.loglikelihood` does before `_loglikelihood_tokens`: an empty context becomes
/// `[prefix_token]` with the continuation encoded alone without special tokens (if the
/// continuation itself starts with the prefix token, that first token becomes the context);
/// otherwise `encode_pair`.
///
/// Mirrors `TemplateLM.loglikelihood` in `lm_eval/api/model.py` (0.4.13; `if context == "":` —
/// only the exact empty string takes the prefix path; whitespace-only contexts go through
/// `encode_pair`).
pub fn loglikelihood_tokens(
    tok: &impl Encode,
    context: &str,
    continuation: &str,
    prefix_token: u32,
) -> anyhow::Result<(Vec<u32>, Vec<u32>)> {
    if context.is_empty() {
        let cont = tok.encode_plain(continuation)?;
        match cont.first() {
            Some(&first) if first == prefix_token => Ok((cont[..1].to_vec(), cont[1..].to_vec())),
            _ => Ok((vec![prefix_token], cont)),
        }
    } else {
        encode_pair(tok, context, continuation)
    }
}

/// The assertions at the top of `HFLM._loglikelihood_tokens`' per-request loop
/// (`lm_eval/models/huggingface.py`): `len(context_enc) > 0`, `len(continuation_enc) > 0`,
/// `len(continuation_enc) <= max_length`. lm-eval raises `AssertionError`; this returns an error.
pub fn check_loglikelihood_request(
    context: &[u32],
    continuation: &[u32],
    max_length: usize,
) -> Result<()> {
    ensure!(
        !context.is_empty(),
        "loglikelihood request has an empty context encoding"
    );
    ensure!(
        !continuation.is_empty(),
        "loglikelihood request has an empty continuation encoding"
    );
    ensure!(
        continuation.len() <= max_length,
        "continuation has {} tokens, more than max_length {max_length}",
        continuation.len()
    );
    Ok(())
}

/// The causal-model input of `HFLM._loglikelihood_tokens` (`lm_eval/models/huggingface.py`):
/// `inp = (context_enc + continuation_enc)[-(max_length + 1):][:-1]`, i.e. keep the last
/// `max_length + 1` tokens (left truncation) and drop the final token. Returns the input and the
/// number of scored logits, `len(continuation_enc)`: the logits at input positions
/// `inp.len() - n .. inp.len()` (`_select_cont_toks`: `logits[inplen - contlen : inplen]`) predict
/// `continuation` in order, and their sum of log-probs is the loglikelihood; "is greedy" is
/// whether the argmax at each of those positions equals the continuation token.
///
/// Callers should first run [`check_loglikelihood_request`] (lm-eval asserts the same); under
/// those preconditions `n <= inp.len() <= max_length`.
pub fn model_input(context: &[u32], continuation: &[u32], max_length: usize) -> (Vec<u32>, usize) {
    debug_assert!(check_loglikelihood_request(context, continuation, max_length).is_ok());
    let total = context.len() + continuation.len();
    let start = total.saturating_sub(max_length.saturating_add(1));
    let mut inp: Vec<u32> = context
        .iter()
        .chain(continuation)
        .copied()
        .skip(start)
        .collect();
    inp.pop();
    (inp, continuation.len())
}

/// Mirrors `lm_eval.utils.get_rolling_token_windows` (`lm_eval/utils.py`), returning the
/// generator's items as a `Vec` of `(input_tokens, pred_tokens)`.
///
/// # Panics
/// If not `1 <= context_len <= max_seq_len` (lm-eval's `assert`).
pub fn get_rolling_token_windows(
    token_list: &[u32],
    prefix_token: u32,
    max_seq_len: usize,
    context_len: usize,
) -> Vec<(Vec<u32>, Vec<u32>)> {
    assert!(
        1 <= context_len && context_len <= max_seq_len,
        "get_rolling_token_windows requires 1 <= context_len ({context_len}) <= max_seq_len ({max_seq_len})"
    );
    let mut out = Vec::new();
    if token_list.is_empty() {
        return out;
    }
    // +1 offset, going from input -> preds
    let pred_len = max_seq_len - context_len + 1;
    let n = token_list.len();

    // First window: predict all tokens it holds, conditioned on the prefix token.
    let first_seq_len = max_seq_len.min(n);
    let mut first_input = Vec::with_capacity(first_seq_len);
    first_input.push(prefix_token);
    first_input.extend_from_slice(&token_list[..first_seq_len - 1]);
    out.push((first_input, token_list[..first_seq_len].to_vec()));
    let mut predicted = first_seq_len;

    while predicted < n {
        let window_pred_len = (n - predicted).min(pred_len);
        let window_end = predicted + window_pred_len;
        // Here predicted >= max_seq_len, so window_end - max_seq_len - 1 >= 0 (no negative
        // Python index).
        out.push((
            token_list[window_end - max_seq_len - 1..window_end - 1].to_vec(),
            token_list[window_end - window_pred_len..window_end].to_vec(),
        ));
        predicted += window_pred_len;
    }
    out
}

/// Mirrors `lm_eval.utils.make_disjoint_window` (`lm_eval/utils.py`):
/// `a[: len(a) - (len(b) - 1)], b` — drops from the input the tokens that the window itself
/// predicts, so that `context + continuation` of the result equals the original input plus its
/// last predicted token.
pub fn make_disjoint_window(pair: (Vec<u32>, Vec<u32>)) -> (Vec<u32>, Vec<u32>) {
    let (mut a, b) = pair;
    // Windows from get_rolling_token_windows always have 1 <= len(b) <= len(a), so the Python
    // slice bound is >= 1 and never negative.
    let keep = a.len().saturating_sub(b.len().saturating_sub(1));
    a.truncate(keep);
    (a, b)
}

/// lm-eval `utils.get_rolling_token_windows` followed by `utils.make_disjoint_window`, as
/// `HFLM.loglikelihood_rolling` calls them (context_len = 1, max_seq_len = model max length):
/// returns (context, continuation) token windows whose continuations cover every token once.
///
/// `HFLM.loglikelihood_rolling` passes `token_list = tok_encode(string)`,
/// `prefix_token = self.prefix_token_id`, `max_seq_len = self.max_length`, `context_len = 1`,
/// scores each window with `_loglikelihood_tokens` (so each goes through [`model_input`]) and sums
/// the log-probs. An empty token list yields no windows (total 0.0 in lm-eval).
///
/// # Panics
/// If not `1 <= context_len <= max_seq_len`.
pub fn rolling_windows(
    tokens: &[u32],
    prefix_token: u32,
    max_seq_len: usize,
    context_len: usize,
) -> Vec<(Vec<u32>, Vec<u32>)> {
    get_rolling_token_windows(tokens, prefix_token, max_seq_len, context_len)
        .into_iter()
        .map(make_disjoint_window)
        .collect()
}

/// Mirrors `handle_stop_sequences(until, eos)` (`lm_eval/models/utils.py`) as `HFLM.generate_until`
/// calls it: `until` (already normalised from str/None to a list by the caller) gets `eos`
/// appended unless `eos` is `None` or already present. In HFLM, `eos` is
/// `tok_decode(eot_token_id, skip_special_tokens=False)`, the EOS token's text.
pub fn stop_sequences(mut until: Vec<String>, eos: Option<&str>) -> Vec<String> {
    if let Some(eos) = eos {
        if !until.iter().any(|u| u == eos) {
            until.push(eos.to_string());
        }
    }
    until
}

/// The context left-truncation of `HFLM.generate_until` for causal models:
/// `max_ctx_len = max_length - max_gen_toks` (lm-eval asserts `max_ctx_len > 0`), then
/// `tok_batch_encode(..., left_truncate_len=max_ctx_len)` keeps the last `max_ctx_len` tokens.
/// Generation may then produce up to `max_gen_toks` new tokens.
pub fn generation_context(
    tokens: &[u32],
    max_length: usize,
    max_gen_toks: usize,
) -> Result<Vec<u32>> {
    if max_gen_toks >= max_length {
        bail!(
            "requested max tokens to generate ({max_gen_toks}) must be less than the model's \
             maximum sequence length ({max_length})"
        );
    }
    let max_ctx_len = max_length - max_gen_toks;
    let start = tokens.len().saturating_sub(max_ctx_len);
    Ok(tokens[start..].to_vec())
}

/// lm-eval generate_until post-processing: cut the generated text at the first occurrence of any
/// non-empty stop string (equivalent to `for term in until: s = s.split(term)[0]`). Returns the cut
/// text and whether a stop string was found.
///
/// Mirrors the stop-sequence loop of `postprocess_generated_text` (`lm_eval/models/utils.py`)
/// literally: terms are applied in order, each cutting at its first occurrence in the *already
/// cut* text, and empty terms are skipped. This equals "cut at the earliest occurrence of any
/// term" except when occurrences overlap (e.g. `"abc"` with `["bc", "ab"]` gives `"a"`, as in
/// Python). The flag is true iff any non-empty term occurs in `text` (every such cut strictly
/// shortens the text), so it is monotone as generated text grows.
pub fn cut_at_stop(text: &str, until: &[String]) -> (String, bool) {
    let mut s = text;
    for term in until {
        if term.is_empty() {
            continue;
        }
        if let Some(i) = s.find(term.as_str()) {
            s = &s[..i];
        }
    }
    (s.to_string(), s.len() < text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// One token per char, id = code point.
    struct CharTok;
    impl Encode for CharTok {
        fn encode(&self, text: &str) -> Result<Vec<u32>> {
            Ok(text.chars().map(u32::from).collect())
        }
    }
    fn chars(s: &str) -> Vec<u32> {
        s.chars().map(u32::from).collect()
    }

    /// Word-level, GPT-2 style: a single space merges into the following word (" world"), other
    /// whitespace chars are their own tokens. Unknown pieces are an error.
    struct WordTok(HashMap<&'static str, u32>);
    impl WordTok {
        fn new() -> Self {
            WordTok(HashMap::from([
                ("Hello", 1),
                (" world", 2),
                (" ", 3),
                ("world", 4),
                ("\n", 5),
                ("Answer:", 6),
                (" yes", 7),
            ]))
        }
    }
    impl Encode for WordTok {
        fn encode(&self, text: &str) -> Result<Vec<u32>> {
            let cs: Vec<char> = text.chars().collect();
            let mut out = Vec::new();
            let mut i = 0;
            while i < cs.len() {
                let start = i;
                if cs[i] == ' ' && i + 1 < cs.len() && !cs[i + 1].is_whitespace() {
                    i += 1;
                    while i < cs.len() && !cs[i].is_whitespace() {
                        i += 1;
                    }
                } else if cs[i].is_whitespace() {
                    i += 1;
                } else {
                    while i < cs.len() && !cs[i].is_whitespace() {
                        i += 1;
                    }
                }
                let piece: String = cs[start..i].iter().collect();
                match self.0.get(piece.as_str()) {
                    Some(&id) => out.push(id),
                    None => bail!("unknown piece {piece:?}"),
                }
            }
            Ok(out)
        }
    }

    #[test]
    fn encode_pair_moves_trailing_space_into_continuation() {
        let tok = WordTok::new();
        // Naively, encode("Hello ") = [1, 3] and encode("Hello world") = [1, 2]: splitting the
        // whole at 2 would leave an empty continuation. lm-eval strips the space first.
        assert_eq!(tok.encode("Hello ").unwrap(), vec![1, 3]);
        let (ctx, cont) = encode_pair(&tok, "Hello ", "world").unwrap();
        assert_eq!((ctx, cont), (vec![1], vec![2]));
        // Already well-formed pair: unchanged.
        let (ctx, cont) = encode_pair(&tok, "Hello", " world").unwrap();
        assert_eq!((ctx, cont), (vec![1], vec![2]));
        // Newline is whitespace too and moves.
        let (ctx, cont) = encode_pair(&tok, "Answer:\n", "world").unwrap();
        assert_eq!((ctx, cont), (vec![6], vec![5, 4]));
        // Tokenizer errors propagate.
        assert!(encode_pair(&tok, "Hello", " unknown").is_err());
    }

    #[test]
    fn encode_pair_uses_python_whitespace() {
        // '\x1c' is whitespace for Python's rstrip (not for Rust), so it moves.
        let (ctx, cont) = encode_pair(&CharTok, "Hello\x1c", "x").unwrap();
        assert_eq!(ctx, chars("Hello"));
        assert_eq!(cont, chars("\x1cx"));
        // U+3000 ideographic space moves, multi-byte safe.
        let (ctx, cont) = encode_pair(&CharTok, "问\u{3000}", "答").unwrap();
        assert_eq!(ctx, chars("问"));
        assert_eq!(cont, chars("\u{3000}答"));
        // Whitespace-only (non-empty) context: empty context encoding, which
        // _loglikelihood_tokens rejects.
        let (ctx, cont) = encode_pair(&CharTok, "  ", "a").unwrap();
        assert!(ctx.is_empty());
        assert_eq!(cont, chars("  a"));
        assert!(check_loglikelihood_request(&ctx, &cont, 100).is_err());
    }

    #[test]
    fn loglikelihood_tokens_empty_context_uses_prefix() {
        let tok = WordTok::new();
        assert_eq!(
            loglikelihood_tokens(&tok, "", "Hello", 99).unwrap(),
            (vec![99], vec![1])
        );
        // Continuation encoded alone: " world" keeps its leading-space token.
        assert_eq!(
            loglikelihood_tokens(&tok, "", " world", 99).unwrap(),
            (vec![99], vec![2])
        );
        // Non-empty context goes through encode_pair.
        assert_eq!(
            loglikelihood_tokens(&tok, "Hello ", "world", 99).unwrap(),
            (vec![1], vec![2])
        );
    }

    #[test]
    fn prefix_token_order() {
        assert_eq!(prefix_token_id(Some(7), Some(1), Some(2)), Some(7));
        assert_eq!(prefix_token_id(None, Some(1), Some(2)), Some(1));
        assert_eq!(prefix_token_id(None, None, Some(2)), Some(2));
        assert_eq!(prefix_token_id(None, None, None), None);
    }

    type Windows = Vec<(Vec<u32>, Vec<u32>)>;
    fn w(pairs: &[(&[u32], &[u32])]) -> Windows {
        pairs
            .iter()
            .map(|(a, b)| (a.to_vec(), b.to_vec()))
            .collect()
    }

    // Expected values below were computed by running lm-eval's get_rolling_token_windows +
    // make_disjoint_window (copied verbatim from lm_eval/utils.py) under CPython.

    #[test]
    fn rolling_shorter_than_max() {
        // [10,11,12], prefix 0, max 4 -> [([0], [10, 11, 12])]
        assert_eq!(
            rolling_windows(&[10, 11, 12], 0, 4, 1),
            w(&[(&[0], &[10, 11, 12])])
        );
        // Exactly max: [0,1,2,3], max 4 -> [([100], [0, 1, 2, 3])]
        assert_eq!(
            rolling_windows(&[0, 1, 2, 3], 100, 4, 1),
            w(&[(&[100], &[0, 1, 2, 3])])
        );
        // Empty -> no windows.
        assert!(rolling_windows(&[], 100, 4, 1).is_empty());
    }

    #[test]
    fn rolling_longer_than_max() {
        let toks: Vec<u32> = (0..10).collect();
        // The example of LM.loglikelihood_rolling's docstring (lm_eval/api/model.py):
        // [([100], [0, 1, 2, 3]), ([3], [4, 5, 6, 7]), ([5, 6, 7], [8, 9])]
        assert_eq!(
            rolling_windows(&toks, 100, 4, 1),
            w(&[
                (&[100], &[0, 1, 2, 3]),
                (&[3], &[4, 5, 6, 7]),
                (&[5, 6, 7], &[8, 9])
            ])
        );
        // Raw (non-disjoint) windows of the same call.
        assert_eq!(
            get_rolling_token_windows(&toks, 100, 4, 1),
            w(&[
                (&[100, 0, 1, 2], &[0, 1, 2, 3]),
                (&[3, 4, 5, 6], &[4, 5, 6, 7]),
                (&[5, 6, 7, 8], &[8, 9])
            ])
        );
        // One over: [0..5), max 4 -> [([100], [0, 1, 2, 3]), ([0, 1, 2, 3], [4])]
        assert_eq!(
            rolling_windows(&[0, 1, 2, 3, 4], 100, 4, 1),
            w(&[(&[100], &[0, 1, 2, 3]), (&[0, 1, 2, 3], &[4])])
        );
        // context_len 2: [0..7), max 4 -> [([100], [0, 1, 2, 3]), ([2, 3], [4, 5, 6])]
        assert_eq!(
            rolling_windows(&[0, 1, 2, 3, 4, 5, 6], 100, 4, 2),
            w(&[(&[100], &[0, 1, 2, 3]), (&[2, 3], &[4, 5, 6])])
        );
        // max 1: every token is its own window conditioned on the previous one.
        let got = rolling_windows(&[0, 1, 2], 100, 1, 1);
        assert_eq!(got, w(&[(&[100], &[0]), (&[0], &[1]), (&[1], &[2])]));
    }

    #[test]
    fn rolling_windows_cover_every_token_once_and_fit() {
        for n in 0..40u32 {
            let toks: Vec<u32> = (0..n).collect();
            for max in 1..9usize {
                let wins = rolling_windows(&toks, 1000, max, 1);
                let covered: Vec<u32> = wins.iter().flat_map(|(_, c)| c.clone()).collect();
                assert_eq!(covered, toks, "n={n} max={max}");
                for (ctx, cont) in &wins {
                    check_loglikelihood_request(ctx, cont, max).unwrap();
                    let (inp, k) = model_input(ctx, cont, max);
                    // Never truncated: input is exactly context + continuation[:-1].
                    assert_eq!(inp.len() + 1, ctx.len() + cont.len());
                    assert!(inp.len() <= max && k == cont.len() && k <= inp.len());
                }
            }
        }
    }

    #[test]
    #[should_panic]
    fn rolling_rejects_context_len_over_max() {
        rolling_windows(&[1, 2, 3], 0, 2, 3);
    }

    #[test]
    fn model_input_truncates_left() {
        // (ctx + cont)[-(max+1):][:-1] under CPython:
        assert_eq!(model_input(&[1, 2, 3], &[4, 5], 10), (vec![1, 2, 3, 4], 2));
        assert_eq!(
            model_input(&[1, 2, 3, 4, 5, 6], &[7, 8], 4),
            (vec![4, 5, 6, 7], 2)
        );
        assert_eq!(
            model_input(&[100], &[0, 1, 2, 3], 4),
            (vec![100, 0, 1, 2], 4)
        );
        assert_eq!(model_input(&[5, 6, 7], &[8, 9], 4), (vec![5, 6, 7, 8], 2));
        assert!(check_loglikelihood_request(&[1], &[], 4).is_err());
        assert!(check_loglikelihood_request(&[1], &[1, 2, 3, 4, 5], 4).is_err());
        assert!(check_loglikelihood_request(&[1], &[1, 2, 3, 4], 4).is_ok());
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cut_at_stop_terms() {
        // Values checked against `for t in until: s = s.split(t)[0]` in CPython.
        assert_eq!(
            cut_at_stop("foo\n\nbar", &strs(&["\n\n", "Q:"])),
            ("foo".into(), true)
        );
        assert_eq!(cut_at_stop("abc", &strs(&["", "x"])), ("abc".into(), false));
        assert_eq!(
            cut_at_stop("a. b\nc", &strs(&["\n", "."])),
            ("a".into(), true)
        );
        // Overlapping occurrences: sequential split semantics, as in Python.
        assert_eq!(cut_at_stop("abc", &strs(&["bc", "ab"])), ("a".into(), true));
        assert_eq!(
            cut_at_stop("答案：42。问题", &strs(&["。"])),
            ("答案：42".into(), true)
        );
        assert_eq!(
            cut_at_stop("Q: x</s>junk", &strs(&["</s>"])),
            ("Q: x".into(), true)
        );
        assert_eq!(cut_at_stop("stop", &strs(&["stop"])), ("".into(), true));
        assert_eq!(cut_at_stop("", &strs(&["a"])), ("".into(), false));
        assert_eq!(cut_at_stop("abc", &[]), ("abc".into(), false));
    }

    #[test]
    fn stop_sequences_appends_eos_once() {
        assert_eq!(
            stop_sequences(strs(&["\n\n"]), Some("</s>")),
            strs(&["\n\n", "</s>"])
        );
        assert_eq!(
            stop_sequences(strs(&["</s>", "Q:"]), Some("</s>")),
            strs(&["</s>", "Q:"])
        );
        assert_eq!(stop_sequences(vec![], Some("</s>")), strs(&["</s>"]));
        assert_eq!(stop_sequences(strs(&["x"]), None), strs(&["x"]));
    }

    #[test]
    fn generation_context_left_truncates() {
        let toks: Vec<u32> = (0..10).collect();
        assert_eq!(generation_context(&toks, 8, 5).unwrap(), vec![7, 8, 9]);
        assert_eq!(
            generation_context(&toks, 2048, DEFAULT_MAX_GEN_TOKS).unwrap(),
            toks
        );
        assert!(generation_context(&toks, 8, 8).is_err());
        assert!(generation_context(&toks, 8, 9).is_err());
    }
}
