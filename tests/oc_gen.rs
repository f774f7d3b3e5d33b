//! OpenCompass's generation protocol for chat models (evals/*-gen-oc.yaml): the chat messages
//! pingce builds equal those OpenCompass 0.5.4's own template code builds for the same documents
//! (tests/fixtures/opencompass/chat_messages.json, tools/render_oc_chat.py), and the tasks refuse
//! to run without a chat template.

use std::path::PathBuf;
use std::sync::Arc;

use pingce::eval::chat::ChatOptions;
use pingce::eval::item::ItemKind;
use pingce::eval::plan::{self, PlanOptions};
use pingce::eval::task::{self, Task};
use pingce::eval::Doc;
use pingce::model::chat_template::ChatTemplate;
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A template that prints the messages it is given, so they can be compared as text.
fn dump_template() -> ChatTemplate {
    ChatTemplate::new("dump", "{% for m in messages %}[{{ m.role }}]{{ m.content }}[/]{% endfor %}{% if add_generation_prompt %}[gen]{% endif %}", vec![]).unwrap()
}

fn dump(messages: &[Value]) -> String {
    let mut s: String = messages.iter().map(|m| format!("[{}]{}[/]", m["role"].as_str().unwrap(), m["content"].as_str().unwrap())).collect();
    s.push_str("[gen]");
    s
}

/// OpenCompass's row as the pingce reader of the published file gives it.
fn as_read(config: &str, d: &Value) -> Doc {
    let v = match config {
        "ceval_gen_5f30c7" => json!({"id": 0, "question": d["question"], "A": d["A"], "B": d["B"], "C": d["C"], "D": d["D"], "answer": d["answer"]}),
        "cmmlu_gen_c13365" => json!({"Question": d["question"], "A": d["A"], "B": d["B"], "C": d["C"], "D": d["D"], "Answer": d["answer"]}),
        _ => {
            let letter = d["target"].as_str().unwrap();
            json!({"question": d["input"], "choices": [d["A"], d["B"], d["C"], d["D"]], "answer": "ABCD".find(letter).unwrap(), "subject": ""})
        }
    };
    v.as_object().unwrap().clone()
}

#[test]
fn messages_match_opencompass() {
    let tasks = task::load_tasks(&root().join("evals")).unwrap();
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(root().join("tests/fixtures/opencompass/chat_messages.json")).unwrap()).unwrap();
    let chat = ChatOptions { template: Arc::new(dump_template()), system_instruction: None, multiturn: false, kwargs: Default::default() };
    for (config, prefix) in [("ceval_gen_5f30c7", "ceval-gen-oc_"), ("cmmlu_gen_c13365", "cmmlu-gen-oc_"), ("mmlu_gen_4d595a", "mmlu-gen-oc_")] {
        let case = &fx["cases"][config];
        let name = format!("{prefix}{}", case["subject"].as_str().unwrap());
        let t: &Task = tasks.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no task {name}"));
        let pool: Vec<Doc> = case["fewshot_docs"].as_array().unwrap().iter().map(|d| as_read(config, d)).collect();
        let doc = as_read(config, &case["doc"]);
        // The task asks for multi-turn few-shot itself, as plan::prepare applies it.
        let chat = ChatOptions { multiturn: t.config.chat.as_ref().unwrap().fewshot_as_multiturn, ..chat.clone() };
        let items = t.items_with(&[doc], &pool, None, 1234, Some(&chat)).unwrap();
        assert_eq!(items[0].context, dump(case["messages"].as_array().unwrap()), "{config}");
        match &items[0].kind {
            ItemKind::Generate { target, .. } => assert_eq!(target, ["C", "C", "C"][0], "{config}"),
            k => panic!("{k:?}"),
        }
    }
}

#[test]
fn gen_tasks_need_a_chat_template() {
    let tasks = plan::select_tasks(&root().join("evals"), &["ceval-gen-oc_law".to_string()], false).unwrap();
    let o = PlanOptions { data_dir: root().join("evals/samples"), limit: Some(1), num_fewshot: None, seed: None, ..Default::default() };
    let e = format!("{:#}", plan::prepare(&tasks, &o).err().unwrap());
    assert!(e.contains("--apply-chat-template"), "{e}");
}
