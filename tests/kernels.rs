//! Every kernel against a plain CPU reference, on random inputs of awkward sizes.

mod common;

use common::{assert_close, gpu, Rng};
use pingce::device::Gpu;
use pingce::kernels::attention::{Attention, Lanes, KEY_SPAN};
use pingce::kernels::linear::{linear_path, split_k, Path, Rows, SPLIT_K_SEGMENT};
use pingce::kernels::rmsnorm::{self, RmsNorm};
use pingce::kernels::{embedding, kv_copy, kv_write, logprobs, rope, swiglu};
use pingce::model::decoder::LayerCache;
use pingce::tensor::{DType, Layout, Matrix};

fn f32_buf(gpu: &Gpu, v: &[f32]) -> wgpu::Buffer {
    gpu.upload("test", bytemuck::cast_slice(v)).unwrap()
}
fn u32_buf(gpu: &Gpu, v: &[u32]) -> wgpu::Buffer {
    gpu.upload("test", bytemuck::cast_slice(v)).unwrap()
}

/// Stores `w` in `dtype` and returns the bytes and the values the GPU will see.
fn encode(w: &[f32], dtype: DType) -> (Vec<u8>, Vec<f32>) {
    let bytes: Vec<u8> = match dtype {
        DType::F32 => bytemuck::cast_slice(w).to_vec(),
        DType::F16 => w.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
        DType::BF16 => w.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect(),
        q => panic!("{q:?} is encoded with random_blocks"),
    };
    let vals = dtype.to_f32(&bytes);
    (bytes, vals)
}

fn cpu_linear(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut y = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for kk in 0..k {
                s += x[i * k + kk] as f64 * w[j * k + kk] as f64;
            }
            y[i * n + j] = s as f32 + bias.map_or(0.0, |b| b[j]);
        }
    }
    y
}

fn run_linear(gpu: &Gpu, path: Path, w: &Matrix, bias: Option<&[f32]>, x: &[f32], m: usize, acc_init: Option<&[f32]>) -> Vec<f32> {
    let n = w.rows;
    let xb = f32_buf(gpu, x);
    let yb = f32_buf(gpu, acc_init.map(|a| a.to_vec()).unwrap_or(vec![0.0; m * n]).as_slice());
    let bb = bias.map(|b| f32_buf(gpu, b));
    let mut rec = gpu.recorder();
    let rows = Rows { x: &xb, x_offset: 0, x_stride: w.cols, y: &yb, y_offset: 0, y_stride: n, m };
    linear_path(&mut rec, path, w, bb.as_ref(), acc_init.is_some(), &rows).unwrap();
    rec.submit("test linear").unwrap();
    gpu.read_f32(&yb, 0, m * n).unwrap()
}

#[test]
fn linear_matches_cpu_for_each_dtype_path_and_chunking() {
    let mut rng = Rng::new(1);
    for (dtype, m, n, k) in [(DType::F32, 67, 45, 37), (DType::F16, 3, 130, 76), (DType::BF16, 70, 33, 96), (DType::F32, 1, 200, 260), (DType::F16, 5, 30, 71)] {
        let x = rng.vec(m * k, 1.0);
        let (bytes, wv) = encode(&rng.vec(n * k, 0.5), dtype);
        let bias = rng.vec(n, 1.0);
        let want = cpu_linear(&x, &wv, Some(&bias), m, n, k);
        let w = Matrix::upload(gpu(), "w", dtype, n, k, &bytes).unwrap();
        for path in [Path::Tiled, Path::Vector] {
            let got = run_linear(gpu(), path, &w, Some(&bias), &x, m, None);
            assert_close(&format!("{dtype:?} {path:?} {m}x{n}x{k}"), &got, &want, 2e-4 * (k as f32).sqrt());
        }
        // Without bias, accumulating onto what y holds (the residual add).
        let init = rng.vec(m * n, 1.0);
        let mut want2 = cpu_linear(&x, &wv, None, m, n, k);
        want2.iter_mut().zip(&init).for_each(|(a, b)| *a += b);
        let got = run_linear(gpu(), Path::Tiled, &w, None, &x, m, Some(&init));
        assert_close("accumulate", &got, &want2, 2e-4 * (k as f32).sqrt());
    }
}

/// `n` elements of random `dtype` blocks: random quants, random f16 scales and mins.
fn random_blocks(rng: &mut Rng, dtype: DType, n: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..dtype.bytes_for(n)).map(|_| rng.next_u64() as u8).collect();
    let f16 = |rng: &mut Rng| half::f16::from_f32(rng.f32() * 0.05).to_le_bytes();
    for blk in bytes.chunks_exact_mut(dtype.block_bytes()) {
        match dtype {
            DType::Q6_K => blk[208..210].copy_from_slice(&f16(rng)),
            DType::Q4_1 | DType::Q4_K | DType::Q5_K => {
                blk[0..2].copy_from_slice(&f16(rng));
                blk[2..4].copy_from_slice(&f16(rng));
            }
            _ => blk[0..2].copy_from_slice(&f16(rng)),
        }
    }
    bytes
}

#[test]
fn quantized_linear_and_embedding_match_cpu_dequantization() {
    let mut rng = Rng::new(11);
    for dtype in [DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::Q5_K, DType::Q6_K] {
        let k = 3 * dtype.block_size();
        let n = 37;
        let bytes = random_blocks(&mut rng, dtype, n * k);
        let wv = dtype.to_f32(&bytes);
        assert!(wv.iter().all(|v| v.is_finite()));
        let w = Matrix::upload(gpu(), "w", dtype, n, k, &bytes).unwrap();
        // Q6_K's 8-bit scales make weights up to ~200: compare relative to the largest.
        let wmax = wv.iter().fold(1f32, |a, v| a.max(v.abs()));
        for m in [1, 3, 5, 67] {
            let x = rng.vec(m * k, 1.0);
            let want = cpu_linear(&x, &wv, None, m, n, k);
            for path in [Path::Tiled, Path::Vector] {
                let got = run_linear(gpu(), path, &w, None, &x, m, None);
                assert_close(&format!("{dtype:?} {path:?} m={m}"), &got, &want, 1e-4 * (k as f32).sqrt() * wmax);
            }
            assert_eq!(run_linear(gpu(), Path::Tiled, &w, None, &x, m, None), run_linear(gpu(), Path::Vector, &w, None, &x, m, None));
        }
        let ids: Vec<u32> = vec![36, 0, 17, 5];
        let idb = u32_buf(gpu(), &ids);
        let out = f32_buf(gpu(), &vec![0.0; ids.len() * k]);
        let mut rec = gpu().recorder();
        embedding::embedding(&mut rec, &w, &idb, ids.len(), &out).unwrap();
        rec.submit("embedding").unwrap();
        let want: Vec<f32> = ids.iter().flat_map(|&i| wv[i as usize * k..(i as usize + 1) * k].to_vec()).collect();
        assert_eq!(gpu().read_f32(&out, 0, ids.len() * k).unwrap(), want, "{dtype:?} embedding");
    }
}

/// Decoding one sequence on a CPU adapter, the matrix-vector kernel normalises x itself (`NORM`):
/// the same bits as RMSNorm then the product, for planar and float weights, with a bias, in
/// chunks, and the fused SwiGLU; widths of 64, 96 and 160 (not all multiples of the 64 partial
/// sums of RMSNorm's tree).
#[test]
fn matvec_normalising_x_gives_rmsnorm_then_matvec_bits() {
    use pingce::kernels::matvec::{self, Norm};
    let g = gpu();
    let mut rng = Rng::new(44);
    if !g.subgroup_x {
        // GPUs normalise in RMSNorm's own kernel.
        let w = Matrix::upload(g, "w", DType::F32, 8, 64, bytemuck::cast_slice(&rng.vec(8 * 64, 1.0))).unwrap();
        let (xb, yb) = (f32_buf(g, &rng.vec(64, 1.0)), f32_buf(g, &[0.0; 8]));
        let rows = Rows { x: &xb, x_offset: 0, x_stride: 64, y: &yb, y_offset: 0, y_stride: 8, m: 1 };
        assert!(!matvec::normalises(&g.recorder(), &w, &rows));
        return;
    }
    let n = 37;
    for (dtype, k) in [(DType::Q4_1, 160), (DType::Q8_0, 96), (DType::F32, 64), (DType::F16, 96)] {
        let bytes = if dtype.is_float() {
            let v = rng.vec(2 * n * k, 1.0);
            match dtype {
                DType::F32 => bytemuck::cast_slice(&v).to_vec(),
                _ => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
            }
        } else {
            random_blocks(&mut rng, dtype, 2 * n * k)
        };
        let small = Gpu::default_device().unwrap().with_max_binding(dtype.bytes_for(k) as u64 * 20);
        let w = Matrix::upload(g, "w", dtype, 2 * n, k, &bytes).unwrap();
        let chunked = Matrix::upload(&small, "w", dtype, 2 * n, k, &bytes).unwrap();
        assert!(chunked.chunks.len() > 1);
        let (x, nw, bias) = (rng.vec(k, 3.0), rng.vec(k, 1.0), rng.vec(2 * n, 1.0));
        let run = |g: &Gpu, w: &Matrix, bias: Option<&[f32]>, swiglu: bool, fused: bool| {
            let (xb, nb, hb) = (f32_buf(g, &x), f32_buf(g, &nw), f32_buf(g, &vec![0.0; k]));
            let bb = bias.map(|b| f32_buf(g, b));
            let outs = if swiglu { n } else { 2 * n };
            let y = f32_buf(g, &vec![0.0; outs]);
            let mut rec = g.recorder();
            let input = if fused { &xb } else { &hb };
            let rows = Rows { x: input, x_offset: 0, x_stride: k, y: &y, y_offset: 0, y_stride: outs, m: 1 };
            let norm = Norm { weight: &nb, eps: 1e-5 };
            if fused {
                let done = if swiglu { matvec::record_swiglu_normed(&mut rec, w, n, &rows, &norm).unwrap() } else { matvec::record_normed(&mut rec, w, bb.as_ref(), false, &rows, &norm).unwrap() };
                assert!(done);
            } else {
                let xr = rmsnorm::Rows { buf: &xb, offset: 0, stride: k, per: 1 };
                RmsNorm { weight: &nb, dim: k, eps: 1e-5 }.to(&mut rec, 1, &xr, &hb, k, None).unwrap();
                if swiglu {
                    assert!(matvec::record_swiglu(&mut rec, w, n, &rows).unwrap());
                } else {
                    matvec::record(&mut rec, w, bb.as_ref(), false, &rows).unwrap();
                }
            }
            rec.submit("normed").unwrap();
            g.read_f32(&y, 0, outs).unwrap()
        };
        for (what, b) in [("plain", None), ("bias", Some(&bias[..]))] {
            let want = run(g, &w, b, false, false);
            assert!(want.iter().all(|v| v.is_finite()));
            assert_eq!(run(g, &w, b, false, true), want, "{dtype:?} k={k} {what}");
            assert_eq!(run(&small, &chunked, b, false, true), want, "{dtype:?} k={k} {what} chunked");
        }
        assert_eq!(run(g, &w, None, true, true), run(g, &w, None, true, false), "{dtype:?} k={k} swiglu");
    }
    // Two x rows are not normalised in the kernel.
    let w = Matrix::upload(g, "w", DType::F32, 8, 64, bytemuck::cast_slice(&rng.vec(8 * 64, 1.0))).unwrap();
    let (xb, yb) = (f32_buf(g, &rng.vec(128, 1.0)), f32_buf(g, &[0.0; 16]));
    let rows = Rows { x: &xb, x_offset: 0, x_stride: 64, y: &yb, y_offset: 0, y_stride: 8, m: 2 };
    let mut rec = g.recorder();
    assert!(!matvec::record_normed(&mut rec, &w, None, false, &rows, &Norm { weight: &xb, eps: 1e-5 }).unwrap());
    assert!(rec.is_empty());
}

