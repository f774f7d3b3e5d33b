//! Criterion benchmarks of the kernels and a whole forward pass on the default adapter
//! (lavapipe where there is no GPU). Throughput is reported in FLOP (matmul) or bytes of
//! weights streamed (matvec); run `cargo bench` and read "thrpt".

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pingce::device::Gpu;
use pingce::engine::{Engine, EngineOptions, ScoreRequest};
use pingce::kernels::attention::{Attention, Lanes};
use pingce::kernels::kv_write::kv_write;
use pingce::kernels::linear::{linear_path, Path, Rows};
use pingce::model::decoder::LayerCache;
use pingce::model::weights::MemoryTensors;
use pingce::model::{Config, Decoder, Tokenizer};
use pingce::tensor::{DType, Matrix};

fn gpu() -> &'static Gpu {
    static G: std::sync::OnceLock<Gpu> = std::sync::OnceLock::new();
    G.get_or_init(|| Gpu::default_device().unwrap())
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / (1u32 << 24) as f32 - 0.5).collect()
}

fn matrix(rows: usize, cols: usize, dtype: DType) -> Matrix {
    let v = values(rows * cols, 7);
    let bytes: Vec<u8> = match dtype {
        DType::F32 => bytemuck::cast_slice(&v).to_vec(),
        DType::F16 => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
        DType::BF16 => v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
        q => random_blocks(q, rows * cols),
    };
    Matrix::upload(gpu(), "w", dtype, rows, cols, &bytes).unwrap()
}

/// Random quantized blocks with small, finite f16 scales.
fn random_blocks(dtype: DType, n: usize) -> Vec<u8> {
    let bb = dtype.block_bytes();
    let mut bytes: Vec<u8> = values(dtype.bytes_for(n), 11).iter().map(|x| ((x + 0.5) * 255.0) as u8).collect();
    let scale = half::f16::from_f32(0.01).to_le_bytes();
    for blk in bytes.chunks_exact_mut(bb) {
        match dtype {
            DType::Q6_K => blk[208..210].copy_from_slice(&scale),
            _ => {
                blk[0..2].copy_from_slice(&scale);
                if matches!(dtype, DType::Q4_1 | DType::Q4_K | DType::Q5_K) {
                    blk[2..4].copy_from_slice(&scale);
                }
            }
        }
    }
    bytes
}

fn run_linear(path: Path, w: &Matrix, x: &wgpu::Buffer, y: &wgpu::Buffer, m: usize, reps: usize) {
    let mut rec = gpu().recorder();
    for _ in 0..reps {
        let r = Rows { x, x_offset: 0, x_stride: w.cols, y, y_offset: 0, y_stride: w.rows, m };
        linear_path(&mut rec, path, w, None, false, &r).unwrap();
    }
    rec.submit("bench").unwrap();
}

fn bench_matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul");
    g.sample_size(10);
    for (m, n, k, dtype) in [(512, 512, 512, DType::F32), (512, 1536, 576, DType::F32), (512, 576, 1536, DType::F32), (512, 1536, 576, DType::BF16), (512, 1536, 576, DType::Q4_1)] {
        let w = matrix(n, k, dtype);
        let x = gpu().upload("x", bytemuck::cast_slice(&values(m * k, 3))).unwrap();
        let y = gpu().storage("y", (m * n * 4) as u64).unwrap();
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        g.bench_function(BenchmarkId::new(format!("{dtype:?}"), format!("{m}x{n}x{k}")), |b| b.iter(|| run_linear(Path::Tiled, &w, &x, &y, m, 1)));
    }
    g.finish();
}

/// The linear layer at prefill shapes through the matrix-vector kernel: what a CPU adapter runs
/// for every row count (`Path::for_rows`), so on lavapipe this is the prefill matmul's figure.
fn bench_linear_vector(c: &mut Criterion) {
    let mut g = c.benchmark_group("linear, vector path");
    g.sample_size(10);
    for (m, n, k, dtype) in [(512, 1536, 576, DType::F32), (512, 1536, 576, DType::BF16), (512, 1536, 576, DType::Q4_1), (512, 576, 1536, DType::Q4_1), (16, 1536, 576, DType::Q4_1)] {
        let w = matrix(n, k, dtype);
        let x = gpu().upload("x", bytemuck::cast_slice(&values(m * k, 3))).unwrap();
        let y = gpu().storage("y", (m * n * 4) as u64).unwrap();
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        g.bench_function(BenchmarkId::new(format!("{dtype:?}"), format!("{m}x{n}x{k}")), |b| b.iter(|| run_linear(Path::Vector, &w, &x, &y, m, 1)));
    }
    g.finish();
}

