//! `config.json` of a Hugging Face decoder: the architectures pingce runs and their settings.
//! Reads both the transformers 4.x keys (`rope_theta`, `rope_scaling`) and 5.x (`rope_parameters`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    /// Qwen2-MoE: Qwen2 attention, sparse MLP with a sigmoid-gated shared expert.
    Qwen2Moe,
    /// Qwen3-MoE: Qwen3 attention (q/k norm), sparse MLP without a shared expert.
    Qwen3Moe,
    /// DeepSeek-V2: multi-head latent attention ([`MlaConfig`]), softmax router (`greedy` or
    /// `group_limited_greedy`), ungated shared experts, dense leading layers.
    DeepseekV2,
    /// DeepSeek-V3: MLA, sigmoid router `noaux_tc` with a selection-only correction bias.
    DeepseekV3,
}

/// Multi-head latent attention (DeepSeek-V2/V3, see [`mla`](super::mla)). pingce runs it as
/// plain multi-head attention over per-head keys `[k_nope, k_pe]` and values expanded from the
/// compressed latent, each head padded with zeros to [`Config::head_dim`] (a multiple of 4 covering
/// both `qk_nope + qk_rope` and `v_head_dim`): zeros add nothing to q·k and the padded value
/// columns are dropped before `o_proj`.
#[derive(Clone, Debug, PartialEq)]
pub struct MlaConfig {
    /// `q_lora_rank`: q = q_b(RMSNorm(q_a(x))); `None` (null): q = q_proj(x).
    pub q_lora_rank: Option<usize>,
    pub kv_lora_rank: usize,
    pub qk_nope_head_dim: usize,
    pub qk_rope_head_dim: usize,
    pub v_head_dim: usize,
    pub rope_layout: RopeLayout,
    /// The attention softmax scale: 1/sqrt(qk_nope + qk_rope), times YaRN's mscale(factor,
    /// mscale_all_dim)² when the RoPE scaling is YaRN (transformers' `yarn_apply_mscale`).
    pub softmax_scale: f64,
}

impl MlaConfig {
    pub fn qk_head_dim(&self) -> usize {
        self.qk_nope_head_dim + self.qk_rope_head_dim
    }
}

/// How the rotary part of an MLA head is rotated and laid out (q and k alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeLayout {
    /// Pairs (x[2i], x[2i+1]) rotated in place (DeepSeek-V2's complex form).
    Interleaved,
    /// Pairs (x[2i], x[2i+1]) rotated, results written de-interleaved: first halves then
    /// second halves (DeepSeek-V3 with `rope_interleave`, transformers' `apply_rotary_pos_emb_interleave`).
    InterleavedToHalves,
    /// Rotate-half on (x[i], x[i + d/2]) (DeepSeek-V3 with `rope_interleave` false).
    Halves,
}

/// How a sparse layer's router turns logits into expert choices and weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Router {
    /// Sigmoid scores (DeepSeek-V3 `noaux_tc`), else softmax over the experts.
    pub sigmoid: bool,
    /// A per-expert bias added to the scores for choosing only (`e_score_correction_bias`).
    pub correction_bias: bool,
    /// Experts split into `groups` equal groups; only the `topk_groups` best groups are eligible
    /// (1 and 1: no grouping).
    pub groups: usize,
    pub topk_groups: usize,
    /// A group's score: the sum of its two best choice scores (`noaux_tc`), else its best score
    /// (`group_limited_greedy`).
    pub group_top2: bool,
    /// The chosen weights are multiplied by this (`routed_scaling_factor`).
    pub scale: f64,
    /// The shared expert's output is added as is (DeepSeek), not gated by a sigmoid (Qwen2-MoE).
    pub ungated_shared: bool,
}

impl Router {
    /// Qwen's router: softmax, top-k over all experts, no scaling.
    pub fn softmax() -> Router {
        Router { sigmoid: false, correction_bias: false, groups: 1, topk_groups: 1, group_top2: false, scale: 1.0, ungated_shared: false }
    }
}

