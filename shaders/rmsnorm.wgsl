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

var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
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
    for (var i = t; i < p.dim; i += 64u) {
//#if INPLACE
        x[ob + i] = nw[i] * (x[ib + i] * inv);
//#else
        y[ob + i] = nw[i] * (x[ib + i] * inv);
//#endif
    }
}
