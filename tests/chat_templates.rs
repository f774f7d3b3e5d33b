//! Chat templates: real templates render byte-identically to transformers' apply_chat_template
//! (fixtures from tools/gen_chat_templates.py), and templates load from every place models keep them.

use std::path::{Path, PathBuf};

use pingce::model::chat_template::{ChatTemplate, Date, Message, RenderOptions};
use pingce::model::gguf::Gguf;
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_templates")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pingce-chat-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn messages(v: &Value) -> Vec<Message> {
    serde_json::from_value(v.clone()).unwrap()
}

fn user(text: &str) -> Vec<Message> {
    vec![Message::new("user", text)]
}

fn gen() -> RenderOptions {
    RenderOptions { add_generation_prompt: true, ..Default::default() }
}

#[test]
fn real_templates_render_like_transformers() {
    let mut n = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("expected.json").is_file() {
            continue;
        }
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
        let t = ChatTemplate::from_model_dir(&dir, None).unwrap().with_date(Date::parse(fx["date"].as_str().unwrap()).unwrap());
        for case in fx["cases"].as_array().unwrap() {
            let conv = case["conversation"].as_str().unwrap();
            let opts = RenderOptions {
                add_generation_prompt: case["add_generation_prompt"].as_bool().unwrap(),
                continue_final_message: case["continue_final_message"].as_bool().unwrap(),
                kwargs: case["kwargs"].as_object().unwrap().clone(),
            };
            let got = t.render(&messages(&fx["conversations"][conv]), &opts).unwrap_or_else(|e| panic!("{}: {conv}: {e:#}", dir.display()));
            assert_eq!(got, case["expected"].as_str().unwrap(), "{} {conv} {case}", dir.display());
            n += 1;
        }
    }
    assert!(n >= 70, "only {n} renderings checked");
}

#[test]
fn llama3_today_date_comes_from_the_given_date() {
    let t = ChatTemplate::from_model_dir(&fixtures().join("llama-3.2-instruct"), None).unwrap();
    let a = t.with_date(Date::parse("1999-12-31").unwrap()).render(&user("hi"), &gen()).unwrap();
    assert!(a.contains("Today Date: 31 Dec 1999\n"), "{a}");
}

const QWEN_LIKE: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

#[test]
fn loads_tokenizer_config_string_and_list_forms() {
    let d = tmp("string");
    std::fs::write(d.join("tokenizer_config.json"), json!({"chat_template": QWEN_LIKE, "eos_token": {"content": "<|im_end|>", "special": true}, "bos_token": null}).to_string()).unwrap();
    let t = ChatTemplate::from_model_dir(&d, None).unwrap();
    assert_eq!(t.render(&user("1+1?"), &gen()).unwrap(), "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n");
    assert_eq!(t.special_token("eos_token"), Some("<|im_end|>"));
    assert_eq!(t.special_token("bos_token"), None);
    assert_eq!(t.sha256().len(), 64);
    assert!(ChatTemplate::from_model_dir(&d, Some("tool_use")).is_err());

    let d = tmp("list");
    let cfg = json!({"bos_token": "<s>", "chat_template": [
        {"name": "default", "template": "{{ bos_token }}D:{{ messages[0].content }}"},
        {"name": "rag", "template": "R:{{ messages[0].content }}"}]});
    std::fs::write(d.join("tokenizer_config.json"), cfg.to_string()).unwrap();
    assert_eq!(ChatTemplate::from_model_dir(&d, None).unwrap().render(&user("x"), &gen()).unwrap(), "<s>D:x");
    assert_eq!(ChatTemplate::from_model_dir(&d, Some("rag")).unwrap().render(&user("x"), &gen()).unwrap(), "R:x");
    let e = ChatTemplate::from_model_dir(&d, Some("tool_use")).unwrap_err().to_string();
    assert!(e.contains("no chat template named \"tool_use\"") && e.contains("rag"), "{e}");
}

#[test]
fn chat_template_jinja_file_wins_over_tokenizer_config() {
    let d = tmp("jinja");
    std::fs::write(d.join("tokenizer_config.json"), json!({"chat_template": "old", "eos_token": "</s>"}).to_string()).unwrap();
    std::fs::write(d.join("chat_template.jinja"), "new:{{ messages[-1].content }}{{ eos_token }}\n").unwrap();
    let t = ChatTemplate::from_model_dir(&d, None).unwrap();
    assert_eq!(t.render(&user("q"), &gen()).unwrap(), "new:q</s>");
    assert!(t.source().ends_with("chat_template.jinja"));
    let e = ChatTemplate::from_model_dir(&tmp("none"), None).unwrap_err().to_string();
    assert!(e.contains("has no chat template"), "{e}");
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend((s.len() as u64).to_le_bytes());
    b.extend(s.as_bytes());
}

