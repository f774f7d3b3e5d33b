//! Readers for the published dataset formats, from local files.
//!
//! Every reader normalises rows into the field names (and value types) of the Hugging Face
//! dataset that lm-evaluation-harness loads for the task, so that the task templates in `evals/`
//! are lm-eval's own:
//!
//! | format | files | document (HF dataset) |
//! | --- | --- | --- |
//! | `mmlu_csv` | headerless `question,A,B,C,D,answer` (`<subject>_<split>.csv`) | `cais/mmlu`: `{question, subject, choices: [4], answer: 0..3}` |
//! | `ceval_csv` | header `id,question,A,B,C,D,answer,explanation` | `ceval/ceval-exam`: same columns, `id` an int |
//! | `cmmlu_csv` | header `,Question,A,B,C,D,Answer` | `haonan-li/cmmlu`: `{Question, A, B, C, D, Answer}` |
//! | `arc_jsonl` | `{id, question: {stem, choices: [{text, label}]}, answerKey}` | `allenai/ai2_arc`: `{id, question, choices: {text, label}, answerKey}` |
//! | `hellaswag_jsonl` | `{ind, activity_label, ctx, endings, label}` (+ `ctx_a`, `ctx_b` if present) | `Rowan/hellaswag`: adds `ctx_a`, `ctx_b`; `label` a string |
//! | `winogrande_jsonl` | `{qID, sentence, option1, option2, answer}` | `allenai/winogrande`: `{sentence, option1, option2, answer}` |
//! | `piqa_jsonl` | `X.jsonl` `{goal, sol1, sol2}` + `X-labels.lst` | `baber/piqa`: `{goal, sol1, sol2, label}` |
//! | `boolq_jsonl` | re-export `{query: "Passage: …\nQuestion: …?", choices: ["no","yes"], gold}`, or `{question, passage, answer: bool}` / `{question, passage, label}` | `super_glue/boolq`: `{question, passage, idx, label}` |
//! | `truthfulqa_json` | JSON list `{question, mc1_targets: {text: 0/1}, mc2_targets}` (key order kept) | `truthful_qa/multiple_choice`: `{question, mc1_targets: {choices, labels}, mc2_targets}` |
//! | `safetybench_json` | `test_<set>.json`: JSON list `{id, question, options: [2..4], category}` + `test_answers_<set>.json` `{"<id>": {category, answer}}` beside it; `dev_<lang>.json`: `{<category>: [{question, options, answer}]}` | `thu-coai/SafetyBench`: `{id, category, question, options, answer: 0..3}` (dev items without `id`) |
//! | `cvalues_jsonl` | `{prompt, label: "回复1"/"回复2", meta_info}` | OpenCompass `CValuesDataset`: `回复1`/`回复2` → `回复A`/`回复B` in `prompt`, `label` → `A`/`B` |
//! | `gsm8k_jsonl` | `{question, answer}` | `openai/gsm8k` |
//! | `wikitext` | `wiki.<split>.tokens` / `.raw` text | `EleutherAI/wikitext_document_level`: one `{page}` per article |
//! | `text` | any text file | one `{text}` per file |
//! | `jsonl` | one JSON object per line | the objects as they are, or a question bank's `fields` |
//! | `csv`, `tsv` | a header row, then one row per document | `{column: text}`, or a question bank's `fields` |
//!
//! `jsonl`, `csv` and `tsv` are read by [`super::bank`] (encoding, field mapping, every malformed
//! row reported); [`read_file`] reads them as UTF-8 without a mapping.
//!
//! Errors name the file and line (CSV record, JSON line) or, in a JSON document, the item. Lines
//! longer than [`MAX_LINE_BYTES`] are refused while reading, before any parsing, and a whole-file
//! JSON document larger than [`MAX_JSON_FILE_BYTES`] before it is read; an empty file is an error.


use super::Doc;
use crate::pycompat::text;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A dataset file format (the `dataset.format` key of a task YAML).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    MmluCsv,
    CevalCsv,
    CmmluCsv,
    ArcJsonl,
    HellaswagJsonl,
    WinograndeJsonl,
    PiqaJsonl,
    BoolqJsonl,
    TruthfulqaJson,
    Gsm8kJsonl,
    /// SafetyBench's JSON files (see [`read_safetybench`]).
    SafetybenchJson,
    /// CValues-Responsibility-MC's JSONL (see [`cvalues_row`]).
    CvaluesJsonl,
    Wikitext,
    Text,
    Jsonl,
    /// CSV with a header row (a question bank, see [`super::bank`]).
    Csv,
    /// TSV with a header row, no quoting (a question bank, see [`super::bank`]).
    Tsv,
}

/// Expand a glob (`*`, `?` in any path component; relative to `root`) into the matching files,
/// sorted. A pattern without wildcards names one file, which need not exist (the caller reports
/// it missing).
pub fn expand_glob(root: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    let comps: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let mut current = vec![root.to_path_buf()];
    for (i, comp) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let mut next = Vec::new();
        for dir in &current {
            if !comp.contains(['*', '?']) {
                let p = dir.join(comp);
                if last || p.is_dir() {
                    next.push(p);
                }
                continue;
            }
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            for e in entries {
                let e = e.with_context(|| format!("reading directory {}", dir.display()))?;
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if wildcard_match(comp, name) {
                    let p = e.path();
                    if (last && p.is_file()) || (!last && p.is_dir()) {
                        next.push(p);
                    }
                }
            }
        }
        current = next;
    }
    current.sort();
    Ok(current)
}

