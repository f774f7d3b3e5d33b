//! GGUF files (versions 2 and 3): metadata of every value type, tensor infos, alignment and
//! memory-mapped tensor data; and the mapping of a llama / qwen2 / qwen3 / qwen2moe / qwen3moe /
//! deepseek2 GGUF onto the
//! Hugging Face names, config and weight layout the decoder uses.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::bytes::FileBytes;
use super::config::Config;
use super::weights::{TensorRef, TensorSource};
use crate::tensor::DType;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        Some(match *self {
            Value::U8(v) => v as u64,
            Value::U16(v) => v as u64,
            Value::U32(v) => v as u64,
            Value::U64(v) => v,
            Value::I8(v) if v >= 0 => v as u64,
            Value::I16(v) if v >= 0 => v as u64,
            Value::I32(v) if v >= 0 => v as u64,
            Value::I64(v) if v >= 0 => v as u64,
            _ => return None,
        })
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

pub struct TensorInfo {
    /// Dimensions as ggml orders them: ne[0] is the innermost (a row's length). 1 to 4 of them,
    /// each at least 1.
    pub ne: Vec<u64>,
    pub ggml_type: u32,
    pub dtype: DType,
    pub offset: usize,
    pub len: usize,
}

pub struct Gguf {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: HashMap<String, Value>,
    pub tensors: HashMap<String, TensorInfo>,
    map: Arc<FileBytes>,
}

/// Most metadata values (array elements included) a file may hold: a tokenizer of 300k tokens
/// needs about a million (tokens, types, merges); each costs 32 bytes in memory.
pub const MAX_METADATA_VALUES: usize = 1 << 22;
/// Deepest nesting of metadata arrays (GGUF files use one level; two for arrays of arrays).
pub const MAX_ARRAY_DEPTH: usize = 4;
/// Largest `general.alignment` accepted (a power of two).
pub const MAX_ALIGNMENT: u64 = 1 << 16;

/// ggml type id → format, block size (elements) and block bytes.
fn ggml_type(t: u32) -> Option<DType> {
    Some(match t {
        0 => DType::F32,
        1 => DType::F16,
        2 => DType::Q4_0,
        3 => DType::Q4_1,
        8 => DType::Q8_0,
        12 => DType::Q4_K,
        13 => DType::Q5_K,
        14 => DType::Q6_K,
        30 => DType::BF16,
        _ => return None,
    })
}

fn ggml_type_name(t: u32) -> String {
    let names = [
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS",
        "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16",
    ];
    names.get(t as usize).map_or(format!("type {t}"), |s| s.to_string())
}

/// Bytes a value of metadata type `t` takes at least in the file (an array: its header).
fn min_value_bytes(t: u32) -> u64 {
    match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,
        9 => 12,
        _ => 8,
    }
}

/// A bounds-checked little-endian reader over the file's bytes; every size read from the file
/// is checked against the bytes left before anything is allocated for it.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    path: &'a Path,
    /// Metadata values still allowed ([`MAX_METADATA_VALUES`]).
    values_left: usize,
}

