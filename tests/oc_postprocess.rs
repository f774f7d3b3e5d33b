//! pingce's OpenCompass post-processors against OpenCompass's own Python functions:
//! tests/fixtures/opencompass/postprocess.json, written by tools/gen_oc_postprocess.py.

use pingce::eval::postprocess::{first_capital_postprocess, last_capital_postprocess, FirstOption};
use serde_json::Value;
use std::collections::HashMap;

#[test]
fn every_row_matches_opencompass() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/opencompass/postprocess.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    assert!(rows.len() >= 100, "only {} rows", rows.len());
    let mut compiled: HashMap<(String, bool), FirstOption> = HashMap::new();
    let mut failures = Vec::new();
    for row in rows {
        let text = row["text"].as_str().unwrap();
        let expected = row["expected"].as_str().unwrap();
        let got = match row["function"].as_str().unwrap() {
            "first_capital_postprocess" => first_capital_postprocess(text),
            "last_capital_postprocess" => last_capital_postprocess(text),
            "first_option_postprocess" => {
                let (options, cushion) = (row["options"].as_str().unwrap(), row["cushion"].as_bool().unwrap());
                compiled.entry((options.to_string(), cushion)).or_insert_with(|| FirstOption::new(options, cushion).unwrap()).apply(text)
            }
            f => panic!("unknown function {f}"),
        };
        if got != expected {
            failures.push(format!("{} {text:?}: expected {expected:?}, got {got:?}", row["function"]));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows differ:\n{}", failures.len(), rows.len(), failures.join("\n"));
}
