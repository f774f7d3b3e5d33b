//! Models larger than one adapter: the memory plan against what the loader allocates, the
//! refusal of a budget too small, layers split across devices (two devices opened on the one
//! software adapter) and host-resident experts streamed through a small GPU cache — each giving
//! log-probs bit-identical to one device with GPU-resident experts.

use std::path::PathBuf;
use std::process::Command;

use pingce::device::{is_gpu_fault, FaultHooks, Gpu};
use pingce::engine::split::{device_specs, Placement};
use pingce::engine::{Engine, EngineOptions, GenRequest, ScoreRequest};
use pingce::model::plan::{CacheSize, Dtypes, ExpertsOn, MemoryPlan, PlanOptions};
use pingce::model::split::LoadOptions;
use pingce::model::Decoder;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

fn default_model() -> PathBuf {
    root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

const DENSE: [&str; 2] = ["tiny-llama", "tiny-qwen2"];
const MOE: [&str; 2] = ["tiny-qwen2-moe", "tiny-qwen3-moe"];
/// DeepSeek-V2 (no q LoRA, group-limited greedy, two shared experts) and V3 (q LoRA, YaRN,
/// noaux_tc with correction bias), as safetensors folders and their GGUF twins (V3's with split
/// attn_k_b / attn_v_b): MLA, ungated shared experts and a dense leading layer.
const DEEPSEEK: [&str; 4] = ["tiny-deepseek-v2", "tiny-deepseek-v3", "tiny-deepseek-v2/model.gguf", "tiny-deepseek-v3/model.gguf"];

fn gpus(n: usize, budget: Option<u64>) -> Vec<Gpu> {
    (0..n)
        .map(|_| {
            let mut g = Gpu::default_device().unwrap();
            g.hooks = FaultHooks::new(budget, None);
            g
        })
        .collect()
}

fn plan_for(path: &std::path::Path, gpus: &[Gpu], experts_on: ExpertsOn, cache: Option<CacheSize>) -> MemoryPlan {
    let (cfg, _, src, _) = Engine::open_model(path).unwrap();
    let opts = PlanOptions { devices: device_specs(gpus), context: 64, batch_size: 2, max_batch_tokens: 4096, experts_on, expert_cache: cache };
    MemoryPlan::new("m", &cfg, &Dtypes::Source(src.as_ref()), &opts).unwrap()
}

/// Loads `path` slice by slice as the plan places it and checks each device allocated exactly
/// the plan's load bytes.
fn check_plan_matches_loader(path: &std::path::Path, devices: usize, max_binding: Option<u64>, experts_on: ExpertsOn, cache: Option<CacheSize>) {
    let gpus: Vec<Gpu> = gpus(devices, None).into_iter().map(|g| match max_binding {
        Some(b) => g.with_max_binding(b),
        None => g,
    }).collect();
    let plan = plan_for(path, &gpus, experts_on, cache);
    let (cfg, _, src, _) = Engine::open_model(path).unwrap();
    let ranges = plan.ranges();
    assert_eq!(ranges.len(), devices);
    assert_eq!(ranges.last().unwrap().end, cfg.num_layers);
    for (i, g) in gpus.iter().enumerate() {
        let before = g.hooks.allocated();
        let d = Decoder::load_with(g, cfg.clone(), src.as_ref(), &LoadOptions::slice(&ranges, i, experts_on, cache)).unwrap();
        let got = g.hooks.allocated() - before;
        let p = &plan.devices[i];
        assert_eq!(got, p.load, "{}: device {i} of {devices} (binding {max_binding:?}, experts {experts_on:?}): loader allocated {got}, plan says {}", path.display(), p.load);
        assert_eq!(p.load, p.weights + p.rope_table + p.expert_cache);
        assert_eq!(p.weights, p.weights_by_dtype.values().sum::<u64>());
        assert!(d.weight_bytes() <= p.weights);
        match &d.expert_cache {
            Some(c) => assert_eq!(c.slots, p.expert_cache_slots),
            None => assert_eq!(p.expert_cache, 0),
        }
    }
    if experts_on == ExpertsOn::Host {
        assert!(plan.host_expert_bytes > 0);
    }
}

#[test]
fn plan_weight_bytes_equal_what_the_loader_allocates() {
    for name in DENSE.iter().chain(&MOE).chain(&["tiny-mistral", "tiny-qwen3"]) {
        let p = fixture(name);
        check_plan_matches_loader(&p, 1, None, ExpertsOn::Gpu, None);
        check_plan_matches_loader(&p, 2, None, ExpertsOn::Gpu, None);
        // A small binding splits matrices and expert banks into chunks.
        check_plan_matches_loader(&p, 1, Some(16384), ExpertsOn::Gpu, None);
    }
    for name in MOE {
        let p = fixture(name);
        check_plan_matches_loader(&p, 1, None, ExpertsOn::Host, Some(CacheSize::Experts(2)));
        check_plan_matches_loader(&p, 2, Some(16384), ExpertsOn::Host, Some(CacheSize::Bytes(50_000)));
        check_plan_matches_loader(&p, 1, None, ExpertsOn::Host, None);
    }
    for name in DEEPSEEK {
        let p = fixture(name);
        check_plan_matches_loader(&p, 1, None, ExpertsOn::Gpu, None);
        check_plan_matches_loader(&p, 2, None, ExpertsOn::Gpu, None);
        check_plan_matches_loader(&p, 3, Some(16384), ExpertsOn::Gpu, None);
        check_plan_matches_loader(&p, 1, None, ExpertsOn::Host, Some(CacheSize::Experts(2)));
        check_plan_matches_loader(&p, 2, Some(16384), ExpertsOn::Host, Some(CacheSize::Bytes(20_000)));
        check_plan_matches_loader(&p, 1, None, ExpertsOn::Host, None);
        // One layer per device: the first holds only the dense layer 0, so no expert cache.
        check_plan_matches_loader(&p, 3, None, ExpertsOn::Host, Some(CacheSize::Experts(2)));
    }
    // Quantized weights (Q4_1 and Q8_0 blocks) from a GGUF header, tied head copied when split.
    check_plan_matches_loader(&default_model(), 1, None, ExpertsOn::Gpu, None);
    check_plan_matches_loader(&default_model(), 3, None, ExpertsOn::Gpu, None);
}

#[test]
fn plan_activation_bytes_equal_what_a_pass_allocates() {
    use pingce::model::plan::activation_bytes;
    for name in DENSE.iter().chain(&MOE).chain(&DEEPSEEK).chain(&["tiny-mistral", "tiny-qwen3"]) {
        let p = fixture(name);
        let (cfg, _, src, _) = Engine::open_model(&p).unwrap();
        let g = Gpu::default_device().unwrap();
        let d = Decoder::load(&g, cfg.clone(), src.as_ref()).unwrap();
        for tokens in [1, 37, 256] {
            let before = g.hooks.allocated();
            let a = d.activations(&g, tokens).unwrap();
            let got = g.hooks.allocated() - before;
            assert_eq!(got, activation_bytes(&cfg, tokens), "{name}: activations of {tokens} tokens");
            drop(a);
        }
    }
}

/// DeepSeek models load by the memory plan (not the even split the loader falls back to where
/// no plan can be made): a budget one byte short of the plan's load is refused before anything
/// is allocated, and the layers go where the plan puts them.
#[test]
fn deepseek_models_load_by_the_memory_plan() {
    for name in DEEPSEEK {
        let p = fixture(name);
        let plan = plan_for(&p, &gpus(2, None), ExpertsOn::Gpu, None);
        let e = engine(&p, 2, Placement::default(), 2);
        let got: Vec<_> = std::iter::once(e.model.layer_range()).chain(e.rest.iter().map(|s| s.model.layer_range())).collect();
        assert_eq!(got, plan.ranges(), "{name}");
        let one = plan_for(&p, &gpus(1, None), ExpertsOn::Gpu, None);
        let need = one.devices[0].load;
        let err = match Engine::load_on(gpus(1, Some(need - 1)), &p, EngineOptions::default(), &Placement::default()) {
            Ok(_) => panic!("{name}: loaded past the budget"),
            Err(e) => e,
        };
        let msg = format!("{err:#}");
        assert!(is_gpu_fault(&err) && msg.contains("refused before allocating") && msg.contains("short by 1 B (1 bytes)") && msg.contains("memory plan for"), "{name}: {msg}");
        // Exactly the planned bytes load.
        Engine::load_on(gpus(1, Some(need)), &p, EngineOptions::default(), &Placement::default()).unwrap();
    }
}

#[test]
fn a_budget_too_small_is_refused_before_allocating_naming_device_and_shortfall() {
    let path = fixture("tiny-qwen3-moe");
    let loads: Vec<u64> = plan_for(&path, &gpus(2, None), ExpertsOn::Gpu, None).devices.iter().map(|d| d.load).collect();
    // Both devices get the same budget: enough for the smaller slice, not the larger one.
    let big = if loads[0] > loads[1] { 0 } else { 1 };
    let (need, budget) = (loads[big], loads[1 - big].max(loads[big] - 1000));
    assert!(budget < need);
    let devices = gpus(2, Some(budget));
    let err = match Engine::load_on(devices, &path, EngineOptions::default(), &Placement::default()) {
        Ok(_) => panic!("loaded past the budget"),
        Err(e) => e,
    };
    let msg = format!("{err:#}");
    assert!(is_gpu_fault(&err), "{msg}");
    // Only device 1's slice is short, by exactly the bytes the plan counted.
    let short: Vec<&str> = msg.lines().filter(|l| l.contains("loading needs")).collect();
    assert!(!short.is_empty() && short.iter().all(|l| l.contains(&format!("device {big} ("))), "{msg}");
    assert!(msg.contains("short by") && msg.contains(&format!("({} bytes)", need - budget)), "{msg}");
    assert!(msg.contains("memory plan for"), "the refusal carries the plan: {msg}");
    // Host-resident experts make the same slices fit the same budget.
    let devices = gpus(2, Some(budget));
    let host = Placement { experts_on: ExpertsOn::Host, expert_cache: Some(CacheSize::Experts(1)), context: None };
    let e = Engine::load_on(devices, &path, EngineOptions::default(), &host).unwrap();
    assert!(e.allocated() < 2 * budget);
}

fn requests() -> Vec<ScoreRequest> {
    let mut reqs = Vec::new();
    for (i, len) in [17usize, 5, 40, 9, 23].iter().enumerate() {
        let tokens: Vec<u32> = (0..*len).map(|j| ((j * 37 + i * 101 + 3) % 400) as u32).collect();
        reqs.push(ScoreRequest { tokens, score_from: 1 + i });
    }
    reqs
}

/// Every log-prob and top-k entry as bits, plus greedy generations and incremental decoding.
fn fingerprint(e: &mut Engine) -> (Vec<u32>, Vec<Vec<u32>>) {
    let mut bits = Vec::new();
    for r in e.score(&requests(), 4).unwrap() {
        for s in r {
            bits.push(s.logprob.to_bits());
            bits.push(s.argmax);
            for (id, lp) in s.topk {
                bits.extend([id, lp.to_bits()]);
            }
        }
    }
    let toks: Vec<u32> = (0..30).map(|j| (j * 13 % 300) as u32 + 1).collect();
    bits.extend(e.score_incremental(&toks, 11).unwrap().iter().map(|x| x.to_bits()));
    let gens = e
        .generate(&[GenRequest { prompt: toks[..7].to_vec(), until: vec![], max_tokens: 6 }, GenRequest { prompt: toks[3..20].to_vec(), until: vec![], max_tokens: 4 }])
        .unwrap()
        .into_iter()
        .map(|g| g.tokens)
        .collect();
    (bits, gens)
}

fn engine(path: &std::path::Path, devices: usize, place: Placement, batch: usize) -> Engine {
    Engine::load_on(gpus(devices, None), path, EngineOptions { batch_size: batch, max_batch_tokens: 4096, ..Default::default() }, &place).unwrap()
}

#[test]
fn layers_split_across_devices_give_identical_logprobs() {
    for name in DENSE.iter().chain(&MOE) {
        let p = fixture(name);
        let want = fingerprint(&mut engine(&p, 1, Placement::default(), 3));
        let layers = Engine::open_model(&p).unwrap().0.num_layers;
        for n in (2..=3).filter(|&n| n <= layers) {
            let mut e = engine(&p, n, Placement::default(), 3);
            assert_eq!(e.rest.len(), n - 1);
            assert_eq!(e.model.layer_range().start, 0);
            assert_eq!(e.rest.last().unwrap().model.layer_range().end, e.model.cfg.num_layers);
            assert!(fingerprint(&mut e) == want, "{name}: split over {n} devices differs from one device");
        }
        // Full log-softmax rows come from the last device.
        let toks: Vec<u32> = (0..12).map(|j| j * 7 + 1).collect();
        let one = engine(&p, 1, Placement::default(), 2).full_logprob_rows(&toks, &[0, 5, 11]).unwrap();
        let two = engine(&p, 2, Placement::default(), 2).full_logprob_rows(&toks, &[0, 5, 11]).unwrap();
        assert!(one == two, "{name}: full rows differ when split");
    }
}

#[test]
fn deepseek_layers_split_across_devices_give_identical_logprobs() {
    for name in DEEPSEEK {
        let p = fixture(name);
        let want = fingerprint(&mut engine(&p, 1, Placement::default(), 3));
        for n in [2, 3] {
            let mut e = engine(&p, n, Placement::default(), 3);
            assert_eq!(e.rest.len(), n - 1);
            assert!(fingerprint(&mut e) == want, "{name}: split over {n} devices differs from one device");
        }
        let toks: Vec<u32> = (0..12).map(|j| j * 7 + 1).collect();
        let one = engine(&p, 1, Placement::default(), 2).full_logprob_rows(&toks, &[0, 5, 11]).unwrap();
        let three = engine(&p, 3, Placement::default(), 2).full_logprob_rows(&toks, &[0, 5, 11]).unwrap();
        assert!(one == three, "{name}: full rows differ when split");
    }
}

/// DeepSeek's routers (V3: correction bias chooses, sigmoid weights) and ungated shared experts
/// with the routed experts streamed from host memory, alone and on a split.
#[test]
fn deepseek_host_resident_experts_give_identical_logprobs() {
    for name in DEEPSEEK {
        let p = fixture(name);
        let want = fingerprint(&mut engine(&p, 1, Placement::default(), 3));
        for (devices, cache) in [(1, Some(CacheSize::Experts(1))), (1, None), (3, Some(CacheSize::Experts(2)))] {
            let mut e = engine(&p, devices, Placement { experts_on: ExpertsOn::Host, expert_cache: cache, context: None }, 3);
            let got = fingerprint(&mut e);
            assert!(got == want, "{name}: host experts with cache {cache:?} on {devices} device(s) differ from GPU-resident experts");
            // Layer 0 is dense: with three devices the first holds no sparse layer and no cache.
            let caches: Vec<_> = std::iter::once(&e.model).chain(e.rest.iter().map(|s| &s.model)).filter_map(|m| m.expert_cache.as_ref()).collect();
            assert!(!caches.is_empty());
            let s = caches.iter().map(|c| c.stats()).fold((0, 0), |a, s| (a.0 + s.readbacks, a.1 + s.uploads));
            assert!(s.0 > 0 && s.1 > 0, "{name}: {s:?}");
        }
    }
}

#[test]
fn host_resident_experts_stream_through_a_small_cache_with_identical_logprobs() {
    for name in MOE {
        let p = fixture(name);
        let want = fingerprint(&mut engine(&p, 1, Placement::default(), 3));
        for (devices, cache) in [(1, Some(CacheSize::Experts(1))), (1, Some(CacheSize::Experts(2))), (1, None), (2, Some(CacheSize::Experts(2)))] {
            let mut e = engine(&p, devices, Placement { experts_on: ExpertsOn::Host, expert_cache: cache, context: None }, 3);
            let got = fingerprint(&mut e);
            assert!(got == want, "{name}: host experts with cache {cache:?} on {devices} device(s) differ from GPU-resident experts");
            let c = e.model.expert_cache.as_ref().unwrap();
            let s = c.stats();
            let top_k = e.model.cfg.moe.as_ref().unwrap().top_k;
            assert!(s.readbacks > 0 && s.uploads > 0, "{s:?}");
            if c.slots < top_k {
                // Fewer slots than experts a single token uses: every layer runs in rounds.
                assert!(s.rounds > s.readbacks, "{name}: {s:?}");
                assert!(s.uploads > c.slots as u64, "{s:?}");
            }
            if cache.is_none() {
                // One layer's experts fit: one round per layer.
                assert_eq!(s.rounds, s.readbacks, "{s:?}");
            }
        }
    }
}

#[test]
fn a_cache_smaller_than_the_experts_keeps_part_of_them_across_passes() {
    // tiny-qwen3-moe: sparse layers 1 and 3 of 6 experts each (12 in all); 8 slots.
    let p = fixture("tiny-qwen3-moe");
    let mut e = engine(&p, 1, Placement { experts_on: ExpertsOn::Host, expert_cache: Some(CacheSize::Experts(8)), context: None }, 8);
    let reqs = requests();
    let first = e.score(&reqs, 0).unwrap();
    let s1 = e.model.expert_cache.as_ref().unwrap().stats();
    let second = e.score(&reqs, 0).unwrap();
    let s2 = e.model.expert_cache.as_ref().unwrap().stats();
    let bits = |v: &Vec<Vec<pingce::kernels::logprobs::TokenScore>>| v.iter().flatten().map(|s| s.logprob.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&first), bits(&second));
    // The same passes again: a sweep over 12 experts with 8 slots finds some still resident and
    // uploads fewer than the first time (a cold cache).
    assert!(s2.hits - s1.hits > 0, "{s1:?} {s2:?}");
    assert!(s2.uploads - s1.uploads < s1.uploads, "{s1:?} {s2:?}");
}

