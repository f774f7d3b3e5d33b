// Multi-head latent attention: drops the zero padding of each head of the attention output,
// out[t, h * vhd + j] = att[t, h * d + j] for j < vhd, so o_proj reads `heads * vhd` columns.
struct Params { tokens: u32, heads: u32, d: u32, vhd: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> att: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = (wid.x + wid.y * nwg.x) * 64u + lid.x;
    if (g >= p.tokens * p.heads * p.vhd) { return; }
    let j = g % p.vhd;
    let th = g / p.vhd;
    out[g] = att[th * p.d + j];
}