fn bench_matvec(c: &mut Criterion) {
    let mut g = c.benchmark_group("matvec");
    g.sample_size(10);
    // SmolLM2's shapes, and a 7B model's 4096 x 4096 (on a GPU: the split-K kernel's bandwidth
    // where a projection is large enough to fill the device; `tools/gpu-check` runs this group).
    for (n, k, dtype) in [(1536, 576, DType::F32), (576, 1536, DType::F32), (49152, 576, DType::F32), (1536, 576, DType::BF16), (1536, 576, DType::Q4_1), (1536, 576, DType::Q8_0), (1536, 512, DType::Q4_K), (1536, 512, DType::Q5_K), (1536, 512, DType::Q6_K), (4096, 4096, DType::Q4_1), (4096, 4096, DType::BF16)] {
        let w = matrix(n, k, dtype);
        let x = gpu().upload("x", bytemuck::cast_slice(&values(k, 3))).unwrap();
        let y = gpu().storage("y", (n * 4) as u64).unwrap();
        let reps = 8;
        g.throughput(Throughput::Bytes(w.bytes_on_gpu() * reps as u64));
        g.bench_function(BenchmarkId::new(format!("{dtype:?}"), format!("1x{n}x{k}")), |b| b.iter(|| run_linear(Path::Vector, &w, &x, &y, 1, reps)));
    }
    g.finish();
}

fn bench_attention(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention");
    g.sample_size(10);
    let (hq, hkv, d, t) = (9, 3, 64, 512);
    let stride = (hq + 2 * hkv) * d;
    let qkv = gpu().upload("qkv", bytemuck::cast_slice(&values(t * stride, 1))).unwrap();
    let meta: Vec<u32> = (0..t as u32).flat_map(|p| [p, 0]).collect();
    let meta = gpu().upload("meta", bytemuck::cast_slice(&meta)).unwrap();
    let kc = [gpu().storage("k", (t * hkv * d * 4) as u64).unwrap()];
    let vc = [gpu().storage("v", (t * hkv * d * 4) as u64).unwrap()];
    let cache = LayerCache { k: &kc, v: &vc, chunk_rows: t };
    let out = gpu().storage("out", (t * hq * d * 4) as u64).unwrap();
    let att = Attention { heads_q: hq, heads_kv: hkv, head_dim: d, window: None };
    g.throughput(Throughput::Elements(t as u64));
    g.bench_function("prefill 512 tokens, 9/3 heads x 64", |b| {
        b.iter(|| {
            let mut rec = gpu().recorder();
            kv_write(&mut rec, &qkv, stride, hq * d, (hq + hkv) * d, hkv * d, t, &meta, &cache).unwrap();
            att.record(&mut rec, &qkv, 0, stride, t, Lanes::Tokens, t, &meta, &cache, &out).unwrap();
            rec.submit("bench").unwrap();
        })
    });
    g.finish();
}

/// A SmolLM2-135M-shaped Llama (hidden 576, 9/3 heads, MLP 1536, vocab 49152) with random
/// weights and 4 of its 30 layers, in memory.
fn synthetic_engine() -> Engine {
    let layers = 4;
    let cfg = Config::from_json(&serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": 576, "intermediate_size": 1536,
        "num_hidden_layers": layers, "num_attention_heads": 9, "num_key_value_heads": 3,
        "vocab_size": 49152, "max_position_embeddings": 2048, "rope_theta": 100000.0,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": true
    }))
    .unwrap();
    let mut t = MemoryTensors::default();
    let mut seed = 0;
    let mut put = |t: &mut MemoryTensors, name: &str, shape: &[usize]| {
        seed += 1;
        let n = shape.iter().product();
        let v: Vec<f32> = values(n, seed).iter().map(|x| x * 0.1 + if shape.len() == 1 { 1.0 } else { 0.0 }).collect();
        t.insert_f32(name, shape, &v);
    };
    put(&mut t, "model.embed_tokens.weight", &[49152, 576]);
    put(&mut t, "model.norm.weight", &[576]);
    for l in 0..layers {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        for (n, s) in [
            ("self_attn.q_proj.weight", vec![576, 576]), ("self_attn.k_proj.weight", vec![192, 576]), ("self_attn.v_proj.weight", vec![192, 576]),
            ("self_attn.o_proj.weight", vec![576, 576]), ("mlp.gate_proj.weight", vec![1536, 576]), ("mlp.up_proj.weight", vec![1536, 576]),
            ("mlp.down_proj.weight", vec![576, 1536]), ("input_layernorm.weight", vec![576]), ("post_attention_layernorm.weight", vec![576]),
        ] {
            put(&mut t, &p(n), &s);
        }
    }
    let gpu = Gpu::default_device().unwrap();
    let model = Decoder::load(&gpu, cfg, &t).unwrap();
    let tok_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama");
    let tokenizer = Tokenizer::load(&tok_dir, Some(0), Some(0)).unwrap();
    Engine::new(gpu, model, tokenizer, EngineOptions::default(), vec![])
}

fn bench_forward(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward (SmolLM2-135M shape, 4 layers, f32)");
    g.sample_size(10);
    let mut e = synthetic_engine();
    let t = 256;
    let req = ScoreRequest { tokens: (0..t as u32).map(|i| i * 37 % 49152).collect(), score_from: t - 1 };
    g.throughput(Throughput::Elements(t as u64));
    g.bench_function("prefill 256 tokens", |b| b.iter(|| e.score(std::slice::from_ref(&req), 0).unwrap()));
    let tokens: Vec<u32> = (0..40u32).map(|i| i * 91 % 49152).collect();
    g.throughput(Throughput::Elements(8));
    g.bench_function("decode 8 tokens", |b| b.iter(|| e.score_incremental(&tokens, 32).unwrap()));
    g.finish();
}

criterion_group!(benches, bench_matmul, bench_linear_vector, bench_matvec, bench_attention, bench_forward);
criterion_main!(benches);