/// `*` (any run) and `?` (one char) wildcard match of a whole name.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Read every file of one split (already expanded, in order) and concatenate the documents.
pub fn read_files(format: Format, files: &[PathBuf]) -> Result<Vec<Doc>> {
    let mut docs = Vec::new();
    for f in files {
        docs.extend(read_file(format, f)?);
    }
    Ok(docs)
}

/// Longest line a dataset file may have (bytes, newline excluded).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads a text file line by line, refusing a line longer than [`MAX_LINE_BYTES`] as soon as it
/// is seen (a hostile file never gets parsed, nor held whole beyond that line).
pub fn read_text(path: &Path) -> Result<String> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path).with_context(|| format!("cannot read dataset file {}", path.display()))?;
    let mut r = std::io::BufReader::new(file);
    let mut bytes = Vec::new();
    for line in 1.. {
        let start = bytes.len();
        let n = (&mut r)
            .take(MAX_LINE_BYTES as u64 + 2)
            .read_until(b'\n', &mut bytes)
            .with_context(|| format!("cannot read dataset file {}", path.display()))?;
        if n == 0 {
            break;
        }
        let body = bytes[start..].strip_suffix(b"\n").unwrap_or(&bytes[start..]);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.len() > MAX_LINE_BYTES {
            bail!("{} line {line}: longer than {MAX_LINE_BYTES} bytes (the most a dataset line may hold)", path.display());
        }
    }
    String::from_utf8(bytes).map_err(|e| anyhow!("{}: not UTF-8 text (byte {})", path.display(), e.utf8_error().valid_up_to()))
}

/// Largest whole-file JSON document (TruthfulQA, SafetyBench) a dataset file may be; SafetyBench's
/// largest published file, `test_en.json`, is 5.2 MB.
pub const MAX_JSON_FILE_BYTES: u64 = 64 << 20;

/// Refuses a file above [`MAX_JSON_FILE_BYTES`] before reading it (a JSON document is parsed whole).
fn check_json_file_size(path: &Path) -> Result<()> {
    let len = std::fs::metadata(path).with_context(|| format!("cannot read dataset file {}", path.display()))?.len();
    if len > MAX_JSON_FILE_BYTES {
        bail!("{}: {len} bytes, more than the {MAX_JSON_FILE_BYTES} a JSON dataset file may hold", path.display());
    }
    Ok(())
}

/// Read one file in `format`.
pub fn read_file(format: Format, path: &Path) -> Result<Vec<Doc>> {
    if matches!(format, Format::TruthfulqaJson | Format::SafetybenchJson) {
        check_json_file_size(path)?;
    }
    parse_text(format, path, &read_text(path)?)
}

/// Files read beside a data file to score it (they must stay inside the data folder and are
/// hashed into the run's manifest): SafetyBench's published test answers.
pub fn answer_files(format: Format, path: &Path) -> Vec<PathBuf> {
    match format {
        Format::SafetybenchJson => safetybench_answers_path(path).into_iter().filter(|p| p.exists()).collect(),
        _ => vec![],
    }
}

/// Parse a file's text in `format`; `path` names it in errors (and locates PIQA's labels).
pub fn parse_text(format: Format, path: &Path, text: &str) -> Result<Vec<Doc>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let p = path.display();
    if text.trim().is_empty() {
        bail!("{p}: the file is empty, expected {format:?} documents");
    }
    let docs = match format {
        Format::MmluCsv => read_mmlu(path, text),
        Format::CevalCsv => read_ceval(path, text),
        Format::CmmluCsv => read_cmmlu(path, text),
        Format::ArcJsonl => jsonl(path, text, arc_row),
        Format::HellaswagJsonl => jsonl(path, text, hellaswag_row),
        Format::WinograndeJsonl => jsonl(path, text, winogrande_row),
        Format::PiqaJsonl => read_piqa(path, text),
        Format::BoolqJsonl => {
            let mut i = 0;
            jsonl(path, text, |o| {
                let d = boolq_row(o, i);
                i += 1;
                d
            })
        }
        Format::TruthfulqaJson => read_truthfulqa(path, text),
        Format::Gsm8kJsonl => jsonl(path, text, gsm8k_row),
        Format::SafetybenchJson => read_safetybench(path, text),
        Format::CvaluesJsonl => jsonl(path, text, cvalues_row),
        Format::Wikitext => Ok(wikitext_pages(text)
            .into_iter()
            .map(|page| obj(json!({ "page": page })))
            .collect()),
        Format::Text => Ok(vec![obj(json!({ "text": text }))]),
        Format::Jsonl | Format::Csv | Format::Tsv => {
            let d = crate::eval::task::DatasetConfig {
                format,
                files: Default::default(),
                options: Default::default(),
                encoding: Default::default(),
                fields: None,
                category: None,
            };
            super::bank::read_docs(&d, &[path.to_path_buf()])
        }
    }
    .map_err(|e| anyhow!("{p}: {e:#}"))?;
    if docs.is_empty() {
        bail!("{p}: no documents in the file, expected {format:?} documents");
    }
    Ok(docs)
}

fn obj(v: Value) -> Doc {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("obj() takes a JSON object"),
    }
}

