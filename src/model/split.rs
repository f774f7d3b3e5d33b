//! Which part of a model one device loads: a contiguous range of decoder layers, with the
//! embedding on the first device and the final norm and LM head on the last, and where the
//! routed experts live. The engine runs the slices in order and hands the hidden states from
//! one device to the next through host memory (`engine::split`).

use std::ops::Range;

use super::config::Config;
use super::plan::{CacheSize, ExpertsOn};

#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub layers: Range<usize>,
    pub embedding: bool,
    pub head: bool,
    pub experts_on: ExpertsOn,
    /// Size of the GPU expert cache with `--experts-on host` (default: one layer's experts).
    pub expert_cache: Option<CacheSize>,
}

impl LoadOptions {
    /// The whole model on one device, experts on the GPU.
    pub fn whole(cfg: &Config) -> LoadOptions {
        LoadOptions { layers: 0..cfg.num_layers, embedding: true, head: true, experts_on: ExpertsOn::Gpu, expert_cache: None }
    }

    /// Slice `i` of `ranges` (device `i` of a split).
    pub fn slice(ranges: &[Range<usize>], i: usize, experts_on: ExpertsOn, expert_cache: Option<CacheSize>) -> LoadOptions {
        LoadOptions { layers: ranges[i].clone(), embedding: i == 0, head: i + 1 == ranges.len(), experts_on, expert_cache }
    }
}
