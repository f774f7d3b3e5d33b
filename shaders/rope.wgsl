// Rotary position embedding, rotate-half form (transformers' apply_rotary_pos_emb), in place on
// `heads` consecutive heads of each token row. cos/sin come from a host-built table
// [max_pos][head_dim / 2] (cos first, sin at sin_offset) that already holds the rope scaling.
struct Params {
    tokens: u32, heads: u32, head_dim: u32, row_stride: u32,
    offset: u32, sin_offset: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
// Per token: [position, cache row of position 0].
@group(0) @binding(3) var<storage, read> tok: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let half = p.head_dim / 2u;
    let g = (wid.x + wid.y * nwg.x) * 64u + lid.x;
    if (g >= p.tokens * p.heads * half) { return; }
    let i = g % half;
    let th = g / half;
    let h = th % p.heads;
    let t = th / p.heads;
    let pos = tok[2u * t];
    let c = table[pos * half + i];
    let s = table[p.sin_offset + pos * half + i];
    let b = p.offset + t * p.row_stride + h * p.head_dim;
    let x1 = x[b + i];
    let x2 = x[b + i + half];
    x[b + i] = x1 * c - x2 * s;
    x[b + i + half] = x2 * c + x1 * s;
}
