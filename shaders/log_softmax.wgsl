// In-place log-softmax of `rows` logits rows of `vocab` entries: x - max - log(sum(exp(x - max))),
// with the same fixed reductions as logprobs.wgsl. Used only when whole rows are asked for
// (`pingce logits --full-rows`).
struct Params { rows: u32, vocab: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

const WG: u32 = 256u;
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) { return; }
    let t = lid.x;
    let base = r * p.vocab;
    var m = -3.0e38;
    for (var i = t; i < p.vocab; i += WG) { m = max(m, x[base + i]); }
    red[t] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) { red[t] = max(red[t], red[t + s]); }
        workgroupBarrier();
    }
    let mx = red[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var i = t; i < p.vocab; i += WG) { sum = sum + exp(x[base + i] - mx); }
    red[t] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) { red[t] = red[t] + red[t + s]; }
        workgroupBarrier();
    }
    let lse = log(red[0]);
    for (var i = t; i < p.vocab; i += WG) { x[base + i] = (x[base + i] - mx) - lse; }
}
