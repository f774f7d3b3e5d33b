// RMSNorm over rows of `dim` elements: y = w * (x * 1/sqrt(mean(x^2) + eps)), as transformers'
// LlamaRMSNorm. A row r lives at offset + (r / per) * row_stride + (r % per) * dim, so the same
// kernel normalises whole hidden rows (per = 1) or each head of a q/k projection (per = heads).
// INPLACE: rewrites the rows where they are. GATHER: input rows come from an index list.
struct Params {
    rows: u32, dim: u32, per: u32, eps: f32,
    in_offset: u32, in_stride: u32, out_offset: u32, out_stride: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
//#if INPLACE
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
//#else
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
//#endif
@group(0) @binding(2) var<storage, read> nw: array<f32>;
//#if GATHER
@group(0) @binding(4) var<storage, read> idx: array<u32>;
//#endif

// The sum of squares is 64 partial sums (partial t: elements t, t + 64, ... in order) added in a
// tree (t += t + 32 for t < 32, then 16, 8, 4, 2, 1). X_SUBGROUP (CPU adapters): one subgroup of 8
// lanes per row computes the same sums in the same order without barriers, which a software
// adapter runs as coroutine switches: lane l holds partials l + 8j (j < 8) and adds the first
// three levels in its registers, the last three across lanes by shuffles. The same bits.
//#if X_SUBGROUP
const WG: u32 = 8u;
//#else
const WG: u32 = 64u;
var<workgroup> red: array<f32, 64>;
//#endif

//#if X_SUBGROUP
// x[ib + i]², or 0 past the row (adding 0 to a partial sum of squares leaves it as it is).
fn sq(ib: u32, i: u32) -> f32 {
    if (i >= p.dim) { return 0.0; }
    let v = x[ib + i];
    return v * v;
}
//#endif

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) { return; }
    let t = lid.x;
//#if GATHER
    let src = idx[r];
//#else
    let src = r;
//#endif
    let ib = p.in_offset + (src / p.per) * p.in_stride + (src % p.per) * p.dim;
    let ob = p.out_offset + (r / p.per) * p.out_stride + (r % p.per) * p.dim;
//#if X_SUBGROUP
    var s0 = 0.0;
    var s1 = 0.0;
    var s2 = 0.0;
    var s3 = 0.0;
    var s4 = 0.0;
    var s5 = 0.0;
    var s6 = 0.0;
    var s7 = 0.0;
    for (var i = t; i < p.dim; i += 64u) {
        s0 = s0 + sq(ib, i);
        s1 = s1 + sq(ib, i + 8u);
        s2 = s2 + sq(ib, i + 16u);
        s3 = s3 + sq(ib, i + 24u);
        s4 = s4 + sq(ib, i + 32u);
        s5 = s5 + sq(ib, i + 40u);
        s6 = s6 + sq(ib, i + 48u);
        s7 = s7 + sq(ib, i + 56u);
    }
    s0 = s0 + s4;
    s1 = s1 + s5;
    s2 = s2 + s6;
    s3 = s3 + s7;
    s0 = s0 + s2;
    s1 = s1 + s3;
    s0 = s0 + s1;
    s0 = s0 + subgroupShuffleDown(s0, 4u);
    s0 = s0 + subgroupShuffleDown(s0, 2u);
    s0 = s0 + subgroupShuffleDown(s0, 1u);
    let inv = 1.0 / sqrt(subgroupBroadcast(s0, 0u) / f32(p.dim) + p.eps);
//#else
    var s = 0.0;
    for (var i = t; i < p.dim; i += 64u) {
        let v = x[ib + i];
        s = s + v * v;
    }
    red[t] = s;
    workgroupBarrier();
    for (var h = 32u; h > 0u; h >>= 1u) {
        if (t < h) { red[t] = red[t] + red[t + h]; }
        workgroupBarrier();
    }
    let inv = 1.0 / sqrt(red[0] / f32(p.dim) + p.eps);
//#endif
    for (var i = t; i < p.dim; i += WG) {
//#if INPLACE
        x[ob + i] = nw[i] * (x[ib + i] * inv);
//#else
        y[ob + i] = nw[i] * (x[ib + i] * inv);
//#endif
    }
}
