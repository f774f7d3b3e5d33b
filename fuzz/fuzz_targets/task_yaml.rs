//! Task YAML loading: YAML parsing, `subtasks` expansion, schema and template checks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pingce::eval::task::load::parse_task_file;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_task_file(std::path::Path::new("fuzz.yaml"), text);
    }
});
