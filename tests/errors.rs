//! Bad model folders: each fails with a message naming the file or field and what was expected.

use std::path::{Path, PathBuf};

use pingce::device::Gpu;
use pingce::engine::{Engine, EngineOptions};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A copy of a fixture model in a fresh temporary folder.
fn copy(name: &str, tag: &str) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("pingce-err-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

fn load_err(dir: &Path) -> String {
    let gpu = Gpu::default_device().unwrap();
    match Engine::load(gpu, dir, EngineOptions::default()) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn truncated_weights() {
    let d = copy("tiny-llama", "trunc");
    let p = d.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 1000]).unwrap();
    let e = load_err(&d);
    assert!(e.contains("model.safetensors") && e.contains("truncated"), "{e}");
    std::fs::write(&p, &bytes[..4]).unwrap();
    let e = load_err(&d);
    assert!(e.contains("model.safetensors") && e.contains("not a valid safetensors"), "{e}");
    std::fs::remove_file(&p).unwrap();
    assert!(load_err(&d).contains("no model.safetensors"));
}

#[test]
fn missing_shard() {
    let d = copy("tiny-qwen2", "shard");
    std::fs::remove_file(d.join("model-00002-of-00002.safetensors")).unwrap();
    let e = load_err(&d);
    assert!(e.contains("model-00002-of-00002.safetensors"), "{e}");
}

#[test]
fn wrong_shape_and_dtype() {
    // A config that disagrees with the weights: the tensor and both shapes are named.
    let d = copy("tiny-llama", "shape");
    edit_config(&d, |v| v["intermediate_size"] = 64.into());
    let e = load_err(&d);
    assert!(e.contains("mlp.gate_proj.weight") && e.contains("[100, 72]") && e.contains("[64, 72]"), "{e}");
    // An integer tensor where a float weight is expected.
    let d = copy("tiny-llama", "dtype");
    let ids: Vec<u8> = (0..72i64).flat_map(|x| x.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![72], &ids).unwrap();
    safetensors::serialize_to_file([("model.norm.weight", view)], None, &d.join("model.safetensors")).unwrap();
    let e = load_err(&d);
    assert!(e.contains("model.norm.weight") && e.contains("I64"), "{e}");
}

#[test]
fn unsupported_config() {
    let d = copy("tiny-llama", "arch");
    edit_config(&d, |v| v["architectures"] = serde_json::json!(["GPT2LMHeadModel"]));
    assert!(load_err(&d).contains("GPT2LMHeadModel is not supported"));
    let d = copy("tiny-llama", "act");
    edit_config(&d, |v| v["hidden_act"] = "gelu".into());
    assert!(load_err(&d).contains("\"hidden_act\""));
    let d = copy("tiny-llama", "rope");
    edit_config(&d, |v| v["rope_parameters"]["rope_type"] = "yarn".into());
    let e = load_err(&d);
    assert!(e.contains("rope_type") && e.contains("yarn") && e.contains("config.json"), "{e}");
}

#[test]
fn tokenizer_larger_than_the_vocab() {
    let d = copy("tiny-mistral", "vocab");
    edit_config(&d, |v| v["vocab_size"] = 300.into());
    let e = load_err(&d);
    assert!(e.contains("tokenizer.json") && e.contains("448") && e.contains("300"), "{e}");
    let d = copy("tiny-mistral", "notok");
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    assert!(load_err(&d).contains("tokenizer.json"));
}
