//! Conformance: per-position logit dumps (`pingce logits`, `tools/export_reference.py`) and their
//! comparison (`pingce compare`). The file layout is documented in `docs/logit-dump.md`.
//!
//! A dump is a safetensors file: one row per scored position (the target token's log-prob, the
//! top-k ids and log-probs, the log of the probability mass outside the top-k), the token ids and
//! where each position sits, and in the header's `__metadata__` a JSON manifest naming the model
//! files (sha256), the input file (sha256), the adapter and the producer.

pub mod compare;
pub mod record;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

/// `__metadata__["format"]` of every dump.
pub const FORMAT: &str = "pingce-logits";
/// Version of the layout described in docs/logit-dump.md.
pub const FORMAT_VERSION: u32 = 1;
/// Largest top-k a dump may hold (the logprobs kernel's limit).
pub const MAX_TOPK: usize = crate::engine::MAX_TOPK;

pub use crate::digest::FileHash;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `--model` as given (a GGUF file or a Hugging Face folder).
    pub path: String,
    /// Every file the model was loaded from (weights, and for folders config.json and
    /// tokenizer.json), with its sha256.
    pub files: Vec<FileHash>,
    pub vocab_size: usize,
    /// Context length used for scoring (and for rolling windows).
    pub max_length: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputInfo {
    /// "requests" ({"context", "continuation"} JSONL) or "text" (one text, rolling windows).
    pub kind: String,
    pub path: String,
    pub sha256: String,
}

/// The JSON manifest in the header's `__metadata__["manifest"]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// What computed the numbers: "pingce 0.1.0", "transformers 5.23.0 (torch 2.15.0, float32)".
    pub producer: String,
    /// The pingce version that wrote the dump; null for other producers.
    pub pingce_version: Option<String>,
    pub model: ModelInfo,
    /// Where the tokenizer came from and its special tokens (free-form object).
    pub tokenizer: serde_json::Value,
    pub input: InputInfo,
    /// The adapter (`Gpu::describe`), or the other producer's device and dtype.
    pub adapter: String,
    pub top_k: usize,
    pub positions: usize,
    pub requests: usize,
    /// Anything else a producer records (library versions, settings).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A dump in memory. Row `i` is one scored position; `topk_*` rows hold `k` entries, sorted by
/// decreasing log-prob (so `topk_ids[i][0]` is the argmax, ties to the smaller id).
#[derive(Clone, Debug)]
pub struct Dump {
    pub manifest: Manifest,
    pub k: usize,
    pub target_logprob: Vec<f32>,
    pub topk_ids: Vec<i32>,
    pub topk_logprobs: Vec<f32>,
    pub tail_logmass: Vec<f32>,
    pub token_ids: Vec<i32>,
    pub request_index: Vec<i32>,
    pub position: Vec<i32>,
    pub is_argmax: Vec<u8>,
    /// Per request: sha256 of the context string (request dumps only; groups multiple choice).
    pub context_sha256: Option<Vec<[u8; 32]>>,
    /// Per request: 1 correct choice, 0 wrong choice, -1 not labelled (only if any is labelled).
    pub gold: Option<Vec<i8>>,
    /// Optional whole log-softmax rows: the dump rows they belong to, and `[rows, vocab]` values.
    pub full_row_index: Option<Vec<i32>>,
    pub full_logprobs: Option<Vec<f32>>,
}

/// ln(1 - Σ exp(lp)) in f64: the log of the probability mass outside the given top-k log-probs.
/// Computed as log1mexp of their log-sum-exp, so it is accurate both when the top-k holds almost
/// nothing (ln_1p) and almost everything (expm1). `-inf` when the sum rounds to 1 or more.
pub fn tail_logmass(lps: &[f32]) -> f64 {
    let m = lps.iter().map(|&x| x as f64).fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return 0.0; // nothing in the top-k: all the mass is in the tail
    }
    if m.is_nan() {
        return f64::NAN;
    }
    let lse = m + lps.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
    log1mexp(lse)
}