#[test]
fn experts_held_in_memory_are_copied_to_the_host_and_give_the_same_bits() {
    use pingce::model::weights::{MemoryTensors, Safetensors, TensorSource};
    for name in MOE {
        let p = fixture(name);
        let (cfg, tokenizer, _, _) = Engine::open_model(&p).unwrap();
        // The same tensors, held in memory: no file to map, so the cache keeps a copy.
        let st = Safetensors::open_dir(&p).unwrap();
        let mut mem = MemoryTensors::default();
        let header: serde_json::Value = {
            let b = std::fs::read(p.join("model.safetensors")).unwrap();
            let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
            serde_json::from_slice(&b[8..8 + n]).unwrap()
        };
        for name in header.as_object().unwrap().keys().filter(|k| *k != "__metadata__") {
            let t = st.tensor(name).unwrap();
            mem.insert(name, t.dtype, &t.shape, t.bytes.to_vec());
        }
        let gpu = Gpu::default_device().unwrap();
        let opts = LoadOptions { experts_on: ExpertsOn::Host, expert_cache: Some(CacheSize::Experts(2)), ..LoadOptions::whole(&cfg) };
        let model = Decoder::load_with(&gpu, cfg.clone(), &mem, &opts).unwrap();
        let c = model.expert_cache.clone().unwrap();
        assert_eq!(c.mapped_layers(), 0);
        assert!(c.host_bytes() > 0);
        let mut copied = Engine::new(gpu, model, tokenizer, EngineOptions { batch_size: 3, max_batch_tokens: 4096, ..Default::default() }, vec![]);
        let want = fingerprint(&mut engine(&p, 1, Placement::default(), 3));
        assert!(fingerprint(&mut copied) == want, "{name}: copied host experts differ");
        // The fixture's own files are mapped, not copied.
        let e = engine(&p, 1, Placement { experts_on: ExpertsOn::Host, expert_cache: Some(CacheSize::Experts(2)), context: None }, 3);
        let c = e.model.expert_cache.as_ref().unwrap();
        assert!(c.mapped_layers() > 0 && c.host_bytes() == 0);
    }
}

