//! Log-likelihood requests as `pingce score`, `determinism` and `logits` read them: a JSONL file,
//! one `{"context": str, "continuation": str}` per line, optionally `"gold": bool` marking the
//! right choice of a multiple-choice item.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// One log-likelihood request.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub context: String,
    pub continuation: String,
    /// Whether this continuation is a right answer of its multiple-choice item (None outside
    /// multiple choice).
    #[serde(default)]
    pub gold: Option<bool>,
}

/// Parses a request file, naming the line of any problem.
pub fn read_requests(path: &Path) -> Result<Vec<Request>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}: not valid UTF-8 text", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: Request = serde_json::from_str(&line).with_context(|| {
            format!("{}:{}: expected {{\"context\": string, \"continuation\": string}} (and optionally \"gold\": bool)", path.display(), i + 1)
        })?;
        out.push(r);
    }
    if out.is_empty() {
        bail!("{}: no requests (the file is empty)", path.display());
    }
    Ok(out)
}

/// The (context, continuation) pairs of requests.
pub fn pairs(reqs: &[Request]) -> Vec<(String, String)> {
    reqs.iter().map(|r| (r.context.clone(), r.continuation.clone())).collect()
}
