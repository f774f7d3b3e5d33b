// Causal attention with grouped-query heads over the KV cache, tiled flash-attention style.
//
// The arithmetic of one (query token, head) is fixed by its position alone: keys are taken in
// blocks of KB positions aligned to multiples of KB (block b holds positions b*KB .. b*KB+KB-1,
// clipped to the query's allowed range: 0, or pos + 1 - window with Mistral's sliding window, to
// pos), blocks in ascending order. Per block: each score is one fma chain over the head in
// order (q pre-scaled), the block max m_b, m' = max(m, m_b), c = exp(m - m'), then
// l = l*c + e_j and acc = acc*c + e_j*v_j for e_j = exp(s_j - m') in ascending j, and at the end
// out = acc / l. Long contexts: blocks go in spans of KS positions, each span's m, l, acc from
// a fresh state, the spans folded in ascending order (lib/key_spans.wgsl). Which workgroup, tile,
// slot or lane computes it, what else is in the batch, whether it is a prefill or a decode pass,
// and whether the spans are walked here or split over workgroups (`Params::spans`, then
// attention_combine.wgsl) never enter (`tests/kernels.rs` has the CPU version).
//
// A workgroup takes QT consecutive tokens of one query head, LANES invocations per token
// (QT = p.qt, LANES = 64 / QT: 8 and 8 for prefill; 1 and 64 for passes of about one token per
// sequence, decoding, so that no workgroup serves several sequences one after another). Both are
// read at run time: prefill and decode run the same compiled kernel, so a driver that fuses a
// multiply and an add on its own does it alike in both. Its// tokens may belong to several sequences (packed batches): it serves them one cache base at a
// time, staging each key block (then its value block) of that sequence in workgroup memory once
// for all of its tokens. Lanes share a token's scores (lane k scores keys k, k+LANES ..) and
// split its output (lane k owns the vec4s k, k+LANES, ..).
//
// The cache of a layer may be split in up to 4 chunks of `chunk_rows` rows (`CHUNKED`: bindings
// k1..k3 / v1..v3; unused ones repeat the last), read row by row, so chunking changes no number.
// Specialised for the head size: `const D4: u32` (head_dim / 4) is prepended; rows are vec4.
// Params, bindings, token_span, query_quad and cache(): shaders/lib/kv_cache.wgsl.
const KB: u32 = 16u;
// Most tokens per workgroup, and output vec4s per lane (for LANES of at least 8).
const QT_MAX: u32 = 8u;
const A4: u32 = (D4 + 7u) / 8u;

// One block of keys, then of values, of the sequence being served.
var<workgroup> kv: array<vec4<f32>, KB * D4>;
// The block's scores, per slot.
var<workgroup> sc: array<f32, QT_MAX * KB>;
// Per slot: the cache base it still waits for (0xffffffff: none), and its first / last position.
var<workgroup> want: array<vec4<u32>, QT_MAX>;
// The sequence served next: [base, first block, last position, any].
var<workgroup> sel: vec4<u32>;


