//! Choosing tasks by name, group or glob, with a "did you mean" for typos.

use anyhow::{bail, Result};

use super::Task;
use crate::eval::data;

/// Levenshtein distance (in chars).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Select tasks by a comma-separated list of task names, group names and globs (`*`, `?`), in
/// the order given (tasks of a group in load order), without duplicates.
pub fn select<'a>(tasks: &'a [Task], spec: &str) -> Result<Vec<&'a Task>> {
    let mut out: Vec<&Task> = Vec::new();
    let push = |t: &'a Task, out: &mut Vec<&'a Task>| {
        if !out.iter().any(|o| std::ptr::eq(*o, t)) {
            out.push(t);
        }
    };
    for term in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(t) = tasks.iter().find(|t| t.name == term) {
            push(t, &mut out);
            continue;
        }
        let in_group: Vec<&Task> = tasks.iter().filter(|t| t.groups.iter().any(|g| g == term)).collect();
        if !in_group.is_empty() {
            for t in in_group {
                push(t, &mut out);
            }
            continue;
        }
        if term.contains(['*', '?']) {
            let matched: Vec<&Task> = tasks.iter().filter(|t| data::wildcard_match(term, &t.name)).collect();
            if matched.is_empty() {
                bail!("no task matches `{term}`");
            }
            for t in matched {
                push(t, &mut out);
            }
            continue;
        }
        let mut names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
        names.extend(tasks.iter().flat_map(|t| t.groups.iter().map(String::as_str)));
        let best = names.iter().min_by_key(|n| (edit_distance(term, n), n.len(), **n));
        match best {
            Some(b) => bail!("unknown task name `{term}` (did you mean `{b}`?)"),
            None => bail!("unknown task name `{term}` (no tasks are loaded)"),
        }
    }
    if out.is_empty() {
        bail!("no tasks selected by `{spec}`");
    }
    Ok(out)
}

