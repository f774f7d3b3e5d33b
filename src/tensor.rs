//! Weight matrices on the GPU, kept in their stored dtype and split into chunks of rows where a
//! matrix exceeds the adapter's largest storage binding (128 MiB on lavapipe).

use anyhow::{bail, Result};

use crate::device::Gpu;

/// How a weight matrix is stored on the GPU; kernels convert to f32 as they read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// The WGSL define that selects this dtype's `w_at` in `shaders/weights.wgsl`.
    pub fn define(self) -> &'static str {
        match self {
            DType::F32 => "W_F32",
            DType::F16 => "W_F16",
            DType::BF16 => "W_BF16",
        }
    }

    pub fn from_safetensors(d: safetensors::Dtype) -> Option<DType> {
        match d {
            safetensors::Dtype::F32 => Some(DType::F32),
            safetensors::Dtype::F16 => Some(DType::F16),
            safetensors::Dtype::BF16 => Some(DType::BF16),
            _ => None,
        }
    }

    /// Decodes one stored element (host side, for references and small tensors).
    pub fn to_f32(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            DType::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            DType::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            DType::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        }
    }
}

/// Rows `row0 .. row0 + rows` of a matrix, in one buffer.
pub struct Chunk {
    pub buf: wgpu::Buffer,
    pub row0: usize,
    pub rows: usize,
}

/// A `[rows, cols]` row-major weight matrix (a linear layer's `[out, in]`, an embedding table).
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub dtype: DType,
    /// Elements per stored row: `cols`, padded to even for 16-bit dtypes so rows start on a u32.
    pub stride: usize,
    pub chunks: Vec<Chunk>,
}

impl Matrix {
    /// Uploads a dense row-major `[rows, cols]` matrix given as raw little-endian bytes.
    pub fn upload(gpu: &Gpu, name: &str, dtype: DType, rows: usize, cols: usize, bytes: &[u8]) -> Result<Matrix> {
        let es = dtype.size();
        if bytes.len() != rows * cols * es {
            bail!("{name}: expected {rows}x{cols} {dtype:?} ({} bytes), got {} bytes", rows * cols * es, bytes.len());
        }
        let stride = if es == 2 { cols.next_multiple_of(2) } else { cols };
        let row_bytes = (stride * es) as u64;
        let per_chunk = (gpu.max_binding / row_bytes).max(1) as usize;
        let mut chunks = Vec::new();
        let mut row0 = 0;
        while row0 < rows {
            let n = per_chunk.min(rows - row0);
            let src = &bytes[row0 * cols * es..(row0 + n) * cols * es];
            let buf = if stride == cols {
                gpu.upload(name, src)?
            } else {
                let mut padded = vec![0u8; n * stride * es];
                for r in 0..n {
                    padded[r * stride * es..r * stride * es + cols * es].copy_from_slice(&src[r * cols * es..(r + 1) * cols * es]);
                }
                gpu.upload(name, &padded)?
            };
            chunks.push(Chunk { buf, row0, rows: n });
            row0 += n;
        }
        Ok(Matrix { rows, cols, dtype, stride, chunks })
    }

    pub fn bytes_on_gpu(&self) -> u64 {
        self.chunks.iter().map(|c| c.buf.size()).sum()
    }
}

/// Raw little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}