/// The planar layout of ggml blocks (quants, then scales: what CPU adapters get for Q8_0, Q4_0,
/// Q4_1 and Q6_K) gives the bits of the blocks as stored from every kernel that reads it: the
/// matrix-vector kernel at 1, 4 and 9 rows, alone and fused with SwiGLU, the tiled kernel, the
/// embedding gather, and split in chunks of rows (each with its own scales plane).
#[test]
fn planar_and_ggml_block_layouts_give_the_same_bits() {
    let n = 37;
    let mut rng = Rng::new(41);
    for dtype in [DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q6_K] {
        let k = 3 * dtype.block_size();
        let small = Gpu::default_device().unwrap().with_max_binding(dtype.bytes_for(k) as u64 * 20);
        let bytes = random_blocks(&mut rng, dtype, 2 * n * k);
        let up = |g: &Gpu, layout| Matrix::upload_as(g, "w", dtype, layout, 2 * n, k, &bytes).unwrap();
        let (ggml, planar, chunked) = (up(gpu(), Layout::Ggml), up(gpu(), Layout::Planar), up(&small, Layout::Planar));
        assert!(chunked.chunks.len() > 1 && chunked.chunks.iter().all(|c| c.layout == Layout::Planar));
        for m in [1, 4, 9] {
            let x = rng.vec(m * k, 1.0);
            let want = run_linear(gpu(), Path::Vector, &ggml, None, &x, m, None);
            assert_eq!(want, run_linear(gpu(), Path::Vector, &planar, None, &x, m, None), "{dtype:?} m={m}");
            assert_eq!(want, run_linear(gpu(), Path::Tiled, &planar, None, &x, m, None), "{dtype:?} m={m} tiled");
            assert_eq!(want, run_linear(&small, Path::Vector, &chunked, None, &x, m, None), "{dtype:?} m={m} chunked");
            let fused = |w: &Matrix| {
                let (xb, act) = (f32_buf(gpu(), &x), f32_buf(gpu(), &vec![0.0; m * n]));
                let mut rec = gpu().recorder();
                let rows = Rows { x: &xb, x_offset: 0, x_stride: k, y: &act, y_offset: 0, y_stride: n, m };
                assert!(pingce::kernels::matvec::record_swiglu(&mut rec, w, n, &rows).unwrap());
                rec.submit("fused").unwrap();
                gpu().read_f32(&act, 0, m * n).unwrap()
            };
            // Q6_K shares the weight reads checked above and skips the fused variant (minutes of
            // shader compilation on a fresh software adapter).
            if dtype != DType::Q6_K {
                assert_eq!(fused(&ggml), fused(&planar), "{dtype:?} m={m} fused");
            }
        }
        let ids: Vec<u32> = vec![2 * n as u32 - 1, 0, 17, 40];
        let gather = |g: &Gpu, w: &Matrix| {
            let (idb, out) = (u32_buf(g, &ids), f32_buf(g, &vec![0.0; ids.len() * k]));
            let mut rec = g.recorder();
            embedding::embedding(&mut rec, w, &idb, ids.len(), &out).unwrap();
            rec.submit("embedding").unwrap();
            g.read_f32(&out, 0, ids.len() * k).unwrap()
        };
        let wv = dtype.to_f32(&bytes);
        let want: Vec<f32> = ids.iter().flat_map(|&i| wv[i as usize * k..(i as usize + 1) * k].to_vec()).collect();
        assert_eq!(gather(gpu(), &planar), want, "{dtype:?} embedding");
        assert_eq!(gather(&small, &chunked), want, "{dtype:?} chunked embedding");
    }
}

#[test]
fn chunked_weights_give_identical_results() {
    // A device whose largest binding is tiny forces the weight into several chunks of rows.
    let small = Gpu::default_device().unwrap().with_max_binding(36 * 4 * 20);
    let mut rng = Rng::new(2);
    let (m, n, k) = (9, 75, 36);
    let x = rng.vec(m * k, 1.0);
    let (bytes, wv) = encode(&rng.vec(n * k, 0.5), DType::F32);
    let whole = Matrix::upload(gpu(), "w", DType::F32, n, k, &bytes).unwrap();
    let chunked = Matrix::upload(&small, "w", DType::F32, n, k, &bytes).unwrap();
    assert!(chunked.chunks.len() >= 3, "expected several chunks, got {}", chunked.chunks.len());
    for path in [Path::Tiled, Path::Vector] {
        let a = run_linear(gpu(), path, &whole, None, &x, m, None);
        let b = run_linear(&small, path, &chunked, None, &x, m, None);
        assert_eq!(a, b, "{path:?}: chunking changed results");
        assert_close("chunked", &b, &cpu_linear(&x, &wv, None, m, n, k), 1e-4 * (k as f32).sqrt());
    }
    // The embedding gather also walks the chunks.
    let ids: Vec<u32> = vec![0, 74, 20, 21, 40, 3];
    let out = f32_buf(&small, &vec![0.0; ids.len() * k]);
    let idb = u32_buf(&small, &ids);
    let mut rec = small.recorder();
    embedding::embedding(&mut rec, &chunked, &idb, ids.len(), &out).unwrap();
    rec.submit("embedding").unwrap();
    let got = small.read_f32(&out, 0, ids.len() * k).unwrap();
    let want: Vec<f32> = ids.iter().flat_map(|&i| wv[i as usize * k..(i as usize + 1) * k].to_vec()).collect();
    assert_eq!(got, want);
}

#[test]
fn tiled_and_vector_paths_are_bit_identical() {
    let mut rng = Rng::new(10);
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let (m, n, k) = (6, 77, 132);
        let (bytes, _) = encode(&rng.vec(n * k, 0.5), dtype);
        let w = Matrix::upload(gpu(), "w", dtype, n, k, &bytes).unwrap();
        let x = rng.vec(m * k, 1.0);
        let bias = rng.vec(n, 1.0);
        let a = run_linear(gpu(), Path::Tiled, &w, Some(&bias), &x, m, None);
        let b = run_linear(gpu(), Path::Vector, &w, Some(&bias), &x, m, None);
        assert_eq!(a, b, "{dtype:?}");
    }
}

#[test]
fn linear_rows_do_not_depend_on_the_batch() {
    // The same row computed alone and inside batches of other sizes: bit-identical.
    let mut rng = Rng::new(3);
    let (n, k) = (70, 84);
    let (bytes, _) = encode(&rng.vec(n * k, 0.5), DType::BF16);
    let w = Matrix::upload(gpu(), "w", DType::BF16, n, k, &bytes).unwrap();
    let row = rng.vec(k, 1.0);
    for path in [Path::Tiled, Path::Vector] {
        let alone = run_linear(gpu(), path, &w, None, &row, 1, None);
        for (m, at) in [(5, 3), (66, 65), (130, 17)] {
            let mut x = rng.vec(m * k, 1.0);
            x[at * k..(at + 1) * k].copy_from_slice(&row);
            let y = run_linear(gpu(), path, &w, None, &x, m, None);
            assert_eq!(&y[at * n..(at + 1) * n], &alone[..], "{path:?} batch of {m}");
        }
    }
}

#[test]
fn rmsnorm_matches_cpu_whole_rows_heads_and_gathered() {
    let mut rng = Rng::new(4);
    let (tokens, dim, eps) = (13, 75, 1e-5f32);
    let x = rng.vec(tokens * dim, 2.0);
    let wn = rng.vec(dim, 1.0);
    let cpu = |row: &[f32], w: &[f32]| -> Vec<f32> {
        let ms = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / row.len() as f64;
        let inv = 1.0 / (ms + eps as f64).sqrt();
        row.iter().zip(w).map(|(v, w)| w * (*v as f64 * inv) as f32).collect()
    };
    let g = gpu();
    let xb = f32_buf(g, &x);
    let wb = f32_buf(g, &wn);
    let out = f32_buf(g, &vec![0.0; tokens * dim]);
    let idx: Vec<u32> = vec![12, 0, 5];
    let ib = u32_buf(g, &idx);
    let gathered = f32_buf(g, &vec![0.0; idx.len() * dim]);
    let norm = RmsNorm { weight: &wb, dim, eps };
    let rows = rmsnorm::Rows { buf: &xb, offset: 0, stride: dim, per: 1 };
    let mut rec = g.recorder();
    norm.to(&mut rec, tokens, &rows, &out, dim, None).unwrap();
    norm.to(&mut rec, idx.len(), &rows, &gathered, dim, Some(&ib)).unwrap();
    rec.submit("rmsnorm").unwrap();
    let want: Vec<f32> = x.chunks(dim).flat_map(|r| cpu(r, &wn)).collect();
    assert_close("rmsnorm", &g.read_f32(&out, 0, tokens * dim).unwrap(), &want, 1e-5);
    let want_g: Vec<f32> = idx.iter().flat_map(|&i| want[i as usize * dim..(i as usize + 1) * dim].to_vec()).collect();
    assert_close("gathered", &g.read_f32(&gathered, 0, idx.len() * dim).unwrap(), &want_g, 1e-5);

    // Per head, in place, inside wider rows (Qwen3's q_norm on the q part of a qkv row).
    let (heads, hd, stride, off) = (3, 10, 47, 5);
    let y = rng.vec(tokens * stride, 2.0);
    let hw = rng.vec(hd, 1.0);
    let yb = f32_buf(g, &y);
    let hwb = f32_buf(g, &hw);
    let mut rec = g.recorder();
    RmsNorm { weight: &hwb, dim: hd, eps }
        .in_place(&mut rec, tokens * heads, &rmsnorm::Rows { buf: &yb, offset: off, stride, per: heads })
        .unwrap();
    rec.submit("qk norm").unwrap();
    let mut want = y.clone();
    for t in 0..tokens {
        for h in 0..heads {
            let b = t * stride + off + h * hd;
            let r = cpu(&y[b..b + hd], &hw);
            want[b..b + hd].copy_from_slice(&r);
        }
    }
    assert_close("per-head", &g.read_f32(&yb, 0, tokens * stride).unwrap(), &want, 1e-5);
}

