// attention.wgsl's arithmetic, laid out for CPU adapters (`Gpu::subgroup_x`): one query token per
// invocation, a workgroup of 8 tokens of one head forming one subgroup. A software adapter runs
// the 8 as one SIMD vector and loads a value that differs per lane one lane at a time, so every
// key and value row is read once for the 8 tokens: lane c loads quads c, c + 8, .. of the row and
// subgroupBroadcast hands each quad to all. No workgroup memory, no barriers.
//
// Per (query token, head) the numbers are those of attention.wgsl (see its header): keys in
// blocks of KB positions aligned to multiples of KB, blocks ascending; per block each score is
// one fma chain over the head in order, (d.x + d.y) + (d.z + d.w); the block max m_b over the
// token's keys, m' = max(m, m_b), c = exp(m - m'), l = l*c, acc = acc*c, then l = l + e_j and
// acc = fma(e_j, v_j, acc) for e_j = exp(s_j - m') in ascending j; spans of KS positions each
// from a fresh state, folded in ascending order (lib/key_spans.wgsl); out = acc / l. A block's
// scores are computed once, kept for e_j (attention.wgsl keeps them in workgroup memory).
//
// Tokens of a workgroup may belong to several sequences (packed batches, decoding): they are
// served one cache base at a time (the smallest waiting first), each token skipping keys outside
// its own range. HEADS (passes of about one token per sequence) lays the lanes over query heads
// instead: one token per workgroup, the query heads sharing one kv head, so a key row loaded once
// serves them all and no workgroup waits on another sequence. Same bindings and Params as attention.wgsl; `const D4` (head_dim / 4) is prepended.
const KB: u32 = 16u;
const R8: u32 = (D4 + 7u) / 8u;

// Params, bindings, token_span, query_quad and cache(): shaders/lib/kv_cache.wgsl.

// q · k for the key at cache row `row` (q pre-scaled): one fma chain over the quads in order.
fn score(qv: ptr<function, array<vec4<f32>, D4>>, row: u32, kvh: u32, sl: u32) -> f32 {
    var d4 = vec4<f32>(0.0);
    for (var r = 0u; r < R8; r++) {
        let kq = cache(row, kvh, min(r * 8u + sl, D4 - 1u), false);
        for (var c = 0u; c < 8u; c++) {
            let kc = subgroupShuffle(kq, c);
            if (r * 8u + c < D4) { d4 = fma((*qv)[r * 8u + c], kc, d4); }
        }
    }
    return (d4.x + d4.y) + (d4.z + d4.w);
}