/// The mixture-of-experts settings of a sparse model (`num_experts`, `num_experts_per_tok`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct MoeConfig {
    pub num_experts: usize,
    /// Experts each token is routed to (`num_experts_per_tok`).
    pub top_k: usize,
    /// Divide the top-k probabilities by their sum (`norm_topk_prob`).
    pub norm_topk_prob: bool,
    /// Rows of each routed expert's gate and up projections (`moe_intermediate_size`).
    pub expert_intermediate: usize,
    /// The shared expert's width (`shared_expert_intermediate_size`, Qwen2-MoE), gated by
    /// `sigmoid(shared_expert_gate · x)`.
    pub shared_intermediate: Option<usize>,
    /// Per layer: sparse (true) or the dense MLP of `intermediate_size` (false), from
    /// `mlp_only_layers` and `decoder_sparse_step` as transformers decides (DeepSeek:
    /// `first_k_dense_replace` and `moe_layer_freq`).
    pub sparse_layers: Vec<bool>,
    pub router: Router,
}

/// Most experts a sparse layer may have.
pub const MAX_EXPERTS: usize = 1024;

/// How rotary frequencies are rescaled for long contexts (`rope_type`).
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    Linear { factor: f64 },
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: f64 },
    /// YaRN as transformers' `_compute_yarn_parameters` (DeepSeek only): frequencies blended
    /// between interpolation and extrapolation over a ramp, cos/sin times `attention_factor`.
    Yarn { factor: f64, original_max_position_embeddings: f64, beta_fast: f64, beta_slow: f64, mscale: f64, mscale_all_dim: f64, attention_factor: Option<f64>, truncate: bool },
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
    /// Mixture-of-experts settings; `None` for dense models.
    pub moe: Option<MoeConfig>,
    /// Multi-head latent attention (DeepSeek); then `num_kv_heads == num_heads` and `head_dim`
    /// is the padded attention head size.
    pub mla: Option<MlaConfig>,
}

/// Largest `num_hidden_layers` accepted.
pub const MAX_LAYERS: usize = 1024;
/// Largest `max_position_embeddings` accepted.
pub const MAX_POSITIONS: usize = 1 << 24;
/// Largest host-built RoPE cos/sin table (`2 × positions × head_dim / 2 × 4` bytes).
pub const MAX_ROPE_TABLE_BYTES: usize = 1 << 30;
/// Largest `hidden_size`, `intermediate_size` and `vocab_size` accepted.
pub const MAX_WIDTH: usize = 1 << 24;

/// `config.json` as transformers 4.x and 5.x write it (unknown keys are ignored). Every key is
/// optional here; [`Config::from_json`] says which are required.
#[derive(Default, Deserialize)]
struct RawConfig {
    architectures: Option<Vec<String>>,
    hidden_act: Option<String>,
    mlp_bias: Option<bool>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: Option<usize>,
    rms_norm_eps: Option<f64>,
    /// 4.x: `rope_theta` and `rope_scaling`; 5.x: `rope_parameters` holding both.
    rope_theta: Option<f64>,
    rope_scaling: Option<RawRope>,
    rope_parameters: Option<RawRope>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    sliding_window: Option<usize>,
    /// 5.x: per layer `full_attention` or `sliding_attention`.
    layer_types: Option<Vec<String>>,
    use_sliding_window: Option<bool>,
    max_window_layers: Option<usize>,
    attention_bias: Option<bool>,
    bos_token_id: Option<Value>,
    eos_token_id: Option<Value>,
    /// Qwen2-MoE's switch for q/k/v biases.
    qkv_bias: Option<bool>,
    num_experts: Option<usize>,
    /// transformers 5 writes Qwen3-MoE's `num_experts` under this name.
    num_local_experts: Option<usize>,
    num_experts_per_tok: Option<usize>,
    norm_topk_prob: Option<bool>,
    moe_intermediate_size: Option<usize>,
    shared_expert_intermediate_size: Option<usize>,
    decoder_sparse_step: Option<usize>,
    mlp_only_layers: Option<Vec<usize>>,
}

#[derive(Default, Deserialize)]
struct RawRope {
    rope_type: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    rope_theta: Option<f64>,
    factor: Option<f64>,
    low_freq_factor: Option<f64>,
    high_freq_factor: Option<f64>,
    original_max_position_embeddings: Option<f64>,
    beta_fast: Option<f64>,
    beta_slow: Option<f64>,
    mscale: Option<f64>,
    mscale_all_dim: Option<f64>,
    attention_factor: Option<f64>,
    truncate: Option<bool>,
}

