//! A bank with a `category` field evaluated as one task per category, grouped under the bank's
//! name (as MMLU's subjects under `mmlu`), so results hold per-category scores and the group's
//! micro (per-question) and macro (per-category) averages.

use std::path::Path;

use anyhow::{bail, Result};

use crate::eval::task::Task;

/// `<bank>_<category>`, with characters other than letters, digits, `-` and `_` as `_`.
pub fn category_task_name(bank: &str, category: &str) -> String {
    let slug: String = category.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("{bank}_{slug}")
}

/// Every task of `tasks`, with each bank that has a `category` field replaced by one task per
/// category (in order of first appearance in the evaluated split). A category task reads only
/// its category's rows, for evaluation and for few-shot examples; its groups are the bank's
/// name and the bank's own groups.
pub fn split_categories(tasks: &[Task], data_dir: &Path) -> Result<Vec<Task>> {
    let mut out = Vec::new();
    for t in tasks {
        let d = &t.config.dataset;
        let by_category = d.fields.as_ref().is_some_and(|f| f.category.is_some()) && d.category.is_none();
        if !by_category {
            out.push(t.clone());
            continue;
        }
        let (docs, _) = t.docs(data_dir)?;
        let mut categories: Vec<&str> = Vec::new();
        for c in docs.iter().filter_map(|d| d.get("category").and_then(|v| v.as_str())) {
            if !categories.contains(&c) {
                categories.push(c);
            }
        }
        let mut names: Vec<String> = Vec::new();
        for c in categories {
            let name = category_task_name(&t.name, c);
            if names.contains(&name) {
                bail!("task `{}`: two categories give the task name `{name}`; rename one", t.name);
            }
            names.push(name.clone());
            let mut sub = t.clone();
            sub.name = name.clone();
            sub.groups = std::iter::once(t.name.clone()).chain(t.groups.iter().cloned()).collect();
            sub.config.task = name;
            sub.config.task_alias = Some(c.to_string());
            sub.config.dataset.category = Some(c.to_string());
            out.push(sub);
        }
    }
    Ok(out)
}
