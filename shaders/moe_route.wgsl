// Mixture-of-experts routing, one invocation per token. Scores: softmax over the token's
// `experts` router logits, or with SIGMOID (DeepSeek-V3) each logit's sigmoid. Choice values:
// the scores, plus with BIAS a per-expert correction bias (DeepSeek-V3's e_score_correction_bias,
// used for choosing only). With `groups` > 1 the experts form equal groups scored by their best
// choice value (`group_limited_greedy`) or, with `group_top2`, the sum of their two best
// (`noaux_tc`); only the `topk_groups` best groups are eligible (transformers masks the others to
// -inf for noaux_tc and to 0 for softmax scores, which are positive: the same choice). Then the
// top `k` eligible choice values (ties go to the lower expert or group id); their weights are the
// unbiased scores, divided by their sum when `norm` is set (plus 1e-20 with SIGMOID, as
// transformers), times `scale` (routed_scaling_factor). Writes ids and weights in the order
// chosen. Each token reads only its own row, so its routing does not depend on the batch.
struct Params {
    tokens: u32, experts: u32, k: u32, logit_stride: u32, norm: u32,
    groups: u32, topk_groups: u32, group_top2: u32, scale: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> weights: array<f32>;
//#if BIAS
@group(0) @binding(4) var<storage, read> bias: array<f32>;
//#endif

const MAX_K: u32 = 16u;
const MAX_GROUPS: u32 = 64u;
const NEG: f32 = -3.0e38;

fn score(row: u32, e: u32, mx: f32, sum: f32) -> f32 {
//#if SIGMOID
    return 1.0 / (1.0 + exp(-logits[row + e]));
//#else
    return exp(logits[row + e] - mx) / sum;
//#endif
}

fn choice(row: u32, e: u32, mx: f32, sum: f32) -> f32 {
//#if BIAS
    return score(row, e, mx, sum) + bias[e];
//#else
    return score(row, e, mx, sum);
//#endif
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = (wid.x + wid.y * nwg.x) * 64u + lid.x;
    if (t >= p.tokens) { return; }
    let row = t * p.logit_stride;
    var mx = 0.0;
    var sum = 1.0;
//#if !SIGMOID
    mx = logits[row];
    for (var e = 1u; e < p.experts; e++) { mx = max(mx, logits[row + e]); }
    sum = 0.0;
    for (var e = 0u; e < p.experts; e++) { sum = sum + exp(logits[row + e] - mx); }
//#endif
    // Eligible groups (all when ungrouped).
    var kept: array<bool, MAX_GROUPS>;
    let per = p.experts / p.groups;
    if (p.groups > 1u) {
        var gs: array<f32, MAX_GROUPS>;
        for (var g = 0u; g < p.groups; g++) {
            var b1 = NEG;
            var b2 = NEG;
            for (var i = 0u; i < per; i++) {
                let v = choice(row, g * per + i, mx, sum);
                if (v > b1) { b2 = b1; b1 = v; } else if (v > b2) { b2 = v; }
            }
            if (p.group_top2 != 0u) { gs[g] = b1 + b2; } else { gs[g] = b1; }
            kept[g] = false;
        }
        for (var j = 0u; j < p.topk_groups; j++) {
            var best = 0u;
            var bv = NEG;
            var found = false;
            for (var g = 0u; g < p.groups; g++) {
                if (!kept[g] && (!found || gs[g] > bv)) { bv = gs[g]; best = g; found = true; }
            }
            kept[best] = true;
        }
    } else {
        kept[0] = true;
    }
    var chosen: array<u32, MAX_K>;
    var vals: array<f32, MAX_K>;
    var total = 0.0;
    for (var j = 0u; j < p.k; j++) {
        var best = 0xffffffffu;
        var bv = NEG;
        var found = false;
        for (var e = 0u; e < p.experts; e++) {
            if (!kept[e / per]) { continue; }
            var taken = false;
            for (var i = 0u; i < j; i++) { if (chosen[i] == e) { taken = true; } }
            let ce = choice(row, e, mx, sum);
            if (!taken && (!found || ce > bv)) { bv = ce; best = e; found = true; }
        }
        chosen[j] = best;
        let w = score(row, best, mx, sum);
        vals[j] = w;
        total = total + w;
    }
//#if SIGMOID
    total = total + 1e-20;
//#endif
    for (var j = 0u; j < p.k; j++) {
        var v = vals[j];
        if (p.norm != 0u) { v = v / total; }
        ids[t * p.k + j] = chosen[j];
        weights[t * p.k + j] = v * p.scale;
    }
}
