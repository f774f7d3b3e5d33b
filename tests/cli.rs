//! The `pingce` binary: output format, batch invariance of its output, and bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pingce(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pingce")).args(args).current_dir(root()).output().unwrap()
}

fn tmp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pingce-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn score_output_is_the_same_bytes_for_every_batch_size() {
    let model = "tests/fixtures/tiny-qwen3";
    let reqs = "evals/samples/requests.jsonl";
    let base = pingce(&["score", "--model", model, "--batch-size", "1", reqs]);
    assert!(base.status.success(), "{}", String::from_utf8_lossy(&base.stderr));
    let text = String::from_utf8(base.stdout.clone()).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let n_in = std::fs::read_to_string(root().join(reqs)).unwrap().lines().count();
    assert_eq!(lines.len(), n_in, "one output line per request");
    for l in &lines {
        let lp = l["logprobs"].as_array().unwrap();
        assert_eq!(lp.len(), l["continuation_tokens"].as_array().unwrap().len());
        assert_eq!(lp.len(), l["is_greedy"].as_array().unwrap().len());
        let sum: f64 = lp.iter().map(|x| x.as_f64().unwrap() as f32 as f64).sum();
        assert_eq!(sum, l["sum_logprob"].as_f64().unwrap());
    }
    for bs in ["3", "16"] {
        let o = pingce(&["score", "--model", model, "--batch-size", bs, reqs]);
        assert!(o.status.success());
        assert_eq!(o.stdout, base.stdout, "batch size {bs} changed the output");
    }
}

fn fails_with(args: &[&str], needle: &str) {
    let o = pingce(args);
    assert!(!o.status.success(), "expected failure for {args:?}");
    assert!(o.stdout.is_empty(), "nothing may be written on failure");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(needle), "error for {args:?} should mention {needle:?}: {err}");
}

#[test]
fn bad_request_files_are_reported_with_their_line() {
    let m = "tests/fixtures/tiny-llama";
    let empty = tmp("empty.jsonl", "");
    fails_with(&["score", "--model", m, empty.to_str().unwrap()], "no requests");
    let bad = tmp("bad.jsonl", "{\"context\": \"a\", \"continuation\": \"b\"}\n{\"context\": \"a\"}\n");
    fails_with(&["score", "--model", m, bad.to_str().unwrap()], "bad.jsonl:2");
    let long = "word ".repeat(400);
    let too_long = tmp("long.jsonl", &format!("{{\"context\": \"{long}\", \"continuation\": \"x\"}}\n"));
    fails_with(&["score", "--model", m, too_long.to_str().unwrap()], "longer than the model's context");
    fails_with(&["score", "--model", "no/such/model", "evals/samples/requests.jsonl"], "does not exist");
    let _ = Path::new("");
}

