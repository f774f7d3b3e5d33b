//! One bank row into a document with the normalised keys (see [`super`]), or every problem
//! the row has.

use serde_json::{json, Value};

use super::{AnswerFormat, ChoiceColumns, Fields};
use crate::eval::Doc;

const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A cell as trimmed text; `None` when absent, null or blank.
pub fn cell(row: &Doc, col: &str) -> Option<String> {
    let s = match row.get(col)? {
        Value::String(s) => s.trim().to_string(),
        Value::Null => return None,
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    };
    (!s.is_empty()).then_some(s)
}

/// The row as a document, or its problems (all of them).
pub fn to_doc(row: &Doc, f: &Fields) -> Result<Doc, Vec<String>> {
    let mut errs = Vec::new();
    let mut need = |col: &str, what: &str| {
        let v = cell(row, col);
        if v.is_none() {
            errs.push(format!("missing {what} (field `{col}` is absent or empty)"));
        }
        v
    };
    let question = need(&f.question, "question");
    let answer = need(&f.answer, "answer");
    let id = f.id.as_deref().and_then(|c| need(c, "id"));
    let category = f.category.as_deref().and_then(|c| need(c, "category"));
    let mut doc = row.clone();
    doc.insert("question".into(), json!(question));
    if let Some(id) = id {
        doc.insert("id".into(), json!(id));
    }
    if let Some(c) = category {
        doc.insert("category".into(), json!(c));
    }
    match &f.choices {
        None => {
            doc.insert("answer".into(), json!(answer));
        }
        Some(spec) => match choices(row, spec, f.choices_separator.as_deref()) {
            Err(e) => errs.push(e),
            Ok(options) => {
                if let Some(a) = &answer {
                    match answer_index(a, &options, f.answer_format) {
                        Ok(i) => insert_choices(&mut doc, &options, i),
                        Err(e) => errs.push(e),
                    }
                }
            }
        },
    }
    if errs.is_empty() {
        Ok(doc)
    } else {
        Err(errs)
    }
}

fn insert_choices(doc: &mut Doc, options: &[String], answer: usize) {
    let letters: Vec<String> = LETTERS.chars().take(options.len()).map(String::from).collect();
    let listed: Vec<String> = letters.iter().zip(options).map(|(l, o)| format!("{l}. {o}")).collect();
    doc.insert("choices".into(), json!(options));
    doc.insert("letters".into(), json!(letters));
    doc.insert("options".into(), json!(listed.join("\n")));
    doc.insert("answer".into(), json!(answer));
    doc.insert("answer_letter".into(), json!(letters[answer]));
    doc.insert("answer_text".into(), json!(options[answer]));
}

/// The option texts: 2 to 26, none empty, none repeated.
fn choices(row: &Doc, spec: &ChoiceColumns, separator: Option<&str>) -> Result<Vec<String>, String> {
    let options: Vec<String> = match spec {
        ChoiceColumns::Columns(cols) => {
            let mut v: Vec<Option<String>> = cols.iter().map(|c| cell(row, c)).collect();
            while v.last().is_some_and(Option::is_none) {
                v.pop();
            }
            if let Some(i) = v.iter().position(Option::is_none) {
                return Err(format!("option column `{}` is empty but a later option is not", cols[i]));
            }
            v.into_iter().flatten().collect()
        }
        ChoiceColumns::Column(col) => match row.get(col) {
            Some(Value::Array(a)) => a.iter().map(|x| x.as_str().map(|s| s.trim().to_string()).unwrap_or_else(|| x.to_string())).collect(),
            Some(Value::String(s)) => match separator {
                Some(sep) => s.split(sep).map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect(),
                None if s.trim_start().starts_with('[') => serde_json::from_str::<Vec<String>>(s.trim())
                    .map_err(|e| format!("options in `{col}` are not a JSON list of strings: {e}"))?
                    .into_iter()
                    .map(|x| x.trim().to_string())
                    .collect(),
                None => return Err(format!("options in `{col}` are neither a JSON list nor split by a declared `choices_separator`")),
            },
            _ => return Err(format!("missing options (field `{col}` is absent or not a list)")),
        },
    };
    if options.len() < 2 {
        return Err(format!("{} option(s); a question needs at least 2", options.len()));
    }
    if options.len() > 26 {
        return Err(format!("{} options; at most 26 (A to Z)", options.len()));
    }
    if let Some(i) = options.iter().position(String::is_empty) {
        return Err(format!("option {} is empty", letter(i)));
    }
    for (i, o) in options.iter().enumerate() {
        if let Some(j) = options[..i].iter().position(|p| p == o) {
            return Err(format!("options {} and {} are the same ({o:?})", letter(j), letter(i)));
        }
    }
    Ok(options)
}