impl RawConfig {
    /// Deserializes `v`; an error names the field it comes from.
    fn parse(v: &Value) -> Result<RawConfig> {
        let Some(obj) = v.as_object() else { bail!("expected a JSON object, got {v}") };
        match RawConfig::deserialize(v) {
            Ok(c) => Ok(c),
            Err(e) => {
                for (k, x) in obj {
                    if let Err(e) = RawConfig::deserialize(&serde_json::json!({ k: x })) {
                        bail!("field {k:?}: {e}");
                    }
                }
                bail!("{e}")
            }
        }
    }
}

fn need(v: Option<usize>, key: &str) -> Result<usize> {
    v.with_context(|| format!("missing required field {key:?}"))
}

/// Token ids as `bos_token_id`/`eos_token_id` give them (one or a list); others are ignored.
fn token_ids(v: Option<&Value>) -> Vec<u32> {
    let id = |x: &Value| x.as_u64().and_then(|x| u32::try_from(x).ok());
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(id).collect(),
        Some(x) => id(x).into_iter().collect(),
        None => vec![],
    }
}

fn positive(x: f64, what: &str) -> Result<()> {
    if !(x.is_finite() && x > 0.0) {
        bail!("{what} is {x}, expected a finite number above 0");
    }
    Ok(())
}

