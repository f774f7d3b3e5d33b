//! GPU failures as typed errors, so the command line can tell "retry, possibly on another
//! device" (out of memory, device lost) from bad input and from bugs, and the test hooks that
//! make them happen on a software adapter: a memory budget and an injected device loss.

use std::sync::atomic::{AtomicU64, Ordering};

/// A failure of the device rather than of the input: the same work may succeed on a retry or on
/// another adapter.
#[derive(Debug, thiserror::Error)]
pub enum GpuFault {
    #[error("GPU out of memory while {what}: {detail}")]
    OutOfMemory { what: String, detail: String },
    #[error("GPU device lost while {what}: {detail}")]
    DeviceLost { what: String, detail: String },
}

/// Whether an error chain holds a [`GpuFault`].
pub fn is_gpu_fault(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<GpuFault>().is_some())
}

/// Test hooks that make allocations and submissions fail on purpose.
#[derive(Debug, Default)]
pub struct FaultHooks {
    /// Storage bytes the run may allocate in all (`--gpu-memory-budget`); counted as created,
    /// never credited back, so it bounds what pingce asks the driver for.
    pub budget: Option<u64>,
    allocated: AtomicU64,
    /// Submissions after which the device reports itself lost (`PINGCE_INJECT_DEVICE_LOSS=N`).
    pub lose_after: Option<u64>,
    submitted: AtomicU64,
}

impl FaultHooks {
    pub fn new(budget: Option<u64>, lose_after: Option<u64>) -> FaultHooks {
        FaultHooks { budget, lose_after, ..Default::default() }
    }

    /// Hooks from the environment: `PINGCE_INJECT_DEVICE_LOSS=N` (a test hook).
    pub fn from_env(budget: Option<u64>) -> FaultHooks {
        let lose_after = std::env::var("PINGCE_INJECT_DEVICE_LOSS").ok().and_then(|v| v.parse().ok());
        FaultHooks::new(budget, lose_after)
    }

    /// Counts an allocation of `size` bytes for `label`; past the budget it is an out-of-memory.
    pub fn allocate(&self, label: &str, size: u64) -> Result<(), GpuFault> {
        let total = self.allocated.fetch_add(size, Ordering::Relaxed) + size;
        match self.budget {
            Some(b) if total > b => Err(GpuFault::OutOfMemory {
                what: format!("allocating {label:?} ({size} bytes)"),
                detail: format!("the --gpu-memory-budget of {b} bytes is exceeded ({total} bytes asked for in all)"),
            }),
            _ => Ok(()),
        }
    }

    /// Storage bytes allocated so far (never credited back: what pingce asked the driver for).
    pub fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Relaxed)
    }

    /// Counts a submission; after the injected count the device is lost.
    pub fn submit(&self, what: &str) -> Result<(), GpuFault> {
        let n = self.submitted.fetch_add(1, Ordering::Relaxed) + 1;
        match self.lose_after {
            Some(k) if n > k => Err(GpuFault::DeviceLost { what: what.to_string(), detail: format!("injected after {k} submissions (PINGCE_INJECT_DEVICE_LOSS)") }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_and_injected_loss() {
        let h = FaultHooks::new(Some(100), Some(2));
        assert!(h.allocate("a", 60).is_ok());
        let e = anyhow::Error::from(h.allocate("b", 60).unwrap_err());
        assert!(is_gpu_fault(&e) && e.to_string().contains("out of memory"));
        assert!(h.submit("x").is_ok() && h.submit("y").is_ok());
        assert!(matches!(h.submit("z"), Err(GpuFault::DeviceLost { .. })));
        assert!(!is_gpu_fault(&anyhow::anyhow!("bad file")));
    }
}