fn letter(i: usize) -> char {
    LETTERS.as_bytes()[i] as char
}

/// The 0-based index of the correct option.
pub fn answer_index(a: &str, options: &[String], format: AnswerFormat) -> Result<usize, String> {
    let n = options.len();
    let range = format!("A to {}", letter(n - 1));
    let as_letter = |upper_only: bool| -> Option<usize> {
        let mut cs = a.chars();
        let c = cs.next().filter(|_| cs.next().is_none())?;
        let c = if upper_only { c } else { c.to_ascii_uppercase() };
        c.is_ascii_uppercase().then(|| (c as u8 - b'A') as usize)
    };
    let as_text = || options.iter().position(|o| o == a);
    let number = |base: usize| -> Result<usize, String> {
        let i: usize = a.parse().map_err(|_| format!("answer {a:?} is not a number"))?;
        i.checked_sub(base).filter(|i| *i < n).ok_or_else(|| format!("answer {a} is outside the {n} options (numbered from {base})"))
    };
    match format {
        AnswerFormat::Letter => match as_letter(false) {
            Some(i) if i < n => Ok(i),
            Some(_) => Err(format!("answer {a:?} is outside the {n} options ({range})")),
            None => Err(format!("answer {a:?} is not a letter")),
        },
        AnswerFormat::Index => number(0),
        AnswerFormat::Index1 => number(1),
        AnswerFormat::Text => as_text().ok_or_else(|| format!("answer {a:?} is not the text of any option")),
        AnswerFormat::Auto => match (as_letter(true).filter(|l| *l < n), as_text()) {
            (Some(l), Some(t)) if l != t => Err(format!("answer {a:?} is ambiguous: letter {a} or the text of option {}; declare answer_format", letter(t))),
            (Some(l), _) => Ok(l),
            (None, Some(t)) => Ok(t),
            (None, None) if as_letter(true).is_some() => Err(format!("answer {a:?} is outside the {n} options ({range})")),
            (None, None) if a.parse::<usize>().is_ok() => Err(format!("answer {a:?} is a number: declare answer_format index (0-based) or index1 (1-based)")),
            (None, None) => Err(format!("answer {a:?} is neither a letter ({range}) nor the text of an option")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn answers() {
        let o = opts(&["red", "B", "blue"]);
        assert_eq!(answer_index("C", &o, AnswerFormat::Auto), Ok(2));
        assert_eq!(answer_index("blue", &o, AnswerFormat::Auto), Ok(2));
        assert!(answer_index("A", &opts(&["x", "A"]), AnswerFormat::Auto).unwrap_err().contains("ambiguous"));
        assert_eq!(answer_index("B", &o, AnswerFormat::Auto), Ok(1)); // letter B and text "B" agree
        assert!(answer_index("D", &o, AnswerFormat::Auto).unwrap_err().contains("outside"));
        assert!(answer_index("2", &o, AnswerFormat::Auto).unwrap_err().contains("index1"));
        assert_eq!(answer_index("2", &o, AnswerFormat::Index), Ok(2));
        assert_eq!(answer_index("2", &o, AnswerFormat::Index1), Ok(1));
        assert!(answer_index("3", &o, AnswerFormat::Index).is_err());
        assert_eq!(answer_index("c", &o, AnswerFormat::Letter), Ok(2));
        assert!(answer_index("red ", &o, AnswerFormat::Text).is_err());
    }
}
