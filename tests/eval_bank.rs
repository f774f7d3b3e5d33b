//! Users' question banks (evals/examples, src/eval/bank): reading CSV/TSV/JSONL in UTF-8 or GBK
//! through a field mapping, every malformed row reported before any model is loaded, and a bank
//! evaluated per category on the tiny fixture model with its group's micro and macro averages.

use std::path::{Path, PathBuf};

use pingce::eval::bank;
use pingce::eval::plan::{self, PlanOptions};
use pingce::eval::task::{self, Task};
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pingce-bank-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn options(data_dir: &Path) -> PlanOptions {
    PlanOptions { data_dir: data_dir.to_path_buf(), limit: None, num_fewshot: None, seed: None, ..Default::default() }
}

/// A bank task YAML (`fields` and `format` given) over `data` written next to it.
fn bank(dir: &Path, format: &str, data_name: &str, data: &[u8], fields: &str, extra: &str) -> Vec<Task> {
    std::fs::write(dir.join(data_name), data).unwrap();
    let mc = fields.contains("choices");
    let yaml = format!(
        "task: bank\ndataset:\n  format: {format}\n  files: {{test: ./{data_name}}}\n  fields: {fields}\n{extra}test_split: test\n{}",
        if mc {
            "output_type: multiple_choice\ndoc_to_text: \"{{question}}\\n{{options}}\\nAnswer:\"\ndoc_to_choice: letters\ndoc_to_target: answer\nmetric_list: [{metric: acc}]\n"
        } else {
            "output_type: generate_until\ndoc_to_text: \"{{question}}\"\ndoc_to_target: answer\nmetric_list: [{metric: contains}]\n"
        }
    );
    let path = dir.join("bank.yaml");
    std::fs::write(&path, yaml).unwrap();
    task::load_task_file(&path).unwrap()
}

fn docs(t: &Task) -> Vec<Value> {
    t.docs(Path::new("/nonexistent")).unwrap().0.into_iter().map(Value::Object).collect()
}

#[test]
fn malformed_rows_are_all_reported_and_nothing_is_evaluated() {
    let dir = tmpdir("bad");
    let csv = "id,question,A,B,C,answer\n1,Good?,x,y,z,A\n2,One option,x,,,A\n3,Good too?,x,y,z,B\n4,Out of range,x,y,z,D\n";
    let tasks = bank(&dir, "csv", "b.csv", csv.as_bytes(), "{id: id, question: question, choices: [A, B, C], answer: answer}", "");
    let report = bank::check_task(&tasks[0], &dir).unwrap();
    let lines: Vec<u64> = report.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![3, 5], "{report}");
    assert!(report.problems[0].message.contains("at least 2"), "{report}");
    assert!(report.problems[1].message.contains("outside the 3 options"), "{report}");
    assert_eq!(report.splits[0].rows, 2);
    // `pingce eval` prepares tasks before loading the model: the refusal names both lines.
    let err = format!("{:#}", plan::prepare(&tasks, &options(&dir)).err().expect("a malformed bank must refuse"));
    assert!(err.contains("b.csv:3:") && err.contains("b.csv:5:") && err.contains("nothing is evaluated"), "{err}");
}

#[test]
fn duplicate_ids_missing_columns_and_undecodable_lines() {
    let dir = tmpdir("dup");
    let mut data = b"{\"id\": \"a\", \"q\": \"Q1\", \"a\": \"x\"}\n{\"id\": \"a\", \"q\": \"Q2\", \"a\": \"y\"}\n{\"id\": \"b\", \"a\": \"y\"}\n".to_vec();
    data.extend_from_slice(b"{\"id\": \"c\", \"q\": \"\xff\", \"a\": \"y\"}\n");
    let tasks = bank(&dir, "jsonl", "g.jsonl", &data, "{id: id, question: q, answer: a}", "");
    let report = bank::check_task(&tasks[0], &dir).unwrap();
    let got: Vec<(u64, bool)> = report.problems.iter().map(|p| (p.line, p.message.contains("duplicate id `a` (first at line 1)") || p.message.contains("missing question") || p.message.contains("undecodable"))).collect();
    assert_eq!(got, vec![(2, true), (3, true), (4, true)], "{report}");
    // A CSV header without a mapped column is one problem at line 1.
    let tasks = bank(&dir, "csv", "h.csv", b"id,q\n1,x\n", "{id: id, question: q, answer: a}", "");
    let report = bank::check_task(&tasks[0], &dir).unwrap();
    assert_eq!(report.problems.len(), 1, "{report}");
    assert!(report.problems[0].message.contains("no column `a`"), "{report}");
}