/// The default adapter with `Gpu::subgroup_x` (the CPU-adapter kernel variants) switched the other
/// way, to compare both variants on one adapter; `None` where the other way needs subgroups the
/// adapter lacks.
fn other_x_reads() -> Option<Gpu> {
    let mut g = Gpu::default_device().unwrap();
    g.subgroup_x = !gpu().subgroup_x;
    (g.device.features().contains(wgpu::Features::SUBGROUP) || !g.subgroup_x).then_some(g)
}

/// RMSNorm in one subgroup (CPU adapters, `Gpu::subgroup_x`) and in a 64-invocation workgroup give
/// the same bits: the same 64 partial sums added in the same tree, for rows shorter than 64, of
/// 64 and longer than it by an odd amount, whole, per head in place and gathered.
#[test]
fn rmsnorm_subgroup_and_workgroup_trees_give_the_same_bits() {
    let Some(other) = other_x_reads() else { return };
    let mut rng = Rng::new(43);
    for dim in [10, 64, 75, 576, 1001] {
        let (tokens, eps) = (5, 1e-6f32);
        let x = rng.vec(tokens * dim, 3.0);
        let wn = rng.vec(dim, 1.0);
        let run = |g: &Gpu| {
            let (xb, wb, out, gathered, ib) = (f32_buf(g, &x), f32_buf(g, &wn), f32_buf(g, &vec![0.0; tokens * dim]), f32_buf(g, &vec![0.0; 2 * dim]), u32_buf(g, &[4, 1]));
            let norm = RmsNorm { weight: &wb, dim, eps };
            let rows = rmsnorm::Rows { buf: &xb, offset: 0, stride: dim, per: 1 };
            let mut rec = g.recorder();
            norm.to(&mut rec, tokens, &rows, &out, dim, None).unwrap();
            norm.to(&mut rec, 2, &rows, &gathered, dim, Some(&ib)).unwrap();
            norm.in_place(&mut rec, tokens, &rows).unwrap();
            rec.submit("rmsnorm").unwrap();
            (g.read_f32(&out, 0, tokens * dim).unwrap(), g.read_f32(&gathered, 0, 2 * dim).unwrap(), g.read_f32(&xb, 0, tokens * dim).unwrap())
        };
        let (a, b) = (run(gpu()), run(&other));
        assert_eq!(a, b, "dim {dim}");
        assert_eq!(a.0, a.2, "dim {dim}: in place");
    }
}

#[test]
fn rope_matches_rotate_half_reference() {
    let mut rng = Rng::new(5);
    let g = gpu();
    let (tokens, heads, hd, stride, off, max_pos) = (7, 3, 12, 50, 4, 300);
    let inv: Vec<f32> = (0..hd / 2).map(|i| 1.0 / 10000f32.powf(2.0 * i as f32 / hd as f32)).collect();
    let table = rope::RopeTable::new(g, &inv, max_pos).unwrap();
    let x = rng.vec(tokens * stride, 1.0);
    let pos: Vec<u32> = vec![0, 1, 2, 299, 17, 100, 5];
    let meta: Vec<u32> = pos.iter().flat_map(|p| [*p, 0]).collect();
    let xb = f32_buf(g, &x);
    let mb = u32_buf(g, &meta);
    let mut rec = g.recorder();
    rope::rope(&mut rec, &xb, off, stride, tokens, heads, &table, &mb).unwrap();
    rec.submit("rope").unwrap();
    let mut want = x.clone();
    for t in 0..tokens {
        for h in 0..heads {
            let b = t * stride + off + h * hd;
            for i in 0..hd / 2 {
                let a = (pos[t] as f32 * inv[i]) as f64;
                let (s, c) = (a.sin() as f32, a.cos() as f32);
                let (x1, x2) = (x[b + i], x[b + i + hd / 2]);
                want[b + i] = x1 * c - x2 * s;
                want[b + i + hd / 2] = x2 * c + x1 * s;
            }
        }
    }
    assert_close("rope", &g.read_f32(&xb, 0, tokens * stride).unwrap(), &want, 1e-6);
}

/// rope_kv (rotation and the KV cache store in one dispatch) gives the bits of rope then kv_write:
/// the rotated q/k rows, and every key and value in the cache, for tokens of two sequences at
/// scattered positions and cache bases; a cache in two chunks is refused (the caller runs both).
#[test]
fn rope_kv_matches_rope_then_kv_write() {
    let mut rng = Rng::new(15);
    let g = gpu();
    let (hq, hkv, hd, max_pos) = (5, 2, 12, 300);
    let (q_dim, kv_dim) = (hq * hd, hkv * hd);
    let stride = q_dim + 2 * kv_dim + 4;
    let inv: Vec<f32> = (0..hd / 2).map(|i| 1.0 / 10000f32.powf(2.0 * i as f32 / hd as f32)).collect();
    let table = rope::RopeTable::new(g, &inv, max_pos).unwrap();
    let pos = [0u32, 1, 2, 299, 17, 100, 5];
    let bases = [0u32, 0, 0, 0, 400, 400, 400];
    let tokens = pos.len();
    let x = rng.vec(tokens * stride, 1.0);
    let meta: Vec<u32> = pos.iter().zip(bases).flat_map(|(&p, b)| [p, b]).collect();
    let rows = 800;
    let run = |fused: bool| {
        let (xb, mb) = (f32_buf(g, &x), u32_buf(g, &meta));
        let (k, v) = chunked_cache(g, rows, kv_dim, rows);
        let cache = LayerCache { k: &k, v: &v, chunk_rows: rows };
        let mut rec = g.recorder();
        if fused {
            let kv = rope::KvColumns { k_from: hq, v_offset: q_dim + kv_dim, kv_dim };
            assert!(rope::rope_kv(&mut rec, &xb, stride, tokens, hq + hkv, &kv, &table, &mb, &cache).unwrap());
        } else {
            rope::rope(&mut rec, &xb, 0, stride, tokens, hq + hkv, &table, &mb).unwrap();
            kv_write::kv_write(&mut rec, &xb, stride, q_dim, q_dim + kv_dim, kv_dim, tokens, &mb, &cache).unwrap();
        }
        rec.submit("rope").unwrap();
        let read = |b: &wgpu::Buffer| g.read_f32(b, 0, rows * kv_dim).unwrap();
        (g.read_f32(&xb, 0, tokens * stride).unwrap(), read(&k[0]), read(&v[0]))
    };
    let (a, b) = (run(true), run(false));
    assert!(a.1.iter().any(|&x| x != 0.0) && a.2.iter().any(|&x| x != 0.0));
    assert_eq!(a, b);
    let (k, v) = chunked_cache(g, rows, kv_dim, 500);
    let cache = LayerCache { k: &k, v: &v, chunk_rows: 500 };
    let kv = rope::KvColumns { k_from: hq, v_offset: q_dim + kv_dim, kv_dim };
    let mut rec = g.recorder();
    assert!(!rope::rope_kv(&mut rec, &f32_buf(g, &x), stride, tokens, hq + hkv, &kv, &table, &u32_buf(g, &meta), &cache).unwrap());
}

