// Decode path of matmul (same Params and bindings), for a few rows m: each invocation owns one
// weight row n and accumulates fma(x, w, acc) over k = 0, 1, 2, ... in order, exactly as the tiled
// kernel does, so decode and prefill give bit-identical results. Rows m are taken 4 at a time.
// x is read as vec4 (one load per 4 k): k, x_offset and x_stride are multiples of 4 here.
struct Params {
    m: u32, n: u32, k: u32, w_stride: u32,
    x_offset: u32, x_stride: u32, y_offset: u32, y_stride: u32,
    n_offset: u32, accumulate: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
//#if BIAS
@group(0) @binding(4) var<storage, read> bias: array<f32>;
//#endif

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = (wid.x + wid.y * nwg.x) * 64u + lid.x;
    if (n >= p.n) { return; }
    let wrow = n * p.w_stride;
    for (var m0 = 0u; m0 < p.m; m0 += 4u) {
        let rows = min(4u, p.m - m0);
        var acc = vec4<f32>(0.0);
        let xb = p.x_offset + m0 * p.x_stride;
        // Quads of k (one u32 of 4-bit weights, two of 16-bit ones), in order.
        let xq = xb >> 2u;
        let xs = p.x_stride >> 2u;
        for (var k = 0u; k < p.k; k += 4u) {
            let wv = w_quad(wrow + k);
            for (var j = 0u; j < rows; j++) {
                let xv = x[xq + j * xs + (k >> 2u)];
                acc[j] = fma(xv.w, wv.w, fma(xv.z, wv.z, fma(xv.y, wv.y, fma(xv.x, wv.x, acc[j]))));
            }
        }
        for (var j = 0u; j < rows; j++) {
            var v = acc[j];
//#if BIAS
            v = v + bias[p.n_offset + n];
//#endif
            let yi = p.y_offset + (m0 + j) * p.y_stride + p.n_offset + n;
            if (p.accumulate != 0u) { v = y[yi] + v; }
            y[yi] = v;
        }
    }
}