/// ln(1 - exp(x)) for x <= 0; `-inf` for x >= 0.
pub fn log1mexp(x: f64) -> f64 {
    if x.is_nan() {
        f64::NAN
    } else if x >= 0.0 {
        f64::NEG_INFINITY
    } else if x > -std::f64::consts::LN_2 {
        (-x.exp_m1()).ln()
    } else {
        (-x.exp()).ln_1p()
    }
}

fn le_bytes<T: bytemuck::Pod>(v: &[T]) -> Vec<u8> {
    // Safetensors data is little endian; so is every target wgpu runs on.
    bytemuck::cast_slice(v).to_vec()
}

fn st_err(path: &Path, e: SafeTensorError) -> anyhow::Error {
    match e {
        SafeTensorError::MetadataIncompleteBuffer | SafeTensorError::InvalidHeaderLength | SafeTensorError::HeaderTooSmall => {
            anyhow::anyhow!("{}: truncated or corrupted logit dump ({e})", path.display())
        }
        e => anyhow::anyhow!("{}: not a valid safetensors logit dump ({e})", path.display()),
    }
}

impl Dump {
    /// Number of scored positions.
    pub fn len(&self) -> usize {
        self.target_logprob.len()
    }

    pub fn is_empty(&self) -> bool {
        self.target_logprob.is_empty()
    }

    pub fn requests(&self) -> usize {
        self.manifest.requests
    }

    /// The whole log-softmax row of dump row `i`, if the dump holds it.
    pub fn full_row(&self, i: usize) -> Option<&[f32]> {
        let idx = self.full_row_index.as_ref()?;
        let j = idx.iter().position(|&x| x as usize == i)?;
        let v = self.manifest.model.vocab_size;
        self.full_logprobs.as_ref().map(|rows| &rows[j * v..(j + 1) * v])
    }

    pub fn topk_ids_row(&self, i: usize) -> &[i32] {
        &self.topk_ids[i * self.k..(i + 1) * self.k]
    }

    pub fn topk_logprobs_row(&self, i: usize) -> &[f32] {
        &self.topk_logprobs[i * self.k..(i + 1) * self.k]
    }

    /// Sets `tail_logmass` from the top-k log-probs.
    pub fn compute_tails(&mut self) {
        self.tail_logmass = (0..self.len()).map(|i| tail_logmass(self.topk_logprobs_row(i)) as f32).collect();
    }