impl Reader<'_> {
    fn left(&self) -> u64 {
        (self.b.len() - self.pos) as u64
    }
    fn take(&mut self, n: u64) -> Result<&[u8]> {
        if n > self.left() {
            bail!("{}: truncated: needs {n} bytes at offset {} but the file has {}", self.path.display(), self.pos, self.b.len());
        }
        let s = &self.b[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    /// A count of items each taking at least `min_bytes` in the file: refused if they cannot fit.
    fn count(&mut self, what: &str, min_bytes: u64) -> Result<usize> {
        let at = self.pos;
        let n = self.u64()?;
        if n.checked_mul(min_bytes).is_none_or(|b| b > self.left()) {
            bail!("{}: {what} {n} at offset {at}: more than the {} bytes left in the file can hold", self.path.display(), self.left());
        }
        Ok(n as usize)
    }
    fn string(&mut self) -> Result<String> {
        let at = self.pos;
        let n = self.u64()?;
        let path = self.path;
        let bytes = self.take(n).with_context(|| format!("{}: a string of {n} bytes at offset {at}", path.display()))?;
        String::from_utf8(bytes.to_vec()).with_context(|| format!("{}: the string at offset {at} is not UTF-8", path.display()))
    }
    fn value(&mut self, t: u32, depth: usize) -> Result<Value> {
        if self.values_left == 0 {
            bail!("{}: more than {MAX_METADATA_VALUES} metadata values (offset {})", self.path.display(), self.pos);
        }
        self.values_left -= 1;
        Ok(match t {
            0 => Value::U8(self.take(1)?[0]),
            1 => Value::I8(self.take(1)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.take(2)?.try_into().unwrap())),
            3 => Value::I16(i16::from_le_bytes(self.take(2)?.try_into().unwrap())),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(self.u32()? as i32),
            6 => Value::F32(f32::from_bits(self.u32()?)),
            7 => Value::Bool(self.take(1)?[0] != 0),
            8 => Value::Str(self.string()?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    bail!("{}: metadata arrays nested deeper than {MAX_ARRAY_DEPTH} levels at offset {}", self.path.display(), self.pos);
                }
                let et = self.u32()?;
                let n = self.count("array length", min_value_bytes(et))?;
                if n > self.values_left {
                    bail!("{}: an array of {n} values at offset {}: more than {MAX_METADATA_VALUES} metadata values in all", self.path.display(), self.pos);
                }
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(et, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(self.u64()? as i64),
            12 => Value::F64(f64::from_bits(self.u64()?)),
            other => bail!("{}: unknown metadata value type {other} at offset {}", self.path.display(), self.pos - 4),
        })
    }
}

/// One tensor info as the header states it.
struct RawTensor {
    name: String,
    ne: Vec<u64>,
    ggml_type: u32,
    offset: u64,
}

impl RawTensor {
    fn read(r: &mut Reader) -> Result<RawTensor> {
        let name = r.string()?;
        let p = r.path.display();
        let nd = r.u32()?;
        if !(1..=4).contains(&nd) {
            bail!("{p}: tensor {name}: {nd} dimensions, expected 1 to 4");
        }
        let ne: Vec<u64> = (0..nd).map(|_| r.u64()).collect::<Result<_>>()?;
        if let Some(i) = ne.iter().position(|&d| d == 0) {
            bail!("{p}: tensor {name}: dimension {i} is 0, expected at least 1");
        }
        Ok(RawTensor { ggml_type: r.u32()?, offset: r.u64()?, name, ne })
    }

    /// The tensor's byte range in the file, checked: whole blocks, inside the data section.
    fn place(self, path: &Path, data_start: usize, file_len: usize, alignment: u64) -> Result<(String, TensorInfo)> {
        let (p, name) = (path.display(), &self.name);
        let elements = self.ne.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).with_context(|| format!("{p}: tensor {name}: element count {:?} overflows", self.ne))?;
        let (dtype, len) = match ggml_type(self.ggml_type) {
            Some(d) => {
                if !self.ne[0].is_multiple_of(d.block_size() as u64) {
                    bail!("{p}: tensor {name}: rows of {} are not whole {:?} blocks", self.ne[0], d);
                }
                let bytes = (elements / d.block_size() as u64).checked_mul(d.block_bytes() as u64);
                (d, bytes.with_context(|| format!("{p}: tensor {name}: byte size of {elements} elements overflows"))?)
            }
            // Unsupported types are only an error if the model needs the tensor.
            None => (DType::F32, 0),
        };
        if !self.offset.is_multiple_of(alignment) {
            bail!("{p}: tensor {name}: offset {} is not a multiple of the alignment {alignment}", self.offset);
        }
        let end = (data_start as u64).checked_add(self.offset).and_then(|s| s.checked_add(len));
        match end {
            Some(end) if end <= file_len as u64 => {}
            _ => bail!(
                "{p}: tensor {name}: {len} bytes at data offset {} end past the file's {file_len} bytes (data section starts at {data_start})",
                self.offset
            ),
        }
        let info = TensorInfo { ne: self.ne, ggml_type: self.ggml_type, dtype, offset: data_start + self.offset as usize, len: len as usize };
        Ok((self.name, info))
    }
}

