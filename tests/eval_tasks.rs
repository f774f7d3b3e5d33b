//! Task YAMLs, dataset readers and prompt rendering.
//!
//! The prompt fixtures (tests/fixtures/lm_eval_prompts) are what lm-evaluation-harness 0.4.13
//! itself sends to a model for the sample documents in evals/samples (made by
//! tools/render_lm_eval.py); pingce's items must give the same requests byte for byte.
//! Tests that need the real benchmark files read `$PINGCE_DATA` (e.g. /work/shared/datasets)
//! and say they were skipped when it is unset.

use pingce::eval::task::{self, Item, ItemKind, Task};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tasks() -> Vec<Task> {
    task::load_tasks(&root().join("evals")).expect("evals/*.yaml load")
}

fn find<'a>(tasks: &'a [Task], name: &str) -> &'a Task {
    tasks.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no task {name}"))
}

/// The requests an item stands for, in lm-eval's Instance layout.
fn requests(item: &Item) -> Vec<Value> {
    let ll = |i: usize, c: &str, x: &str| json!({"doc_id": item.doc_id, "idx": i, "request_type": "loglikelihood", "arguments": [c, x]});
    match &item.kind {
        ItemKind::Choices { continuations, .. } => {
            continuations.iter().enumerate().map(|(i, x)| ll(i, &item.context, x)).collect()
        }
        ItemKind::ChoiceContexts { contexts, continuation, .. } => {
            contexts.iter().enumerate().map(|(i, c)| ll(i, c, continuation)).collect()
        }
        ItemKind::Continuation { continuation } => vec![ll(0, &item.context, continuation)],
        ItemKind::Rolling { text, .. } => {
            vec![json!({"doc_id": item.doc_id, "idx": 0, "request_type": "loglikelihood_rolling", "arguments": [text]})]
        }
        ItemKind::Generate { until, .. } => vec![json!({
            "doc_id": item.doc_id, "idx": 0, "request_type": "generate_until",
            "arguments": [item.context, {"until": until}],
        })],
    }
}

/// The lm-eval prompt fixtures (tools/render_lm_eval.py) were rendered with the sample files as
/// smoke splits (its CASES): evaluate those splits here, with the split names it used pointed at
/// the sample files, which are laid out as each task's standard split.
fn as_rendered(t: &Task) -> Task {
    let mut t = t.clone();
    let family = t.groups.first().cloned().unwrap_or_else(|| t.name.clone());
    let remap = |t: &mut Task, to: &str, from: &str| {
        let glob = t.config.dataset.files[from].clone();
        t.config.dataset.files.insert(to.to_string(), glob);
        t.set_eval_split(to).unwrap();
    };
    match (family.as_str(), t.name.as_str()) {
        ("mmlu", _) => remap(&mut t, "validation", "test"),
        (_, "arc_easy" | "arc_challenge") => remap(&mut t, "validation", "test"),
        ("ceval-valid", _) | ("cmmlu", _) => t.set_eval_split("dev").unwrap(),
        (_, "winogrande") => {
            remap(&mut t, "train_s", "validation");
            t.config.fewshot_split = Some("train_s".into());
        }
        (_, "gsm8k") => t.set_eval_split("train").unwrap(),
        (_, "wikitext") => {
            remap(&mut t, "validation", "test");
            t.config.training_split = None;
        }
        _ => {}
    }
    t
}

