// Causal attention with grouped-query heads over the KV cache. Each invocation owns one
// (query head, token): it walks the keys of the token's own sequence from the first allowed
// position (0, or pos + 1 - window with Mistral's sliding window) to its own position, one at a
// time, with an online softmax. Every sum is taken in key order and depends only on the token's
// position, never on the batch; no barriers and no shared memory. Neighbouring invocations are
// neighbouring tokens of one head, so they read the same cached keys. Specialised for the head
// size: `const D4: u32` (head_dim / 4) is prepended, and rows are read as vec4.
struct Params {
    tokens: u32, heads_q: u32, heads_kv: u32, head_dim: u32,
    q_stride: u32, q_offset: u32, out_stride: u32, window: u32,
    scale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> kc: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> vc: array<vec4<f32>>;
// Per token: [position, cache row of position 0].
@group(0) @binding(4) var<storage, read> tok: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = (wid.x + wid.y * nwg.x) * 64u + lid.x;
    if (g >= p.tokens * p.heads_q) { return; }
    let h = g / p.tokens;
    let t = g % p.tokens;
    let kvh = h / (p.heads_q / p.heads_kv);
    let kv4 = p.heads_kv * D4;
    let pos = tok[2u * t];
    let base = tok[2u * t + 1u];
    var start = 0u;
    if (p.window > 0u && pos + 1u > p.window) { start = pos + 1u - p.window; }
    var qv: array<vec4<f32>, D4>;
    var acc: array<vec4<f32>, D4>;
    let qb = (p.q_offset + t * p.q_stride) / 4u + h * D4;
    for (var i = 0u; i < D4; i++) {
        qv[i] = q[qb + i] * p.scale;
        acc[i] = vec4<f32>(0.0);
    }
    var m = -1e30;
    var l = 0.0;
    for (var j = start; j <= pos; j++) {
        let kb = (base + j) * kv4 + kvh * D4;
        var d4 = vec4<f32>(0.0);
        for (var i = 0u; i < D4; i++) { d4 = fma(qv[i], kc[kb + i], d4); }
        let s = (d4.x + d4.y) + (d4.z + d4.w);
        if (s > m) {
            let corr = exp(m - s);
            l = l * corr;
            for (var i = 0u; i < D4; i++) { acc[i] = acc[i] * corr; }
            m = s;
        }
        let e = exp(s - m);
        l = l + e;
        for (var i = 0u; i < D4; i++) { acc[i] = fma(vec4<f32>(e), vc[kb + i], acc[i]); }
    }
    let ob = (t * p.out_stride) / 4u + h * D4;
    for (var i = 0u; i < D4; i++) { out[ob + i] = acc[i] / l; }
}