/// Refuses tensors whose byte ranges overlap.
fn check_overlaps(path: &Path, tensors: &HashMap<String, TensorInfo>) -> Result<()> {
    let mut ranges: Vec<(usize, usize, &str)> = tensors.iter().filter(|(_, t)| t.len > 0).map(|(n, t)| (t.offset, t.offset + t.len, n.as_str())).collect();
    ranges.sort();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            bail!("{}: tensors {} (bytes {}..{}) and {} (bytes {}..{}) overlap", path.display(), w[0].2, w[0].0, w[0].1, w[1].2, w[1].0, w[1].1);
        }
    }
    Ok(())
}

impl Gguf {
    pub fn open(path: &Path) -> Result<Gguf> {
        Gguf::parse(path, FileBytes::map(path)?)
    }

    /// A GGUF file held in memory; `path` only names it in messages.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Gguf> {
        Gguf::parse(path, FileBytes::Owned(bytes))
    }

    fn parse(path: &Path, map: FileBytes) -> Result<Gguf> {
        let p = path.display();
        let mut r = Reader { b: &map, pos: 0, path, values_left: MAX_METADATA_VALUES };
        if r.take(4).map(|m| m != b"GGUF").unwrap_or(true) {
            bail!("{p}: not a GGUF file (no GGUF magic)");
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            bail!("{p}: GGUF version {version} is not supported (2 or 3)");
        }
        // Smallest tensor info: name length, dims, one dim, type, offset.
        let n_tensors = r.count("tensor count", 8 + 4 + 8 + 4 + 8)?;
        let n_kv = r.count("metadata key count", 8 + 4 + 1)?;
        let mut metadata = HashMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let t = r.u32()?;
            let v = r.value(t, 0).with_context(|| format!("{p}: reading metadata {key:?}"))?;
            if metadata.insert(key.clone(), v).is_some() {
                bail!("{p}: metadata key {key:?} appears twice");
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => 32,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= MAX_ALIGNMENT => a,
                _ => bail!("{p}: general.alignment is {v:?}, expected a power of two up to {MAX_ALIGNMENT}"),
            },
        };
        let mut raw = Vec::new();
        for _ in 0..n_tensors {
            raw.push(RawTensor::read(&mut r)?);
        }
        let data_start = (r.pos as u64).next_multiple_of(alignment) as usize;
        let mut tensors = HashMap::new();
        for t in raw {
            let (name, info) = t.place(path, data_start, map.len(), alignment)?;
            if tensors.contains_key(&name) {
                bail!("{p}: tensor {name} appears twice");
            }
            tensors.insert(name, info);
        }
        check_overlaps(path, &tensors)?;
        Ok(Gguf { path: path.to_path_buf(), version, metadata, tensors, map: Arc::new(map) })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    fn need_u64(&self, key: &str) -> Result<u64> {
        self.get(key).and_then(Value::as_u64).with_context(|| format!("{}: metadata is missing required key {key:?} (an integer)", self.path.display()))
    }

    fn arch(&self) -> Result<&str> {
        self.get("general.architecture").and_then(Value::as_str).with_context(|| format!("{}: metadata is missing general.architecture", self.path.display()))
    }

    /// The Hugging Face-style config these hyper-parameters describe.
    pub fn config(&self) -> Result<Config> {
        let arch = self.arch()?;
        let hf = match arch {
            "llama" => "LlamaForCausalLM",
            "qwen2" => "Qwen2ForCausalLM",
            "qwen3" => "Qwen3ForCausalLM",
            "qwen2moe" => "Qwen2MoeForCausalLM",
            "qwen3moe" => "Qwen3MoeForCausalLM",
            // llama.cpp writes DeepSeek-V2 and V3 as one architecture; V3's router is the
            // sigmoid one (expert_gating_func 2).
            "deepseek2" => match self.get("deepseek2.expert_gating_func").and_then(Value::as_u64) {
                Some(2) => "DeepseekV3ForCausalLM",
                None | Some(1) => "DeepseekV2ForCausalLM",
                Some(other) => bail!("{}: deepseek2.expert_gating_func {other} is not supported (1 softmax, 2 sigmoid)", self.path.display()),
            },
            other => bail!("{}: architecture {other:?} is not supported (llama, qwen2, qwen3, qwen2moe, qwen3moe, deepseek2)", self.path.display()),
        };
        let k = |s: &str| format!("{arch}.{s}");
        // A float hyper-parameter: absent takes `default`; present, it must be a finite number.
        let float = |key: &str, default: f64| -> Result<f64> {
            match self.get(key) {
                None => Ok(default),
                Some(v) => match v.as_f64() {
                    Some(x) if x.is_finite() => Ok(x),
                    _ => bail!("{}: {key} must be a finite number", self.path.display()),
                },
            }
        };
        let heads = self.need_u64(&k("attention.head_count"))?;
        let hidden = self.need_u64(&k("embedding_length"))?;
        let vocab = match self.get(&k("vocab_size")).and_then(Value::as_u64) {
            Some(v) => v,
            None => self
                .tensors
                .get("token_embd.weight")
                .and_then(|t| t.ne.get(1).copied())
                .with_context(|| format!("{}: no {} and no 2-dimensional token_embd.weight", self.path.display(), k("vocab_size")))?,
        };
        let head_dim = self.get(&k("attention.key_length")).and_then(Value::as_u64).or(hidden.checked_div(heads)).with_context(|| format!("{}: {} is 0, expected at least 1", self.path.display(), k("attention.head_count")))?;
        let mut c = json!({
            "architectures": [hf],
            "hidden_size": hidden,
            "intermediate_size": self.need_u64(&k("feed_forward_length"))?,
            "num_hidden_layers": self.need_u64(&k("block_count"))?,
            "num_attention_heads": heads,
            "num_key_value_heads": self.get(&k("attention.head_count_kv")).and_then(Value::as_u64).unwrap_or(heads),
            "head_dim": head_dim,
            "vocab_size": vocab,
            "rms_norm_eps": float(&k("attention.layer_norm_rms_epsilon"), 1e-6)? as f32 as f64,
            "rope_theta": float(&k("rope.freq_base"), 10000.0)? as f32 as f64,
            "max_position_embeddings": self.need_u64(&k("context_length"))?,
            "tie_word_embeddings": !self.tensors.contains_key("output.weight"),
            "bos_token_id": self.get("tokenizer.ggml.bos_token_id").and_then(Value::as_u64),
            "eos_token_id": self.get("tokenizer.ggml.eos_token_id").and_then(Value::as_u64),
        });
        if arch.ends_with("moe") {
            self.moe_config(arch, &mut c)?;
        }
        if arch == "deepseek2" {
            self.deepseek2_config(hf == "DeepseekV3ForCausalLM", &mut c)?;
        }
        if arch == "llama" && self.tensors.contains_key("blk.0.attn_q.bias") {
            c["attention_bias"] = true.into();
        }
        if let Some(t) = self.get(&k("rope.scaling.type")).and_then(Value::as_str) {
            match t {
                "none" => {}
                "linear" => {
                    let f = float(&k("rope.scaling.factor"), 1.0)?;
                    c["rope_scaling"] = json!({"rope_type": "linear", "factor": f});
                }
                "yarn" if arch == "deepseek2" => {
                    // llama.cpp keeps DeepSeek's mscale_all_dim as yarn_log_multiplier = 0.1 ·
                    // mscale_all_dim and assumes mscale = mscale_all_dim (cos/sin unscaled). The
                    // f32 is read back through its shortest decimal so 0.0707 gives 0.707 again.
                    let log_mul = float(&k("rope.scaling.yarn_log_multiplier"), 0.0)?;
                    let log_mul: f64 = format!("{}", log_mul as f32).parse().unwrap_or(log_mul);
                    let m = log_mul / 0.1;
                    let orig = self.need_u64(&k("rope.scaling.original_context_length"))?;
                    let mut rp = json!({"rope_type": "yarn", "rope_theta": c["rope_theta"], "factor": float(&k("rope.scaling.factor"), 1.0)?,
                        "original_max_position_embeddings": orig, "mscale": m, "mscale_all_dim": m});
                    for (key, name) in [("rope.scaling.yarn_beta_fast", "beta_fast"), ("rope.scaling.yarn_beta_slow", "beta_slow")] {
                        if self.get(&k(key)).is_some() {
                            rp[name] = float(&k(key), 0.0)?.into();
                        }
                    }
                    c["rope_parameters"] = rp;
                }
                other => bail!("{}: {arch}.rope.scaling.type {other:?} is not supported", self.path.display()),
            }
        }
        Config::from_json(&c).with_context(|| format!("{}: hyper-parameters", self.path.display()))
    }

    /// The mixture-of-experts keys of a qwen2moe / qwen3moe file as config.json would hold them:
    /// `{arch}.expert_count`, `expert_used_count`, `expert_feed_forward_length`,
    /// `expert_shared_feed_forward_length` (else the shared expert's tensor shape), and
    /// `expert_weights_norm` (absent: llama.cpp's fixed choice, on for qwen3moe, off for qwen2moe).
    /// A layer without `ffn_gate_inp` is read as a dense layer (`mlp_only_layers`).
    fn moe_config(&self, arch: &str, c: &mut serde_json::Value) -> Result<()> {
        let k = |s: &str| format!("{arch}.{s}");
        let layers = self.need_u64(&k("block_count"))?;
        c["num_experts"] = self.need_u64(&k("expert_count"))?.into();
        c["num_experts_per_tok"] = self.need_u64(&k("expert_used_count"))?.into();
        c["moe_intermediate_size"] = self.need_u64(&k("expert_feed_forward_length"))?.into();
        c["norm_topk_prob"] = match self.get(&k("expert_weights_norm")) {
            Some(Value::Bool(b)) => *b,
            _ => arch == "qwen3moe",
        }
        .into();
        c["decoder_sparse_step"] = 1.into();
        let dense: Vec<u64> = (0..layers).filter(|l| !self.tensors.contains_key(&format!("blk.{l}.ffn_gate_inp.weight"))).collect();
        c["mlp_only_layers"] = dense.into();
        if arch == "qwen2moe" {
            let shared = match self.get(&k("expert_shared_feed_forward_length")).and_then(Value::as_u64) {
                Some(n) => n,
                None => (0..layers)
                    .find_map(|l| self.tensors.get(&format!("blk.{l}.ffn_gate_shexp.weight")).and_then(|t| t.ne.get(1).copied()))
                    .with_context(|| format!("{}: no {} and no ffn_gate_shexp tensor", self.path.display(), k("expert_shared_feed_forward_length")))?,
            };
            c["shared_expert_intermediate_size"] = shared.into();
        }
        Ok(())
    }

    /// The DeepSeek keys of a deepseek2 file as config.json would hold them: expert counts and
    /// sizes (`expert_count`, `expert_used_count`, `expert_feed_forward_length`,
    /// `expert_shared_count`), `expert_weights_scale` / `expert_weights_norm`, expert groups
    /// (`expert_group_count`, `expert_group_used_count`), `leading_dense_block_count`, the LoRA
    /// ranks, and the head sizes: `attention.key_length_mla` / `value_length_mla` in current
    /// files (whose key_length / value_length describe the compressed cache), else the older
    /// per-head `attention.key_length` / `value_length`; `rope.dimension_count` is qk_rope.
    fn deepseek2_config(&self, v3: bool, c: &mut serde_json::Value) -> Result<()> {
        let k = |s: &str| format!("deepseek2.{s}");
        let opt = |key: &str| self.get(&k(key)).and_then(Value::as_u64);
        let p = self.path.display();
        c["n_routed_experts"] = self.need_u64(&k("expert_count"))?.into();
        c["num_experts_per_tok"] = self.need_u64(&k("expert_used_count"))?.into();
        c["moe_intermediate_size"] = self.need_u64(&k("expert_feed_forward_length"))?.into();
        c["n_shared_experts"] = opt("expert_shared_count").unwrap_or(0).into();
        c["first_k_dense_replace"] = opt("leading_dense_block_count").unwrap_or(0).into();
        let scale = match self.get(&k("expert_weights_scale")) {
            None => 1.0,
            Some(v) => v.as_f64().filter(|x| x.is_finite()).with_context(|| format!("{p}: deepseek2.expert_weights_scale must be a finite number"))?,
        };
        c["routed_scaling_factor"] = scale.into();
        c["norm_topk_prob"] = matches!(self.get(&k("expert_weights_norm")), Some(Value::Bool(true))).into();
        let (groups, used) = (opt("expert_group_count").unwrap_or(1), opt("expert_group_used_count").unwrap_or(1));
        if v3 {
            c["topk_method"] = "noaux_tc".into();
            c["scoring_func"] = "sigmoid".into();
            c["n_group"] = groups.into();
            c["topk_group"] = used.into();
        } else {
            c["scoring_func"] = "softmax".into();
            if groups > 1 {
                c["topk_method"] = "group_limited_greedy".into();
                c["n_group"] = groups.into();
                c["topk_group"] = used.into();
            } else {
                c["topk_method"] = "greedy".into();
            }
        }
        c["q_lora_rank"] = opt("attention.q_lora_rank").into();
        c["kv_lora_rank"] = self.need_u64(&k("attention.kv_lora_rank"))?.into();
        let rope = self.need_u64(&k("rope.dimension_count"))?;
        let (key, value) = match (opt("attention.key_length_mla"), opt("attention.value_length_mla")) {
            (Some(kl), Some(vl)) => (kl, vl),
            _ => (self.need_u64(&k("attention.key_length"))?, self.need_u64(&k("attention.value_length"))?),
        };
        if key <= rope {
            bail!("{p}: the key length {key} is not above deepseek2.rope.dimension_count {rope}");
        }
        c["qk_rope_head_dim"] = rope.into();
        c["qk_nope_head_dim"] = (key - rope).into();
        c["v_head_dim"] = value.into();
        c["rope_interleave"] = true.into();
        Ok(())
    }

    /// The bytes of tensor `name` (of a supported type).
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        Ok(self.raw(name)?.1)
    }

    fn raw(&self, name: &str) -> Result<(&TensorInfo, &[u8])> {
        let t = self.tensors.get(name).with_context(|| format!("{}: no tensor named {name}", self.path.display()))?;
        if ggml_type(t.ggml_type).is_none() {
            bail!(
                "{}: tensor {name} has type {}; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K",
                self.path.display(),
                ggml_type_name(t.ggml_type)
            );
        }
        Ok((t, &self.map[t.offset..t.offset + t.len]))
    }
}