/// Attention that rotates q and k and stores each token's key and value itself (decode steps on
/// CPU adapters: `Attention::record_rotating`) gives the bits of `rope_kv` then attention, and
/// leaves the same cache: sequences at awkward positions over a cache already holding their
/// earlier keys, GQA groups of 3, 9 (two workgroups per kv head) and 1.
#[test]
fn attention_rotating_keys_matches_rope_kv_then_attention() {
    let g = gpu();
    let mut rng = Rng::new(43);
    if !g.subgroup_x {
        // GPUs rotate in rope_kv and run the tiled kernel.
        let table = rope::RopeTable::new(g, &[1.0, 0.5, 0.25, 0.125], 8).unwrap();
        let (k, v) = chunked_cache(g, 8, 8, 8);
        let cache = LayerCache { k: &k, v: &v, chunk_rows: 8 };
        let att = Attention { heads_q: 2, heads_kv: 1, head_dim: 8, window: None };
        assert!(!att.rotates_keys(g, Lanes::Heads, 1, 1, &cache, &table));
        return;
    }
    for (hq, hkv, d) in [(6, 2, 64), (18, 2, 24), (3, 3, 16)] {
        let (q_dim, kv_dim) = (hq * d, hkv * d);
        let stride = q_dim + 2 * kv_dim;
        let inv: Vec<f32> = (0..d / 2).map(|i| 1.0 / 10000f32.powf(2.0 * i as f32 / d as f32)).collect();
        let table = rope::RopeTable::new(g, &inv, 300).unwrap();
        // One token per sequence: (position, cache row of position 0).
        let meta: Vec<u32> = [(0u32, 0u32), (17, 40), (63, 100), (200, 170)].iter().flat_map(|&(p, b)| [p, b]).collect();
        let tokens = meta.len() / 2;
        let rows = 400;
        let qkv = rng.vec(tokens * stride, 1.0);
        let (k0, v0) = (rng.vec(rows * kv_dim, 1.0), rng.vec(rows * kv_dim, 1.0));
        let att = Attention { heads_q: hq, heads_kv: hkv, head_dim: d, window: None };
        let run = |fused: bool| {
            let (qb, mb) = (f32_buf(g, &qkv), u32_buf(g, &meta));
            let (k, v) = ([f32_buf(g, &k0)], [f32_buf(g, &v0)]);
            let cache = LayerCache { k: &k, v: &v, chunk_rows: rows };
            let out = f32_buf(g, &vec![0.0; tokens * q_dim]);
            let mut rec = g.recorder();
            if fused {
                assert!(att.rotates_keys(g, Lanes::Heads, tokens, tokens, &cache, &table));
                assert!(!att.rotates_keys(g, Lanes::Heads, tokens, tokens - 1, &cache, &table), "two tokens of one sequence");
                att.record_rotating(&mut rec, &qb, stride, tokens, &mb, &cache, &table, &out).unwrap();
            } else {
                let kv = rope::KvColumns { k_from: hq, v_offset: q_dim + kv_dim, kv_dim };
                assert!(rope::rope_kv(&mut rec, &qb, stride, tokens, hq + hkv, &kv, &table, &mb, &cache).unwrap());
                att.record(&mut rec, &qb, 0, stride, tokens, Lanes::Heads, 0, &mb, &cache, &out).unwrap();
            }
            rec.submit("attention").unwrap();
            let read = |b: &wgpu::Buffer, n: usize| g.read_f32(b, 0, n).unwrap();
            (read(&out, tokens * q_dim), read(&k[0], rows * kv_dim), read(&v[0], rows * kv_dim))
        };
        let (a, b) = (run(true), run(false));
        assert!(a.0.iter().all(|x| x.is_finite()) && a.1 != k0 && a.2 != v0, "hq {hq} hkv {hkv} d {d}: nothing written");
        assert_eq!(a.0, b.0, "hq {hq} hkv {hkv} d {d}: attention output");
        assert_eq!(a.1, b.1, "hq {hq} hkv {hkv} d {d}: keys");
        assert_eq!(a.2, b.2, "hq {hq} hkv {hkv} d {d}: values");
    }
}

/// CPU attention over per-sequence K/V (positions 0..=pos), with an optional sliding window,
/// in f64 with a plain softmax.
fn cpu_attention(q: &[f32], k: &[f32], v: &[f32], pos: usize, hq: usize, hkv: usize, d: usize, window: Option<usize>) -> Vec<f32> {
    let mut out = vec![0f32; hq * d];
    let start = window.map_or(0, |w| (pos + 1).saturating_sub(w));
    for h in 0..hq {
        let kh = h / (hq / hkv);
        let scores: Vec<f64> = (start..=pos)
            .map(|j| (0..d).map(|i| q[h * d + i] as f64 * k[j * hkv * d + kh * d + i] as f64).sum::<f64>() / (d as f64).sqrt())
            .collect();
        let mx = scores.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = scores.iter().map(|s| (s - mx).exp()).sum();
        for i in 0..d {
            out[h * d + i] = (start..=pos).zip(&scores).map(|(j, s)| (s - mx).exp() / z * v[j * hkv * d + kh * d + i] as f64).sum::<f64>() as f32;
        }
    }
    out
}

/// The shader's order in f32: key blocks of KEY_BLOCK positions aligned to its multiples, per
/// block the max, the rescale of the running sum and accumulator, then e_j in ascending j; each
/// score one fma chain per vec4 lane, lanes summed (x+y)+(z+w); spans of KEY_SPAN positions each
/// from a fresh state, folded in ascending order (shaders/lib/key_spans.wgsl). Only `exp`
/// differs from the GPU's.
fn cpu_attention_blockwise(q: &[f32], k: &[f32], v: &[f32], pos: usize, hq: usize, hkv: usize, d: usize, window: Option<usize>) -> Vec<f32> {
    let kb = pingce::kernels::attention::KEY_BLOCK;
    let ks = pingce::kernels::attention::KEY_SPAN;
    let scale = 1.0 / (d as f32).sqrt();
    let start = window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let mut out = vec![0f32; hq * d];
    for h in 0..hq {
        let kh = h / (hq / hkv);
        let qs: Vec<f32> = q[h * d..(h + 1) * d].iter().map(|x| x * scale).collect();
        let (mut m, mut l) = (-1e30f32, 0f32);
        let mut acc = vec![0f32; d];
        // The spans before the current one, folded.
        let (mut fm, mut fl, mut facc, mut span) = (-1e30f32, 0f32, vec![0f32; d], 0);
        let fold = |fm: &mut f32, fl: &mut f32, facc: &mut [f32], m: f32, l: f32, acc: &[f32]| {
            let mx = fm.max(m);
            let (ca, cb) = ((*fm - mx).exp(), (m - mx).exp());
            *fl = l.mul_add(cb, *fl * ca);
            for (f, a) in facc.iter_mut().zip(acc) {
                *f = a.mul_add(cb, *f * ca);
            }
            *fm = mx;
        };
        for b in start / kb..=pos / kb {
            if b * kb / ks != span {
                fold(&mut fm, &mut fl, &mut facc, m, l, &acc);
                (m, l, span) = (-1e30, 0.0, b * kb / ks);
                acc.iter_mut().for_each(|a| *a = 0.0);
            }
            let (lo, hi) = (start.max(b * kb), (pos + 1).min(b * kb + kb));
            let s: Vec<f32> = (lo..hi)
                .map(|j| {
                    let kr = &k[j * hkv * d + kh * d..][..d];
                    let mut d4 = [0f32; 4];
                    for i in 0..d {
                        d4[i % 4] = qs[i].mul_add(kr[i], d4[i % 4]);
                    }
                    (d4[0] + d4[1]) + (d4[2] + d4[3])
                })
                .collect();
            let mn = s.iter().fold(m, |a, &x| a.max(x));
            let corr = (m - mn).exp();
            l *= corr;
            acc.iter_mut().for_each(|a| *a *= corr);
            for (j, sj) in (lo..hi).zip(&s) {
                let e = (sj - mn).exp();
                l += e;
                let vr = &v[j * hkv * d + kh * d..][..d];
                for i in 0..d {
                    acc[i] = e.mul_add(vr[i], acc[i]);
                }
            }
            m = mn;
        }
        fold(&mut fm, &mut fl, &mut facc, m, l, &acc);
        for i in 0..d {
            out[h * d + i] = facc[i] / fl;
        }
    }
    out
}

/// A KV cache of `rows` rows in chunks of `chunk` rows.
fn chunked_cache(g: &Gpu, rows: usize, kv_dim: usize, chunk: usize) -> (Vec<wgpu::Buffer>, Vec<wgpu::Buffer>) {
    let n = rows.div_ceil(chunk);
    let mk = |c: usize| f32_buf(g, &vec![0.0; chunk.min(rows - c * chunk) * kv_dim]);
    ((0..n).map(mk).collect(), (0..n).map(mk).collect())
}

/// Tiled attention against a plain f64 softmax and the same blockwise order on the CPU, at head
/// sizes 20, 64, 96 and 128, with GQA, a sliding window, two sequences of awkward lengths packed
/// in one pass; then bit-identical outputs for the same queries run as decode passes of other
/// compositions, from a cache split in chunks, and from a shared context copied across chunks.
#[test]
fn attention_tiled_matches_cpu_and_is_invariant() {
    let mut rng = Rng::new(6);
    let g = gpu();
    for (hq, hkv, d) in [(6, 2, 20), (4, 4, 64), (3, 1, 96), (4, 2, 128)] {
        let kv_dim = hkv * d;
        let q_dim = hq * d;
        let stride = q_dim + 2 * kv_dim + 4; // a fused qkv row with some slack
        // Two sequences of awkward lengths packed together, cache rows allocated apart.
        let lens = [70usize, 131];
        let bases = [5usize, 100];
        let tokens: usize = lens.iter().sum();
        let qkv = rng.vec(tokens * stride, 1.0);
        let mut meta = Vec::new();
        for (s, &l) in lens.iter().enumerate() {
            for p in 0..l {
                meta.extend([p as u32, bases[s] as u32]);
            }
        }
        let cache_rows = 400;
        let qb = f32_buf(g, &qkv);
        let mb = u32_buf(g, &meta);
        let (k1, v1) = chunked_cache(g, cache_rows, kv_dim, cache_rows);
        let whole = LayerCache { k: &k1, v: &v1, chunk_rows: cache_rows };
        let (k4, v4) = chunked_cache(g, cache_rows, kv_dim, 101);
        let chunked = LayerCache { k: &k4, v: &v4, chunk_rows: 101 };
        for window in [None, Some(9), Some(40)] {
            let att = Attention { heads_q: hq, heads_kv: hkv, head_dim: d, window };
            let run = |cache: &LayerCache, q: &wgpu::Buffer, meta: &wgpu::Buffer, n: usize, write: bool| {
                let out = f32_buf(g, &vec![0.0; n * q_dim]);
                let mut rec = g.recorder();
                if write {
                    kv_write::kv_write(&mut rec, q, stride, q_dim, q_dim + kv_dim, kv_dim, n, meta, cache).unwrap();
                }
                att.record(&mut rec, q, 0, stride, n, Lanes::Tokens, 0, meta, cache, &out).unwrap();
                rec.submit("attention").unwrap();
                g.read_f32(&out, 0, n * q_dim).unwrap()
            };
            let got = run(&whole, &qb, &mb, tokens, true);
            let mut t0 = 0;
            let mut picked = Vec::new();
            for &l in &lens {
                let ks: Vec<f32> = (0..l).flat_map(|p| qkv[(t0 + p) * stride + q_dim..(t0 + p) * stride + q_dim + kv_dim].to_vec()).collect();
                let vs: Vec<f32> = (0..l).flat_map(|p| qkv[(t0 + p) * stride + q_dim + kv_dim..(t0 + p) * stride + q_dim + 2 * kv_dim].to_vec()).collect();
                for p in [0, 1, 8, 9, 15, 16, 17, 39, 40, 63, 64, 65, l - 1] {
                    let t = t0 + p;
                    let q = &qkv[t * stride..t * stride + q_dim];
                    let what = format!("attention d {d} pos {p} window {window:?}");
                    assert_close(&what, &got[t * q_dim..(t + 1) * q_dim], &cpu_attention(q, &ks, &vs, p, hq, hkv, d, window), 2e-5);
                    assert_close(&what, &got[t * q_dim..(t + 1) * q_dim], &cpu_attention_blockwise(q, &ks, &vs, p, hq, hkv, d, window), 2e-6);
                    picked.push(t);
                }
                t0 += l;
            }
            // The same cache written chunk by chunk: bit-identical.
            assert_eq!(run(&chunked, &qb, &mb, tokens, true), got, "chunked cache, d {d} window {window:?}");
            // Decode-style passes over the written cache: the picked tokens alone, in reverse
            // order (so each shares its tile with other sequences' tokens), bit-identical.
            let rev: Vec<usize> = picked.iter().rev().copied().collect();
            let q2: Vec<f32> = rev.iter().flat_map(|&t| qkv[t * stride..(t + 1) * stride].to_vec()).collect();
            let m2: Vec<u32> = rev.iter().flat_map(|&t| [meta[2 * t], meta[2 * t + 1]]).collect();
            let (q2b, m2b) = (f32_buf(g, &q2), u32_buf(g, &m2));
            for cache in [&whole, &chunked] {
                let dec = run(cache, &q2b, &m2b, rev.len(), false);
                for (i, &t) in rev.iter().enumerate() {
                    assert_eq!(&dec[i * q_dim..(i + 1) * q_dim], &got[t * q_dim..(t + 1) * q_dim], "decode pass, token {t}, d {d} window {window:?}");
                }
            }
            // The second sequence (rows 100..231, across chunk boundaries 101 and 202 of the
            // chunked cache) copied to base 250 (across 303), then decoded from there.
            let m3: Vec<u32> = rev.iter().flat_map(|&t| [meta[2 * t], if meta[2 * t + 1] == 100 { 250 } else { meta[2 * t + 1] }]).collect();
            let m3b = u32_buf(g, &m3);
            for cache in [&whole, &chunked] {
                let mut rec = g.recorder();
                kv_copy::kv_copy(&mut rec, cache, kv_dim, 131, 100, 250).unwrap();
                rec.submit("kv copy").unwrap();
                let dec = run(cache, &q2b, &m3b, rev.len(), false);
                for (i, &t) in rev.iter().enumerate() {
                    assert_eq!(&dec[i * q_dim..(i + 1) * q_dim], &got[t * q_dim..(t + 1) * q_dim], "copied context, token {t}, d {d} window {window:?}");
                }
            }
        }
    }
}

