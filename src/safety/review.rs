//! Manual review: an export of questions, answers and automatic labels with empty reviewer
//! columns (CSV with a UTF-8 BOM so Excel shows Chinese, TSV, or XLSX), and the import of the
//! filled-in labels (`manual.jsonl`); agreement of an automatic method with the manual labels
//! (percent agreement and Cohen's kappa).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::report::ItemLabels;

/// Reviewer columns, filled in by people: `reviewer_qualified` (generated content: yes/no,
/// 合格/不合格), `reviewer_refused` (refusal kinds: yes/no, 是/否), `reviewer_notes`.
pub const COLUMNS: [&str; 17] = [
    "doc_id",
    "id",
    "kind",
    "risk",
    "topic",
    "question",
    "answer",
    "notes",
    "keyword_hits",
    "phrase_refusal",
    "judge_safety",
    "judge_categories",
    "judge_refusal",
    "judge_raw",
    "reviewer_qualified",
    "reviewer_refused",
    "reviewer_notes",
];

fn yn(b: Option<bool>) -> String {
    match b {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => String::new(),
    }
}

/// The export's rows (a header row first).
pub fn rows(labels: &[ItemLabels]) -> Vec<Vec<String>> {
    let mut out = vec![COLUMNS.iter().map(|s| s.to_string()).collect()];
    for l in labels {
        let (js, jc, jr, raw) = match &l.judge {
            None => (String::new(), String::new(), String::new(), String::new()),
            Some(j) => (
                match j.verdict.safety {
                    Some(s) => serde_json::to_value(s).unwrap().as_str().unwrap().to_string(),
                    None if !j.verdict.parsed() => "unparsable".into(),
                    None => String::new(),
                },
                j.verdict.categories.join(", "),
                yn(j.verdict.refusal),
                j.raw.clone(),
            ),
        };
        out.push(vec![
            l.doc_id.to_string(),
            l.id.clone(),
            l.kind.name().into(),
            l.risk.clone().unwrap_or_default(),
            l.topic.clone().unwrap_or_default(),
            l.question.clone(),
            l.answer.clone(),
            l.notes.clone().unwrap_or_default(),
            l.keyword_hits.join(" | "),
            yn(Some(l.phrase_refusal)),
            js,
            jc,
            jr,
            raw,
            yn(l.manual_qualified),
            yn(l.manual_refused),
            l.manual_notes.clone().unwrap_or_default(),
        ]);
    }
    out
}

/// Writes the review sheet: `.xlsx`, `.tsv`, or CSV (anything else).
pub fn export(labels: &[ItemLabels], path: &Path) -> Result<()> {
    let rows = rows(labels);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if ext == "xlsx" {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name("review")?;
        for (r, row) in rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                ws.write_string(r as u32, c as u16, cell)?;
            }
        }
        ws.set_freeze_panes(1, 0)?;
        wb.save(path).with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    let mut w = csv::WriterBuilder::new().delimiter(if ext == "tsv" { b'\t' } else { b',' }).from_writer(vec![]);
    for row in &rows {
        let row: Vec<String> = if ext == "tsv" { row.iter().map(|c| c.replace(['\t', '\n', '\r'], " ")).collect() } else { row.clone() };
        w.write_record(&row)?;
    }
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?);
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A table's rows as (place, column → cell): CSV/TSV (UTF-8 or GBK) or the first XLSX sheet.
pub fn read_table(path: &Path) -> Result<Vec<(String, BTreeMap<String, String>)>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let mut out = vec![];
    if matches!(ext.as_str(), "xlsx" | "xlsm" | "xls" | "ods") {
        use calamine::Reader;
        let mut wb = calamine::open_workbook_auto(path).with_context(|| format!("opening {}", path.display()))?;
        let range = wb.worksheet_range_at(0).with_context(|| format!("{}: no sheet", path.display()))??;
        let first = range.start().map(|(r, _)| r as usize).unwrap_or(0);
        let mut rows = range.rows();
        let Some(h) = rows.next() else { return Ok(out) };
        let header: Vec<String> = h.iter().map(|c| super::bank::cell_text(c).trim().to_string()).collect();
        for (i, cells) in rows.enumerate() {
            let m = header.iter().cloned().zip(cells.iter().map(super::bank::cell_text)).collect();
            out.push((format!("row {}", first + i + 2), m));
        }
        return Ok(out);
    }
    let text = super::bank::decode(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?).with_context(|| path.display().to_string())?;
    let tsv = ext == "tsv";
    let mut r = csv::ReaderBuilder::new().delimiter(if tsv { b'\t' } else { b',' }).quoting(!tsv).flexible(true).from_reader(text.as_bytes());
    let header: Vec<String> = r.headers()?.iter().map(|h| h.trim().to_string()).collect();
    for rec in r.records() {
        let rec = rec.with_context(|| path.display().to_string())?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        out.push((format!("line {line}"), header.iter().cloned().zip(rec.iter().map(str::to_string)).collect()));
    }
    Ok(out)
}

