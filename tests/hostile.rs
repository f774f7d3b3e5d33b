//! Hostile files: each crafted input (from the probe of issue 12 and from fuzzing) is refused
//! with an error naming the field, line or path at fault; none panics, hangs or allocates
//! gigabytes. Every input is built here, small.

use std::path::{Path, PathBuf};

use pingce::eval::data::{self, Format};
use pingce::eval::task::{self, load::parse_task_file};
use pingce::model::gguf::Gguf;
use pingce::model::weights::Safetensors;
use pingce::model::Config;
use serde_json::{json, Value as Json};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pingce-hostile-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------- GGUF

/// Little-endian GGUF bytes, written piece by piece.
#[derive(Default)]
struct G(Vec<u8>);

impl G {
    fn header(n_tensors: u64, n_kv: u64) -> G {
        let mut g = G(b"GGUF".to_vec());
        g.u32(3).u64(n_tensors).u64(n_kv);
        g
    }
    fn u32(&mut self, x: u32) -> &mut G {
        self.0.extend(x.to_le_bytes());
        self
    }
    fn u64(&mut self, x: u64) -> &mut G {
        self.0.extend(x.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut G {
        self.u64(s.len() as u64);
        self.0.extend(s.as_bytes());
        self
    }
    fn kv_u32(&mut self, k: &str, v: u32) -> &mut G {
        self.str(k).u32(4).u32(v)
    }
    fn kv_str(&mut self, k: &str, v: &str) -> &mut G {
        self.str(k).u32(8).str(v)
    }
    /// A tensor info: name, dims, type (0 = F32), data offset.
    fn tensor(&mut self, name: &str, ne: &[u64], offset: u64) -> &mut G {
        self.str(name).u32(ne.len() as u32);
        for &d in ne {
            self.u64(d);
        }
        self.u32(0).u64(offset)
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(&mut self, n: usize) -> Vec<u8> {
        let mut b = self.0.clone();
        b.resize(b.len().next_multiple_of(32) + n, 0);
        b
    }
}

fn gguf_err(bytes: Vec<u8>) -> String {
    match Gguf::from_bytes(Path::new("hostile.gguf"), bytes) {
        Ok(_) => panic!("the crafted GGUF was accepted"),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_has(e: &str, needles: &[&str]) {
    for n in needles {
        assert!(e.contains(n), "{n:?} not in: {e}");
    }
}

#[test]
fn gguf_huge_counts_are_refused_before_allocating() {
    for n in [1u64 << 40, 1 << 63, u64::MAX] {
        assert_has(&gguf_err(G::header(n, 0).data(0)), &["hostile.gguf", "tensor count"]);
        assert_has(&gguf_err(G::header(0, n).data(0)), &["hostile.gguf", "metadata key count"]);
    }
}

#[test]
fn gguf_string_length_u64_max() {
    let mut g = G::header(0, 1);
    g.u64(u64::MAX);
    g.0.extend([0u8; 16]);
    assert_has(&gguf_err(g.data(0)), &["string of 18446744073709551615 bytes", "truncated"]);
}

#[test]
fn gguf_zero_and_too_many_dimensions() {
    let mut g = G::header(1, 0);
    g.tensor("t", &[], 0);
    assert_has(&gguf_err(g.data(64)), &["tensor t", "0 dimensions"]);
    let mut g = G::header(1, 0);
    g.tensor("t", &[4, 0], 0);
    assert_has(&gguf_err(g.data(64)), &["tensor t", "dimension 1 is 0"]);
    let mut g = G::header(1, 0);
    g.tensor("t", &[1, 1, 1, 1, 1], 0);
    assert_has(&gguf_err(g.data(64)), &["tensor t", "5 dimensions"]);
}

#[test]
fn gguf_element_count_overflow() {
    let mut g = G::header(1, 0);
    g.tensor("t", &[1 << 32, 1 << 32, 1 << 32], 0);
    assert_has(&gguf_err(g.data(64)), &["tensor t", "overflows"]);
}

#[test]
fn gguf_alignment_zero_or_odd() {
    for a in [0u32, 3, 1 << 30] {
        let mut g = G::header(0, 1);
        g.kv_u32("general.alignment", a);
        assert_has(&gguf_err(g.data(0)), &["general.alignment", "power of two"]);
    }
}

#[test]
fn gguf_offset_wrapping_to_the_header() {
    let mut g = G::header(1, 0);
    g.tensor("t", &[4], u64::MAX - 31);
    assert_has(&gguf_err(g.data(64)), &["tensor t", "end past"]);
}

#[test]
fn gguf_tensor_past_the_end_or_misaligned() {
    let mut g = G::header(1, 0);
    g.tensor("t", &[64], 0);
    assert_has(&gguf_err(g.data(16)), &["tensor t", "end past"]);
    let mut g = G::header(1, 0);
    g.tensor("t", &[4], 4);
    assert_has(&gguf_err(g.data(64)), &["tensor t", "not a multiple of the alignment"]);
}

#[test]
fn gguf_overlapping_and_duplicate_tensors() {
    let mut g = G::header(2, 0);
    g.tensor("a", &[16], 0).tensor("b", &[16], 32);
    assert_has(&gguf_err(g.data(128)), &["tensors a", "b", "overlap"]);
    let mut g = G::header(2, 0);
    g.tensor("a", &[4], 0).tensor("a", &[4], 32);
    assert_has(&gguf_err(g.data(128)), &["tensor a appears twice"]);
    // Side by side is fine.
    let mut g = G::header(2, 0);
    g.tensor("a", &[8], 0).tensor("b", &[8], 32);
    assert!(Gguf::from_bytes(Path::new("ok.gguf"), g.data(64)).is_ok());
}

#[test]
fn gguf_nested_arrays() {
    // An array of arrays ... nested 1000 deep (the probe used 10^6).
    let mut g = G::header(0, 1);
    g.str("deep");
    g.u32(9);
    for _ in 0..1000 {
        g.u32(9).u64(1);
    }
    assert_has(&gguf_err(g.data(0)), &["\"deep\"", "nested deeper"]);
}

#[test]
fn gguf_huge_arrays_are_bounded_by_the_file() {
    // 140M u8 values announced, 16 present.
    let mut g = G::header(0, 1);
    g.str("tokenizer.ggml.token_type").u32(9).u32(0).u64(140_000_000);
    g.0.extend([0u8; 16]);
    assert_has(&gguf_err(g.0.clone()), &["tokenizer.ggml.token_type", "array length 140000000"]);
    // More values in all than any tokenizer needs.
    let n = pingce::model::gguf::MAX_METADATA_VALUES as u64 + 1;
    let mut g = G::header(0, 1);
    g.str("big").u32(9).u32(0).u64(n);
    g.0.resize(g.0.len() + n as usize, 0);
    assert_has(&gguf_err(g.0.clone()), &["\"big\"", "metadata values"]);
}

/// A GGUF holding only llama hyper-parameters (no tensors), with `edit` applied.
fn llama_meta(edit: &[(&str, u64)]) -> Vec<u8> {
    let mut kv: Vec<(&str, u64)> = vec![
        ("llama.attention.head_count", 2),
        ("llama.embedding_length", 16),
        ("llama.feed_forward_length", 32),
        ("llama.block_count", 2),
        ("llama.context_length", 64),
        ("llama.vocab_size", 10),
    ];
    for (k, v) in edit {
        kv.retain(|(x, _)| x != k);
        kv.push((k, *v));
    }
    let mut g = G::header(0, kv.len() as u64 + 1);
    g.kv_str("general.architecture", "llama");
    for (k, v) in kv {
        g.str(k).u32(10).u64(v);
    }
    g.data(0)
}

fn gguf_config_err(edit: &[(&str, u64)]) -> String {
    let g = Gguf::from_bytes(Path::new("hostile.gguf"), llama_meta(edit)).unwrap();
    match g.config() {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn gguf_hyper_parameters_are_validated() {
    assert!(Gguf::from_bytes(Path::new("ok.gguf"), llama_meta(&[])).unwrap().config().is_ok());
    assert_has(&gguf_config_err(&[("llama.attention.head_count", 0)]), &["hostile.gguf", "head_count", "is 0"]);
    for n in [1u64 << 40, 1 << 58, 20_000_000, 1_000_000_000_000] {
        assert_has(&gguf_config_err(&[("llama.context_length", n)]), &["max_position_embeddings"]);
        assert_has(&gguf_config_err(&[("llama.block_count", n)]), &["num_hidden_layers"]);
    }
    assert_has(&gguf_config_err(&[("llama.block_count", 0)]), &["num_hidden_layers", "is 0"]);
    assert_has(&gguf_config_err(&[("llama.vocab_size", 0)]), &["vocab_size", "is 0"]);
    assert_has(&gguf_config_err(&[("llama.embedding_length", 15)]), &["hostile.gguf", "head_dim 7"]);
}

// ---------------------------------------------------------------- config.json

fn tiny_config() -> Json {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama/config.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn config_err(edit: impl FnOnce(&mut Json)) -> String {
    let mut v = tiny_config();
    edit(&mut v);
    match Config::from_json(&v) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn config_json_is_validated() {
    assert!(Config::from_json(&tiny_config()).is_ok());
    assert_has(&config_err(|v| v["rope_parameters"] = json!({"rope_type": "linear", "factor": 0.0, "rope_theta": 10000.0})), &["factor", "is 0"]);
    assert_has(&config_err(|v| v["rms_norm_eps"] = json!(-1e-6)), &["rms_norm_eps"]);
    assert_has(&config_err(|v| v["rms_norm_eps"] = json!(0.0)), &["rms_norm_eps"]);
    assert_has(&config_err(|v| v["max_position_embeddings"] = json!(1u64 << 40)), &["max_position_embeddings"]);
    assert_has(&config_err(|v| v["max_position_embeddings"] = json!(1e12)), &["max_position_embeddings"]);
    assert_has(&config_err(|v| v["max_position_embeddings"] = json!(0)), &["max_position_embeddings"]);
    assert_has(&config_err(|v| v["num_hidden_layers"] = json!(1_000_000_000_000u64)), &["num_hidden_layers"]);
    assert_has(&config_err(|v| v["num_attention_heads"] = json!(0)), &["num_attention_heads"]);
    assert_has(&config_err(|v| v["num_key_value_heads"] = json!(0)), &["num_key_value_heads"]);
    assert_has(&config_err(|v| v["vocab_size"] = json!(0)), &["vocab_size"]);
    assert_has(&config_err(|v| v["hidden_size"] = json!("wide")), &["\"hidden_size\"", "invalid type"]);
    assert_has(&config_err(|v| v["head_dim"] = json!(0)), &["head_dim"]);
}

#[test]
fn safetensors_shape_overflow_and_bad_offsets() {
    let st = |header: &str, data: usize| {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend(header.as_bytes());
        b.resize(b.len() + data, 0);
        Safetensors::from_bytes(Path::new("hostile.safetensors"), b).map(|_| ()).map_err(|e| format!("{e:#}"))
    };
    assert!(st(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8).is_ok());
    let e = st(r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, 8).unwrap_err();
    assert_has(&e, &["hostile.safetensors"]);
    let e = st(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 4).unwrap_err();
    assert_has(&e, &["hostile.safetensors"]);
}

// ---------------------------------------------------------------- task YAML and templates

const TASK: &str = "task: t\ndataset:\n  format: jsonl\n  files:\n    test: t.jsonl\ntest_split: test\noutput_type: loglikelihood\ndoc_to_text: q\ndoc_to_target: a\n";

#[test]
fn yaml_nested_deep_is_refused_before_parsing() {
    let deep = format!("{TASK}metadata: {}{}\n", "[".repeat(300_000), "]".repeat(300_000));
    let e = format!("{:#}", parse_task_file(Path::new("deep.yaml"), &deep).unwrap_err());
    assert_has(&e, &["deep.yaml", "line 10", "nested deeper"]);
    let blocks: String = (0..100).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
    let e = format!("{:#}", parse_task_file(Path::new("deep.yaml"), &format!("{TASK}metadata:\n{blocks}")).unwrap_err());
    assert_has(&e, &["deep.yaml", "nested deeper"]);
    let big = format!("{TASK}description: \"{}\"\n", "x".repeat(2 << 20));
    let e = format!("{:#}", parse_task_file(Path::new("big.yaml"), &big).unwrap_err());
    assert_has(&e, &["big.yaml", "bytes"]);
    assert!(parse_task_file(Path::new("ok.yaml"), TASK).is_ok());
}

#[test]
fn template_loops_run_out_of_fuel_and_doubling_is_refused() {
    let loops = "{% for a in range(1000) %}".repeat(6) + "x" + &"{% endfor %}".repeat(6);
    let e = pingce::eval::template::environment().render_str(&loops, minijinja::context! {}).unwrap_err();
    assert_eq!(e.kind(), minijinja::ErrorKind::OutOfFuel);
    let doubling = "{% set s = 'ab' %}".to_string() + &"{% set s = s ~ s %}".repeat(31) + "{{ s }}";
    let yaml = TASK.replace("doc_to_text: q", &format!("doc_to_text: \"{doubling}\""));
    let e = format!("{:#}", parse_task_file(Path::new("double.yaml"), &yaml).unwrap_err());
    assert_has(&e, &["double.yaml", "doc_to_text", "set"]);
}

// ---------------------------------------------------------------- datasets

#[test]
fn dataset_line_too_long_and_empty_files() {
    let d = tmpdir("lines");
    let long = d.join("long.jsonl");
    std::fs::write(&long, format!("{{\"q\": \"a\"}}\n{{\"q\": \"{}\"}}\n", "x".repeat(2 << 20))).unwrap();
    let e = format!("{:#}", data::read_file(Format::Jsonl, &long).unwrap_err());
    assert_has(&e, &["long.jsonl", "line 2", "longer than"]);
    let empty = d.join("empty.jsonl");
    std::fs::write(&empty, "\n  \n").unwrap();
    for f in [Format::Jsonl, Format::MmluCsv, Format::Text, Format::Wikitext, Format::TruthfulqaJson] {
        let e = format!("{:#}", data::read_file(f, &empty).unwrap_err());
        assert_has(&e, &["empty.jsonl", "empty"]);
    }
    let header_only = d.join("h.csv");
    std::fs::write(&header_only, "id,question,A,B,C,D,answer,explanation\n").unwrap();
    let e = format!("{:#}", data::read_file(Format::CevalCsv, &header_only).unwrap_err());
    assert_has(&e, &["h.csv", "no documents"]);
}

// ---------------------------------------------------------------- paths

fn task_with_files(dir: &Path, pattern: &str) -> task::Task {
    let yaml = TASK.replace("t.jsonl", pattern);
    std::fs::write(dir.join("t.yaml"), &yaml).unwrap();
    task::load_tasks(dir).unwrap().remove(0)
}

#[test]
fn dataset_paths_stay_inside_the_data_folder() {
    let root = tmpdir("paths");
    let (data, tasks, outside) = (root.join("data"), root.join("tasks"), root.join("outside"));
    for d in [&data.join("sub"), &tasks, &outside] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(outside.join("secret.jsonl"), "{\"q\": \"s\", \"a\": \"x\"}\n").unwrap();
    std::fs::write(data.join("in.jsonl"), "{\"q\": \"i\", \"a\": \"y\"}\n").unwrap();
    assert!(task_with_files(&tasks, "in.jsonl").docs(&data).is_ok());
    for pattern in ["../outside/secret.jsonl", "../outside/*.jsonl", "sub/../../outside/secret.jsonl"] {
        let t = task_with_files(&tasks, pattern);
        let e = format!("{:#}", t.docs(&data).unwrap_err());
        assert_has(&e, &[pattern, "leaves the folder", "--allow-outside-paths"]);
        assert!(t.docs_in(&data, true).is_ok(), "{pattern} with the flag");
    }
    let abs = outside.join("secret.jsonl").display().to_string();
    let e = format!("{:#}", task_with_files(&tasks, &abs).docs(&data).unwrap_err());
    assert_has(&e, &["leaves the folder"]);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outside.join("secret.jsonl"), data.join("link.jsonl")).unwrap();
        let t = task_with_files(&tasks, "link.jsonl");
        let e = format!("{:#}", t.docs(&data).unwrap_err());
        assert_has(&e, &["link.jsonl", "outside the folder"]);
        assert!(t.docs_in(&data, true).is_ok());
        // A task file symlinked from elsewhere.
        std::fs::write(outside.join("x.yaml"), TASK.replace("task: t", "task: x")).unwrap();
        std::os::unix::fs::symlink(outside.join("x.yaml"), tasks.join("x.yaml")).unwrap();
        let e = format!("{:#}", task::load_tasks(&tasks).unwrap_err());
        assert_has(&e, &["x.yaml", "outside the folder"]);
        assert_eq!(task::load::load_tasks_in(&tasks, true).unwrap().len(), 2);
    }
}

/// Found by fuzzing (gguf_model): NaN scores in a SentencePiece vocabulary made the merge sort's
/// comparison inconsistent, which the standard sort reports with a panic.
#[test]
fn gguf_spm_vocabulary_with_nan_scores() {
    let pieces = |i: usize| ["a", "b", "c", "d"][i % 4].repeat(1 + i / 16) + ["", "a", "b", "c"][(i / 4) % 4];
    let tokens: Vec<String> = (0..64).map(pieces).collect();
    let mut g = G::header(0, 3);
    g.kv_str("tokenizer.ggml.model", "llama");
    g.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(tokens.len() as u64);
    for t in &tokens {
        g.str(t);
    }
    g.str("tokenizer.ggml.scores").u32(9).u32(6).u64(tokens.len() as u64);
    for i in 0..tokens.len() {
        g.u32(if i % 3 == 0 { f32::NAN.to_bits() } else { (-(i as f32)).to_bits() });
    }
    let gguf = Gguf::from_bytes(Path::new("nan.gguf"), g.data(0)).unwrap();
    let _ = pingce::model::gguf_tokenizer::from_gguf(&gguf);
}

/// NaN or infinite float hyper-parameters are refused by name, not replaced by defaults.
#[test]
fn gguf_non_finite_floats_are_refused() {
    for (key, v) in [("llama.attention.layer_norm_rms_epsilon", f32::NAN), ("llama.rope.freq_base", f32::INFINITY)] {
        let kv = [("llama.attention.head_count", 2u64), ("llama.embedding_length", 16), ("llama.feed_forward_length", 32), ("llama.block_count", 2), ("llama.context_length", 64), ("llama.vocab_size", 10)];
        let mut g = G::header(0, kv.len() as u64 + 2);
        g.kv_str("general.architecture", "llama");
        for (k, x) in kv {
            g.str(k).u32(10).u64(x);
        }
        g.str(key).u32(6);
        g.0.extend(v.to_le_bytes());
        let e = format!("{:#}", Gguf::from_bytes(Path::new("nan.gguf"), g.data(0)).unwrap().config().unwrap_err());
        assert_has(&e, &["nan.gguf", key, "finite"]);
    }
}

/// YAML aliases expanding exponentially ("billion laughs") are refused by the parser's limit.
#[test]
fn yaml_alias_bombs_are_refused() {
    let mut y = String::from(TASK);
    y.push_str("metadata:\n  a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..10 {
        y.push_str(&format!("  a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 9].join(",")));
    }
    let e = format!("{:#}", parse_task_file(Path::new("laughs.yaml"), &y).unwrap_err());
    assert_has(&e, &["laughs.yaml", "repetition limit"]);
}

/// PIQA's labels file beside the data file may not be a symlink leading out either.
#[cfg(unix)]
#[test]
fn piqa_labels_stay_inside_the_data_folder() {
    let root = tmpdir("piqa");
    let (data, tasks, outside) = (root.join("data"), root.join("tasks"), root.join("outside"));
    for d in [&data, &tasks, &outside] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(data.join("valid.jsonl"), "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n").unwrap();
    std::fs::write(outside.join("labels.lst"), "0\n").unwrap();
    std::os::unix::fs::symlink(outside.join("labels.lst"), data.join("valid-labels.lst")).unwrap();
    let yaml = "task: p\ndataset:\n  format: piqa_jsonl\n  files:\n    validation: valid.jsonl\nvalidation_split: validation\noutput_type: multiple_choice\ndoc_to_text: \"{{goal}}\"\ndoc_to_target: label\ndoc_to_choice: \"{{[sol1, sol2]}}\"\n";
    std::fs::write(tasks.join("p.yaml"), yaml).unwrap();
    let t = task::load_tasks(&tasks).unwrap().remove(0);
    let e = format!("{:#}", t.docs(&data).unwrap_err());
    assert_has(&e, &["valid-labels.lst", "outside the folder"]);
    assert!(t.docs_in(&data, true).is_ok());
}
