//! The rows of a bank file: CSV/TSV records keyed by the header row, or JSONL objects, each with
//! the line it starts on. Problems are collected, not raised, so every bad line is reported.

use serde_json::Value;

use super::decode::decode;
use super::{ChoiceColumns, Encoding, Fields};
use crate::eval::data::Format;
use crate::eval::Doc;

/// One row and the (1-based) line it starts on.
pub struct Row {
    pub line: u64,
    pub values: Doc,
}

/// A problem at a line (0: the whole file).
pub type LineProblem = (u64, String);

/// Reads every row of a file; `fields`, when given, must name columns the CSV/TSV header has.
pub fn read(format: Format, enc: Encoding, bytes: &[u8], fields: Option<&Fields>) -> (Vec<Row>, Vec<LineProblem>) {
    let (text, bad) = decode(bytes, enc);
    let name = match enc {
        Encoding::Utf8 => "UTF-8",
        Encoding::Gbk => "GBK",
    };
    let mut problems: Vec<LineProblem> = bad.into_iter().map(|l| (l, format!("undecodable text (not valid {name})"))).collect();
    let rows = match format {
        Format::Csv => delimited(&text, b',', true, fields, &mut problems),
        Format::Tsv => delimited(&text, b'\t', false, fields, &mut problems),
        _ => jsonl(&text, &mut problems),
    };
    (rows, problems)
}

fn jsonl(text: &str, problems: &mut Vec<LineProblem>) -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(values)) => rows.push(Row { line: line_no, values }),
            Ok(_) => problems.push((line_no, "not a JSON object".into())),
            Err(e) => problems.push((line_no, format!("malformed JSON: {e}"))),
        }
    }
    rows
}

/// The columns `fields` names.
fn mapped_columns(f: &Fields) -> Vec<&str> {
    let mut cols = vec![f.question.as_str(), f.answer.as_str()];
    cols.extend(f.id.as_deref());
    cols.extend(f.category.as_deref());
    match &f.choices {
        Some(ChoiceColumns::Columns(c)) => cols.extend(c.iter().map(String::as_str)),
        Some(ChoiceColumns::Column(c)) => cols.push(c),
        None => {}
    }
    cols
}

fn delimited(text: &str, delimiter: u8, quoting: bool, fields: Option<&Fields>, problems: &mut Vec<LineProblem>) -> Vec<Row> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .quoting(quoting)
        .from_reader(text.as_bytes());
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                problems.push((e.position().map_or(0, |p| p.line()), format!("malformed row: {e}")));
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| p.line());
        let Some(h) = &header else {
            let h: Vec<String> = rec.iter().map(|s| s.trim().to_string()).collect();
            for (i, name) in h.iter().enumerate() {
                if h[..i].contains(name) {
                    problems.push((line, format!("the header repeats the column `{name}`")));
                }
            }
            let missing: Vec<&str> = fields.map(mapped_columns).unwrap_or_default().into_iter().filter(|c| !h.iter().any(|x| x == c)).collect();
            if !missing.is_empty() {
                problems.push((line, format!("the header has no column {} (it has: {})", quote(&missing), h.join(", "))));
                return vec![];
            }
            header = Some(h);
            continue;
        };
        if rec.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if rec.len() > h.len() {
            problems.push((line, format!("{} cells but the header has {} columns", rec.len(), h.len())));
            continue;
        }
        let values: Doc = h.iter().zip(rec.iter()).map(|(k, v)| (k.clone(), Value::String(v.to_string()))).collect();
        rows.push(Row { line, values });
    }
    if header.is_none() {
        problems.push((0, "empty file: no header row".into()));
    }
    rows
}

fn quote(cols: &[&str]) -> String {
    cols.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
}
