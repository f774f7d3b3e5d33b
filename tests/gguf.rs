//! GGUF loading end to end without Python: fixture models converted to GGUF here (q/k rows
//! permuted as llama.cpp's converter does) must score bit-identically to their safetensors
//! originals; broken GGUF files fail with messages that say what and where.

use std::path::{Path, PathBuf};

use pingce::device::Gpu;
use pingce::engine::{Engine, EngineOptions, ScoreRequest};
use pingce::model::weights::{Safetensors, TensorSource};
use pingce::tensor::DType;
use serde_json::Value as Json;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A metadata value for the writer.
enum V {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend((s.len() as u64).to_le_bytes());
    b.extend(s.as_bytes());
}

/// A minimal GGUF v3 writer: metadata, then tensors (ggml type, ne, bytes) aligned to 32.
fn write_gguf(path: &Path, version: u32, meta: &[(&str, V)], tensors: &[(String, u32, Vec<u64>, Vec<u8>)]) {
    let mut b = b"GGUF".to_vec();
    b.extend(version.to_le_bytes());
    b.extend((tensors.len() as u64).to_le_bytes());
    b.extend((meta.len() as u64).to_le_bytes());
    for (k, v) in meta {
        put_str(&mut b, k);
        match v {
            V::U32(x) => b.extend(4u32.to_le_bytes().into_iter().chain(x.to_le_bytes())),
            V::F32(x) => b.extend(6u32.to_le_bytes().into_iter().chain(x.to_le_bytes())),
            V::Bool(x) => b.extend(7u32.to_le_bytes().into_iter().chain([*x as u8])),
            V::Str(s) => {
                b.extend(8u32.to_le_bytes());
                put_str(&mut b, s);
            }
            V::Strs(a) => {
                b.extend(9u32.to_le_bytes());
                b.extend(8u32.to_le_bytes());
                b.extend((a.len() as u64).to_le_bytes());
                for s in a {
                    put_str(&mut b, s);
                }
            }
            V::I32s(a) => {
                b.extend(9u32.to_le_bytes());
                b.extend(5u32.to_le_bytes());
                b.extend((a.len() as u64).to_le_bytes());
                for x in a {
                    b.extend(x.to_le_bytes());
                }
            }
        }
    }
    let mut offset = 0u64;
    for (name, t, ne, data) in tensors {
        put_str(&mut b, name);
        b.extend((ne.len() as u32).to_le_bytes());
        for d in ne {
            b.extend(d.to_le_bytes());
        }
        b.extend(t.to_le_bytes());
        b.extend(offset.to_le_bytes());
        offset += (data.len() as u64).next_multiple_of(32);
    }
    b.resize(b.len().next_multiple_of(32), 0);
    for (_, _, _, data) in tensors {
        b.extend(data);
        b.resize(b.len().next_multiple_of(32), 0);
    }
    std::fs::write(path, b).unwrap();
}

/// llama.cpp's permute for interleaved RoPE: HF row h*d + j*d/2 + i goes to h*d + 2i + j.
fn permute(bytes: &[u8], rows: usize, heads: usize) -> Vec<u8> {
    let rb = bytes.len() / rows;
    let d = rows / heads;
    let mut out = vec![0u8; bytes.len()];
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..d / 2 {
                let (src, dst) = (h * d + j * d / 2 + i, h * d + 2 * i + j);
                out[dst * rb..(dst + 1) * rb].copy_from_slice(&bytes[src * rb..(src + 1) * rb]);
            }
        }
    }
    out
}

