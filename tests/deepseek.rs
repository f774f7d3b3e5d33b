//! DeepSeek-V2 / DeepSeek-V3 (multi-head latent attention and DeepSeek's routers) against
//! transformers float32 on the tiny fixtures of tools/gen_deepseek_fixtures.py, their
//! llama.cpp-style GGUF twins, the engine's invariances, the routing kernel's DeepSeek modes and
//! the MLA kernels against CPU references, and the errors of unsupported settings.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_close, fixture_dir as dir, floats, gpu, ids, reference, Rng};
use pingce::device::Gpu;
use pingce::engine::requests::Encode;
use pingce::engine::{Engine, EngineOptions, GenRequest, ScoreRequest};
use pingce::model::config::{RopeLayout, Router};
use serde_json::Value;

const MODELS: [&str; 2] = ["tiny-deepseek-v3", "tiny-deepseek-v2"];


fn load(path: &Path, batch_size: usize) -> Engine {
    Engine::load(Gpu::default_device().unwrap(), path, EngineOptions { batch_size, max_batch_tokens: 4096, ..Default::default() }).unwrap()
}

fn engine(name: &str, batch_size: usize) -> Engine {
    load(&dir(name), batch_size)
}

fn requests(name: &str) -> Vec<ScoreRequest> {
    reference(name)["texts"].as_array().unwrap().iter().map(|t| ScoreRequest { tokens: ids(&t["ids"]), score_from: 1 }).collect()
}

fn bits(e: &mut Engine, reqs: &[ScoreRequest]) -> Vec<Vec<u32>> {
    e.score(reqs, 0).unwrap().iter().map(|s| s.iter().map(|x| x.logprob.to_bits()).collect()).collect()
}

