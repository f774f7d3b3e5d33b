// Weight storage formats, bound at binding 2. `w_at(i)` returns element i (row-major, padded
// stride) as f32, `w_pair(i)` elements i and i + 1 for even i. Prepended to kernels that read
// weights; one of W_* is defined.
//#if W_F32
@group(0) @binding(2) var<storage, read> w: array<f32>;
fn w_at(i: u32) -> f32 {
    return w[i];
}
fn w_pair(i: u32) -> vec2<f32> {
    return vec2<f32>(w[i], w[i + 1u]);
}
//#endif
//#if W_F16
@group(0) @binding(2) var<storage, read> w: array<u32>;
fn w_at(i: u32) -> f32 {
    let p = unpack2x16float(w[i >> 1u]);
    return select(p.x, p.y, (i & 1u) == 1u);
}
fn w_pair(i: u32) -> vec2<f32> {
    return unpack2x16float(w[i >> 1u]);
}
//#endif
//#if W_BF16
@group(0) @binding(2) var<storage, read> w: array<u32>;
fn w_at(i: u32) -> f32 {
    let u = w[i >> 1u];
    return bitcast<f32>(select(u << 16u, u & 0xffff0000u, (i & 1u) == 1u));
}
fn w_pair(i: u32) -> vec2<f32> {
    let u = w[i >> 1u];
    return vec2<f32>(bitcast<f32>(u << 16u), bitcast<f32>(u & 0xffff0000u));
}
//#endif
