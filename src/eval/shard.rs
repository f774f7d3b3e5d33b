//! Sharding one evaluation over many processes: shard `i` of `N` scores the documents whose
//! `doc_id % N == i`, in document order, for every task. The assignment depends on nothing but
//! the documents, so shards run and resume independently; `pingce merge` puts them back together.

use anyhow::{bail, ensure, Context, Result};

use super::plan::TaskRun;

/// Shard `index` of `count` (0-based index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether this shard scores the document.
    pub fn keeps(&self, doc_id: usize) -> bool {
        doc_id % self.count == self.index
    }

    /// Keeps this shard's items of every task (their order unchanged).
    pub fn apply(&self, runs: &mut [TaskRun]) {
        for r in runs {
            r.items.retain(|it| self.keeps(it.doc_id));
        }
    }

    /// `i/N`, 0 <= i < N.
    pub fn parse(spec: &str) -> Result<Shard> {
        let (i, n) = spec.split_once('/').with_context(|| format!("--shard {spec:?}: give i/N (e.g. 0/4) or auto"))?;
        let index: usize = i.trim().parse().with_context(|| format!("--shard {spec:?}: {i:?} is not a shard index"))?;
        let count: usize = n.trim().parse().with_context(|| format!("--shard {spec:?}: {n:?} is not a shard count"))?;
        Shard::new(index, count).with_context(|| format!("--shard {spec}"))
    }

    pub fn new(index: usize, count: usize) -> Result<Shard> {
        ensure!(count >= 1, "the shard count must be at least 1");
        ensure!(index < count, "shard index {index} is not below the shard count {count} (indices start at 0)");
        Ok(Shard { index, count })
    }

    /// `--shard auto`: the shard a scheduler gave this process, and a line saying where it came
    /// from. Slurm job arrays (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN` of
    /// `SLURM_ARRAY_TASK_COUNT`, step 1), then Kubernetes Indexed Jobs (`JOB_COMPLETION_INDEX` of
    /// `shards`, which `--shards` gives: the pod does not see the completion count). `env` reads a
    /// variable (`std::env::var` in the CLI).
    pub fn auto(shards: Option<usize>, env: &dyn Fn(&str) -> Option<String>) -> Result<(Shard, String)> {
        let num = |name: &str| -> Result<Option<usize>> {
            match env(name) {
                None => Ok(None),
                Some(v) => Ok(Some(v.trim().parse().with_context(|| format!("{name}={v:?} is not a number"))?)),
            }
        };
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let count = num("SLURM_ARRAY_TASK_COUNT")?.context("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")?;
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            if let Some(step) = num("SLURM_ARRAY_TASK_STEP")? {
                ensure!(step == 1, "the Slurm job array has step {step}: use a contiguous array (--array=0-{})", count.saturating_sub(1));
            }
            ensure!(id >= min, "SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}");
            if let Some(n) = shards {
                ensure!(n == count, "--shards {n} disagrees with SLURM_ARRAY_TASK_COUNT {count}");
            }
            let s = Shard::new(id - min, count).context("the Slurm job array is not contiguous (use --array=0-N-1, without a % limit on ids)")?;
            let job = env("SLURM_ARRAY_JOB_ID").map(|j| format!(" {j}")).unwrap_or_default();
            return Ok((s, format!("shard {s} from the Slurm job array{job} (SLURM_ARRAY_TASK_ID={id}, SLURM_ARRAY_TASK_MIN={min}, SLURM_ARRAY_TASK_COUNT={count})")));
        }
        if let Some(i) = num("JOB_COMPLETION_INDEX")? {
            let Some(n) = shards else { bail!("JOB_COMPLETION_INDEX={i} (a Kubernetes Indexed Job) needs --shards N, the Job's completions") };
            let s = Shard::new(i, n)?;
            return Ok((s, format!("shard {s} from the Kubernetes Indexed Job (JOB_COMPLETION_INDEX={i}, --shards {n})")));
        }
        bail!("--shard auto: neither a Slurm job array (SLURM_ARRAY_TASK_ID) nor a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) is in the environment; give --shard i/N")
    }
}
