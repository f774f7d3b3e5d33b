// Mixture-of-experts combine: for each token and hidden column, the routed experts' outputs
// times their routing weights summed in ascending expert id (whatever order the router chose
// them in), then, with SHARED, sigmoid(gate logit) times the shared expert's output (with
// UNGATED, DeepSeek's shared experts, the output as is), and the
// total added onto the residual x. One fixed order per token: the sum does not depend on the
// batch. Expert outputs sit at rows t * k + slot of `eo`.
struct Params { tokens: u32, hidden: u32, k: u32, gate_stride: u32, gate_col: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read> eo: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;
//#if SHARED
//#if UNGATED
@group(0) @binding(5) var<storage, read> shared_out: array<f32>;
//#else
@group(0) @binding(5) var<storage, read> gate: array<f32>;
@group(0) @binding(6) var<storage, read> shared_out: array<f32>;
//#endif
//#endif

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = (wid.x + wid.y * nwg.x) * 64u + lid.x;
    if (g >= p.tokens * p.hidden) { return; }
    let t = g / p.hidden;
    let c = g % p.hidden;
    var sum = 0.0;
    var last = 0u;
    var first = true;
    // Slots in ascending expert id: each round takes the smallest id above the last one.
    for (var r = 0u; r < p.k; r++) {
        var slot = 0u;
        var best = 0xffffffffu;
        for (var j = 0u; j < p.k; j++) {
            let e = ids[t * p.k + j];
            if ((first || e > last) && e < best) { best = e; slot = j; }
        }
        first = false;
        last = best;
        let v = eo[(t * p.k + slot) * p.hidden + c] * weights[t * p.k + slot];
        sum = sum + v;
    }
//#if SHARED
//#if UNGATED
    sum = sum + shared_out[t * p.hidden + c];
//#else
    let s = 1.0 / (1.0 + exp(-gate[t * p.gate_stride + p.gate_col]));
    sum = sum + s * shared_out[t * p.hidden + c];
//#endif
//#endif
    x[g] = x[g] + sum;
}
