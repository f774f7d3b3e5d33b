// Snippet, not a kernel: prepended (src/kernels/mod.rs) to the kernels that read weights
// (embedding, matmul, matvec, expert kernels), compiled with one of the W_* defines, and
// W_PLANAR for a chunk in tensor::Layout::Planar (Q8_0, Q4_0, Q4_1, Q6_K on CPU adapters; the
// includer's Params then has `w_scales`, see the end of this file).
// Weight storage formats, bound at binding 2. `w_at(i)` returns element i (row-major, padded
// stride) as f32, `w_pair(i)` elements i and i + 1 for even i, `w_quad(i)` elements i .. i + 3
// for i a multiple of 4. All three give the same values, in either layout.
// Float formats (W_FLOAT). With WV (the matrix-vector kernel on CPU adapters) a quad is one
// vector load (vec4 of f32, vec2 of u32 for 16-bit formats; i a multiple of 4 on a row of a
// multiple of 4), the same values as w_quad reads word by word; w_at and w_pair are not defined.
//#if W_F32
//#define W_FLOAT
//#if WV
@group(0) @binding(2) var<storage, read> wv: array<vec4<f32>>;
fn w_quad(i: u32) -> vec4<f32> {
    return wv[i >> 2u];
}
//#else
@group(0) @binding(2) var<storage, read> w: array<f32>;
fn w_at(i: u32) -> f32 {
    return w[i];
}
fn w_pair(i: u32) -> vec2<f32> {
    return vec2<f32>(w[i], w[i + 1u]);
}
fn w_quad(i: u32) -> vec4<f32> {
    return vec4<f32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
}
//#endif
//#endif
//#if W_F16
//#define W_FLOAT
//#if WV
@group(0) @binding(2) var<storage, read> wv: array<vec2<u32>>;
fn w_quad(i: u32) -> vec4<f32> {
    let u = wv[i >> 2u];
    return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y));
}
//#else
@group(0) @binding(2) var<storage, read> w: array<u32>;
fn w_at(i: u32) -> f32 {
    let p = unpack2x16float(w[i >> 1u]);
    return select(p.x, p.y, (i & 1u) == 1u);
}
fn w_pair(i: u32) -> vec2<f32> {
    return unpack2x16float(w[i >> 1u]);
}
fn w_quad(i: u32) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(w[i >> 1u]), unpack2x16float(w[(i >> 1u) + 1u]));
}
//#endif
//#endif
//#if W_BF16
//#define W_FLOAT
// The two bfloat16 in word u, low half first.
fn bf16_pair(u: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(u << 16u), bitcast<f32>(u & 0xffff0000u));
}
//#if WV
@group(0) @binding(2) var<storage, read> wv: array<vec2<u32>>;
fn w_quad(i: u32) -> vec4<f32> {
    let u = wv[i >> 2u];
    return vec4<f32>(bf16_pair(u.x), bf16_pair(u.y));
}
//#else
@group(0) @binding(2) var<storage, read> w: array<u32>;
fn w_at(i: u32) -> f32 {
    let u = w[i >> 1u];
    return bitcast<f32>(select(u << 16u, u & 0xffff0000u, (i & 1u) == 1u));
}
fn w_pair(i: u32) -> vec2<f32> {
    return bf16_pair(w[i >> 1u]);
}
fn w_quad(i: u32) -> vec4<f32> {
    return vec4<f32>(w_pair(i), w_pair(i + 2u));
}
//#endif
//#endif
// ggml block formats: raw blocks as stored in GGUF, read byte-wise. Element i of the matrix
// (flat row-major index; rows are whole blocks) is element i % B of block i / B.
//#if W_Q8_0
//#define W_BLOCKS
//#endif
//#if W_Q4_0
//#define W_BLOCKS
//#endif
//#if W_Q4_1
//#define W_BLOCKS
//#endif
//#if W_Q4_K
//#define W_BLOCKS
//#define W_KQUANT
//#endif
//#if W_Q5_K
//#define W_BLOCKS
//#define W_KQUANT
//#endif
//#if W_Q6_K
//#define W_BLOCKS
//#define W_KQUANT
//#endif
//#if W_KQUANT
fn w_quad(i: u32) -> vec4<f32> {
    return vec4<f32>(w_at(i), w_at(i + 1u), w_at(i + 2u), w_at(i + 3u));
}
//#endif
//#if W_BLOCKS
//#if WV
// WV (the matrix-vector kernel on CPU adapters): the same words bound as vec4, so whole aligned
// quads of words can be loaded at once (matvec.wgsl's wv_block); w_word picks one.
@group(0) @binding(2) var<storage, read> wv: array<vec4<u32>>;
fn w_word(i: u32) -> u32 {
    let v = wv[i >> 2u];
    let e = i & 3u;
    return select(select(v.x, v.y, e == 1u), select(v.z, v.w, e == 3u), e >= 2u);
}
//#else
@group(0) @binding(2) var<storage, read> w: array<u32>;
fn w_word(i: u32) -> u32 {
    return w[i];
}
//#endif
fn byte_at(o: u32) -> u32 {
    return (w_word(o >> 2u) >> ((o & 3u) * 8u)) & 0xffu;
}
// f16 at an even byte offset.
fn half_at(o: u32) -> f32 {
    let p = unpack2x16float(w_word(o >> 2u));
    return select(p.x, p.y, (o & 2u) != 0u);
}
fn w_pair(i: u32) -> vec2<f32> {
    return vec2<f32>(w_at(i), w_at(i + 1u));
}
// The field `mask` at bit `shift` of each of the four bytes of `q`.
fn byte_fields(q: u32, shift: u32, mask: u32) -> vec4<u32> {
    return vec4<u32>((q >> shift) & mask, (q >> (shift + 8u)) & mask, (q >> (shift + 16u)) & mask, (q >> (shift + 24u)) & mask);
}
// Four consecutive 4-bit fields of the u32 `q` starting at bit `shift` (low or high nibbles).
fn nibbles(q: u32, shift: u32) -> vec4<f32> {
    return vec4<f32>(byte_fields(q, shift, 15u));
}
// Byte k (0..11) of the 12 scale bytes of a K-quant super-block, held as three words.
fn scale_byte(sc: vec3<u32>, k: u32) -> u32 {
    let w = select(select(sc.x, sc.y, k >= 4u), sc.z, k >= 8u);
    return (w >> ((k & 3u) * 8u)) & 0xffu;
}
// ggml get_scale_min_k4: 6-bit scale and min of sub-block j from the 12 scale bytes.
fn scale_min_k4(sc: vec3<u32>, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(scale_byte(sc, j) & 63u), f32(scale_byte(sc, j + 4u) & 63u));
    }
    let a = scale_byte(sc, j + 4u);
    return vec2<f32>(f32((a & 15u) | ((scale_byte(sc, j - 4u) >> 6u) << 4u)), f32((a >> 4u) | ((scale_byte(sc, j) >> 6u) << 4u)));
}
// The scale words of the Q4_K / Q5_K super-block at byte o (words 1..3).
fn scale_words(o: u32) -> vec3<u32> {
    let a = o >> 2u;
    return vec3<u32>(w_word(a + 1u), w_word(a + 2u), w_word(a + 3u));
}
//#endif
//#if !W_PLANAR
//#if W_Q8_0
fn w_at(i: u32) -> f32 {
    let o = (i >> 5u) * 34u;
    let q = byte_at(o + 2u + (i & 31u));
    return half_at(o) * f32(bitcast<i32>(q << 24u) >> 24u);
}
fn w_quad(i: u32) -> vec4<f32> {
    let o = (i >> 5u) * 34u;
    let b = o + 2u + (i & 31u);
    let q = vec4<u32>(byte_at(b), byte_at(b + 1u), byte_at(b + 2u), byte_at(b + 3u));
    return half_at(o) * vec4<f32>(bitcast<vec4<i32>>(q << vec4<u32>(24u)) >> vec4<u32>(24u));
}
//#endif
//#if W_Q4_0
fn w_at(i: u32) -> f32 {
    let o = (i >> 5u) * 18u;
    let j = i & 31u;
    let q = byte_at(o + 2u + (j & 15u));
    return half_at(o) * (f32(select(q & 15u, q >> 4u, j >= 16u)) - 8.0);
}
fn w_quad(i: u32) -> vec4<f32> {
    let o = (i >> 5u) * 18u;
    let j = i & 31u;
    let b = o + 2u + (j & 15u);
    let q = byte_at(b) | (byte_at(b + 1u) << 8u) | (byte_at(b + 2u) << 16u) | (byte_at(b + 3u) << 24u);
    return half_at(o) * (nibbles(q, select(0u, 4u, j >= 16u)) - vec4<f32>(8.0));
}
//#endif
//#if W_Q4_1
fn w_at(i: u32) -> f32 {
    let o = (i >> 5u) * 20u;
    let j = i & 31u;
    let dm = unpack2x16float(w_word(o >> 2u));
    let q = byte_at(o + 4u + (j & 15u));
    return fma(dm.x, f32(select(q & 15u, q >> 4u, j >= 16u)), dm.y);
}
fn w_quad(i: u32) -> vec4<f32> {
    let o = (i >> 5u) * 20u;
    let j = i & 31u;
    let dm = unpack2x16float(w_word(o >> 2u));
    let q = w_word((o + 4u + (j & 15u)) >> 2u);
    return fma(vec4<f32>(dm.x), nibbles(q, select(0u, 4u, j >= 16u)), vec4<f32>(dm.y));
}
//#endif
//#endif
//#if W_Q4_K
fn w_at(i: u32) -> f32 {
    let o = (i >> 8u) * 144u;
    let j = i & 255u;
    let dm = unpack2x16float(w_word(o >> 2u));
    let g = j >> 6u;
    let hi = (j >> 5u) & 1u;
    let sm = scale_min_k4(scale_words(o), 2u * g + hi);
    let q = byte_at(o + 16u + 32u * g + (j & 31u));
    return (dm.x * sm.x) * f32(select(q & 15u, q >> 4u, hi == 1u)) - dm.y * sm.y;
}
//#endif
//#if W_Q5_K
fn w_at(i: u32) -> f32 {
    let o = (i >> 8u) * 176u;
    let j = i & 255u;
    let dm = unpack2x16float(w_word(o >> 2u));
    let g = j >> 6u;
    let hi = (j >> 5u) & 1u;
    let l = j & 31u;
    let sm = scale_min_k4(scale_words(o), 2u * g + hi);
    let q = byte_at(o + 48u + 32u * g + l);
    let bit = (byte_at(o + 16u + l) >> (2u * g + hi)) & 1u;
    return (dm.x * sm.x) * f32(select(q & 15u, q >> 4u, hi == 1u) + 16u * bit) - dm.y * sm.y;
}
//#endif
//#if W_Q6_K
// Element j of the Q6_K super-block whose ql, qh and scales start at byte o, with scale d.
fn q6k_at(o: u32, j: u32, d: f32) -> f32 {
    let n = j >> 7u;
    let r = j & 127u;
    let quarter = r >> 5u;
    let l = r & 31u;
    let ql = byte_at(o + 64u * n + l + 32u * (quarter & 1u));
    let qh = byte_at(o + 128u + 32u * n + l);
    let lo = select(ql & 15u, ql >> 4u, quarter >= 2u);
    let q = i32(lo | (((qh >> (2u * quarter)) & 3u) << 4u)) - 32;
    let sc = f32(bitcast<i32>(byte_at(o + 192u + 8u * n + l / 16u + 2u * quarter) << 24u) >> 24);
    return (d * sc) * f32(q);
}
//#if !W_PLANAR
fn w_at(i: u32) -> f32 {
    let o = (i >> 8u) * 210u;
    return q6k_at(o, i & 255u, half_at(o + 208u));
}
//#endif
//#endif
// Whole 32-element blocks (Q8_0, Q4_0, Q4_1), the decode kernel's fast path: `w_block(i)`, for i
// the first element of a block, reads each word of the block once, and `wb_quad(b, t)` gives
// elements 4t .. 4t + 3 of it (t < 8), exactly the values `w_quad(i + 4t)` gives.
//#if W_Q8_0
//#define W_BLOCK32
//#endif
//#if W_Q4_0
//#define W_BLOCK32
//#endif
//#if W_Q4_1
//#define W_BLOCK32
//#endif
//#if W_BLOCK32
// The four bytes that start 2 bytes into word `lo` (`odd` false) or at word `hi` (`odd` true).
fn word_at(lo: u32, hi: u32, odd: bool) -> u32 {
    return select((lo >> 16u) | (hi << 16u), hi, odd);
}
// Scale d, min m (Q4_1), and the quants: 4-bit ones in q0 (elements 0-15 low nibbles, 16-31 high),
// 8-bit ones in q0 (elements 0-15) and q1 (16-31).
struct WBlock { d: f32, m: f32, q0: vec4<u32>, q1: vec4<u32> }
//#endif
//#if W_Q8_0
//#if !W_PLANAR
fn w_block(i: u32) -> WBlock {
    let o = (i >> 5u) * 34u;
    let a = o >> 2u;
    let odd = (o & 2u) != 0u;
    let u0 = w_word(a);
    let u1 = w_word(a + 1u);
    let u2 = w_word(a + 2u);
    let u3 = w_word(a + 3u);
    let u4 = w_word(a + 4u);
    let u5 = w_word(a + 5u);
    let u6 = w_word(a + 6u);
    let u7 = w_word(a + 7u);
    let u8 = w_word(a + 8u);
    let h = unpack2x16float(u0);
    let q0 = vec4<u32>(word_at(u0, u1, odd), word_at(u1, u2, odd), word_at(u2, u3, odd), word_at(u3, u4, odd));
    let q1 = vec4<u32>(word_at(u4, u5, odd), word_at(u5, u6, odd), word_at(u6, u7, odd), word_at(u7, u8, odd));
    return WBlock(select(h.x, h.y, odd), 0.0, q0, q1);
}
//#endif
fn wb_quad(b: WBlock, t: u32) -> vec4<f32> {
    let q = select(b.q0[t & 3u], b.q1[t & 3u], t >= 4u);
    return b.d * vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q << 24u, q << 16u, q << 8u, q)) >> vec4<u32>(24u));
}
//#endif
//#if W_Q4_0
//#if !W_PLANAR
fn w_block(i: u32) -> WBlock {
    let o = (i >> 5u) * 18u;
    let a = o >> 2u;
    let odd = (o & 2u) != 0u;
    let u0 = w_word(a);
    let u1 = w_word(a + 1u);
    let u2 = w_word(a + 2u);
    let u3 = w_word(a + 3u);
    let u4 = w_word(a + 4u);
    let h = unpack2x16float(u0);
    let q0 = vec4<u32>(word_at(u0, u1, odd), word_at(u1, u2, odd), word_at(u2, u3, odd), word_at(u3, u4, odd));
    return WBlock(select(h.x, h.y, odd), 0.0, q0, vec4<u32>(0u));
}
//#endif
fn wb_quad(b: WBlock, t: u32) -> vec4<f32> {
    return b.d * (nibbles(b.q0[t & 3u], select(0u, 4u, t >= 4u)) - vec4<f32>(8.0));
}
//#endif
//#if W_Q4_1
//#if !W_PLANAR
fn w_block(i: u32) -> WBlock {
    let a = (i >> 5u) * 5u;
    let dm = unpack2x16float(w_word(a));
    return WBlock(dm.x, dm.y, vec4<u32>(w_word(a + 1u), w_word(a + 2u), w_word(a + 3u), w_word(a + 4u)), vec4<u32>(0u));
}
//#endif
fn wb_quad(b: WBlock, t: u32) -> vec4<f32> {
    return fma(vec4<f32>(b.d), nibbles(b.q0[t & 3u], select(0u, 4u, t >= 4u)), vec4<f32>(b.m));
}
//#endif
// Layout::Planar (src/tensor/mod.rs; CPU adapters): the same blocks in two planes, the quants of
// block b at byte 32b (Q8_0), 16b (Q4_0, Q4_1) or 208b (Q6_K: ql, qh, scales), then the scales
// from word p.w_scales (an f16 per block; Q4_1 its d, m word). The same values as the ggml
// layout, read from aligned words.
//#if W_PLANAR
//#if WV
// With WV the same buffer is also bound as words (after the bias, if any), so that a scale is one
// word's load rather than a vec4's: a CPU adapter loads per-lane storage a word at a time.
//#if BIAS
@group(0) @binding(5) var<storage, read> ws: array<u32>;
//#else
@group(0) @binding(4) var<storage, read> ws: array<u32>;
//#endif
fn w_scale_word(i: u32) -> u32 {
    return ws[i];
}
//#else
fn w_scale_word(i: u32) -> u32 {
    return w_word(i);
}
//#endif
// Scale d and min m (Q4_1; else 0) of block b.
fn w_head(b: u32) -> vec2<f32> {
//#if W_Q4_1
    return unpack2x16float(w_scale_word(p.w_scales + b));
//#else
    let h = unpack2x16float(w_scale_word(p.w_scales + (b >> 1u)));
    return vec2<f32>(select(h.x, h.y, (b & 1u) == 1u), 0.0);
//#endif
}
//#if W_Q6_K
fn w_at(i: u32) -> f32 {
    let b = i >> 8u;
    return q6k_at(b * 208u, i & 255u, w_head(b).x);
}
//#endif
//#if W_BLOCK32
// The v-th aligned four words of the quants plane.
fn w_qvec(v: u32) -> vec4<u32> {
//#if WV
    return wv[v];
//#else
    let a = 4u * v;
    return vec4<u32>(w_word(a), w_word(a + 1u), w_word(a + 2u), w_word(a + 3u));
//#endif
}
fn w_block(i: u32) -> WBlock {
    let b = i >> 5u;
    let h = w_head(b);
//#if W_Q8_0
    return WBlock(h.x, 0.0, w_qvec(2u * b), w_qvec(2u * b + 1u));
//#else
    return WBlock(h.x, h.y, w_qvec(b), vec4<u32>(0u));
//#endif
}
//#if W_Q8_0
fn w_at(i: u32) -> f32 {
    return w_head(i >> 5u).x * f32(bitcast<i32>(byte_at(i) << 24u) >> 24u);
}
// i a multiple of 4.
fn w_quad(i: u32) -> vec4<f32> {
    let q = w_word(i >> 2u);
    return w_head(i >> 5u).x * vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q << 24u, q << 16u, q << 8u, q)) >> vec4<u32>(24u));
}
//#else
// The 4-bit quant of element i: byte j % 16 of its block, low nibble for j < 16.
fn w_nibble(i: u32) -> f32 {
    let j = i & 31u;
    let q = byte_at(16u * (i >> 5u) + (j & 15u));
    return f32(select(q & 15u, q >> 4u, j >= 16u));
}
// i a multiple of 4: four nibbles of one quant word.
fn w_nibbles(i: u32) -> vec4<f32> {
    let j = i & 31u;
    return nibbles(w_word(4u * (i >> 5u) + ((j & 15u) >> 2u)), select(0u, 4u, j >= 16u));
}
//#if W_Q4_1
fn w_at(i: u32) -> f32 {
    let dm = w_head(i >> 5u);
    return fma(dm.x, w_nibble(i), dm.y);
}
fn w_quad(i: u32) -> vec4<f32> {
    let dm = w_head(i >> 5u);
    return fma(vec4<f32>(dm.x), w_nibbles(i), vec4<f32>(dm.y));
}
//#else
fn w_at(i: u32) -> f32 {
    return w_head(i >> 5u).x * (w_nibble(i) - 8.0);
}
fn w_quad(i: u32) -> vec4<f32> {
    return w_head(i >> 5u).x * (w_nibbles(i) - vec4<f32>(8.0));
}
//#endif
//#endif
//#endif
//#endif
