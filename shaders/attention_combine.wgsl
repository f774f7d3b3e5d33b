// The spans of a decode step's long contexts folded (see shaders/lib/key_spans.wgsl): attention.wgsl
// with `Params::spans` = S wrote, for each (token t, query head h, span s), the state of the
// span's online softmax to part[((t * heads_q + h) * S + s) * (D4 + 1) ..]: acc (D4 vec4), then
// (m, l, 0, 0). Here one invocation per output vec4 folds s = 0 .. S - 1 in order onto the empty
// state and writes acc / l, the numbers attention.wgsl gives walking the spans itself.
// `const D4` and `const KS` are prepended.
struct Params { tokens: u32, heads_q: u32, spans: u32, out_stride: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let gi = (wid.x + wid.y * nwg.x) * 64u + li;
    if (gi >= p.tokens * p.heads_q * D4) { return; }
    let th = gi / D4;
    let i = gi % D4;
    var m = -1e30;
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    for (var s = 0u; s < p.spans; s++) {
        let r = (th * p.spans + s) * (D4 + 1u);
        let ml = part[r + D4];
        let c = span_fold(&m, &l, ml.x, ml.y);
        acc = span_acc(acc, part[r + i], c);
    }
    let t = th / p.heads_q;
    let h = th % p.heads_q;
    out[(t * p.out_stride) / 4u + h * D4 + i] = acc / l;
}
