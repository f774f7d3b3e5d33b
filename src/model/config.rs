//! `config.json` of a Hugging Face decoder: the architectures pingce runs and their settings.
//! Reads both the transformers 4.x keys (`rope_theta`, `rope_scaling`) and 5.x (`rope_parameters`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
}

/// How rotary frequencies are rescaled for long contexts (`rope_type`).
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    Linear { factor: f64 },
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: f64 },
}

#[derive(Clone, Debug)]
pub struct Config {
    pub arch: Arch,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Per layer: the sliding attention window, if that layer uses one.
    pub layer_windows: Vec<Option<usize>>,
    /// q/k/v projections carry biases (Qwen2, or Llama's `attention_bias`).
    pub qkv_bias: bool,
    /// o_proj carries a bias (Llama's `attention_bias`).
    pub o_bias: bool,
    /// Per-head RMSNorm of q and k before RoPE (Qwen3).
    pub qk_norm: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

fn get_usize(v: &Value, key: &str) -> Result<Option<usize>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_u64().map(|n| Some(n as usize)).with_context(|| format!("field {key:?}: expected a non-negative integer, got {x}")),
    }
}

fn need_usize(v: &Value, key: &str) -> Result<usize> {
    get_usize(v, key)?.with_context(|| format!("missing required field {key:?}"))
}

fn get_f64(v: &Value, key: &str) -> Result<Option<f64>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_f64().map(Some).with_context(|| format!("field {key:?}: expected a number, got {x}")),
    }
}

fn get_bool(v: &Value, key: &str) -> Result<Option<bool>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_bool().map(Some).with_context(|| format!("field {key:?}: expected true or false, got {x}")),
    }
}

