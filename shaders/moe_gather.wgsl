// Per-expert token lists, computed on the GPU: one workgroup per expert scans the routing ids of
// all tokens in blocks of 256 and compacts, in ascending token order, the entries `t * k + slot`
// of the tokens routed to it into lists[e * cap ..] (a prefix sum over each block keeps the
// order), then writes how many into counts[e]. The lists are a pure function of the routing, so
// the expert matmuls that read them see the same rows in the same order whatever the schedule.
struct Params { tokens: u32, k: u32, experts: u32, cap: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> counts: array<u32>;
@group(0) @binding(3) var<storage, read_write> lists: array<u32>;

var<workgroup> scan: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = wid.x + wid.y * nwg.x;
    if (e >= p.experts) { return; }
    let i = lid.x;
    var count = 0u;
    for (var base = 0u; base < p.tokens; base += 256u) {
        let t = base + i;
        var flag = 0u;
        var entry = 0u;
        if (t < p.tokens) {
            for (var j = 0u; j < p.k; j++) {
                if (ids[t * p.k + j] == e) { flag = 1u; entry = t * p.k + j; }
            }
        }
        scan[i] = flag;
        workgroupBarrier();
        // Hillis-Steele inclusive scan.
        for (var off = 1u; off < 256u; off = off * 2u) {
            var add = 0u;
            if (i >= off) { add = scan[i - off]; }
            workgroupBarrier();
            scan[i] = scan[i] + add;
            workgroupBarrier();
        }
        if (flag != 0u) { lists[e * p.cap + count + scan[i] - 1u] = entry; }
        count = count + scan[255];
        workgroupBarrier();
    }
    if (i == 0u) { counts[e] = count; }
}
