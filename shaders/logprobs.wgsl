// Last step of scoring, per logits row: log-softmax, the target token's log-prob, the argmax
// (first index among equals, as torch.argmax) and the top-k ids and log-probs (k <= 32). The
// max, argmax and log-sum-exp come from lib/row_lse.wgsl (prepended), shared with log_softmax.wgsl.
// Output row (OUT_STRIDE u32): [target logprob, argmax id, argmax logprob, 0, ids[32], logprobs[32]].
struct Params { rows: u32, vocab: u32, topk: u32, row0: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

const OUT_STRIDE: u32 = 68u;
const NO_TARGET: u32 = 0xffffffffu;

fn logit(i: u32) -> f32 {
    return logits[i];
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) { return; }
    let t = lid.x;
    let base = r * p.vocab;
    let st = row_lse(base, p.vocab, t);
    let mx = st.mx;
    let am = st.argmax;
    let lse = st.lse;
    let o = (p.row0 + r) * OUT_STRIDE;
    if (t == 0u) {
        let tg = targets[p.row0 + r];
        var lp = 0.0;
        if (tg != NO_TARGET) { lp = (logits[base + tg] - mx) - lse; }
        out[o] = bitcast<u32>(lp);
        out[o + 1u] = am;
        out[o + 2u] = bitcast<u32>((mx - mx) - lse);
        out[o + 3u] = 0u;
    }
    if (p.topk == 0u) { return; }
    // Top-k: each invocation keeps its own sorted top-k, then k rounds of a workgroup argmax
    // over the invocations' heads.
    var tv: array<f32, 32>;
    var ti: array<u32, 32>;
    for (var j = 0u; j < 32u; j++) { tv[j] = -3.0e38; ti[j] = 0xffffffffu; }
    for (var i = t; i < p.vocab; i += WG) {
        let v = logits[base + i];
        if (better(v, i, tv[p.topk - 1u], ti[p.topk - 1u])) {
            var j = p.topk - 1u;
            while (j > 0u && better(v, i, tv[j - 1u], ti[j - 1u])) {
                tv[j] = tv[j - 1u];
                ti[j] = ti[j - 1u];
                j--;
            }
            tv[j] = v;
            ti[j] = i;
        }
    }
    var head = 0u;
    for (var round = 0u; round < p.topk; round++) {
        workgroupBarrier();
        red_v[t] = select(-3.0e38, tv[min(head, 31u)], head < p.topk);
        red_i[t] = select(0xffffffffu, ti[min(head, 31u)], head < p.topk);
        workgroupBarrier();
        for (var h = WG / 2u; h > 0u; h >>= 1u) {
            if (t < h && better(red_v[t + h], red_i[t + h], red_v[t], red_i[t])) { red_v[t] = red_v[t + h]; red_i[t] = red_i[t + h]; }
            workgroupBarrier();
        }
        let wi = red_i[0];
        let wv = red_v[0];
        if (t == 0u) {
            out[o + 4u + round] = wi;
            out[o + 36u + round] = bitcast<u32>((wv - mx) - lse);
        }
        if (head < p.topk && ti[min(head, 31u)] == wi) { head++; }
    }
}
