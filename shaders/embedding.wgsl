// Embedding gather: out[t, :] = table[ids[t], :] for the ids inside this chunk of table rows.
struct Params { tokens: u32, dim: u32, w_stride: u32, row0: u32, rows: u32, w_scales: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = (wid.x + wid.y * nwg.x) * 64u + lid.x;
    if (g >= p.tokens * p.dim) { return; }
    let e = g % p.dim;
    let t = g / p.dim;
    let id = ids[t];
    if (id < p.row0 || id >= p.row0 + p.rows) { return; }
    out[g] = w_at((id - p.row0) * p.w_stride + e);
}