#[test]
fn devices_lists_the_selected_adapter() {
    let o = pingce(&["devices", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let adapters = v["adapters"].as_array().unwrap();
    assert!(!adapters.is_empty());
    assert!(adapters[0]["max_storage_binding_mib"].as_u64().unwrap() > 0);
    assert!(v["selected"]["name"].as_str().is_some());
    fails_with(&["devices", "--backend", "opengl-es9"], "unknown backend");
}

#[test]
fn determinism_command_passes_on_a_fixture_model() {
    let o = pingce(&["determinism", "--model", "tests/fixtures/tiny-mistral", "--batch-sizes", "1,3,16"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("PASS"), "{out}");
    // 3 batch sizes x 3 orders + the incremental decode check.
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("batch size") || l.starts_with("incremental")).collect();
    assert_eq!(rows.len(), 10, "{out}");
    assert!(rows[1..].iter().all(|l| l.ends_with("bit-identical")), "{out}");
}

fn eval_args<'a>(out: &'a str, bs: &'a str) -> Vec<&'a str> {
    vec!["eval", "--model", "tests/fixtures/tiny-qwen2", "--tasks", "ceval-valid,arc_easy,hellaswag,wikitext", "--limit", "3", "--chunk", "1", "--batch-size", bs, "--output", out]
}

fn results_part(dir: &Path) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    serde_json::json!({"results": v["results"], "groups": v["groups"], "n": v["n"]})
}

#[test]
fn eval_is_batch_invariant_and_resumes_after_being_killed() {
    let base = std::env::temp_dir().join(format!("pingce-cli-eval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (full, b16, killed) = (base.join("full"), base.join("b16"), base.join("killed"));
    let o = pingce(&eval_args(full.to_str().unwrap(), "1"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("| arc_easy | acc |"));
    let o = pingce(&eval_args(b16.to_str().unwrap(), "16"));
    assert!(o.status.success());
    assert_eq!(results_part(&full), results_part(&b16));
    for e in std::fs::read_dir(&full).unwrap() {
        let name = e.unwrap().file_name();
        if name.to_string_lossy().starts_with("samples_") {
            assert_eq!(std::fs::read(full.join(&name)).unwrap(), std::fs::read(b16.join(&name)).unwrap(), "{name:?} differs between batch sizes");
        }
    }
    // Kill a run once it has written a few items, then rerun into the same folder.
    let mut child = Command::new(env!("CARGO_BIN_EXE_pingce"))
        .args(eval_args(killed.to_str().unwrap(), "1"))
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = killed.join("samples_ceval-valid_accountant.jsonl");
    let start = std::time::Instant::now();
    while start.elapsed().as_secs() < 60 {
        if std::fs::read_to_string(&first).map(|s| s.lines().count() >= 2).unwrap_or(false) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let o = pingce(&eval_args(killed.to_str().unwrap(), "4"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(results_part(&killed), results_part(&full));
    // A different setting refuses to resume.
    let mut args = eval_args(killed.to_str().unwrap(), "4");
    args[6] = "2";
    fails_with(&args, "refusing to resume");
}

#[test]
fn task_logit_dumps_compare_across_batch_sizes() {
    let base = std::env::temp_dir().join(format!("pingce-cli-logits-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let (a, b) = (base.join("a.safetensors"), base.join("b.safetensors"));
    for (out, bs) in [(&a, "1"), (&b, "16")] {
        let o = pingce(&["logits", "--model", "tests/fixtures/tiny-llama", "--tasks", "arc_easy,piqa", "--limit", "2", "--batch-size", bs, "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = pingce(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("answer flips: 0 of 4 multiple-choice items") && out.contains("McNemar"), "{out}");
}

/// Standard splits by default: a missing file is named before any model is loaded; `--split`
/// evaluates another split, recorded in results.json and flagged in summary.md.
#[test]
fn standard_splits_and_smoke_splits() {
    let empty = std::env::temp_dir().join(format!("pingce-cli-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = std::env::temp_dir().join(format!("pingce-cli-split-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let (e, o) = (empty.to_str().unwrap(), out.to_str().unwrap());
    // The model path does not exist: the data check must fail first, naming task, split and path.
    fails_with(&["eval", "--model", "no/such/model", "--tasks", "arc_easy", "--data-dir", e, "--output", o], "ARC-Easy-Test.jsonl");
    fails_with(&["eval", "--model", "no/such/model", "--tasks", "arc_easy", "--data-dir", e, "--output", o], "evaluates split `test`");
    fails_with(&["eval", "--model", "no/such/model", "--tasks", "arc_easy", "--split", "arc_easy=nope", "--output", o], "has no split `nope`");
    fails_with(&["eval", "--model", "no/such/model", "--tasks", "arc_easy", "--split", "piqa=validation", "--output", o], "not a selected task");
    let run = pingce(&["eval", "--model", "tests/fixtures/tiny-llama", "--tasks", "arc_easy,piqa", "--split", "arc_easy=train", "--limit", "2", "--output", o]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["configs"]["arc_easy"]["eval_split"], "train");
    assert_eq!(r["configs"]["arc_easy"]["standard_split"], "test");
    assert_eq!(r["configs"]["arc_easy"]["split_is_standard"], false);
    assert_eq!(r["configs"]["piqa"]["split_is_standard"], true);
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("arc_easy ⚠ split train") && md.contains("Non-standard split"), "{md}");
    assert!(!md.contains("piqa ⚠"), "{md}");
}

/// `--apply-chat-template` / `--chat-template FILE`: prompts go through the template, the
/// continuation loses its delimiter, and the template's hash and the flags are recorded.
#[test]
fn eval_with_a_chat_template() {
    let out = std::env::temp_dir().join(format!("pingce-cli-chat-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = out.to_str().unwrap();
    let tpl = "tests/fixtures/chat_templates/qwen2.5-instruct/chat_template.jinja";
    let run = pingce(&[
        "eval", "--model", "tests/fixtures/tiny-llama", "--tasks", "arc_easy", "--limit", "2", "--num-fewshot", "1",
        "--chat-template", tpl, "--system-instruction", "Answer briefly.", "--fewshot-as-multiturn", "--chat-date", "2025-03-07", "--output", o,
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let rec: serde_json::Value = serde_json::from_str(std::fs::read_to_string(out.join("samples_arc_easy.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    let ctx = rec["arguments"][0][0].as_str().unwrap();
    assert!(ctx.starts_with("<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\n"), "{ctx}");
    assert!(ctx.ends_with("<|im_start|>assistant\n"), "{ctx}");
    assert_eq!(ctx.matches("<|im_start|>assistant\n").count(), 2, "one few-shot answer turn and the generation prompt: {ctx}");
    assert!(!rec["arguments"][0][1].as_str().unwrap().starts_with(' '), "no target delimiter under a chat template");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let chat = &r["manifest"]["settings"]["chat"];
    assert_eq!(chat["date"], "2025-03-07");
    assert_eq!(chat["fewshot_as_multiturn"], true);
    assert_eq!(chat["template_sha256"].as_str().unwrap().len(), 64);
    // Chat flags without a template are refused; a model without a template is named.
    fails_with(&["eval", "--model", "tests/fixtures/tiny-llama", "--tasks", "arc_easy", "--fewshot-as-multiturn", "--output", o], "need --apply-chat-template");
    fails_with(&["eval", "--model", "tests/fixtures/tiny-llama", "--tasks", "arc_easy", "--apply-chat-template", "--output", o], "no chat template");
}

/// Counts of zero are refused by name; `--allow-outside-paths` lets a task read outside --data-dir.
#[test]
fn zero_counts_and_outside_paths() {
    let o = std::env::temp_dir().join(format!("pingce-cli-zero-{}", std::process::id()));
    let o = o.to_str().unwrap();
    fails_with(&["eval", "--model", "tests/fixtures/tiny-llama", "--tasks", "arc_easy", "--batch-size", "0", "--output", o], "at least 1");
    fails_with(&["eval", "--model", "tests/fixtures/tiny-llama", "--tasks", "arc_easy", "--limit", "0", "--output", o], "at least 1");
    let dir = std::env::temp_dir().join(format!("pingce-cli-outside-{}", std::process::id()));
    let (tasks, data) = (dir.join("tasks"), dir.join("data"));
    std::fs::create_dir_all(&tasks).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(dir.join("g.jsonl"), "{\"question\": \"What is 1 + 1?\", \"answer\": \"2\"}\n").unwrap();
    std::fs::write(tasks.join("t.yaml"), "task: t\ndataset: {format: jsonl, files: {test: ../g.jsonl}}\ntest_split: test\noutput_type: loglikelihood\ndoc_to_text: \"Q: {{question}}\\nA:\"\ndoc_to_target: \" {{answer}}\"\n").unwrap();
    let base = ["eval", "--model", "tests/fixtures/tiny-llama", "--tasks", "t", "--tasks-dir", tasks.to_str().unwrap(), "--data-dir", data.to_str().unwrap()];
    let out = dir.join("out");
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["--output", out.to_str().unwrap()]);
    fails_with(&args, "leaves the folder");
    args.push("--allow-outside-paths");
    let run = pingce(&args);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
}

/// `pingce bench --json`: prefill, decode at each batch size, adapter and commit, for comparing
/// commits and devices.
#[test]
fn bench_json_reports_every_measurement() {
    let o = pingce(&["bench", "--model", "tests/fixtures/tiny-llama", "--prompt-tokens", "16", "--prefill-batch", "2", "--decode-tokens", "4", "--decode-batch", "1,3", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["prefill"]["tokens_per_s"].as_f64().unwrap() > 0.0);
    let d = v["decode"].as_array().unwrap();
    assert_eq!(d.iter().map(|x| x["sequences"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 3]);
    assert!(d.iter().all(|x| x["tokens_per_s"].as_f64().unwrap() > 0.0 && x["steps"].as_u64().unwrap() >= 1));
    assert!(v["adapter"].as_str().unwrap().contains("Vulkan") || !v["adapter"].as_str().unwrap().is_empty());
    assert_eq!(v["git_commit"].as_str().unwrap().len() >= 7 || v["git_commit"] == "unknown", true);
    assert!(v["gpu_mib_allocated"].as_f64().unwrap() > 0.0 && v["mc_suite"].is_null());
    // lavapipe's worker threads: two per CPU on machines of up to 4 CPUs unless set, else as set.
    let cpus = std::thread::available_parallelism().unwrap().get() as u64;
    if std::env::var_os("LP_NUM_THREADS").is_none() {
        assert_eq!(v["lp_num_threads"].as_u64(), (cpus <= 4).then_some(2 * cpus), "{}", v["lp_num_threads"]);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_pingce"))
        .args(["bench", "--model", "tests/fixtures/tiny-llama", "--prompt-tokens", "8", "--prefill-batch", "1", "--decode-tokens", "2", "--decode-batch", "1", "--json"])
        .env("LP_NUM_THREADS", "3")
        .current_dir(root())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["lp_num_threads"], 3);
}

/// `pingce bench --repeat 3`: each figure is the best of three runs, with the median and every
/// run's figure beside it.
#[test]
fn bench_repeat_reports_the_best_run_and_the_median() {
    let o = pingce(&["bench", "--model", "tests/fixtures/tiny-llama", "--prompt-tokens", "8", "--prefill-batch", "1", "--decode-tokens", "3", "--decode-batch", "2", "--repeat", "3", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["repeat"], 3);
    for m in [&v["prefill"], &v["decode"][0]] {
        let runs: Vec<f64> = m["runs_tokens_per_s"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(runs.len(), 3, "{m}");
        let best = runs.iter().copied().fold(f64::MIN, f64::max);
        assert_eq!(m["tokens_per_s"].as_f64().unwrap(), best);
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(m["median_tokens_per_s"].as_f64().unwrap(), sorted[1]);
    }
    let o = pingce(&["bench", "--model", "tests/fixtures/tiny-llama", "--repeat", "0"]);
    assert!(!o.status.success());
}