fn token_ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_u64().map(|x| x as u32)).collect(),
        _ => vec![],
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: Value = serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
        Config::from_json(&v).with_context(|| format!("{}", path.display()))
    }

    pub fn from_json(v: &Value) -> Result<Config> {
        let archs: Vec<&str> = v.get("architectures").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let arch = match archs.first().copied() {
            Some("LlamaForCausalLM") => Arch::Llama,
            Some("MistralForCausalLM") => Arch::Mistral,
            Some("Qwen2ForCausalLM") => Arch::Qwen2,
            Some("Qwen3ForCausalLM") => Arch::Qwen3,
            Some(other) => bail!(
                "field \"architectures\": {other} is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)"
            ),
            None => bail!("field \"architectures\" is missing or empty"),
        };
        if let Some(act) = v.get("hidden_act").and_then(Value::as_str) {
            if act != "silu" {
                bail!("field \"hidden_act\": {act:?} is not supported (only \"silu\")");
            }
        }
        if get_bool(v, "mlp_bias")?.unwrap_or(false) {
            bail!("field \"mlp_bias\": true is not supported");
        }
        let hidden_size = need_usize(v, "hidden_size")?;
        let num_heads = need_usize(v, "num_attention_heads")?;
        let num_kv_heads = get_usize(v, "num_key_value_heads")?.unwrap_or(num_heads);
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            bail!("field \"num_key_value_heads\": {num_kv_heads} must divide num_attention_heads {num_heads}");
        }
        let head_dim = match arch {
            // Qwen2 has no head_dim setting; Qwen3 defaults to 128, not hidden / heads.
            Arch::Qwen2 => hidden_size / num_heads,
            Arch::Qwen3 => get_usize(v, "head_dim")?.unwrap_or(128),
            _ => get_usize(v, "head_dim")?.unwrap_or(hidden_size / num_heads),
        };
        if head_dim % 4 != 0 || head_dim > 256 {
            bail!("head_dim {head_dim}: must be a multiple of 4 and at most 256");
        }
        let num_layers = need_usize(v, "num_hidden_layers")?;
        let (rope_theta, rope_scaling) = rope(v)?;
        let sliding_window = get_usize(v, "sliding_window")?;
        let layer_types: Option<Vec<String>> =
            v.get("layer_types").and_then(Value::as_array).map(|a| a.iter().map(|x| x.as_str().unwrap_or("").to_string()).collect());
        let layer_windows: Vec<Option<usize>> = match (&layer_types, arch) {
            (Some(types), _) => {
                if types.len() != num_layers {
                    bail!("field \"layer_types\": {} entries for {num_layers} layers", types.len());
                }
                types
                    .iter()
                    .map(|t| match t.as_str() {
                        "full_attention" => Ok(None),
                        "sliding_attention" => sliding_window.map(Some).context("layer_types names sliding_attention but sliding_window is null"),
                        other => bail!("field \"layer_types\": {other:?} is not supported"),
                    })
                    .collect::<Result<_>>()?
            }
            (None, Arch::Mistral) => vec![sliding_window; num_layers],
            (None, Arch::Qwen2 | Arch::Qwen3) => {
                let on = get_bool(v, "use_sliding_window")?.unwrap_or(false);
                let from = get_usize(v, "max_window_layers")?.unwrap_or(num_layers);
                (0..num_layers).map(|l| if on && l >= from { sliding_window } else { None }).collect()
            }
            (None, Arch::Llama) => vec![None; num_layers],
        };
        let attention_bias = get_bool(v, "attention_bias")?.unwrap_or(false);
        let (qkv_bias, o_bias) = match arch {
            Arch::Qwen2 => (true, false),
            Arch::Qwen3 => (attention_bias, attention_bias),
            Arch::Llama | Arch::Mistral => (attention_bias, attention_bias),
        };
        Ok(Config {
            arch,
            hidden_size,
            intermediate_size: need_usize(v, "intermediate_size")?,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            vocab_size: need_usize(v, "vocab_size")?,
            rms_norm_eps: get_f64(v, "rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: get_usize(v, "max_position_embeddings")?.unwrap_or(4096),
            tie_word_embeddings: get_bool(v, "tie_word_embeddings")?.unwrap_or(false),
            layer_windows,
            qkv_bias,
            o_bias,
            qk_norm: arch == Arch::Qwen3,
            bos_token_id: token_ids(v.get("bos_token_id")).first().copied(),
            eos_token_ids: token_ids(v.get("eos_token_id")),
        })
    }

    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// The rotary inverse frequencies (head_dim / 2 of them) with the scaling applied, computed in
    /// float32 as transformers does.
    pub fn inv_freq(&self) -> Vec<f32> {
        let d = self.head_dim;
        let base = self.rope_theta as f32;
        let plain: Vec<f32> = (0..d / 2).map(|i| 1.0 / base.powf((2 * i) as f32 / d as f32)).collect();
        match self.rope_scaling {
            RopeScaling::None => plain,
            RopeScaling::Linear { factor } => plain.iter().map(|f| f / factor as f32).collect(),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings: orig } => {
                let (factor, low, high, orig) = (factor as f32, low_freq_factor as f32, high_freq_factor as f32, orig as f32);
                let low_wavelen = orig / low;
                let high_wavelen = orig / high;
                plain
                    .iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (orig / wavelen - low) / (high - low);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        }
    }
}

fn rope(v: &Value) -> Result<(f64, RopeScaling)> {
    // transformers 5.x: rope_parameters {rope_type, rope_theta, ...}; 4.x: rope_theta + rope_scaling.
    let params = v.get("rope_parameters").filter(|p| !p.is_null());
    let scaling = params.or(v.get("rope_scaling")).filter(|p| !p.is_null());
    let theta = params.and_then(|p| p.get("rope_theta")).and_then(Value::as_f64).or(get_f64(v, "rope_theta")?).unwrap_or(10000.0);
    let Some(s) = scaling else { return Ok((theta, RopeScaling::None)) };
    let kind = s.get("rope_type").or(s.get("type")).and_then(Value::as_str).unwrap_or("default");
    let f = |k: &str| -> Result<f64> { s.get(k).and_then(Value::as_f64).with_context(|| format!("rope scaling {kind:?}: missing number {k:?}")) };
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear { factor: f("factor")? },
        "llama3" => RopeScaling::Llama3 {
            factor: f("factor")?,
            low_freq_factor: f("low_freq_factor")?,
            high_freq_factor: f("high_freq_factor")?,
            original_max_position_embeddings: f("original_max_position_embeddings")?,
        },
        other => bail!("field \"rope_type\": {other:?} is not supported (default, linear, llama3)"),
    };
    Ok((theta, scaling))
}