/// A GGUF model seen through Hugging Face tensor names and layouts.
pub struct GgufModel {
    pub gguf: Gguf,
    pub cfg: Config,
}

impl GgufModel {
    pub fn open(path: &Path) -> Result<GgufModel> {
        let gguf = Gguf::open(path)?;
        let cfg = gguf.config()?;
        Ok(GgufModel { gguf, cfg })
    }

    /// The GGUF name of a Hugging Face tensor name.
    fn gguf_name(name: &str) -> Option<String> {
        let fixed = match name {
            "model.embed_tokens.weight" => Some("token_embd.weight"),
            "model.norm.weight" => Some("output_norm.weight"),
            "lm_head.weight" => Some("output.weight"),
            _ => None,
        };
        if let Some(f) = fixed {
            return Some(f.into());
        }
        let rest = name.strip_prefix("model.layers.")?;
        let (layer, part) = rest.split_once('.')?;
        let (module, kind) = part.rsplit_once('.')?;
        let g = match module {
            "self_attn.q_proj" => "attn_q",
            "self_attn.k_proj" => "attn_k",
            "self_attn.v_proj" => "attn_v",
            "self_attn.o_proj" => "attn_output",
            "self_attn.q_norm" => "attn_q_norm",
            "self_attn.q_a_proj" => "attn_q_a",
            "self_attn.q_a_layernorm" => "attn_q_a_norm",
            "self_attn.q_b_proj" => "attn_q_b",
            "self_attn.kv_a_proj_with_mqa" => "attn_kv_a_mqa",
            "self_attn.kv_a_layernorm" => "attn_kv_a_norm",
            // Current files split it into attn_k_b / attn_v_b (see kv_b_from_split).
            "self_attn.kv_b_proj" => "attn_kv_b",
            "mlp.shared_experts.gate_proj" => "ffn_gate_shexp",
            "mlp.shared_experts.up_proj" => "ffn_up_shexp",
            "mlp.shared_experts.down_proj" => "ffn_down_shexp",
            "mlp.gate" if kind == "e_score_correction_bias" => return Some(format!("blk.{layer}.exp_probs_b.bias")),
            "self_attn.k_norm" => "attn_k_norm",
            "mlp.gate_proj" => "ffn_gate",
            "mlp.up_proj" => "ffn_up",
            "mlp.down_proj" => "ffn_down",
            "mlp.gate" => "ffn_gate_inp",
            "mlp.shared_expert_gate" => "ffn_gate_inp_shexp",
            "mlp.shared_expert.gate_proj" => "ffn_gate_shexp",
            "mlp.shared_expert.up_proj" => "ffn_up_shexp",
            "mlp.shared_expert.down_proj" => "ffn_down_shexp",
            // The experts stacked `[n_expert, rows, cols]` (see model::moe).
            "mlp.experts.gate_proj" => "ffn_gate_exps",
            "mlp.experts.up_proj" => "ffn_up_exps",
            "mlp.experts.down_proj" => "ffn_down_exps",
            "input_layernorm" => "attn_norm",
            "post_attention_layernorm" => "ffn_norm",
            _ => return None,
        };
        Some(format!("blk.{layer}.{g}.{kind}"))
    }
}