#[test]
fn prompts_match_lm_eval() {
    let tasks = tasks();
    let dir = root().join("tests/fixtures/lm_eval_prompts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 20, "expected the lm-eval prompt fixtures in {}", dir.display());
    let mut checked = 0;
    for f in files {
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let t = as_rendered(find(&tasks, fx["task"].as_str().unwrap()));
        let (docs, pool) = t.docs(&root().join("evals/samples")).unwrap();
        let n = fx["num_fewshot"].as_u64().unwrap() as usize;
        let seed = fx["seed"].as_u64().unwrap();
        let items = t.items(&docs, &pool, Some(n), seed).unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
        let got: Vec<Value> = items.iter().flat_map(requests).collect();
        let want = fx["requests"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{}: number of requests", f.display());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g, w, "{}: request differs from lm-eval's", f.display());
        }
        checked += got.len();
    }
    println!("{checked} requests identical to lm-eval's");
}

#[test]
fn every_task_renders_the_samples() {
    let tasks = tasks();
    let samples = root().join("evals/samples");
    // mmlu, ceval-valid, cmmlu, 10 single tasks, the two OpenCompass ppl variants, the three
    // OpenCompass gen variants, the three gsm8k chain-of-thought tasks, SafetyBench (zh, en, zh
    // subset; zero- and five-shot; 7 categories each) and CValues-Responsibility-MC.
    assert_eq!(tasks.len(), 57 + 52 + 67 + 10 + 52 + 67 + 52 + 67 + 57 + 3 + 6 * 7 + 1);
    // gsm8k_cot: the 8 examples written in the YAML, in order (first_n), before each question.
    let cot = find(&tasks, "gsm8k_cot");
    let (docs, pool) = cot.docs(&samples).unwrap();
    assert_eq!(pool.len(), 8);
    let items = cot.items(&docs, &pool, None, 1234).unwrap();
    assert_eq!(items[0].context.matches("Q: ").count(), 9, "{}", items[0].context);
    assert!(items[0].context.starts_with("Q: There are 15 trees in the grove."), "{}", items[0].context);
    for t in &tasks {
        let (docs, pool) = t.docs(&samples).unwrap_or_else(|e| panic!("{}: {e:#}", t.name));
        assert!(!docs.is_empty(), "{}", t.name);
        let items = t.items(&docs, &pool, None, task::DEFAULT_FEWSHOT_SEED).unwrap_or_else(|e| panic!("{}: {e:#}", t.name));
        assert_eq!(items.len(), docs.len());
    }
    // gsm8k is 5-shot by default, drawn from train; as a smoke run on train it draws from the
    // evaluated split minus the doc itself.
    let g = find(&tasks, "gsm8k");
    let (docs, pool) = g.docs(&samples).unwrap();
    let items = g.items(&docs, &pool, None, 1234).unwrap();
    assert_eq!(items[0].context.matches("Question:").count(), 6);
    assert_eq!(items[0].context.matches(docs[0]["question"].as_str().unwrap()).count(), 1);
    let mut smoke = g.clone();
    smoke.set_eval_split("train").unwrap();
    let (docs, pool) = smoke.docs(&samples).unwrap();
    let items = smoke.items(&docs, &pool, None, 1234).unwrap();
    assert_eq!(items[0].context.matches(docs[0]["question"].as_str().unwrap()).count(), 1);
    // Too many shots for the pool is an error naming the task and split.
    let e = smoke.items(&docs, &pool, Some(8), 1234).unwrap_err().to_string();
    assert!(e.contains("gsm8k") && e.contains("train"), "{e}");
    // hellaswag has no train split in the shared data layout: few-shot asks fail clearly.
    let h = find(&tasks, "hellaswag");
    let (docs, _) = h.docs(&samples).unwrap();
    let e = h.items(&docs, &[], Some(1), 1234).unwrap_err().to_string();
    assert!(e.contains("few-shot split `train` has no documents"), "{e}");
}

#[test]
fn item_fields_for_the_runner() {
    let tasks = tasks();
    let samples = root().join("evals/samples");
    let render = |name: &str| {
        let t = find(&tasks, name);
        let (d, p) = t.docs(&samples).unwrap();
        t.items(&d, &p, Some(0), 1234).unwrap()
    };
    let mc2 = render("truthfulqa_mc2");
    match &mc2[1].kind {
        ItemKind::Choices { choices, gold, labels, continuations } => {
            assert_eq!(labels, &vec![0, 1, 1]);
            assert_eq!(gold, &vec![1, 2]);
            assert_eq!(continuations[0], format!(" {}", choices[0]));
        }
        k => panic!("{k:?}"),
    }
    let wino = render("winogrande");
    match &wino[0].kind {
        ItemKind::ChoiceContexts { contexts, continuation, choices, gold } => {
            assert_eq!(contexts, choices);
            assert_eq!(continuation, " was going out into the rain.");
            assert_eq!(gold, &vec![1]);
        }
        k => panic!("{k:?}"),
    }
    let wiki = render("wikitext");
    match &wiki[0].kind {
        ItemKind::Rolling { text, words, bytes } => {
            let page = wiki[0].doc["page"].as_str().unwrap();
            assert_eq!(*bytes, page.len());
            assert!(text.len() < page.len());
            assert_eq!(*words, pingce::pycompat::text::count_words(page));
        }
        k => panic!("{k:?}"),
    }
    let gsm = render("gsm8k");
    match &gsm[0].kind {
        ItemKind::Generate { until, max_gen_toks, target } => {
            assert_eq!(until, &vec!["Question:".to_string(), "</s>".into(), "<|im_end|>".into()]);
            assert_eq!(*max_gen_toks, 256);
            assert!(target.ends_with("#### 28"), "{target}");
        }
        k => panic!("{k:?}"),
    }
    let g = find(&tasks, "gsm8k");
    assert_eq!(g.config.filter_list.len(), 2);
    assert_eq!(g.config.filter_list[1].name, "flexible-extract");
}

#[test]
fn select_names_groups_globs_and_suggestions() {
    let tasks = tasks();
    let names = |spec: &str| -> Vec<String> {
        task::select(&tasks, spec).unwrap().iter().map(|t| t.name.clone()).collect()
    };
    assert_eq!(names("mmlu").len(), 57);
    assert_eq!(names("mmlu_stem").len(), 19);
    assert_eq!(names("ceval-valid").len(), 52);
    assert_eq!(names("cmmlu").len(), 67);
    assert_eq!(names("arc_*"), vec!["arc_challenge", "arc_easy"]);
    assert_eq!(names("hellaswag, arc_easy,hellaswag"), vec!["hellaswag", "arc_easy"]);
    assert_eq!(names("truthfulqa").len(), 2);
    let e = task::select(&tasks, "arc_esay").unwrap_err().to_string();
    assert_eq!(e, "unknown task name `arc_esay` (did you mean `arc_easy`?)");
    let e = task::select(&tasks, "hellaswg,piqa").unwrap_err().to_string();
    assert!(e.contains("did you mean `hellaswag`"), "{e}");
    let e = task::select(&tasks, "mmlu_astronmy").unwrap_err().to_string();
    assert!(e.contains("did you mean `mmlu_astronomy`"), "{e}");
    assert!(task::select(&tasks, "nothing_*").is_err());
}

/// The OpenCompass variants: HUMAN prompt and BOT answer joined by "\n", dev items 0-4 in order.
#[test]
fn opencompass_layout() {
    let tasks = tasks();
    let t = find(&tasks, "cmmlu-oc_anatomy");
    let (docs, pool) = t.docs(&root().join("evals/samples")).unwrap();
    let items = t.items(&docs, &pool, None, 1234).unwrap();
    let h = |d: &pingce::eval::Doc| {
        format!(
            "以下是关于解剖学的单项选择题，请直接给出正确答案的选项。\n题目：{}\nA. {}\nB. {}\nC. {}\nD. {}\n答案是: ",
            d["Question"].as_str().unwrap(), d["A"].as_str().unwrap(), d["B"].as_str().unwrap(),
            d["C"].as_str().unwrap(), d["D"].as_str().unwrap()
        )
    };
    let mut want = String::new();
    for d in &pool[0..5] {
        want += &format!("{}\n{}\n", h(d), d["Answer"].as_str().unwrap());
    }
    want += &h(&docs[0]);
    assert_eq!(items[0].context, want);
    match &items[0].kind {
        ItemKind::Choices { continuations, gold, .. } => {
            assert_eq!(continuations, &vec!["\nA".to_string(), "\nB".into(), "\nC".into(), "\nD".into()]);
            assert_eq!(gold, &vec![1]);
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(task::select(&tasks, "ceval-valid-oc").unwrap().len(), 52);
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pingce-eval-tasks-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// Read `text` as `rel` through the task `task_name` (its YAML's files pointed at the temp dir).
fn read_err(task_name: &str, rel: &str, text: &str, extra: &[(&str, &str)]) -> String {
    let tasks = tasks();
    let mut t = find(&tasks, task_name).clone();
    let dir = tmpdir(&task_name.replace('/', "_"));
    if !text.is_empty() {
        write(&dir, rel, text);
    }
    for (r, x) in extra {
        write(&dir, r, x);
    }
    let split = t.eval_split().unwrap().to_string();
    t.config.dataset.files.insert(split, rel.to_string());
    let e = t.docs(&dir).map(|_| ()).unwrap_err();
    format!("{e:#}")
}

#[test]
fn reader_errors_name_file_and_line() {
    let e = read_err("mmlu_anatomy", "m/anatomy_val.csv", "q,a,b,c,d,A\nq2,a,b,c,D\n", &[]);
    assert!(e.contains("anatomy_val.csv: line 2: CSV row has 5 columns, expected 6"), "{e}");
    let e = read_err("mmlu_anatomy", "m/anatomy_val.csv", "q,a,b,c,d,A\n\"multi\nline\",a,b,c,d,E\n", &[]);
    assert!(e.contains("anatomy_val.csv: line 2: answer \"E\" is not one of the choices A, B, C, D"), "{e}");
    let e = read_err("ceval-valid_law", "c/law_dev.csv", "id,question,A,B,C\n", &[]);
    assert!(e.contains("law_dev.csv: line 1: expected the header `id,question,A,B,C,D,answer,explanation`"), "{e}");
    let e = read_err("cmmlu_anatomy", "c/anatomy.csv", ",Question,A,B,C,D,Answer\n0,q,a,b,c,d,X\n", &[]);
    assert!(e.contains("anatomy.csv: line 2: answer \"X\""), "{e}");
    let arc = r#"{"id":"x","question":{"stem":"s","choices":[{"text":"a","label":"A"},{"text":"b","label":"B"}]},"answerKey":"A"}"#;
    let bad_key = arc.replace("\"answerKey\":\"A\"", "\"answerKey\":\"3\"");
    let e = read_err("arc_easy", "a/dev.jsonl", &format!("{arc}\n{bad_key}\n"), &[]);
    assert!(e.contains("dev.jsonl: line 2: answerKey \"3\" is not one of the choice labels"), "{e}");
    let e = read_err("arc_easy", "a/dev.jsonl", &format!("{arc}\n\n{{\"id\": oops}}\n"), &[]);
    assert!(e.contains("dev.jsonl: line 3: malformed JSON"), "{e}");
    let e = read_err("piqa", "p/valid.jsonl", "{\"goal\":\"g\",\"sol1\":\"a\",\"sol2\":\"b\"}\n", &[("p/valid-labels.lst", "0\n1\n")]);
    assert!(e.contains("1 rows but 2 labels"), "{e}");
    let e = read_err("piqa", "p/valid.jsonl", "{\"goal\":\"g\",\"sol1\":\"a\",\"sol2\":\"b\"}\n", &[("p/valid-labels.lst", "2\n")]);
    assert!(e.contains("valid-labels.lst line 1: label \"2\" is not 0 or 1"), "{e}");
    let e = read_err("hellaswag", "h/hellaswag_val.jsonl", "{\"ind\":0,\"activity_label\":\"a\",\"ctx\":\"c\",\"endings\":[\"x\",\"y\"],\"label\":2}\n", &[]);
    assert!(e.contains("line 1: label 2 is outside the 2 endings"), "{e}");
    let e = read_err("winogrande", "w/train_s.jsonl", "{\"sentence\":\"no blank\",\"option1\":\"a\",\"option2\":\"b\",\"answer\":\"1\"}\n", &[]);
    assert!(e.contains("line 1: sentence has no `_` blank"), "{e}");
    let e = read_err("boolq", "b/boolq_dev.jsonl", "{\"query\":\"Passage: p\\nQuestion: q?\",\"choices\":[\"no\",\"yes\"],\"gold\":2}\n", &[]);
    assert!(e.contains("line 1: gold is not 0 or 1"), "{e}");
    let e = read_err("truthfulqa_mc1", "t/mc.json", "[{\"question\":\"q\",\"mc1_targets\":{\"a\":0,\"b\":1},\"mc2_targets\":{\"a\":1}}]", &[]);
    assert!(e.contains("item 1: mc1_targets must list the true answer first"), "{e}");
    let e = read_err("truthfulqa_mc1", "t/mc.json", "[{\"question\":\"q\",\n\"mc1_targets\": 3}]", &[]);
    assert!(e.contains("mc.json: line 2: malformed TruthfulQA JSON"), "{e}");
    let e = read_err("gsm8k", "g/train.jsonl", "{\"question\":\"q\",\"answer\":\"no marker\"}\n", &[]);
    assert!(e.contains("line 1: answer does not end with"), "{e}");
    let e = read_err("arc_easy", "a/missing.jsonl", "", &[]);
    assert!(e.contains("evaluates split `test`: expected") && e.contains("a/missing.jsonl") && e.contains("--split"), "{e}");
}

#[test]
fn template_errors_name_task_file_and_field() {
    let dir = tmpdir("templates");
    let yaml = write(
        &dir,
        "evals/broken.yaml",
        "task: broken\ndataset: {format: gsm8k_jsonl, files: {test: g.jsonl}}\ntest_split: test\noutput_type: generate_until\ndoc_to_text: \"Q: {{questoin}}\"\ndoc_to_target: answer\n",
    );
    write(&dir, "data/g.jsonl", "{\"question\":\"q\",\"answer\":\"#### 1\"}\n");
    let tasks = task::load_tasks(&dir.join("evals")).unwrap();
    let (docs, pool) = tasks[0].docs(&dir.join("data")).unwrap();
    let e = tasks[0].items(&docs, &pool, None, 1234).unwrap_err().to_string();
    assert!(e.contains(&yaml.display().to_string()), "{e}");
    assert!(e.contains("doc_to_text") && e.contains("unknown field `questoin`"), "{e}");
    // Nested unknown attributes fail too (strict undefined).
    write(&dir, "evals/broken.yaml", "task: broken\ndataset: {format: jsonl, files: {test: g.jsonl}}\ntest_split: test\noutput_type: generate_until\ndoc_to_text: \"{{question.stem}}\"\ndoc_to_target: answer\n");
    let tasks = task::load_tasks(&dir.join("evals")).unwrap();
    let (docs, pool) = tasks[0].docs(&dir.join("data")).unwrap();
    assert!(tasks[0].items(&docs, &pool, None, 1234).is_err());
    // Schema errors name the file.
    write(&dir, "evals/broken.yaml", "task: broken\noutput_type: nonsense\n");
    let e = format!("{:#}", task::load_tasks(&dir.join("evals")).unwrap_err());
    assert!(e.contains("broken.yaml") && e.contains("invalid task definition"), "{e}");
}

/// The real benchmark files (`$PINGCE_DATA`, laid out as /work/shared/datasets): every task
/// reads and renders them with its default split and few-shot count.
#[test]
fn real_data_renders() {
    let Ok(data) = std::env::var("PINGCE_DATA") else {
        println!("skipped: PINGCE_DATA is not set (point it at the benchmark data directory)");
        return;
    };
    let data = PathBuf::from(data);
    let mut tasks = tasks();
    // The shared copy holds no safety sets (their readers are tested on the samples in
    // tests/eval_safety_sets.rs).
    tasks.retain(|t| !t.name.starts_with("safetybench_") && t.name != "cvalues_responsibility_mc");
    // The shared files lack most standard splits: a missing one is named, with its path.
    let arc = find(&tasks, "arc_easy");
    let e = format!("{:#}", arc.docs(&data).unwrap_err());
    assert!(e.contains("arc_easy") && e.contains("`test`") && e.contains("ARC-Easy-Test.jsonl"), "{e}");
    // Smoke splits, as `--split` chooses them.
    let smoke: Vec<String> = ["mmlu=validation", "ceval-valid=dev", "cmmlu=dev", "arc_easy=validation", "arc_challenge=validation", "winogrande=train_s", "gsm8k=train", "wikitext=validation", "ceval-valid-oc=dev", "cmmlu-oc=dev", "ceval-gen-oc=dev", "cmmlu-gen-oc=dev", "mmlu-gen-oc=validation", "gsm8k_cot=train", "gsm8k_cot_zeroshot=train", "gsm8k_cot_llama=train"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    pingce::eval::plan::apply_splits(&mut tasks, &smoke).unwrap();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for t in &tasks {
        let (docs, pool) = t.docs(&data).unwrap_or_else(|e| panic!("{}: {e:#}", t.name));
        // The OpenCompass variants take 5 dev examples; evaluating dev itself leaves 4 others.
        let n = t.name.contains("-oc_").then_some(4);
        let items = t.items(&docs, &pool, n, 1234).unwrap_or_else(|e| panic!("{}: {e:#}", t.name));
        let key = t.groups.first().cloned().unwrap_or_else(|| t.name.clone());
        *counts.entry(key).or_default() += items.len();
    }
    println!("{counts:?}");
    assert_eq!(counts["mmlu"], 1531);
    assert_eq!(counts["ceval-valid"], 260);
    assert_eq!(counts["cmmlu"], 335);
    assert_eq!(counts["hellaswag"], 9542);
    assert_eq!(counts["piqa"], 1338);
    assert_eq!(counts["super-glue-lm-eval-v1"], 2770);
    assert_eq!(counts["truthfulqa"], 2 * 317);
    assert_eq!(counts["winogrande"], 640);
    // gsm8k and gsm8k_cot_zeroshot; gsm8k_cot and gsm8k_cot_llama are tagged chain_of_thought.
    assert_eq!(counts["math_word_problems"], 2 * 7473);
    assert_eq!(counts["chain_of_thought"], 2 * 7473);
    // 5-shot MMLU and 3-shot C-Eval (dev minus the evaluated item) render too.
    for name in ["mmlu_anatomy", "ceval-valid_law"] {
        let t = find(&tasks, name);
        let (docs, pool) = t.docs(&data).unwrap();
        let n = if name.starts_with("mmlu") { 5 } else { 4 };
        t.items(&docs, &pool, Some(n), 1234).unwrap();
    }
}

/// `--apply-chat-template` end to end through the task loader: the contexts and continuations
/// lm-eval 0.4.13 builds with the Qwen2.5 template (tests/fixtures/lm_eval_chat, with and without
/// `--fewshot_as_multiturn` and `--system_instruction`).
#[test]
fn chat_template_prompts_match_lm_eval() {
    use pingce::eval::chat::ChatOptions;
    use pingce::model::chat_template::ChatTemplate;
    let tasks = tasks();
    let template = std::sync::Arc::new(ChatTemplate::for_model(&root().join("tests/fixtures/chat_templates/qwen2.5-instruct"), None, None).unwrap());
    let dir = root().join("tests/fixtures/lm_eval_chat");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    files.sort();
    assert_eq!(files.len(), 12);
    for f in files {
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let t = as_rendered(find(&tasks, fx["task"].as_str().unwrap()));
        let (docs, pool) = t.docs(&root().join("evals/samples")).unwrap();
        let chat = ChatOptions {
            template: template.clone(),
            system_instruction: fx["system_instruction"].as_str().map(String::from),
            multiturn: fx["fewshot_as_multiturn"].as_bool().unwrap(),
            kwargs: Default::default(),
        };
        let n = fx["num_fewshot"].as_u64().unwrap() as usize;
        let items = t.items_with(&docs, &pool, Some(n), fx["seed"].as_u64().unwrap(), Some(&chat)).unwrap();
        for d in fx["docs"].as_array().unwrap() {
            let it = &items[d["doc_id"].as_u64().unwrap() as usize];
            assert_eq!(it.context, d["context"].as_str().unwrap(), "{}: doc {}", f.display(), d["doc_id"]);
            if let ItemKind::Choices { continuations, .. } = &it.kind {
                let want: Vec<String> = d["continuations"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
                assert_eq!(continuations, &want, "{}", f.display());
            }
        }
    }
}
