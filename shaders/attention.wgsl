// Causal attention with grouped-query heads over the KV cache. One workgroup per (token, query
// head): keys 0..=pos of the token's own sequence (or the last `window` of them, Mistral's sliding
// window), taken in blocks of 64 from the first key with an online softmax. The order of every
// reduction depends only on the token's position, never on the batch.
struct Params {
    tokens: u32, heads_q: u32, heads_kv: u32, head_dim: u32,
    q_stride: u32, q_offset: u32, out_stride: u32, window: u32,
    scale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<f32>;
@group(0) @binding(3) var<storage, read> vc: array<f32>;
@group(0) @binding(4) var<storage, read> tok: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const NEG: f32 = -1e30;
var<workgroup> qs: array<f32, 256>;
var<workgroup> ps: array<f32, 64>;
var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.tokens * p.heads_q) { return; }
    let tid = lid.x;
    let t = g / p.heads_q;
    let h = g % p.heads_q;
    let kvh = h / (p.heads_q / p.heads_kv);
    let d = p.head_dim;
    let kv_dim = p.heads_kv * d;
    let pos = tok[2u * t];
    let base = tok[2u * t + 1u];
    var start = 0u;
    if (p.window > 0u && pos + 1u > p.window) { start = pos + 1u - p.window; }
    for (var i = tid; i < d; i += 64u) { qs[i] = q[p.q_offset + t * p.q_stride + h * d + i]; }
    workgroupBarrier();
    var m = NEG;
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    for (var kb = start; kb <= pos; kb += 64u) {
        let j = kb + tid;
        var s = NEG;
        if (j <= pos) {
            let kbase = (base + j) * kv_dim + kvh * d;
            var dot = 0.0;
            for (var i = 0u; i < d; i++) { dot = dot + qs[i] * kc[kbase + i]; }
            s = dot * p.scale;
        }
        red[tid] = s;
        workgroupBarrier();
        for (var w = 32u; w > 0u; w >>= 1u) {
            if (tid < w) { red[tid] = max(red[tid], red[tid + w]); }
            workgroupBarrier();
        }
        let m_new = max(m, red[0]);
        workgroupBarrier();
        let pj = exp(s - m_new);
        ps[tid] = pj;
        red[tid] = pj;
        workgroupBarrier();
        for (var w = 32u; w > 0u; w >>= 1u) {
            if (tid < w) { red[tid] = red[tid] + red[tid + w]; }
            workgroupBarrier();
        }
        let corr = exp(m - m_new);
        l = l * corr + red[0];
        let nk = min(64u, pos + 1u - kb);
        for (var c = 0u; c < 4u; c++) {
            let e = tid + c * 64u;
            if (e < d) {
                var a = 0.0;
                for (var jj = 0u; jj < nk; jj++) {
                    a = a + ps[jj] * vc[(base + kb + jj) * kv_dim + kvh * d + e];
                }
                acc[c] = acc[c] * corr + a;
            }
        }
        m = m_new;
        workgroupBarrier();
    }
    for (var c = 0u; c < 4u; c++) {
        let e = tid + c * 64u;
        if (e < d) { out[t * p.out_stride + h * d + e] = acc[c] / l; }
    }
}
