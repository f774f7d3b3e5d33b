//! The default model (SmolLM2-135M-Instruct, Q4_1 GGUF, fetched by tools/fetch-default-model)
//! against transformers, which loads the same GGUF dequantized to float32
//! (tests/fixtures/smollm2-q4_1, written by tools/gguf_reference.py).

mod common;

use std::path::PathBuf;

use pingce::device::Gpu;
use pingce::engine::requests::Encode;
use pingce::engine::{Engine, EngineOptions, GenRequest, ScoreRequest};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_path() -> PathBuf {
    let p = std::env::var_os("PINGCE_MODEL").map(PathBuf::from).unwrap_or_else(|| root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(p.exists(), "{} is missing: run tools/fetch-default-model first", p.display());
    p
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("tests/fixtures/smollm2-q4_1").join(name)).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn engine() -> Engine {
    Engine::load(Gpu::default_device().unwrap(), &model_path(), EngineOptions { batch_size: 8, max_batch_tokens: 2048, ..Default::default() }).unwrap()
}

#[test]
fn gguf_tokenizer_matches_transformers() {
    let e = engine();
    let corpus = fixture("tokenizer_ids.json");
    for item in corpus["corpus"].as_array().unwrap() {
        let text = item["text"].as_str().unwrap();
        assert_eq!(e.tokenizer.encode(text).unwrap(), ids(&item["ids"]), "ids of {text:?}");
    }
    assert_eq!(e.tokenizer.bos_id, Some(1));
    assert_eq!(e.tokenizer.eos_id, Some(2));
}

#[test]
fn default_model_matches_transformers() {
    let mut e = engine();
    let r = fixture("reference.json");
    let prompts = r["prompts"].as_array().unwrap();
    let mut reqs = Vec::new();
    for p in prompts {
        let want = ids(&p["ids"]);
        assert_eq!(e.tokenizer.encode(p["text"].as_str().unwrap()).unwrap(), want, "token ids of {}", p["name"]);
        reqs.push(ScoreRequest { tokens: want, score_from: 1 });
    }
    let got = e.score(&reqs, 0).unwrap();
    let mut worst = (0f32, String::new());
    for (p, g) in prompts.iter().zip(&got) {
        let want: Vec<f32> = p["logprobs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let margins: Vec<f64> = p["margins"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let top1 = ids(&p["top1"]);
        for (i, s) in g.iter().enumerate() {
            let d = (s.logprob - want[i]).abs();
            if d > worst.0 {
                worst = (d, format!("{} position {}", p["name"], i + 1));
            }
            if margins[i] > 1e-2 {
                assert_eq!(s.argmax, top1[i], "{}: top-1 at position {}", p["name"], i + 1);
            }
        }
    }
    eprintln!("max |Δ log-prob| vs transformers: {} at {}", worst.0, worst.1);
    assert!(worst.0 <= 2e-3, "max |Δ log-prob| {} at {} > 2e-3", worst.0, worst.1);

    // Greedy continuations, batched: the same tokens up to the first step where the reference's
    // top-1/top-2 margin is at most 1e-2 (or where it suppressed EOS).
    let with_greedy: Vec<&Value> = prompts.iter().filter(|p| p["greedy"].is_object()).collect();
    let gens: Vec<GenRequest> = with_greedy.iter().map(|p| GenRequest { prompt: ids(&p["ids"]), until: vec![], max_tokens: 24 }).collect();
    let out = e.generate(&gens).unwrap();
    for (p, o) in with_greedy.iter().zip(&out) {
        let g = &p["greedy"];
        let want = ids(&g["new_ids"]);
        let margins: Vec<f64> = g["margins"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let eos_steps = ids(&g["eos_suppressed_steps"]);
        let n = (0..want.len()).find(|&i| margins[i] <= 1e-2 || eos_steps.contains(&(i as u32))).unwrap_or(want.len());
        assert!(o.tokens.len() >= n, "{}: stopped after {} tokens", p["name"], o.tokens.len());
        assert_eq!(o.tokens[..n], want[..n], "{}: greedy tokens", p["name"]);
    }
}
