//! `shaders/log_softmax.wgsl`: turns logits rows into log-probabilities in place (for the rare
//! case where whole rows are asked for), bit-identical to the log-probs of
//! [`logprobs`](super::logprobs) as both share `shaders/lib/row_lse.wgsl`.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};

use super::{compile, u, Shader};
use crate::device::Recorder;

/// The uniform `Params` of `shaders/log_softmax.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub rows: u32,
    pub vocab: u32,
}

/// Turns `rows` logits rows (`vocab` wide, from the start of `logits`) into log-probabilities.
pub fn log_softmax(rec: &mut Recorder, logits: &wgpu::Buffer, rows: usize, vocab: usize) -> Result<()> {
    let k = compile(rec.gpu(), Shader::LogSoftmax, &[])?;
    let p = Params { rows: u("rows", rows)?, vocab: u("vocab", vocab)? };
    rec.dispatch_linear(k, &p, &[logits], p.rows);
    Ok(())
}