#[test]
fn gbk_csv_with_categories() {
    let t = &task::load_task_file(&root().join("evals/examples/quality_bank.yaml")).unwrap()[0];
    let d = docs(t);
    assert_eq!(d.len(), 12);
    assert_eq!(d[0]["question"], json!("PDCA 循环中的 C 代表什么？"));
    assert_eq!(d[0]["category"], json!("质量管理"));
    assert_eq!(d[0]["choices"], json!(["计划", "执行", "检查", "处理"]));
    assert_eq!((d[0]["answer"].clone(), d[0]["answer_letter"].clone(), d[0]["answer_text"].clone()), (json!(2), json!("C"), json!("检查")));
    assert_eq!(d[2]["letters"], json!(["A", "B", "C"]));
    assert_eq!(d[3]["choices"].as_array().unwrap().len(), 5);
    assert_eq!(d[0]["options"], json!("A. 计划\nB. 执行\nC. 检查\nD. 处理"));
    // The same bytes read as UTF-8 are undecodable, every line reported.
    let mut utf8 = t.clone();
    utf8.config.dataset.encoding = bank::Encoding::Utf8;
    let report = bank::check_task(&utf8, Path::new(".")).unwrap();
    assert!(report.problems.iter().filter(|p| p.message.contains("undecodable")).count() >= 12, "{report}");
}

#[test]
fn answers_as_letter_index_or_text_and_any_number_of_options() {
    let dir = tmpdir("answers");
    let six = "q,o1,o2,o3,o4,o5,o6,a\nsix,a,b,c,d,e,f,F\ntwo,yes,no,,,,,B\n";
    let fields = "{question: q, choices: [o1, o2, o3, o4, o5, o6], answer: a}";
    let d = docs(&bank(&dir, "csv", "six.csv", six.as_bytes(), fields, "")[0]);
    assert_eq!((d[0]["answer"].clone(), d[1]["answer"].clone()), (json!(5), json!(1)));
    assert_eq!(d[1]["choices"], json!(["yes", "no"]));
    let tsv = "q\topts\ta\nfirst\tred|green|blue\t0\nsecond\tred|green\t1\n";
    let fields = "{question: q, choices: opts, choices_separator: \"|\", answer: a, answer_format: index}";
    let d = docs(&bank(&dir, "tsv", "i.tsv", tsv.as_bytes(), fields, "")[0]);
    assert_eq!((d[0]["answer_text"].clone(), d[1]["answer_text"].clone()), (json!("red"), json!("green")));
    let fields = "{question: q, choices: opts, choices_separator: \"|\", answer: a, answer_format: index1}";
    let tsv1 = "q\topts\ta\nfirst\tred|green|blue\t3\nsecond\tred|green\t1\n";
    let d = docs(&bank(&dir, "tsv", "i1.tsv", tsv1.as_bytes(), fields, "")[0]);
    assert_eq!((d[0]["answer_text"].clone(), d[1]["answer_text"].clone()), (json!("blue"), json!("red")));
    let jsonl = "{\"q\": \"x\", \"opts\": [\"cat\", \"dog\", \"A\"], \"a\": \"dog\"}\n{\"q\": \"y\", \"opts\": \"[\\\"1\\\", \\\"2\\\"]\", \"a\": \"2\"}\n";
    let d = docs(&bank(&dir, "jsonl", "t.jsonl", jsonl.as_bytes(), "{question: q, choices: opts, answer: a}", "")[0]);
    assert_eq!((d[0]["answer"].clone(), d[1]["answer"].clone()), (json!(1), json!(1)));
    // `A` is both the letter of option A and the text of option C: ambiguous unless declared.
    let amb = "{\"q\": \"x\", \"opts\": [\"cat\", \"dog\", \"A\"], \"a\": \"A\"}\n";
    let t = bank(&dir, "jsonl", "amb.jsonl", amb.as_bytes(), "{question: q, choices: opts, answer: a}", "");
    assert!(format!("{:#}", t[0].docs(&dir).unwrap_err()).contains("ambiguous"));
    let t = bank(&dir, "jsonl", "amb.jsonl", amb.as_bytes(), "{question: q, choices: opts, answer: a, answer_format: text}", "");
    assert_eq!(docs(&t[0])[0]["answer"], json!(2));
}

