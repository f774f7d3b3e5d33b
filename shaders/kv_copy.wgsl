// Copies `rows` cached positions (keys and values) from row src to row dst (a shared context
// duplicated for each continuation; the ranges never overlap). Rows are relative to the chunk
// bound: the same chunk (kc/vc), or with `TWO` from chunk ks/vs into chunk kc/vc.
struct Params { rows: u32, kv_dim: u32, src: u32, dst: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> kc: array<f32>;
@group(0) @binding(2) var<storage, read_write> vc: array<f32>;
//#if TWO
@group(0) @binding(3) var<storage, read> ks: array<f32>;
@group(0) @binding(4) var<storage, read> vs: array<f32>;
//#endif

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = (wid.x + wid.y * nwg.x) * 64u + lid.x;
    if (g >= p.rows * p.kv_dim) { return; }
//#if TWO
    kc[p.dst * p.kv_dim + g] = ks[p.src * p.kv_dim + g];
    vc[p.dst * p.kv_dim + g] = vs[p.src * p.kv_dim + g];
//#else
    kc[p.dst * p.kv_dim + g] = kc[p.src * p.kv_dim + g];
    vc[p.dst * p.kv_dim + g] = vc[p.src * p.kv_dim + g];
//#endif
}