/// One JSON object per non-empty line; `f` normalises it. Errors carry `line N`.
fn jsonl(path: &Path, text: &str, mut f: impl FnMut(Doc) -> Result<Doc>) -> Result<Vec<Doc>> {
    let _ = path;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| anyhow!("line {}: malformed JSON: {e}", i + 1))?;
        let Value::Object(o) = v else {
            bail!("line {}: expected a JSON object", i + 1);
        };
        out.push(f(o).map_err(|e| anyhow!("line {}: {e:#}", i + 1))?);
    }
    Ok(out)
}

fn get_str(o: &Doc, key: &str) -> Result<String> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => bail!("field `{key}` is not a string: {v}"),
        None => bail!("missing field `{key}`"),
    }
}

const LETTERS: [&str; 4] = ["A", "B", "C", "D"];

fn letter_index(answer: &str) -> Result<usize> {
    LETTERS
        .iter()
        .position(|l| *l == answer.trim())
        .ok_or_else(|| anyhow!("answer {answer:?} is not one of the choices A, B, C, D"))
}

/// CSV records with their line numbers. `header`: the expected header row, if any.
fn csv_records(text: &str, header: Option<&[&str]>, ncols: usize) -> Result<Vec<(u64, Vec<String>)>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut first = true;
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            anyhow!("line {line}: malformed CSV: {e}")
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        let fields: Vec<String> = rec.iter().map(str::to_string).collect();
        if first {
            first = false;
            if let Some(h) = header {
                let got: Vec<&str> = fields.iter().map(|s| s.trim()).collect();
                if got != h {
                    bail!("line {line}: expected the header `{}`, found `{}`", h.join(","), fields.join(","));
                }
                continue;
            }
        }
        if fields.len() == 1 && fields[0].is_empty() {
            continue;
        }
        if fields.len() != ncols {
            bail!(
                "line {line}: CSV row has {} columns, expected {ncols}",
                fields.len()
            );
        }
        out.push((line, fields));
    }
    Ok(out)
}

/// `<subject>_<split>.csv` → `<subject>` (the split suffix is `dev`, `val` or `test`).
pub fn mmlu_subject(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    for suf in ["_dev", "_val", "_test", "_validation"] {
        if let Some(s) = stem.strip_suffix(suf) {
            return s.to_string();
        }
    }
    stem.to_string()
}

fn read_mmlu(path: &Path, text: &str) -> Result<Vec<Doc>> {
    let subject = mmlu_subject(path);
    csv_records(text, None, 6)?
        .into_iter()
        .map(|(line, f)| {
            let answer = letter_index(&f[5]).map_err(|e| anyhow!("line {line}: {e}"))?;
            Ok(obj(json!({
                "question": f[0],
                "subject": subject,
                "choices": [f[1], f[2], f[3], f[4]],
                "answer": answer,
            })))
        })
        .collect()
}

/// C-Eval's published CSVs: `dev` has `id,question,A,B,C,D,answer,explanation`, `val` has no
/// explanation column and `test` has no answers either. Missing columns are absent from the doc.
fn read_ceval(_path: &Path, text: &str) -> Result<Vec<Doc>> {
    const COLS: [&str; 8] = ["id", "question", "A", "B", "C", "D", "answer", "explanation"];
    let first = text.lines().next().unwrap_or_default();
    let header: Vec<&str> = first.trim_start_matches('\u{feff}').split(',').map(str::trim).collect();
    let ncols = match header.len() {
        n @ 6..=8 if header[..] == COLS[..n] => n,
        _ => bail!("line 1: expected the header `{}` (C-Eval val: without explanation; test: without answer), found `{first}`", COLS.join(",")),
    };
    csv_records(text.trim_start_matches('\u{feff}'), Some(&COLS[..ncols]), ncols)?
        .into_iter()
        .map(|(line, f)| {
            if ncols > 6 {
                letter_index(&f[6]).map_err(|e| anyhow!("line {line}: {e}"))?;
            }
            let id: Value = f[0]
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| anyhow!("line {line}: id {:?} is not an integer", f[0]))?;
            let mut d = obj(json!({"id": id, "question": f[1], "A": f[2], "B": f[3], "C": f[4], "D": f[5]}));
            for (k, v) in COLS[6..ncols].iter().zip(&f[6..]) {
                d.insert(k.to_string(), json!(v));
            }
            Ok(d)
        })
        .collect()
}

fn read_cmmlu(_path: &Path, text: &str) -> Result<Vec<Doc>> {
    let header = ["", "Question", "A", "B", "C", "D", "Answer"];
    csv_records(text, Some(&header), 7)?
        .into_iter()
        .map(|(line, f)| {
            letter_index(&f[6]).map_err(|e| anyhow!("line {line}: {e}"))?;
            Ok(obj(json!({
                "Question": f[1], "A": f[2], "B": f[3], "C": f[4], "D": f[5], "Answer": f[6],
            })))
        })
        .collect()
}

fn arc_row(o: Doc) -> Result<Doc> {
    let id = get_str(&o, "id")?;
    let answer_key = get_str(&o, "answerKey")?;
    let q = o
        .get("question")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow!("field `question` is not an object {{stem, choices}}"))?;
    let stem = get_str(q, "stem")?;
    let choices = q
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("field `question.choices` is not a list"))?;
    let (mut text, mut label) = (Vec::new(), Vec::new());
    for c in choices {
        let c = c.as_object().ok_or_else(|| anyhow!("a choice is not an object {{text, label}}"))?;
        text.push(get_str(c, "text")?);
        label.push(get_str(c, "label")?);
    }
    if !label.contains(&answer_key) {
        bail!("answerKey {answer_key:?} is not one of the choice labels {label:?}");
    }
    Ok(obj(json!({
        "id": id, "question": stem, "choices": {"text": text, "label": label}, "answerKey": answer_key,
    })))
}