/// llama.cpp's converter stores llama q/k projection rows permuted for interleaved RoPE
/// (`permute(w, n_head)`: within each head, row 2i + j holds Hugging Face row j * d/2 + i).
/// Reorders the rows (whole quantized rows) back to the Hugging Face rotate-half layout.
fn unpermute_rows(bytes: &[u8], rows: usize, heads: usize) -> Vec<u8> {
    let row_bytes = bytes.len() / rows;
    let d = rows / heads;
    let mut out = vec![0u8; bytes.len()];
    for h in 0..heads {
        for i in 0..d / 2 {
            for j in 0..2 {
                let src = h * d + 2 * i + j;
                let dst = h * d + j * (d / 2) + i;
                out[dst * row_bytes..(dst + 1) * row_bytes].copy_from_slice(&bytes[src * row_bytes..(src + 1) * row_bytes]);
            }
        }
    }
    out
}

impl GgufModel {
    /// `attn_k_b` / `attn_v_b` of a layer, if the file splits kv_b_proj that way.
    fn split_kv_b(&self, g: &str) -> Option<(String, String)> {
        let stem = g.strip_suffix("attn_kv_b.weight")?;
        let (kb, vb) = (format!("{stem}attn_k_b.weight"), format!("{stem}attn_v_b.weight"));
        (!self.gguf.tensors.contains_key(g) && self.gguf.tensors.contains_key(&kb)).then_some((kb, vb))
    }