@compute @workgroup_size(8)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32) {
    let wg = wid.x + wid.y * nwg.x;
//#if HEADS
    // One token per workgroup, its query heads that share kv head kvh (8 at a time) across the
    // lanes: the layout for passes of a token or two per sequence (decoding), where a workgroup of
    // 8 tokens would serve up to 8 sequences one after another.
    let g = p.heads_q / p.heads_kv;
    let gs = (g + 7u) / 8u;
    if (wg >= p.tokens * p.heads_kv * gs) { return; }
    let t = wg / (p.heads_kv * gs);
    let r = wg % (p.heads_kv * gs);
    let kvh = r / gs;
    let hg = (r % gs) * 8u + li;
    let h = kvh * g + min(hg, g - 1u);
    let live = hg < g;
//#else
    let tiles = (p.tokens + 7u) / 8u;
    if (wg >= tiles * p.heads_q) { return; }
    let h = wg / tiles;
    let t = (wg % tiles) * 8u + li;
    let kvh = h / (p.heads_q / p.heads_kv);
    let live = t < p.tokens;
//#endif

    var pos = 0u;
    var base = 0xffffffffu;
    var start = 0u;
    var qv: array<vec4<f32>, D4>;
    var acc: array<vec4<f32>, D4>;
    for (var i = 0u; i < D4; i++) {
        qv[i] = vec4<f32>(0.0);
        acc[i] = vec4<f32>(0.0);
    }
//#if ROPE_KV
    // The token's key and value row of kv head kvh into the cache (the key rotated), lanes
    // taking quads in turn, before any lane reads the cache; then its queries, rotated.
    {
        let s = token_span(t);
        let row = s.y + s.x;
        let qrow = (p.q_offset + t * p.q_stride) / 4u;
        let kq = qrow + (p.heads_q + kvh) * D4;
        let vq = qrow + (p.heads_q + p.heads_kv + kvh) * D4;
        let cq = row * p.heads_kv * D4 + kvh * D4;
        if (row < p.chunk_rows) {
            for (var j = sl; j < D4 / 2u; j += 8u) {
                let y = rotate(q[kq + j], q[kq + j + D4 / 2u], s.x, j);
                k0[cq + j] = y[0];
                k0[cq + j + D4 / 2u] = y[1];
            }
            for (var j = sl; j < D4; j += 8u) {
                v0[cq + j] = q[vq + j];
            }
        }
    }
    storageBarrier();
//#endif
    if (live) {
        let s = token_span(t);
        pos = s.x;
        base = s.y;
        start = s.z;
//#if ROPE_KV
        let qh = (p.q_offset + t * p.q_stride) / 4u + h * D4;
        for (var j = 0u; j < D4 / 2u; j++) {
            let y = rotate(q[qh + j], q[qh + j + D4 / 2u], pos, j);
            qv[j] = y[0] * p.scale;
            qv[j + D4 / 2u] = y[1] * p.scale;
        }
//#else
        for (var i = 0u; i < D4; i++) { qv[i] = query_quad(t, h, i); }
//#endif
    }
    var m = -1e30;
    var l = 0.0;
    // The spans before the current one (`span`), folded.
    var fm = -1e30;
    var fl = 0.0;
    var facc: array<vec4<f32>, D4>;
    for (var i = 0u; i < D4; i++) { facc[i] = vec4<f32>(0.0); }
    var span = 0u;
    var pending = live;

    loop {
        // The smallest cache base still waiting, and the span its tokens need.
        let cb = subgroupMin(select(0xffffffffu, base, pending));
        if (cb == 0xffffffffu) { break; }
        let mine = pending && base == cb;
        let lo = subgroupMin(select(0xffffffffu, start, mine));
        let hi = subgroupMax(select(0u, pos, mine));
        for (var b = lo / KB; b <= hi / KB; b++) {
            let p0 = b * KB;
            let n = min(KB, hi + 1u - p0);
            let use_block = mine && max(start, p0) < min(pos + 1u, p0 + KB);
            if (use_block && p0 / KS != span) {
                // A new span: fold the last one's state, start afresh.
                let c = span_fold(&fm, &fl, m, l);
                for (var i = 0u; i < D4; i++) { facc[i] = span_acc(facc[i], acc[i], c); acc[i] = vec4<f32>(0.0); }
                m = -1e30;
                l = 0.0;
                span = p0 / KS;
            }
            var mb = -1e30;
            var sc: array<f32, KB>;
            for (var j = 0u; j < n; j++) {
                let s = score(&qv, cb + p0 + j, kvh, sl);
                sc[j] = s;
                if (use_block && p0 + j >= start && p0 + j <= pos) { mb = max(mb, s); }
            }
            let mn = max(m, mb);
            let corr = exp(m - mn);
            if (use_block) {
                l = l * corr;
                for (var i = 0u; i < D4; i++) { acc[i] = acc[i] * corr; }
            }
            for (var j = 0u; j < n; j++) {
                let row = cb + p0 + j;
                let ok = use_block && p0 + j >= start && p0 + j <= pos;
                let e = exp(sc[j] - mn);
                if (ok) { l = l + e; }
                for (var r = 0u; r < R8; r++) {
                    let vq = cache(row, kvh, min(r * 8u + sl, D4 - 1u), true);
                    for (var c = 0u; c < 8u; c++) {
                        let vc = subgroupShuffle(vq, c);
                        let i = r * 8u + c;
                        if (ok && i < D4) { acc[i] = fma(vec4<f32>(e), vc, acc[i]); }
                    }
                }
            }
            if (use_block) { m = mn; }
        }
        if (mine) { pending = false; }
    }
    if (live) {
        let c = span_fold(&fm, &fl, m, l);
        let ob = (t * p.out_stride) / 4u + h * D4;
        for (var i = 0u; i < D4; i++) { out[ob + i] = span_acc(facc[i], acc[i], c) / fl; }
    }
}
