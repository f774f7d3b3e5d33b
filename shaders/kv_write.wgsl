// Stores each token's key and value heads (from the fused qkv projection) into the KV cache at
// row base + position. The cache may be split in chunks: a dispatch writes the rows in
// [lo, hi) of the chunk bound, at row - lo.
struct Params {
    tokens: u32, kv_dim: u32, row_stride: u32, k_offset: u32,
    v_offset: u32, lo: u32, hi: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> tok: array<u32>;
@group(0) @binding(3) var<storage, read_write> kc: array<f32>;
@group(0) @binding(4) var<storage, read_write> vc: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = (wid.x + wid.y * nwg.x) * 64u + lid.x;
    if (g >= p.tokens * p.kv_dim) { return; }
    let e = g % p.kv_dim;
    let t = g / p.kv_dim;
    let row = tok[2u * t + 1u] + tok[2u * t];
    if (row < p.lo || row >= p.hi) { return; }
    kc[(row - p.lo) * p.kv_dim + e] = qkv[t * p.row_stride + p.k_offset + e];
    vc[(row - p.lo) * p.kv_dim + e] = qkv[t * p.row_stride + p.v_offset + e];
}
