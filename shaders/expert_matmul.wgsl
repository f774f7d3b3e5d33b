// The expert matmul of a mixture-of-experts layer: for each expert e of a chunk of stacked
// expert matrices (z of the grid: e = e0 + wid.z), y[list row] = x[list row] · w_eᵀ over the
// counts[e] rows of e's token list (lists[e * cap + r] holds an entry; its x row is entry / x_div,
// its y row entry / y_div). Each expert's weights are read once per 128 of its rows, not once
// per token. The tile loop is matmul.wgsl's: every output accumulates fma(x, w, acc) over
// k = 0, 1, 2, ... in order, so a row's result depends only on that row and the weights.
// SPLITK (GPUs): the same order in its split-K form, as matmul.wgsl's SPLITK computes it.
struct Params {
    n: u32, k: u32, w_stride: u32, cap: u32,
    x_stride: u32, x_div: u32, y_stride: u32, y_div: u32,
    e0: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> counts: array<u32>;
@group(0) @binding(5) var<storage, read> lists: array<u32>;

var<workgroup> m_shared: u32;

const BM: u32 = 128u;
const BN: u32 = 128u;
const BK: u32 = 16u;
//#if SPLITK
// KSEG: the split-K segment, `const KSEG` prepended (linear::SPLIT_K_SEGMENT), a multiple of BK.
//#endif
// [BK][BM / 4] and [BK][BN / 4]: vec4 element (kk, i) holds rows (columns) 4i .. 4i + 3 at k0 + kk.
var<workgroup> xs: array<vec4<f32>, 512>;
var<workgroup> ws: array<vec4<f32>, 512>;

// Loads 4 consecutive k (from kq) of x row r, zero outside the matrix.
fn load_x(r: u32, kq: u32, m: u32, e: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (r < m) {
        let o = (lists[e * p.cap + r] / p.x_div) * p.x_stride + kq;
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
fn load_w(n: u32, kq: u32, el: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (n < p.n) {
        let row = el * p.n + n;
        if (kq + 4u <= p.k && (p.w_stride & 3u) == 0u) {
            v = w_quad(row * p.w_stride + kq);
        } else {
            for (var c = 0u; c < 4u; c++) {
                if (kq + c < p.k) { v[c] = w_at(row * p.w_stride + kq + c); }
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
    let el = wid.z;
    let e = p.e0 + el;
    if (tid == 0u) { m_shared = counts[e]; }
    let m = workgroupUniformLoad(&m_shared);
    let row0 = wid.y * BM;
    if (row0 >= m) { return; }
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
        put_x(lr, lk, load_x(row0 + lr, kq, m, e));
        put_x(lr + 64u, lk, load_x(row0 + lr + 64u, kq, m, e));
        put_w(lr, lk, load_w(col0 + lr, kq, el));
        put_w(lr + 64u, lk, load_w(col0 + lr + 64u, kq, el));
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
        if (r >= m) { continue; }
        let yr = lists[e * p.cap + r] / p.y_div;
        for (var h = 0u; h < 2u; h++) {
            for (var j = 0u; j < 4u; j++) {
                let n = col0 + lid.x * 4u + 64u * h + j;
                if (n >= p.n) { continue; }
                y[yr * p.y_stride + n] = acc[i][h][j];
            }
        }
    }
}
