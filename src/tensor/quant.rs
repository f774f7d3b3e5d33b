//! ggml block formats (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K): sizes and a CPU dequantizer written
//! from the ggml block layouts, the reference the in-kernel dequantization is tested against.

use half::f16;

use super::DType;

fn h(b: &[u8], o: usize) -> f32 {
    f16::from_le_bytes([b[o], b[o + 1]]).to_f32()
}

/// ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j (0..8) from 12 packed bytes.
fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    if j < 4 {
        ((q[j] & 63) as f32, (q[j + 4] & 63) as f32)
    } else {
        (((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4)) as f32, ((q[j + 4] >> 4) | ((q[j] >> 6) << 4)) as f32)
    }
}

/// Dequantizes whole blocks of `dtype` (a quantized type) into f32.
pub fn dequantize(dtype: DType, bytes: &[u8]) -> Vec<f32> {
    let (bs, bb) = (dtype.block_size(), dtype.block_bytes());
    let mut out = Vec::with_capacity(bytes.len() / bb * bs);
    for blk in bytes.chunks_exact(bb) {
        match dtype {
            DType::Q8_0 => {
                let d = h(blk, 0);
                out.extend(blk[2..34].iter().map(|&q| d * (q as i8) as f32));
            }
            DType::Q4_0 => {
                let d = h(blk, 0);
                let qs = &blk[2..18];
                out.extend(qs.iter().map(|&q| d * ((q & 0xF) as i32 - 8) as f32));
                out.extend(qs.iter().map(|&q| d * ((q >> 4) as i32 - 8) as f32));
            }
            DType::Q4_1 => {
                let (d, m) = (h(blk, 0), h(blk, 2));
                let qs = &blk[4..20];
                out.extend(qs.iter().map(|&q| d * (q & 0xF) as f32 + m));
                out.extend(qs.iter().map(|&q| d * (q >> 4) as f32 + m));
            }
            DType::Q4_K => {
                let (d, dmin) = (h(blk, 0), h(blk, 2));
                let scales = &blk[4..16];
                let qs = &blk[16..144];
                for g in 0..4 {
                    let (s1, m1) = scale_min_k4(2 * g, scales);
                    let (s2, m2) = scale_min_k4(2 * g + 1, scales);
                    let q = &qs[32 * g..32 * g + 32];
                    out.extend(q.iter().map(|&x| (d * s1) * (x & 0xF) as f32 - dmin * m1));
                    out.extend(q.iter().map(|&x| (d * s2) * (x >> 4) as f32 - dmin * m2));
                }
            }
            DType::Q5_K => {
                let (d, dmin) = (h(blk, 0), h(blk, 2));
                let scales = &blk[4..16];
                let qh = &blk[16..48];
                let qs = &blk[48..176];
                for g in 0..4 {
                    let (s1, m1) = scale_min_k4(2 * g, scales);
                    let (s2, m2) = scale_min_k4(2 * g + 1, scales);
                    let q = &qs[32 * g..32 * g + 32];
                    let (u1, u2) = (1u8 << (2 * g), 2u8 << (2 * g));
                    out.extend((0..32).map(|l| (d * s1) * ((q[l] & 0xF) as f32 + if qh[l] & u1 != 0 { 16.0 } else { 0.0 }) - dmin * m1));
                    out.extend((0..32).map(|l| (d * s2) * ((q[l] >> 4) as f32 + if qh[l] & u2 != 0 { 16.0 } else { 0.0 }) - dmin * m2));
                }
            }
            DType::Q6_K => {
                let (ql, qh, sc) = (&blk[0..128], &blk[128..192], &blk[192..208]);
                let d = h(blk, 208);
                let mut y = [0f32; 256];
                for n in 0..2 {
                    let (ql, qh, sc) = (&ql[64 * n..], &qh[32 * n..], &sc[8 * n..]);
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        let s = |i: usize| d * (sc[i] as i8) as f32;
                        y[128 * n + l] = s(is) * q1 as f32;
                        y[128 * n + l + 32] = s(is + 2) * q2 as f32;
                        y[128 * n + l + 64] = s(is + 4) * q3 as f32;
                        y[128 * n + l + 96] = s(is + 6) * q4 as f32;
                    }
                }
                out.extend(y);
            }
            _ => unreachable!("{dtype:?} is not a block format"),
        }
    }
    out
}
