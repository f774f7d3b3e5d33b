// In-place log-softmax of `rows` logits rows of `vocab` entries: (x - max) - log(sum(exp(x - max))),
// with the reductions of lib/row_lse.wgsl (prepended), shared with logprobs.wgsl. Used only when
// whole rows are asked for (`pingce logits --full-rows`).
struct Params { rows: u32, vocab: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

fn logit(i: u32) -> f32 {
    return x[i];
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) { return; }
    let t = lid.x;
    let base = r * p.vocab;
    let s = row_lse(base, p.vocab, t);
    for (var i = t; i < p.vocab; i += WG) { x[base + i] = (x[base + i] - s.mx) - s.lse; }
}