/// Converts a fixture (f32 weights, byte-level BPE tokenizer) into a GGUF file.
fn convert(name: &str, arch: &str, out: &Path, drop_key: Option<&str>) {
    let dir = fixture(name);
    let cfg: Json = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let tok: Json = serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap()).unwrap();
    let st = Safetensors::open_dir(&dir).unwrap();
    let n = |k: &str| cfg[k].as_u64().unwrap() as u32;
    let layers = n("num_hidden_layers");
    let (heads, kv_heads) = (n("num_attention_heads") as usize, n("num_key_value_heads") as usize);
    let vocab = tok["model"]["vocab"].as_object().unwrap();
    let mut tokens = vec![String::new(); vocab.len()];
    for (t, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = t.clone();
    }
    let merges: Vec<String> = tok["model"]["merges"].as_array().unwrap().iter().map(|m| format!("{} {}", m[0].as_str().unwrap(), m[1].as_str().unwrap())).collect();
    let types: Vec<i32> = (0..tokens.len()).map(|i| if i == 0 { 3 } else { 1 }).collect();
    let k = |s: &str| format!("{arch}.{s}");
    let mut meta: Vec<(String, V)> = vec![
        ("general.architecture".into(), V::Str(arch.into())),
        (k("block_count"), V::U32(layers)),
        (k("context_length"), V::U32(n("max_position_embeddings"))),
        (k("embedding_length"), V::U32(n("hidden_size"))),
        (k("feed_forward_length"), V::U32(n("intermediate_size"))),
        (k("attention.head_count"), V::U32(heads as u32)),
        (k("attention.head_count_kv"), V::U32(kv_heads as u32)),
        (k("attention.key_length"), V::U32(cfg["head_dim"].as_u64().map_or(n("hidden_size") / heads as u32, |d| d as u32))),
        (k("attention.layer_norm_rms_epsilon"), V::F32(cfg["rms_norm_eps"].as_f64().unwrap() as f32)),
        (k("rope.freq_base"), V::F32(cfg["rope_parameters"]["rope_theta"].as_f64().unwrap() as f32)),
        (k("expert_count"), V::U32(cfg["num_experts"].as_u64().or(cfg["num_local_experts"].as_u64()).unwrap_or(0) as u32)),
        (k("expert_used_count"), V::U32(cfg["num_experts_per_tok"].as_u64().unwrap_or(0) as u32)),
        (k("expert_feed_forward_length"), V::U32(cfg["moe_intermediate_size"].as_u64().unwrap_or(0) as u32)),
        (k("expert_shared_feed_forward_length"), V::U32(cfg["shared_expert_intermediate_size"].as_u64().unwrap_or(0) as u32)),
        ("tokenizer.ggml.model".into(), V::Str("gpt2".into())),
        ("tokenizer.ggml.pre".into(), V::Str("gpt2".into())),
        ("tokenizer.ggml.tokens".into(), V::Strs(tokens)),
        ("tokenizer.ggml.token_type".into(), V::I32s(types)),
        ("tokenizer.ggml.merges".into(), V::Strs(merges)),
        ("tokenizer.ggml.bos_token_id".into(), V::U32(0)),
        ("tokenizer.ggml.eos_token_id".into(), V::U32(0)),
        ("tokenizer.ggml.add_bos_token".into(), V::Bool(false)),
    ];
    let moe = arch.ends_with("moe");
    // Only MoE files carry the expert keys, and only qwen2moe the shared expert's.
    meta.retain(|(key, _)| Some(key.as_str()) != drop_key && (moe || !key.contains("expert")) && (arch == "qwen2moe" || !key.contains("expert_shared")));
    let sparse = |l: u32| st.contains(&format!("model.layers.{l}.mlp.gate.weight"));
    let mut tensors = Vec::new();
    let mut extra = Vec::new();
    let mut add = |hf: &str, g: &str, permute_heads: Option<usize>| {
        let t = st.tensor(hf).unwrap();
        let ggml = match t.dtype {
            DType::F32 => 0u32,
            DType::F16 => 1,
            DType::BF16 => 30,
            d => panic!("{d:?}"),
        };
        let mut bytes = t.bytes.to_vec();
        if let (Some(h), "llama") = (permute_heads, arch) {
            bytes = permute(&bytes, t.shape[0], h);
        }
        tensors.push((g.to_string(), ggml, t.shape.iter().rev().map(|&d| d as u64).collect(), bytes));
    };
    add("model.embed_tokens.weight", "token_embd.weight", None);
    add("model.norm.weight", "output_norm.weight", None);
    if st.contains("lm_head.weight") {
        add("lm_head.weight", "output.weight", None);
    }
    for l in 0..layers {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        let b = |s: &str| format!("blk.{l}.{s}");
        add(&p("self_attn.q_proj.weight"), &b("attn_q.weight"), Some(heads));
        add(&p("self_attn.k_proj.weight"), &b("attn_k.weight"), Some(kv_heads));
        add(&p("self_attn.v_proj.weight"), &b("attn_v.weight"), None);
        add(&p("self_attn.o_proj.weight"), &b("attn_output.weight"), None);
        if arch == "qwen2moe" {
            for w in ["q", "k", "v"] {
                add(&p(&format!("self_attn.{w}_proj.bias")), &b(&format!("attn_{w}.bias")), None);
            }
        }
        if sparse(l) {
            add(&p("mlp.gate.weight"), &b("ffn_gate_inp.weight"), None);
            if arch == "qwen2moe" {
                add(&p("mlp.shared_expert.gate_proj.weight"), &b("ffn_gate_shexp.weight"), None);
                add(&p("mlp.shared_expert.up_proj.weight"), &b("ffn_up_shexp.weight"), None);
                add(&p("mlp.shared_expert.down_proj.weight"), &b("ffn_down_shexp.weight"), None);
                // llama.cpp stores the [1, hidden] shared-expert gate as a vector.
                let t = st.tensor(&p("mlp.shared_expert_gate.weight")).unwrap();
                extra.push((b("ffn_gate_inp_shexp.weight"), 30, vec![t.shape[1] as u64], t.bytes.to_vec()));
            }
            // Experts stacked as llama.cpp writes them: ne = [cols, rows, n_expert].
            let n_exp = cfg["num_experts"].as_u64().or(cfg["num_local_experts"].as_u64()).unwrap() as usize;
            for w in ["gate", "up", "down"] {
                let mut bytes = Vec::new();
                let mut shape = Vec::new();
                let mut dtype = DType::F32;
                for e in 0..n_exp {
                    let t = st.tensor(&p(&format!("mlp.experts.{e}.{w}_proj.weight"))).unwrap();
                    bytes.extend_from_slice(&t.bytes);
                    shape = t.shape.clone();
                    dtype = t.dtype;
                }
                let ggml = if dtype == DType::BF16 { 30 } else { 0 };
                extra.push((b(&format!("ffn_{w}_exps.weight")), ggml, vec![shape[1] as u64, shape[0] as u64, n_exp as u64], bytes));
            }
        } else {
            add(&p("mlp.gate_proj.weight"), &b("ffn_gate.weight"), None);
            add(&p("mlp.up_proj.weight"), &b("ffn_up.weight"), None);
            add(&p("mlp.down_proj.weight"), &b("ffn_down.weight"), None);
        }
        add(&p("input_layernorm.weight"), &b("attn_norm.weight"), None);
        add(&p("post_attention_layernorm.weight"), &b("ffn_norm.weight"), None);
        if arch == "qwen3" || arch == "qwen3moe" {
            add(&p("self_attn.q_norm.weight"), &b("attn_q_norm.weight"), None);
            add(&p("self_attn.k_norm.weight"), &b("attn_k_norm.weight"), None);
        }
    }
    tensors.extend(extra);
    let meta_ref: Vec<(&str, V)> = meta.into_iter().map(|(k, v)| (Box::leak(k.into_boxed_str()) as &str, v)).collect();
    write_gguf(out, 3, &meta_ref, &tensors);
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pingce-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn bits(e: &mut Engine, reqs: &[ScoreRequest]) -> Vec<Vec<u32>> {
    e.score(reqs, 0).unwrap().iter().map(|s| s.iter().map(|x| x.logprob.to_bits()).collect()).collect()
}

