//! `samples_<task>.jsonl`: one JSON record per finished document, appended and synced chunk by
//! chunk. Each line carries `line_sha256`, the first 16 hex digits of the sha256 of the record
//! serialised without it, so that resuming can tell a line torn by a crash (the last one, without
//! its newline: dropped) from a line edited or damaged since (refused, naming the line).

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

const CHECK: &str = "line_sha256";

fn check_of(record: &Value) -> Result<String> {
    Ok(crate::digest::sha256_hex(serde_json::to_string(record)?.as_bytes())[..16].to_string())
}

/// The line (with its newline) that stores `record`.
pub fn encode(record: &Value) -> Result<String> {
    let mut r = record.clone();
    let check = check_of(&r)?;
    r.as_object_mut().context("a sample record must be a JSON object")?.insert(CHECK.into(), Value::String(check));
    Ok(format!("{}\n", serde_json::to_string(&r)?))
}

/// The record a line (without its newline) stores, if it is whole and unchanged.
pub fn decode(line: &[u8]) -> Option<Value> {
    let mut v: Value = serde_json::from_slice(line).ok()?;
    let check = v.as_object_mut()?.remove(CHECK)?;
    (check.as_str()? == check_of(&v).ok()?).then_some(v)
}

/// Reads the finished records of `path`: a torn last line (a crash mid-write) is cut off the
/// file; an edited or damaged line, a document that is not one of `doc_ids`, or one recorded twice
/// is refused with its line number.
pub fn read(path: &Path, doc_ids: &HashSet<u64>) -> Result<Vec<Value>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut good_len = 0usize;
    let refuse = |n: usize, why: &str| -> anyhow::Error {
        anyhow::anyhow!("{}: line {n}: {why}; refusing to resume from it (move the file away to start the task again)", path.display())
    };
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let whole = line.ends_with(b"\n");
        let Some(r) = decode(line.strip_suffix(b"\n").unwrap_or(line)) else {
            if !whole {
                break; // torn by a crash: dropped below
            }
            return Err(refuse(i + 1, "the record was edited or damaged (its line_sha256 does not match)"));
        };
        let id = r["doc_id"].as_u64().ok_or_else(|| refuse(i + 1, "no doc_id"))?;
        if !doc_ids.contains(&id) {
            return Err(refuse(i + 1, &format!("doc_id {id} is not a document of this task")));
        }
        if !seen.insert(id) {
            return Err(refuse(i + 1, &format!("doc_id {id} is recorded twice")));
        }
        good_len += line.len();
        out.push(r);
    }
    if bytes.len() > good_len {
        OpenOptions::new().write(true).open(path)?.set_len(good_len as u64)?;
    }
    Ok(out)
}

/// [`read`] without knowing the task's documents (a finished run read back by `pingce report`):
/// checksums and duplicates are still checked.
pub fn read_any(path: &Path) -> Result<Vec<Value>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let ids: HashSet<u64> = bytes
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter_map(|v| v["doc_id"].as_u64())
        .collect();
    read(path, &ids)
}

/// Appends records and syncs them to disk before returning.
pub fn append(file: &mut std::fs::File, records: &[Value]) -> Result<()> {
    let mut buf = String::new();
    for r in records {
        buf.push_str(&encode(r)?);
    }
    file.write_all(buf.as_bytes())?;
    file.sync_data()?;
    Ok(())
}

/// Writes `text` to `path` atomically: a temporary file in the same folder, synced, renamed over
/// `path`, and the folder synced, so a crash leaves the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(text.as_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tmp(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("pingce-samples-{}-{name}.jsonl", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn torn_lines_drop_edited_lines_refuse() {
        let ids: HashSet<u64> = (0..4).collect();
        let lines: String = (0..3).map(|i| encode(&json!({"doc_id": i, "acc": 1.0})).unwrap()).collect();
        let p = tmp("ok", &lines);
        assert_eq!(read(&p, &ids).unwrap().len(), 3);
        // A torn last line is cut off.
        let p = tmp("torn", &format!("{lines}{{\"doc_id\": 3, \"ac"));
        assert_eq!(read(&p, &ids).unwrap().len(), 3);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), lines);
        // An edited digit in the middle is refused with its line.
        let p = tmp("edited", &lines.replacen("\"acc\":1.0", "\"acc\":0.0", 2).replacen("\"acc\":0.0", "\"acc\":1.0", 1));
        let e = read(&p, &ids).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("edited"), "{e}");
        // Truncated in the middle (a line lost its end but the file goes on).
        let cut: String = lines.lines().enumerate().map(|(i, l)| if i == 1 { format!("{}\n", &l[..10]) } else { format!("{l}\n") }).collect();
        let e = read(&tmp("cut", &cut), &ids).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        // Duplicated and foreign documents.
        let dup = format!("{lines}{}", encode(&json!({"doc_id": 1, "acc": 1.0})).unwrap());
        assert!(read(&tmp("dup", &dup), &ids).unwrap_err().to_string().contains("line 4: doc_id 1 is recorded twice"));
        let foreign = format!("{lines}{}", encode(&json!({"doc_id": 9, "acc": 1.0})).unwrap());
        assert!(read(&tmp("foreign", &foreign), &ids).unwrap_err().to_string().contains("doc_id 9 is not a document"));
    }
}
