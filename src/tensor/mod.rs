//! Weight matrices on the GPU, kept in their stored format (f32, f16, bf16 or a ggml block
//! format) and split into chunks of rows where a matrix exceeds the adapter's largest storage
//! binding (128 MiB on lavapipe). Kernels dequantize as they read.

pub mod quant;

use anyhow::{bail, Result};

use crate::device::Gpu;

/// How a weight matrix is stored on the GPU; kernels convert to f32 as they read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(non_camel_case_types)]
pub enum DType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q4_K,
    Q5_K,
    Q6_K,
}

impl DType {
    /// Elements per block (1 for plain floats).
    pub fn block_size(self) -> usize {
        match self {
            DType::F32 | DType::F16 | DType::BF16 => 1,
            DType::Q8_0 | DType::Q4_0 | DType::Q4_1 => 32,
            DType::Q4_K | DType::Q5_K | DType::Q6_K => 256,
        }
    }

    /// Plain floats (f32, f16, bf16) rather than quantized blocks.
    pub fn is_float(self) -> bool {
        self.block_size() == 1
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q8_0 => 34,
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
            DType::Q4_K => 144,
            DType::Q5_K => 176,
            DType::Q6_K => 210,
        }
    }

    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Bytes of `n` elements (`n` a multiple of the block size).
    pub fn bytes_for(self, n: usize) -> usize {
        n / self.block_size() * self.block_bytes()
    }

    /// Bytes per element of a plain float type.
    pub fn size(self) -> usize {
        self.block_bytes()
    }

    /// The WGSL define that selects this dtype's `w_at` in `shaders/lib/weights.wgsl`.
    pub fn define(self) -> &'static str {
        match self {
            DType::F32 => "W_F32",
            DType::F16 => "W_F16",
            DType::BF16 => "W_BF16",
            DType::Q8_0 => "W_Q8_0",
            DType::Q4_0 => "W_Q4_0",
            DType::Q4_1 => "W_Q4_1",
            DType::Q4_K => "W_Q4_K",
            DType::Q5_K => "W_Q5_K",
            DType::Q6_K => "W_Q6_K",
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

    /// Decodes stored elements to f32 (host side, for references and small tensors).
    pub fn to_f32(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            DType::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            DType::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            DType::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            q => quant::dequantize(q, bytes),
        }
    }
}

/// How the blocks of a ggml format with a planar form (Q8_0, Q4_0, Q4_1, Q6_K) lie in a chunk's
/// buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// As stored in GGUF: each block's scale (Q4_1: scale and min) then its quants.
    Ggml,
    /// The same bytes in two planes: every block's quants first (block b at byte 32b for Q8_0,
    /// 16b for Q4_0 and Q4_1; for Q6_K its first 208 bytes, ql, qh and the sub-block scales, at
    /// 208b), then every block's scale (an f16 per block; Q4_1 one word of scale and min). A
    /// block's quants are then aligned 16-byte vectors that a CPU adapter loads in whole reads,
    /// where a 34-, 20- or 210-byte block straddles them (see [`Layout::for_matrix`]). The
    /// kernels read the same values either way.
    Planar,
}

impl Layout {
    /// The layout a linear layer or embedding table of `dtype` gets on `gpu`: planar for the
    /// formats that have one on CPU adapters (`Gpu::subgroup_x`), where the matrix-vector
    /// kernel's per-lane loads cost per word (see `shaders/lib/weights.wgsl`); as stored
    /// everywhere else.
    pub fn for_matrix(gpu: &Gpu, dtype: DType) -> Layout {
        if gpu.subgroup_x && Self::has_planar(dtype) { Layout::Planar } else { Layout::Ggml }
    }

    pub fn has_planar(dtype: DType) -> bool {
        Self::planes(dtype).is_some()
    }

    /// Bytes of quants and of scale per block of `dtype`, and whether the scale leads the block
    /// as stored (Q6_K's d ends it); `None` for formats without a planar form.
    fn planes(dtype: DType) -> Option<(usize, usize, bool)> {
        match dtype {
            DType::Q8_0 => Some((32, 2, true)),
            DType::Q4_0 => Some((16, 2, true)),
            DType::Q4_1 => Some((16, 4, true)),
            DType::Q6_K => Some((208, 2, false)),
            _ => None,
        }
    }

    /// `blocks` whole ggml blocks rearranged into this layout.
    fn arrange(self, dtype: DType, blocks: &[u8]) -> std::borrow::Cow<'_, [u8]> {
        if self == Layout::Ggml {
            return std::borrow::Cow::Borrowed(blocks);
        }
        let (q, s, lead) = Self::planes(dtype).expect("checked by append_as");
        let n = blocks.len() / (q + s);
        let mut out = vec![0u8; blocks.len()];
        let (quants, scales) = out.split_at_mut(n * q);
        for (b, block) in blocks.chunks_exact(q + s).enumerate() {
            let (sc, qs) = if lead { (&block[..s], &block[s..]) } else { (&block[q..], &block[..q]) };
            scales[b * s..(b + 1) * s].copy_from_slice(sc);
            quants[b * q..(b + 1) * q].copy_from_slice(qs);
        }
        std::borrow::Cow::Owned(out)
    }
}