/// Split a HellaSwag `ctx` back into `ctx_a` and `ctx_b` when the file lacks them.
///
/// In the HF dataset `ctx = ctx_a + " " + ctx_b` when `ctx_b` is non-empty, and `ctx_b` is the
/// lowercased start of the last sentence (ActivityNet items); WikiHow items mostly have an empty
/// `ctx_b`. lm-eval's preprocessing capitalises `ctx_b`, so the split matters. Heuristic: `ctx_b`
/// is the text after the last `". "` when it starts with a lowercase letter, else empty. Exact
/// whenever the file carries `ctx_a`/`ctx_b`.
pub fn hellaswag_split_ctx(ctx: &str) -> (String, String) {
    if let Some(i) = ctx.rfind(". ") {
        let tail = &ctx[i + 2..];
        if tail.chars().next().is_some_and(|c| c.is_lowercase()) {
            return (ctx[..i + 1].to_string(), tail.to_string());
        }
    }
    (ctx.to_string(), String::new())
}

fn hellaswag_row(mut o: Doc) -> Result<Doc> {
    get_str(&o, "activity_label")?;
    let endings = o
        .get("endings")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("field `endings` is not a list"))?;
    if endings.iter().any(|e| !e.is_string()) {
        bail!("field `endings` must hold strings");
    }
    let n = endings.len();
    let label = match o.get("label") {
        Some(Value::Number(x)) => x.as_u64().map(|v| v as usize),
        Some(Value::String(s)) => s.trim().parse::<usize>().ok(),
        _ => None,
    }
    .ok_or_else(|| anyhow!("field `label` is missing or not an integer"))?;
    if label >= n {
        bail!("label {label} is outside the {n} endings");
    }
    if !(o.contains_key("ctx_a") && o.contains_key("ctx_b")) {
        let ctx = get_str(&o, "ctx")?;
        let (a, b) = hellaswag_split_ctx(&ctx);
        o.insert("ctx_a".into(), a.into());
        o.insert("ctx_b".into(), b.into());
    } else {
        let (a, b) = (get_str(&o, "ctx_a")?, get_str(&o, "ctx_b")?);
        if !o.contains_key("ctx") {
            let ctx = if b.is_empty() { a } else { format!("{a} {b}") };
            o.insert("ctx".into(), ctx.into());
        }
    }
    // The HF dataset stores the label as a string.
    o.insert("label".into(), label.to_string().into());
    Ok(o)
}

fn winogrande_row(o: Doc) -> Result<Doc> {
    let sentence = get_str(&o, "sentence")?;
    if !sentence.contains('_') {
        bail!("sentence has no `_` blank: {sentence:?}");
    }
    let answer = match o.get("answer") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => bail!("missing field `answer`"),
    };
    if answer != "1" && answer != "2" {
        bail!("answer {answer:?} is not one of the options \"1\", \"2\"");
    }
    Ok(obj(json!({
        "sentence": sentence,
        "option1": get_str(&o, "option1")?,
        "option2": get_str(&o, "option2")?,
        "answer": answer,
    })))
}

/// `X.jsonl` → `X-labels.lst` (PIQA's layout).
pub fn piqa_labels_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    path.with_file_name(format!("{stem}-labels.lst"))
}

fn read_piqa(path: &Path, text: &str) -> Result<Vec<Doc>> {
    let lpath = piqa_labels_path(path);
    let ltext = std::fs::read_to_string(&lpath)
        .with_context(|| format!("cannot read the PIQA labels file {}", lpath.display()))?;
    let labels: Vec<(usize, &str)> = ltext
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let rows = jsonl(path, text, |o| {
        Ok(obj(json!({
            "goal": get_str(&o, "goal")?, "sol1": get_str(&o, "sol1")?, "sol2": get_str(&o, "sol2")?,
        })))
    })?;
    if rows.len() != labels.len() {
        bail!(
            "{} rows but {} labels in {}",
            rows.len(),
            labels.len(),
            lpath.display()
        );
    }
    rows.into_iter()
        .zip(labels)
        .map(|(mut d, (i, l))| {
            let label: u64 = match l.trim() {
                "0" => 0,
                "1" => 1,
                other => bail!("{} line {}: label {other:?} is not 0 or 1", lpath.display(), i + 1),
            };
            d.insert("label".into(), label.into());
            Ok(d)
        })
        .collect()
}

fn boolq_row(o: Doc, idx: usize) -> Result<Doc> {
    let (question, passage, label) = if let Some(Value::String(query)) = o.get("query") {
        let choices = o.get("choices").cloned().unwrap_or(Value::Null);
        if choices != json!(["no", "yes"]) {
            bail!("choices must be [\"no\", \"yes\"], found {choices}");
        }
        let gold = o
            .get("gold")
            .and_then(Value::as_u64)
            .filter(|g| *g < 2)
            .ok_or_else(|| anyhow!("gold is not 0 or 1"))?;
        let rest = query
            .strip_prefix("Passage: ")
            .ok_or_else(|| anyhow!("query does not start with \"Passage: \""))?;
        let i = rest
            .rfind("\nQuestion: ")
            .ok_or_else(|| anyhow!("query has no \"\\nQuestion: \" line"))?;
        let q = &rest[i + "\nQuestion: ".len()..];
        let q = q.strip_suffix('?').unwrap_or(q);
        (q.to_string(), rest[..i].to_string(), gold)
    } else {
        let label = match (o.get("label"), o.get("answer")) {
            (Some(Value::Number(n)), _) => n.as_u64().filter(|g| *g < 2),
            (Some(Value::Bool(b)), _) | (None, Some(Value::Bool(b))) => Some(u64::from(*b)),
            _ => None,
        }
        .ok_or_else(|| anyhow!("no `label` (0/1) or `answer` (bool)"))?;
        (get_str(&o, "question")?, get_str(&o, "passage")?, label)
    };
    Ok(obj(json!({ "question": question, "passage": passage, "idx": idx, "label": label })))
}

