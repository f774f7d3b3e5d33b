//! `shaders/logprobs.wgsl`: per logits row, the target's log-prob, the argmax and the top-k,
//! so that only these few numbers ever leave the GPU.

use anyhow::{bail, Result};
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::Recorder;

/// The uniform `Params` of `shaders/logprobs.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub rows: u32,
    pub vocab: u32,
    pub topk: u32,
    pub row0: u32,
}

/// u32 words per output row.
pub const OUT_STRIDE: usize = 68;
pub const MAX_TOPK: usize = 32;
/// Target id meaning "no target" (generation steps).
pub const NO_TARGET: u32 = u32::MAX;

/// One scored position as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenScore {
    pub logprob: f32,
    pub argmax: u32,
    pub argmax_logprob: f32,
    pub topk: Vec<(u32, f32)>,
}

/// Records the reduction of `rows` logits rows (`vocab` wide, from the start of `logits`), whose
/// targets and outputs sit at index `row0 + r` of `targets` and `out`.
#[allow(clippy::too_many_arguments)]
pub fn logprobs(rec: &mut Recorder, logits: &wgpu::Buffer, rows: usize, vocab: usize, targets: &wgpu::Buffer, row0: usize, topk: usize, out: &wgpu::Buffer) -> Result<()> {
    if topk > MAX_TOPK {
        bail!("top-k of {topk} asked; at most {MAX_TOPK}");
    }
    let k = compile(rec.gpu(), Shader::Logprobs, &[])?;
    let p = Params { rows: u("rows", rows)?, vocab: u("vocab", vocab)?, topk: u("topk", topk)?, row0: u("row0", row0)? };
    rec.dispatch_linear(k, &p, &[logits, targets, out], p.rows);
    Ok(())
}

/// Decodes `n` output rows read back from the GPU.
pub fn decode(words: &[u32], n: usize, topk: usize) -> Vec<TokenScore> {
    (0..n)
        .map(|r| {
            let o = &words[r * OUT_STRIDE..(r + 1) * OUT_STRIDE];
            TokenScore {
                logprob: f32::from_bits(o[0]),
                argmax: o[1],
                argmax_logprob: f32::from_bits(o[2]),
                topk: (0..topk).map(|i| (o[4 + i], f32::from_bits(o[36 + i]))).collect(),
            }
        })
        .collect()
}
