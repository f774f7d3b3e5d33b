//! The KV cache: per layer, keys and values of `rows` positions. A sequence owns a contiguous
//! range of rows starting at its base; position p of it lives at row base + p.
//!
//! A layer's keys (and values) are one buffer while they fit in the adapter's largest binding,
//! else split in up to [`MAX_CHUNKS`] buffers of `chunk_rows` rows each. Kernels address rows,
//! not chunks (attention reads row by row in its fixed key order), so the layout changes no
//! number: a chunked cache gives bit-identical results.

use anyhow::{bail, Result};

use crate::device::Gpu;
use crate::kernels::attention::MAX_CHUNKS;
use crate::model::decoder::LayerCache;

pub struct KvCache {
    pub rows: usize,
    /// Rows per chunk (`rows` when the cache is one chunk).
    pub chunk_rows: usize,
    /// Per layer, the chunks of keys / values.
    k: Vec<Vec<wgpu::Buffer>>,
    v: Vec<Vec<wgpu::Buffer>>,
}

impl KvCache {
    /// A cache of `rows` positions, in chunks as large as the adapter's largest binding allows.
    pub fn new(gpu: &Gpu, layers: usize, kv_dim: usize, rows: usize) -> Result<KvCache> {
        Self::with_chunk_rows(gpu, layers, kv_dim, rows, None)
    }

    /// [`new`](Self::new) with at most `chunk_rows` rows per chunk (a smaller size than the
    /// binding limit, to exercise chunking on small caches).
    pub fn with_chunk_rows(gpu: &Gpu, layers: usize, kv_dim: usize, rows: usize, chunk_rows: Option<usize>) -> Result<KvCache> {
        let row_bytes = (kv_dim * 4) as u64;
        let fit = (gpu.max_binding / row_bytes) as usize;
        if fit == 0 {
            bail!("KV cache: one position ({row_bytes} bytes per layer) is above the adapter's largest binding");
        }
        let mut chunk = chunk_rows.unwrap_or(usize::MAX).min(fit).max(1);
        if chunk_rows.is_none() && chunk > 256 {
            chunk -= chunk % 256;
        }
        let chunk = chunk.min(rows.max(1));
        let chunks = rows.max(1).div_ceil(chunk);
        if chunks > MAX_CHUNKS {
            bail!(
                "KV cache of {rows} positions needs {} MiB per layer: {chunks} chunks of {chunk} positions (the adapter's largest binding is {} MiB), above the {MAX_CHUNKS} the attention kernel binds: lower --batch-size or the context length",
                (rows as u64 * row_bytes) >> 20,
                gpu.max_binding >> 20
            );
        }
        let mut k = Vec::with_capacity(layers);
        let mut v = Vec::with_capacity(layers);
        for _ in 0..layers {
            let (mut kl, mut vl) = (Vec::with_capacity(chunks), Vec::with_capacity(chunks));
            for c in 0..chunks {
                let n = chunk.min(rows.max(1) - c * chunk) as u64;
                kl.push(gpu.storage("k cache", n * row_bytes)?);
                vl.push(gpu.storage("v cache", n * row_bytes)?);
            }
            k.push(kl);
            v.push(vl);
        }
        Ok(KvCache { rows, chunk_rows: chunk, k, v })
    }

    /// Chunks per layer.
    pub fn chunks(&self) -> usize {
        self.k.first().map_or(1, |c| c.len())
    }

    /// Records copies of `rows` cached positions from row `src` to row `dst` in every layer.
    pub fn record_copy(&self, rec: &mut crate::device::Recorder, kv_dim: usize, rows: usize, src: usize, dst: usize) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        for lc in self.layers() {
            crate::kernels::kv_copy::kv_copy(rec, &lc, kv_dim, rows, src, dst)?;
        }
        Ok(())
    }

    pub fn layers(&self) -> Vec<LayerCache<'_>> {
        self.k.iter().zip(&self.v).map(|(k, v)| LayerCache { k, v, chunk_rows: self.chunk_rows }).collect()
    }
}
