//! Sharding and merging: `pingce merge` of N shards gives results.json, summary.md and samples
//! byte-identical to an unsharded run (N = 1, 2, 3, 7), `--shard auto` under Slurm and Kubernetes,
//! and every refusal naming its problem.

use std::path::{Path, PathBuf};
use std::process::Command;

use pingce::device::Gpu;
use pingce::engine::{Engine, EngineOptions};
use pingce::eval::plan::{self, PlanOptions};
use pingce::eval::runner::{run, RunOptions};
use pingce::eval::shard::Shard;
use serde_json::json;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn base(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pingce-fleet-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Every file of `a` is in `b` with the same bytes, except run.json (which records the shards).
fn assert_same_files(a: &Path, b: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(a).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert!(names.len() >= 4);
    for n in names {
        if n == "run.json" {
            continue;
        }
        let (x, y) = (std::fs::read(a.join(&n)).unwrap(), std::fs::read(b.join(&n)).unwrap_or_default());
        assert!(x == y, "{n:?} differs between the unsharded run and the merge ({} vs {} bytes)", x.len(), y.len());
    }
}

#[test]
fn merged_shards_are_byte_identical_to_an_unsharded_run() {
    let dir = base("inproc");
    let specs = ["arc_easy".to_string(), "ceval-valid".to_string()];
    let tasks = plan::select_tasks(&root().join("evals"), &specs, false).unwrap();
    let o = PlanOptions { data_dir: root().join("evals/samples"), limit: Some(3), ..Default::default() };
    let settings = json!({"tasks": specs, "limit": 3});
    let mut engine = Engine::load(Gpu::default_device().unwrap(), &root().join("tests/fixtures/tiny-llama"), EngineOptions { batch_size: 8, max_batch_tokens: 4096, ..Default::default() }).unwrap();
    let full = dir.join("full");
    let opts = |out: PathBuf, shard| RunOptions { out, chunk: 4, settings: settings.clone(), progress: false, shard };
    run(&mut engine, &plan::prepare(&tasks, &o).unwrap(), &opts(full.clone(), None)).unwrap();
    for n in [1, 2, 3, 7] {
        let mut dirs = Vec::new();
        // Shards in reverse order: the merge does not depend on the order they ran or are given.
        for i in (0..n).rev() {
            let s = Shard::new(i, n).unwrap();
            let mut runs = plan::prepare(&tasks, &o).unwrap();
            s.apply(&mut runs);
            let d = dir.join(format!("n{n}-s{i}"));
            run(&mut engine, &runs, &opts(d.clone(), Some(s))).unwrap();
            let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("results.json")).unwrap()).unwrap();
            assert_eq!(r["manifest"]["shard"], json!({"index": i, "count": n}));
            dirs.push(d);
        }
        let merged = dir.join(format!("merged-{n}"));
        pingce::eval::merge::merge(&dirs, &merged, false).unwrap();
        assert_same_files(&full, &merged);
        let run_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(merged.join("run.json")).unwrap()).unwrap();
        assert_eq!(run_json["merged_from"].as_array().unwrap().len(), n);
        assert!(run_json.get("shard").is_none());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shard_assignment_and_auto_detection() {
    let s = Shard::parse("2/7").unwrap();
    assert!(s.keeps(2) && s.keeps(9) && !s.keeps(3));
    assert!(format!("{:#}", Shard::parse("7/7").unwrap_err()).contains("not below the shard count"));
    assert!(Shard::parse("x").is_err());
    let env = |vars: &'static [(&'static str, &'static str)]| move |k: &str| vars.iter().find(|v| v.0 == k).map(|v| v.1.to_string());
    let (s, from) = Shard::auto(None, &env(&[("SLURM_ARRAY_TASK_ID", "12"), ("SLURM_ARRAY_TASK_MIN", "10"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_JOB_ID", "991")])).unwrap();
    assert_eq!((s.index, s.count), (2, 4));
    assert!(from.contains("Slurm job array 991"), "{from}");
    let e = Shard::auto(None, &env(&[("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_STEP", "2")])).unwrap_err();
    assert!(format!("{e:#}").contains("step 2"), "{e:#}");
    let (s, from) = Shard::auto(Some(5), &env(&[("JOB_COMPLETION_INDEX", "4")])).unwrap();
    assert_eq!((s.index, s.count), (4, 5));
    assert!(from.contains("Kubernetes Indexed Job"), "{from}");
    assert!(format!("{:#}", Shard::auto(None, &env(&[("JOB_COMPLETION_INDEX", "4")])).unwrap_err()).contains("needs --shards"));
    assert!(format!("{:#}", Shard::auto(None, &env(&[])).unwrap_err()).contains("neither a Slurm job array"));
}

fn pingce(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pingce"));
    c.args(args).current_dir(root());
    for k in ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP", "JOB_COMPLETION_INDEX"] {
        c.env_remove(k);
    }
    c.envs(env.iter().copied()).output().unwrap()
}

fn ok(o: std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn refused(args: &[&str], needle: &str) {
    let o = pingce(args, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected a refusal for {args:?}");
    assert!(err.contains(needle), "the refusal of {args:?} should say {needle:?}: {err}");
}

#[test]
fn cli_shards_under_schedulers_merge_and_refusals() {
    let dir = base("cli");
    let p = |x: &str| dir.join(x).to_str().unwrap().to_string();
    let eval = |out: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["eval", "--model", "tests/fixtures/tiny-llama", "--tasks", "arc_easy,piqa", "--limit", "5", "--output", out].map(String::from).to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let (full, s0, s1) = (p("full"), p("s0"), p("s1"));
    ok(pingce(&args(&eval(&full, &[])), &[]));
    let said = ok(pingce(&args(&eval(&s0, &["--shard", "auto"])), &[("SLURM_ARRAY_TASK_ID", "7"), ("SLURM_ARRAY_TASK_MIN", "7"), ("SLURM_ARRAY_TASK_COUNT", "2")]));
    assert!(said.contains("shard 0/2 from the Slurm job array"), "{said}");
    let said = ok(pingce(&args(&eval(&s1, &["--shard", "auto", "--shards", "2"])), &[("JOB_COMPLETION_INDEX", "1")]));
    assert!(said.contains("shard 1/2 from the Kubernetes Indexed Job"), "{said}");
    let merged = p("merged");
    ok(pingce(&["merge", &s1, &s0, "--output", &merged], &[]));
    assert_same_files(Path::new(&full), Path::new(&merged));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(Path::new(&s1).join("run.json")).unwrap()).unwrap();
    assert_eq!(r["shard"], json!({"index": 1, "count": 2}));
    // Resuming a shard into another shard's folder is refused.
    refused(&args(&eval(&s1, &["--shard", "0/2"])), "refusing to resume");
    let x = p("x");
    refused(&["merge", &s0, "--output", &x], "shard(s) 1/2 missing");
    refused(&["merge", &s0, &s0, &s1, "--output", &x], "shard 0/2 given twice");
    refused(&["merge", &full, "--output", &x], "is not a shard");
    // Different settings, model, task configuration.
    let other = p("limit4");
    let mut v = eval(&other, &["--shard", "1/2"]);
    v[6] = "4".into();
    ok(pingce(&args(&v), &[]));
    refused(&["merge", &s0, &other, "--output", &x], "shards of different settings");
    let other = p("qwen");
    let mut v = eval(&other, &["--shard", "1/2"]);
    v[2] = "tests/fixtures/tiny-qwen2".into();
    ok(pingce(&args(&v), &[]));
    refused(&["merge", &s0, &other, "--output", &x], "shards of different models");
    let tasks_dir = dir.join("tasks");
    std::fs::create_dir_all(&tasks_dir).unwrap();
    for t in ["arc_easy", "piqa"] {
        let yaml = std::fs::read_to_string(root().join(format!("evals/{t}.yaml"))).unwrap();
        std::fs::write(tasks_dir.join(format!("{t}.yaml")), format!("{yaml}\n# edited\n")).unwrap();
    }
    let other = p("edited");
    ok(pingce(&args(&eval(&other, &["--shard", "1/2", "--tasks-dir", tasks_dir.to_str().unwrap()])), &[]));
    refused(&["merge", &s0, &other, "--output", &x], "shards of different task configurations");
    // Another pingce version; an unfinished shard.
    let copy = |name: &str| -> PathBuf {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for e in std::fs::read_dir(&s1).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
        d
    };
    let v = copy("version");
    let text = std::fs::read_to_string(v.join("results.json")).unwrap().replace(&format!("\"pingce_version\": \"{}\"", pingce::VERSION), "\"pingce_version\": \"0.0.1\"");
    std::fs::write(v.join("results.json"), text).unwrap();
    refused(&["merge", &s0, v.to_str().unwrap(), "--output", &x], "shards of different pingce versions");
    let u = copy("unfinished");
    let samples = u.join("samples_arc_easy.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&samples).unwrap().lines().map(String::from).collect();
    std::fs::write(&samples, format!("{}\n", lines[0])).unwrap();
    refused(&["merge", &s0, u.to_str().unwrap(), "--output", &x], "shard 1/2");
    refused(&["merge", &s0, u.to_str().unwrap(), "--output", &x], "is unfinished");
    std::fs::remove_file(u.join("results.json")).unwrap();
    refused(&["merge", &s0, u.to_str().unwrap(), "--output", &x], "has no results.json");
    assert!(!Path::new(&x).exists(), "nothing is written by a refused merge");
    let _ = std::fs::remove_dir_all(&dir);
}