/// A JSON object read as ordered `(key, value)` pairs (serde_json's map here is sorted).
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> std::result::Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = m.next_entry::<String, Value>()? {
                    v.push((k, x));
                }
                Ok(Ordered(v))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(serde::Deserialize)]
struct TqaRow {
    question: String,
    mc1_targets: Ordered,
    mc2_targets: Ordered,
}

fn tqa_targets(t: &Ordered, name: &str) -> Result<Value> {
    // Already in the HF layout {choices, labels}?
    let keys: Vec<&str> = t.0.iter().map(|(k, _)| k.as_str()).collect();
    let (choices, labels): (Vec<String>, Vec<i64>) = if keys == ["choices", "labels"] {
        let c: Vec<String> = serde_json::from_value(t.0[0].1.clone())
            .map_err(|e| anyhow!("{name}.choices: {e}"))?;
        let l: Vec<i64> = serde_json::from_value(t.0[1].1.clone())
            .map_err(|e| anyhow!("{name}.labels: {e}"))?;
        if c.len() != l.len() {
            bail!("{name}: {} choices but {} labels", c.len(), l.len());
        }
        (c, l)
    } else {
        let mut c = Vec::new();
        let mut l = Vec::new();
        for (k, v) in &t.0 {
            c.push(k.clone());
            l.push(v.as_i64().filter(|x| *x == 0 || *x == 1).ok_or_else(|| {
                anyhow!("{name}: label of {k:?} is {v}, not 0 or 1")
            })?);
        }
        (c, l)
    };
    if choices.is_empty() {
        bail!("{name} has no answers");
    }
    if !labels.contains(&1) {
        bail!("{name} has no true answer");
    }
    Ok(json!({ "choices": choices, "labels": labels }))
}

fn read_truthfulqa(_path: &Path, text: &str) -> Result<Vec<Doc>> {
    let rows: Vec<TqaRow> = serde_json::from_str(text).map_err(|e| {
        anyhow!("line {}: malformed TruthfulQA JSON (a list of {{question, mc1_targets, mc2_targets}}): {e}", e.line())
    })?;
    rows.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let mc1 = tqa_targets(&r.mc1_targets, "mc1_targets")
                .map_err(|e| anyhow!("item {}: {e}", i + 1))?;
            if mc1["labels"][0] != json!(1) {
                bail!("item {}: mc1_targets must list the true answer first", i + 1);
            }
            let mc2 = tqa_targets(&r.mc2_targets, "mc2_targets")
                .map_err(|e| anyhow!("item {}: {e}", i + 1))?;
            Ok(obj(json!({ "question": r.question, "mc1_targets": mc1, "mc2_targets": mc2 })))
        })
        .collect()
}

fn gsm8k_row(o: Doc) -> Result<Doc> {
    let answer = get_str(&o, "answer")?;
    if !answer.contains("#### ") {
        bail!("answer does not end with \"#### <number>\"");
    }
    Ok(obj(json!({ "question": get_str(&o, "question")?, "answer": answer })))
}

/// SafetyBench's seven safety categories, in the order of its scoring script (`eva.py`).
pub const SAFETYBENCH_CATEGORIES: [&str; 7] = [
    "Offensiveness",
    "Unfairness and Bias",
    "Physical Health",
    "Mental Health",
    "Illegal Activities",
    "Ethics and Morality",
    "Privacy and Property",
];

/// `test_<set>.json` → `test_answers_<set>.json` beside it, the layout of SafetyBench's
/// `opensource_data/` folder (answers published 2025-07-28); `None` for other names.
pub fn safetybench_answers_path(path: &Path) -> Option<PathBuf> {
    let stem = path.file_stem()?.to_str()?;
    let set = stem.strip_prefix("test_").filter(|s| !s.is_empty() && !s.starts_with("answers_"))?;
    Some(path.with_file_name(format!("test_answers_{set}.json")))
}

