// Copies `rows` cached positions (keys and values) from row src to row dst of the same cache
// (a shared context duplicated for each continuation; the ranges never overlap).
struct Params { rows: u32, kv_dim: u32, src: u32, dst: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> kc: array<f32>;
@group(0) @binding(2) var<storage, read_write> vc: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = (wid.x + wid.y * nwg.x) * 64u + lid.x;
    if (g >= p.rows * p.kv_dim) { return; }
    kc[p.dst * p.kv_dim + g] = kc[p.src * p.kv_dim + g];
    vc[p.dst * p.kv_dim + g] = vc[p.src * p.kv_dim + g];
}