fn in_range(x: usize, lo: usize, hi: usize, what: &str) -> Result<()> {
    if !(lo..=hi).contains(&x) {
        bail!("field {what:?} is {x}, expected {lo} to {hi}");
    }
    Ok(())
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: Value = serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
        Config::from_json(&v).with_context(|| format!("{}", path.display()))
    }

    /// The config of a `config.json` value, validated ([`Config::validate`]).
    pub fn from_json(v: &Value) -> Result<Config> {
        let r = RawConfig::parse(v)?;
        let arch = match r.architectures.as_deref().and_then(|a| a.first()).map(String::as_str) {
            Some("LlamaForCausalLM") => Arch::Llama,
            Some("MistralForCausalLM") => Arch::Mistral,
            Some("Qwen2ForCausalLM") => Arch::Qwen2,
            Some("Qwen3ForCausalLM") => Arch::Qwen3,
            Some("Qwen2MoeForCausalLM") => Arch::Qwen2Moe,
            Some("Qwen3MoeForCausalLM") => Arch::Qwen3Moe,
            Some("DeepseekV2ForCausalLM") => Arch::DeepseekV2,
            Some("DeepseekV3ForCausalLM") => Arch::DeepseekV3,
            Some(other) => bail!(
                "field \"architectures\": {other} is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Qwen2MoeForCausalLM, Qwen3MoeForCausalLM, DeepseekV2ForCausalLM, DeepseekV3ForCausalLM)"
            ),
            None => bail!("field \"architectures\" is missing or empty"),
        };
        if let Some(act) = &r.hidden_act {
            if act != "silu" {
                bail!("field \"hidden_act\": {act:?} is not supported (only \"silu\")");
            }
        }
        if r.mlp_bias.unwrap_or(false) {
            bail!("field \"mlp_bias\": true is not supported");
        }
        let hidden_size = need(r.hidden_size, "hidden_size")?;
        let num_heads = need(r.num_attention_heads, "num_attention_heads")?;
        let deepseek = matches!(arch, Arch::DeepseekV2 | Arch::DeepseekV3);
        // MLA expands the latent into one key/value head per query head.
        let num_kv_heads = if deepseek { num_heads } else { r.num_key_value_heads.unwrap_or(num_heads) };
        if num_heads == 0 {
            bail!("field \"num_attention_heads\" is 0, expected at least 1");
        }
        if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            bail!("field \"num_key_value_heads\": {num_kv_heads} must divide num_attention_heads {num_heads}");
        }
        let derived = || {
            if hidden_size % num_heads != 0 {
                bail!("field \"hidden_size\": {hidden_size} is not a multiple of num_attention_heads {num_heads} (head_dim derives from them)");
            }
            Ok(hidden_size / num_heads)
        };
        let num_layers = need(r.num_hidden_layers, "num_hidden_layers")?;
        in_range(num_layers, 1, MAX_LAYERS, "num_hidden_layers")?;
        let (rope_theta, rope_scaling) = rope(&r)?;
        if matches!(rope_scaling, RopeScaling::Yarn { .. }) && !deepseek {
            bail!("field \"rope_type\": \"yarn\" is supported for the DeepSeek architectures only");
        }
        let ds = if deepseek { Some(super::deepseek::settings(v, arch, num_layers, &rope_scaling)?) } else { None };
        let head_dim = match arch {
            // The padded MLA head (config.json's head_dim is qk_rope_head_dim there).
            Arch::DeepseekV2 | Arch::DeepseekV3 => ds.as_ref().map_or(0, |d| d.2),
            // Qwen2 has no head_dim setting; Qwen3 defaults to 128, not hidden / heads.
            Arch::Qwen2 => derived()?,
            Arch::Qwen3 => r.head_dim.unwrap_or(128),
            // The MoE models read head_dim when present, else hidden / heads.
            _ => match r.head_dim {
                Some(d) => d,
                None => derived()?,
            },
        };
        let sliding_window = r.sliding_window;
        let layer_windows: Vec<Option<usize>> = match (&r.layer_types, arch) {
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
            (None, Arch::Qwen2 | Arch::Qwen3 | Arch::Qwen3Moe) => {
                let on = r.use_sliding_window.unwrap_or(false);
                let from = r.max_window_layers.unwrap_or(num_layers);
                (0..num_layers).map(|l| if on && l >= from { sliding_window } else { None }).collect()
            }
            (None, Arch::Llama | Arch::DeepseekV2 | Arch::DeepseekV3) => vec![None; num_layers],
            // Qwen2MoeConfig: the window on odd-numbered (1-based) layers below max_window_layers.
            (None, Arch::Qwen2Moe) => {
                let on = r.use_sliding_window.unwrap_or(false);
                let below = r.max_window_layers.unwrap_or(28);
                (0..num_layers).map(|l| if on && (l + 1) % 2 == 1 && l < below { sliding_window } else { None }).collect()
            }
        };
        let attention_bias = r.attention_bias.unwrap_or(false);
        let (qkv_bias, o_bias) = match arch {
            Arch::Qwen2 => (true, false),
            Arch::Qwen3 | Arch::Qwen3Moe => (attention_bias, attention_bias),
            Arch::Qwen2Moe => (r.qkv_bias.unwrap_or(true), false),
            Arch::Llama | Arch::Mistral => (attention_bias, attention_bias),
            Arch::DeepseekV2 | Arch::DeepseekV3 => {
                if attention_bias {
                    bail!("field \"attention_bias\": true is not supported for {arch:?} (q_a / kv_a / o projection biases)");
                }
                (false, false)
            }
        };
        let (mla, ds_moe) = match ds {
            Some((mla, moe, _)) => (Some(mla), Some(moe)),
            None => (None, None),
        };
        let c = Config {
            arch,
            hidden_size,
            intermediate_size: need(r.intermediate_size, "intermediate_size")?,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            vocab_size: need(r.vocab_size, "vocab_size")?,
            rms_norm_eps: r.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: r.max_position_embeddings.unwrap_or(4096),
            tie_word_embeddings: r.tie_word_embeddings.unwrap_or(false),
            layer_windows,
            qkv_bias,
            o_bias,
            qk_norm: matches!(arch, Arch::Qwen3 | Arch::Qwen3Moe),
            bos_token_id: token_ids(r.bos_token_id.as_ref()).first().copied(),
            eos_token_ids: token_ids(r.eos_token_id.as_ref()),
            moe: match ds_moe {
                Some(m) => Some(m),
                None => moe(&r, arch, num_layers)?,
            },
            mla,
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks the settings a hostile or broken file could get wrong: sizes at least 1 and within
    /// what pingce can allocate, head counts that divide, positive finite epsilons and RoPE
    /// factors. Errors name the field.
    pub fn validate(&self) -> Result<()> {
        in_range(self.hidden_size, 1, MAX_WIDTH, "hidden_size")?;
        in_range(self.intermediate_size, 1, MAX_WIDTH, "intermediate_size")?;
        in_range(self.vocab_size, 1, MAX_WIDTH, "vocab_size")?;
        in_range(self.num_layers, 1, MAX_LAYERS, "num_hidden_layers")?;
        in_range(self.num_heads, 1, MAX_WIDTH, "num_attention_heads")?;
        if self.num_kv_heads == 0 || !self.num_heads.is_multiple_of(self.num_kv_heads) {
            bail!("field \"num_key_value_heads\": {} must divide num_attention_heads {}", self.num_kv_heads, self.num_heads);
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(4) || self.head_dim > 256 {
            bail!("head_dim {}: must be a multiple of 4 and at most 256", self.head_dim);
        }
        in_range(self.max_position_embeddings, 1, MAX_POSITIONS, "max_position_embeddings")?;
        let table = self.max_position_embeddings * self.head_dim * 4;
        if table > MAX_ROPE_TABLE_BYTES {
            bail!(
                "field \"max_position_embeddings\": {} positions of head_dim {} need a {table}-byte RoPE table, more than the {MAX_ROPE_TABLE_BYTES} bytes pingce allows",
                self.max_position_embeddings,
                self.head_dim
            );
        }
        positive(self.rms_norm_eps, "field \"rms_norm_eps\"")?;
        positive(self.rope_theta, "field \"rope_theta\"")?;
        match self.rope_scaling {
            RopeScaling::None => {}
            // Checked below.
            RopeScaling::Yarn { .. } => {}
            RopeScaling::Linear { factor } => positive(factor, "rope scaling \"factor\"")?,
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
                positive(factor, "rope scaling \"factor\"")?;
                positive(low_freq_factor, "rope scaling \"low_freq_factor\"")?;
                positive(high_freq_factor, "rope scaling \"high_freq_factor\"")?;
                positive(original_max_position_embeddings, "rope scaling \"original_max_position_embeddings\"")?;
                if high_freq_factor <= low_freq_factor {
                    bail!("rope scaling: high_freq_factor {high_freq_factor} must be above low_freq_factor {low_freq_factor}");
                }
            }
        }
        if let RopeScaling::Yarn { factor, original_max_position_embeddings, beta_fast, beta_slow, .. } = self.rope_scaling {
            positive(factor, "rope scaling \"factor\"")?;
            positive(original_max_position_embeddings, "rope scaling \"original_max_position_embeddings\"")?;
            positive(beta_fast, "rope scaling \"beta_fast\"")?;
            positive(beta_slow, "rope scaling \"beta_slow\"")?;
        }
        if let Some(m) = &self.mla {
            super::deepseek::validate_mla(self, m)?;
        }
        if self.layer_windows.len() != self.num_layers {
            bail!("{} layer windows for {} layers", self.layer_windows.len(), self.num_layers);
        }
        if self.layer_windows.contains(&Some(0)) {
            bail!("field \"sliding_window\" is 0, expected at least 1");
        }
        if let Some(m) = &self.moe {
            if m.sparse_layers.len() != self.num_layers {
                bail!("{} sparse-layer flags for {} layers", m.sparse_layers.len(), self.num_layers);
            }
            if m.sparse_layers.iter().any(|&s| s) {
                in_range(m.num_experts, 1, MAX_EXPERTS, "num_experts")?;
                in_range(m.top_k, 1, m.num_experts.min(crate::kernels::moe_route::MAX_TOP_K), "num_experts_per_tok")?;
                in_range(m.expert_intermediate, 1, MAX_WIDTH, "moe_intermediate_size")?;
                if let Some(s) = m.shared_intermediate {
                    in_range(s, 1, MAX_WIDTH, "shared_expert_intermediate_size")?;
                }
                super::deepseek::validate_router(m)?;
            }
        }
        Ok(())
    }

    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// The rotary inverse frequencies (head_dim / 2 of them) with the scaling applied, computed in
    /// float32 as transformers does.
    /// Rotated dimensions per head: `head_dim`, or MLA's `qk_rope_head_dim`.
    pub fn rope_dim(&self) -> usize {
        self.mla.as_ref().map_or(self.head_dim, |m| m.qk_rope_head_dim)
    }

    /// The factor cos and sin are multiplied by (YaRN's `attention_factor`; else 1).
    pub fn rope_attention_factor(&self) -> f32 {
        match self.rope_scaling {
            RopeScaling::Yarn { factor, mscale, mscale_all_dim, attention_factor, .. } => match attention_factor {
                Some(a) => a as f32,
                None if mscale != 0.0 && mscale_all_dim != 0.0 => (yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim)) as f32,
                None => yarn_mscale(factor, 1.0) as f32,
            },
            _ => 1.0,
        }
    }

    pub fn inv_freq(&self) -> Vec<f32> {
        let d = self.rope_dim();
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
            RopeScaling::Yarn { factor, original_max_position_embeddings: orig, beta_fast, beta_slow, truncate, .. } => {
                // transformers' _compute_yarn_parameters: the correction range in float64, the
                // ramp and the blend in float32.
                let base64 = self.rope_theta;
                let corr = |rot: f64| (d as f64 * (orig / (rot * 2.0 * std::f64::consts::PI)).ln()) / (2.0 * base64.ln());
                let (mut low, mut high) = (corr(beta_fast), corr(beta_slow));
                if truncate {
                    low = low.floor();
                    high = high.ceil();
                }
                let (low, mut high) = (low.max(0.0), high.min(d as f64 - 1.0));
                if low == high {
                    high += 0.001;
                }
                let f = factor as f32;
                let base = self.rope_theta as f32;
                (0..d / 2)
                    .map(|i| {
                        let pos_freq = base.powf((2 * i) as f32 / d as f32);
                        let extra = 1.0 / pos_freq;
                        let inter = 1.0 / (f * pos_freq);
                        let ramp = ((i as f32 - low as f32) / (high - low) as f32).clamp(0.0, 1.0);
                        let ext_factor = 1.0 - ramp;
                        inter * (1.0 - ext_factor) + extra * ext_factor
                    })
                    .collect()
            }
        }
    }
}