/// Rows `row0 .. row0 + rows` of a matrix, in one buffer, in one format.
pub struct Chunk {
    pub buf: wgpu::Buffer,
    pub row0: usize,
    pub rows: usize,
    pub dtype: DType,
    /// Elements per stored row: `cols`, padded to even for 16-bit dtypes so rows start on a u32.
    pub stride: usize,
    pub layout: Layout,
}

impl Chunk {
    /// Where the scales plane starts, in u32 words (0 in the ggml layout): the kernels' `w_scales`.
    pub fn scales_word(&self) -> usize {
        match self.layout {
            Layout::Ggml => 0,
            Layout::Planar => self.rows * self.stride / self.dtype.block_size() * Layout::planes(self.dtype).expect("planar chunk").0 / 4,
        }
    }

    /// The shader defines of this chunk's format: its dtype's, and `W_PLANAR` for that layout.
    pub fn defines(&self) -> Vec<&'static str> {
        match self.layout {
            Layout::Ggml => vec![self.dtype.define()],
            Layout::Planar => vec![self.dtype.define(), "W_PLANAR"],
        }
    }
}

/// A `[rows, cols]` row-major weight matrix (a linear layer's `[out, in]`, an embedding table),
/// possibly made of parts stored in different formats (q, k and v of one layer, say).
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub chunks: Vec<Chunk>,
}

impl Matrix {
    /// Uploads a dense row-major `[rows, cols]` matrix given as raw little-endian bytes, in the
    /// layout [`Layout::for_matrix`] picks (for linear layers and embedding tables).
    pub fn upload(gpu: &Gpu, name: &str, dtype: DType, rows: usize, cols: usize, bytes: &[u8]) -> Result<Matrix> {
        Self::upload_as(gpu, name, dtype, Layout::for_matrix(gpu, dtype), rows, cols, bytes)
    }

    /// [`upload`](Self::upload) in a given layout.
    pub fn upload_as(gpu: &Gpu, name: &str, dtype: DType, layout: Layout, rows: usize, cols: usize, bytes: &[u8]) -> Result<Matrix> {
        let mut m = Matrix { rows: 0, cols, chunks: Vec::new() };
        m.append_as(gpu, name, dtype, layout, rows, bytes)?;
        Ok(m)
    }

    /// Appends `rows` more rows stored as `dtype`, in the layout [`Layout::for_matrix`] picks.
    pub fn append(&mut self, gpu: &Gpu, name: &str, dtype: DType, rows: usize, bytes: &[u8]) -> Result<()> {
        self.append_as(gpu, name, dtype, Layout::for_matrix(gpu, dtype), rows, bytes)
    }

    /// Appends `rows` more rows stored as `dtype` in `layout` (planar only where
    /// [`Layout::has_planar`]).
    pub fn append_as(&mut self, gpu: &Gpu, name: &str, dtype: DType, layout: Layout, rows: usize, bytes: &[u8]) -> Result<()> {
        let cols = self.cols;
        if layout == Layout::Planar && !Layout::has_planar(dtype) {
            bail!("{name}: {dtype:?} has no planar layout (Q8_0, Q4_0, Q4_1 and Q6_K have)");
        }
        if cols % dtype.block_size() != 0 {
            bail!("{name}: rows of {cols} elements are not whole {dtype:?} blocks of {}", dtype.block_size());
        }
        let row_bytes = dtype.bytes_for(cols);
        if bytes.len() != rows * row_bytes {
            bail!("{name}: expected {rows}x{cols} {dtype:?} ({} bytes), got {} bytes", rows * row_bytes, bytes.len());
        }
        let stride = if dtype.block_bytes() == 2 { cols.next_multiple_of(2) } else { cols };
        let stored_row = dtype.bytes_for(stride) as u64;
        let per_chunk = (gpu.max_binding / stored_row).max(1) as usize;
        let mut r = 0;
        while r < rows {
            let n = per_chunk.min(rows - r);
            let src = &bytes[r * row_bytes..(r + n) * row_bytes];
            let buf = if stride == cols {
                gpu.upload(name, &layout.arrange(dtype, src))?
            } else {
                let sb = stored_row as usize;
                let mut padded = vec![0u8; n * sb];
                for i in 0..n {
                    padded[i * sb..i * sb + row_bytes].copy_from_slice(&src[i * row_bytes..(i + 1) * row_bytes]);
                }
                gpu.upload(name, &padded)?
            };
            self.chunks.push(Chunk { buf, row0: self.rows + r, rows: n, dtype, stride, layout });
            r += n;
        }
        self.rows += rows;
        Ok(())
    }

    pub fn bytes_on_gpu(&self) -> u64 {
        self.chunks.iter().map(|c| c.buf.size()).sum()
    }
}

/// Raw little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}
