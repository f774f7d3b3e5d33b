//! config.json and a safetensors header: the input is the JSON text, a 0xFF byte, then the
//! safetensors bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pingce::model::weights::{Safetensors, TensorSource};
use pingce::model::Config;

fuzz_target!(|data: &[u8]| {
    let (json, st) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) {
        let _ = Config::from_json(&v);
    }
    if let Ok(s) = Safetensors::from_bytes(std::path::Path::new("fuzz.safetensors"), st.to_vec()) {
        for name in ["model.embed_tokens.weight", "model.norm.weight", "a", "x"] {
            if let Ok(t) = s.tensor(name) {
                let _ = t.to_f32();
            }
        }
    }
});
