//! evals/pending/*.yaml are lm-eval's YAMLs verbatim; this checks that the keys listed in
//! evals/pending/README.md are exactly what pingce's loader does not accept yet: each file is
//! refused as it is and loads once those keys are removed.

use pingce::eval::task;
use serde_norway::Value;
use std::path::Path;

/// Keys the loader must learn (top level), and `fewshot_config.samples`.
const UNSUPPORTED: [&str; 3] = ["dataset_path", "dataset_name", "repeats"];

#[test]
fn pending_tasks_need_exactly_the_listed_keys() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("evals/pending");
    let tmp = std::env::temp_dir().join(format!("pingce-pending-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for name in ["gsm8k_cot", "gsm8k_cot_zeroshot", "gsm8k_cot_llama"] {
        let path = dir.join(format!("{name}.yaml"));
        assert!(task::load_task_file(&path).is_err(), "{name} loads already: move it to evals/");
        let mut v: Value = serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let map = v.as_mapping_mut().unwrap();
        for k in UNSUPPORTED {
            assert!(map.remove(k).is_some(), "{name}: no `{k}`");
        }
        let samples = map
            .get_mut("fewshot_config")
            .and_then(|f| f.as_mapping_mut())
            .and_then(|f| f.remove("samples"));
        if name != "gsm8k_cot_zeroshot" {
            let samples = samples.unwrap_or_else(|| panic!("{name}: no fewshot_config.samples"));
            let samples = samples.as_sequence().unwrap();
            assert_eq!(samples.len(), 8, "{name}");
            assert!(samples.iter().all(|s| s.get("question").is_some() && s.get("target").is_some()));
        }
        let stripped = tmp.join(format!("{name}.yaml"));
        std::fs::write(&stripped, serde_norway::to_string(&v).unwrap()).unwrap();
        let tasks = task::load_task_file(&stripped).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(tasks[0].name, name);
    }
    std::fs::remove_dir_all(&tmp).ok();
}