#[test]
fn logprobs_and_greedy_flags_match_transformers() {
    for name in MODELS {
        let mut e = engine(name, 4);
        let r = reference(name);
        let texts = r["texts"].as_array().unwrap();
        for t in texts {
            assert_eq!(e.tokenizer.encode(t["text"].as_str().unwrap()).unwrap(), ids(&t["ids"]), "{name}: token ids");
        }
        let got = e.score(&requests(name), 5).unwrap();
        let mut worst = 0f32;
        for (t, g) in texts.iter().zip(&got) {
            let (want, margins, top5) = (floats(&t["logprobs"]), floats(&t["margins"]), t["top5_ids"].as_array().unwrap());
            assert_eq!(g.len(), want.len());
            for (i, s) in g.iter().enumerate() {
                worst = worst.max((s.logprob - want[i]).abs());
                if margins[i] > 1e-3 {
                    assert_eq!(s.argmax, top5[i][0].as_u64().unwrap() as u32, "{name}: argmax at {i}");
                    assert_eq!(t["greedy_is"][i].as_bool().unwrap(), s.argmax == ids(&t["ids"])[i + 1], "{name}: greedy flag at {i}");
                }
            }
        }
        eprintln!("{name}: max |Δ log-prob| vs transformers = {worst:e}");
        assert!(worst <= 1e-4, "{name}: max |Δ log-prob| {worst} > 1e-4");
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    for name in MODELS {
        let mut e = engine(name, 8);
        let gens = reference(name)["generations"].as_array().unwrap().clone();
        let reqs: Vec<GenRequest> = gens.iter().map(|g| GenRequest { prompt: ids(&g["prompt_ids"]), until: vec![], max_tokens: 16 }).collect();
        let out = e.generate(&reqs).unwrap();
        for (g, o) in gens.iter().zip(&out) {
            assert_eq!(o.tokens, ids(&g["new_ids"]), "{name}: greedy tokens for {:?}", g["prompt"]);
        }
    }
}

/// Batch size, order and mixing with other requests change no bit, and incremental decoding
/// gives the prefill's bits (as `pingce determinism` checks).
#[test]
fn scores_are_bit_identical_whatever_the_batch_and_in_decode() {
    for name in MODELS {
        let reqs = requests(name);
        let mut e1 = engine(name, 1);
        let alone: Vec<Vec<u32>> = reqs.iter().map(|q| bits(&mut e1, std::slice::from_ref(q)).remove(0)).collect();
        for bs in [2, 3, 16] {
            assert_eq!(bits(&mut engine(name, bs), &reqs), alone, "{name}: batch size {bs}");
        }
        let mut e = engine(name, 5);
        let mut mixed: Vec<ScoreRequest> = reqs.iter().rev().cloned().collect();
        mixed.push(ScoreRequest { tokens: reqs[5].tokens[..30].to_vec(), score_from: 3 });
        let got = bits(&mut e, &mixed);
        for (i, g) in got[..reqs.len()].iter().enumerate() {
            assert_eq!(g, &alone[reqs.len() - 1 - i], "{name}: shuffled request {i}");
        }
        assert_eq!(got[reqs.len()][..], alone[5][2..29], "{name}: prefix request");
        let long = reqs[5].tokens.clone();
        let inc = e.score_incremental(&long, 20).unwrap();
        let want: Vec<u32> = alone[5][19..].to_vec();
        assert_eq!(inc.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want, "{name}: prefill vs incremental decode");
    }
}

/// The GGUF twins (llama.cpp's deepseek2 names and layouts; V3's with split attn_k_b / attn_v_b,
/// V2's with the combined attn_kv_b) score bit-identically to the safetensors folders.
#[test]
fn gguf_twins_score_like_the_safetensors_models() {
    for name in MODELS {
        let reqs = requests(name);
        let want = bits(&mut engine(name, 4), &reqs);
        let got = bits(&mut load(&dir(name).join("model.gguf"), 4), &reqs);
        assert_eq!(got, want, "{name}: GGUF vs safetensors");
    }
}

fn write_config(name: &str, edit: impl Fn(&mut Value)) -> PathBuf {
    let src = dir(name);
    let d = std::env::temp_dir().join(format!("pingce-deepseek-{}-{name}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&d).unwrap();
    for f in ["model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), d.join(f)).unwrap();
    }
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(d.join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    d
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn unsupported_router_settings_are_clear_errors() {
    for (name, key, value, want) in [
        ("tiny-deepseek-v3", "topk_method", serde_json::json!("group_limited_greedy"), "topk_method"),
        ("tiny-deepseek-v3", "scoring_func", serde_json::json!("softmax"), "scoring_func"),
        ("tiny-deepseek-v2", "topk_method", serde_json::json!("noaux_tc"), "topk_method"),
        ("tiny-deepseek-v2", "scoring_func", serde_json::json!("sigmoid"), "scoring_func"),
        ("tiny-deepseek-v3", "n_group", serde_json::json!(3), "n_group"),
    ] {
        let d = write_config(name, |c| c[key] = value.clone());
        let e = Engine::load(Gpu::default_device().unwrap(), &d, EngineOptions::default()).err().unwrap_or_else(|| panic!("{name} {key}={value} loaded"));
        let msg = format!("{e:#}");
        assert!(msg.contains(want) && msg.contains("config.json"), "{name} {key}={value}: {msg}");
        let _ = std::fs::remove_dir_all(&d);
    }
    // A missing correction bias names the tensor.
    let d = write_config("tiny-deepseek-v3", |_| {});
    let st = safetensors_without(&dir("tiny-deepseek-v3").join("model.safetensors"), "model.layers.1.mlp.gate.e_score_correction_bias");
    std::fs::write(d.join("model.safetensors"), st).unwrap();
    let msg = format!("{:#}", Engine::load(Gpu::default_device().unwrap(), &d, EngineOptions::default()).err().unwrap());
    assert!(msg.contains("model.layers.1.mlp.gate.e_score_correction_bias"), "{msg}");
    let _ = std::fs::remove_dir_all(&d);
}

/// The safetensors file at `path` without tensor `drop`.
fn safetensors_without(path: &Path, drop: &str) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let keep: Vec<(String, safetensors::tensor::TensorView)> = st.tensors().into_iter().filter(|(n, _)| n != drop).collect();
    safetensors::serialize(keep, None).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Kernels against CPU references.
// ---------------------------------------------------------------------------------------------

fn f32_buf(v: &[f32]) -> wgpu::Buffer {
    gpu().upload("test", bytemuck::cast_slice(v)).unwrap()
}
fn u32_buf(v: &[u32]) -> wgpu::Buffer {
    gpu().upload("test", bytemuck::cast_slice(v)).unwrap()
}

/// transformers' DeepSeek routers in f64: (ids in choice order, weights).
fn cpu_route(row: &[f32], bias: Option<&[f32]>, r: &Router, k: usize, norm: bool) -> (Vec<u32>, Vec<f32>) {
    let n = row.len();
    let scores: Vec<f64> = if r.sigmoid {
        row.iter().map(|&l| 1.0 / (1.0 + (-(l as f64)).exp())).collect()
    } else {
        let mx = row.iter().cloned().fold(f32::MIN, f32::max);
        let sum: f64 = row.iter().map(|&l| ((l - mx) as f64).exp()).sum();
        row.iter().map(|&l| ((l - mx) as f64).exp() / sum).collect()
    };
    let choice: Vec<f64> = (0..n).map(|e| scores[e] + bias.map_or(0.0, |b| b[e] as f64)).collect();
    let per = n / r.groups;
    let mut gs: Vec<(usize, f64)> = (0..r.groups)
        .map(|g| {
            let mut v: Vec<f64> = choice[g * per..(g + 1) * per].to_vec();
            v.sort_by(|a, b| b.partial_cmp(a).unwrap());
            (g, if r.group_top2 { v[0] + v[1] } else { v[0] })
        })
        .collect();
    gs.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
    let kept: Vec<usize> = gs[..r.topk_groups].iter().map(|g| g.0).collect();
    let mut order: Vec<usize> = (0..n).filter(|e| kept.contains(&(e / per))).collect();
    order.sort_by(|&a, &b| choice[b].partial_cmp(&choice[a]).unwrap().then(a.cmp(&b)));
    let top = &order[..k];
    let total: f64 = top.iter().map(|&e| scores[e]).sum();
    let w = top.iter().map(|&e| ((if norm { scores[e] / total } else { scores[e] }) * r.scale) as f32).collect();
    (top.iter().map(|&e| e as u32).collect(), w)
}

#[test]
fn moe_route_deepseek_modes_match_cpu() {
    use pingce::kernels::moe_route;
    let mut rng = Rng::new(77);
    let g = gpu();
    let v3 = |groups, topk_groups| Router { sigmoid: true, correction_bias: true, groups, topk_groups, group_top2: true, scale: 2.5, ungated_shared: true };
    let v2 = |groups, topk_groups| Router { sigmoid: false, correction_bias: false, groups, topk_groups, group_top2: false, scale: 1.5, ungated_shared: true };
    for (tokens, experts, k, stride, norm, r) in [
        (67, 12, 3, 13, true, v3(4, 2)),
        (9, 10, 4, 10, true, v3(5, 3)),
        (70, 8, 2, 9, false, v3(1, 1)),
        (33, 12, 2, 12, false, v2(3, 1)),
        (5, 16, 5, 17, false, v2(4, 2)),
        (66, 7, 3, 7, false, v2(1, 1)),
    ] {
        let logits = rng.vec(tokens * stride, 3.0);
        let bias: Vec<f32> = rng.vec(experts, 0.3);
        let (lb, bb) = (f32_buf(&logits), f32_buf(&bias));
        let (ids, ws) = (u32_buf(&vec![0; tokens * k]), f32_buf(&vec![0.0; tokens * k]));
        let mut rec = g.recorder();
        let b = r.correction_bias.then_some(&bb);
        moe_route::route_with(&mut rec, &r, b, &lb, stride, experts, k, norm, tokens, &ids, &ws).unwrap();
        rec.submit("route").unwrap();
        let (got_ids, got_w) = (g.read_u32(&ids, 0, tokens * k).unwrap(), g.read_f32(&ws, 0, tokens * k).unwrap());
        for t in 0..tokens {
            let row = &logits[t * stride..t * stride + experts];
            let (wi, ww) = cpu_route(row, r.correction_bias.then_some(&bias[..]), &r, k, norm);
            assert_eq!(&got_ids[t * k..(t + 1) * k], &wi[..], "token {t} ids ({tokens}x{experts}, k {k}, {r:?})");
            assert_close("route weights", &got_w[t * k..(t + 1) * k], &ww, 2e-6);
        }
    }
    // A bad group setting is an error naming it, not a wrong routing.
    let lb = f32_buf(&[0.0; 8]);
    let (ids, ws) = (u32_buf(&[0; 2]), f32_buf(&[0.0; 2]));
    let e = moe_route::route_with(&mut g.recorder(), &v2(3, 1), None, &lb, 8, 8, 2, false, 1, &ids, &ws).unwrap_err();
    assert!(e.to_string().contains("groups"), "{e}");
}

/// CPU MLA q/k/v assembly: rows [Q | K | V] of `heads * d`.
#[allow(clippy::too_many_arguments)]
fn cpu_mla_qkv(q: &[f32], kv: &[f32], pe: &[f32], pos: &[u32], s: &pingce::kernels::mla::Shape, cos: &[Vec<f32>], sin: &[Vec<f32>], scale: f32) -> Vec<f32> {
    let (h, d, nope, rope, vhd) = (s.heads, s.d, s.nope, s.rope, s.vhd);
    let half = rope / 2;
    let rot = |x: &[f32], p: usize| -> Vec<f32> {
        let mut out = vec![0f32; rope];
        for i in 0..half {
            let (c, sn) = (cos[p][i], sin[p][i]);
            let (a, b) = match s.layout {
                RopeLayout::Halves => (i, i + half),
                _ => (2 * i, 2 * i + 1),
            };
            let (r1, r2) = (x[a] * c - x[b] * sn, x[b] * c + x[a] * sn);
            match s.layout {
                RopeLayout::Interleaved => {
                    out[2 * i] = r1;
                    out[2 * i + 1] = r2;
                }
                _ => {
                    out[i] = r1;
                    out[i + half] = r2;
                }
            }
        }
        out
    };
    let tokens = pos.len();
    let mut out = vec![0f32; tokens * 3 * h * d];
    for t in 0..tokens {
        let p = pos[t] as usize;
        let kpe = rot(&pe[t * rope..(t + 1) * rope], p);
        for hh in 0..h {
            let qrow = &q[t * h * (nope + rope) + hh * (nope + rope)..][..nope + rope];
            let qpe = rot(&qrow[nope..], p);
            let kvrow = &kv[t * h * (nope + vhd) + hh * (nope + vhd)..][..nope + vhd];
            let o = t * 3 * h * d + hh * d;
            for j in 0..d {
                let qv = if j < nope { qrow[j] } else if j < nope + rope { qpe[j - nope] } else { 0.0 };
                out[o + j] = qv * scale;
                out[o + h * d + j] = if j < nope { kvrow[j] } else if j < nope + rope { kpe[j - nope] } else { 0.0 };
                out[o + 2 * h * d + j] = if j < vhd { kvrow[nope + j] } else { 0.0 };
            }
        }
    }
    out
}

#[test]
fn mla_qkv_and_unpad_match_cpu() {
    use pingce::kernels::mla::{self, Inputs, Shape};
    use pingce::kernels::rope::RopeTable;
    let mut rng = Rng::new(5);
    let g = gpu();
    for (tokens, heads, nope, rope, vhd, layout) in [
        (7usize, 3usize, 5usize, 6usize, 9usize, RopeLayout::Interleaved),
        (66, 2, 12, 8, 16, RopeLayout::InterleavedToHalves),
        (13, 5, 3, 10, 2, RopeLayout::Halves),
    ] {
        let d = (nope + rope).max(vhd).next_multiple_of(4);
        let s = Shape { heads, d, nope, rope, vhd, layout };
        let max_pos = 40;
        let inv: Vec<f32> = (0..rope / 2).map(|i| 1.0 / 50f32.powf(2.0 * i as f32 / rope as f32)).collect();
        let table = RopeTable::scaled(g, &inv, max_pos, 0.9).unwrap();
        let cos: Vec<Vec<f32>> = (0..max_pos).map(|p| inv.iter().map(|f| ((p as f32 * f) as f64).cos() as f32 * 0.9).collect()).collect();
        let sin: Vec<Vec<f32>> = (0..max_pos).map(|p| inv.iter().map(|f| ((p as f32 * f) as f64).sin() as f32 * 0.9).collect()).collect();
        let q = rng.vec(tokens * heads * (nope + rope), 1.0);
        let kv = rng.vec(tokens * heads * (nope + vhd), 1.0);
        // k_pe sits after 3 other columns of a wider row, as in the latent buffer.
        let pe_stride = rope + 5;
        let pe_rows = rng.vec(tokens * pe_stride, 1.0);
        let pe: Vec<f32> = (0..tokens).flat_map(|t| pe_rows[t * pe_stride + 3..t * pe_stride + 3 + rope].to_vec()).collect();
        let pos: Vec<u32> = (0..tokens).map(|t| ((t * 7 + 3) % max_pos) as u32).collect();
        let meta: Vec<u32> = pos.iter().flat_map(|&p| [p, 0]).collect();
        let (qb, kvb, peb, mb) = (f32_buf(&q), f32_buf(&kv), f32_buf(&pe_rows), u32_buf(&meta));
        let out_stride = 3 * heads * d + 4;
        let ob = f32_buf(&vec![7.0; tokens * out_stride]);
        let mut rec = g.recorder();
        let x = Inputs { q: &qb, q_offset: 0, q_stride: heads * (nope + rope), kv: &kvb, kv_stride: heads * (nope + vhd), pe: &peb, pe_offset: 3, pe_stride };
        mla::qkv(&mut rec, &s, &x, tokens, &table, &mb, 0.37, &ob, out_stride).unwrap();
        rec.submit("mla qkv").unwrap();
        let got = g.read_f32(&ob, 0, tokens * out_stride).unwrap();
        let want = cpu_mla_qkv(&q, &kv, &pe, &pos, &s, &cos, &sin, 0.37);
        for t in 0..tokens {
            assert_close("mla qkv", &got[t * out_stride..t * out_stride + 3 * heads * d], &want[t * 3 * heads * d..(t + 1) * 3 * heads * d], 1e-5);
            assert_eq!(got[t * out_stride + 3 * heads * d], 7.0, "row padding untouched");
        }
        // Unpad: the first vhd columns of each padded head.
        let att = rng.vec(tokens * heads * d, 1.0);
        let (ab, ub) = (f32_buf(&att), f32_buf(&vec![0.0; tokens * heads * vhd]));
        let mut rec = g.recorder();
        mla::unpad(&mut rec, &ab, &ub, tokens, heads, d, vhd).unwrap();
        rec.submit("mla unpad").unwrap();
        let got = g.read_f32(&ub, 0, tokens * heads * vhd).unwrap();
        let want: Vec<f32> = (0..tokens * heads).flat_map(|th| att[th * d..th * d + vhd].to_vec()).collect();
        assert_eq!(got, want);
    }
}

/// `pingce determinism` (batch sizes, orders, incremental decode) passes on both fixtures.
#[test]
fn determinism_command_passes_on_the_deepseek_fixtures() {
    for name in MODELS {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_pingce"))
            .args(["determinism", "--model", dir(name).to_str().unwrap(), "--batch-sizes", "1,3,16"])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{name}: {out}\n{}", String::from_utf8_lossy(&o.stderr));
        assert!(out.contains("PASS"), "{name}: {out}");
        let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("batch size") || l.starts_with("incremental")).collect();
        assert_eq!(rows.len(), 10, "{name}: {out}");
        assert!(rows[1..].iter().all(|l| l.ends_with("bit-identical")), "{name}: {out}");
    }
}

/// The fixture GGUF with the 4-byte value of metadata key `key` (a u32) replaced, or the key
/// renamed (so it reads as absent).
fn patched_gguf(name: &str, key: &str, value: Option<u32>) -> Vec<u8> {
    let mut b = std::fs::read(dir(name).join("model.gguf")).unwrap();
    let pat = key.as_bytes();
    let at = b.windows(pat.len()).position(|w| w == pat).unwrap_or_else(|| panic!("{key} not in {name}.gguf"));
    let end = at + pat.len();
    match value {
        Some(v) => {
            assert_eq!(&b[end..end + 4], &4u32.to_le_bytes(), "{key} is not a u32");
            b[end + 4..end + 8].copy_from_slice(&v.to_le_bytes());
        }
        None => b[end - 1] = b'~',
    }
    b
}

#[test]
fn bad_deepseek2_gguf_metadata_is_a_clear_error() {
    use pingce::model::gguf::Gguf;
    for (name, key, value, want) in [
        ("tiny-deepseek-v3", "deepseek2.expert_gating_func", Some(3), "expert_gating_func 3"),
        ("tiny-deepseek-v3", "deepseek2.attention.kv_lora_rank", None, "deepseek2.attention.kv_lora_rank"),
        ("tiny-deepseek-v2", "deepseek2.rope.dimension_count", None, "deepseek2.rope.dimension_count"),
        ("tiny-deepseek-v3", "deepseek2.expert_group_count", Some(3), "n_group"),
        ("tiny-deepseek-v2", "deepseek2.attention.key_length", Some(4), "key length 4"),
        ("tiny-deepseek-v3", "deepseek2.rope.scaling.original_context_length", None, "original_context_length"),
    ] {
        let g = Gguf::from_bytes(Path::new("bad.gguf"), patched_gguf(name, key, value)).unwrap();
        let msg = format!("{:#}", g.config().unwrap_err());
        assert!(msg.contains(want) && msg.contains("bad.gguf"), "{name} {key}={value:?}: {msg}");
    }
    // A layer without its correction bias names the tensor.
    let b = patched_gguf("tiny-deepseek-v3", "blk.2.exp_probs_b.bias", None);
    std::fs::create_dir_all(std::env::temp_dir()).unwrap();
    let p = std::env::temp_dir().join(format!("pingce-deepseek-{}-nobias.gguf", std::process::id()));
    std::fs::write(&p, b).unwrap();
    let msg = format!("{:#}", Engine::load(Gpu::default_device().unwrap(), &p, EngineOptions::default()).err().unwrap());
    assert!(msg.contains("blk.2.exp_probs_b.bias"), "{msg}");
    let _ = std::fs::remove_file(&p);
}

/// A GGUF v3 file with `general.architecture` and the given tensors (ggml type, ne, bytes).
fn tiny_gguf(tensors: &[(&str, u32, Vec<u64>, Vec<u8>)]) -> Vec<u8> {
    let s = |b: &mut Vec<u8>, x: &str| {
        b.extend((x.len() as u64).to_le_bytes());
        b.extend(x.as_bytes());
    };
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend((tensors.len() as u64).to_le_bytes());
    b.extend(1u64.to_le_bytes());
    s(&mut b, "general.architecture");
    b.extend(8u32.to_le_bytes());
    s(&mut b, "deepseek2");
    let mut offset = 0u64;
    for (name, t, ne, bytes) in tensors {
        s(&mut b, name);
        b.extend((ne.len() as u32).to_le_bytes());
        ne.iter().for_each(|d| b.extend(d.to_le_bytes()));
        b.extend(t.to_le_bytes());
        b.extend(offset.to_le_bytes());
        offset += (bytes.len() as u64).next_multiple_of(32);
    }
    b.resize(b.len().next_multiple_of(32), 0);
    for (_, _, _, bytes) in tensors {
        b.extend(bytes);
        b.resize(b.len().next_multiple_of(32), 0);
    }
    b
}

/// kv_b_proj rebuilt from a quantized (Q8_0) attn_k_b and an f32 attn_v_b: dequantized, each
/// head's k part transposed back, v rows after it.
#[test]
fn kv_b_from_quantized_split_tensors() {
    use pingce::model::gguf::{Gguf, GgufModel};
    use pingce::model::weights::TensorSource;
    let (nope, kvr, heads, vhd) = (32usize, 3usize, 2usize, 5usize);
    // k_b[h][c][i] = integers, stored Q8_0 with scale 1 (exact).
    let kval = |h: usize, c: usize, i: usize| ((h * 37 + c * 11 + i * 5) % 200) as i32 - 100;
    let mut kb = Vec::new();
    for h in 0..heads {
        for c in 0..kvr {
            kb.extend(half::f16::from_f32(1.0).to_le_bytes());
            kb.extend((0..nope).map(|i| kval(h, c, i) as i8 as u8));
        }
    }
    let vval = |h: usize, r: usize, c: usize| (h * 100 + r * 10 + c) as f32 * 0.5;
    let vb: Vec<u8> = (0..heads).flat_map(|h| (0..vhd).flat_map(move |r| (0..kvr).map(move |c| vval(h, r, c)))).flat_map(|x| x.to_le_bytes()).collect();
    let file = tiny_gguf(&[
        ("blk.0.attn_k_b.weight", 8, vec![nope as u64, kvr as u64, heads as u64], kb),
        ("blk.0.attn_v_b.weight", 0, vec![kvr as u64, vhd as u64, heads as u64], vb),
    ]);
    let gguf = Gguf::from_bytes(Path::new("split.gguf"), file).unwrap();
    let cfg = pingce::model::Config::from_json(&reference_config()).unwrap();
    let m = GgufModel { gguf, cfg };
    let name = "model.layers.0.self_attn.kv_b_proj.weight";
    assert!(m.contains(name));
    let t = m.tensor(name).unwrap();
    assert_eq!(t.shape, vec![heads * (nope + vhd), kvr]);
    // The memory plan sizes the tensor the loader gets: dequantized to f32.
    assert_eq!((t.dtype, m.dtype_of(name).unwrap()), (pingce::tensor::DType::F32, pingce::tensor::DType::F32));
    let got = t.to_f32();
    for h in 0..heads {
        for c in 0..kvr {
            for i in 0..nope {
                assert_eq!(got[(h * (nope + vhd) + i) * kvr + c], kval(h, c, i) as f32, "k head {h} row {i} col {c}");
            }
            for r in 0..vhd {
                assert_eq!(got[(h * (nope + vhd) + nope + r) * kvr + c], vval(h, r, c), "v head {h} row {r} col {c}");
            }
        }
    }
}

/// Any valid DeepSeek config (only the GGUF tensor mapping is exercised with it).
fn reference_config() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir("tiny-deepseek-v3").join("config.json")).unwrap()).unwrap()
}
