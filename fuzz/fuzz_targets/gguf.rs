//! GGUF container parsing from arbitrary bytes: header, metadata, tensor infos and every
//! tensor's bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pingce::model::gguf::Gguf;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = Gguf::from_bytes(std::path::Path::new("fuzz.gguf"), data.to_vec()) {
        for name in g.tensors.keys() {
            let _ = g.tensor_bytes(name);
        }
    }
});