#[test]
fn swiglu_matches_cpu() {
    let mut rng = Rng::new(7);
    let g = gpu();
    let (tokens, inter) = (11, 37);
    let gu = rng.vec(tokens * 2 * inter, 4.0);
    let gb = f32_buf(g, &gu);
    let out = f32_buf(g, &vec![0.0; tokens * inter]);
    let mut rec = g.recorder();
    swiglu::swiglu(&mut rec, &gb, &out, tokens, inter).unwrap();
    rec.submit("swiglu").unwrap();
    let want: Vec<f32> = (0..tokens * inter)
        .map(|i| {
            let (t, j) = (i / inter, i % inter);
            let a = gu[t * 2 * inter + j] as f64;
            (a / (1.0 + (-a).exp()) * gu[t * 2 * inter + inter + j] as f64) as f32
        })
        .collect();
    assert_close("swiglu", &g.read_f32(&out, 0, tokens * inter).unwrap(), &want, 1e-5);
}

/// Passes reuse their uniform and readback buffers and the bind groups of earlier passes
/// (`Gpu::bind_group`): the same kernel and parameter offsets over other buffers, or over
/// buffers whose contents changed, still read and write the buffers of each pass; readbacks of
/// other sizes in between return what each pass wrote.
#[test]
fn reused_bind_groups_and_spare_buffers_follow_each_pass() {
    let mut rng = Rng::new(9);
    let g = gpu();
    let (tokens, inter) = (3, 29);
    let want = |gu: &[f32]| -> Vec<f32> {
        (0..tokens * inter).map(|i| {
            let (t, j) = (i / inter, i % inter);
            let a = gu[t * 2 * inter + j];
            a * (1.0 / (1.0 + (-a).exp())) * gu[t * 2 * inter + inter + j]
        }).collect()
    };
    let (ga, gb) = (rng.vec(tokens * 2 * inter, 4.0), rng.vec(tokens * 2 * inter, 4.0));
    let (ba, bb) = (f32_buf(g, &ga), f32_buf(g, &gb));
    let (oa, ob) = (f32_buf(g, &vec![0.0; tokens * inter]), f32_buf(g, &vec![0.0; tokens * inter]));
    let pass = |input: &wgpu::Buffer, out: &wgpu::Buffer, n: usize| -> Vec<f32> {
        let mut rec = g.recorder();
        swiglu::swiglu(&mut rec, input, out, tokens, inter).unwrap();
        bytemuck::pod_collect_to_vec(&rec.submit_read("swiglu", out, 0, n as u64 * 4).unwrap())
    };
    let a = pass(&ba, &oa, tokens * inter);
    assert_close("first pass", &a, &want(&ga), 1e-5);
    assert_close("other buffers", &pass(&bb, &ob, 5), &want(&gb)[..5], 1e-5);
    // New contents in the first pass's buffers, through the cached bind group.
    let gc = rng.vec(tokens * 2 * inter, 4.0);
    g.write(&ba, 0, bytemuck::cast_slice(&gc));
    assert_close("rewritten input", &pass(&ba, &oa, tokens * inter), &want(&gc), 1e-5);
    assert_eq!(g.read_f32(&ob, 0, tokens * inter).unwrap(), pass(&bb, &ob, tokens * inter), "second output untouched");
    assert_ne!(a, g.read_f32(&oa, 0, tokens * inter).unwrap());
}

#[test]
fn embedding_gathers_each_dtype() {
    let mut rng = Rng::new(8);
    let g = gpu();
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let (rows, dim) = (53, 19);
        let (bytes, wv) = encode(&rng.vec(rows * dim, 1.0), dtype);
        let table = Matrix::upload(g, "emb", dtype, rows, dim, &bytes).unwrap();
        let ids: Vec<u32> = (0..17).map(|_| rng.below(rows) as u32).collect();
        let ib = u32_buf(g, &ids);
        let out = f32_buf(g, &vec![0.0; ids.len() * dim]);
        let mut rec = g.recorder();
        embedding::embedding(&mut rec, &table, &ib, ids.len(), &out).unwrap();
        rec.submit("embedding").unwrap();
        let want: Vec<f32> = ids.iter().flat_map(|&i| wv[i as usize * dim..(i as usize + 1) * dim].to_vec()).collect();
        assert_eq!(g.read_f32(&out, 0, ids.len() * dim).unwrap(), want, "{dtype:?}");
    }
}

#[test]
fn logprobs_target_argmax_and_topk() {
    let mut rng = Rng::new(9);
    let g = gpu();
    let (rows, vocab, k) = (5, 1003, 32);
    let mut logits = rng.vec(rows * vocab, 8.0);
    // Ties: row 1 has its max twice; the first index wins, as in torch.argmax.
    logits[vocab + 10] = 50.0;
    logits[vocab + 900] = 50.0;
    let targets: Vec<u32> = vec![3, 900, 1002, logprobs::NO_TARGET, 0];
    let lb = f32_buf(g, &logits);
    let tb = u32_buf(g, &targets);
    let out = u32_buf(g, &vec![0; rows * logprobs::OUT_STRIDE]);
    let mut rec = g.recorder();
    logprobs::logprobs(&mut rec, &lb, rows, vocab, &tb, 0, k, &out).unwrap();
    rec.submit("logprobs").unwrap();
    let words = g.read_u32(&out, 0, rows * logprobs::OUT_STRIDE).unwrap();
    let got = logprobs::decode(&words, rows, k);
    for r in 0..rows {
        let row = &logits[r * vocab..(r + 1) * vocab];
        let mx = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let lse = mx + row.iter().map(|v| (*v as f64 - mx).exp()).sum::<f64>().ln();
        let mut order: Vec<usize> = (0..vocab).collect();
        order.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap().then(a.cmp(&b)));
        assert_eq!(got[r].argmax as usize, order[0], "row {r} argmax");
        if targets[r] != logprobs::NO_TARGET {
            let want = row[targets[r] as usize] as f64 - lse;
            assert!((got[r].logprob as f64 - want).abs() < 1e-5, "row {r}: {} vs {want}", got[r].logprob);
        }
        for i in 0..k {
            assert_eq!(got[r].topk[i].0 as usize, order[i], "row {r} top-{i}");
            assert!((got[r].topk[i].1 as f64 - (row[order[i]] as f64 - lse)).abs() < 1e-5);
        }
    }
    assert_eq!(got[1].argmax, 10);
}

/// CPU routing: softmax, top-k with ties to the lower id, optional renormalisation.
fn cpu_route(logits: &[f32], stride: usize, experts: usize, k: usize, norm: bool, t: usize) -> (Vec<u32>, Vec<f32>) {
    let row = &logits[t * stride..t * stride + experts];
    let mx = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&l| ((l - mx) as f64).exp()).sum();
    let p: Vec<f64> = row.iter().map(|&l| ((l - mx) as f64).exp() / sum).collect();
    let mut order: Vec<usize> = (0..experts).collect();
    order.sort_by(|&a, &b| p[b].partial_cmp(&p[a]).unwrap().then(a.cmp(&b)));
    let top = &order[..k];
    let total: f64 = top.iter().map(|&e| p[e]).sum();
    (top.iter().map(|&e| e as u32).collect(), top.iter().map(|&e| (if norm { p[e] / total } else { p[e] }) as f32).collect())
}

