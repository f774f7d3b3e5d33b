//! Paths a task file names stay inside their folder: dataset files inside `--data-dir`, task
//! files inside `--tasks-dir`. `..` components, absolute paths and symlinks leading out are
//! refused unless the run allows paths outside (`--allow-outside-paths`).

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Refuses a pattern (relative to `root`) that is absolute or climbs with `..`.
pub fn check_pattern(root: &Path, pattern: &str, allow_outside: bool) -> Result<()> {
    if allow_outside {
        return Ok(());
    }
    let p = Path::new(pattern);
    if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir | Component::RootDir | Component::Prefix(_))) {
        bail!(
            "path {pattern:?} leaves the folder {}: absolute paths and `..` are not allowed (pass --allow-outside-paths to allow them)",
            root.display()
        );
    }
    Ok(())
}

/// Refuses `path` (which exists) if, symlinks resolved, it is not inside `root`.
pub fn check_inside(root: &Path, path: &Path, allow_outside: bool) -> Result<()> {
    if allow_outside {
        return Ok(());
    }
    let real_root = root.canonicalize().with_context(|| format!("resolving the folder {}", root.display()))?;
    let real = path.canonicalize().with_context(|| format!("resolving {}", path.display()))?;
    if !real.starts_with(&real_root) {
        bail!(
            "{} resolves to {}, outside the folder {} (a symlink leading out; pass --allow-outside-paths to allow it)",
            path.display(),
            real.display(),
            real_root.display()
        );
    }
    Ok(())
}

/// [`check_inside`] for every path of `paths`.
pub fn check_all_inside(root: &Path, paths: &[PathBuf], allow_outside: bool) -> Result<()> {
    paths.iter().try_for_each(|p| check_inside(root, p, allow_outside))
}
