// y[m, n_offset + n] (+)= sum_k x[m, k] * w[n, k] (+ bias[n_offset + n]) for a chunk of weight rows.
// Register-blocked: a 16x16 workgroup computes a 64x64 tile, 4x4 outputs per invocation, over
// k-tiles of 16. Every output accumulates fma(x, w, acc) over k = 0, 1, 2, ... in order, whatever
// the tile or the number of rows m, so a row's result does not depend on what else is in the batch,
// and equals bit for bit what the decode kernel (matvec.wgsl) computes.
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

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
// [BK][BM / 4] and [BK][BN / 4]: vec4 element (kk, i) holds rows (columns) 4i .. 4i + 3 at k0 + kk.
var<workgroup> xs: array<vec4<f32>, 256>;
var<workgroup> ws: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tid = lid.y * 16u + lid.x;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    // Tile loads: invocation tid fetches 4 consecutive k of row (tid / 4).
    let lr = tid / 4u;
    let lk = (tid % 4u) * 4u;
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        let kq = k0 + lk;
        let r = row0 + lr;
        let n = col0 + lr;
        var wq = vec4<f32>(0.0);
        if (n < p.n) {
            if (kq + 4u <= p.k && (p.w_stride & 3u) == 0u) {
                wq = w_quad(n * p.w_stride + kq);
            } else {
                for (var c = 0u; c < 4u; c++) {
                    if (kq + c < p.k) { wq[c] = w_at(n * p.w_stride + kq + c); }
                }
            }
        }
        var xq = vec4<f32>(0.0);
        if (r < p.m) {
            let xo = p.x_offset + r * p.x_stride + kq;
            if (kq + 4u <= p.k) {
                xq = vec4<f32>(x[xo], x[xo + 1u], x[xo + 2u], x[xo + 3u]);
            } else {
                for (var c = 0u; c < 4u; c++) {
                    if (kq + c < p.k) { xq[c] = x[xo + c]; }
                }
            }
        }
        let si = lk * 16u + lr / 4u;
        let sc = lr % 4u;
        xs[si][sc] = xq.x;
        xs[si + 16u][sc] = xq.y;
        xs[si + 32u][sc] = xq.z;
        xs[si + 48u][sc] = xq.w;
        ws[si][sc] = wq.x;
        ws[si + 16u][sc] = wq.y;
        ws[si + 32u][sc] = wq.z;
        ws[si + 48u][sc] = wq.w;
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let a = xs[kk * 16u + lid.y];
            let b = ws[kk * 16u + lid.x];
            acc0 = fma(vec4<f32>(a.x), b, acc0);
            acc1 = fma(vec4<f32>(a.y), b, acc1);
            acc2 = fma(vec4<f32>(a.z), b, acc2);
            acc3 = fma(vec4<f32>(a.w), b, acc3);
        }
        workgroupBarrier();
    }
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        if (r >= p.m) { continue; }
        for (var j = 0u; j < 4u; j++) {
            let n = col0 + lid.x * 4u + j;
            if (n >= p.n) { continue; }
            var v = accs[i][j];
//#if BIAS
            v = v + bias[p.n_offset + n];
//#endif
            let yi = p.y_offset + r * p.y_stride + p.n_offset + n;
            if (p.accumulate != 0u) { v = y[yi] + v; }
            y[yi] = v;
        }
    }
}