#[test]
fn moe_route_matches_cpu_with_ties_to_the_lower_id() {
    use pingce::kernels::moe_route;
    let mut rng = Rng::new(21);
    let g = gpu();
    for (tokens, experts, k, stride, norm) in [(67, 7, 3, 9, true), (130, 13, 1, 13, false), (5, 16, 16, 17, true)] {
        let mut logits = rng.vec(tokens * stride, 3.0);
        // Exact ties: token 0 has all-equal logits, token 1 two equal maxima.
        logits[..stride].iter_mut().for_each(|x| *x = 0.5);
        let (a, b) = (stride + 1, stride + experts - 1);
        logits[a] = 9.0;
        logits[b] = 9.0;
        let lb = f32_buf(g, &logits);
        let (ids, ws) = (u32_buf(g, &vec![0; tokens * k]), f32_buf(g, &vec![0.0; tokens * k]));
        let mut rec = g.recorder();
        moe_route::route(&mut rec, &lb, stride, experts, k, norm, tokens, &ids, &ws).unwrap();
        rec.submit("route").unwrap();
        let (got_ids, got_w) = (g.read_u32(&ids, 0, tokens * k).unwrap(), g.read_f32(&ws, 0, tokens * k).unwrap());
        for t in 0..tokens {
            let (wi, ww) = cpu_route(&logits, stride, experts, k, norm, t);
            assert_eq!(&got_ids[t * k..(t + 1) * k], &wi[..], "token {t} ids ({tokens}x{experts}, k {k})");
            assert_close("route weights", &got_w[t * k..(t + 1) * k], &ww, 1e-6);
        }
        assert_eq!(got_ids[0], 0, "all-equal logits: expert 0 first");
        if k > 1 {
            assert_eq!(&got_ids[k..k + 2], &[1, experts as u32 - 1], "tied maxima: lower id first");
        }
    }
}

#[test]
fn moe_gather_lists_tokens_per_expert_in_order() {
    use pingce::kernels::moe_gather;
    let mut rng = Rng::new(22);
    let g = gpu();
    for (tokens, k, experts) in [(300, 3, 5), (1, 2, 9), (513, 1, 3)] {
        // Distinct experts per token, as top-k gives.
        let mut ids = Vec::new();
        for _ in 0..tokens {
            let mut chosen: Vec<u32> = Vec::new();
            while chosen.len() < k {
                let e = rng.below(experts) as u32;
                if !chosen.contains(&e) {
                    chosen.push(e);
                }
            }
            ids.extend(chosen);
        }
        let cap = tokens + 3;
        let (idb, counts, lists) = (u32_buf(g, &ids), u32_buf(g, &vec![7; experts]), u32_buf(g, &vec![0; experts * cap]));
        let mut rec = g.recorder();
        moe_gather::gather(&mut rec, &idb, tokens, k, experts, cap, &counts, &lists).unwrap();
        rec.submit("gather").unwrap();
        let (gc, gl) = (g.read_u32(&counts, 0, experts).unwrap(), g.read_u32(&lists, 0, experts * cap).unwrap());
        for e in 0..experts {
            let want: Vec<u32> = (0..tokens * k).filter(|&i| ids[i] == e as u32).map(|i| i as u32).collect();
            assert_eq!(gc[e] as usize, want.len(), "expert {e} count");
            assert_eq!(&gl[e * cap..e * cap + want.len()], &want[..], "expert {e} list");
        }
    }
}