fn load(p: &Path) -> anyhow::Result<Engine> {
    Engine::load(Gpu::default_device().unwrap(), p, EngineOptions::default())
}

#[test]
fn gguf_conversions_score_like_their_safetensors_originals() {
    // tiny-qwen3: q/k norm, explicit head_dim, no permutation (llama: the next test).
    // The MoE fixtures: stacked ffn_*_exps, ffn_gate_inp(_shexp), *_shexp, a dense leading layer
    // (no ffn_gate_inp), bf16 weights for qwen2moe.
    for (name, arch) in [("tiny-qwen3", "qwen3"), ("tiny-qwen2-moe", "qwen2moe"), ("tiny-qwen3-moe", "qwen3moe")] {
        let path = tmp(&format!("{name}.gguf"));
        convert(name, arch, &path, None);
        let mut g = load(&path).unwrap();
        let mut s = load(&fixture(name)).unwrap();
        let texts = ["The cat sat on the mat.", "def f(x):\n    return x * 2", "今天天气很好"];
        let reqs: Vec<ScoreRequest> = texts
            .iter()
            .map(|t| {
                let ids = pingce::engine::requests::Encode::encode(&s.tokenizer, t).unwrap();
                assert_eq!(pingce::engine::requests::Encode::encode(&g.tokenizer, t).unwrap(), ids, "{name}: GGUF tokenizer ids");
                ScoreRequest { tokens: ids, score_from: 1 }
            })
            .collect();
        assert_eq!(bits(&mut g, &reqs), bits(&mut s, &reqs), "{name}: GGUF vs safetensors");
        if arch.ends_with("moe") {
            // Host-resident experts read straight from the mapped GGUF (gate and up of an expert
            // are two ranges of ffn_gate_exps / ffn_up_exps), through a 2-slot cache.
            use pingce::engine::split::Placement;
            use pingce::model::plan::{CacheSize, ExpertsOn};
            let place = Placement { experts_on: ExpertsOn::Host, expert_cache: Some(CacheSize::Experts(2)), context: None };
            let mut h = Engine::load_on(vec![Gpu::default_device().unwrap()], &path, EngineOptions::default(), &place).unwrap();
            let c = h.model.expert_cache.clone().unwrap();
            assert!(c.mapped_layers() > 0 && c.host_bytes() == 0, "{name}: experts copied instead of mapped");
            assert_eq!(bits(&mut h, &reqs), bits(&mut g, &reqs), "{name}: GGUF host experts vs GPU experts");
            assert!(c.stats().uploads > 0);
        }
    }
}

