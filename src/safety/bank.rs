//! Safety question banks in JSONL, CSV/TSV (UTF-8, or GBK as Excel writes it on Chinese Windows)
//! and XLSX (first sheet), and the check of their sizes against the standard's minimums.
//!
//! Columns (a header row; English or Chinese names): `id` (编号), `question` (题目/问题: text,
//! or a dialogue history as a JSON list of `{"role", "content"}` ending with a user turn), `risk`
//! (风险: `A.1.1` … `A.5.2`; required except for must-answer), `kind` (类型: generated-content,
//! should-refuse, must-answer, or 生成内容/应拒答/非拒答), `topic` (主题; required for
//! must-answer) and `notes` (备注/参考: reference notes for reviewers). In JSONL the same keys,
//! `question` being a string or the list itself.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{group_of, risk, Kind, Minimums, MUST_ANSWER_TOPICS, RISKS};
use crate::model::chat_template::Message;

/// One question of a bank.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    /// The dialogue to answer: a history and the question as the last user turn.
    pub messages: Vec<Message>,
    pub risk: Option<String>,
    pub kind: Kind,
    pub topic: Option<String>,
    pub notes: Option<String>,
    /// `file:line` (or `file:row N` for XLSX) the item came from.
    pub source: String,
}

impl Item {
    /// The question: the last user turn.
    pub fn question(&self) -> &str {
        self.messages.last().map(|m| m.content.as_str()).unwrap_or("")
    }

    /// The stratum of draws and of per-topic figures: the topic for must-answer, else the risk code.
    pub fn stratum(&self) -> String {
        match self.kind {
            Kind::MustAnswer => self.topic.clone().or_else(|| self.risk.clone()).unwrap_or_default(),
            _ => self.risk.clone().unwrap_or_default(),
        }
    }
}

/// A row that could not be read as an item.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Malformed {
    pub file: String,
    /// "line 12", or "row 12" for XLSX.
    pub place: String,
    pub reason: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.place, self.reason)
    }
}

/// Items read from bank files, and the rows that were malformed.
#[derive(Debug, Default)]
pub struct Bank {
    pub items: Vec<Item>,
    pub malformed: Vec<Malformed>,
    /// (file, sha256) of each file read.
    pub files: Vec<(String, String)>,
}

const ALIASES: [(&str, &[&str]); 6] = [
    ("id", &["id", "编号", "序号", "题号"]),
    ("question", &["question", "题目", "问题", "测试题", "prompt"]),
    ("risk", &["risk", "risk_code", "风险", "风险类别", "风险编号"]),
    ("kind", &["kind", "类型", "题库", "题库类型"]),
    ("topic", &["topic", "主题", "话题"]),
    ("notes", &["notes", "note", "reference", "备注", "参考", "参考答案"]),
];

fn canonical(header: &str) -> Option<&'static str> {
    let h = header.trim().trim_start_matches('\u{feff}').to_lowercase();
    ALIASES.iter().find(|(_, names)| names.contains(&h.as_str())).map(|(k, _)| *k)
}

/// Reads bank files (by extension: `.jsonl`, `.csv`, `.tsv`, `.xlsx`/`.xls`/`.ods`). Malformed
/// rows and ids seen twice are collected, never fatal; an unreadable file is an error.
pub fn load(paths: &[PathBuf]) -> Result<Bank> {
    let mut bank = Bank::default();
    let mut seen: HashSet<String> = HashSet::new();
    for p in paths {
        let file = p.display().to_string();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let rows: Vec<(String, Result<Row, String>)> = match ext.as_str() {
            "jsonl" | "json" => jsonl_rows(&std::fs::read(p).with_context(|| format!("reading {file}"))?),
            "csv" | "tsv" | "txt" => csv_rows(&std::fs::read(p).with_context(|| format!("reading {file}"))?, if ext == "tsv" { b'\t' } else { b',' })?,
            "xlsx" | "xlsm" | "xls" | "ods" => xlsx_rows(p)?,
            _ => bail!("{file}: unknown bank format (expected .jsonl, .csv, .tsv or .xlsx)"),
        };
        let bytes = std::fs::read(p).with_context(|| format!("reading {file}"))?;
        bank.files.push((file.clone(), crate::digest::sha256_hex(&bytes)));
        for (place, row) in rows {
            match row.and_then(|r| to_item(r, &format!("{file}:{place}"))) {
                Ok(item) => {
                    if !seen.insert(item.id.clone()) {
                        bank.malformed.push(Malformed { file: file.clone(), place, reason: format!("id {:?} is used twice", item.id) });
                    } else {
                        bank.items.push(item);
                    }
                }
                Err(reason) => bank.malformed.push(Malformed { file: file.clone(), place, reason }),
            }
        }
    }
    Ok(bank)
}

/// A row's cells by canonical column name.
type Row = BTreeMap<&'static str, serde_json::Value>;

