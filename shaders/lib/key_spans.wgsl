// Snippet, not a kernel: prepended (src/kernels/mod.rs) to attention.wgsl, attention_lanes.wgsl
// and attention_combine.wgsl, after `const KS` (attention::KEY_SPAN, a multiple of KB).
//
// Keys come in spans of KS positions aligned to multiples of KS. Within a span the online softmax
// runs from a fresh state (m = -1e30, l = 0, acc = 0) over its key blocks, as each kernel's header
// says; the spans' states are then folded in ascending order onto an empty state, by these
// functions alone, and out = acc / l. So a GPU may give each span of a long context its own
// workgroup (a decode step: attention.wgsl with `Params::spans`, then attention_combine.wgsl)
// or walk the spans in one (prefill): the same numbers. Folding an empty span (m = -1e30, l = 0,
// acc = 0) changes no bit, and a context of one span gives that span's state unchanged.
// Only explicit fma and lone products: no multiply-add a driver could fuse one way in one kernel
// and another way in the other.

// The weights of the state so far (m) and of the next span's (ms) after folding.
fn span_scales(m: f32, ms: f32) -> vec2<f32> {
    let mx = max(m, ms);
    return vec2<f32>(exp(m - mx), exp(ms - mx));
}
fn span_sum(l: f32, ls: f32, c: vec2<f32>) -> f32 {
    return fma(ls, c.y, l * c.x);
}
fn span_acc(a: vec4<f32>, b: vec4<f32>, c: vec2<f32>) -> vec4<f32> {
    return fma(b, vec4<f32>(c.y), a * c.x);
}
// Folds the state (m, l) of a span onto the spans so far (*fm, *fl) and returns the weights by
// which the caller folds the accumulators: facc = span_acc(facc, acc, c).
fn span_fold(fm: ptr<function, f32>, fl: ptr<function, f32>, m: f32, l: f32) -> vec2<f32> {
    let c = span_scales(*fm, m);
    *fl = span_sum(*fl, l, c);
    *fm = max(*fm, m);
    return c;
}