/// YaRN's `get_mscale`: 0.1 · mscale · ln(scale) + 1 above scale 1, else 1.
pub fn yarn_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 { 1.0 } else { 0.1 * mscale * scale.ln() + 1.0 }
}

/// The MoE settings of a Qwen2-MoE or Qwen3-MoE config (defaults as their transformers configs).
fn moe(r: &RawConfig, arch: Arch, num_layers: usize) -> Result<Option<MoeConfig>> {
    let (experts, top_k, inter, shared) = match arch {
        Arch::Qwen2Moe => (60, 4, 1408, Some(r.shared_expert_intermediate_size.unwrap_or(5632))),
        Arch::Qwen3Moe => (128, 8, 768, None),
        _ => return Ok(None),
    };
    let num_experts = r.num_experts.or(r.num_local_experts).unwrap_or(experts);
    let step = r.decoder_sparse_step.unwrap_or(1);
    if step == 0 {
        bail!("field \"decoder_sparse_step\" is 0, expected at least 1");
    }
    let dense_only = r.mlp_only_layers.clone().unwrap_or_default();
    let sparse_layers = (0..num_layers).map(|l| !dense_only.contains(&l) && num_experts > 0 && (l + 1) % step == 0).collect();
    Ok(Some(MoeConfig {
        num_experts,
        top_k: r.num_experts_per_tok.unwrap_or(top_k),
        norm_topk_prob: r.norm_topk_prob.unwrap_or(false),
        expert_intermediate: r.moe_intermediate_size.unwrap_or(inter),
        shared_intermediate: shared,
        sparse_layers,
        router: Router::softmax(),
    }))
}

