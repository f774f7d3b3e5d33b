// Mixture-of-experts routing, one invocation per token: softmax over the token's `experts` router
// logits, the top `k` probabilities (ties go to the lower expert id), divided by their sum when
// `norm` is set (Qwen's `norm_topk_prob`). Writes the chosen ids and weights in the order chosen
// (highest probability first). Each token reads only its own row, so its routing does not depend
// on the rest of the batch.
struct Params { tokens: u32, experts: u32, k: u32, logit_stride: u32, norm: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;

const MAX_K: u32 = 16u;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = (wid.x + wid.y * nwg.x) * 64u + lid.x;
    if (t >= p.tokens) { return; }
    let row = t * p.logit_stride;
    var mx = logits[row];
    for (var e = 1u; e < p.experts; e++) { mx = max(mx, logits[row + e]); }
    var sum = 0.0;
    for (var e = 0u; e < p.experts; e++) { sum = sum + exp(logits[row + e] - mx); }
    var chosen: array<u32, MAX_K>;
    var vals: array<f32, MAX_K>;
    var total = 0.0;
    for (var j = 0u; j < p.k; j++) {
        var best = 0xffffffffu;
        var bv = -1.0;
        for (var e = 0u; e < p.experts; e++) {
            var taken = false;
            for (var i = 0u; i < j; i++) { if (chosen[i] == e) { taken = true; } }
            let pe = exp(logits[row + e] - mx) / sum;
            if (!taken && pe > bv) { bv = pe; best = e; }
        }
        chosen[j] = best;
        vals[j] = bv;
        total = total + bv;
    }
    for (var j = 0u; j < p.k; j++) {
        var v = vals[j];
        if (p.norm != 0u) { v = v / total; }
        ids[t * p.k + j] = chosen[j];
        weights[t * p.k + j] = v;
    }
}