    /// The safetensors bytes of the dump.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.validate().context("refusing to write an inconsistent dump")?;
        self.to_bytes_unchecked()
    }

    /// [`to_bytes`](Self::to_bytes) without validation: tests use it to make inconsistent files.
    pub fn to_bytes_unchecked(&self) -> Result<Vec<u8>> {
        let n = self.len();
        let r = self.requests();
        let mut bufs: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
            ("target_logprob", Dtype::F32, vec![n], le_bytes(&self.target_logprob)),
            ("topk_ids", Dtype::I32, vec![n, self.k], le_bytes(&self.topk_ids)),
            ("topk_logprobs", Dtype::F32, vec![n, self.k], le_bytes(&self.topk_logprobs)),
            ("tail_logmass", Dtype::F32, vec![n], le_bytes(&self.tail_logmass)),
            ("token_ids", Dtype::I32, vec![n], le_bytes(&self.token_ids)),
            ("request_index", Dtype::I32, vec![n], le_bytes(&self.request_index)),
            ("position", Dtype::I32, vec![n], le_bytes(&self.position)),
            ("is_argmax", Dtype::U8, vec![n], self.is_argmax.clone()),
        ];
        if let Some(h) = &self.context_sha256 {
            bufs.push(("context_sha256", Dtype::U8, vec![r, 32], h.concat()));
        }
        if let Some(g) = &self.gold {
            bufs.push(("gold", Dtype::I8, vec![r], le_bytes(g)));
        }
        if let (Some(idx), Some(rows)) = (&self.full_row_index, &self.full_logprobs) {
            bufs.push(("full_row_index", Dtype::I32, vec![idx.len()], le_bytes(idx)));
            bufs.push(("full_logprobs", Dtype::F32, vec![idx.len(), self.manifest.model.vocab_size], le_bytes(rows)));
        }
        let mut views = Vec::with_capacity(bufs.len());
        for (name, dt, shape, data) in &bufs {
            views.push((name.to_string(), TensorView::new(*dt, shape.clone(), data).map_err(|e| anyhow::anyhow!("{name}: {e}"))?));
        }
        // One key only: safetensors writes __metadata__ in HashMap order, and a dump must be the
        // same bytes every time.
        let meta = HashMap::from([("manifest".to_string(), serde_json::to_string(&self.manifest)?)]);
        safetensors::tensor::serialize(views, Some(meta)).map_err(|e| anyhow::anyhow!("serializing the dump: {e}"))
    }

    /// Writes the dump to `path` atomically: a temporary file in the same folder, synced, then
    /// renamed over `path`. On failure nothing is left at `path` (nor a temporary file).
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes)
    }

    /// Reads and validates a dump; every error names the file.
    pub fn read(path: &Path) -> Result<Dump> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Dump::from_bytes(&bytes, path)
    }

    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Dump> {
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| st_err(path, e))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| st_err(path, e))?;
        let md = meta.metadata().clone().unwrap_or_default();
        let text = md.get("manifest").with_context(|| {
            format!("{}: no \"manifest\" in __metadata__: not a logit dump written by pingce logits or tools/export_reference.py", path.display())
        })?;
        let manifest: Manifest = serde_json::from_str(text).with_context(|| format!("{}: the manifest in __metadata__ is not valid", path.display()))?;
        if manifest.format != FORMAT {
            bail!("{}: manifest format is {:?}, expected {FORMAT:?} (not a logit dump)", path.display(), manifest.format);
        }
        if manifest.format_version != FORMAT_VERSION {
            bail!("{}: format_version {} (this pingce reads version {FORMAT_VERSION})", path.display(), manifest.format_version);
        }
        let get = |name: &str, dt: Dtype, rank: usize| -> Result<TensorView<'_>> {
            let t = st.tensor(name).map_err(|_| anyhow::anyhow!("{}: no tensor {name:?}", path.display()))?;
            ensure!(t.dtype() == dt, "{}: tensor {name} is {:?}, expected {dt:?}", path.display(), t.dtype());
            ensure!(t.shape().len() == rank, "{}: tensor {name} has shape {:?}, expected {rank} dimension(s)", path.display(), t.shape());
            Ok(t)
        };
        fn f32s(t: &TensorView<'_>) -> Vec<f32> {
            t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
        }
        fn i32s(t: &TensorView<'_>) -> Vec<i32> {
            t.data().chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect()
        }
        let topk = get("topk_ids", Dtype::I32, 2)?;
        let k = topk.shape()[1];
        let context_sha256 = match st.tensor("context_sha256") {
            Ok(_) => {
                let t = get("context_sha256", Dtype::U8, 2)?;
                ensure!(t.shape()[1] == 32, "{}: context_sha256 has shape {:?}, expected [requests, 32]", path.display(), t.shape());
                Some(t.data().chunks_exact(32).map(|c| c.try_into().unwrap()).collect())
            }
            Err(_) => None,
        };
        let gold = match st.tensor("gold") {
            Ok(_) => Some(get("gold", Dtype::I8, 1)?.data().iter().map(|&b| b as i8).collect()),
            Err(_) => None,
        };
        let (full_row_index, full_logprobs) = match st.tensor("full_row_index") {
            Ok(_) => (Some(i32s(&get("full_row_index", Dtype::I32, 1)?)), Some(f32s(&get("full_logprobs", Dtype::F32, 2)?))),
            Err(_) => (None, None),
        };
        let d = Dump {
            full_row_index,
            full_logprobs,
            manifest,
            k,
            target_logprob: f32s(&get("target_logprob", Dtype::F32, 1)?),
            topk_ids: i32s(&topk),
            topk_logprobs: f32s(&get("topk_logprobs", Dtype::F32, 2)?),
            tail_logmass: f32s(&get("tail_logmass", Dtype::F32, 1)?),
            token_ids: i32s(&get("token_ids", Dtype::I32, 1)?),
            request_index: i32s(&get("request_index", Dtype::I32, 1)?),
            position: i32s(&get("position", Dtype::I32, 1)?),
            is_argmax: get("is_argmax", Dtype::U8, 1)?.data().to_vec(),
            context_sha256,
            gold,
        };
        d.validate().with_context(|| format!("{}: inconsistent logit dump", path.display()))?;
        Ok(d)
    }

    /// Checks shapes, the manifest's counts, id ranges and the position layout.
    pub fn validate(&self) -> Result<()> {
        let n = self.len();
        let m = &self.manifest;
        ensure!(m.format == FORMAT, "manifest format is {:?}, expected {FORMAT:?}", m.format);
        ensure!(self.k >= 1 && self.k <= MAX_TOPK, "top-k is {}; must be 1..={MAX_TOPK}", self.k);
        ensure!(m.top_k == self.k, "manifest top_k {} but topk_ids has {} columns", m.top_k, self.k);
        ensure!(m.positions == n, "manifest says {} positions, target_logprob has {n}", m.positions);
        for (name, len, want) in [
            ("topk_ids", self.topk_ids.len(), n * self.k),
            ("topk_logprobs", self.topk_logprobs.len(), n * self.k),
            ("tail_logmass", self.tail_logmass.len(), n),
            ("token_ids", self.token_ids.len(), n),
            ("request_index", self.request_index.len(), n),
            ("position", self.position.len(), n),
            ("is_argmax", self.is_argmax.len(), n),
        ] {
            ensure!(len == want, "{name} has {len} elements, expected {want}");
        }
        let r = m.requests;
        if let Some(h) = &self.context_sha256 {
            ensure!(h.len() == r, "context_sha256 has {} rows, manifest says {r} requests", h.len());
        }
        match (&self.full_row_index, &self.full_logprobs) {
            (Some(idx), Some(rows)) => {
                ensure!(rows.len() == idx.len() * m.model.vocab_size, "full_logprobs has {} values for {} rows of {}", rows.len(), idx.len(), m.model.vocab_size);
                ensure!(idx.iter().all(|&i| i >= 0 && (i as usize) < n), "full_row_index points outside the {n} positions");
            }
            (None, None) => {}
            _ => bail!("full_row_index and full_logprobs must come together"),
        }
        if let Some(g) = &self.gold {
            ensure!(g.len() == r, "gold has {} entries, manifest says {r} requests", g.len());
            ensure!(g.iter().all(|&x| (-1..=1).contains(&x)), "gold entries must be -1, 0 or 1");
        }
        let vocab = m.model.vocab_size as i64;
        for i in 0..n {
            let t = self.token_ids[i] as i64;
            ensure!((0..vocab).contains(&t), "row {i}: token id {t} outside the vocabulary of {vocab}");
            for &id in self.topk_ids_row(i) {
                ensure!((0..vocab).contains(&(id as i64)), "row {i}: top-k id {id} outside the vocabulary of {vocab}");
            }
            let ri = self.request_index[i];
            let prev = if i == 0 { -1 } else { self.request_index[i - 1] };
            ensure!(ri == prev || ri == prev + 1, "row {i}: request_index {ri} after {prev} (must count up from 0 without gaps)");
            ensure!(self.position[i] >= 1, "row {i}: position {} (a scored token has at least one token before it)", self.position[i]);
            if ri == prev {
                ensure!(self.position[i] > self.position[i - 1], "row {i}: positions within request {ri} must increase");
            }
            ensure!(self.is_argmax[i] <= 1, "row {i}: is_argmax must be 0 or 1");
        }
        let seen = if n == 0 { 0 } else { self.request_index[n - 1] as usize + 1 };
        ensure!(seen == r, "rows cover {seen} requests, manifest says {r}");
        Ok(())
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().with_context(|| format!("{}: not a file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let res = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
        drop(f);
        std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}