/// A JSON value for an error message, cut to 80 characters.
fn brief(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

fn safetybench_category(c: &str) -> Result<()> {
    if !SAFETYBENCH_CATEGORIES.contains(&c) {
        bail!("category {c:?} is not one of SafetyBench's: {}", SAFETYBENCH_CATEGORIES.join(", "));
    }
    Ok(())
}

/// `options` (2 to 4 strings: options A to D) and `answer` (an index into them) of one item.
fn safetybench_options(o: &Doc) -> Result<Vec<Value>> {
    match o.get("options") {
        Some(Value::Array(a)) if (2..=4).contains(&a.len()) && a.iter().all(Value::is_string) => Ok(a.clone()),
        Some(v) => bail!("field `options` must be a list of 2 to 4 strings (options A to D), found {}", brief(v)),
        None => bail!("missing field `options`"),
    }
}

fn safetybench_answer(v: Option<&Value>, n: usize) -> Result<u64> {
    match v {
        Some(a) => a
            .as_u64()
            .filter(|x| (*x as usize) < n)
            .ok_or_else(|| anyhow!("answer {} is not the index of one of the {n} options (0 = A, 1 = B, ...)", brief(a))),
        None => bail!("missing field `answer`"),
    }
}

/// SafetyBench (`thu-coai/SafetyBench`): the test questions (`test_zh.json`, `test_en.json`,
/// `test_zh_subset.json`: a JSON list of `{id, options, category, question}`) with their answers
/// read from `test_answers_<set>.json` beside them (`{"<id>": {category, answer}}`), unless
/// every item carries its own `answer`; or the few-shot examples (`dev_zh.json`, `dev_en.json`:
/// `{<category>: [{question, options, answer}]}`, five per category, in file order). Documents
/// are `{id, category, question, options, answer}` (`answer` 0..3 for A..D; dev items have no
/// `id`). Errors name the item (counted from 1, with its index and id).
fn read_safetybench(path: &Path, text: &str) -> Result<Vec<Doc>> {
    let malformed = |e: serde_json::Error| anyhow!("line {}: malformed JSON: {e}", e.line());
    match text.trim_start().chars().next() {
        Some('[') => {
            let items: Vec<Value> = serde_json::from_str(text).map_err(malformed)?;
            safetybench_test(path, items)
        }
        Some('{') => {
            let cats: Ordered = serde_json::from_str(text).map_err(malformed)?;
            safetybench_dev(cats)
        }
        _ => bail!("expected SafetyBench test questions (a JSON list) or few-shot examples (a JSON object of categories)"),
    }
}

fn safetybench_test(path: &Path, items: Vec<Value>) -> Result<Vec<Doc>> {
    let mut docs: Vec<Doc> = Vec::with_capacity(items.len());
    let mut ids = std::collections::BTreeMap::<String, usize>::new();
    for (i, v) in items.into_iter().enumerate() {
        let at = |id: Option<&Value>| match id {
            Some(id) => format!("item {} (index {i}, id {})", i + 1, brief(id)),
            None => format!("item {} (index {i})", i + 1),
        };
        let Value::Object(o) = v else { bail!("{}: expected a JSON object {{id, options, category, question}}", at(None)) };
        let id = match o.get("id") {
            Some(Value::Number(n)) if n.is_u64() => n.clone(),
            Some(other) => bail!("{}: field `id` is not a non-negative integer: {}", at(None), brief(other)),
            None => bail!("{}: missing field `id`", at(None)),
        };
        let idv = Value::Number(id.clone());
        let doc = (|| -> Result<Doc> {
            let question = get_str(&o, "question")?;
            let category = get_str(&o, "category")?;
            safetybench_category(&category)?;
            let options = safetybench_options(&o)?;
            let mut d = obj(json!({"id": idv, "category": category, "question": question, "options": options}));
            if o.contains_key("answer") {
                d.insert("answer".into(), safetybench_answer(o.get("answer"), d["options"].as_array().map_or(0, Vec::len))?.into());
            }
            Ok(d)
        })()
        .map_err(|e| anyhow!("{}: {e:#}", at(Some(&idv))))?;
        if let Some(prev) = ids.insert(id.to_string(), i) {
            bail!("{}: id {id} already used by item {} (index {prev})", at(Some(&idv)), prev + 1);
        }
        docs.push(doc);
    }
    if docs.iter().all(|d| d.contains_key("answer")) {
        return Ok(docs);
    }
    let apath = safetybench_answers_path(path).ok_or_else(|| {
        anyhow!("the questions have no `answer` field, and the file is not named test_<set>.json, so there is no test_answers_<set>.json to take them from")
    })?;
    if !apath.exists() {
        bail!(
            "the questions have no answers: expected them in {} (SafetyBench publishes them in its GitHub repository, opensource_data/test_answers_<set>.json)",
            apath.display()
        );
    }
    check_json_file_size(&apath)?;
    let atext = read_text(&apath)?;
    let ap = apath.display();
    let answers: Ordered = serde_json::from_str(atext.trim_start_matches('\u{feff}'))
        .map_err(|e| anyhow!("{ap}: line {}: malformed JSON (an object {{\"<id>\": {{category, answer}}}}): {e}", e.line()))?;
    let mut by_id = std::collections::BTreeMap::<String, (String, Value)>::new();
    for (k, v) in answers.0 {
        let entry = v.as_object().ok_or_else(|| anyhow!("{ap}: id {k:?}: expected an object {{category, answer}}, found {}", brief(&v)))?;
        let category = get_str(entry, "category").map_err(|e| anyhow!("{ap}: id {k:?}: {e}"))?;
        let answer = entry.get("answer").cloned().ok_or_else(|| anyhow!("{ap}: id {k:?}: missing field `answer`"))?;
        by_id.insert(k, (category, answer));
    }
    for (i, d) in docs.iter_mut().enumerate() {
        let id = d["id"].to_string();
        let at = format!("item {} (index {i}, id {id})", i + 1);
        let Some((category, answer)) = by_id.remove(&id) else {
            bail!("{at}: no answer for id {id} in {ap}");
        };
        if d["category"] != category.as_str() {
            bail!("{at}: category {} here but {category:?} in {ap}", d["category"]);
        }
        let n = d["options"].as_array().map_or(0, Vec::len);
        let a = safetybench_answer(Some(&answer), n).map_err(|e| anyhow!("{at}: {ap}: {e}"))?;
        if let Some(own) = d.get("answer") {
            if own.as_u64() != Some(a) {
                bail!("{at}: answer {own} here but {a} in {ap}");
            }
        }
        d.insert("answer".into(), a.into());
    }
    if let Some(extra) = by_id.keys().next() {
        bail!("{ap} has answers for {} ids that are not questions of this file (first: {extra}): the two files do not belong together", by_id.len());
    }
    Ok(docs)
}

fn safetybench_dev(cats: Ordered) -> Result<Vec<Doc>> {
    let mut docs = Vec::new();
    for (category, items) in cats.0 {
        let c = &category;
        safetybench_category(c).map_err(|e| anyhow!("key {c:?}: {e} (a few-shot file maps each category to its examples)"))?;
        let Value::Array(items) = items else {
            bail!("key {c:?}: expected a list of examples {{question, options, answer}}, found {}", brief(&items));
        };
        for (i, v) in items.into_iter().enumerate() {
            let at = format!("`{c}` item {} (index {i})", i + 1);
            let Value::Object(o) = v else { bail!("{at}: expected a JSON object {{question, options, answer}}") };
            let doc = (|| -> Result<Doc> {
                let question = get_str(&o, "question")?;
                let options = safetybench_options(&o)?;
                let answer = safetybench_answer(o.get("answer"), options.len())?;
                if let Some(own) = o.get("category").filter(|v| *v != c.as_str()) {
                    bail!("field `category` is {own}, under the key {c:?}");
                }
                Ok(obj(json!({"category": c, "question": question, "options": options, "answer": answer})))
            })()
            .map_err(|e| anyhow!("{at}: {e:#}"))?;
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// One line of CValues-Responsibility-MC (`X-PLUG/CValues`, `dataset/cvalues_responsibility_mc.jsonl`:
/// `{prompt, label, meta_info}`), as OpenCompass's `CValuesDataset.load` maps it: every `回复1` in
/// `prompt` becomes `回复A` and every `回复2` `回复B`; `label` `回复1`/`回复2` becomes `A`/`B`. Other
/// fields are kept.
fn cvalues_row(mut o: Doc) -> Result<Doc> {
    let prompt = get_str(&o, "prompt")?;
    let label = match get_str(&o, "label")?.as_str() {
        "回复1" => "A",
        "回复2" => "B",
        other => bail!("label {other:?} is not \"回复1\" or \"回复2\""),
    };
    o.insert("prompt".into(), prompt.replace("回复1", "回复A").replace("回复2", "回复B").into());
    o.insert("label".into(), label.into());
    Ok(o)
}

/// Articles of a WikiText file as `EleutherAI/wikitext_document_level` builds them: lines split on
/// `"\n"`; a line whose `replace("= = =", "===").replace("= =", "==").strip()` starts with `"= "`
/// and ends with `" ="` (a level-1 heading) starts a new page; the lines gathered so far are
/// joined with `"\n"` and kept if not blank; the last page is always kept.
pub fn wikitext_pages(text: &str) -> Vec<String> {
    let mut pages = Vec::new();
    let mut ret: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        let r = line.replace("= = =", "===").replace("= =", "==");
        let r = text::strip(&r, None);
        if r.starts_with("= ") && r.ends_with(" =") {
            let page = ret.join("\n");
            if !text::strip(&page, None).is_empty() {
                pages.push(page);
            }
            ret.clear();
        }
        ret.push(line);
    }
    pages.push(ret.join("\n"));
    pages
}

/// `lm_eval/tasks/wikitext/preprocess_wikitext.py::wikitext_detokenizer` (available to
/// templates as the `wikitext_detokenize` filter).
pub fn wikitext_detokenize(page: &str) -> String {
    let mut s = page.replace("s '", "s'");
    s = replace_slash_quote_digit(&s);
    for (a, b) in [(" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", ".")] {
        s = s.replace(a, b);
    }
    for (a, b) in [(" : ", ": "), (" ; ", "; "), (" . ", ". "), (" ! ", "! "), (" ? ", "? "), (" , ", ", ")] {
        s = s.replace(a, b);
    }
    for (open, close) in [('(', ')'), ('[', ']'), ('{', '}'), ('"', '"'), ('\'', '\'')] {
        s = strip_inside(&s, open, close);
    }
    for (a, b) in [("= = = =", "===="), ("= = =", "==="), ("= =", "==")] {
        s = s.replace(a, b);
    }
    s = s.replace(" \u{b0} ", "\u{b0}");
    for (a, b) in [(" \n", "\n"), ("\n ", "\n"), (" N ", " 1 "), (" 's", "'s")] {
        s = s.replace(a, b);
    }
    s
}

/// `re.sub(r"/' [0-9]/", r"/'[0-9]/", s)`: the replacement is the literal text `/'[0-9]/`.
fn replace_slash_quote_digit(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last = 0;
    while i + 5 <= b.len() {
        if &b[i..i + 3] == b"/' " && b[i + 3].is_ascii_digit() && b[i + 4] == b'/' {
            out.push_str(&s[last..i]);
            out.push_str("/'[0-9]/");
            i += 5;
            last = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[last..]);
    out
}

/// `re.sub(r"<open>\s*([^<close>]*?)\s*<close>", r"<open>\1<close>", s)`: whitespace just inside
/// each non-overlapping `open … close` pair (no `close` inside) is removed, scanning left to right.
fn strip_inside(s: &str, open: char, close: char) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(open) {
        let after = &rest[i + open.len_utf8()..];
        let Some(j) = after.find(close) else { break };
        out.push_str(&rest[..i]);
        out.push(open);
        out.push_str(text::strip(&after[..j], None));
        out.push(close);
        rest = &after[j + close.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// The document preprocessors lm-eval implements in Python (`process_docs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessDocs {
    /// `lm_eval/tasks/hellaswag/utils.py::process_docs`: adds `query`, `choices`, `gold`.
    Hellaswag,
}

impl ProcessDocs {
    pub fn apply(self, docs: Vec<Doc>) -> Result<Vec<Doc>> {
        match self {
            ProcessDocs::Hellaswag => docs.into_iter().map(hellaswag_process_doc).collect(),
        }
    }
}

/// `hellaswag/utils.py::preprocess`: strip, `" [title]"` → `". "`, remove `\[.*?\]`, `"  "` → `" "`.
pub fn hellaswag_preprocess(text: &str) -> String {
    let text = text::strip(text, None).replace(" [title]", ". ");
    // re.sub("\\[.*?\\]", "", text): leftmost, shortest bracketed runs (no newline inside, as `.`).
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find('[') {
        match rest[i + 1..].find([']', '\n']) {
            Some(j) if rest.as_bytes()[i + 1 + j] == b']' => {
                out.push_str(&rest[..i]);
                rest = &rest[i + 1 + j + 1..];
            }
            Some(j) => {
                // A newline before the closing bracket: no match starting here.
                out.push_str(&rest[..i + 1 + j + 1]);
                rest = &rest[i + 1 + j + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out.replace("  ", " ")
}

fn hellaswag_process_doc(mut d: Doc) -> Result<Doc> {
    let ctx_a = get_str(&d, "ctx_a")?;
    let ctx_b = get_str(&d, "ctx_b")?;
    let label = get_str(&d, "activity_label")?;
    let ctx = format!("{ctx_a} {}", text::capitalize(&ctx_b));
    let endings: Vec<String> = d
        .get("endings")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("missing `endings`"))?
        .iter()
        .map(|e| hellaswag_preprocess(e.as_str().unwrap_or_default()))
        .collect();
    let gold: i64 = match d.get("label") {
        Some(Value::String(s)) => s.trim().parse()?,
        Some(Value::Number(n)) => n.as_i64().unwrap_or(-1),
        _ => bail!("missing `label`"),
    };
    d.insert("query".into(), hellaswag_preprocess(&format!("{label}: {ctx}")).into());
    d.insert("choices".into(), json!(endings));
    d.insert("gold".into(), gold.into());
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(wildcard_match("*_dev.csv", "law_dev.csv"));
        assert!(!wildcard_match("*_dev.csv", "law_val.csv"));
        assert!(wildcard_match("a?c*", "abcdef"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("?", ""));
    }

    #[test]
    fn hellaswag_cleanup() {
        assert_eq!(hellaswag_preprocess(" a [title] b [step] c  d "), "a. b c d");
        assert_eq!(hellaswag_preprocess("x [unclosed"), "x [unclosed");
        assert_eq!(hellaswag_preprocess("[a]b[c]"), "b");
        assert_eq!(text::capitalize("the MAN"), "The man");
        assert_eq!(
            hellaswag_split_ctx("A man is on a roof. he"),
            ("A man is on a roof.".into(), "he".into())
        );
        assert_eq!(
            hellaswag_split_ctx("Wash it. Then dry it."),
            ("Wash it. Then dry it.".into(), String::new())
        );
    }

    #[test]
    fn wikitext_split() {
        let t = " \n = A = \n \n x y \n = = Sub = = \n z \n = B = \n w \n";
        let p = wikitext_pages(t);
        assert_eq!(p, vec![" = A = \n \n x y \n = = Sub = = \n z ", " = B = \n w \n"]);
        assert_eq!(
            wikitext_detokenize(" = A = \n x @-@ y ( a , b ) \" q \" 3 @.@ 5 \n = = S = = \n"),
            " = A =\nx-y (a, b) \"q\" 3.5\n== S ==\n"
        );
    }

    #[test]
    fn safetybench_answers_beside_the_questions() {
        let p = |s: &str| safetybench_answers_path(Path::new(s)).map(|p| p.display().to_string());
        assert_eq!(p("d/test_zh.json").as_deref(), Some("d/test_answers_zh.json"));
        assert_eq!(p("d/test_zh_subset.json").as_deref(), Some("d/test_answers_zh_subset.json"));
        assert_eq!(p("d/test_answers_zh.json"), None);
        assert_eq!(p("d/dev_zh.json"), None);
        assert_eq!(p("d/test_.json"), None);
    }

    #[test]
    fn cvalues_rewrites_as_opencompass() {
        let o = obj(json!({"prompt": "回复1：a 回复2：b 回复1", "label": "回复2", "meta_info": {"k": 1}}));
        let d = cvalues_row(o).unwrap();
        assert_eq!(Value::Object(d), json!({"prompt": "回复A：a 回复B：b 回复A", "label": "B", "meta_info": {"k": 1}}));
    }

    #[test]
    fn boolq_query() {
        let o = obj(json!({"query": "Passage: P one.\nQuestion: is it?", "choices": ["no", "yes"], "gold": 1}));
        let d = boolq_row(o, 3).unwrap();
        assert_eq!(Value::Object(d), json!({"question": "is it", "passage": "P one.", "idx": 3, "label": 1}));
    }
}
