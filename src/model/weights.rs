//! Tensors by name: memory-mapped safetensors (one file or shards listed in
//! `model.safetensors.index.json`), or tensors held in memory (synthetic models for benches).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::bytes::FileBytes;
use crate::tensor::DType;

/// A tensor's dtype, shape and raw little-endian bytes.
pub struct TensorRef<'a> {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: Cow<'a, [u8]>,
}

impl TensorRef<'_> {
    pub fn expect_shape(&self, shape: &[usize]) -> Result<()> {
        if self.shape != shape {
            bail!("tensor {}: shape {:?}, expected {:?}", self.name, self.shape, shape);
        }
        Ok(())
    }

    pub fn to_f32(&self) -> Vec<f32> {
        self.dtype.to_f32(&self.bytes)
    }
}

/// Where a model's tensors come from.
pub trait TensorSource {
    fn tensor(&self, name: &str) -> Result<TensorRef<'_>>;
    fn contains(&self, name: &str) -> bool;
    /// The stored dtype of tensor `name`, from the header only (memory plans read no weights).
    fn dtype_of(&self, name: &str) -> Result<DType> {
        Ok(self.tensor(name)?.dtype)
    }
    /// The file bytes tensor `name` is stored in, as is, and its byte range there: host memory
    /// can then keep a reference to the (memory-mapped) file instead of a copy.
    fn backing(&self, _name: &str) -> Option<(Arc<FileBytes>, Range<usize>)> {
        None
    }
    /// Every file read, for manifests.
    fn files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
}

struct Entry {
    file: usize,
    dtype: DType,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// The safetensors files of a model folder, memory-mapped.
pub struct Safetensors {
    paths: Vec<PathBuf>,
    maps: Vec<Arc<FileBytes>>,
    entries: HashMap<String, Entry>,
}

impl Safetensors {
    /// Opens `dir/model.safetensors.index.json`'s shards, or `dir/model.safetensors`.
    pub fn open_dir(dir: &Path) -> Result<Safetensors> {
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index.exists() {
            let text = std::fs::read_to_string(&index).with_context(|| format!("reading {}", index.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", index.display()))?;
            let map = v.get("weight_map").and_then(|m| m.as_object()).with_context(|| format!("{}: no \"weight_map\" object", index.display()))?;
            let names: BTreeSet<&str> = map.values().filter_map(|f| f.as_str()).collect();
            names.into_iter().map(|f| dir.join(f)).collect()
        } else if dir.join("model.safetensors").exists() {
            vec![dir.join("model.safetensors")]
        } else {
            bail!("{}: no model.safetensors or model.safetensors.index.json", dir.display());
        };
        Safetensors::open(&files)
    }

    pub fn open(files: &[PathBuf]) -> Result<Safetensors> {
        let mut st = Safetensors { paths: Vec::new(), maps: Vec::new(), entries: HashMap::new() };
        for path in files {
            st.add(path, FileBytes::map(path).with_context(|| format!("weight file {}", path.display()))?)?;
        }
        Ok(st)
    }

    /// One safetensors file held in memory; `path` only names it in messages.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Safetensors> {
        let mut st = Safetensors { paths: Vec::new(), maps: Vec::new(), entries: HashMap::new() };
        st.add(path, FileBytes::Owned(bytes))?;
        Ok(st)
    }

    /// Adds one file's tensors, checking each lies inside the file with the bytes its dtype and
    /// shape need.
    fn add(&mut self, path: &Path, map: FileBytes) -> Result<()> {
        let i = self.maps.len();
        let (header_len, meta) = safetensors::SafeTensors::read_metadata(&map).map_err(|e| match e {
            safetensors::SafeTensorError::MetadataIncompleteBuffer => {
                anyhow::anyhow!("{}: truncated: its header describes more data than the file's {} bytes", path.display(), map.len())
            }
            e => anyhow::anyhow!("{}: not a valid safetensors file ({e})", path.display()),
        })?;
        let data_start = header_len.checked_add(8).with_context(|| format!("{}: header length {header_len} overflows", path.display()))?;
        for (name, info) in meta.tensors() {
            let dtype = DType::from_safetensors(info.dtype)
                .with_context(|| format!("{}: tensor {name} has dtype {:?}; supported: F32, F16, BF16", path.display(), info.dtype))?;
            let (s, e) = info.data_offsets;
            let range = data_start.checked_add(s).zip(data_start.checked_add(e)).filter(|(start, end)| start <= end && *end <= map.len());
            let Some((start, end)) = range else {
                bail!("{}: truncated: tensor {name} (data offsets {s}..{e} after byte {data_start}) is not inside the file's {} bytes", path.display(), map.len());
            };
            let bytes = info.shape.iter().try_fold(dtype.size(), |a, &d| a.checked_mul(d));
            if bytes != Some(end - start) {
                bail!("{}: tensor {name}: shape {:?} does not match its {} bytes", path.display(), info.shape, end - start);
            }
            if info.shape.len() > 4 {
                bail!("{}: tensor {name}: {} dimensions, expected at most 4", path.display(), info.shape.len());
            }
            self.entries.insert(name.clone(), Entry { file: i, dtype, shape: info.shape.clone(), start, end });
        }
        self.paths.push(path.to_path_buf());
        self.maps.push(Arc::new(map));
        Ok(())
    }
}

impl TensorSource for Safetensors {
    fn tensor(&self, name: &str) -> Result<TensorRef<'_>> {
        let e = self.entries.get(name).with_context(|| format!("weights: no tensor named {name}"))?;
        Ok(TensorRef { name: name.into(), dtype: e.dtype, shape: e.shape.clone(), bytes: Cow::Borrowed(&self.maps[e.file][e.start..e.end]) })
    }
    fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }
    fn backing(&self, name: &str) -> Option<(Arc<FileBytes>, Range<usize>)> {
        let e = self.entries.get(name)?;
        Some((self.maps[e.file].clone(), e.start..e.end))
    }
    fn files(&self) -> Vec<PathBuf> {
        self.paths.clone()
    }
}

/// Tensors held in memory.
#[derive(Default)]
pub struct MemoryTensors {
    pub tensors: HashMap<String, (DType, Vec<usize>, Vec<u8>)>,
}

impl MemoryTensors {
    pub fn insert_f32(&mut self, name: &str, shape: &[usize], data: &[f32]) {
        self.tensors.insert(name.into(), (DType::F32, shape.to_vec(), bytemuck::cast_slice(data).to_vec()));
    }
    pub fn insert(&mut self, name: &str, dtype: DType, shape: &[usize], bytes: Vec<u8>) {
        self.tensors.insert(name.into(), (dtype, shape.to_vec(), bytes));
    }
}

impl TensorSource for MemoryTensors {
    fn tensor(&self, name: &str) -> Result<TensorRef<'_>> {
        let (dtype, shape, bytes) = self.tensors.get(name).with_context(|| format!("weights: no tensor named {name}"))?;
        Ok(TensorRef { name: name.into(), dtype: *dtype, shape: shape.clone(), bytes: Cow::Borrowed(bytes) })
    }
    fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}