#[test]
fn categories_become_grouped_subtasks() {
    let t = task::load_task_file(&root().join("evals/examples/quality_bank.yaml")).unwrap();
    let runs = plan::prepare(&t, &options(Path::new("/nonexistent"))).unwrap();
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["quality_bank_质量管理", "quality_bank_测量与检验", "quality_bank_安全生产"]);
    for r in &runs {
        assert_eq!(r.items.len(), 4);
        assert_eq!(r.groups, ["quality_bank", "examples"]);
    }
    assert!(runs[0].items[0].context.ends_with("PDCA 循环中的 C 代表什么？\nA. 计划\nB. 执行\nC. 检查\nD. 处理\n答案："), "{}", runs[0].items[0].context);
}

#[test]
fn bank_evaluates_per_category_with_group_averages() {
    use pingce::device::Gpu;
    use pingce::engine::{Engine, EngineOptions};
    use pingce::eval::runner::{run, RunOptions};
    let t = task::load_task_file(&root().join("evals/examples/quality_bank.yaml")).unwrap();
    let runs = plan::prepare(&t, &options(Path::new("/nonexistent"))).unwrap();
    let model = root().join("tests/fixtures/tiny-llama");
    let mut engine = Engine::load(Gpu::default_device().unwrap(), &model, EngineOptions { batch_size: 8, max_batch_tokens: 4096, ..Default::default() }).unwrap();
    let out = tmpdir("run");
    let opts = RunOptions { out: out.clone(), chunk: 16, settings: json!({}), progress: false, shard: None };
    let res = run(&mut engine, &runs, &opts).unwrap();
    let mut per_category = Vec::new();
    let mut all = Vec::new();
    for r in &runs {
        let recs: Vec<f64> = std::fs::read_to_string(out.join(format!("samples_{}.jsonl", r.name)))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["acc"].as_f64().unwrap())
            .collect();
        assert_eq!(recs.len(), 4);
        let mean = recs.iter().sum::<f64>() / 4.0;
        assert_eq!(res["results"][&r.name]["acc"]["value"].as_f64().unwrap(), mean);
        per_category.push(mean);
        all.extend(recs);
    }
    let g = &res["groups"]["quality_bank"]["acc"];
    let micro = all.iter().sum::<f64>() / all.len() as f64;
    let macro_ = per_category.iter().sum::<f64>() / 3.0;
    assert!((g["micro"].as_f64().unwrap() - micro).abs() < 1e-12, "{g}");
    assert!((g["macro"].as_f64().unwrap() - macro_).abs() < 1e-12, "{g}");
    assert_eq!((g["n"].as_u64(), g["tasks"].as_u64()), (Some(12), Some(3)));
}

#[test]
fn generation_bank_scores_exact_match_regex_and_contains() {
    use pingce::device::Gpu;
    use pingce::engine::{Engine, EngineOptions};
    use pingce::eval::runner::{run, RunOptions};
    let t = task::load_task_file(&root().join("evals/examples/quality_terms.yaml")).unwrap();
    let mut o = options(Path::new("/nonexistent"));
    o.limit = Some(2);
    let runs = plan::prepare(&t, &o).unwrap();
    let model = root().join("tests/fixtures/tiny-llama");
    let mut engine = Engine::load(Gpu::default_device().unwrap(), &model, EngineOptions { batch_size: 2, max_batch_tokens: 4096, ..Default::default() }).unwrap();
    let out = tmpdir("gen");
    let res = run(&mut engine, &runs, &RunOptions { out: out.clone(), chunk: 8, settings: json!({}), progress: false, shard: None }).unwrap();
    let r = &res["results"]["quality_terms"];
    for key in ["exact_match,raw", "exact_match,number", "contains,raw", "contains,number"] {
        assert_eq!(r[key]["n"].as_u64(), Some(2), "{key}: {r}");
    }
    let rec: Value = serde_json::from_str(std::fs::read_to_string(out.join("samples_quality_terms.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    let raw = &rec["filtered"]["raw"];
    let expected = raw["answer"].as_str().unwrap().contains("Failure Mode and Effects Analysis") as u8 as f64;
    assert_eq!(raw["contains"].as_f64(), Some(expected), "{rec}");
}