/// A reviewer's yes/no cell; empty is "not labelled".
pub fn parse_label(s: &str) -> Result<Option<bool>, String> {
    match s.trim().to_lowercase().as_str() {
        "" => Ok(None),
        "yes" | "y" | "true" | "1" | "是" | "合格" | "拒答" | "pass" => Ok(Some(true)),
        "no" | "n" | "false" | "0" | "否" | "不合格" | "未拒答" | "fail" => Ok(Some(false)),
        other => Err(format!("{other:?} is not a label (yes/no, 是/否, 合格/不合格, 1/0)")),
    }
}

/// One imported manual label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manual {
    pub doc_id: u64,
    pub id: String,
    pub qualified: Option<bool>,
    pub refused: Option<bool>,
    pub notes: Option<String>,
}

/// Reads a filled-in review sheet; rows are matched by `doc_id` and must carry the same `id`.
/// Every bad cell is reported with its line (row for XLSX).
pub fn import(path: &Path, ids: &[String]) -> Result<Vec<Manual>> {
    let mut out = vec![];
    let mut errors = vec![];
    for (place, row) in read_table(path)? {
        let get = |k: &str| row.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
        let doc_id: u64 = match get("doc_id").parse() {
            Ok(d) if (d as usize) < ids.len() => d,
            _ => {
                errors.push(format!("{place}: doc_id {:?} is not an item of this run", get("doc_id")));
                continue;
            }
        };
        if get("id") != ids[doc_id as usize] {
            errors.push(format!("{place}: doc_id {doc_id} is item {:?} in this run, not {:?}", ids[doc_id as usize], get("id")));
            continue;
        }
        let q = parse_label(&get("reviewer_qualified")).map_err(|e| format!("{place}: reviewer_qualified: {e}"));
        let r = parse_label(&get("reviewer_refused")).map_err(|e| format!("{place}: reviewer_refused: {e}"));
        match (q, r) {
            (Ok(qualified), Ok(refused)) => {
                let notes = Some(get("reviewer_notes")).filter(|s| !s.is_empty());
                out.push(Manual { doc_id, id: get("id"), qualified, refused, notes })
            }
            (q, r) => errors.extend(q.err().into_iter().chain(r.err())),
        }
    }
    if !errors.is_empty() {
        bail!("{}: {} bad rows:\n  {}", path.display(), errors.len(), errors.join("\n  "));
    }
    Ok(out)
}

/// Writes `manual.jsonl` into the run folder (replacing an earlier import).
pub fn save_manual(dir: &Path, labels: &[Manual]) -> Result<()> {
    let text: String = labels.iter().map(|m| serde_json::to_string(m).map(|s| s + "\n")).collect::<Result<_, _>>()?;
    crate::eval::samples_file::write_atomic(&dir.join("manual.jsonl"), &text)
}

pub fn read_manual(dir: &Path) -> Result<BTreeMap<u64, Manual>> {
    let p = dir.join("manual.jsonl");
    let Ok(text) = std::fs::read_to_string(&p) else { return Ok(BTreeMap::new()) };
    text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| {
        let m: Manual = serde_json::from_str(l).with_context(|| format!("{}: line {}", p.display(), i + 1))?;
        Ok((m.doc_id, m))
    }).collect()
}

/// Agreement of two binary labelings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Agreement {
    pub n: usize,
    pub agree: usize,
    pub percent: f64,
    /// None when chance agreement is 1 (both raters constant and equal).
    pub kappa: Option<f64>,
    /// Counts: [a yes & b yes, a yes & b no, a no & b yes, a no & b no].
    pub table: [usize; 4],
}

/// Percent agreement and Cohen's kappa of paired binary labels.
pub fn agreement(pairs: &[(bool, bool)]) -> Agreement {
    let n = pairs.len();
    let mut t = [0usize; 4];
    for &(a, b) in pairs {
        t[match (a, b) {
            (true, true) => 0,
            (true, false) => 1,
            (false, true) => 2,
            (false, false) => 3,
        }] += 1;
    }
    let agree = t[0] + t[3];
    if n == 0 {
        return Agreement { n, agree, percent: f64::NAN, kappa: None, table: t };
    }
    let nf = n as f64;
    let po = agree as f64 / nf;
    let (a1, b1) = ((t[0] + t[1]) as f64 / nf, (t[0] + t[2]) as f64 / nf);
    let pe = a1 * b1 + (1.0 - a1) * (1.0 - b1);
    let kappa = if (1.0 - pe).abs() < 1e-12 { None } else { Some((po - pe) / (1.0 - pe)) };
    Agreement { n, agree, percent: po * 100.0, kappa, table: t }
}
