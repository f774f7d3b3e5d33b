//! GPU faults on the software adapter: out of memory (a memory budget) and a lost device (an
//! injected loss) end with exit status 75 and advice, keep every finished sample, and a rerun
//! resumes to the results of an uninterrupted run. Bad input ends with 65.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pingce(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pingce"));
    c.args(args).current_dir(root()).env_remove("PINGCE_INJECT_DEVICE_LOSS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn out(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pingce-faults-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn eval_args(dir: &Path) -> Vec<String> {
    ["eval", "--model", "tests/fixtures/tiny-llama", "--tasks", "arc_easy", "--limit", "4", "--chunk", "1", "--output", dir.to_str().unwrap()].map(String::from).to_vec()
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map(|s| s.lines().count()).unwrap_or(0)
}

#[test]
fn out_of_memory_is_a_retry_with_advice() {
    let dir = out("oom");
    let mut args = eval_args(&dir);
    args.extend(["--gpu-memory-budget".into(), "16K".into()]);
    let o = pingce(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(75), "{err}");
    assert!(err.contains("GPU out of memory") && err.contains("--gpu-memory-budget of 16384 bytes"), "{err}");
    assert!(err.contains("rerun the same command") && err.contains("loading weights"), "{err}");
    // A budget the weights fit in but a forward pass does not: the pass fails the same way.
    let dir = out("oom-pass");
    let mut args = eval_args(&dir);
    args.extend(["--gpu-memory-budget".into(), "700K".into()]);
    let o = pingce(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(75), "{err}");
    assert!(err.contains("task arc_easy") && err.contains("GPU out of memory"), "{err}");
}

#[test]
fn a_lost_device_keeps_finished_samples_and_resumes() {
    let full = out("full");
    let args = eval_args(&full);
    let o = pingce(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = std::fs::read_to_string(full.join("samples_arc_easy.jsonl")).unwrap();
    // Lose the device after k submissions, for the first k that leaves part of the work done.
    let dir = out("lost");
    let args = eval_args(&dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut interrupted = false;
    for k in [1, 2, 3, 4, 6, 8, 12, 16, 24, 32] {
        let _ = std::fs::remove_dir_all(&dir);
        let o = pingce(&args, &[("PINGCE_INJECT_DEVICE_LOSS", &k.to_string())]);
        if o.status.success() {
            break;
        }
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(75), "{err}");
        assert!(err.contains("GPU device lost"), "{err}");
        let n = lines(&dir.join("samples_arc_easy.jsonl"));
        if (1..4).contains(&n) {
            // What was finished is on disk, line for line as in the full run.
            let partial = std::fs::read_to_string(dir.join("samples_arc_easy.jsonl")).unwrap();
            assert!(want.starts_with(&partial), "finished samples differ from the uninterrupted run");
            interrupted = true;
            break;
        }
    }
    assert!(interrupted, "no injected loss left a partial run");
    let o = pingce(&args, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(dir.join("samples_arc_easy.jsonl")).unwrap(), want);
    let r = |d: &Path| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("results.json")).unwrap()).unwrap();
        serde_json::json!([v["results"], v["groups"], v["n"]])
    };
    assert_eq!(r(&dir), r(&full));
}

#[test]
fn bad_input_exits_65() {
    let dir = out("bad");
    let o = pingce(&["eval", "--model", "no/such/model", "--tasks", "arc_easy", "--output", dir.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(65), "{}", String::from_utf8_lossy(&o.stderr));
}
