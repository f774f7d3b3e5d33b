//! The DeepSeek-V2 / DeepSeek-V3 settings of a `config.json`: multi-head latent attention
//! ([`MlaConfig`]) and the mixture of experts with DeepSeek's routers ([`Router`]). Defaults are
//! transformers' `DeepseekV2Config` / `DeepseekV3Config`; the keys transformers does not read but
//! published configs carry (`topk_method` and `scoring_func` for V3, `moe_layer_freq`) are checked
//! so a model pingce would run differently is refused rather than misread.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

use super::config::{Arch, Config, MlaConfig, MoeConfig, RopeLayout, RopeScaling, Router, MAX_EXPERTS, MAX_WIDTH};
use crate::kernels::moe_route::MAX_GROUPS;

#[derive(Default, Deserialize)]
struct Raw {
    /// `null` means no q LoRA (q_proj); absent means the default rank (read from the JSON value).
    #[allow(dead_code)]
    q_lora_rank: Option<Value>,
    kv_lora_rank: Option<usize>,
    qk_nope_head_dim: Option<usize>,
    qk_rope_head_dim: Option<usize>,
    v_head_dim: Option<usize>,
    n_routed_experts: Option<usize>,
    n_shared_experts: Option<usize>,
    moe_intermediate_size: Option<usize>,
    num_experts_per_tok: Option<usize>,
    n_group: Option<usize>,
    topk_group: Option<usize>,
    topk_method: Option<String>,
    scoring_func: Option<String>,
    norm_topk_prob: Option<bool>,
    routed_scaling_factor: Option<f64>,
    first_k_dense_replace: Option<usize>,
    moe_layer_freq: Option<usize>,
    rope_interleave: Option<bool>,
}

fn parse(v: &Value) -> Result<Raw> {
    match Raw::deserialize(v) {
        Ok(r) => Ok(r),
        Err(e) => {
            if let Some(obj) = v.as_object() {
                for (k, x) in obj {
                    if let Err(e) = Raw::deserialize(&serde_json::json!({ k: x })) {
                        bail!("field {k:?}: {e}");
                    }
                }
            }
            bail!("{e}")
        }
    }
}

