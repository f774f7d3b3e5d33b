//! WGSL source composition: kernels share snippets (weight decoding) and switch variants with
//! `//#if NAME` / `//#if !NAME` / `//#else` / `//#endif` lines (and `//#define NAME` inside them),
//! resolved before the source reaches wgpu.

use anyhow::{bail, Result};

/// Keeps the lines whose enclosing `//#if` conditions hold for `defines`.
pub fn preprocess(src: &str, defines: &[&str]) -> Result<String> {
    let mut defines: Vec<&str> = defines.to_vec();
    let mut out = String::with_capacity(src.len());
    // Each entry: (this branch active, any branch of this if taken yet).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let active = |stack: &[(bool, bool)]| stack.iter().all(|s| s.0);
    for (n, line) in src.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("//#if ") {
            let (name, negate) = match name.trim().strip_prefix('!') {
                Some(n) => (n, true),
                None => (name.trim(), false),
            };
            let cond = defines.contains(&name) != negate;
            stack.push((cond, cond));
        } else if let Some(name) = t.strip_prefix("//#define ") {
            if active(&stack) {
                defines.push(name.trim());
            }
        } else if t == "//#else" {
            match stack.last_mut() {
                Some(top) => {
                    top.0 = !top.1;
                    top.1 = true;
                }
                None => bail!("line {}: //#else without //#if", n + 1),
            }
        } else if t == "//#endif" {
            if stack.pop().is_none() {
                bail!("line {}: //#endif without //#if", n + 1);
            }
        } else if active(&stack) {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !stack.is_empty() {
        bail!("unterminated //#if");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn branches() {
        let src = "a\n//#if X\nb\n//#else\nc\n//#endif\n//#if !X\nd\n//#endif\ne\n";
        assert_eq!(preprocess(src, &["X"]).unwrap(), "a\nb\ne\n");
        assert_eq!(preprocess(src, &[]).unwrap(), "a\nc\nd\ne\n");
        assert!(preprocess("//#if X\n", &[]).is_err());
        let d = "//#if A\n//#define B\n//#endif\n//#if B\nb\n//#endif\n";
        assert_eq!(preprocess(d, &["A"]).unwrap(), "b\n");
        assert_eq!(preprocess(d, &[]).unwrap(), "");
    }
}