fn jsonl_rows(bytes: &[u8]) -> Vec<(String, Result<Row, String>)> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start_matches('\u{feff}');
        if line.trim().is_empty() {
            continue;
        }
        let row = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(m)) => Ok(m.into_iter().filter_map(|(k, v)| canonical(&k).map(|c| (c, v))).collect()),
            Ok(_) => Err("not a JSON object".to_string()),
            Err(e) => Err(format!("not JSON: {e}")),
        };
        out.push((format!("line {}", i + 1), row));
    }
    out
}

/// UTF-8 (BOM allowed), else GBK when the bytes are valid GBK.
pub(super) fn decode(bytes: &[u8]) -> Result<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(s.to_string());
    }
    match encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(bytes) {
        Some(s) => Ok(s.into_owned()),
        None => bail!("neither UTF-8 nor GBK text"),
    }
}

fn csv_rows(bytes: &[u8], delimiter: u8) -> Result<Vec<(String, Result<Row, String>)>> {
    let text = decode(bytes)?;
    let mut r = csv::ReaderBuilder::new().delimiter(delimiter).flexible(true).quoting(delimiter == b',').from_reader(text.as_bytes());
    let headers: Vec<Option<&'static str>> = r.headers()?.iter().map(canonical).collect();
    let mut out = vec![];
    for rec in r.records() {
        match rec {
            Ok(rec) => {
                let line = rec.position().map(|p| p.line()).unwrap_or(0);
                let row = headers.iter().zip(rec.iter()).filter_map(|(h, c)| h.map(|h| (h, serde_json::Value::String(c.to_string())))).collect();
                out.push((format!("line {line}"), Ok(row)));
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                out.push((format!("line {line}"), Err(format!("unreadable CSV: {e}"))));
            }
        }
    }
    Ok(out)
}

pub(super) fn cell_text(d: &calamine::Data) -> String {
    use calamine::Data;
    match d {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// The first sheet: a header row, then one item per row; places are Excel row numbers.
fn xlsx_rows(p: &Path) -> Result<Vec<(String, Result<Row, String>)>> {
    use calamine::Reader;
    let mut wb = calamine::open_workbook_auto(p).with_context(|| format!("opening {}", p.display()))?;
    let range = wb.worksheet_range_at(0).with_context(|| format!("{}: no sheet", p.display()))?.with_context(|| format!("reading {}", p.display()))?;
    let first_row = range.start().map(|(r, _)| r as usize).unwrap_or(0);
    let mut rows = range.rows();
    let Some(header) = rows.next() else { return Ok(vec![]) };
    let headers: Vec<Option<&'static str>> = header.iter().map(|c| canonical(&cell_text(c))).collect();
    let mut out = vec![];
    for (i, cells) in rows.enumerate() {
        if cells.iter().all(|c| cell_text(c).trim().is_empty()) {
            continue;
        }
        let row = headers.iter().zip(cells).filter_map(|(h, c)| h.map(|h| (h, serde_json::Value::String(cell_text(c))))).collect();
        out.push((format!("row {}", first_row + i + 2), Ok(row)));
    }
    Ok(out)
}

fn text_of(row: &Row, key: &str) -> Option<String> {
    match row.get(key)? {
        serde_json::Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        serde_json::Value::Null => None,
        v => Some(v.to_string()),
    }
}

/// The dialogue of a question cell: a JSON list of turns, or plain text as one user turn.
fn messages_of(v: &serde_json::Value) -> Result<Vec<Message>, String> {
    let list = match v {
        serde_json::Value::Array(_) => v.clone(),
        serde_json::Value::String(s) if s.trim_start().starts_with('[') => {
            serde_json::from_str(s.trim()).map_err(|e| format!("question looks like a dialogue (JSON list) but is not valid JSON: {e}"))?
        }
        serde_json::Value::String(s) if s.trim().is_empty() => return Err("empty question".into()),
        serde_json::Value::String(s) => return Ok(vec![Message::new("user", s.trim())]),
        _ => return Err("question must be text or a list of {role, content}".into()),
    };
    let msgs: Vec<Message> = serde_json::from_value(list).map_err(|e| format!("dialogue turns must be {{\"role\", \"content\"}}: {e}"))?;
    match msgs.last() {
        None => Err("empty dialogue".into()),
        Some(m) if m.role != "user" => Err(format!("a dialogue must end with a user turn (ends with {:?})", m.role)),
        Some(m) if m.content.trim().is_empty() => Err("empty question".into()),
        _ => match msgs.iter().find(|m| !["system", "user", "assistant"].contains(&m.role.as_str())) {
            Some(m) => Err(format!("unknown role {:?} (system, user or assistant)", m.role)),
            None => Ok(msgs),
        },
    }
}

fn to_item(row: Row, source: &str) -> Result<Item, String> {
    let id = text_of(&row, "id").ok_or("no id")?;
    let messages = messages_of(row.get("question").ok_or("no question")?)?;
    let kind_text = text_of(&row, "kind").ok_or("no kind")?;
    let kind = Kind::parse(&kind_text).ok_or_else(|| format!("unknown kind {kind_text:?} (generated-content, should-refuse or must-answer)"))?;
    let risk_code = text_of(&row, "risk");
    if let Some(r) = &risk_code {
        if risk(r).is_none() {
            return Err(format!("unknown risk code {r:?} (A.1.1 … A.5.2 of Appendix A)"));
        }
    }
    let topic = text_of(&row, "topic");
    match kind {
        Kind::MustAnswer if topic.is_none() => return Err("a must-answer question needs a topic".into()),
        Kind::GeneratedContent | Kind::ShouldRefuse if risk_code.is_none() => return Err(format!("a {} question needs a risk code", kind.name())),
        Kind::ShouldRefuse if !matches!(risk_code.as_deref().map(group_of), Some("A.1" | "A.2")) => {
            return Err(format!("should-refuse questions cover A.1 and A.2 risks, not {}", risk_code.unwrap_or_default()))
        }
        _ => {}
    }
    Ok(Item { id, messages, risk: risk_code, kind, topic, notes: text_of(&row, "notes"), source: source.to_string() })
}

/// What `pingce safety check` found.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// Items per kind.
    pub totals: BTreeMap<String, usize>,
    /// Items per (kind, risk code or topic).
    pub strata: BTreeMap<String, BTreeMap<String, usize>>,
    /// What is below a minimum: "generated-content A.1.3: 12 of 50".
    pub short: Vec<String>,
    pub malformed: Vec<Malformed>,
    /// Advice that does not fail the check (recommended must-answer topics absent).
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.short.is_empty() && self.malformed.is_empty()
    }
}

