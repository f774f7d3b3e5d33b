// y[m, n_offset + n] (+)= sum_k x[m, k] * w[n, k] (+ bias[n_offset + n]) for a chunk of weight rows.
// Register-blocked: a 16x16 workgroup computes a 128x128 tile, 8x8 outputs per invocation, over
// k-tiles of 16. Every output accumulates fma(x, w, acc) over k = 0, 1, 2, ... in order, whatever
// the tile or the number of rows m, so a row's result does not depend on what else is in the batch,
// and equals bit for bit what the decode kernel (matvec.wgsl) computes.
// SPLITK (GPUs): the same order in its split-K form, which lets the decode kernel spread one
// output's k over many invocations: k in segments of KSEG (the last one shorter), each segment one
// fma chain from 0 over its k in order, and the output the segments' sums added in segment order
// onto 0. Here a segment is KSEG / BK consecutive k-tiles, summed into `part` and added on at its end.
struct Params {
    m: u32, n: u32, k: u32, w_stride: u32,
    x_offset: u32, x_stride: u32, y_offset: u32, y_stride: u32,
    n_offset: u32, accumulate: u32, w_scales: u32, eps: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
//#if BIAS
@group(0) @binding(4) var<storage, read> bias: array<f32>;
//#endif

const BM: u32 = 128u;
const BN: u32 = 128u;
const BK: u32 = 16u;
//#if SPLITK
// KSEG, the split-K segment (`const KSEG` prepended: linear::SPLIT_K_SEGMENT), is a multiple of BK,
// so segments end with a k-tile.
//#endif
// [BK][BM / 4] and [BK][BN / 4]: vec4 element (kk, i) holds rows (columns) 4i .. 4i + 3 at k0 + kk.
var<workgroup> xs: array<vec4<f32>, 512>;
var<workgroup> ws: array<vec4<f32>, 512>;

// Loads 4 consecutive k (from kq) of x row r, zero outside the matrix.
fn load_x(r: u32, kq: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (r < p.m) {
        let o = p.x_offset + r * p.x_stride + kq;
        if (kq + 4u <= p.k) {
            v = vec4<f32>(x[o], x[o + 1u], x[o + 2u], x[o + 3u]);
        } else {
            for (var c = 0u; c < 4u; c++) {
                if (kq + c < p.k) { v[c] = x[o + c]; }
            }
        }
    }
    return v;
}

// Loads 4 consecutive k (from kq) of weight row n, zero outside the matrix.
fn load_w(n: u32, kq: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (n < p.n) {
        if (kq + 4u <= p.k && (p.w_stride & 3u) == 0u) {
            v = w_quad(n * p.w_stride + kq);
        } else {
            for (var c = 0u; c < 4u; c++) {
                if (kq + c < p.k) { v[c] = w_at(n * p.w_stride + kq + c); }
            }
        }
    }
    return v;
}

// Stores 4 k-consecutive values of row (column) lr into a transposed tile.
fn put_x(lr: u32, lk: u32, v: vec4<f32>) {
    let si = lk * 32u + lr / 4u;
    let sc = lr % 4u;
    xs[si][sc] = v.x;
    xs[si + 32u][sc] = v.y;
    xs[si + 64u][sc] = v.z;
    xs[si + 96u][sc] = v.w;
}
fn put_w(lr: u32, lk: u32, v: vec4<f32>) {
    let si = lk * 32u + lr / 4u;
    let sc = lr % 4u;
    ws[si][sc] = v.x;
    ws[si + 32u][sc] = v.y;
    ws[si + 64u][sc] = v.z;
    ws[si + 96u][sc] = v.w;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tid = lid.y * 16u + lid.x;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    // acc[i][h]: row 8 * ty + i, columns 4 * tx + 64 * h .. + 3.
    var acc: array<array<vec4<f32>, 2>, 8>;
    for (var i = 0u; i < 8u; i++) { acc[i][0] = vec4<f32>(0.0); acc[i][1] = vec4<f32>(0.0); }
//#if SPLITK
    var part: array<array<vec4<f32>, 2>, 8>;
    for (var i = 0u; i < 8u; i++) { part[i][0] = vec4<f32>(0.0); part[i][1] = vec4<f32>(0.0); }
//#endif
    // Tile loads: invocation tid fetches 4 consecutive k of rows (tid / 4) and (tid / 4) + 64.
    let lr = tid / 4u;
    let lk = (tid % 4u) * 4u;
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        let kq = k0 + lk;
        put_x(lr, lk, load_x(row0 + lr, kq));
        put_x(lr + 64u, lk, load_x(row0 + lr + 64u, kq));
        put_w(lr, lk, load_w(col0 + lr, kq));
        put_w(lr + 64u, lk, load_w(col0 + lr + 64u, kq));
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = xs[kk * 32u + lid.y * 2u];
            let a1 = xs[kk * 32u + lid.y * 2u + 1u];
            let b0 = ws[kk * 32u + lid.x];
            let b1 = ws[kk * 32u + lid.x + 16u];
            let a = array<f32, 8>(a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w);
            for (var i = 0u; i < 8u; i++) {
//#if SPLITK
                part[i][0] = fma(vec4<f32>(a[i]), b0, part[i][0]);
                part[i][1] = fma(vec4<f32>(a[i]), b1, part[i][1]);
//#else
                acc[i][0] = fma(vec4<f32>(a[i]), b0, acc[i][0]);
                acc[i][1] = fma(vec4<f32>(a[i]), b1, acc[i][1]);
//#endif
            }
        }
//#if SPLITK
        // A segment ends: its sums onto the total (the zero padding past k adds nothing: a chain
        // from +0 never holds -0).
        if ((k0 + BK) % KSEG == 0u || k0 + BK >= p.k) {
            for (var i = 0u; i < 8u; i++) {
                acc[i][0] = acc[i][0] + part[i][0];
                acc[i][1] = acc[i][1] + part[i][1];
                part[i][0] = vec4<f32>(0.0);
                part[i][1] = vec4<f32>(0.0);
            }
        }
//#endif
        workgroupBarrier();
    }
    for (var i = 0u; i < 8u; i++) {
        let r = row0 + lid.y * 8u + i;
        if (r >= p.m) { continue; }
        for (var h = 0u; h < 2u; h++) {
            for (var j = 0u; j < 4u; j++) {
                let n = col0 + lid.x * 4u + 64u * h + j;
                if (n >= p.n) { continue; }
                var v = acc[i][h][j];
//#if BIAS
                v = v + bias[p.n_offset + n];
//#endif
                let yi = p.y_offset + r * p.y_stride + p.n_offset + n;
                if (p.accumulate != 0u) { v = y[yi] + v; }
                y[yi] = v;
            }
        }
    }
}
