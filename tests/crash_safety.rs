//! `pingce eval` killed with SIGKILL at 20 seeded random moments resumes, each time, to
//! results.json, summary.md and samples byte-identical to an uninterrupted run. A moment is a
//! seeded point of progress (after the samples files hold r lines, r drawn from 0 up to the
//! run's total), so the kills land inside the run whatever the machine's speed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn args(out: &Path) -> Vec<String> {
    ["eval", "--model", "tests/fixtures/tiny-llama", "--tasks", "arc_easy,hellaswag,piqa", "--limit", "6", "--chunk", "1", "--batch-size", "2", "--output", out.to_str().unwrap()]
        .map(String::from)
        .to_vec()
}

fn cmd(out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pingce"));
    c.args(args(out)).current_dir(root()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    c
}

fn files(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl" || e == "md"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn sigkill_at_random_moments_then_resume_is_byte_identical() {
    let base = std::env::temp_dir().join(format!("pingce-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let full = base.join("full");
    assert!(cmd(&full).status().unwrap().success());
    let want = files(&full);
    let total: usize = want.iter().filter(|(n, _)| n.ends_with(".jsonl")).map(|(_, b)| b.iter().filter(|&&c| c == b'\n').count()).sum();
    let done = |d: &Path| -> usize {
        std::fs::read_dir(d)
            .map(|it| it.filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "jsonl")).map(|e| std::fs::read(e.path()).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0)).sum())
            .unwrap_or(0)
    };
    assert!(want.iter().any(|(n, _)| n == "results.json"));
    // A fixed LCG: the same 20 kill moments on every run of the test, spread over the whole run.
    let mut s: u64 = 0x5eed_1234;
    let mut killed_mid_run = 0;
    for i in 0..20 {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let at = (s >> 33) as usize % total;
        let dir = base.join(format!("k{i}"));
        let mut child = cmd(&dir).spawn().unwrap();
        let t0 = Instant::now();
        while child.try_wait().unwrap().is_none() && done(&dir) < at && t0.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed_mid_run += 1;
        }
        child.wait().unwrap();
        let resumed = cmd(&dir).status().unwrap();
        assert!(resumed.success(), "kill {i} at {at:?}: the resumed run failed");
        assert_eq!(files(&dir), want, "kill {i} at {at:?}: files differ from the uninterrupted run");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(killed_mid_run >= 15, "only {killed_mid_run} of 20 kills hit a running process");
    std::fs::remove_dir_all(&base).unwrap();
}