@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let QT = p.qt;
    let LANES = 64u / QT;
    let tiles = (p.tokens + QT - 1u) / QT;
    // With spans (decoding, one token per workgroup): workgroup wg takes span wg % spans.
    let split = p.spans > 0u;
    let wg = (wid.x + wid.y * nwg.x) / max(p.spans, 1u);
    let own = (wid.x + wid.y * nwg.x) % max(p.spans, 1u);
    if (wg >= tiles * p.heads_q) { return; }
    let h = wg / tiles;
    let slot = lid.x / LANES;
    let lane = lid.x % LANES;
    let t = (wg % tiles) * QT + slot;
    let kvh = h / (p.heads_q / p.heads_kv);
    let live = t < p.tokens;

    var pos = 0u;
    var base = 0xffffffffu;
    var start = 0u;
    var qv: array<vec4<f32>, D4>;
    var acc: array<vec4<f32>, A4>;
    for (var k = 0u; k < A4; k++) { acc[k] = vec4<f32>(0.0); }
    if (live) {
        let s = token_span(t);
        pos = s.x;
        base = s.y;
        start = s.z;
        for (var i = 0u; i < D4; i++) { qv[i] = query_quad(t, h, i); }
    }
    var m = -1e30;
    var l = 0.0;
    // The spans before the current one (`span`), folded.
    var fm = -1e30;
    var fl = 0.0;
    var facc: array<vec4<f32>, A4>;
    for (var k = 0u; k < A4; k++) { facc[k] = vec4<f32>(0.0); }
    var span = own;
    var pending = live;

    loop {
        if (lane == 0u) {
            if (pending) { want[slot] = vec4<u32>(base, start, pos, 1u); }
            else { want[slot] = vec4<u32>(0u, 0u, 0u, 0u); }
        }
        workgroupBarrier();
        if (lid.x == 0u) {
            // The first waiting slot's sequence, and the span its waiting tokens need.
            var s = vec4<u32>(0u, 0xffffffffu, 0u, 0u);
            for (var i = 0u; i < QT; i++) {
                let w = want[i];
                if (w.w == 1u && (s.w == 0u || w.x == s.x)) {
                    s = vec4<u32>(w.x, min(s.y, w.y), max(s.z, w.z), 1u);
                }
            }
            sel = s;
        }
        let cur = workgroupUniformLoad(&sel);
        if (cur.w == 0u) { break; }
        let mine = pending && base == cur.x;
        var b_lo = cur.y / KB;
        var b_hi = cur.z / KB + 1u;
        if (split) {
            b_lo = max(b_lo, own * (KS / KB));
            b_hi = min(b_hi, (own + 1u) * (KS / KB));
        }
        for (var b = b_lo; b < b_hi; b++) {
            let p0 = b * KB;
            let n = min(KB, cur.z + 1u - p0);
            // This token's keys in the block: j in [jlo, jhi) (none unless use_block).
            let jlo = max(start, p0) - p0;
            let jhi = min(pos + 1u, p0 + KB) - p0;
            let use_block = mine && max(start, p0) < min(pos + 1u, p0 + KB);
            for (var x = lid.x; x < n * D4; x += 64u) {
                kv[x] = cache(cur.x + p0 + x / D4, kvh, x % D4, false);
            }
            workgroupBarrier();
            if (use_block) {
                for (var j = jlo + (lane + LANES - jlo % LANES) % LANES; j < jhi; j += LANES) {
                    var d4 = vec4<f32>(0.0);
                    for (var i = 0u; i < D4; i++) { d4 = fma(qv[i], kv[j * D4 + i], d4); }
                    sc[slot * KB + j] = (d4.x + d4.y) + (d4.z + d4.w);
                }
            }
            workgroupBarrier();
            for (var x = lid.x; x < n * D4; x += 64u) {
                kv[x] = cache(cur.x + p0 + x / D4, kvh, x % D4, true);
            }
            workgroupBarrier();
            if (use_block && p0 / KS != span) {
                // A new span: fold the last one's state, start afresh.
                let c = span_fold(&fm, &fl, m, l);
                for (var k = 0u; k < A4; k++) { facc[k] = span_acc(facc[k], acc[k], c); acc[k] = vec4<f32>(0.0); }
                m = -1e30;
                l = 0.0;
                span = p0 / KS;
            }
            if (use_block) {
                var mb = -1e30;
                for (var j = jlo; j < jhi; j++) { mb = max(mb, sc[slot * KB + j]); }
                let mn = max(m, mb);
                let corr = exp(m - mn);
                l = l * corr;
                for (var k = 0u; k < A4; k++) { acc[k] = acc[k] * corr; }
                for (var j = jlo; j < jhi; j++) {
                    let e = exp(sc[slot * KB + j] - mn);
                    l = l + e;
                    for (var k = 0u; k < A4; k++) {
                        let i = lane + k * LANES;
                        if (i < D4) { acc[k] = fma(vec4<f32>(e), kv[j * D4 + i], acc[k]); }
                    }
                }
                m = mn;
            }
            workgroupBarrier();
        }
        if (mine) { pending = false; }
    }
    if (live && split) {
        // This span's state, for attention_combine.wgsl.
        let r = ((t * p.heads_q + h) * p.spans + own) * (D4 + 1u);
        for (var k = 0u; k < A4; k++) {
            let i = lane + k * LANES;
            if (i < D4) { out[r + i] = acc[k]; }
        }
        if (lane == 0u) { out[r + D4] = vec4<f32>(m, l, 0.0, 0.0); }
    } else if (live) {
        let c = span_fold(&fm, &fl, m, l);
        let ob = (t * p.out_stride) / 4u + h * D4;
        for (var k = 0u; k < A4; k++) {
            let i = lane + k * LANES;
            if (i < D4) { out[ob + i] = span_acc(facc[k], acc[k], c) / fl; }
        }
    }
}