#[test]
fn experts_on_host_refuses_a_dense_model() {
    let p = fixture("tiny-llama");
    let e = Engine::load_on(gpus(1, None), &p, EngineOptions::default(), &Placement { experts_on: ExpertsOn::Host, expert_cache: None, context: None });
    let msg = format!("{:#}", e.err().expect("a dense model has no experts to keep on the host"));
    assert!(msg.contains("no routed experts"), "{msg}");
}

fn pingce(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pingce")).args(args).current_dir(root()).output().unwrap()
}

#[test]
fn plan_command_prints_text_and_json_and_fails_when_it_does_not_fit() {
    let m = fixture("tiny-qwen3-moe");
    let m = m.to_str().unwrap();
    let o = pingce(&["plan", "--model", m, "--devices", "0,0", "--context", "32", "--batch-size", "2"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("device 0") && out.contains("device 1") && out.contains("KV cache") && out.contains("F32") && out.contains("fits"), "{out}");
    let o = pingce(&["plan", "--model", m, "--experts-on", "host", "--expert-cache", "2experts", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["devices"][0]["expert_cache_slots"], 2);
    assert!(v["host_expert_bytes"].as_u64().unwrap() > 0);
    // The JSON's load bytes are the loader's (see plan_weight_bytes_equal_what_the_loader_allocates).
    let g = gpus(1, None);
    let want = plan_for(&fixture("tiny-qwen3-moe"), &g, ExpertsOn::Host, Some(CacheSize::Experts(2))).devices[0].load;
    assert_eq!(v["devices"][0]["load"].as_u64().unwrap(), want);
    let o = pingce(&["plan", "--model", m, "--gpu-memory-budget", "100K"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(out.contains("DOES NOT FIT: device 0") && err.contains("short by"), "{out}\n{err}");
    // A config.json alone, with an assumed dtype, on devices this machine does not have.
    let o = pingce(&["plan", "--model", "docs/scaling/qwen3-235b-a22b", "--assume-dtype", "Q4_K", "--experts-on", "host", "--max-binding", "4G", "--gpu-memory-budget", "141G"]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("routed experts in host memory"));
    // DeepSeek-V3's published config (docs/scaling.md quotes these plans): the KV cache holds
    // the expanded per-head keys and values, heads × padded head size × 2 f32 per position and
    // layer (128 × 192 × 2 × 4 bytes), not the compressed latent.
    let o = pingce(&["plan", "--model", "docs/scaling/deepseek-v3", "--assume-dtype", "Q4_K", "--experts-on", "host", "--expert-cache", "60G", "--max-binding", "4294967295", "--gpu-memory-budget", "139G", "--context", "2048", "--batch-size", "2", "--json"]);
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["architecture"], "DeepseekV3");
    let kv = v["devices"][0]["kv_cache"].as_u64().unwrap();
    assert_eq!(kv, 61 * 4096 * 128 * 192 * 2 * 4);
    assert!(v["host_expert_bytes"].as_u64().unwrap() > 300 << 30);
}

#[test]
fn eval_refuses_with_the_plan_when_the_weights_do_not_fit() {
    let m = fixture("tiny-llama");
    let req = std::env::temp_dir().join(format!("pingce-scaling-{}.jsonl", std::process::id()));
    std::fs::write(&req, "{\"context\": \"a b\", \"continuation\": \" c\"}\n").unwrap();
    let o = pingce(&["score", "--model", m.to_str().unwrap(), "--devices", "0,0", "--gpu-memory-budget", "20K", req.to_str().unwrap()]);
    let _ = std::fs::remove_file(&req);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(75), "{err}");
    assert!(err.contains("refused before allocating") && err.contains("device 0") && err.contains("short by") && err.contains("memory plan for"), "{err}");
}
