// Decode path of matmul (same Params and bindings): one workgroup per weight row n, 64
// invocations split k (invocation t sums k = t, t+64, ... in order), then a fixed tree reduction.
// Rows m are taken 4 at a time, so a row's result does not depend on how many rows there are.
struct Params {
    m: u32, n: u32, k: u32, w_stride: u32,
    x_offset: u32, x_stride: u32, y_offset: u32, y_stride: u32,
    n_offset: u32, accumulate: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
//#if BIAS
@group(0) @binding(4) var<storage, read> bias: array<f32>;
//#endif

var<workgroup> red: array<vec4<f32>, 64>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = wid.x + wid.y * nwg.x;
    if (n >= p.n) { return; }
    let t = lid.x;
    let wrow = n * p.w_stride;
    for (var m0 = 0u; m0 < p.m; m0 += 4u) {
        var acc = vec4<f32>(0.0);
        let rows = min(4u, p.m - m0);
        for (var k = t; k < p.k; k += 64u) {
            let wv = w_at(wrow + k);
            for (var j = 0u; j < rows; j++) {
                acc[j] = acc[j] + wv * x[p.x_offset + (m0 + j) * p.x_stride + k];
            }
        }
        red[t] = acc;
        workgroupBarrier();
        for (var s = 32u; s > 0u; s >>= 1u) {
            if (t < s) { red[t] = red[t] + red[t + s]; }
            workgroupBarrier();
        }
        if (t < rows) {
            var v = red[0][t];
//#if BIAS
            v = v + bias[p.n_offset + n];
//#endif
            let yi = p.y_offset + (m0 + t) * p.y_stride + p.n_offset + n;
            if (p.accumulate != 0u) { v = y[yi] + v; }
            y[yi] = v;
        }
        workgroupBarrier();
    }
}