    /// kv_b_proj `[heads * (nope + v), kv_lora]` rebuilt from llama.cpp's split tensors:
    /// `attn_k_b` holds each head's k part transposed (ne `[nope, kv_lora, heads]`), `attn_v_b`
    /// each head's v part as is (ne `[kv_lora, v, heads]`). Float formats are transposed element
    /// for element in their own format; quantized ones are dequantized to f32 first.
    fn kv_b_from_split(&self, name: &str, kb: &str, vb: &str) -> Result<TensorRef<'_>> {
        let p = self.gguf.path.display();
        let ((ki, kbytes), (vi, vbytes)) = (self.gguf.raw(kb)?, self.gguf.raw(vb)?);
        let (&[nope, kvr, heads], &[kvr2, vhd, heads2]) = (ki.ne.as_slice(), vi.ne.as_slice()) else {
            bail!("{p}: {kb} {:?} / {vb} {:?}: expected 3 dimensions each", ki.ne, vi.ne);
        };
        if kvr != kvr2 || heads != heads2 {
            bail!("{p}: {kb} ne {:?} and {vb} ne {:?} disagree on kv_lora_rank or heads", ki.ne, vi.ne);
        }
        let (nope, kvr, heads, vhd) = (nope as usize, kvr as usize, heads as usize, vhd as usize);
        let float = |d: DType| matches!(d, DType::F32 | DType::F16 | DType::BF16);
        let (dtype, k, v): (DType, Cow<[u8]>, Cow<[u8]>) = if ki.dtype == vi.dtype && float(ki.dtype) {
            (ki.dtype, Cow::Borrowed(kbytes), Cow::Borrowed(vbytes))
        } else {
            let f = |d: DType, b: &[u8]| Cow::Owned(bytemuck::cast_slice(&d.to_f32(b)).to_vec());
            (DType::F32, f(ki.dtype, kbytes), f(vi.dtype, vbytes))
        };
        let es = dtype.size();
        let mut out = Vec::with_capacity(heads * (nope + vhd) * kvr * es);
        for h in 0..heads {
            for i in 0..nope {
                for c in 0..kvr {
                    let at = ((h * kvr + c) * nope + i) * es;
                    out.extend_from_slice(&k[at..at + es]);
                }
            }
            out.extend_from_slice(&v[h * vhd * kvr * es..(h + 1) * vhd * kvr * es]);
        }
        Ok(TensorRef { name: format!("{kb} + {vb} ({name})"), dtype, shape: vec![heads * (nope + vhd), kvr], bytes: Cow::Owned(out) })
    }
}

