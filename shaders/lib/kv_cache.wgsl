// Snippet, not a kernel: prepended (src/kernels/mod.rs) to attention.wgsl and
// attention_lanes.wgsl, after `const D4` (head_dim / 4). Their Params and bindings, a query
// token's span and query (token_span, query_quad), and the KV cache read row by row from up to 4
// chunks of `chunk_rows` rows (CHUNKED), so chunking changes no number.
struct Params {
    tokens: u32, heads_q: u32, heads_kv: u32, head_dim: u32,
    q_stride: u32, q_offset: u32, out_stride: u32, window: u32,
    scale: f32, chunk_rows: u32, sin_offset: u32, qt: u32,
    spans: u32, pad0: u32, pad1: u32, pad2: u32,
}
// qt: query tokens per workgroup of attention.wgsl (its layout); unused by attention_lanes.wgsl.
// spans: 0, or attention.wgsl computes one key span per workgroup (S = spans of them per token
// and head) and writes its state for attention_combine.wgsl (see lib/key_spans.wgsl).
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
//#if ROPE_KV
// ROPE_KV (attention_lanes.wgsl, one token per sequence): the kernel rotates the queries and
// keys itself from the cos/sin table and stores each token's key and value row in the cache.
@group(0) @binding(2) var<storage, read_write> k0: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> v0: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> rope_table: array<vec4<f32>>;
//#else
@group(0) @binding(2) var<storage, read> k0: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v0: array<vec4<f32>>;
//#endif
// Per token: [position, cache row of position 0].
@group(0) @binding(4) var<storage, read> tok: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
//#if CHUNKED
@group(0) @binding(6) var<storage, read> k1: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> v1: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> k2: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read> v2: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> k3: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> v3: array<vec4<f32>>;
//#endif

// Element `i` (vec4) of kv head `kvh` at cache row `row`, from keys (`val` false) or values.
fn cache(row: u32, kvh: u32, i: u32, val: bool) -> vec4<f32> {
    let kv4 = p.heads_kv * D4;
//#if CHUNKED
    let c = row / p.chunk_rows;
    let idx = (row - c * p.chunk_rows) * kv4 + kvh * D4 + i;
    if (val) {
        switch c {
            case 0u: { return v0[idx]; }
            case 1u: { return v1[idx]; }
            case 2u: { return v2[idx]; }
            default: { return v3[idx]; }
        }
    }
    switch c {
        case 0u: { return k0[idx]; }
        case 1u: { return k1[idx]; }
        case 2u: { return k2[idx]; }
        default: { return k3[idx]; }
    }
//#else
    let idx = row * kv4 + kvh * D4 + i;
    if (val) { return v0[idx]; }
    return k0[idx];
//#endif
}

// Query token t: its position, the cache row of its position 0, and its first key position (0, or
// pos + 1 - window with Mistral's sliding window).
fn token_span(t: u32) -> vec3<u32> {
    let pos = tok[2u * t];
    var start = 0u;
    if (p.window > 0u && pos + 1u > p.window) { start = pos + 1u - p.window; }
    return vec3<u32>(pos, tok[2u * t + 1u], start);
}

// Quad i of query token t's head h, pre-scaled.
fn query_quad(t: u32, h: u32, i: u32) -> vec4<f32> {
    return q[(p.q_offset + t * p.q_stride) / 4u + h * D4 + i] * p.scale;
}

//#if ROPE_KV
// rope.wgsl's rotation of quad pair (j, j + D4 / 2) of a head at position pos (x1, x2 its two
// quads): y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s, element by element, the same numbers.
fn rotate(x1: vec4<f32>, x2: vec4<f32>, pos: u32, j: u32) -> array<vec4<f32>, 2> {
    let c = rope_table[pos * (D4 / 2u) + j];
    let s = rope_table[p.sin_offset / 4u + pos * (D4 / 2u) + j];
    return array<vec4<f32>, 2>(x1 * c - x2 * s, x2 * c + x1 * s);
}
//#endif
