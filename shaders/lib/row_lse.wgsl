// Snippet, not a kernel: prepended (src/kernels/mod.rs) to logprobs.wgsl and log_softmax.wgsl,
// so that both reduce a logits row in exactly the same way and their log-probs agree bit for
// bit. The kernel runs one row per workgroup of WG (= 256) invocations and defines
// `fn logit(i: u32) -> f32`, element i of its logits buffer.

const WG: u32 = 256u;
// Scratch of the reductions; the kernel may reuse it (after a barrier) once row_lse returns.
var<workgroup> red_v: array<f32, 256>;
var<workgroup> red_i: array<u32, 256>;

// (value, index) ordering: larger value first, then smaller index.
fn better(v: f32, i: u32, w: f32, j: u32) -> bool {
    return v > w || (v == w && i < j);
}

struct RowLse {
    mx: f32,
    // First index of the max (as torch.argmax).
    argmax: u32,
    // log(sum(exp(x - mx))), so that log_softmax(x) = (x - mx) - lse.
    lse: f32,
}

// Reduces the `vocab` logits from `base`; called by every invocation t of the workgroup. Each
// invocation walks i = t, t + WG, ... in order, then a fixed halving tree combines the
// invocations, so the result depends only on the row.
fn row_lse(base: u32, vocab: u32, t: u32) -> RowLse {
    // Max and argmax.
    var bv = -3.0e38;
    var bi = 0xffffffffu;
    for (var i = t; i < vocab; i += WG) {
        let v = logit(base + i);
        if (better(v, i, bv, bi)) { bv = v; bi = i; }
    }
    red_v[t] = bv;
    red_i[t] = bi;
    workgroupBarrier();
    for (var h = WG / 2u; h > 0u; h >>= 1u) {
        if (t < h && better(red_v[t + h], red_i[t + h], red_v[t], red_i[t])) { red_v[t] = red_v[t + h]; red_i[t] = red_i[t + h]; }
        workgroupBarrier();
    }
    let mx = red_v[0];
    let am = red_i[0];
    workgroupBarrier();
    // Sum of exp(x - max), fixed order.
    var sum = 0.0;
    for (var i = t; i < vocab; i += WG) { sum = sum + exp(logit(base + i) - mx); }
    red_v[t] = sum;
    workgroupBarrier();
    for (var h = WG / 2u; h > 0u; h >>= 1u) {
        if (t < h) { red_v[t] = red_v[t] + red_v[t + h]; }
        workgroupBarrier();
    }
    return RowLse(mx, am, log(red_v[0]));
}
