//! A GGUF file as a model: its hyper-parameters mapped to a config, its tokenizer metadata
//! rebuilt as a tokenizer, its tensors seen through Hugging Face names (llama q/k rows
//! un-permuted).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pingce::model::gguf::{Gguf, GgufModel};
use pingce::model::gguf_tokenizer;
use pingce::model::weights::TensorSource;

fuzz_target!(|data: &[u8]| {
    let Ok(gguf) = Gguf::from_bytes(std::path::Path::new("fuzz.gguf"), data.to_vec()) else { return };
    if let Ok(t) = gguf_tokenizer::from_gguf(&gguf) {
        let _ = pingce::model::tokenizer::Encode::encode(&t, "Hello wörld 12");
    }
    let Ok(cfg) = gguf.config() else { return };
    let m = GgufModel { gguf, cfg };
    for name in ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.q_proj.bias"] {
        if let Ok(t) = m.tensor(name) {
            let _ = t.to_f32();
        }
    }
});
