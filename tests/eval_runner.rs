//! The evaluation runner on a fixture model: scores, evidence files, batch invariance, resume
//! after a crash, and refusal to resume a different run.

use std::path::PathBuf;

use pingce::device::Gpu;
use pingce::engine::{Engine, EngineOptions};
use pingce::eval::metrics::{Filter, FilterStep, Metric};
use pingce::eval::item::{Item, ItemKind};
use pingce::eval::plan::{ExactMatch, TaskRun};
use pingce::eval::runner::{run, RunOptions};
use serde_json::{json, Value};

fn engine(batch_size: usize) -> Engine {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama");
    Engine::load(Gpu::default_device().unwrap(), &dir, EngineOptions { batch_size, max_batch_tokens: 4096, ..Default::default() }).unwrap()
}

fn out_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pingce-eval-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn tasks() -> Vec<TaskRun> {
    let questions = ["The cat sat on the", "Two plus two is", "The sky is", "Water is", "def add(a, b):\n    return", "今天天气", "Paris is in"];
    let mc_items: Vec<Item> = questions
        .iter()
        .enumerate()
        .map(|(i, q)| Item {
            doc_id: i,
            doc: Default::default(),
            context: format!("Question: {q}\nAnswer:"),
            kind: ItemKind::Choices {
                continuations: vec![" mat".into(), " four".into(), " blue sky".into(), " wet".into()],
                choices: vec!["mat".into(), "four".into(), "blue sky".into(), "wet".into()],
                gold: vec![i % 4],
                labels: if i % 2 == 0 { vec![1, 1, 0, 0] } else { vec![] },
            },
        })
        .collect();
    let gen_items: Vec<Item> = (0..3)
        .map(|i| Item {
            doc_id: i,
            doc: Default::default(),
            context: format!("Q: {i} + 1 = ?\nA:"),
            kind: ItemKind::Generate { until: vec!["\n".into()], max_gen_toks: 8, target: format!("#### {}", i + 1) },
        })
        .collect();
    let rolling: Vec<Item> = ["Every evening the old man walks to the harbour.", "A short text."]
        .iter()
        .enumerate()
        .map(|(i, t)| Item {
            doc_id: i,
            doc: Default::default(),
            context: String::new(),
            kind: ItemKind::Rolling { text: t.to_string(), words: t.split_whitespace().count(), bytes: t.len() },
        })
        .collect();
    vec![
        TaskRun {
            name: "mc".into(),
            metrics: vec![Metric::Acc, Metric::AccNorm],
            filters: vec![],
            exact_match: ExactMatch::default(),
            config: json!({"task": "mc", "target_delimiter": " "}),
            data_files: vec![],
            items: mc_items,
            groups: vec!["grp".into()],
        },
        TaskRun {
            name: "gen".into(),
            metrics: vec![Metric::ExactMatch],
            filters: vec![Filter { name: "flexible-extract".into(), filter: vec![FilterStep::Regex { regex_pattern: r"(-?[0-9]+)".into(), group_select: -1, fallback: "[invalid]".into() }] }],
            exact_match: ExactMatch { ignore_case: true, ignore_punctuation: false, regexes_to_ignore: vec!["(?s).*#### ".into()] },
            config: json!({"task": "gen"}),
            data_files: vec![],
            items: gen_items,
            groups: vec!["grp".into()],
        },
        TaskRun {
            name: "ppl".into(),
            metrics: vec![Metric::WordPerplexity, Metric::BytePerplexity, Metric::BitsPerByte],
            filters: vec![],
            exact_match: ExactMatch::default(),
            config: json!({"task": "ppl"}),
            data_files: vec![],
            items: rolling,
            groups: vec![],
        },
    ]
}

fn opts(out: &PathBuf, chunk: usize) -> RunOptions {
    RunOptions { out: out.clone(), chunk, settings: json!({"seed": 1234, "num_fewshot": null}), progress: false, shard: None }
}

fn results_only(v: &Value) -> Value {
    json!({"results": v["results"], "groups": v["groups"]})
}

