// Decode path of matmul (same Params and bindings), for a few rows m: each invocation owns four
// weight rows and, for each, accumulates fma(x, w, acc) over k = 0, 1, 2, ... in order, exactly as the tiled
// kernel does, so decode and prefill give bit-identical results. Rows m are taken 4 at a time.
// On GPUs (SPLITK, near the end) both kernels take the split-K form of that order instead.
// x is read as vec4 (one load per 4 k): k, x_offset and x_stride are multiples of 4 here.
struct Params {
    m: u32, n: u32, k: u32, w_stride: u32,
    x_offset: u32, x_stride: u32, y_offset: u32, y_stride: u32,
    n_offset: u32, accumulate: u32, w_scales: u32, eps: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
//#if BIAS
@group(0) @binding(4) var<storage, read> bias: array<f32>;
//#endif
// NORM (with M1): x is the hidden row before RMSNorm, normalised here with rmsnorm.wgsl's
// numbers (weight `nw` after the other bindings: 4, plus one for a bias, plus one for the
// planar scales' word binding).
//#if NORM
//#if BIAS
//#if W_PLANAR
@group(0) @binding(6) var<storage, read> nw: array<vec4<f32>>;
//#else
@group(0) @binding(5) var<storage, read> nw: array<vec4<f32>>;
//#endif
//#else
//#if W_PLANAR
@group(0) @binding(5) var<storage, read> nw: array<vec4<f32>>;
//#else
@group(0) @binding(4) var<storage, read> nw: array<vec4<f32>>;
//#endif
//#endif
//#endif

// acc continued over 4 k: fma(x, w, acc) in k order, as every path computes it.
fn dot4(xv: vec4<f32>, v: vec4<f32>, acc: f32) -> f32 {
    return fma(xv.w, v.w, fma(xv.z, v.z, fma(xv.y, v.y, fma(xv.x, v.x, acc))));
}

// GROUP8: weights read a 32-k block at a time (wv_block, wb_quad), so the kernel can take x rows
// 8 at a time: ggml blocks, and with WV (CPU adapters) float weights, for which a block is only
// its first index and quad t one vector load (w_quad), and Q4_K / Q5_K sub-blocks.
//#if W_BLOCK32
//#define GROUP8
//#endif
//#if W_FLOAT
//#if WV
//#define GROUP8
struct WBlock { i: u32 }
fn wv_block(i: u32) -> WBlock {
    return WBlock(i);
}
fn wb_quad(b: WBlock, t: u32) -> vec4<f32> {
    return w_quad(b.i + 4u * t);
}
//#endif
//#endif
//#if W_Q4_K
//#if WV
//#define KQ_SUB
//#endif
//#endif
//#if W_Q5_K
//#if WV
//#define KQ_SUB
//#endif
//#endif
//#if KQ_SUB
//#define GROUP8
// Q4_K and Q5_K through the block interface (CPU adapters): a block is one 32-weight sub-block s
// of a 256-weight super-block (Q4_K: 144 bytes, 9 aligned vec4; Q5_K: 176 bytes, 11), read as
// whole vec4 (header, quants, Q5_K's high bits), with w_at's arithmetic per weight:
// (d * scale) * q - dmin * min.
struct WBlock { d: f32, m: f32, q0: vec4<u32>, q1: vec4<u32>, h0: vec4<u32>, h1: vec4<u32>, shift: u32, s: u32 }
fn wv_block(i: u32) -> WBlock {
    let s = (i >> 5u) & 7u;
//#if W_Q4_K
    let sb = (i >> 8u) * 9u;
    let q = sb + 1u + 2u * (s >> 1u);
    let h0 = vec4<u32>(0u);
    let h1 = h0;
//#else
    let sb = (i >> 8u) * 11u;
    let q = sb + 3u + 2u * (s >> 1u);
    let h0 = wv[sb + 1u];
    let h1 = wv[sb + 2u];
//#endif
    let h = wv[sb];
    let dm = unpack2x16float(h.x);
    let sm = scale_min_k4(h.yzw, s);
    return WBlock(dm.x * sm.x, dm.y * sm.y, wv[q], wv[q + 1u], h0, h1, (s & 1u) * 4u, s);
}
fn wb_quad(b: WBlock, t: u32) -> vec4<f32> {
    let q = select(b.q0[t & 3u], b.q1[t & 3u], t >= 4u);
//#if W_Q4_K
    return vec4<f32>(b.d) * nibbles(q, b.shift) - vec4<f32>(b.m);
//#else
    // Q5_K: the low 4 bits, and bit s of each high-bit byte as 16.
    let hw = select(b.h0[t & 3u], b.h1[t & 3u], t >= 4u);
    return vec4<f32>(b.d) * vec4<f32>(byte_fields(q, b.shift, 15u) + 16u * byte_fields(hw, b.s, 1u)) - vec4<f32>(b.m);
//#endif
}
//#endif
//#if W_Q6_K
//#if WV
//#define GROUP8
// Planar Q6_K through the block interface (CPU adapters; linear.rs gives only planar Q6_K this
// path): a block is one 32-weight sub-block of a super-block's 208 quant bytes (13 aligned
// vec4: ql 0-7, qh 8-11, scales 12), read as whole vec4, with w_at's arithmetic per weight:
// (d * scale) * q, the scale of elements 0-15 in d0 and of 16-31 in d1.
struct WBlock { d0: f32, d1: f32, l0: vec4<u32>, l1: vec4<u32>, h0: vec4<u32>, h1: vec4<u32>, shift: u32, hs: u32 }
// Signed byte k of the four words in v.
fn sbyte(v: vec4<u32>, k: u32) -> f32 {
    return f32(bitcast<i32>(((v[k >> 2u] >> ((k & 3u) * 8u)) & 0xffu) << 24u) >> 24);
}
fn wv_block(i: u32) -> WBlock {
    let sb = i >> 8u;
    let n = (i >> 7u) & 1u;
    let quarter = (i >> 5u) & 3u;
    let v = sb * 13u;
    let ql = v + 4u * n + 2u * (quarter & 1u);
    let qh = v + 8u + 2u * n;
    let sc = wv[v + 12u];
    let k = 8u * n + 2u * quarter;
    let d = w_head(sb).x;
    return WBlock(d * sbyte(sc, k), d * sbyte(sc, k + 1u), wv[ql], wv[ql + 1u], wv[qh], wv[qh + 1u], select(0u, 4u, quarter >= 2u), 2u * quarter);
}
fn wb_quad(b: WBlock, t: u32) -> vec4<f32> {
    let l = select(b.l0[t & 3u], b.l1[t & 3u], t >= 4u);
    let h = select(b.h0[t & 3u], b.h1[t & 3u], t >= 4u);
    let q6 = byte_fields(l, b.shift, 15u) | (byte_fields(h, b.hs, 3u) << vec4<u32>(4u));
    let q = vec4<f32>(bitcast<vec4<i32>>(q6) - vec4<i32>(32));
    return select(b.d0, b.d1, t >= 4u) * q;
}
//#endif
//#endif
//#if X_SUBGROUP
//#if GROUP8
// One quad of x into the chains of four weight rows: s.x .. s.w continued with quad t of b0 .. b3.
fn dot_rows(xv: vec4<f32>, b0: WBlock, b1: WBlock, b2: WBlock, b3: WBlock, t: u32, s: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(dot4(xv, wb_quad(b0, t), s.x), dot4(xv, wb_quad(b1, t), s.y), dot4(xv, wb_quad(b2, t), s.z), dot4(xv, wb_quad(b3, t), s.w));
}
// A whole block for a single x row: its 8 x quads, one per lane in xl, shared by subgroupBroadcast
// (constant lanes, so written out) into the chains s of rows b0 .. b3, quad after quad.
fn dot_block(xl: vec4<f32>, b0: WBlock, b1: WBlock, b2: WBlock, b3: WBlock, s0: vec4<f32>) -> vec4<f32> {
    var s = dot_rows(subgroupBroadcast(xl, 0u), b0, b1, b2, b3, 0u, s0);
    s = dot_rows(subgroupBroadcast(xl, 1u), b0, b1, b2, b3, 1u, s);
    s = dot_rows(subgroupBroadcast(xl, 2u), b0, b1, b2, b3, 2u, s);
    s = dot_rows(subgroupBroadcast(xl, 3u), b0, b1, b2, b3, 3u, s);
    s = dot_rows(subgroupBroadcast(xl, 4u), b0, b1, b2, b3, 4u, s);
    s = dot_rows(subgroupBroadcast(xl, 5u), b0, b1, b2, b3, 5u, s);
    s = dot_rows(subgroupBroadcast(xl, 6u), b0, b1, b2, b3, 6u, s);
    return dot_rows(subgroupBroadcast(xl, 7u), b0, b1, b2, b3, 7u, s);
}
//#endif
//#endif
//#if W_BLOCK32
//#if W_PLANAR
// Layout::Planar: w_block already reads a block's quants as aligned vec4.
fn wv_block(i: u32) -> WBlock {
    return w_block(i);
}
//#else
//#if WV
// Word `j` (0..11) of the 12 words in a, b, c.
fn word12(a: vec4<u32>, b: vec4<u32>, c: vec4<u32>, j: u32) -> u32 {
    let v = select(select(a, b, j >= 4u), c, j >= 8u);
    let e = j & 3u;
    return select(select(v.x, v.y, e == 1u), select(v.z, v.w, e == 3u), e >= 2u);
}
// w_block(i) read as whole aligned vec4s (WV: weights.wgsl binds them as vec4; buffers are
// allocated in multiples of 16 bytes): a block's words in two or three loads instead of five or
// nine, the same words, so the same WBlock.
fn wv_block(i: u32) -> WBlock {
//#if W_Q4_1
    let a = (i >> 5u) * 5u;
    let r = a & 3u;
    let q0 = wv[a >> 2u];
    let q1 = wv[(a >> 2u) + 1u];
    let z = vec4<u32>(0u);
    let dm = unpack2x16float(word12(q0, q1, z, r));
    return WBlock(dm.x, dm.y, vec4<u32>(word12(q0, q1, z, r + 1u), word12(q0, q1, z, r + 2u), word12(q0, q1, z, r + 3u), word12(q0, q1, z, r + 4u)), vec4<u32>(0u));
//#endif
//#if W_Q4_0
    let o = (i >> 5u) * 18u;
    let a = o >> 2u;
    let r = a & 3u;
    let odd = (o & 2u) != 0u;
    let q0 = wv[a >> 2u];
    let q1 = wv[(a >> 2u) + 1u];
    let z = vec4<u32>(0u);
    let u0 = word12(q0, q1, z, r);
    let u1 = word12(q0, q1, z, r + 1u);
    let u2 = word12(q0, q1, z, r + 2u);
    let u3 = word12(q0, q1, z, r + 3u);
    let u4 = word12(q0, q1, z, r + 4u);
    let h = unpack2x16float(u0);
    let q = vec4<u32>(word_at(u0, u1, odd), word_at(u1, u2, odd), word_at(u2, u3, odd), word_at(u3, u4, odd));
    return WBlock(select(h.x, h.y, odd), 0.0, q, vec4<u32>(0u));
//#endif
//#if W_Q8_0
    let o = (i >> 5u) * 34u;
    let a = o >> 2u;
    let r = a & 3u;
    let odd = (o & 2u) != 0u;
    let q0 = wv[a >> 2u];
    let q1 = wv[(a >> 2u) + 1u];
    let q2 = wv[(a >> 2u) + 2u];
    let u0 = word12(q0, q1, q2, r);
    let u1 = word12(q0, q1, q2, r + 1u);
    let u2 = word12(q0, q1, q2, r + 2u);
    let u3 = word12(q0, q1, q2, r + 3u);
    let u4 = word12(q0, q1, q2, r + 4u);
    let u5 = word12(q0, q1, q2, r + 5u);
    let u6 = word12(q0, q1, q2, r + 6u);
    let u7 = word12(q0, q1, q2, r + 7u);
    let u8 = word12(q0, q1, q2, r + 8u);
    let h = unpack2x16float(u0);
    let lo = vec4<u32>(word_at(u0, u1, odd), word_at(u1, u2, odd), word_at(u2, u3, odd), word_at(u3, u4, odd));
    let hi = vec4<u32>(word_at(u4, u5, odd), word_at(u5, u6, odd), word_at(u6, u7, odd), word_at(u7, u8, odd));
    return WBlock(select(h.x, h.y, odd), 0.0, lo, hi);
//#endif
}
//#else
fn wv_block(i: u32) -> WBlock {
    return w_block(i);
}
//#endif
//#endif
//#endif
// Writes acc[r][j] (weight row n0 + r, x row m0 + j, j < rows): + bias, + y, or SwiGLU.
fn store4(n0: u32, m0: u32, rows: u32, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>) {
//#if SWIGLU
    let gates = array<vec4<f32>, 2>(a0, a1);
    let ups = array<vec4<f32>, 2>(a2, a3);
    for (var r = 0u; r < 2u; r++) {
        let n = n0 + r;
        if (n >= p.n) { break; }
        for (var j = 0u; j < rows; j++) {
            // swiglu.wgsl's expression, so both paths give the same bits.
            let a = gates[r][j];
            let u = ups[r][j];
            y[p.y_offset + (m0 + j) * p.y_stride + n] = a * (1.0 / (1.0 + exp(-a))) * u;
        }
    }
//#else
    let accs = array<vec4<f32>, 4>(a0, a1, a2, a3);
    for (var r = 0u; r < 4u; r++) {
        let n = n0 + r;
        if (n >= p.n) { break; }
        for (var j = 0u; j < rows; j++) {
            var v = accs[r][j];
//#if BIAS
            v = v + bias[p.n_offset + n];
//#endif
            let yi = p.y_offset + (m0 + j) * p.y_stride + p.n_offset + n;
            if (p.accumulate != 0u) { v = y[yi] + v; }
            y[yi] = v;
        }
    }
//#endif
}

// Rows of x per workgroup (z): a multiple of 8 (the 8-row groups below).
const M_CHUNK: u32 = 8u;

// WG invocations (4 weight rows each) per workgroup, and M_CHUNK rows of x: many small
// workgroups, so a few CPU threads of a software adapter share even the narrow projections
// evenly. Splitting x rows over z costs nothing: each group of 8 rows decodes its weights anyway.
// X_SUBGROUP (CPU adapters, subgroups of at least 8): a software adapter runs the 8 lanes of a
// subgroup as one SIMD vector and loads a value that is the same for every lane one lane at a
// time, with a bounds check each. So the x quads a step needs (one per x row, or the 8 of a block
// for a single row) are loaded by lanes 0..7, one each, and shared by subgroupBroadcast: the same
// values in the same order, so the same bits. Every invocation then runs to the end (broadcasts
// need their whole subgroup); those past the last weight row read the last row and store nothing.
//#if X_SUBGROUP
// X_SUBGROUP: one subgroup (8 lanes, 32 weight rows) per workgroup, so that the narrow
// projections make enough workgroups for a few CPU threads to share evenly (576 rows: 18).
const WG: u32 = 8u;
//#else
// SPLITK: 64 invocations, RQ groups of 4 weight rows times SLOTS segments.
const WG: u32 = 64u;
//#endif

// The chains of weight rows w0 .. w3 (first elements) over k_lo .. k_hi for the `rows` (1 to 4) x
// rows from quad xq, xs apart, each from 0, the accumulators indexed by row: a split-K segment, and
// the CPU adapters' kernel for groups of 2 or 3 rows over the whole of k.
fn chains(w0: u32, w1: u32, w2: u32, w3: u32, xq: u32, xs: u32, rows: u32, k_lo: u32, k_hi: u32) -> array<vec4<f32>, 4> {
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
//#if W_BLOCK32
    // Whole 32-k blocks (k_lo a multiple of 32: KSEG is, and rows are whole blocks).
    for (var k = k_lo; k < k_hi; k += 32u) {
        let b0 = wv_block(w0 + k);
        let b1 = wv_block(w1 + k);
        let b2 = wv_block(w2 + k);
        let b3 = wv_block(w3 + k);
        let xk = xq + (k >> 2u);
        for (var t = 0u; t < 8u; t++) {
            let v0 = wb_quad(b0, t);
            let v1 = wb_quad(b1, t);
            let v2 = wb_quad(b2, t);
            let v3 = wb_quad(b3, t);
            for (var j = 0u; j < rows; j++) {
                let xv = x[xk + j * xs + t];
                a0[j] = dot4(xv, v0, a0[j]);
                a1[j] = dot4(xv, v1, a1[j]);
                a2[j] = dot4(xv, v2, a2[j]);
                a3[j] = dot4(xv, v3, a3[j]);
            }
        }
    }
//#else
    for (var k = k_lo; k < k_hi; k += 4u) {
        let v0 = w_quad(w0 + k);
        let v1 = w_quad(w1 + k);
        let v2 = w_quad(w2 + k);
        let v3 = w_quad(w3 + k);
        for (var j = 0u; j < rows; j++) {
            let xv = x[xq + j * xs + (k >> 2u)];
            a0[j] = dot4(xv, v0, a0[j]);
            a1[j] = dot4(xv, v1, a1[j]);
            a2[j] = dot4(xv, v2, a2[j]);
            a3[j] = dot4(xv, v3, a3[j]);
        }
    }
//#endif
    return array<vec4<f32>, 4>(a0, a1, a2, a3);
}

//#if SPLITK
// SPLITK (GPUs, `Gpu::subgroup_x` off): the canonical order in its split-K form, as matmul.wgsl's
// SPLITK computes it: k in segments of KSEG (the last one shorter), each segment one fma chain from
// 0 over its k in order, the output the segments' sums added in segment order onto 0. So one
// output's k is spread over many invocations: a workgroup of 64 takes RQ groups of 4 weight rows
// times SLOTS segments side by side (`const SLOTS` prepended: a power of two chosen from k alone,
// SLOTS * RQ = 64). Each invocation computes its segment's sums for up to 4 x rows; the first
// invocation of each row group adds them on in segment order, SLOTS at a time through workgroup
// memory. KSEG, the segment, is prepended as a const too (linear::SPLIT_K_SEGMENT).
const RQ: u32 = 64u / SLOTS;
// parts[rq * SLOTS + slot][r]: weight row r of group rq, segment `slot` of the round, x rows in .xyzw.
var<workgroup> parts: array<array<vec4<f32>, 4>, 64>;


fn split_k(li: u32, wid: vec3<u32>, nwg: vec3<u32>) {
    let rq = li / SLOTS;
    let slot = li % SLOTS;
    let g = (wid.x + wid.y * nwg.x) * RQ + rq;
    // Invocations past the last row read the last row and store nothing (every invocation takes
    // part in the barriers).
//#if SWIGLU
    let n0 = g * 2u;
    let nr = min(n0, p.n - 1u);
    let n1 = min(n0 + 1u, p.n - 1u);
    let w0 = nr * p.w_stride;
    let w1 = n1 * p.w_stride;
    let w2 = (p.n + nr) * p.w_stride;
    let w3 = (p.n + n1) * p.w_stride;
//#else
    let n0 = g * 4u;
    let last = p.n - 1u;
    let w0 = min(n0, last) * p.w_stride;
    let w1 = min(n0 + 1u, last) * p.w_stride;
    let w2 = min(n0 + 2u, last) * p.w_stride;
    let w3 = min(n0 + 3u, last) * p.w_stride;
//#endif
    let xs = p.x_stride >> 2u;
    let segments = (p.k + KSEG - 1u) / KSEG;
    let m_end = min(p.m, (wid.z + 1u) * M_CHUNK);
    for (var m0 = wid.z * M_CHUNK; m0 < m_end; m0 += 4u) {
        let rows = min(4u, m_end - m0);
        let xq = (p.x_offset + m0 * p.x_stride) >> 2u;
        var t0 = vec4<f32>(0.0);
        var t1 = vec4<f32>(0.0);
        var t2 = vec4<f32>(0.0);
        var t3 = vec4<f32>(0.0);
        for (var s0 = 0u; s0 < segments; s0 += SLOTS) {
            var a = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
            if (s0 + slot < segments) {
                a = chains(w0, w1, w2, w3, xq, xs, rows, (s0 + slot) * KSEG, min(p.k, (s0 + slot + 1u) * KSEG));
            }
            parts[li] = a;
            workgroupBarrier();
            if (slot == 0u) {
                let n = min(SLOTS, segments - s0);
                for (var j = 0u; j < n; j++) {
                    let q = parts[rq * SLOTS + j];
                    t0 = t0 + q[0];
                    t1 = t1 + q[1];
                    t2 = t2 + q[2];
                    t3 = t3 + q[3];
                }
            }
            workgroupBarrier();
        }
        if (slot == 0u) {
            store4(n0, m0, rows, t0, t1, t2, t3);
        }
    }
}
//#endif
@compute @workgroup_size(WG)
//#if X_SUBGROUP
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32) {
//#else
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
//#endif
//#if SPLITK
    // Without X_SUBGROUP the kernel is the split-K one (linear::split_k: adapters without
    // `Gpu::subgroup_x` take that form of the order); what follows is X_SUBGROUP's.
    split_k(lid.x, wid, nwg);
//#else
    // Four weight rows per invocation: four independent accumulation chains per x row.
//#if SWIGLU
    // y[m, n] = silu(g) * u for the stacked gate (rows 0 .. n) and up (rows n .. 2n) projections:
    // gate rows n0, n0 + 1 and up rows n0, n0 + 1, so the activation is written directly.
    let n0 = ((wid.x + wid.y * nwg.x) * WG + lid.x) * 2u;
    let nr = min(n0, p.n - 1u);
    let n1 = min(n0 + 1u, p.n - 1u);
    let w0 = nr * p.w_stride;
    let w1 = n1 * p.w_stride;
    let w2 = (p.n + nr) * p.w_stride;
    let w3 = (p.n + n1) * p.w_stride;
//#else
    let n0 = ((wid.x + wid.y * nwg.x) * WG + lid.x) * 4u;
    let last = p.n - 1u;
    let w0 = min(n0, last) * p.w_stride;
    let w1 = min(n0 + 1u, last) * p.w_stride;
    let w2 = min(n0 + 2u, last) * p.w_stride;
    let w3 = min(n0 + 3u, last) * p.w_stride;
//#endif
    let xs = p.x_stride >> 2u;
//#if M1
    // One x row over rows of whole 32-k blocks (decode of one sequence on a CPU adapter): the
    // single-row path below on its own. A software adapter runs loads nested in loops and
    // branches under lane masks that it tests lane by lane; here only the k loop remains.
    var s1 = vec4<f32>(0.0);
    let x1 = p.x_offset >> 2u;
//#if NORM
    // 1 / rms of the row, rmsnorm.wgsl's tree from quad loads: its 64 partial sums of squares
    // (partial t: elements t, t + 64, ... in order), lane l holding partials 4l .. 4l + 3 (quads
    // l + 16r) in qa and 32 + 4l .. (quads l + 8 + 16r) in qb; then t += t + 32 in the lane,
    // + 16, + 8, + 4 by shuffles, + 2 and + 1 within the quad. The same additions, the same bits.
    let k4 = p.k >> 2u;
    var qa = vec4<f32>(0.0);
    var qb = vec4<f32>(0.0);
    for (var r = 0u; r < k4; r += 16u) {
        let ia = r + (sl & 7u);
        if (ia < k4) {
            let v = x[x1 + ia];
            qa = qa + v * v;
        }
        if (ia + 8u < k4) {
            let v = x[x1 + ia + 8u];
            qb = qb + v * v;
        }
    }
    var t4 = qa + qb;
    t4 = t4 + subgroupShuffleDown(t4, 4u);
    t4 = t4 + subgroupShuffleDown(t4, 2u);
    t4 = t4 + subgroupShuffleDown(t4, 1u);
    let ss = subgroupBroadcast((t4.x + t4.z) + (t4.y + t4.w), 0u);
    let inv = 1.0 / sqrt(ss / f32(p.k) + p.eps);
    for (var k = 0u; k < p.k; k += 32u) {
        let q = (k >> 2u) + (sl & 7u);
        s1 = dot_block(nw[q] * (x[x1 + q] * inv), wv_block(w0 + k), wv_block(w1 + k), wv_block(w2 + k), wv_block(w3 + k), s1);
    }
//#else
    for (var k = 0u; k < p.k; k += 32u) {
        s1 = dot_block(x[x1 + (k >> 2u) + (sl & 7u)], wv_block(w0 + k), wv_block(w1 + k), wv_block(w2 + k), wv_block(w3 + k), s1);
    }
//#endif
    store4(n0, 0u, 1u, vec4<f32>(s1.x), vec4<f32>(s1.y), vec4<f32>(s1.z), vec4<f32>(s1.w));
//#else
    // Rows of x in chunks of M_CHUNK, one chunk per workgroup z (prefill on a CPU adapter).
    let m_end = min(p.m, (wid.z + 1u) * M_CHUNK);
    var m0 = wid.z * M_CHUNK;
//#if GROUP8
    // Groups of 8 x rows: each quad of weights decoded once for all 8 (rows of whole 32-k blocks).
    let whole = (p.k & 31u) == 0u;
    for (; whole && m0 + 8u <= m_end; m0 += 8u) {
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        var c0 = vec4<f32>(0.0);
        var c1 = vec4<f32>(0.0);
        var c2 = vec4<f32>(0.0);
        var c3 = vec4<f32>(0.0);
        let xq = (p.x_offset + m0 * p.x_stride) >> 2u;
        for (var k = 0u; k < p.k; k += 32u) {
            let b0 = wv_block(w0 + k);
            let b1 = wv_block(w1 + k);
            let b2 = wv_block(w2 + k);
            let b3 = wv_block(w3 + k);
            let xk = xq + (k >> 2u);
            for (var t = 0u; t < 8u; t++) {
                let v0 = wb_quad(b0, t);
                let v1 = wb_quad(b1, t);
                let v2 = wb_quad(b2, t);
                let v3 = wb_quad(b3, t);
                let xl = x[xk + (sl & 7u) * xs + t];
                let x0 = subgroupBroadcast(xl, 0u);
                let x1 = subgroupBroadcast(xl, 1u);
                let x2 = subgroupBroadcast(xl, 2u);
                let x3 = subgroupBroadcast(xl, 3u);
                let x4 = subgroupBroadcast(xl, 4u);
                let x5 = subgroupBroadcast(xl, 5u);
                let x6 = subgroupBroadcast(xl, 6u);
                let x7 = subgroupBroadcast(xl, 7u);
                a0 = vec4<f32>(dot4(x0, v0, a0.x), dot4(x1, v0, a0.y), dot4(x2, v0, a0.z), dot4(x3, v0, a0.w));
                a1 = vec4<f32>(dot4(x0, v1, a1.x), dot4(x1, v1, a1.y), dot4(x2, v1, a1.z), dot4(x3, v1, a1.w));
                a2 = vec4<f32>(dot4(x0, v2, a2.x), dot4(x1, v2, a2.y), dot4(x2, v2, a2.z), dot4(x3, v2, a2.w));
                a3 = vec4<f32>(dot4(x0, v3, a3.x), dot4(x1, v3, a3.y), dot4(x2, v3, a3.z), dot4(x3, v3, a3.w));
                c0 = vec4<f32>(dot4(x4, v0, c0.x), dot4(x5, v0, c0.y), dot4(x6, v0, c0.z), dot4(x7, v0, c0.w));
                c1 = vec4<f32>(dot4(x4, v1, c1.x), dot4(x5, v1, c1.y), dot4(x6, v1, c1.z), dot4(x7, v1, c1.w));
                c2 = vec4<f32>(dot4(x4, v2, c2.x), dot4(x5, v2, c2.y), dot4(x6, v2, c2.z), dot4(x7, v2, c2.w));
                c3 = vec4<f32>(dot4(x4, v3, c3.x), dot4(x5, v3, c3.y), dot4(x6, v3, c3.z), dot4(x7, v3, c3.w));
            }
        }
        store4(n0, m0, 4u, a0, a1, a2, a3);
        store4(n0, m0 + 4u, 4u, c0, c1, c2, c3);
    }
//#endif
    for (; m0 < m_end; m0 += 4u) {
        let rows = min(4u, m_end - m0);
        // acc[r][j]: weight row n0 + r, x row m0 + j.
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        let xq = (p.x_offset + m0 * p.x_stride) >> 2u;
//#if W_BLOCK32
        // Whole blocks of 32 k (rows are whole blocks), each word of a block read once, then
        // the same chains over its quads as the loop below. Full groups of 4 x rows and single
        // rows (decode of one sequence) index the accumulators with constants.
        if (rows == 4u) {
            for (var k = 0u; k < p.k; k += 32u) {
                let b0 = wv_block(w0 + k);
                let b1 = wv_block(w1 + k);
                let b2 = wv_block(w2 + k);
                let b3 = wv_block(w3 + k);
                let xk = xq + (k >> 2u);
                for (var t = 0u; t < 8u; t++) {
                    let v0 = wb_quad(b0, t);
                    let v1 = wb_quad(b1, t);
                    let v2 = wb_quad(b2, t);
                    let v3 = wb_quad(b3, t);
                    let xl = x[xk + (sl & 3u) * xs + t];
                    let x0 = subgroupBroadcast(xl, 0u);
                    let x1 = subgroupBroadcast(xl, 1u);
                    let x2 = subgroupBroadcast(xl, 2u);
                    let x3 = subgroupBroadcast(xl, 3u);
                    a0 = vec4<f32>(dot4(x0, v0, a0.x), dot4(x1, v0, a0.y), dot4(x2, v0, a0.z), dot4(x3, v0, a0.w));
                    a1 = vec4<f32>(dot4(x0, v1, a1.x), dot4(x1, v1, a1.y), dot4(x2, v1, a1.z), dot4(x3, v1, a1.w));
                    a2 = vec4<f32>(dot4(x0, v2, a2.x), dot4(x1, v2, a2.y), dot4(x2, v2, a2.z), dot4(x3, v2, a2.w));
                    a3 = vec4<f32>(dot4(x0, v3, a3.x), dot4(x1, v3, a3.y), dot4(x2, v3, a3.z), dot4(x3, v3, a3.w));
                }
            }
        } else if (rows == 1u) {
            var s0 = 0.0;
            var s1 = 0.0;
            var s2 = 0.0;
            var s3 = 0.0;
            for (var k = 0u; k < p.k; k += 32u) {
                let b0 = wv_block(w0 + k);
                let b1 = wv_block(w1 + k);
                let b2 = wv_block(w2 + k);
                let b3 = wv_block(w3 + k);
                let xk = xq + (k >> 2u);
                // The block's 8 x quads, one per lane.
                let s = dot_block(x[xk + (sl & 7u)], b0, b1, b2, b3, vec4<f32>(s0, s1, s2, s3));
                s0 = s.x;
                s1 = s.y;
                s2 = s.z;
                s3 = s.w;
            }
            a0.x = s0;
            a1.x = s1;
            a2.x = s2;
            a3.x = s3;
        } else {
            let c = chains(w0, w1, w2, w3, xq, xs, rows, 0u, p.k);
            a0 = c[0];
            a1 = c[1];
            a2 = c[2];
            a3 = c[3];
        }
//#else
        // Quads of k (one u32 of 4-bit weights, two of 16-bit ones), in order; single rows and
        // full groups of 4 index the accumulators with constants.
        if (rows == 1u) {
            var s0 = 0.0;
            var s1 = 0.0;
            var s2 = 0.0;
            var s3 = 0.0;
            var k = 0u;
//#if GROUP8
            // Weights read a block at a time (floats, Q4_K, Q5_K): 32 k at a time, their 8 x
            // quads one per lane, shared by subgroupBroadcast.
            for (; k + 32u <= p.k; k += 32u) {
                let s = dot_block(x[xq + (k >> 2u) + (sl & 7u)], wv_block(w0 + k), wv_block(w1 + k), wv_block(w2 + k), wv_block(w3 + k), vec4<f32>(s0, s1, s2, s3));
                s0 = s.x;
                s1 = s.y;
                s2 = s.z;
                s3 = s.w;
            }
//#endif
            for (; k < p.k; k += 4u) {
                let x0 = x[xq + (k >> 2u)];
                s0 = dot4(x0, w_quad(w0 + k), s0);
                s1 = dot4(x0, w_quad(w1 + k), s1);
                s2 = dot4(x0, w_quad(w2 + k), s2);
                s3 = dot4(x0, w_quad(w3 + k), s3);
            }
            a0.x = s0;
            a1.x = s1;
            a2.x = s2;
            a3.x = s3;
        } else if (rows == 4u) {
            for (var k = 0u; k < p.k; k += 4u) {
                let v0 = w_quad(w0 + k);
                let v1 = w_quad(w1 + k);
                let v2 = w_quad(w2 + k);
                let v3 = w_quad(w3 + k);
                let xk = xq + (k >> 2u);
                let x0 = x[xk];
                let x1 = x[xk + xs];
                let x2 = x[xk + 2u * xs];
                let x3 = x[xk + 3u * xs];
                a0 = vec4<f32>(dot4(x0, v0, a0.x), dot4(x1, v0, a0.y), dot4(x2, v0, a0.z), dot4(x3, v0, a0.w));
                a1 = vec4<f32>(dot4(x0, v1, a1.x), dot4(x1, v1, a1.y), dot4(x2, v1, a1.z), dot4(x3, v1, a1.w));
                a2 = vec4<f32>(dot4(x0, v2, a2.x), dot4(x1, v2, a2.y), dot4(x2, v2, a2.z), dot4(x3, v2, a2.w));
                a3 = vec4<f32>(dot4(x0, v3, a3.x), dot4(x1, v3, a3.y), dot4(x2, v3, a3.z), dot4(x3, v3, a3.w));
            }
        } else {
            let c = chains(w0, w1, w2, w3, xq, xs, rows, 0u, p.k);
            a0 = c[0];
            a1 = c[1];
            a2 = c[2];
            a3 = c[3];
        }
//#endif
        store4(n0, m0, rows, a0, a1, a2, a3);
    }
//#endif
//#endif
}
