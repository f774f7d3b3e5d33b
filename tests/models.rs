//! Every architecture against transformers float32 on tiny random-weight models
//! (tests/fixtures, written by tools/gen_fixtures.py), and the engine's invariances.

mod common;

use common::{fixture_dir as dir, floats, ids, reference};


use pingce::device::Gpu;
use pingce::engine::requests::Encode;
use pingce::engine::{Engine, EngineOptions, GenRequest, ScoreRequest, StopReason};

const MODELS: [&str; 6] = ["tiny-llama", "tiny-mistral", "tiny-qwen2", "tiny-qwen3", "tiny-qwen2-moe", "tiny-qwen3-moe"];

/// The mixture-of-experts fixtures (tools/gen_moe_fixtures.py).
const MOE_MODELS: [&str; 2] = ["tiny-qwen2-moe", "tiny-qwen3-moe"];


fn engine(name: &str, batch_size: usize) -> Engine {
    let gpu = Gpu::default_device().unwrap();
    Engine::load(gpu, &dir(name), EngineOptions { batch_size, max_batch_tokens: 4096, ..Default::default() }).unwrap()
}

#[test]
fn logprobs_and_top5_match_transformers() {
    for name in MODELS {
        let mut e = engine(name, 4);
        let r = reference(name);
        let texts = r["texts"].as_array().unwrap();
        let mut reqs = Vec::new();
        for t in texts {
            let want = ids(&t["ids"]);
            assert_eq!(e.tokenizer.encode(t["text"].as_str().unwrap()).unwrap(), want, "{name}: token ids");
            reqs.push(ScoreRequest { tokens: want, score_from: 1 });
        }
        let got = e.score(&reqs, 5).unwrap();
        let mut worst = 0f32;
        for (t, g) in texts.iter().zip(&got) {
            let want = floats(&t["logprobs"]);
            let margins = floats(&t["margins"]);
            let top5 = t["top5_ids"].as_array().unwrap();
            assert_eq!(g.len(), want.len());
            for (i, s) in g.iter().enumerate() {
                worst = worst.max((s.logprob - want[i]).abs());
                // The argmax must agree wherever transformers' top-1 is clear of its top-2.
                if margins[i] > 1e-3 {
                    assert_eq!(s.argmax, top5[i][0].as_u64().unwrap() as u32, "{name}: argmax at {i}");
                    assert_eq!(s.topk[0].0, s.argmax);
                }
                if margins[i] > 1e-3 {
                    assert_eq!(t["greedy_is"][i].as_bool().unwrap(), s.argmax == ids(&t["ids"])[i + 1], "{name}: greedy flag at {i}");
                }
            }
        }
        assert!(worst <= 1e-4, "{name}: max |Δ log-prob| {worst} > 1e-4");
        eprintln!("{name}: max |Δ log-prob| vs transformers = {worst:e}");
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    for name in MODELS {
        let mut e = engine(name, 8);
        let r = reference(name);
        let gens = r["generations"].as_array().unwrap();
        let reqs: Vec<GenRequest> = gens.iter().map(|g| GenRequest { prompt: ids(&g["prompt_ids"]), until: vec![], max_tokens: 16 }).collect();
        let out = e.generate(&reqs).unwrap();
        for (g, o) in gens.iter().zip(&out) {
            assert_eq!(o.tokens, ids(&g["new_ids"]), "{name}: greedy tokens for {:?}", g["prompt"]);
        }
        // One at a time: the same tokens (batch invariance of decode).
        for (req, o) in reqs.iter().zip(&out) {
            assert_eq!(e.generate(std::slice::from_ref(req)).unwrap()[0].tokens, o.tokens, "{name}: alone vs batched");
        }
    }
}

#[test]
fn scores_are_bit_identical_whatever_the_batch() {
    batch_invariance("tiny-qwen2");
}

/// MoE: each token's experts are summed in ascending expert id whatever else shares the pass, so
/// batch size, order and mixing with other requests change no bit.
#[test]
fn moe_scores_are_bit_identical_whatever_the_batch() {
    for name in MOE_MODELS {
        batch_invariance(name);
    }
}

fn batch_invariance(name: &str) {
    let r = reference(name);
    let reqs: Vec<ScoreRequest> = r["texts"].as_array().unwrap().iter().map(|t| ScoreRequest { tokens: ids(&t["ids"]), score_from: 1 }).collect();
    let bits = |e: &mut Engine, reqs: &[ScoreRequest]| -> Vec<Vec<u32>> {
        e.score(reqs, 0).unwrap().iter().map(|s| s.iter().map(|x| x.logprob.to_bits()).collect()).collect()
    };
    let mut alone = Vec::new();
    let mut e1 = engine(name, 1);
    for q in &reqs {
        alone.push(bits(&mut e1, std::slice::from_ref(q)).remove(0));
    }
    for bs in [2, 3, 16] {
        let mut e = engine(name, bs);
        assert_eq!(bits(&mut e, &reqs), alone, "{name}: batch size {bs}");
    }
    // Shuffled order, mixed with prefixes of other requests.
    let mut e = engine(name, 5);
    let mut mixed: Vec<ScoreRequest> = reqs.iter().rev().cloned().collect();
    mixed.push(ScoreRequest { tokens: reqs[5].tokens[..30].to_vec(), score_from: 3 });
    let got = bits(&mut e, &mixed);
    for (i, g) in got[..reqs.len()].iter().enumerate() {
        assert_eq!(g, &alone[reqs.len() - 1 - i], "{name}: shuffled request {i}");
    }
    assert_eq!(got[reqs.len()][..], alone[5][2..29], "{name}: prefix request");
}

/// A KV cache split in chunks (as a long context on a real adapter is: here made small by the
/// setting) changes no bit: packed scoring, and shared contexts copied across chunk boundaries.
#[test]
fn chunked_kv_cache_is_bit_identical() {
    for name in ["tiny-llama", "tiny-mistral"] {
        let r = reference(name);
        let reqs: Vec<ScoreRequest> = r["texts"].as_array().unwrap().iter().map(|t| ScoreRequest { tokens: ids(&t["ids"]), score_from: 1 }).collect();
        let bits = |e: &mut Engine| -> Vec<Vec<u32>> { e.score(&reqs, 0).unwrap().iter().map(|s| s.iter().map(|x| x.logprob.to_bits()).collect()).collect() };
        let items: Vec<(String, Vec<String>)> = vec![
            ("Question: Which animal says moo? A long context that spans the small chunks of the cache.\nAnswer:".into(), vec![" cow".into(), " a big green frog".into(), " dog".into()]),
            ("The long context of an item, long enough to cross the sliding window of eight tokens. It".into(), vec![" ends".into(), " goes on and on and on".into()]),
        ];
        let choices = |e: &mut Engine| -> Vec<Vec<u32>> { e.loglikelihood_choices(&items).unwrap().iter().flatten().map(|s| s.logprobs.iter().map(|x| x.to_bits()).collect()).collect() };
        let mut e = engine(name, 16);
        let (whole, whole_choices) = (bits(&mut e), choices(&mut e));
        let total: usize = reqs.iter().map(|q| q.tokens.len()).sum();
        // At most 4 chunks of an awkward size for the scoring batch; 131 rows (of 512) for the choices.
        e.set_kv_chunk_rows(Some(total.next_multiple_of(256).div_ceil(4) + 7));
        assert_eq!(bits(&mut e), whole, "{name}: scores from a chunked cache");
        e.set_kv_chunk_rows(Some(131));
        assert_eq!(choices(&mut e), whole_choices, "{name}: shared contexts from a chunked cache");
        // More chunks than the attention kernel binds: a clear error, not a wrong answer.
        e.set_kv_chunk_rows(Some(16));
        let err = format!("{:#}", e.score(&reqs, 0).unwrap_err());
        assert!(err.contains("chunks of 16 positions") && err.contains("above the 4 the attention kernel binds"), "{err}");
    }
}

/// A request longer than a pass holds is scored in consecutive passes over its cache, with the
/// same bits as in one pass (so contexts beyond what one pass's activations allow still score).
#[test]
fn long_requests_split_over_passes_are_bit_identical() {
    for name in ["tiny-llama", "tiny-mistral"] {
        let r = reference(name);
        let reqs: Vec<ScoreRequest> = r["texts"].as_array().unwrap().iter().map(|t| ScoreRequest { tokens: ids(&t["ids"]), score_from: 2 }).collect();
        let bits = |e: &mut Engine| -> Vec<Vec<u32>> { e.score(&reqs, 0).unwrap().iter().map(|s| s.iter().map(|x| x.logprob.to_bits()).collect()).collect() };
        let whole = bits(&mut engine(name, 16));
        let mut e = Engine::load(Gpu::default_device().unwrap(), &dir(name), EngineOptions { batch_size: 16, max_batch_tokens: 13, ..Default::default() }).unwrap();
        assert!(reqs.iter().any(|q| q.tokens.len() > 3 * 13));
        assert_eq!(bits(&mut e), whole, "{name}: passes of 13 tokens");
    }
}

#[test]
fn prefill_and_incremental_decode_agree() {
    for name in MODELS {
        let mut e = engine(name, 4);
        let r = reference(name);
        let long = ids(&r["texts"][5]["ids"]);
        let full = e.score(&[ScoreRequest { tokens: long.clone(), score_from: 1 }], 0).unwrap().remove(0);
        let prefix = 20;
        let inc = e.score_incremental(&long, prefix).unwrap();
        let want: Vec<f32> = full[prefix - 1..].iter().map(|s| s.logprob).collect();
        // Both paths accumulate every dot product in the same order: not just close, identical.
        assert_eq!(inc, want, "{name}: prefill vs incremental decode");
    }
}

/// Decoding past attention's first key spans (`KEY_SPAN` positions): a 600-token sequence scored
/// in one prefill and, from token 250 on, one decode step at a time give the same bits, on the
/// adapter's own kernels and (where the adapter has subgroups) on the other variant's: on a CPU
/// adapter that is the GPUs' tiled attention, whose decode steps then split the spans over
/// workgroups and fold them in attention_combine.wgsl. The fixtures' configs allow 256 positions;
/// a copy allows 700 (RoPE needs no more than the position).
#[test]
fn decode_past_a_key_span_agrees_with_prefill() {
    use pingce::kernels::attention::{Attention, Lanes, KEY_SPAN};
    let len = 600;
    assert!(len > 2 * KEY_SPAN);
    for name in ["tiny-llama", "tiny-mistral"] {
        let tmp = std::env::temp_dir().join(format!("pingce-span-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        for f in std::fs::read_dir(dir(name)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, tmp.join(f.file_name().unwrap())).unwrap();
        }
        let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tmp.join("config.json")).unwrap()).unwrap();
        cfg["max_position_embeddings"] = 700.into();
        std::fs::write(tmp.join("config.json"), cfg.to_string()).unwrap();
        let mut rng = common::Rng::new(11);
        let tokens: Vec<u32> = (0..len).map(|_| rng.below(400) as u32 + 1).collect();
        let mut variants = vec![Gpu::default_device().unwrap()];
        let mut other = Gpu::default_device().unwrap();
        other.subgroup_x = !other.subgroup_x;
        if other.device.features().contains(wgpu::Features::SUBGROUP) || !other.subgroup_x {
            variants.push(other);
        }
        for gpu in variants {
            let what = format!("{name}, subgroup_x {}, spans split: {}", gpu.subgroup_x, Attention::spans(&gpu, Lanes::Heads, len) > 0);
            let mut e = Engine::load(gpu, &tmp, EngineOptions { batch_size: 4, max_batch_tokens: 4096, ..Default::default() }).unwrap();
            let full = e.score(&[ScoreRequest { tokens: tokens.clone(), score_from: 1 }], 0).unwrap().remove(0);
            let prefix = 250;
            let inc = e.score_incremental(&tokens, prefix).unwrap();
            let want: Vec<f32> = full[prefix - 1..].iter().map(|s| s.logprob).collect();
            assert!(want.iter().all(|x| x.is_finite()), "{what}");
            assert_eq!(inc, want, "{what}: prefill vs incremental decode");
        }
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}

#[test]
fn loglikelihood_splits_pairs_like_lm_eval() {
    let mut e = engine("tiny-llama", 4);
    let pairs = vec![
        ("The cat sat on the ".to_string(), "mat".to_string()),
        ("The cat sat on the".to_string(), " mat".to_string()),
        (String::new(), "The cat".to_string()),
    ];
    let out = e.loglikelihood(&pairs, 0).unwrap();
    // Trailing context whitespace moves to the continuation: the first two are the same request.
    assert_eq!(out[0].context_tokens, out[1].context_tokens);
    assert_eq!(out[0].continuation_tokens, out[1].continuation_tokens);
    assert_eq!(out[0].logprobs, out[1].logprobs);
    // An empty context is the prefix (BOS/EOS) token.
    assert_eq!(out[2].context_tokens, vec![e.tokenizer.prefix_token().unwrap()]);
    assert_eq!(out[2].continuation_tokens, e.tokenizer.encode("The cat").unwrap());
    // Scores equal scoring the concatenated tokens directly.
    let mut toks = out[0].context_tokens.clone();
    toks.extend(&out[0].continuation_tokens);
    let direct = e.score(&[ScoreRequest { score_from: out[0].context_tokens.len(), tokens: toks }], 0).unwrap();
    assert_eq!(direct[0].iter().map(|s| s.logprob).collect::<Vec<_>>(), out[0].logprobs);
    assert!(out.iter().all(|s| s.logprobs.iter().all(|x| *x < 0.0)));
}

#[test]
fn generate_until_stops_at_stop_strings_and_limits() {
    let name = "tiny-llama";
    let mut e = engine(name, 4);
    let r = reference(name);
    let g = &r["generations"][0];
    let full_text = e.tokenizer.decode(&ids(&g["new_ids"])).unwrap();
    // A stop string taken from the middle of the reference continuation.
    let chars: Vec<char> = full_text.chars().collect();
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    let cut = &full_text[..full_text.find(&stop).unwrap()];
    let reqs = vec![
        pingce::engine::UntilRequest { context: g["prompt"].as_str().unwrap().into(), until: vec![stop.clone()], max_gen_toks: 16 },
        pingce::engine::UntilRequest { context: g["prompt"].as_str().unwrap().into(), until: vec![], max_gen_toks: 5 },
    ];
    let out = e.generate_until(&reqs).unwrap();
    assert_eq!(out[0].text, cut, "cut at {stop:?}");
    assert_eq!(out[0].stop, pingce::engine::StopReason::StopString);
    assert_eq!(out[1].tokens, ids(&g["new_ids"])[..5]);
    assert_eq!(out[1].stop, pingce::engine::StopReason::MaxTokens);
}

#[test]
fn loglikelihood_rolling_covers_every_token_once() {
    let mut e = engine("tiny-qwen2", 4);
    let r = reference("tiny-qwen2");
    let text = r["texts"][5]["text"].as_str().unwrap().to_string();
    let n = e.tokenizer.encode(&text).unwrap().len();
    // Within the context: one window, the same numbers as loglikelihood("", text).
    let rolled = e.loglikelihood_rolling(std::slice::from_ref(&text), 0).unwrap().remove(0);
    assert_eq!(rolled.len(), 1);
    let ll = e.loglikelihood(&[(String::new(), text.clone())], 0).unwrap().remove(0);
    assert_eq!(rolled[0].logprobs, ll.logprobs);
    // Longer than the 256-position context: several disjoint windows, every token scored once.
    let long = format!("{text} {text} {text}");
    let ids_long = e.tokenizer.encode(&long).unwrap();
    assert!(ids_long.len() > 256 && n < 256);
    let windows = e.loglikelihood_rolling(std::slice::from_ref(&long), 0).unwrap().remove(0);
    assert!(windows.len() >= 2);
    let scored: Vec<u32> = windows.iter().flat_map(|w| w.continuation_tokens.clone()).collect();
    assert_eq!(scored, ids_long);
    assert!(windows.iter().all(|w| w.context_tokens.len() + w.continuation_tokens.len() <= 257));
}

#[test]
fn shared_context_choices_are_bit_identical_to_separate_pairs() {
    for name in ["tiny-llama", "tiny-mistral", "tiny-qwen2-moe", "tiny-qwen3-moe"] {
        let items: Vec<(String, Vec<String>)> = vec![
            ("Question: Which animal says moo?\nAnswer:".into(), vec![" cow".into(), " a big green frog".into(), " dog".into(), " the cat".into()]),
            ("".into(), vec!["Hello world".into(), "今天".into()]),
            ("The long context of an item, long enough to cross the sliding window of eight tokens. It".into(), vec![" ends".into(), " goes on and on and on".into()]),
        ];
        let mut e = engine(name, 5);
        let shared = e.loglikelihood_choices(&items).unwrap();
        let pairs: Vec<(String, String)> = items.iter().flat_map(|(c, cs)| cs.iter().map(move |x| (c.clone(), x.clone()))).collect();
        let separate = e.loglikelihood(&pairs, 0).unwrap();
        let flat: Vec<_> = shared.iter().flatten().collect();
        assert_eq!(flat.len(), separate.len());
        for (a, b) in flat.iter().zip(&separate) {
            assert_eq!(a.continuation_tokens, b.continuation_tokens);
            let (x, y): (Vec<u32>, Vec<u32>) = (a.logprobs.iter().map(|v| v.to_bits()).collect(), b.logprobs.iter().map(|v| v.to_bits()).collect());
            assert_eq!(x, y, "{name}: shared vs separate for {:?}", a.continuation_tokens);
            assert_eq!(a.is_greedy, b.is_greedy);
        }
    }
}

/// Contexts that begin like the first one start from a copy of its cached rows (the instruction
/// line of a subject, or the same few-shot examples before each question), in its batch or a
/// later one: the scores are still those of each pair scored on its own, in one cache or in
/// chunks of it.
#[test]
fn contexts_sharing_a_prefix_are_bit_identical_to_separate_pairs() {
    let head = "The following are questions about animals. Answer each with the animal's name.\n\n";
    for name in ["tiny-llama", "tiny-mistral", "tiny-qwen3-moe"] {
        let items: Vec<(String, Vec<String>)> = vec![
            (format!("{head}Question: Which animal says moo?\nAnswer:"), vec![" cow".into(), " a big green frog".into()]),
            (format!("{head}Question: Which animal barks?\nAnswer:"), vec![" dog".into(), " the cat".into()]),
            (format!("{head}Question: Which animal says moo?\nAnswer:"), vec![" a cow".into()]),
            (format!("{head}Question: Which animal purrs?"), vec!["\nAnswer: cat".into()]),
        ];
        let mut e = engine(name, 7);
        // The items fit one batch and share the head (the third all of its context but the last token).
        let enc: Vec<(Vec<u32>, Vec<Vec<u32>>)> = items.iter().map(|(c, cs)| (e.encode_request(c, &cs[0]).unwrap().0, cs.iter().map(|x| e.encode_request(c, x).unwrap().1).collect())).collect();
        let plan = pingce::engine::choices::ChoicePlan::new(&enc, &enc[0].0, false);
        assert_eq!(plan.items.len(), 4);
        assert!(plan.shared_tokens >= 3 * pingce::engine::prefix::MIN_SHARED && !plan.segs[2].is_empty(), "{name}: {} tokens shared", plan.shared_tokens);
        let pairs: Vec<(String, String)> = items.iter().flat_map(|(c, cs)| cs.iter().map(move |x| (c.clone(), x.clone()))).collect();
        let separate: Vec<Vec<u32>> = e.loglikelihood(&pairs, 0).unwrap().iter().map(|s| s.logprobs.iter().map(|v| v.to_bits()).collect()).collect();
        let shared = |e: &mut Engine| -> Vec<Vec<u32>> { e.loglikelihood_choices(&items).unwrap().iter().flatten().map(|s| s.logprobs.iter().map(|v| v.to_bits()).collect()).collect() };
        assert_eq!(shared(&mut e), separate, "{name}: shared prefix vs separate pairs");
        e.set_kv_chunk_rows(Some(131));
        assert_eq!(shared(&mut e), separate, "{name}: shared prefix copied across cache chunks");
        // One item per batch: the later batches copy from the first context kept in the cache.
        let mut e = engine(name, 2);
        assert_eq!(shared(&mut e), separate, "{name}: prefix kept from batch to batch");
    }
}

/// Choices that differ in their contexts and share the continuation (Winogrande: the sentence up
/// to the blank with each option, then the rest) prefill the tokens their contexts begin with
/// once: the scores and greedy flags of each pair scored on its own, in one batch, across cache
/// chunks, one item per batch and with sharing off; an item whose contexts share no token is
/// scored pair by pair among them.
#[test]
fn choice_contexts_sharing_their_start_are_bit_identical_to_separate_pairs() {
    let s = "The trophy doesn't fit into the brown suitcase because the";
    let t = "Sarah was a much better surgeon than Maria so";
    let items: Vec<Vec<(String, String)>> = vec![
        vec![(format!("{s} trophy"), " is too large.".into()), (format!("{s} suitcase"), " is too large.".into())],
        vec![(format!("{t} Sarah"), " always got the harder cases.".into()), (format!("{t} Maria"), " always got the harder cases.".into())],
        vec![("Cats".into(), " sleep all day.".into()), ("Dogs".into(), " sleep all day.".into())],
        vec![(format!("{s} trophy"), " is too small.".into()), (format!("{s} suitcase"), " is too small.".into()), (format!("{s} box"), " is".into())],
    ];
    let pairs: Vec<(String, String)> = items.iter().flatten().cloned().collect();
    type Bits = Vec<(Vec<u32>, Vec<bool>)>;
    let bits = |v: Vec<pingce::engine::scoring::Scored>| -> Bits { v.iter().map(|x| (x.logprobs.iter().map(|l| l.to_bits()).collect(), x.is_greedy.clone())).collect() };
    for name in ["tiny-llama", "tiny-mistral", "tiny-qwen3-moe"] {
        let mut e = engine(name, 7);
        // The sentences' contexts share their start (the test's point); the third item's none.
        let ctx = |i: usize, j: usize| e.encode_request(&items[i][j].0, &items[i][j].1).unwrap().0;
        let common = |a: Vec<u32>, b: Vec<u32>| a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        assert!(common(ctx(0, 0), ctx(0, 1)) >= 8 && common(ctx(1, 0), ctx(1, 1)) >= 5, "{name}: the contexts share their start");
        assert_eq!(common(ctx(2, 0), ctx(2, 1)), 0, "{name}: the third item's contexts share nothing");
        let separate = bits(e.loglikelihood(&pairs, 0).unwrap());
        let shared = |e: &mut Engine| -> Bits { bits(e.loglikelihood_choice_contexts(&items).unwrap().into_iter().flatten().collect()) };
        assert_eq!(shared(&mut e), separate, "{name}: shared context start vs separate pairs");
        e.set_kv_chunk_rows(Some(131));
        assert_eq!(shared(&mut e), separate, "{name}: across cache chunks");
        let mut e = engine(name, 2);
        assert_eq!(shared(&mut e), separate, "{name}: one item per batch");
        let mut e = Engine::load(Gpu::default_device().unwrap(), &dir(name), EngineOptions { batch_size: 7, max_batch_tokens: 4096, share_prefixes: false, ..Default::default() }).unwrap();
        assert_eq!(shared(&mut e), separate, "{name}: sharing off");
    }
}

/// Prompts that begin like the first one (the same few-shot examples) start from a copy of its
/// cached rows: the same generations as without sharing, whatever the batching.
#[test]
fn generation_from_a_shared_prompt_start_is_identical() {
    for name in ["tiny-llama", "tiny-mistral", "tiny-qwen3-moe"] {
        let r = reference(name);
        let gens = r["generations"].as_array().unwrap();
        let head: Vec<u32> = gens.iter().flat_map(|g| ids(&g["prompt_ids"])).take(24).collect();
        let reqs: Vec<GenRequest> = (0..5)
            .map(|i| {
                let tail = ids(&gens[i % gens.len()]["prompt_ids"]);
                let prompt = head.iter().copied().chain(tail.into_iter().skip(i % 2).take(3 + i)).collect();
                GenRequest { prompt, until: vec![], max_tokens: 4 + 3 * (i % 3) }
            })
            .collect();
        assert!(reqs[1..].iter().all(|q| pingce::engine::prefix::shared_prefix(&q.prompt, &reqs[0].prompt) >= 24), "{name}: the prompts share their head");
        let run = |slots: usize, share_prefixes: bool| -> Vec<Vec<u32>> {
            let mut e = Engine::load(Gpu::default_device().unwrap(), &dir(name), EngineOptions { batch_size: slots, max_batch_tokens: 4096, share_prefixes, ..Default::default() }).unwrap();
            e.generate(&reqs).unwrap().into_iter().map(|g| g.tokens).collect()
        };
        let want = run(2, false);
        assert!(want.iter().map(|t| t.len()).sum::<usize>() > 10, "{name}: tokens were generated");
        for slots in [1, 2, 5] {
            assert_eq!(run(slots, true), want, "{name}: shared prompt start, {slots} slots");
        }
    }
}

#[test]
fn full_log_softmax_rows_agree_with_the_scores() {
    let mut e = engine("tiny-qwen3", 4);
    let r = reference("tiny-qwen3");
    let toks = ids(&r["texts"][2]["ids"]);
    let scores = e.score(&[ScoreRequest { tokens: toks.clone(), score_from: 1 }], 5).unwrap().remove(0);
    let positions: Vec<usize> = vec![0, 3, toks.len() - 2];
    let rows = e.full_logprob_rows(&toks, &positions).unwrap();
    for (&p, row) in positions.iter().zip(&rows) {
        assert_eq!(row.len(), e.model.vocab_size());
        let s = &scores[p];
        assert_eq!(row[toks[p + 1] as usize].to_bits(), s.logprob.to_bits(), "position {p}: target log-prob");
        let mass: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
        assert!((mass - 1.0).abs() < 1e-4, "position {p}: mass {mass}");
        for (id, lp) in &s.topk {
            assert_eq!(row[*id as usize].to_bits(), lp.to_bits());
        }
    }
}

/// Continuous batching: sequences of different lengths finish at different steps and their slots
/// are refilled with the next prompts (prefilled in the same pass as the others' decode steps).
/// Every request's tokens, text and stop reason are the same with 1, 2, 3 or 8 slots, in any
/// order, and with prefills split by a small `max_batch_tokens`. `generate_observed` reports each
/// pass: every request with a budget prefilled once, and one decode per token after its first.
#[test]
fn generation_is_identical_whatever_the_batching() {
    for name in ["tiny-llama", "tiny-qwen3-moe"] {
        let r = reference(name);
        let gens = r["generations"].as_array().unwrap();
        let budgets = [7, 1, 16, 0, 3, 11, 5, 9, 2];
        let mut reqs: Vec<GenRequest> = Vec::new();
        for (i, &max_tokens) in budgets.iter().enumerate() {
            let mut prompt = ids(&gens[i % gens.len()]["prompt_ids"]);
            // Vary the prompts' lengths too.
            prompt.truncate(prompt.len().saturating_sub(i % 3).max(1));
            reqs.push(GenRequest { prompt, until: vec![], max_tokens });
        }
        let alone = |reqs: &[GenRequest]| -> Vec<_> {
            let mut e = engine(name, 1);
            reqs.iter().map(|q| e.generate(std::slice::from_ref(q)).unwrap().remove(0)).collect()
        };
        // Some sequences stop at a stop string from the middle of what they generate: a pipelined
        // pass has then already run their next step, and their slot goes to the next prompt.
        for (i, g) in alone(&reqs).iter().enumerate() {
            let chars: Vec<char> = g.text.chars().collect();
            if i % 3 != 1 && chars.len() >= 6 {
                reqs[i].until = vec![chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect()];
            }
        }
        let alone = alone(&reqs);
        assert!(alone.iter().filter(|g| g.stop == StopReason::StopString).count() >= 2, "{name}: some sequences stop at a string");
        assert!(alone.iter().map(|g| g.tokens.len()).collect::<std::collections::BTreeSet<_>>().len() > 3, "{name}: lengths should vary");
        // Pipelined (each step submitted before the one before it is read) and not.
        for (slots, max_batch_tokens, pipeline) in [(1, 4096, true), (2, 4096, true), (3, 8, true), (8, 4096, true), (8, 1, true), (1, 4096, false), (3, 8, false), (8, 4096, false)] {
            let mut e = Engine::load(Gpu::default_device().unwrap(), &dir(name), EngineOptions { batch_size: slots, max_batch_tokens, pipeline, ..Default::default() }).unwrap();
            let (mut prompts, mut decoded) = (0, 0);
            let out = e
                .generate_observed(&reqs, &mut |p| {
                    assert!(p.decoded + p.prompts <= slots, "{name}: pass {p:?} with {slots} slots");
                    prompts += p.prompts;
                    decoded += p.decoded;
                })
                .unwrap();
            let budgeted = reqs.iter().filter(|q| q.max_tokens > 0).count();
            // Tokens each sequence was given, EOS included; its first came from its prefill.
            let given: usize = out.iter().zip(&reqs).filter(|(_, q)| q.max_tokens > 0).map(|(g, _)| g.tokens.len() + usize::from(g.stop == StopReason::Eos)).sum();
            assert_eq!((prompts, decoded), (budgeted, given - budgeted), "{name}: {slots} slots, max_batch_tokens {max_batch_tokens}, pipeline {pipeline}");
            for (i, (a, b)) in alone.iter().zip(&out).enumerate() {
                assert_eq!((&a.tokens, &a.text, a.stop), (&b.tokens, &b.text, b.stop), "{name}: request {i} with {slots} slots, pipeline {pipeline}");
            }
            // Reversed order: each request still gets its own result.
            let rev: Vec<GenRequest> = reqs.iter().rev().cloned().collect();
            let out = e.generate(&rev).unwrap();
            for (a, b) in alone.iter().rev().zip(&out) {
                assert_eq!(a.tokens, b.tokens, "{name}: reversed order with {slots} slots");
            }
        }
    }
}
