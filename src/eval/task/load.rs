//! Reading task YAML files: one task per file, or one per `subtasks` entry with `${var}`
//! substituted in every string.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::{yaml_guard, Task, TaskConfig};
use crate::eval::confine;

/// Read every `*.yaml` in `dir` (sorted by file name) into tasks, expanding `subtasks`. Task
/// files must stay inside `dir` (no symlinks leading out).
pub fn load_tasks(dir: &Path) -> Result<Vec<Task>> {
    load_tasks_in(dir, false)
}

/// [`load_tasks`], allowing task files that resolve outside `dir` if `allow_outside`.
pub fn load_tasks_in(dir: &Path, allow_outside: bool) -> Result<Vec<Task>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the task directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml") && p.is_file())
        .collect();
    files.sort();
    let mut tasks: Vec<Task> = Vec::new();
    for f in files {
        confine::check_inside(dir, &f, allow_outside).context("task file")?;
        for t in load_task_file(&f)? {
            if let Some(prev) = tasks.iter().find(|p| p.name == t.name) {
                bail!(
                    "task `{}` is declared twice: {} and {}",
                    t.name,
                    prev.file.display(),
                    f.display()
                );
            }
            tasks.push(t);
        }
    }
    Ok(tasks)
}

/// Parse one task YAML file (one task, or one per `subtasks` entry).
pub fn load_task_file(path: &Path) -> Result<Vec<Task>> {
    let size = std::fs::metadata(path).with_context(|| format!("cannot read task file {}", path.display()))?.len();
    if size > yaml_guard::MAX_YAML_BYTES as u64 {
        bail!("{}: {size} bytes, more than the {} a task file may hold", path.display(), yaml_guard::MAX_YAML_BYTES);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read task file {}", path.display()))?;
    parse_task_file(path, &text)
}

/// Parse the text of a task YAML file; `path` names it in errors and is recorded in the tasks.
pub fn parse_task_file(path: &Path, text: &str) -> Result<Vec<Task>> {
    let p = path.display();
    yaml_guard::check(text).map_err(|e| anyhow!("{p}: {e}"))?;
    let mut root: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| anyhow!("{p}: invalid YAML: {e}"))?;
    let map = root
        .as_mapping_mut()
        .ok_or_else(|| anyhow!("{p}: a task file must be a YAML mapping"))?;
    let subtasks = map.remove("subtasks");
    let variants: Vec<BTreeMap<String, String>> = match subtasks {
        None => vec![BTreeMap::new()],
        Some(v) => serde_norway::from_value(v)
            .map_err(|e| anyhow!("{p}: `subtasks` must be a list of {{name: value}} maps: {e}"))?,
    };
    let mut out = Vec::new();
    for vars in variants {
        let mut v = root.clone();
        substitute(&mut v, &vars).map_err(|e| anyhow!("{p}: {e}"))?;
        let config: TaskConfig = serde_norway::from_value(v)
            .map_err(|e| anyhow!("{p}: invalid task definition: {e}"))?;
        let task = Task {
            name: config.task.clone(),
            groups: config.group.to_vec(),
            file: path.to_path_buf(),
            standard_split: config.test_split.clone().or_else(|| config.validation_split.clone()).unwrap_or_default(),
            config,
        };
        task.check().map_err(|e| anyhow!("{p}: task `{}`: {e}", task.name))?;
        out.push(task);
    }
    Ok(out)
}

/// Replace `${name}` in every string of `v` by `vars[name]`.
fn substitute(v: &mut serde_norway::Value, vars: &BTreeMap<String, String>) -> Result<()> {
    use serde_norway::Value as Y;
    match v {
        Y::String(s) => {
            if !s.contains("${") {
                return Ok(());
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                out.push_str(&rest[..i]);
                let end = rest[i..]
                    .find('}')
                    .ok_or_else(|| anyhow!("unterminated `${{` in {s:?}"))?;
                let name = &rest[i + 2..i + end];
                let val = vars
                    .get(name)
                    .ok_or_else(|| anyhow!("`${{{name}}}` is not defined by `subtasks`"))?;
                out.push_str(val);
                rest = &rest[i + end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        Y::Sequence(seq) => {
            for x in seq {
                substitute(x, vars)?;
            }
        }
        Y::Mapping(m) => {
            for (_, x) in m.iter_mut() {
                substitute(x, vars)?;
            }
        }
        Y::Tagged(t) => substitute(&mut t.value, vars)?,
        _ => {}
    }
    Ok(())
}

