// SwiGLU: out[t, i] = silu(gate[t, i]) * up[t, i], where the fused gate_up projection row holds
// gate in its first `inter` columns and up in the next `inter`.
struct Params { tokens: u32, inter: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gu: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = (wid.x + wid.y * nwg.x) * 64u + lid.x;
    if (g >= p.tokens * p.inter) { return; }
    let i = g % p.inter;
    let t = g / p.inter;
    let a = gu[t * 2u * p.inter + i];
    let u = gu[t * 2u * p.inter + p.inter + i];
    out[g] = a * (1.0 / (1.0 + exp(-a))) * u;
}
