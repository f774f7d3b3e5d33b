// Decode path of expert_matmul.wgsl (same Params and bindings), for experts with a few rows each:
// matvec.wgsl over each expert's gathered rows (z of the grid: e = e0 + wid.z). Each invocation
// owns four weight rows and accumulates fma(x, w, acc) over k = 0, 1, 2, ... in order, exactly as
// the tiled kernels do, so both expert paths, and the dense ones, give bit-identical rows (on GPUs,
// SPLITK, all of them in the order's split-K form).
// x is read as vec4: k and x_stride are multiples of 4 here.
// SPLITK (GPUs): the order's split-K form, laid out as matvec.wgsl's SPLITK (64 invocations: RQ
// groups of 4 weight rows times SLOTS segments side by side, `const SLOTS` prepended).
struct Params {
    n: u32, k: u32, w_stride: u32, cap: u32,
    x_stride: u32, x_div: u32, y_stride: u32, y_div: u32,
    e0: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> counts: array<u32>;
@group(0) @binding(5) var<storage, read> lists: array<u32>;

// The chains of weight rows w0 .. w3 over k_lo .. k_hi (k_lo a multiple of 32 with whole blocks)
// for the `rows` gathered x rows starting at quads xr, each from 0: a split-K segment, or all of k.
fn chains(w0: u32, w1: u32, w2: u32, w3: u32, xr: vec4<u32>, rows: u32, k_lo: u32, k_hi: u32) -> array<vec4<f32>, 4> {
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
//#if W_BLOCK32
    for (var k = k_lo; k < k_hi; k += 32u) {
        let b0 = w_block(w0 + k);
        let b1 = w_block(w1 + k);
        let b2 = w_block(w2 + k);
        let b3 = w_block(w3 + k);
        for (var t = 0u; t < 8u; t++) {
            let v0 = wb_quad(b0, t);
            let v1 = wb_quad(b1, t);
            let v2 = wb_quad(b2, t);
            let v3 = wb_quad(b3, t);
            for (var j = 0u; j < rows; j++) {
                let xv = x[xr[j] + (k >> 2u) + t];
                a0[j] = fma(xv.w, v0.w, fma(xv.z, v0.z, fma(xv.y, v0.y, fma(xv.x, v0.x, a0[j]))));
                a1[j] = fma(xv.w, v1.w, fma(xv.z, v1.z, fma(xv.y, v1.y, fma(xv.x, v1.x, a1[j]))));
                a2[j] = fma(xv.w, v2.w, fma(xv.z, v2.z, fma(xv.y, v2.y, fma(xv.x, v2.x, a2[j]))));
                a3[j] = fma(xv.w, v3.w, fma(xv.z, v3.z, fma(xv.y, v3.y, fma(xv.x, v3.x, a3[j]))));
            }
        }
    }
//#else
    for (var k = k_lo; k < k_hi; k += 4u) {
        let v0 = w_quad(w0 + k);
        let v1 = w_quad(w1 + k);
        let v2 = w_quad(w2 + k);
        let v3 = w_quad(w3 + k);
        for (var j = 0u; j < rows; j++) {
            let xv = x[xr[j] + (k >> 2u)];
            a0[j] = fma(xv.w, v0.w, fma(xv.z, v0.z, fma(xv.y, v0.y, fma(xv.x, v0.x, a0[j]))));
            a1[j] = fma(xv.w, v1.w, fma(xv.z, v1.z, fma(xv.y, v1.y, fma(xv.x, v1.x, a1[j]))));
            a2[j] = fma(xv.w, v2.w, fma(xv.z, v2.z, fma(xv.y, v2.y, fma(xv.x, v2.x, a2[j]))));
            a3[j] = fma(xv.w, v3.w, fma(xv.z, v3.z, fma(xv.y, v3.y, fma(xv.x, v3.x, a3[j]))));
        }
    }
//#endif
    return array<vec4<f32>, 4>(a0, a1, a2, a3);
}

// The accumulators of weight rows n0 .. n0 + 3 for the x rows m0 .. m0 + rows - 1 of expert e.
fn store_rows(e: u32, m0: u32, n0: u32, rows: u32, accs: array<vec4<f32>, 4>) {
    for (var r = 0u; r < 4u; r++) {
        let n = n0 + r;
        if (n >= p.n) { break; }
        for (var j = 0u; j < rows; j++) {
            let yr = lists[e * p.cap + m0 + j] / p.y_div;
            y[yr * p.y_stride + n] = accs[r][j];
        }
    }
}

//#if SPLITK
// KSEG: the split-K segment, `const KSEG` prepended (linear::SPLIT_K_SEGMENT).
const RQ: u32 = 64u / SLOTS;
var<workgroup> parts: array<array<vec4<f32>, 4>, 64>;
var<workgroup> m_shared: u32;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let el = wid.z;
    let e = p.e0 + el;
    if (lid.x == 0u) { m_shared = counts[e]; }
    let m = workgroupUniformLoad(&m_shared);
    if (m == 0u) { return; }
    let rq = lid.x / SLOTS;
    let slot = lid.x % SLOTS;
    let n0 = (wid.x * RQ + rq) * 4u;
    // Invocations past the last row read the last row and store nothing.
    let last = p.n - 1u;
    let base = el * p.n;
    let w0 = (base + min(n0, last)) * p.w_stride;
    let w1 = (base + min(n0 + 1u, last)) * p.w_stride;
    let w2 = (base + min(n0 + 2u, last)) * p.w_stride;
    let w3 = (base + min(n0 + 3u, last)) * p.w_stride;
    let xs = p.x_stride >> 2u;
    let segments = (p.k + KSEG - 1u) / KSEG;
    for (var m0 = 0u; m0 < m; m0 += 4u) {
        let rows = min(4u, m - m0);
        var xr = vec4<u32>(0u);
        for (var j = 0u; j < rows; j++) { xr[j] = (lists[e * p.cap + m0 + j] / p.x_div) * xs; }
        var t0 = vec4<f32>(0.0);
        var t1 = vec4<f32>(0.0);
        var t2 = vec4<f32>(0.0);
        var t3 = vec4<f32>(0.0);
        for (var s0 = 0u; s0 < segments; s0 += SLOTS) {
            var a = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
            if (s0 + slot < segments) {
                a = chains(w0, w1, w2, w3, xr, rows, (s0 + slot) * KSEG, min(p.k, (s0 + slot + 1u) * KSEG));
            }
            parts[lid.x] = a;
            workgroupBarrier();
            if (slot == 0u) {
                let n = min(SLOTS, segments - s0);
                for (var j = 0u; j < n; j++) {
                    let q = parts[rq * SLOTS + j];
                    t0 = t0 + q[0];
                    t1 = t1 + q[1];
                    t2 = t2 + q[2];
                    t3 = t3 + q[3];
                }
            }
            workgroupBarrier();
        }
        if (slot == 0u) {
            store_rows(e, m0, n0, rows, array<vec4<f32>, 4>(t0, t1, t2, t3));
        }
    }
}
//#else
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let el = wid.z;
    let e = p.e0 + el;
    let m = counts[e];
    let n0 = (wid.x * 64u + lid.x) * 4u;
    if (n0 >= p.n || m == 0u) { return; }
    let last = p.n - 1u;
    let base = el * p.n;
    let w0 = (base + n0) * p.w_stride;
    let w1 = (base + min(n0 + 1u, last)) * p.w_stride;
    let w2 = (base + min(n0 + 2u, last)) * p.w_stride;
    let w3 = (base + min(n0 + 3u, last)) * p.w_stride;
    let xs = p.x_stride >> 2u;
    for (var m0 = 0u; m0 < m; m0 += 4u) {
        let rows = min(4u, m - m0);
        var xr = vec4<u32>(0u);
        for (var j = 0u; j < rows; j++) { xr[j] = (lists[e * p.cap + m0 + j] / p.x_div) * xs; }
        // Whole blocks of 32 k where the format has them, each word read once (as matvec.wgsl).
        store_rows(e, m0, n0, rows, chains(w0, w1, w2, w3, xr, rows, 0u, p.k));
    }
}
//#endif