#[test]
fn llama_gguf_unpermutes_q_and_k() {
    // Without llama3 rope scaling in GGUF metadata, compare to the same fixture with the scaling
    // removed from its config.
    let dir = tmp("tiny-llama-plain");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(fixture("tiny-llama")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    let cfg_path = dir.join("config.json");
    let mut cfg: Json = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["rope_parameters"] = serde_json::json!({"rope_type": "default", "rope_theta": 10000.0});
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let path = tmp("tiny-llama.gguf");
    convert("tiny-llama", "llama", &path, None);
    let mut g = load(&path).unwrap();
    let mut s = load(&dir).unwrap();
    let reqs = vec![ScoreRequest { tokens: (1..60).map(|i| (i * 7 % 440) as u32).collect(), score_from: 1 }];
    assert_eq!(bits(&mut g, &reqs), bits(&mut s, &reqs));
}

fn err_of(p: &Path) -> String {
    match load(p) {
        Ok(_) => panic!("{} loaded but should not", p.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn broken_gguf_files_say_what_and_where() {
    let good = tmp("good.gguf");
    convert("tiny-qwen3", "qwen3", &good, None);
    let bytes = std::fs::read(&good).unwrap();

    let p = tmp("truncated.gguf");
    std::fs::write(&p, &bytes[..bytes.len() - 5000]).unwrap();
    let e = err_of(&p);
    assert!(e.contains("truncated.gguf") && e.contains("truncated"), "{e}");
    std::fs::write(&p, &bytes[..100]).unwrap();
    assert!(err_of(&p).contains("truncated"));

    let p = tmp("magic.gguf");
    std::fs::write(&p, b"GGML0000000000000000000000").unwrap();
    assert!(err_of(&p).contains("not a GGUF file"));

    let p = tmp("v1.gguf");
    let mut v1 = bytes.clone();
    v1[4..8].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(&p, v1).unwrap();
    assert!(err_of(&p).contains("GGUF version 1"));

    let p = tmp("missing.gguf");
    convert("tiny-qwen3", "qwen3", &p, Some("qwen3.block_count"));
    let e = err_of(&p);
    assert!(e.contains("qwen3.block_count") && e.contains("missing.gguf"), "{e}");

    let p = tmp("arch.gguf");
    convert("tiny-qwen3", "gpt2", &p, None);
    assert!(err_of(&p).contains("architecture \"gpt2\" is not supported"));

    // A tensor of a type pingce does not implement (Q5_0 = ggml type 6) where a weight is needed.
    let p = tmp("type.gguf");
    write_gguf(
        &p,
        3,
        &[("general.architecture", V::Str("qwen3".into()))],
        &[("token_embd.weight".into(), 6, vec![32, 4], vec![0u8; 4 * 22])],
    );
    let g = pingce::model::gguf::GgufModel::open(&p);
    assert!(g.is_err());
    let gg = pingce::model::gguf::Gguf::open(&p).unwrap();
    let m = pingce::model::gguf::GgufModel { cfg: pingce::model::Config::from_json(&serde_json::json!({
        "architectures": ["Qwen3ForCausalLM"], "hidden_size": 32, "intermediate_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 1, "head_dim": 32, "vocab_size": 4})).unwrap(), gguf: gg };
    let e = format!("{:#}", m.tensor("model.embed_tokens.weight").err().unwrap());
    assert!(e.contains("token_embd.weight") && e.contains("Q5_0"), "{e}");
}