/// A GGUF v3 file with only string / string-array / u32 metadata and no tensors.
fn write_gguf(path: &Path, strs: &[(&str, &str)], tokens: &[&str], ids: &[(&str, u32)]) {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(((strs.len() + 1 + ids.len()) as u64).to_le_bytes());
    for (k, v) in strs {
        put_str(&mut b, k);
        b.extend(8u32.to_le_bytes());
        put_str(&mut b, v);
    }
    put_str(&mut b, "tokenizer.ggml.tokens");
    b.extend(9u32.to_le_bytes());
    b.extend(8u32.to_le_bytes());
    b.extend((tokens.len() as u64).to_le_bytes());
    for t in tokens {
        put_str(&mut b, t);
    }
    for (k, v) in ids {
        put_str(&mut b, k);
        b.extend(4u32.to_le_bytes());
        b.extend(v.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn loads_from_gguf_metadata() {
    let p = tmp("gguf").join("m.gguf");
    write_gguf(
        &p,
        &[("general.architecture", "llama"), ("tokenizer.chat_template", "{{ bos_token }}[{{ messages[0].content }}]"), ("tokenizer.chat_template.tool_use", "T{{ eos_token }}")],
        &["<unk>", "<|begin_of_text|>", "<|eot_id|>"],
        &[("tokenizer.ggml.bos_token_id", 1), ("tokenizer.ggml.eos_token_id", 2)],
    );
    let g = Gguf::open(&p).unwrap();
    let t = ChatTemplate::from_gguf(&g, None).unwrap();
    assert_eq!(t.render(&user("a"), &gen()).unwrap(), "<|begin_of_text|>[a]");
    assert!(t.source().ends_with("m.gguf:tokenizer.chat_template"));
    assert_eq!(ChatTemplate::from_gguf(&g, Some("tool_use")).unwrap().render(&user("a"), &gen()).unwrap(), "T<|eot_id|>");
    let e = ChatTemplate::from_gguf(&g, Some("rag")).unwrap_err().to_string();
    assert!(e.contains("tokenizer.chat_template.rag"), "{e}");
}

#[test]
fn raise_exception_and_syntax_errors_name_the_template_file() {
    let d = tmp("raise");
    let f = d.join("strict.jinja");
    std::fs::write(&f, "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok").unwrap();
    let t = ChatTemplate::from_file(&f, vec![]).unwrap();
    assert_eq!(t.render(&user("u"), &gen()).unwrap(), "ok");
    let e = t.render(&[Message::new("system", "s")], &gen()).unwrap_err().to_string();
    assert!(e.contains("strict.jinja") && e.contains("System role not supported"), "{e}");

    let bad = d.join("bad.jinja");
    std::fs::write(&bad, "{% for m in messages %}{{ m.content }}").unwrap();
    let e = ChatTemplate::from_file(&bad, vec![]).unwrap_err().to_string();
    assert!(e.contains("bad.jinja") && e.contains("does not compile"), "{e}");
}

#[test]
fn tojson_is_pythons_json_dumps() {
    let t = |src: &str| ChatTemplate::new("t.jinja", src, vec![]).unwrap().render(&user("é\"\n"), &gen()).unwrap();
    assert_eq!(t("{{ messages[0] | tojson }}"), r#"{"role": "user", "content": "é\"\n"}"#);
    assert_eq!(t("{{ messages[0] | tojson(ensure_ascii=True) }}"), r#"{"role": "user", "content": "\u00e9\"\n"}"#);
    assert_eq!(t("{{ messages[0] | tojson(indent=2, sort_keys=True) }}"), "{\n  \"content\": \"é\\\"\\n\",\n  \"role\": \"user\"\n}");
    assert_eq!(t("{{ [1, 2.5, none, true, []] | tojson(separators=(',', ':')) }}"), "[1,2.5,null,true,[]]");
    assert_eq!(t("{{ none }} {{ true }}"), "None True");
}

#[test]
fn continue_final_message_leaves_the_last_turn_open() {
    let t = ChatTemplate::new("q.jinja", QWEN_LIKE, vec![]).unwrap();
    let msgs = vec![Message::new("user", "2+3?"), Message::new("assistant", "The answer is")];
    let opts = RenderOptions { continue_final_message: true, ..Default::default() };
    assert_eq!(t.render(&msgs, &opts).unwrap(), "<|im_start|>user\n2+3?<|im_end|>\n<|im_start|>assistant\nThe answer is");
    let both = RenderOptions { continue_final_message: true, add_generation_prompt: true, ..Default::default() };
    assert!(t.render(&msgs, &both).is_err());
}

/// lm-eval 0.4.13's own --apply_chat_template contexts (tools/gen_lm_eval_chat.py), rebuilt from
/// their recorded pieces by pingce::eval::chat with the Qwen2.5 template.
#[test]
fn lm_eval_chat_contexts_are_rebuilt_byte_for_byte() {
    use pingce::eval::chat::{continuation_delimiter, ChatPrompt};
    let t = ChatTemplate::from_model_dir(&fixtures().join("qwen2.5-instruct"), None).unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lm_eval_chat");
    let s = |v: &Value| v.as_str().map(str::to_string);
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for doc in fx["docs"].as_array().unwrap() {
            let p = ChatPrompt {
                system_instruction: s(&fx["system_instruction"]),
                description: s(&doc["description"]).unwrap(),
                fewshot: serde_json::from_value(doc["fewshot"].clone()).unwrap(),
                fewshot_target_delimiter: s(&doc["fewshot_target_delimiter"]).unwrap(),
                fewshot_delimiter: s(&doc["fewshot_delimiter"]).unwrap(),
                fewshot_gen_prefix: None,
                question: s(&doc["question"]).unwrap(),
                target_delimiter: s(&fx["target_delimiter"]).unwrap(),
                gen_prefix: s(&doc["gen_prefix"]),
                multiturn: fx["fewshot_as_multiturn"].as_bool().unwrap(),
            };
            let got = p.render(&t, &Default::default()).unwrap();
            assert_eq!(got, doc["context"].as_str().unwrap(), "{} doc {}", path.display(), doc["doc_id"]);
            let delim = continuation_delimiter(&p.target_delimiter, s(&fx["task_gen_prefix"]).as_deref());
            for c in doc["continuations"].as_array().unwrap() {
                assert!(!c.as_str().unwrap().starts_with(' ') || !delim.is_empty(), "{}: continuation {c} keeps a delimiter", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 36, "only {n} lm-eval contexts checked");
}

/// A multiple-choice item under `--apply-chat-template` gets the context and continuation tokens
/// lm-eval's HF backend scores (tools/gen_chat_tokens.py: lm-eval 0.4.13's `_encode_pair` with
/// transformers' tokenizer), on a tokenizer carrying Qwen2.5's chat special tokens and template.
#[test]
fn chat_requests_tokenize_as_lm_eval() {
    use pingce::engine::requests::loglikelihood_tokens;
    use pingce::model::Tokenizer;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_tokens");
    let tok = Tokenizer::load(&dir, None, None).unwrap();
    let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 48);
    let ids = |v: &serde_json::Value| -> Vec<u32> { v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect() };
    for c in cases {
        let (ctx, cont) = (c["context"].as_str().unwrap(), c["continuation"].as_str().unwrap());
        let (got_c, got_t) = loglikelihood_tokens(&tok, ctx, cont, tok.prefix_token().unwrap()).unwrap();
        assert_eq!(got_c, ids(&c["context_tokens"]), "{} doc {}: context tokens", c["file"], c["doc_id"]);
        assert_eq!(got_t, ids(&c["continuation_tokens"]), "{} doc {}: continuation tokens", c["file"], c["doc_id"]);
    }
    // The template the fixture carries is the one the contexts were rendered with.
    let t = ChatTemplate::for_model(&dir, None, None).unwrap();
    assert_eq!(t.text(), std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_templates/qwen2.5-instruct/chat_template.jinja")).unwrap());
}

/// lm-eval 0.4.13 encodes with the tokenizer's own special tokens (a Llama-style post-processor
/// adds BOS), never doubling a BOS the text already starts with; an empty context's continuation
/// is encoded without them.
#[test]
fn requests_get_the_tokenizers_bos_unless_the_text_has_it() {
    use pingce::engine::requests::{encode_pair, loglikelihood_tokens};
    use pingce::model::tokenizer::Encode;
    use pingce::model::Tokenizer;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama");
    let dir = tmp("bos");
    let mut tok: Value = serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer.json")).unwrap()).unwrap();
    tok["post_processor"] = json!({
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), r#"{"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}"#).unwrap();
    let t = Tokenizer::load(&dir, None, None).unwrap();
    let plain = t.encode_plain("Hello world").unwrap();
    assert_ne!(plain[0], 0);
    assert_eq!(t.encode("Hello world").unwrap(), [vec![0], plain.clone()].concat(), "the post-processor's BOS");
    let with_bos = t.encode("<|endoftext|>Hello world").unwrap();
    assert_eq!(with_bos.iter().filter(|&&x| x == 0).count(), 1, "a BOS in the text is not doubled: {with_bos:?}");
    let (c, x) = encode_pair(&t, "Question: Hi\nAnswer:", " yes").unwrap();
    assert_eq!(c[0], 0);
    assert!(!x.contains(&0));
    let (c, x) = loglikelihood_tokens(&t, "", "Hello world", 0).unwrap();
    assert_eq!((c, x), (vec![0], plain));
}