fn rope(r: &RawConfig) -> Result<(f64, RopeScaling)> {
    // transformers 5.x: rope_parameters {rope_type, rope_theta, ...}; 4.x: rope_theta + rope_scaling.
    let params = r.rope_parameters.as_ref();
    let theta = params.and_then(|p| p.rope_theta).or(r.rope_theta).unwrap_or(10000.0);
    let Some(s) = params.or(r.rope_scaling.as_ref()) else { return Ok((theta, RopeScaling::None)) };
    let kind = s.rope_type.as_deref().or(s.kind.as_deref()).unwrap_or("default");
    let f = |x: Option<f64>, k: &str| -> Result<f64> { x.with_context(|| format!("rope scaling {kind:?}: missing number {k:?}")) };
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear { factor: f(s.factor, "factor")? },
        "llama3" => RopeScaling::Llama3 {
            factor: f(s.factor, "factor")?,
            low_freq_factor: f(s.low_freq_factor, "low_freq_factor")?,
            high_freq_factor: f(s.high_freq_factor, "high_freq_factor")?,
            original_max_position_embeddings: f(s.original_max_position_embeddings, "original_max_position_embeddings")?,
        },
        "yarn" => RopeScaling::Yarn {
            factor: f(s.factor, "factor")?,
            original_max_position_embeddings: f(s.original_max_position_embeddings, "original_max_position_embeddings")?,
            // transformers: `get("beta_fast") or 32`, `get("beta_slow") or 1`.
            beta_fast: s.beta_fast.filter(|&b| b != 0.0).unwrap_or(32.0),
            beta_slow: s.beta_slow.filter(|&b| b != 0.0).unwrap_or(1.0),
            mscale: s.mscale.unwrap_or(0.0),
            mscale_all_dim: s.mscale_all_dim.unwrap_or(0.0),
            attention_factor: s.attention_factor,
            truncate: s.truncate.unwrap_or(true),
        },
        other => bail!("field \"rope_type\": {other:?} is not supported (default, linear, llama3; yarn for DeepSeek)"),
    };
    Ok((theta, scaling))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moe_json(arch: &str, extra: Value) -> Value {
        let mut v = serde_json::json!({
            "architectures": [arch], "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    #[test]
    fn moe_settings_and_sparse_layers_follow_transformers() {
        // Qwen3-MoE as transformers 5 writes it: num_local_experts; step 2 and an explicit dense layer.
        let c = Config::from_json(&moe_json(
            "Qwen3MoeForCausalLM",
            serde_json::json!({"num_local_experts": 6, "num_experts_per_tok": 3, "norm_topk_prob": true, "moe_intermediate_size": 40, "decoder_sparse_step": 2, "mlp_only_layers": [3]}),
        ))
        .unwrap();
        let m = c.moe.unwrap();
        assert_eq!((m.num_experts, m.top_k, m.norm_topk_prob, m.expert_intermediate, m.shared_intermediate), (6, 3, true, 40, None));
        assert_eq!(m.sparse_layers, vec![false, true, false, false]);
        assert!(c.qk_norm && !c.qkv_bias);
        assert_eq!(c.head_dim, 16, "Qwen3-MoE: head_dim defaults to hidden / heads");
        // Qwen2-MoE defaults: every layer sparse, shared expert 5632, q/k/v biases, no o bias.
        let c = Config::from_json(&moe_json("Qwen2MoeForCausalLM", serde_json::json!({}))).unwrap();
        let m = c.moe.unwrap();
        assert_eq!((m.num_experts, m.top_k, m.norm_topk_prob, m.shared_intermediate), (60, 4, false, Some(5632)));
        assert_eq!(m.sparse_layers, vec![true; 4]);
        assert!(c.qkv_bias && !c.o_bias && !c.qk_norm);
        // Dense architectures carry no MoE settings.
        assert!(Config::from_json(&moe_json("Qwen2ForCausalLM", serde_json::json!({}))).unwrap().moe.is_none());
    }

    #[test]
    fn bad_moe_settings_name_the_field() {
        for (extra, field) in [
            (serde_json::json!({"num_experts": 4, "num_experts_per_tok": 5}), "num_experts_per_tok"),
            (serde_json::json!({"num_experts": 4, "num_experts_per_tok": 0}), "num_experts_per_tok"),
            (serde_json::json!({"num_experts": 100000}), "num_experts"),
            (serde_json::json!({"decoder_sparse_step": 0}), "decoder_sparse_step"),
            (serde_json::json!({"moe_intermediate_size": 0}), "moe_intermediate_size"),
            (serde_json::json!({"shared_expert_intermediate_size": 0}), "shared_expert_intermediate_size"),
        ] {
            let e = format!("{:#}", Config::from_json(&moe_json("Qwen2MoeForCausalLM", extra.clone())).unwrap_err());
            assert!(e.contains(field), "{extra}: {e}");
        }
    }
}
