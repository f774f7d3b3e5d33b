// Multi-head latent attention (DeepSeek-V2/V3): builds each token's per-head query, key and value
// rows for the plain attention kernel, heads padded with zeros to `d` elements:
//   Q[h] = [q_nope, rope(q_pe), 0...] * q_scale     (q rows: `heads` heads of nope + rope)
//   K[h] = [k_nope[h], rope(k_pe), 0...]            (k_nope / v: kv_b_proj's rows, per head
//   V[h] = [v[h], 0...]                              nope + vhd; k_pe shared by every head)
// into `out` rows [Q heads | K heads | V heads] (`out_stride` apart). RoPE uses the host table
// [max_pos][rope / 2] (cos, then sin at sin_offset) at the token's position, on pairs
// (x[2i], x[2i+1]) written in place (LAYOUT 0, DeepSeek-V2) or de-interleaved to halves (LAYOUT 1,
// DeepSeek-V3's rope_interleave), or on (x[i], x[i + rope/2]) (LAYOUT 2, rotate-half). One
// invocation per (token, head, element): nothing depends on other tokens.
struct Params {
    tokens: u32, heads: u32, d: u32, nope: u32,
    rope: u32, vhd: u32, q_stride: u32, q_offset: u32,
    kv_stride: u32, pe_stride: u32, pe_offset: u32, out_stride: u32,
    rope_mode: u32, sin_offset: u32, q_scale: f32, _pad: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kv: array<f32>;
@group(0) @binding(3) var<storage, read> pe: array<f32>;
@group(0) @binding(4) var<storage, read> table: array<f32>;
// Per token: [position, cache row of position 0].
@group(0) @binding(5) var<storage, read> tok: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

// Element r of the rotated rope part whose unrotated values start at x_base in buffer `which`
// (0: q, 1: pe).
fn rot(which: u32, x_base: u32, r: u32, pos: u32) -> f32 {
    let half = p.rope / 2u;
    var i: u32;
    var first: bool;
    var a: u32;
    var b: u32;
    if (p.rope_mode == 0u) {
        i = r / 2u; first = (r % 2u) == 0u; a = 2u * i; b = 2u * i + 1u;
    } else if (p.rope_mode == 1u) {
        i = r % half; first = r < half; a = 2u * i; b = 2u * i + 1u;
    } else {
        i = r % half; first = r < half; a = i; b = i + half;
    }
    var x1: f32;
    var x2: f32;
    if (which == 0u) { x1 = q[x_base + a]; x2 = q[x_base + b]; } else { x1 = pe[x_base + a]; x2 = pe[x_base + b]; }
    let c = table[pos * half + i];
    let s = table[p.sin_offset + pos * half + i];
    if (first) { return x1 * c - x2 * s; }
    return x2 * c + x1 * s;
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = (wid.x + wid.y * nwg.x) * 64u + lid.x;
    if (g >= p.tokens * p.heads * p.d) { return; }
    let j = g % p.d;
    let h = (g / p.d) % p.heads;
    let t = g / (p.d * p.heads);
    let pos = tok[2u * t];
    let qk = p.nope + p.rope;
    let qb = p.q_offset + t * p.q_stride + h * qk;
    let kvb = t * p.kv_stride + h * (p.nope + p.vhd);
    var qv = 0.0;
    var kv_k = 0.0;
    var kv_v = 0.0;
    if (j < p.nope) {
        qv = q[qb + j];
        kv_k = kv[kvb + j];
    } else if (j < qk) {
        qv = rot(0u, qb + p.nope, j - p.nope, pos);
        kv_k = rot(1u, p.pe_offset + t * p.pe_stride, j - p.nope, pos);
    }
    if (j < p.vhd) { kv_v = kv[kvb + p.nope + j]; }
    let hd = p.heads * p.d;
    let ob = t * p.out_stride + h * p.d + j;
    out[ob] = qv * p.q_scale;
    out[ob + hd] = kv_k;
    out[ob + 2u * hd] = kv_v;
}
