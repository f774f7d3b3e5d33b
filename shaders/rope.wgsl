// Rotary position embedding, rotate-half form (transformers' apply_rotary_pos_emb), in place on
// `heads` consecutive heads of each token row. cos/sin come from a host-built table
// [max_pos][head_dim / 2] (cos first, sin at sin_offset) that already holds the rope scaling.
// KV (a KV cache in one chunk): also stores each token's keys (heads k_from .. heads, rotated)
// and values (kv_dim columns at v_offset) at cache row base + position, as kv_write.wgsl does:
// one dispatch instead of two, the same numbers.
struct Params {
    tokens: u32, heads: u32, head_dim: u32, row_stride: u32,
    offset: u32, sin_offset: u32, k_from: u32, v_offset: u32,
    kv_dim: u32, cache_rows: u32, pad0: u32, pad1: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
// Per token: [position, cache row of position 0].
@group(0) @binding(3) var<storage, read> tok: array<u32>;
//#if KV
@group(0) @binding(4) var<storage, read_write> kc: array<f32>;
@group(0) @binding(5) var<storage, read_write> vc: array<f32>;
//#endif

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let half = p.head_dim / 2u;
    let g = (wid.x + wid.y * nwg.x) * 64u + lid.x;
//#if KV
    // Heads past `heads` are the value heads, copied.
    let all = p.heads + p.kv_dim / p.head_dim;
//#else
    let all = p.heads;
//#endif
    if (g >= p.tokens * all * half) { return; }
    let i = g % half;
    let th = g / half;
    let h = th % all;
    let t = th / all;
    let pos = tok[2u * t];
//#if KV
    let row = tok[2u * t + 1u] + pos;
    let cached = row < p.cache_rows;
    let cb = row * p.kv_dim;
    if (h >= p.heads) {
        let vb = t * p.row_stride + p.v_offset + (h - p.heads) * p.head_dim;
        if (cached) {
            vc[cb + (h - p.heads) * p.head_dim + i] = x[vb + i];
            vc[cb + (h - p.heads) * p.head_dim + i + half] = x[vb + i + half];
        }
        return;
    }
//#endif
    let c = table[pos * half + i];
    let s = table[p.sin_offset + pos * half + i];
    let b = p.offset + t * p.row_stride + h * p.head_dim;
    let x1 = x[b + i];
    let x2 = x[b + i + half];
    let y1 = x1 * c - x2 * s;
    let y2 = x2 * c + x1 * s;
    x[b + i] = y1;
    x[b + i + half] = y2;
//#if KV
    if (h >= p.k_from && cached) {
        kc[cb + (h - p.k_from) * p.head_dim + i] = y1;
        kc[cb + (h - p.k_from) * p.head_dim + i + half] = y2;
    }
//#endif
}
