//! Conformance: `pingce logits` run live against the committed golden dumps (pingce on lavapipe,
//! and transformers in float32, tests/fixtures/golden), `pingce compare`'s errors and verdicts,
//! and the metrics on hand-made dumps.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pingce::conformance::compare::{kld, mcnemar_exact, median, percentile, MissingEstimate};
use pingce::conformance::{log1mexp, tail_logmass, Dump, InputInfo, Manifest, ModelInfo, FORMAT, FORMAT_VERSION};
use serde_json::Value;

const REQUESTS: &str = "evals/samples/requests.jsonl";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden(name: &str) -> PathBuf {
    root().join("tests/fixtures/golden").join(format!("{name}.safetensors"))
}

/// The default model, located as tests/default_model.rs does.
fn default_model() -> PathBuf {
    let p = std::env::var_os("PINGCE_MODEL").map(PathBuf::from).unwrap_or_else(|| root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(p.exists(), "{} is missing: run tools/fetch-default-model first", p.display());
    p
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pingce-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn pingce<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pingce")).args(args).current_dir(root()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `pingce logits` on the sample requests; returns the dump's path.
fn live(model: &Path, tag: &str) -> PathBuf {
    let out = tmp(&format!("{tag}.safetensors"));
    let o = pingce(&["logits".as_ref(), "--model".as_ref(), model.as_os_str(), "--requests".as_ref(), REQUESTS.as_ref(), "--batch-size".as_ref(), "3".as_ref(), "--out".as_ref(), out.as_os_str()]);
    assert!(o.status.success(), "pingce logits failed: {}", stderr(&o));
    out
}

/// `pingce compare --json REF CAND extra...`: the exit status and the report.
fn compare(r: &Path, c: &Path, extra: &[&str]) -> (Output, Value) {
    let mut args: Vec<&std::ffi::OsStr> = vec!["compare".as_ref(), "--json".as_ref(), r.as_os_str(), c.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let o = pingce(&args);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, v)
}

fn summary(what: &str, j: &Value) {
    eprintln!(
        "{what}: mean KLD {}, max KLD {}, top-1 {}, max |Δlp| {}, RMS Δp {}, flips {}",
        j["kld"]["mean"], j["kld"]["max"], j["top1_agreement"], j["target_max_abs_dlogprob"], j["target_rms_dp"], j["answer_flips"]["flips"]
    );
}

/// Live run vs the golden pingce dump (same adapter: identical numbers) and vs transformers
/// (default thresholds).
fn check_model(model: &Path, tag: &str) {
    let cand = live(model, tag);
    let (o, j) = compare(&golden(&format!("{tag}.pingce")), &cand, &[]);
    assert!(o.status.success(), "live vs golden pingce dump: {}\n{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
    summary(&format!("{tag}: live vs golden pingce"), &j);
    assert_eq!(j["pass"], true);
    assert!(j["kld"]["max"].as_f64().unwrap() <= 1e-6, "KLD against the golden pingce dump: {}", j["kld"]);
    assert_eq!(j["top1_agreement"].as_f64(), Some(1.0));
    let (o, j) = compare(&golden(&format!("{tag}.transformers")), &cand, &[]);
    assert!(o.status.success(), "live vs transformers: {}\n{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
    summary(&format!("{tag}: live vs transformers"), &j);
    assert_eq!(j["pass"], true);
    assert_eq!(j["answer_flips"]["items"].as_u64(), Some(1), "the sample's Paris/Berlin pair is one item");
    // The text report states the KL approximation.
    let o = pingce(&["compare".as_ref(), golden(&format!("{tag}.transformers")).as_os_str(), cand.as_os_str()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && text.contains("estimated over the reference's top-32") && text.trim_end().ends_with("PASS"), "{text}");
}

#[test]
fn tiny_llama_live_matches_golden_dumps() {
    check_model(&root().join("tests/fixtures/tiny-llama"), "tiny-llama");
}

#[test]
fn default_model_live_matches_golden_dumps() {
    check_model(&default_model(), "smollm2-q4_1");
}

#[test]
fn golden_dumps_are_consistent() {
    for tag in ["tiny-llama", "smollm2-q4_1"] {
        let p = Dump::read(&golden(&format!("{tag}.pingce"))).unwrap();
        let t = Dump::read(&golden(&format!("{tag}.transformers"))).unwrap();
        assert_eq!(p.token_ids, t.token_ids, "{tag}: pingce and transformers tokenize the sample alike");
        assert_eq!(p.position, t.position);
        assert_eq!(p.context_sha256, t.context_sha256);
        assert_eq!(p.manifest.requests, 7);
        assert_eq!(p.manifest.pingce_version.as_deref(), Some(pingce::VERSION));
        assert!(t.manifest.producer.starts_with("transformers"));
        for d in [&p, &t] {
            for i in 0..d.len() {
                // Stored tails are the host formula of the stored top-k.
                assert_eq!(d.tail_logmass[i], tail_logmass(d.topk_logprobs_row(i)) as f32);
                assert_eq!(d.is_argmax[i] == 1, d.topk_ids_row(i)[0] == d.token_ids[i]);
            }
        }
    }
}

#[test]
fn text_mode_scores_every_token_in_rolling_windows() {
    // tiny-llama has a 256-token context; this text is several windows long.
    let text: String = std::fs::read_to_string(root().join("README.md")).unwrap().chars().take(3000).collect();
    let input = tmp("text.txt");
    std::fs::write(&input, &text).unwrap();
    let model = "tests/fixtures/tiny-llama";
    let mut outs = Vec::new();
    for bs in ["1", "16"] {
        let out = tmp(&format!("text-{bs}.safetensors"));
        let o = pingce(&["logits".as_ref(), "--model".as_ref(), model.as_ref(), "--text".as_ref(), input.as_os_str(), "--top-k".as_ref(), "8".as_ref(), "--batch-size".as_ref(), bs.as_ref(), "--out".as_ref(), out.as_os_str()]);
        assert!(o.status.success(), "{}", stderr(&o));
        outs.push(out);
    }
    assert!(std::fs::read(&outs[0]).unwrap() == std::fs::read(&outs[1]).unwrap(), "the dump does not depend on the batch size");
    let d = Dump::read(&outs[0]).unwrap();
    let tok = pingce::model::Tokenizer::load(&root().join(model), None, None).unwrap();
    let ids = pingce::engine::requests::Encode::encode(&tok, &text).unwrap();
    assert!(ids.len() > 600, "{} tokens", ids.len());
    assert_eq!(d.token_ids, ids.iter().map(|&x| x as i32).collect::<Vec<_>>(), "every token of the text, once, in order");
    assert_eq!(d.k, 8);
    assert_eq!(d.manifest.input.kind, "text");
    assert_eq!(d.requests(), pingce::engine::requests::rolling_windows(&ids, 0, 256, 1).len());
    assert!(d.requests() >= 3);
    assert_eq!(d.position[0], 1, "the first window is conditioned on the prefix token");
    let (o, j) = compare(&outs[0], &outs[1], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(j["kld"]["max"].as_f64(), Some(0.0));
    assert_eq!(j["answer_flips"]["items"].as_u64(), Some(0));
}

/// Runs `pingce args`, expects failure with `needle` in stderr and no report on stdout.
fn fails_with<S: AsRef<std::ffi::OsStr>>(args: &[S], needle: &str) -> String {
    let o = pingce(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "expected failure, got success: {}", String::from_utf8_lossy(&o.stdout));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("PASS"), "no PASS on error");
    assert!(err.contains(needle), "error should mention {needle:?}: {err}");
    err
}

fn cmp_args<'a>(r: &'a Path, c: &'a Path, extra: &'a [&'a str]) -> Vec<&'a std::ffi::OsStr> {
    let mut v: Vec<&std::ffi::OsStr> = vec!["compare".as_ref(), r.as_os_str(), c.as_os_str()];
    v.extend(extra.iter().map(std::ffi::OsStr::new));
    v
}

#[test]
fn bad_dumps_are_errors_naming_the_file() {
    let g = golden("tiny-llama.pingce");
    let bytes = std::fs::read(&g).unwrap();
    for (name, cut) in [("cut-data.safetensors", bytes.len() - 100), ("cut-header.safetensors", 60), ("cut-tiny.safetensors", 4)] {
        let p = tmp(name);
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let err = fails_with(&cmp_args(&g, &p, &[]), name);
        assert!(err.contains("truncated") || err.contains("not a valid safetensors"), "{err}");
    }
    let p = tmp("empty.safetensors");
    std::fs::write(&p, b"").unwrap();
    fails_with(&cmp_args(&p, &g, &[]), "empty.safetensors");
    fails_with(&cmp_args(&g, &tmp("missing.safetensors"), &[]), "missing.safetensors");
    // A model's weights are safetensors but not a logit dump.
    let w = root().join("tests/fixtures/tiny-llama/model.safetensors");
    fails_with(&cmp_args(&g, &w, &[]), "not a logit dump");
    // A dump whose tensors disagree with its manifest.
    let mut d = Dump::read(&g).unwrap();
    d.manifest.positions += 1;
    let p = tmp("bad-manifest.safetensors");
    std::fs::write(&p, d.to_bytes_unchecked().unwrap()).unwrap();
    fails_with(&cmp_args(&g, &p, &[]), "bad-manifest.safetensors");
}

#[test]
fn mismatched_models_and_token_streams_are_errors() {
    let g = golden("tiny-llama.pingce");
    fails_with(&cmp_args(&g, &golden("smollm2-q4_1.pingce"), &[]), "different models");
    // The same model files, but one token changed.
    let mut d = Dump::read(&g).unwrap();
    d.token_ids[5] = (d.token_ids[5] + 1) % 448;
    let p = tmp("token.safetensors");
    d.write(&p).unwrap();
    let err = fails_with(&cmp_args(&g, &p, &[]), "token streams differ at row 5");
    assert!(err.contains("request 2 position 12"), "{err}");
    // One row fewer (the last request loses its last token).
    let mut d = Dump::read(&g).unwrap();
    let n = d.len() - 1;
    assert_eq!(d.request_index[n], d.request_index[n - 1]);
    d.target_logprob.truncate(n);
    d.topk_ids.truncate(n * d.k);
    d.topk_logprobs.truncate(n * d.k);
    d.tail_logmass.truncate(n);
    d.token_ids.truncate(n);
    d.request_index.truncate(n);
    d.position.truncate(n);
    d.is_argmax.truncate(n);
    d.manifest.positions = n;
    let p = tmp("short.safetensors");
    d.write(&p).unwrap();
    fails_with(&cmp_args(&g, &p, &[]), "token streams differ in length");
    // Another context for request 2.
    let mut d = Dump::read(&g).unwrap();
    d.context_sha256.as_mut().unwrap()[1][0] ^= 1;
    let p = tmp("context.safetensors");
    d.write(&p).unwrap();
    fails_with(&cmp_args(&g, &p, &[]), "contexts differ at request 2");
    // Different vocabularies even when models are allowed to differ.
    fails_with(&cmp_args(&g, &golden("smollm2-q4_1.pingce"), &["--allow-different-models"]), "different vocabularies");
}

#[test]
fn bad_thresholds_are_errors() {
    let g = golden("tiny-llama.pingce");
    let t = tmp("t-syntax.json");
    std::fs::write(&t, "{\"max_mean_kld\": }").unwrap();
    fails_with(&cmp_args(&g, &g, &["--thresholds", t.to_str().unwrap()]), "t-syntax.json: not a valid thresholds file");
    let t = tmp("t-key.json");
    std::fs::write(&t, "{\"max_kld_mean\": 1}").unwrap();
    fails_with(&cmp_args(&g, &g, &["--thresholds", t.to_str().unwrap()]), "unknown field");
    let t = tmp("t-type.json");
    std::fs::write(&t, "{\"max_flips\": \"none\"}").unwrap();
    fails_with(&cmp_args(&g, &g, &["--thresholds", t.to_str().unwrap()]), "t-type.json");
    let t = tmp("t-neg.json");
    std::fs::write(&t, "{\"max_mean_kld\": -1}").unwrap();
    fails_with(&cmp_args(&g, &g, &["--thresholds", t.to_str().unwrap()]), "max_mean_kld");
    fails_with(&cmp_args(&g, &g, &["--thresholds", tmp("t-missing.json").to_str().unwrap()]), "t-missing.json");
    fails_with(&cmp_args(&g, &g, &["--min-top1-agreement", "1.5"]), "min_top1_agreement");
    fails_with(&cmp_args(&g, &g, &["--max-kld", "NaN"]), "max_mean_kld");
    fails_with(&cmp_args(&g, &g, &["--max-flips", "-1"]), "-1");
}

#[test]
fn perturbed_candidates_fail() {
    let g = golden("tiny-llama.pingce");
    // Log-probs shifted by an uneven amount per rank: KLD and |Δlp| both large.
    let mut d = Dump::read(&g).unwrap();
    for i in 0..d.len() {
        d.target_logprob[i] -= 0.2;
        for j in 0..d.k {
            d.topk_logprobs[i * d.k + j] -= 0.1 * (j % 3) as f32;
        }
    }
    d.compute_tails();
    let p = tmp("perturbed.safetensors");
    d.write(&p).unwrap();
    let (o, j) = compare(&g, &p, &[]);
    assert!(!o.status.success(), "a perturbed candidate must FAIL");
    assert_eq!(j["pass"], false);
    assert!(stderr(&o).contains("FAIL"), "{}", stderr(&o));
    let failed: Vec<&str> = j["checks"].as_array().unwrap().iter().filter(|c| c["pass"] == false).map(|c| c["metric"].as_str().unwrap()).collect();
    assert!(failed.contains(&"max |Δ target log-prob|") && failed.contains(&"mean KLD"), "{failed:?}");
    // The text report ends with the verdict.
    let o = pingce(&cmp_args(&g, &p, &[]));
    assert!(!o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("FAIL") && text.contains("mean KLD"), "{text}");
    // Loose enough thresholds from a file let it pass; a flag overrides the file.
    let t = tmp("loose.json");
    std::fs::write(&t, r#"{"max_mean_kld": 10, "max_abs_dlogprob": 1, "min_top1_agreement": 0}"#).unwrap();
    let (o, _) = compare(&g, &p, &["--thresholds", t.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, _) = compare(&g, &p, &["--thresholds", t.to_str().unwrap(), "--max-abs-dlogprob", "0.01"]);
    assert!(!o.status.success());

    // Argmax swapped at every position: top-1 agreement 0.
    let mut d = Dump::read(&g).unwrap();
    for i in 0..d.len() {
        d.topk_ids.swap(i * d.k, i * d.k + 1);
    }
    let p = tmp("top1.safetensors");
    d.write(&p).unwrap();
    let (o, j) = compare(&g, &p, &["--max-kld", "100"]);
    assert!(!o.status.success());
    assert_eq!(j["top1_agreement"].as_f64(), Some(0.0));

    // " Berlin" made likelier than " Paris": one answer flip.
    let mut d = Dump::read(&g).unwrap();
    let rows_of = |d: &Dump, r: i32| (0..d.len()).filter(|&i| d.request_index[i] == r).collect::<Vec<_>>();
    let paris: f64 = rows_of(&d, 0).iter().map(|&i| d.target_logprob[i] as f64).sum();
    let berlin = rows_of(&d, 1);
    for &i in &berlin {
        d.target_logprob[i] = (paris as f32 + 1.0) / berlin.len() as f32;
    }
    let p = tmp("flip.safetensors");
    d.write(&p).unwrap();
    let (o, j) = compare(&g, &p, &["--max-abs-dlogprob", "1000"]);
    assert!(!o.status.success());
    assert_eq!(j["answer_flips"]["flips"].as_u64(), Some(1));
    assert_eq!(j["answer_flips"]["flipped_items"][0].as_u64(), Some(1));
    assert!(j["answer_flips"]["mcnemar"].is_null());
    assert!(j["answer_flips"]["note"].as_str().unwrap().contains("no gold labels"));
    let (o, _) = compare(&g, &p, &["--max-abs-dlogprob", "1000", "--max-flips", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // NaN in the candidate never passes.
    let mut d = Dump::read(&g).unwrap();
    d.topk_logprobs[3] = f32::NAN;
    let p = tmp("nan.safetensors");
    d.write(&p).unwrap();
    let (o, j) = compare(&g, &p, &["--max-kld", "1e30", "--max-abs-dlogprob", "1e30"]);
    assert!(!o.status.success());
    assert_eq!(j["pass"], false);
}

#[test]
fn failed_runs_leave_no_dump() {
    let out = tmp("never.safetensors");
    fails_with(&["logits", "--model", "tests/fixtures/does-not-exist", "--requests", REQUESTS, "--out", out.to_str().unwrap()], "does-not-exist");
    assert!(!out.exists());
    fails_with(&["logits", "--model", "tests/fixtures/tiny-llama", "--requests", REQUESTS, "--top-k", "33", "--out", out.to_str().unwrap()], "--top-k 33");
    fails_with(&["logits", "--model", "tests/fixtures/tiny-llama", "--out", out.to_str().unwrap()], "--requests");
    let bad = tmp("bad.jsonl");
    std::fs::write(&bad, "{\"context\": \"a\", \"continuation\": \"b\"}\n{\"context\": 1}\n").unwrap();
    fails_with(&["logits", "--model", "tests/fixtures/tiny-llama", "--requests", bad.to_str().unwrap(), "--out", out.to_str().unwrap()], "bad.jsonl:2");
    assert!(!out.exists());
    let d = Dump::read(&golden("tiny-llama.pingce")).unwrap();
    let err = d.write(Path::new("/nonexistent-dir/x.safetensors")).unwrap_err();
    assert!(format!("{err:#}").contains("nonexistent-dir"));
}

// ---------------------------------------------------------------- metrics on hand-made dumps

fn manifest(vocab: usize, k: usize, n: usize, r: usize) -> Manifest {
    Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        producer: "test".into(),
        pingce_version: None,
        model: ModelInfo { path: "m".into(), files: vec![], vocab_size: vocab, max_length: 16 },
        tokenizer: Value::Null,
        input: InputInfo { kind: "requests".into(), path: "r".into(), sha256: String::new() },
        adapter: "none".into(),
        top_k: k,
        positions: n,
        requests: r,
        extra: Default::default(),
    }
}

/// One position per request; rows given as (ids, probabilities).
fn dump(vocab: usize, rows: &[(&[i32], &[f64])]) -> Dump {
    let k = rows[0].0.len();
    let n = rows.len();
    let mut d = Dump {
        full_row_index: None,
        full_logprobs: None,
        manifest: manifest(vocab, k, n, n),
        k,
        target_logprob: rows.iter().map(|r| r.1[0].ln() as f32).collect(),
        topk_ids: rows.iter().flat_map(|r| r.0.to_vec()).collect(),
        topk_logprobs: rows.iter().flat_map(|r| r.1.iter().map(|p| p.ln() as f32)).collect(),
        tail_logmass: vec![],
        token_ids: rows.iter().map(|r| r.0[0]).collect(),
        request_index: (0..n as i32).collect(),
        position: vec![1; n],
        is_argmax: vec![1; n],
        context_sha256: None,
        gold: None,
    };
    d.compute_tails();
    d
}

#[test]
fn tail_mass_and_statistics() {
    assert_eq!(tail_logmass(&[]), 0.0);
    assert!((tail_logmass(&[0.5f32.ln(), 0.25f32.ln()]) - 0.25f64.ln()).abs() < 1e-7);
    assert_eq!(tail_logmass(&[0.0]), f64::NEG_INFINITY);
    assert_eq!(tail_logmass(&[0.6f32.ln(), 0.6f32.ln()]), f64::NEG_INFINITY, "a sum above 1 gives -inf");
    // Almost nothing in the top-k: ln(1 - e^-30) ≈ -e^-30, accurate to the last digits.
    let t = tail_logmass(&[-30.0]);
    assert!((t / -(-30f64).exp() - 1.0).abs() < 1e-9, "{t}");
    // Almost everything in the top-k: no cancellation to 0 or -inf.
    let t = tail_logmass(&[-1e-6]);
    assert!((t - (1e-6f64 - 0.5e-12).ln()).abs() < 1e-3, "{t}");
    assert_eq!(log1mexp(0.0), f64::NEG_INFINITY);
    assert!((log1mexp(-2.0f64.ln()) - 0.5f64.ln()).abs() < 1e-15);

    assert_eq!(mcnemar_exact(0, 0), 1.0);
    assert_eq!(mcnemar_exact(3, 3), 1.0);
    assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-15);
    assert!((mcnemar_exact(4, 1) - 0.375).abs() < 1e-15);
    assert!((mcnemar_exact(0, 10) - 2.0 / 1024.0).abs() < 1e-15);

    let v: Vec<f64> = (1..=1000).map(|x| x as f64).collect();
    assert_eq!(percentile(&v, 90.0), 900.0);
    assert_eq!(percentile(&v, 99.9), 999.0);
    assert_eq!(percentile(&v, 100.0), 1000.0);
    assert_eq!(median(&v), 500.5);
    assert_eq!(median(&[3.0]), 3.0);
}

#[test]
fn kl_estimate_by_hand() {
    let (a, b, c) = (0.5f64, 0.3f64, 0.2f64);
    let r = dump(6, &[(&[0, 1], &[a, b])]);
    let close = |x: f64, y: f64| (x - y).abs() < 1e-6 * (1.0 + y.abs());
    // Same ids: KL over {0, 1, rest}.
    let q = dump(6, &[(&[0, 1], &[0.4, 0.4])]);
    let want = a * (a / 0.4).ln() + b * (b / 0.4).ln() + c * (c / 0.2).ln();
    let (got, missing) = kld(&r, &q, 0, 6, MissingEstimate::TailAverage);
    assert!(close(got, want) && missing == 0, "{got} vs {want}");
    assert_eq!(kld(&r, &r, 0, 6, MissingEstimate::TailAverage).0, 0.0);
    // Id 1 not in the candidate's top-k; its tail 0.25 spread over 4 ids.
    let q = dump(6, &[(&[0, 2], &[0.4, 0.35])]);
    let q1 = 0.25 / 4.0;
    let want = a * (a / 0.4).ln() + b * (b / q1).ln() + c * (c / (1.0 - 0.4 - q1)).ln();
    let (got, missing) = kld(&r, &q, 0, 6, MissingEstimate::TailAverage);
    assert!(close(got, want) && missing == 1, "{got} vs {want}");
    // Merged into the tail bucket instead: KL over {0, rest}, smaller.
    let want_lb = a * (a / 0.4).ln() + 0.5 * (0.5f64 / 0.6).ln();
    let (lb, _) = kld(&r, &q, 0, 6, MissingEstimate::TailBucket);
    assert!(close(lb, want_lb) && lb < got, "{lb} vs {want_lb}");
    // Everything in the top-k (tail -inf on both sides): plain KL, finite.
    let r = dump(2, &[(&[0, 1], &[0.75, 0.25])]);
    let q = dump(2, &[(&[1, 0], &[0.5, 0.5])]);
    assert!(r.tail_logmass[0] < -15.0, "f32 log-probs summing to 1 leave (almost) no tail: {}", r.tail_logmass[0]);
    let want = 0.75 * (1.5f64).ln() + 0.25 * (0.5f64).ln();
    let (got, _) = kld(&r, &q, 0, 2, MissingEstimate::TailAverage);
    assert!(close(got, want), "{got} vs {want}");
}

#[test]
fn mcnemar_with_gold_labels() {
    // Three two-choice items (requests 1-2, 3-4, 5-6); gold is the first choice of each.
    let rows: Vec<(&[i32], &[f64])> = vec![(&[0, 1], &[0.5, 0.3]); 6];
    let mut r = dump(8, &rows);
    let h = |x: u8| [x; 32];
    r.context_sha256 = Some(vec![h(1), h(1), h(2), h(2), h(3), h(3)]);
    r.gold = Some(vec![1, 0, 1, 0, 1, 0]);
    // Reference picks the first choice everywhere (sums equal: first among equals)...
    r.target_logprob = vec![-1.0, -2.0, -1.0, -2.0, -1.0, -2.0];
    let mut c = r.clone();
    // ...the candidate flips items 2 and 3 to the wrong answer.
    c.target_logprob = vec![-1.0, -2.0, -3.0, -2.0, -3.0, -2.0];
    let (rp, cp) = (tmp("gold-ref.safetensors"), tmp("gold-cand.safetensors"));
    r.write(&rp).unwrap();
    c.write(&cp).unwrap();
    let (o, j) = compare(&rp, &cp, &["--max-abs-dlogprob", "10"]);
    assert!(!o.status.success());
    let f = &j["answer_flips"];
    assert_eq!(f["items"].as_u64(), Some(3));
    assert_eq!(f["flips"].as_u64(), Some(2));
    assert_eq!(f["flipped_items"], serde_json::json!([3, 5]));
    let m = &f["mcnemar"];
    assert_eq!((m["b"].as_u64(), m["c"].as_u64()), (Some(2), Some(0)));
    assert_eq!((m["reference_correct"].as_u64(), m["candidate_correct"].as_u64()), (Some(3), Some(1)));
    assert!((m["p_value"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    // The round trip keeps the optional tensors.
    let back = Dump::read(&rp).unwrap();
    assert_eq!(back.gold, r.gold);
    assert_eq!(back.context_sha256, r.context_sha256);
}

#[test]
fn full_rows_give_exact_kld() {
    let base = std::env::temp_dir().join(format!("pingce-full-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let path = base.join("full.safetensors");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pingce"))
        .args(["logits", "--model", "tests/fixtures/tiny-llama", "--requests", "evals/samples/requests.jsonl", "--full-rows", "5", "--out", path.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = Dump::read(&path).unwrap();
    assert_eq!(r.full_row_index.as_deref(), Some(&[0, 1, 2, 3, 4][..]));
    let row0 = r.full_row(0).unwrap().to_vec();
    // The stored row agrees with the stored target log-prob and top-k.
    assert_eq!(row0[r.token_ids[0] as usize], r.target_logprob[0]);
    assert_eq!(row0[r.topk_ids_row(0)[0] as usize], r.topk_logprobs_row(0)[0]);
    // A candidate whose row 0 is a different distribution: the report's KL there is the exact sum.
    let mut c = Dump::read(&path).unwrap();
    let v = row0.len();
    let shifted: Vec<f64> = row0.iter().enumerate().map(|(i, &x)| x as f64 + if i % 3 == 0 { 0.7 } else { 0.0 }).collect();
    let mx = shifted.iter().cloned().fold(f64::MIN, f64::max);
    let lse = mx + shifted.iter().map(|x| (x - mx).exp()).sum::<f64>().ln();
    let cand: Vec<f32> = shifted.iter().map(|x| (x - lse) as f32).collect();
    c.full_logprobs.as_mut().unwrap()[..v].copy_from_slice(&cand);
    let want: f64 = row0.iter().zip(&cand).map(|(&a, &b)| (a as f64).exp() * (a as f64 - b as f64)).sum();
    let rep = pingce::conformance::compare::compare(&path, &r, &path, &c, &Default::default(), MissingEstimate::TailAverage);
    assert!((rep.kld.max - want).abs() < 1e-9 && want > 1e-3, "max KLD {} vs exact {want}", rep.kld.max);
    assert!(rep.notes.iter().any(|n| n.contains("exact")));
}
