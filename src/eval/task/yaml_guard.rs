//! Limits checked on a task YAML before it is parsed: its size and how deeply it nests (the YAML
//! parser would otherwise spend gigabytes or overflow the stack on a hostile file).

use anyhow::{bail, Result};

/// Largest task file accepted (bytes).
pub const MAX_YAML_BYTES: usize = 1 << 20;
/// Deepest nesting accepted: block indentation levels, `- ` sequence entries on one line and
/// flow `[` / `{` collections counted together (real task files stay under 10).
pub const MAX_YAML_DEPTH: usize = 64;

/// Refuses `text` if it is too large or nests too deeply; the error gives the line.
pub fn check(text: &str) -> Result<()> {
    if text.len() > MAX_YAML_BYTES {
        bail!("{} bytes, more than the {MAX_YAML_BYTES} a task file may hold", text.len());
    }
    // Indentation of the enclosing block levels; a block scalar's lines are skipped.
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut scalar_indent: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        if body.trim().is_empty() || body.starts_with('#') {
            continue;
        }
        if let Some(s) = scalar_indent {
            if indent > s {
                continue;
            }
            scalar_indent = None;
        }
        if flow == 0 {
            while indents.last().is_some_and(|&l| l >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        // `- - - x`: each dash opens a sequence level.
        let mut rest = body;
        let mut dashes = 0;
        while let Some(r) = rest.strip_prefix("- ").or(if rest == "-" { Some("") } else { None }) {
            dashes += 1;
            rest = r.trim_start_matches(' ');
        }
        let (end, deepest) = scan_flow(rest, flow);
        flow = end;
        let depth = indents.len() + dashes + deepest;
        if depth > MAX_YAML_DEPTH {
            bail!("line {}: nested deeper than {MAX_YAML_DEPTH} levels", i + 1);
        }
        let trimmed = rest.trim_end();
        if flow == 0 && (trimmed.ends_with('|') || trimmed.ends_with('>') || trimmed.ends_with("|-") || trimmed.ends_with(">-") || trimmed.ends_with("|+") || trimmed.ends_with(">+")) {
            scalar_indent = Some(indent);
        }
    }
    Ok(())
}

/// Flow-collection depth after `s` and the deepest reached in it, starting from `depth`: `[`/`{`
/// open, `]`/`}` close; quoted scalars (a quote where a scalar can start) and comments are skipped.
fn scan_flow(s: &str, mut depth: usize) -> (usize, usize) {
    let mut deepest = depth;
    let mut chars = s.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        match c {
            '#' if prev == ' ' => break,
            '"' | '\'' if matches!(prev, ' ' | ':' | '[' | '{' | ',') => {
                let mut escaped = false;
                for d in chars.by_ref() {
                    if c == '"' && d == '\\' && !escaped {
                        escaped = true;
                        continue;
                    }
                    if d == c && !escaped {
                        break;
                    }
                    escaped = false;
                }
            }
            '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    (depth, deepest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth() {
        assert!(check("a:\n  b:\n    c: [1, {d: 2}]\n  e: |\n      x\n     y\n").is_ok());
        assert!(check(&format!("a: {}{}", "[".repeat(70), "]".repeat(70))).is_err());
        let deep: String = (0..70).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        assert!(check(&deep).unwrap_err().to_string().contains("line 65"));
        assert!(check(&"- ".repeat(70)).is_err());
        assert!(check("t: \"{{ '[' }}[[[[\"\n").is_ok());
    }
}
