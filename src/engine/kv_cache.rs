//! The KV cache: per layer, keys and values of `rows` positions. A sequence owns a contiguous
//! range of rows starting at its base; position p of it lives at row base + p.

use anyhow::{bail, Result};

use crate::device::Gpu;
use crate::model::decoder::LayerCache;

pub struct KvCache {
    pub rows: usize,
    k: Vec<wgpu::Buffer>,
    v: Vec<wgpu::Buffer>,
}

impl KvCache {
    pub fn new(gpu: &Gpu, layers: usize, kv_dim: usize, rows: usize) -> Result<KvCache> {
        let bytes = (rows * kv_dim * 4) as u64;
        if bytes > gpu.max_binding {
            bail!(
                "KV cache of {rows} positions needs {} MiB per layer, above the adapter's largest binding ({} MiB): lower --batch-size",
                bytes >> 20,
                gpu.max_binding >> 20
            );
        }
        let mut k = Vec::with_capacity(layers);
        let mut v = Vec::with_capacity(layers);
        for _ in 0..layers {
            k.push(gpu.storage("k cache", bytes)?);
            v.push(gpu.storage("v cache", bytes)?);
        }
        Ok(KvCache { rows, k, v })
    }

    /// Records copies of `rows` cached positions from row `src` to row `dst` in every layer.
    pub fn record_copy(&self, rec: &mut crate::device::Recorder, kv_dim: usize, rows: usize, src: usize, dst: usize) -> Result<()> {
        for (k, v) in self.k.iter().zip(&self.v) {
            crate::kernels::kv_copy::kv_copy(rec, k, v, kv_dim, rows, src, dst)?;
        }
        Ok(())
    }

    pub fn layers(&self) -> Vec<LayerCache<'_>> {
        self.k.iter().zip(&self.v).map(|(k, v)| LayerCache { k, v }).collect()
    }
}