impl TensorSource for GgufModel {
    fn tensor(&self, name: &str) -> Result<TensorRef<'_>> {
        let g = Self::gguf_name(name).with_context(|| format!("no GGUF tensor corresponds to {name}"))?;
        if let Some((kb, vb)) = self.split_kv_b(&g) {
            return self.kv_b_from_split(name, &kb, &vb);
        }
        let (info, bytes) = self.gguf.raw(&g)?;
        let mut shape: Vec<usize> = info.ne.iter().rev().map(|&x| x as usize).collect();
        if g.ends_with("ffn_gate_inp_shexp.weight") && shape.len() == 1 {
            // llama.cpp stores the shared expert's `[1, hidden]` gate as a vector.
            shape.insert(0, 1);
        }
        let permuted = self.gguf.arch()? == "llama" && (g.ends_with("attn_q.weight") || g.ends_with("attn_k.weight") || g.ends_with("attn_q.bias") || g.ends_with("attn_k.bias"));
        let bytes = if permuted {
            let heads = if g.contains("attn_q") { self.cfg.num_heads } else { self.cfg.num_kv_heads };
            Cow::Owned(unpermute_rows(bytes, shape[0], heads))
        } else {
            Cow::Borrowed(bytes)
        };
        Ok(TensorRef { name: format!("{g} ({name})"), dtype: info.dtype, shape, bytes })
    }
    fn contains(&self, name: &str) -> bool {
        Self::gguf_name(name).is_some_and(|g| self.gguf.tensors.contains_key(&g) || self.split_kv_b(&g).is_some())
    }
    fn backing(&self, name: &str) -> Option<(Arc<FileBytes>, std::ops::Range<usize>)> {
        let g = Self::gguf_name(name)?;
        // llama q/k rows are reordered on reading: not stored as pingce uses them.
        if g.contains("attn_q") || g.contains("attn_k") {
            return None;
        }
        let (t, _) = self.gguf.raw(&g).ok()?;
        Some((self.gguf.map.clone(), t.offset..t.offset + t.len))
    }
    fn dtype_of(&self, name: &str) -> Result<DType> {
        let g = Self::gguf_name(name).with_context(|| format!("no GGUF tensor corresponds to {name}"))?;
        if let Some((kb, vb)) = self.split_kv_b(&g) {
            // What kv_b_from_split builds: the files' own float format when both share one,
            // else f32 (quantized halves are dequantized).
            let (k, v) = (self.gguf.raw(&kb)?.0.dtype, self.gguf.raw(&vb)?.0.dtype);
            return Ok(if k == v && matches!(k, DType::F32 | DType::F16 | DType::BF16) { k } else { DType::F32 });
        }
        Ok(self.gguf.raw(&g)?.0.dtype)
    }
    fn files(&self) -> Vec<PathBuf> {
        vec![self.gguf.path.clone()]
    }
}