#[test]
fn expert_matmul_equals_the_dense_kernel_row_for_row() {
    use pingce::kernels::expert_matmul::{self, Experts, Gathered};
    let mut rng = Rng::new(23);
    // kk 29: the vector path falls back to the tiled kernel; kk 32: it runs (tokens 9: decode-sized).
    for ((experts, n, kk, tokens, k), path, dtype) in [
        ((5usize, 37usize, 29usize, 140usize, 2usize), Path::Tiled, DType::F32),
        ((5, 37, 29, 140, 2), Path::Tiled, DType::BF16),
        ((5, 37, 32, 9, 2), Path::Vector, DType::F32),
        ((5, 37, 32, 9, 2), Path::Vector, DType::BF16),
        ((5, 37, 32, 140, 2), Path::Vector, DType::F16),
        // Block-quantized experts (the vector kernel's whole-block path), 1 and 2 blocks per row.
        ((5, 37, 32, 9, 2), Path::Vector, DType::Q4_1),
        ((5, 37, 64, 9, 2), Path::Vector, DType::Q8_0),
        ((5, 37, 64, 140, 1), Path::Vector, DType::Q4_0),
        // More than one split-K segment (`linear::split_k`), checked on the variant taking it.
        ((5, 37, 300, 9, 2), Path::Vector, DType::F32),
        ((5, 37, 300, 140, 2), Path::Tiled, DType::F32),
        ((5, 37, 288, 9, 2), Path::Vector, DType::Q8_0),
    ] {
        // A tiny binding limit puts two experts per chunk: three chunks.
        let expert_bytes = if dtype.block_size() == 1 { n * kk.next_multiple_of(2) * dtype.size() } else { dtype.bytes_for(n * kk) };
        let small = Gpu::default_device().unwrap().with_max_binding((expert_bytes * 2) as u64 + 255);
        let other = if kk > SPLIT_K_SEGMENT { other_x_reads() } else { None };
        for g in [gpu(), &small].into_iter().chain(other.as_ref()) {
            let (bytes, wv) = if dtype.block_size() == 1 {
                encode(&rng.vec(experts * n * kk, 0.5), dtype)
            } else {
                let b = random_blocks(&mut rng, dtype, experts * n * kk);
                let v = dtype.to_f32(&b);
                (b, v)
            };
            let mut bank = Experts::new(n, kk);
            bank.push(g, "experts", dtype, experts, &bytes).unwrap();
            let x = rng.vec(tokens * kk, 1.0);
            // Token t's slots go to experts (t + s) % experts, except expert 3 gets nobody.
            let route = |t: usize, s: usize| { let e = (t + 2 * s) % experts; if e == 3 { 4 } else { e } };
            let mut lists = vec![0u32; experts * tokens];
            let mut counts = vec![0u32; experts];
            for t in 0..tokens {
                for s in 0..k {
                    let e = route(t, s);
                    lists[e * tokens + counts[e] as usize] = (t * k + s) as u32;
                    counts[e] += 1;
                }
            }
            let y = f32_buf(g, &vec![-1.0; tokens * k * n]);
            let (xb, cb, lb) = (f32_buf(g, &x), u32_buf(g, &counts), u32_buf(g, &lists));
            let mut rec = g.recorder();
            let gathered = Gathered { x: &xb, x_stride: kk, x_div: k, y: &y, y_stride: n, y_div: 1, counts: &cb, lists: &lb, cap: tokens };
            expert_matmul::record_path(&mut rec, path, &bank, &gathered).unwrap();
            rec.submit("expert matmul").unwrap();
            let got = g.read_f32(&y, 0, tokens * k * n).unwrap();
            if std::ptr::eq(g, &small) {
                assert!(bank.matrix.chunks.len() >= 3, "{} chunks", bank.matrix.chunks.len());
            }
            // Each row equals the dense kernel on that expert's matrix, bit for bit.
            let wmax = wv.iter().fold(1f32, |a, v| a.max(v.abs()));
            for e in 0..experts {
                let eb = &bytes[e * dtype.bytes_for(n * kk)..(e + 1) * dtype.bytes_for(n * kk)];
                let w = Matrix::upload(g, "w", dtype, n, kk, eb).unwrap();
                let dense = run_linear(g, Path::Tiled, &w, None, &x, tokens, None);
                let cpu = cpu_linear(&x, &wv[e * n * kk..(e + 1) * n * kk], None, tokens, n, kk);
                for t in 0..tokens {
                    for s in 0..k {
                        if route(t, s) == e {
                            let row = &got[(t * k + s) * n..(t * k + s + 1) * n];
                            assert_eq!(row, &dense[t * n..(t + 1) * n], "{path:?} {dtype:?} expert {e} token {t}");
                            assert_close("expert row", row, &cpu[t * n..(t + 1) * n], 1e-4 * (kk as f32).sqrt() * wmax);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn moe_combine_sums_in_ascending_expert_order() {
    use pingce::kernels::moe_combine::{self, Shared};
    let mut rng = Rng::new(24);
    let g = gpu();
    let (tokens, hidden, k, experts) = (19, 45, 3, 6);
    let mut ids = Vec::new();
    for t in 0..tokens {
        // Descending-probability order as the router writes it: not sorted by id.
        ids.extend([((t + 4) % experts) as u32, (t % experts) as u32, ((t + 2) % experts) as u32]);
    }
    let w = rng.vec(tokens * k, 1.0);
    let eo = rng.vec(tokens * k * hidden, 2.0);
    let x0 = rng.vec(tokens * hidden, 1.0);
    let shared_out = rng.vec(tokens * hidden, 1.0);
    let gate = rng.vec(tokens * 4, 3.0);
    for with_shared in [false, true] {
        let (idb, wb, eb, xb) = (u32_buf(g, &ids), f32_buf(g, &w), f32_buf(g, &eo), f32_buf(g, &x0));
        let (sb, gb) = (f32_buf(g, &shared_out), f32_buf(g, &gate));
        let shared = Shared { out: &sb, gate: &gb, stride: 4, col: 3 };
        let mut rec = g.recorder();
        moe_combine::combine(&mut rec, &idb, &wb, &eb, &xb, tokens, hidden, k, with_shared.then_some(&shared)).unwrap();
        rec.submit("combine").unwrap();
        let got = g.read_f32(&xb, 0, tokens * hidden).unwrap();
        let mut want = vec![0f32; tokens * hidden];
        for t in 0..tokens {
            let mut slots: Vec<usize> = (0..k).collect();
            slots.sort_by_key(|&s| ids[t * k + s]);
            for c in 0..hidden {
                let mut sum = 0f32;
                for &s in &slots {
                    sum += eo[(t * k + s) * hidden + c] * w[t * k + s];
                }
                if with_shared {
                    let gl = gate[t * 4 + 3];
                    sum += 1.0 / (1.0 + (-gl).exp()) * shared_out[t * hidden + c];
                }
                want[t * hidden + c] = x0[t * hidden + c] + sum;
            }
        }
        assert_close("combine", &got, &want, 1e-5);
    }
}

/// The decode step's fused gate/up projection + SwiGLU (one matvec dispatch) gives the bits of the
/// projection (tiled or vector) followed by swiglu.wgsl, for float and block-quantized weights,
/// an odd intermediate size and 1, 3, 4 and 5 rows.
#[test]
fn fused_gate_up_swiglu_is_bit_identical_to_projection_then_swiglu() {
    let mut rng = Rng::new(21);
    let inter = 37;
    for dtype in [DType::F32, DType::BF16, DType::Q4_1, DType::Q8_0, DType::Q4_0] {
        let k = if matches!(dtype, DType::F32 | DType::BF16) { 44 } else { 2 * dtype.block_size() };
        let bytes = match dtype {
            DType::F32 | DType::BF16 => encode(&rng.vec(2 * inter * k, 0.5), dtype).0,
            q => random_blocks(&mut rng, q, 2 * inter * k),
        };
        let w = Matrix::upload(gpu(), "gate_up", dtype, 2 * inter, k, &bytes).unwrap();
        for m in [1, 3, 4, 5, 8, 13, 67, 130] {
            let x = rng.vec(m * k, 1.0);
            let xb = f32_buf(gpu(), &x);
            let act = f32_buf(gpu(), &vec![0.0; m * inter]);
            let mut rec = gpu().recorder();
            let rows = Rows { x: &xb, x_offset: 0, x_stride: k, y: &act, y_offset: 0, y_stride: inter, m };
            assert!(pingce::kernels::matvec::record_swiglu(&mut rec, &w, inter, &rows).unwrap(), "{dtype:?}: fused path not taken");
            rec.submit("fused").unwrap();
            let fused = gpu().read_f32(&act, 0, m * inter).unwrap();
            for path in [Path::Tiled, Path::Vector] {
                let gu = f32_buf(gpu(), &run_linear(gpu(), path, &w, None, &x, m, None));
                let out = f32_buf(gpu(), &vec![0.0; m * inter]);
                let mut rec = gpu().recorder();
                swiglu::swiglu(&mut rec, &gu, &out, m, inter).unwrap();
                rec.submit("swiglu").unwrap();
                assert_eq!(fused, gpu().read_f32(&out, 0, m * inter).unwrap(), "{dtype:?} {path:?} m={m}");
            }
            assert!(fused.iter().all(|v| v.is_finite()) && fused.iter().any(|v| *v != 0.0));
        }
    }
}

/// The matrix-vector kernel's CPU layout (lanes 0..7 of a subgroup loading x once and
/// broadcasting it: `Gpu::subgroup_x`, on for CPU adapters) and its GPU one (the split-K form of
/// the order, `linear::split_k`) give the same bits where k is one split-K segment, plain and
/// fused with SwiGLU, for an output count that leaves a subgroup partly past the last row and row
/// counts that take every path (1, 2, 4, groups of 8, several chunks of x rows), for ggml blocks,
/// Q4_K and Q5_K (read a sub-block at a time) and float weights (a quad per vector load, 32 k at a
/// time for a single row, k = 44 leaving a tail of 3 quads); with two segments (K-quants) each
/// layout gives its tiled kernel's bits and the two agree closely.
#[test]
fn matvec_cpu_and_gpu_layouts_agree() {
    let Some(other) = other_x_reads() else { return };
    let mut rng = Rng::new(31);
    let n = 37;
    for dtype in [DType::F32, DType::F16, DType::BF16, DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q5_K] {
        let k = if dtype.is_float() { 44 } else { 2 * dtype.block_size() };
        let bytes = match dtype {
            DType::F32 | DType::F16 | DType::BF16 => encode(&rng.vec(2 * n * k, 0.5), dtype).0,
            q => random_blocks(&mut rng, q, 2 * n * k),
        };
        let (wa, wb) = (Matrix::upload(gpu(), "w", dtype, 2 * n, k, &bytes).unwrap(), Matrix::upload(&other, "w", dtype, 2 * n, k, &bytes).unwrap());
        // Fewer rows for K-quants, whose plain and tiled paths are slow on a CPU adapter.
        let ms: &[usize] = if dtype.block_size() == 256 { &[1, 2, 9, 67] } else { &[1, 2, 4, 9, 67, 130] };
        for &m in ms {
            let x = rng.vec(m * k, 1.0);
            let a = run_linear(gpu(), Path::Vector, &wa, None, &x, m, None);
            let b = run_linear(&other, Path::Vector, &wb, None, &x, m, None);
            assert_eq!(a, run_linear(gpu(), Path::Tiled, &wa, None, &x, m, None), "{dtype:?} m={m} tiled");
            if k <= SPLIT_K_SEGMENT {
                // One split-K segment: the plain chain and the split-K form are the same order.
                assert_eq!(a, b, "{dtype:?} m={m}");
            } else {
                // The two variants take the two forms of the order (`linear::split_k`).
                assert_eq!(b, run_linear(&other, Path::Tiled, &wb, None, &x, m, None), "{dtype:?} m={m} other, tiled");
                assert_close(&format!("{dtype:?} m={m} across forms"), &a, &b, 1e-3 * a.iter().fold(1f32, |t, v| t.max(v.abs())));
            }
            let fused = |g: &Gpu, w: &Matrix| {
                let (xb, act) = (f32_buf(g, &x), f32_buf(g, &vec![0.0; m * n]));
                let mut rec = g.recorder();
                let rows = Rows { x: &xb, x_offset: 0, x_stride: k, y: &act, y_offset: 0, y_stride: n, m };
                assert!(pingce::kernels::matvec::record_swiglu(&mut rec, w, n, &rows).unwrap());
                rec.submit("fused").unwrap();
                g.read_f32(&act, 0, m * n).unwrap()
            };
            // The fused SwiGLU variant shares the weight reads checked above; K-quants skip it
            // (each K-quant variant costs a software adapter minutes of shader compilation).
            if dtype.block_size() != 256 && k <= SPLIT_K_SEGMENT {
                assert_eq!(fused(gpu(), &wa), fused(&other, &wb), "{dtype:?} m={m} fused");
            }
        }
    }
}

/// The two attention kernels (tiled over workgroup memory, and one token per invocation with
/// subgroup broadcasts: `Gpu::subgroup_x`, on for CPU adapters), each in both layouts (the lanes
/// kernel: tokens, and query heads for decoding; the tiled one: 8 tokens of 8 lanes per
/// workgroup, and one token of 64 lanes for decoding), give the same bits: packed sequences of awkward
/// lengths, GQA with groups of 3, 2, 9 (two workgroups per kv head) and 1, head sizes 20 and 64,
/// with and without a sliding window, the cache whole and in chunks; then a decode pass of the
/// last token of each sequence gives the bits of the whole pass's rows.
#[test]
fn attention_lanes_and_tiled_kernels_give_the_same_bits() {
    let Some(other) = other_x_reads() else { return };
    let mut rng = Rng::new(41);
    for (hq, hkv, d) in [(6, 2, 20), (4, 2, 64), (18, 2, 20), (3, 3, 20)] {
        let (kv_dim, q_dim) = (hkv * d, hq * d);
        let stride = q_dim + 2 * kv_dim;
        let (lens, bases) = ([37usize, 70], [3usize, 60]);
        let tokens: usize = lens.iter().sum();
        let qkv = rng.vec(tokens * stride, 1.0);
        let meta: Vec<u32> = lens.iter().zip(bases).flat_map(|(&l, b)| (0..l).flat_map(move |p| [p as u32, b as u32])).collect();
        // The last token of each sequence, alone in a decode pass after the whole pass.
        let last: Vec<usize> = lens.iter().scan(0, |end, &l| { *end += l; Some(*end - 1) }).collect();
        let qkv_last: Vec<f32> = last.iter().flat_map(|&t| qkv[t * stride..(t + 1) * stride].to_vec()).collect();
        let meta_last: Vec<u32> = last.iter().flat_map(|&t| [meta[2 * t], meta[2 * t + 1]]).collect();
        for window in [None, Some(9)] {
            for chunk in [200, 53] {
                let att = Attention { heads_q: hq, heads_kv: hkv, head_dim: d, window };
                let run = |g: &Gpu, lanes: Lanes| {
                    let (k, v) = chunked_cache(g, 200, kv_dim, chunk);
                    let cache = LayerCache { k: &k, v: &v, chunk_rows: chunk };
                    let pass = |qkv: &[f32], meta: &[u32]| {
                        let n = meta.len() / 2;
                        let (qb, mb) = (f32_buf(g, qkv), u32_buf(g, meta));
                        let out = f32_buf(g, &vec![0.0; n * q_dim]);
                        let mut rec = g.recorder();
                        kv_write::kv_write(&mut rec, &qb, stride, q_dim, q_dim + kv_dim, kv_dim, n, &mb, &cache).unwrap();
                        att.record(&mut rec, &qb, 0, stride, n, lanes, 0, &mb, &cache, &out).unwrap();
                        rec.submit("attention").unwrap();
                        g.read_f32(&out, 0, n * q_dim).unwrap()
                    };
                    let whole = pass(&qkv, &meta);
                    let decode = pass(&qkv_last, &meta_last);
                    (whole, decode)
                };
                let (a, a_last) = run(gpu(), Lanes::Tokens);
                assert!(a.iter().all(|x| x.is_finite()));
                let want_last: Vec<f32> = last.iter().flat_map(|&t| a[t * q_dim..(t + 1) * q_dim].to_vec()).collect();
                assert_eq!(a_last, want_last, "d {d} window {window:?} chunk {chunk}: decode pass");
                for (g, lanes) in [(gpu(), Lanes::Heads), (&other, Lanes::Tokens), (&other, Lanes::Heads)] {
                    let what = format!("hq {hq} hkv {hkv} d {d} window {window:?} chunk {chunk} subgroup_x {} {lanes:?}", g.subgroup_x);
                    let (b, b_last) = run(g, lanes);
                    assert_eq!(a, b, "{what}");
                    assert_eq!(a_last, b_last, "{what}: decode pass");
                }
            }
        }
    }
}

/// Contexts longer than a key span ([`KEY_SPAN`] positions, folded span by span): a prefill pass
/// of two packed sequences of 300 and 530 tokens against the CPU reference at and around the
/// span boundaries, with and without a sliding window that starts inside a span, the cache whole
/// and in chunks; then those tokens decoded alone (reverse order), their spans split over
/// workgroups and folded by the combine kernel (GPUs: `Attention::spans`) and walked in one,
/// give the prefill pass's bits; and the CPU adapters' kernel gives the same bits throughout.
#[test]
fn attention_key_spans_walked_or_split_give_the_same_bits() {
    let mut rng = Rng::new(47);
    let ks = KEY_SPAN;
    for (hq, hkv, d) in [(6, 2, 20), (4, 2, 64)] {
        let (kv_dim, q_dim) = (hkv * d, hq * d);
        let stride = q_dim + 2 * kv_dim;
        let (lens, bases) = ([ks + 44, 2 * ks + 18], [3usize, ks + 60]);
        let (rows, tokens) = (bases[1] + lens[1] + 5, lens[0] + lens[1]);
        let qkv = rng.vec(tokens * stride, 1.0);
        let meta: Vec<u32> = lens.iter().zip(bases).flat_map(|(&l, b)| (0..l).flat_map(move |p| [p as u32, b as u32])).collect();
        let picks: Vec<usize> = [0, ks - 1, ks, ks + 1, lens[0] - 1].into_iter().chain([ks - 1, ks, 2 * ks - 1, 2 * ks, lens[1] - 1].map(|p| lens[0] + p)).rev().collect();
        let qkv_picks: Vec<f32> = picks.iter().flat_map(|&t| qkv[t * stride..(t + 1) * stride].to_vec()).collect();
        let meta_picks: Vec<u32> = picks.iter().flat_map(|&t| [meta[2 * t], meta[2 * t + 1]]).collect();
        let keys = lens[1];
        for window in [None, Some(ks + 37)] {
            for chunk in [rows, 301] {
                let att = Attention { heads_q: hq, heads_kv: hkv, head_dim: d, window };
                // The prefill pass, then the picked tokens decoded with `decode_keys` as the pass's longest context.
                let run = |g: &Gpu, decode_keys: usize| {
                    let (k, v) = chunked_cache(g, rows, kv_dim, chunk);
                    let cache = LayerCache { k: &k, v: &v, chunk_rows: chunk };
                    let pass = |qkv: &[f32], meta: &[u32], lanes: Lanes, keys: usize, write: bool| {
                        let n = meta.len() / 2;
                        let (qb, mb) = (f32_buf(g, qkv), u32_buf(g, meta));
                        let out = f32_buf(g, &vec![0.0; n * q_dim]);
                        let mut rec = g.recorder();
                        if write {
                            kv_write::kv_write(&mut rec, &qb, stride, q_dim, q_dim + kv_dim, kv_dim, n, &mb, &cache).unwrap();
                        }
                        att.record(&mut rec, &qb, 0, stride, n, lanes, keys, &mb, &cache, &out).unwrap();
                        rec.submit("attention").unwrap();
                        g.read_f32(&out, 0, n * q_dim).unwrap()
                    };
                    let whole = pass(&qkv, &meta, Lanes::Tokens, keys, true);
                    (whole, pass(&qkv_picks, &meta_picks, Lanes::Heads, decode_keys, false))
                };
                let what = format!("hq {hq} hkv {hkv} d {d} window {window:?} chunk {chunk}");
                let g = gpu();
                let (a, a_dec) = run(g, keys);
                let want: Vec<f32> = picks.iter().flat_map(|&t| a[t * q_dim..(t + 1) * q_dim].to_vec()).collect();
                assert_eq!(a_dec, want, "{what}: decode pass (spans split: {})", Attention::spans(g, Lanes::Heads, keys));
                assert_eq!(run(g, 0).1, want, "{what}: decode pass, spans walked");
                let mut t0 = 0;
                for &l in &lens {
                    let col = |off: usize, p: usize| qkv[(t0 + p) * stride + off..(t0 + p) * stride + off + kv_dim].to_vec();
                    let ks_: Vec<f32> = (0..l).flat_map(|p| col(q_dim, p)).collect();
                    let vs: Vec<f32> = (0..l).flat_map(|p| col(q_dim + kv_dim, p)).collect();
                    for t in picks.iter().filter(|&&t| t >= t0 && t < t0 + l) {
                        let (p, q) = (t - t0, &qkv[t * stride..t * stride + q_dim]);
                        let got = &a[t * q_dim..(t + 1) * q_dim];
                        assert_close(&format!("{what} pos {p}"), got, &cpu_attention(q, &ks_, &vs, p, hq, hkv, d, window), 2e-5);
                        assert_close(&format!("{what} pos {p}"), got, &cpu_attention_blockwise(q, &ks_, &vs, p, hq, hkv, d, window), 2e-6);
                    }
                    t0 += l;
                }
                // The other kernel (on a CPU adapter: the GPUs' tiled one, which splits the spans).
                if let Some(other) = other_x_reads() {
                    let (b, b_dec) = run(&other, keys);
                    assert_eq!(b, a, "{what}: subgroup_x {}", other.subgroup_x);
                    assert_eq!(b_dec, want, "{what}: subgroup_x {}, decode pass (spans split: {})", other.subgroup_x, Attention::spans(&other, Lanes::Heads, keys));
                    assert_eq!(run(&other, 0).1, want, "{what}: subgroup_x {}, decode pass, spans walked", other.subgroup_x);
                }
            }
        }
    }
    let (g, other) = (gpu(), other_x_reads());
    let tiled = if g.subgroup_x { other.as_ref() } else { Some(g) };
    if let Some(t) = tiled {
        assert_eq!(Attention::spans(t, Lanes::Heads, 2 * KEY_SPAN + 18), 3);
        assert_eq!(Attention::spans(t, Lanes::Heads, KEY_SPAN), 0);
        assert_eq!(Attention::spans(t, Lanes::Tokens, 4 * KEY_SPAN), 0);
    }
}

/// `cpu_linear` in the split-K form of the order (`linear::split_k`), in f32 as a GPU computes it:
/// per segment of `SPLIT_K_SEGMENT` k one chain from 0, `fma` fused or (`fused` false) a multiply
/// then an add, as llvmpipe compiles WGSL's `fma`; the segments' sums added in order onto 0.
fn cpu_linear_split_k(x: &[f32], w: &[f32], m: usize, n: usize, k: usize, fused: bool) -> Vec<f32> {
    let mut y = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut total = 0f32;
            for s in (0..k).step_by(SPLIT_K_SEGMENT) {
                let mut part = 0f32;
                for kk in s..k.min(s + SPLIT_K_SEGMENT) {
                    let (a, b) = (x[i * k + kk], w[j * k + kk]);
                    part = if fused { a.mul_add(b, part) } else { a * b + part };
                }
                total += part;
            }
            y[i * n + j] = total;
        }
    }
    y
}

/// On adapters that take the split-K form of the order (GPUs; on a CPU adapter, its variant with
/// `Gpu::subgroup_x` off), the tiled and matrix-vector kernels compute exactly that order: the bits
/// of a CPU reference of it for float weights, with k of one segment, of several with a shorter
/// last one, and of more segments than a workgroup takes side by side (two rounds); the same bits
/// as each other for block formats; and the fused SwiGLU the bits of the projection then SwiGLU.
#[test]
fn split_k_order_is_the_same_in_both_kernels_and_matches_its_cpu_reference() {
    let other = other_x_reads();
    let gs: Vec<&Gpu> = [Some(gpu()), other.as_ref()].into_iter().flatten().filter(|g| split_k(g)).collect();
    assert!(!gs.is_empty(), "no adapter variant takes the split-K form");
    let mut rng = Rng::new(57);
    let n = 37;
    for g in gs {
        for (dtype, k) in [(DType::F32, 200), (DType::F32, 700), (DType::BF16, 600), (DType::F16, 4100), (DType::Q4_1, 608), (DType::Q8_0, 288)] {
            let (bytes, wv) = if dtype.is_float() {
                encode(&rng.vec(n * k, 0.5), dtype)
            } else {
                let b = random_blocks(&mut rng, dtype, n * k);
                let v = dtype.to_f32(&b);
                (b, v)
            };
            let w = Matrix::upload(g, "w", dtype, n, k, &bytes).unwrap();
            for m in [1, 2, 5, 9, 40] {
                let x = rng.vec(m * k, 1.0);
                let tiled = run_linear(g, Path::Tiled, &w, None, &x, m, None);
                let what = format!("{dtype:?} k={k} m={m}");
                if m <= 9 {
                    assert_eq!(tiled, run_linear(g, Path::Vector, &w, None, &x, m, None), "{what}: tiled and vector");
                    // With a bias and onto what y holds (the residual add).
                    let (bias, y0) = (rng.vec(n, 1.0), rng.vec(m * n, 1.0));
                    let with = |path| run_linear(g, path, &w, Some(&bias), &x, m, Some(&y0));
                    assert_eq!(with(Path::Tiled), with(Path::Vector), "{what}: bias and accumulate");
                }
                if dtype.is_float() {
                    let exact = [true, false].iter().any(|&f| tiled == cpu_linear_split_k(&x, &wv, m, n, k, f));
                    assert!(exact, "{what}: not the split-K reference's bits");
                } else {
                    let wmax = wv.iter().fold(1f32, |a, v| a.max(v.abs()));
                    assert_close(&what, &tiled, &cpu_linear(&x, &wv, None, m, n, k), 1e-4 * (k as f32).sqrt() * wmax);
                }
            }
        }
        // The fused gate/up + SwiGLU over several segments.
        let (inter, k) = (19, 700);
        let (bytes, _) = encode(&rng.vec(2 * inter * k, 0.5), DType::F32);
        let w = Matrix::upload(g, "gate_up", DType::F32, 2 * inter, k, &bytes).unwrap();
        for m in [1, 6] {
            let x = rng.vec(m * k, 1.0);
            let (xb, act) = (f32_buf(g, &x), f32_buf(g, &vec![0.0; m * inter]));
            let mut rec = g.recorder();
            let rows = Rows { x: &xb, x_offset: 0, x_stride: k, y: &act, y_offset: 0, y_stride: inter, m };
            assert!(pingce::kernels::matvec::record_swiglu(&mut rec, &w, inter, &rows).unwrap());
            rec.submit("fused").unwrap();
            let gu = f32_buf(g, &run_linear(g, Path::Tiled, &w, None, &x, m, None));
            let out = f32_buf(g, &vec![0.0; m * inter]);
            let mut rec = g.recorder();
            swiglu::swiglu(&mut rec, &gu, &out, m, inter).unwrap();
            rec.submit("swiglu").unwrap();
            assert_eq!(g.read_f32(&act, 0, m * inter).unwrap(), g.read_f32(&out, 0, m * inter).unwrap(), "fused m={m}");
        }
    }
}