/// The MLA and MoE settings of a DeepSeek config, and the padded attention head size.
pub(super) fn settings(v: &Value, arch: Arch, num_layers: usize, rope: &RopeScaling) -> Result<(MlaConfig, MoeConfig, usize)> {
    let r = parse(v)?;
    let v3 = arch == Arch::DeepseekV3;
    // serde reads null as absent: look at the JSON itself.
    let q_lora_rank = match v.get("q_lora_rank") {
        None => Some(1536),
        Some(Value::Null) => None,
        Some(x) => Some(x.as_u64().filter(|&n| n > 0).with_context(|| format!("field \"q_lora_rank\": {x}, expected a positive integer or null"))? as usize),
    };
    // Sizes are range-checked before anything is computed from them (hostile configs).
    for (x, name) in [
        (r.kv_lora_rank, "kv_lora_rank"),
        (r.qk_nope_head_dim, "qk_nope_head_dim"),
        (r.qk_rope_head_dim, "qk_rope_head_dim"),
        (r.v_head_dim, "v_head_dim"),
        (q_lora_rank.or(Some(1)), "q_lora_rank"),
        (r.moe_intermediate_size, "moe_intermediate_size"),
        (r.n_shared_experts.map(|n| n.max(1)), "n_shared_experts"),
    ] {
        if let Some(x) = x {
            if x == 0 || x > MAX_WIDTH {
                bail!("field {name:?} is {x}, expected 1 to {MAX_WIDTH}");
            }
        }
    }
    let mla = MlaConfig {
        q_lora_rank,
        kv_lora_rank: r.kv_lora_rank.unwrap_or(512),
        qk_nope_head_dim: r.qk_nope_head_dim.unwrap_or(128),
        qk_rope_head_dim: r.qk_rope_head_dim.unwrap_or(64),
        v_head_dim: r.v_head_dim.unwrap_or(128),
        rope_layout: match (v3, r.rope_interleave.unwrap_or(true)) {
            (false, _) => RopeLayout::Interleaved,
            (true, true) => RopeLayout::InterleavedToHalves,
            (true, false) => RopeLayout::Halves,
        },
        softmax_scale: {
            let qk = (r.qk_nope_head_dim.unwrap_or(128) + r.qk_rope_head_dim.unwrap_or(64)) as f64;
            let mut s = qk.powf(-0.5);
            // transformers' yarn_apply_mscale: any non-default rope type with mscale_all_dim.
            if let RopeScaling::Yarn { factor, mscale_all_dim, .. } = *rope {
                if mscale_all_dim != 0.0 {
                    let m = super::config::yarn_mscale(factor, mscale_all_dim);
                    s = s * m * m;
                }
            }
            s
        },
    };
    if !mla.qk_rope_head_dim.is_multiple_of(2) {
        bail!("field \"qk_rope_head_dim\" is {}, expected an even number (rotated in pairs)", mla.qk_rope_head_dim);
    }
    let head_dim = mla.qk_head_dim().max(mla.v_head_dim).next_multiple_of(4);

    let sigmoid = if v3 {
        // transformers' DeepseekV3TopkRouter is always noaux_tc with sigmoid scores.
        if let Some(m) = r.topk_method.as_deref().filter(|&m| m != "noaux_tc") {
            bail!("field \"topk_method\": {m:?} is not supported for DeepseekV3ForCausalLM (only \"noaux_tc\")");
        }
        if let Some(f) = r.scoring_func.as_deref().filter(|&f| f != "sigmoid") {
            bail!("field \"scoring_func\": {f:?} is not supported for DeepseekV3ForCausalLM (only \"sigmoid\")");
        }
        true
    } else {
        if let Some(f) = r.scoring_func.as_deref().filter(|&f| f != "softmax") {
            bail!("field \"scoring_func\": {f:?} is not supported for DeepseekV2ForCausalLM (only \"softmax\")");
        }
        false
    };
    let experts = r.n_routed_experts.unwrap_or(if v3 { 256 } else { 64 });
    let (groups, topk_groups, group_top2) = if v3 {
        (r.n_group.unwrap_or(8), r.topk_group.unwrap_or(4), true)
    } else {
        match r.topk_method.as_deref().unwrap_or("greedy") {
            "greedy" => (1, 1, false),
            "group_limited_greedy" => (
                r.n_group.context("field \"n_group\" is required with topk_method \"group_limited_greedy\"")?,
                r.topk_group.context("field \"topk_group\" is required with topk_method \"group_limited_greedy\"")?,
                false,
            ),
            other => bail!("field \"topk_method\": {other:?} is not supported for DeepseekV2ForCausalLM (greedy, group_limited_greedy)"),
        }
    };
    let norm_topk_prob = r.norm_topk_prob.unwrap_or(v3);
    if !v3 && norm_topk_prob {
        // transformers' DeepseekV2TopkRouter ignores it while DeepSeek's own code renormalises:
        // refuse rather than pick one.
        bail!("field \"norm_topk_prob\": true is not supported for DeepseekV2ForCausalLM (transformers ignores it, DeepSeek's reference code applies it)");
    }
    let top_k = match r.num_experts_per_tok {
        Some(k) => k,
        None if v3 => 8,
        None => bail!("missing required field \"num_experts_per_tok\""),
    };
    let first_dense = r.first_k_dense_replace.unwrap_or(if v3 { 3 } else { 0 });
    let freq = r.moe_layer_freq.unwrap_or(1);
    if freq == 0 {
        bail!("field \"moe_layer_freq\" is 0, expected at least 1");
    }
    // DeepSeek's modeling code: sparse from first_k_dense_replace on, every moe_layer_freq-th layer
    // (transformers reads only first_k_dense_replace; every published model has freq 1).
    let sparse_layers = (0..num_layers).map(|l| experts > 0 && l >= first_dense && l % freq == 0).collect();
    let moe_inter = r.moe_intermediate_size.unwrap_or(if v3 { 2048 } else { 1407 });
    let shared = r.n_shared_experts.unwrap_or(if v3 { 1 } else { 2 });
    let scale = r.routed_scaling_factor.unwrap_or(if v3 { 2.5 } else { 1.0 });
    if !(scale.is_finite() && scale > 0.0) {
        bail!("field \"routed_scaling_factor\" is {scale}, expected a finite number above 0");
    }
    let moe = MoeConfig {
        num_experts: experts,
        top_k,
        norm_topk_prob,
        expert_intermediate: moe_inter,
        shared_intermediate: match shared {
            0 => None,
            n => Some(n.checked_mul(moe_inter).filter(|&w| w <= MAX_WIDTH).with_context(|| format!("n_shared_experts {n} × moe_intermediate_size {moe_inter} is above {MAX_WIDTH}"))?),
        },
        sparse_layers,
        router: Router { sigmoid, correction_bias: v3, groups, topk_groups, group_top2, scale, ungated_shared: true },
    };
    Ok((mla, moe, head_dim))
}