#[test]
fn runner_writes_evidence_and_is_batch_invariant() {
    let a_dir = out_dir("b1");
    let a = run(&mut engine(1), &tasks(), &opts(&a_dir, 1)).unwrap();
    let b_dir = out_dir("b16");
    let b = run(&mut engine(16), &tasks(), &opts(&b_dir, 64)).unwrap();
    assert_eq!(results_only(&a), results_only(&b));
    for t in ["mc", "gen", "ppl"] {
        let sa = std::fs::read_to_string(a_dir.join(format!("samples_{t}.jsonl"))).unwrap();
        let sb = std::fs::read_to_string(b_dir.join(format!("samples_{t}.jsonl"))).unwrap();
        assert_eq!(sa, sb, "samples_{t}.jsonl differ between batch sizes");
    }
    let acc = a["results"]["mc"]["acc"]["value"].as_f64().unwrap();
    let n = a["results"]["mc"]["acc"]["n"].as_u64().unwrap();
    assert_eq!(n, 7);
    let recs: Vec<Value> = std::fs::read_to_string(a_dir.join("samples_mc.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(acc, recs.iter().map(|r| r["acc"].as_f64().unwrap()).sum::<f64>() / 7.0);
    // Auditable samples: the requests' arguments, and prompt_sha256 as lm-eval's prompt_hash (the
    // first request's context).
    let args = recs[0]["arguments"].as_array().unwrap();
    assert_eq!(args.len(), 4);
    assert_eq!(args[1], json!(["Question: The cat sat on the\nAnswer:", " four"]));
    assert_eq!(recs[0]["prompt_sha256"], pingce::digest::sha256_hex(b"Question: The cat sat on the\nAnswer:"));
    assert_eq!(recs[0]["loglikelihoods"].as_array().unwrap().len(), 4);
    assert_eq!(recs[0]["is_greedy"].as_array().unwrap().len(), 4);
    let gen: Vec<Value> = std::fs::read_to_string(a_dir.join("samples_gen.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(gen[0]["arguments"][0][1]["until"], json!(["\n"]));
    assert!(gen[0]["filtered"]["flexible-extract"]["answer"].is_string());
    // Answers no filter could read are counted and listed, never silently scored.
    let bad: Vec<u64> = gen.iter().filter(|r| r["filtered"]["flexible-extract"]["answer"] == "[invalid]").map(|r| r["doc_id"].as_u64().unwrap()).collect();
    assert_eq!(a["unparsable"]["gen"]["flexible-extract"]["count"], bad.len());
    assert_eq!(a["unparsable"]["gen"]["flexible-extract"]["doc_ids"], json!(bad));
    assert!(a["results"]["ppl"]["word_perplexity"]["value"].as_f64().unwrap() > 1.0);
    assert!(a["results"]["gen"]["exact_match,flexible-extract"]["n"].as_u64() == Some(3));
    assert!(a["groups"]["grp"]["acc"]["micro"].is_number());
    assert!(a["manifest"]["model_files"].as_object().unwrap().len() >= 3);
    assert!(std::fs::read_to_string(a_dir.join("summary.md")).unwrap().contains("| mc | acc |"));
}

#[test]
fn resume_after_a_crash_gives_the_same_results() {
    let full_dir = out_dir("full");
    let full = run(&mut engine(4), &tasks(), &opts(&full_dir, 2)).unwrap();
    // A crashed run: part of the samples written, the last line torn, no results.json.
    let dir = out_dir("crash");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(full_dir.join("run.json"), dir.join("run.json")).unwrap();
    let mc = std::fs::read_to_string(full_dir.join("samples_mc.jsonl")).unwrap();
    let lines: Vec<&str> = mc.lines().collect();
    let partial = format!("{}\n{}", lines[..3].join("\n"), &lines[3][..10]);
    std::fs::write(dir.join("samples_mc.jsonl"), partial).unwrap();
    let resumed = run(&mut engine(4), &tasks(), &opts(&dir, 2)).unwrap();
    assert_eq!(results_only(&resumed), results_only(&full));
    let again = std::fs::read_to_string(dir.join("samples_mc.jsonl")).unwrap();
    assert_eq!(again.lines().count(), 7, "torn line dropped, missing items scored once");
    // A different configuration refuses to resume into the same folder.
    let mut changed = tasks();
    changed[0].config["target_delimiter"] = json!("\n");
    let e = run(&mut engine(4), &changed, &opts(&dir, 2)).unwrap_err();
    assert!(format!("{e:#}").contains("refusing to resume"), "{e:#}");
}