/// Checks a bank against the minimums, per kind, per risk and per topic.
pub fn check(bank: &Bank, min: &Minimums) -> CheckReport {
    let mut rep = CheckReport { malformed: bank.malformed.clone(), ..Default::default() };
    for k in Kind::ALL {
        let items: Vec<&Item> = bank.items.iter().filter(|i| i.kind == k).collect();
        rep.totals.insert(k.name().into(), items.len());
        let mut strata: BTreeMap<String, usize> = BTreeMap::new();
        for i in &items {
            *strata.entry(i.stratum()).or_default() += 1;
        }
        let mut short = |what: String, have: usize, need: usize| {
            if have < need {
                rep.short.push(format!("{} {what}: {have} of {need}", k.name()));
            }
        };
        match k {
            Kind::GeneratedContent => {
                short("in all".into(), items.len(), min.generated_total);
                for r in RISKS {
                    let need = if matches!(group_of(r.code), "A.1" | "A.2") { min.generated_per_core_risk } else { min.generated_per_other_risk };
                    short(format!("{} {}", r.code, r.zh), strata.get(r.code).copied().unwrap_or(0), need);
                }
            }
            Kind::ShouldRefuse => {
                short("in all".into(), items.len(), min.refuse_total);
                for r in RISKS.iter().filter(|r| matches!(group_of(r.code), "A.1" | "A.2")) {
                    short(format!("{} {}", r.code, r.zh), strata.get(r.code).copied().unwrap_or(0), min.refuse_per_risk);
                }
            }
            Kind::MustAnswer => {
                short("in all".into(), items.len(), min.answer_total);
                for (t, &n) in &strata {
                    short(format!("topic {t}"), n, min.answer_per_topic);
                }
                let missing: Vec<&str> = MUST_ANSWER_TOPICS.iter().copied().filter(|t| !strata.contains_key(*t)).collect();
                if !missing.is_empty() {
                    rep.notes.push(format!("must-answer: topics the standard names that the bank does not use (advice only): {}", missing.join("、")));
                }
            }
        }
        rep.strata.insert(k.name().into(), strata);
    }
    rep
}

/// The check as text: totals, what is short, every malformed row.
pub fn render_check(rep: &CheckReport) -> String {
    let mut s = String::new();
    for (k, n) in &rep.totals {
        s.push_str(&format!("{k}: {n} questions in {} strata\n", rep.strata.get(k).map_or(0, |m| m.len())));
    }
    if rep.short.is_empty() {
        s.push_str("sizes: every minimum is met\n");
    } else {
        s.push_str(&format!("short ({}):\n", rep.short.len()));
        for x in &rep.short {
            s.push_str(&format!("  {x}\n"));
        }
    }
    if !rep.malformed.is_empty() {
        s.push_str(&format!("malformed rows ({}):\n", rep.malformed.len()));
        for m in &rep.malformed {
            s.push_str(&format!("  {m}\n"));
        }
    }
    for n in &rep.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}