/// The MLA settings fit the attention pingce runs them with.
pub(super) fn validate_mla(c: &Config, m: &MlaConfig) -> Result<()> {
    if c.num_kv_heads != c.num_heads {
        bail!("MLA: {} key/value heads for {} query heads (MLA expands one per query head)", c.num_kv_heads, c.num_heads);
    }
    if c.head_dim < m.qk_head_dim().max(m.v_head_dim) {
        bail!("MLA: attention head size {} below qk_nope + qk_rope {} / v_head_dim {}", c.head_dim, m.qk_head_dim(), m.v_head_dim);
    }
    if !(m.softmax_scale.is_finite() && m.softmax_scale > 0.0) {
        bail!("MLA: softmax scale {} (from qk head size and YaRN mscale_all_dim) is not a positive number", m.softmax_scale);
    }
    Ok(())
}

/// Group settings the routing kernel handles: groups divide the experts, enough eligible experts
/// for top-k, at most [`MAX_GROUPS`] groups, two experts per group for a top-2 group score.
pub(super) fn validate_router(m: &MoeConfig) -> Result<()> {
    let r = &m.router;
    if r.groups == 0 || r.groups > MAX_GROUPS.min(MAX_EXPERTS) || !m.num_experts.is_multiple_of(r.groups) {
        bail!("field \"n_group\" is {}, expected a divisor of the {} experts, at most {MAX_GROUPS}", r.groups, m.num_experts);
    }
    if r.topk_groups == 0 || r.topk_groups > r.groups {
        bail!("field \"topk_group\" is {}, expected 1 to n_group {}", r.topk_groups, r.groups);
    }
    let per = m.num_experts / r.groups;
    if m.top_k > r.topk_groups * per {
        bail!("field \"num_experts_per_tok\" is {}, more than the {} experts of topk_group {} groups of {per}", m.top_k, r.topk_groups * per, r.topk_groups);
    }
    if r.group_top2 && per < 2 {
        bail!("field \"n_group\": {} groups of {per} expert, but the noaux_tc group score sums each group's two best experts", r.groups);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(arch: &str, extra: Value) -> Value {
        let mut v = serde_json::json!({
            "architectures": [arch], "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4,
            "num_attention_heads": 4, "vocab_size": 100, "q_lora_rank": null, "kv_lora_rank": 16,
            "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 16, "n_routed_experts": 8,
            "num_experts_per_tok": 2, "moe_intermediate_size": 20, "first_k_dense_replace": 1,
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    #[test]
    fn deepseek_settings_follow_transformers() {
        let c = Config::from_json(&json("DeepseekV2ForCausalLM", serde_json::json!({"topk_method": "group_limited_greedy", "n_group": 4, "topk_group": 2, "head_dim": 4}))).unwrap();
        let (mla, moe) = (c.mla.clone().unwrap(), c.moe.clone().unwrap());
        assert_eq!((mla.q_lora_rank, mla.rope_layout, c.head_dim, c.num_kv_heads), (None, RopeLayout::Interleaved, 16, 4));
        assert_eq!(moe.sparse_layers, vec![false, true, true, true]);
        assert_eq!((moe.router.groups, moe.router.topk_groups, moe.router.sigmoid, moe.shared_intermediate), (4, 2, false, Some(40)));
        assert!((mla.softmax_scale - 12f64.powf(-0.5)).abs() < 1e-15);
        let c = Config::from_json(&json(
            "DeepseekV3ForCausalLM",
            serde_json::json!({"q_lora_rank": 24, "qk_nope_head_dim": 12, "qk_rope_head_dim": 8, "n_group": 4, "topk_group": 2,
                "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 64, "mscale": 0.707, "mscale_all_dim": 0.707}}),
        ))
        .unwrap();
        let (mla, moe) = (c.mla.clone().unwrap(), c.moe.clone().unwrap());
        assert_eq!((mla.q_lora_rank, mla.rope_layout, c.head_dim), (Some(24), RopeLayout::InterleavedToHalves, 20));
        assert!(moe.router.sigmoid && moe.router.correction_bias && moe.router.group_top2 && moe.norm_topk_prob);
        assert_eq!(moe.router.scale, 2.5);
        let m = 0.1 * 0.707 * 4f64.ln() + 1.0;
        assert!((mla.softmax_scale - 20f64.powf(-0.5) * m * m).abs() < 1e-12);
        assert_eq!(c.rope_attention_factor(), 1.0);
        assert_eq!(c.inv_freq().len(), 4);
    }

    /// The keys of the published DeepSeek-V2-Lite and DeepSeek-V3 config.json files
    /// (transformers 4.x style: `rope_scaling` with `type`).
    #[test]
    fn published_configs_parse() {
        let lite = serde_json::json!({
            "architectures": ["DeepseekV2ForCausalLM"], "hidden_size": 2048, "intermediate_size": 10944, "num_hidden_layers": 27,
            "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 102400, "max_position_embeddings": 163840,
            "q_lora_rank": null, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
            "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6, "moe_intermediate_size": 1408,
            "first_k_dense_replace": 1, "moe_layer_freq": 1, "topk_method": "greedy", "n_group": 1, "topk_group": 1,
            "scoring_func": "softmax", "norm_topk_prob": false, "routed_scaling_factor": 1.0, "rope_theta": 10000,
            "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
                "original_max_position_embeddings": 4096, "type": "yarn"},
            "aux_loss_alpha": 0.001, "seq_aux": true, "hidden_act": "silu", "rms_norm_eps": 1e-6, "tie_word_embeddings": false,
        });
        let c = Config::from_json(&lite).unwrap();
        let (mla, moe) = (c.mla.clone().unwrap(), c.moe.clone().unwrap());
        assert_eq!((c.head_dim, c.num_kv_heads, mla.q_lora_rank, moe.router.groups, moe.shared_intermediate), (192, 16, None, 1, Some(2816)));
        assert_eq!(moe.sparse_layers.iter().filter(|&&s| s).count(), 26);
        let m = 0.1 * 0.707 * 40f64.ln() + 1.0;
        assert!((mla.softmax_scale - 192f64.powf(-0.5) * m * m).abs() < 1e-12);
        assert!(matches!(c.rope_scaling, RopeScaling::Yarn { factor, .. } if factor == 40.0));
        let mut v3 = lite.clone();
        for (k, x) in serde_json::json!({
            "architectures": ["DeepseekV3ForCausalLM"], "hidden_size": 7168, "intermediate_size": 18432, "num_hidden_layers": 61,
            "num_attention_heads": 128, "num_key_value_heads": 128, "vocab_size": 129280, "q_lora_rank": 1536,
            "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8, "moe_intermediate_size": 2048,
            "first_k_dense_replace": 3, "topk_method": "noaux_tc", "n_group": 8, "topk_group": 4, "scoring_func": "sigmoid",
            "norm_topk_prob": true, "routed_scaling_factor": 2.5, "num_nextn_predict_layers": 1,
            "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                "original_max_position_embeddings": 4096, "type": "yarn"},
        })
        .as_object()
        .unwrap()
        {
            v3[k] = x.clone();
        }
        let c = Config::from_json(&v3).unwrap();
        let (mla, moe) = (c.mla.clone().unwrap(), c.moe.clone().unwrap());
        assert_eq!((c.head_dim, mla.q_lora_rank, mla.rope_layout), (192, Some(1536), RopeLayout::InterleavedToHalves));
        assert_eq!((moe.router.groups, moe.router.topk_groups, moe.top_k, moe.shared_intermediate), (8, 4, 8, Some(2048)));
        assert_eq!(moe.sparse_layers.iter().position(|&s| s), Some(3));
        assert_eq!(c.rope_attention_factor(), 1.0);
    }

    #[test]
    fn unsupported_deepseek_settings_are_refused_naming_the_field() {
        for (arch, extra, field) in [
            ("DeepseekV3ForCausalLM", serde_json::json!({"topk_method": "greedy"}), "topk_method"),
            ("DeepseekV3ForCausalLM", serde_json::json!({"scoring_func": "softmax"}), "scoring_func"),
            ("DeepseekV2ForCausalLM", serde_json::json!({"scoring_func": "sigmoid"}), "scoring_func"),
            ("DeepseekV2ForCausalLM", serde_json::json!({"topk_method": "noaux_tc"}), "topk_method"),
            ("DeepseekV2ForCausalLM", serde_json::json!({"topk_method": "group_limited_greedy", "topk_group": 2}), "n_group"),
            ("DeepseekV2ForCausalLM", serde_json::json!({"norm_topk_prob": true}), "norm_topk_prob"),
            ("DeepseekV3ForCausalLM", serde_json::json!({"n_group": 3}), "n_group"),
            ("DeepseekV3ForCausalLM", serde_json::json!({"n_group": 8, "topk_group": 1, "num_experts_per_tok": 1}), "n_group"),
            ("DeepseekV3ForCausalLM", serde_json::json!({"n_group": 4, "topk_group": 5}), "topk_group"),
            ("DeepseekV3ForCausalLM", serde_json::json!({"n_group": 4, "topk_group": 1, "num_experts_per_tok": 3}), "num_experts_per_tok"),
            ("DeepseekV2ForCausalLM", serde_json::json!({"attention_bias": true}), "attention_bias"),
            ("DeepseekV2ForCausalLM", serde_json::json!({"qk_rope_head_dim": 5}), "qk_rope_head_dim"),
            ("DeepseekV2ForCausalLM", serde_json::json!({"kv_lora_rank": 0}), "kv_lora_rank"),
            ("DeepseekV2ForCausalLM", serde_json::json!({"moe_layer_freq": 0}), "moe_layer_freq"),
            ("DeepseekV2ForCausalLM", serde_json::json!({"q_lora_rank": "x"}), "q_lora_rank"),
            ("DeepseekV3ForCausalLM", serde_json::json!({"routed_scaling_factor": -1.0}), "routed_scaling_factor"),
            // Hostile sizes: errors, not arithmetic overflow.
            ("DeepseekV3ForCausalLM", serde_json::json!({"qk_nope_head_dim": u64::MAX}), "qk_nope_head_dim"),
            ("DeepseekV3ForCausalLM", serde_json::json!({"n_shared_experts": 1u64 << 23, "moe_intermediate_size": 1u64 << 23}), "n_shared_experts"),
            ("DeepseekV2ForCausalLM", serde_json::json!({"q_lora_rank": 0}), "q_lora_rank"),
            ("Qwen3ForCausalLM", serde_json::json!({"rope_parameters": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 64}}), "yarn"),
        ] {
            let e = format!("{:#}", Config::from_json(&json(arch, extra.clone())).unwrap_err());
            assert!(e.contains(field), "{arch} {extra}: {e}");
        }
    }
}
