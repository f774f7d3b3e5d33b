//! The dataset readers: the first byte picks the format, the rest is the file's text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pingce::eval::data::{parse_text, Format};

const FORMATS: [Format; 15] = [
    Format::MmluCsv,
    Format::CevalCsv,
    Format::CmmluCsv,
    Format::ArcJsonl,
    Format::HellaswagJsonl,
    Format::WinograndeJsonl,
    Format::PiqaJsonl,
    Format::BoolqJsonl,
    Format::TruthfulqaJson,
    Format::Gsm8kJsonl,
    Format::SafetybenchJson,
    Format::CvaluesJsonl,
    Format::Wikitext,
    Format::Text,
    Format::Jsonl,
];

fuzz_target!(|data: &[u8]| {
    let Some((&f, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let format = FORMATS[f as usize % FORMATS.len()];
    if let Ok(docs) = parse_text(format, std::path::Path::new("/nonexistent/fuzz.data"), text) {
        if format == Format::HellaswagJsonl {
            let _ = pingce::eval::data::ProcessDocs::Hellaswag.apply(docs);
        }
    }
});
