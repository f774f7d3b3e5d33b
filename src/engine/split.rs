//! Loading a model over several devices (`--devices`) and with host-resident experts
//! (`--experts-on host`), after checking the memory plan: loading refuses, naming the device
//! and the shortfall, before anything is allocated when the weights would not fit.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::batch::{Stage, Workspace};
use super::{Engine, EngineOptions};
use crate::device::{Gpu, GpuFault};
use crate::model::plan::{split_layers, CacheSize, DeviceSpec, Dtypes, ExpertsOn, MemoryPlan, PlanOptions};
use crate::model::split::LoadOptions;
use crate::model::Decoder;

/// Where the model's parts go.
#[derive(Clone, Debug)]
pub struct Placement {
    pub experts_on: ExpertsOn,
    pub expert_cache: Option<CacheSize>,
    /// Positions per sequence the plan's KV-cache estimate is made for (warnings only).
    pub context: Option<usize>,
}

impl Default for Placement {
    fn default() -> Self {
        Placement { experts_on: ExpertsOn::Gpu, expert_cache: None, context: None }
    }
}

/// The device specs a plan needs, from opened devices: their limits and memory budgets.
pub fn device_specs(gpus: &[Gpu]) -> Vec<DeviceSpec> {
    gpus.iter()
        .enumerate()
        .map(|(i, g)| DeviceSpec {
            label: format!("{i} ({})", g.info.name),
            max_binding: g.max_binding,
            max_buffer: g.limits.max_buffer_size,
            limit: g.hooks.budget,
        })
        .collect()
}

impl Engine {
    /// Loads the model at `dir` over `gpus` (layers split across them in order; one device
    /// holds all), experts where `place` says, after checking the memory plan.
    pub fn load_on(gpus: Vec<Gpu>, dir: &Path, opts: EngineOptions, place: &Placement) -> Result<Engine> {
        let (cfg, tokenizer, src, files) = Engine::open_model(dir)?;
        let specs = device_specs(&gpus);
        let popts = PlanOptions {
            devices: specs,
            context: place.context.unwrap_or(cfg.max_position_embeddings.min(2048)),
            batch_size: opts.batch_size,
            max_batch_tokens: opts.max_batch_tokens,
            experts_on: place.experts_on,
            expert_cache: place.expert_cache,
        };
        // A plan needs every tensor the sizer knows of. Where it cannot be made (bad or missing
        // tensors, a layout it does not size) loading goes on unplanned with layers split evenly,
        // and the loader reports what is wrong with the weights in its own words.
        let ranges = match MemoryPlan::new(&dir.display().to_string(), &cfg, &Dtypes::Source(src.as_ref()), &popts) {
            Ok(plan) => {
                let refused = plan.load_problems();
                if !refused.is_empty() {
                    return Err(GpuFault::OutOfMemory {
                        what: "loading weights (refused before allocating, by the memory plan)".into(),
                        detail: format!("{}\n{}", refused.join("\n"), plan.render()),
                    }
                    .into());
                }
                plan.ranges()
            }
            Err(_) => {
                if cfg.moe.is_none() && place.experts_on == ExpertsOn::Host {
                    bail!("--experts-on host: the model has no routed experts ({} is dense)", dir.display());
                }
                split_layers(&vec![1; cfg.num_layers], 0, 0, gpus.len())?
            }
        };
        let mut slices = Vec::with_capacity(gpus.len());
        for (i, gpu) in gpus.into_iter().enumerate() {
            let lo = LoadOptions::slice(&ranges, i, place.experts_on, place.expert_cache);
            let model = Decoder::load_with(&gpu, cfg.clone(), src.as_ref(), &lo).with_context(|| format!("loading weights from {} (device {i})", dir.display()))?;
            slices.push((gpu, model));
        }
        let mut it = slices.into_iter();
        let (gpu, model) = it.next().context("no device given")?;
        let mut engine = Engine::new(gpu, model, tokenizer, opts, files);
        engine.rest = it.map(|(gpu, model)| Stage { gpu, model, ws: Workspace::default() }).collect();
        Ok(engine)
    }

    /// Every device the model runs on, one line each joined by " + ".
    pub fn describe_devices(&self) -> String {
        let mut v = vec![self.gpu.describe()];
        v.extend(self.rest.iter().map(|s| s.gpu.describe()));
        v.join(" + ")
    }

    /// Bytes of weights held on the GPUs, all devices together.
    pub fn weight_bytes(&self) -> u64 {
        self.model.weight_bytes() + self.rest.iter().map(|s| s.model.weight_bytes()).sum::<u64>()
    }

    /// Storage bytes allocated on every device together.
    pub fn allocated(&self) -> u64 {
        self.gpu.hooks.allocated() + self.rest.iter().map(|s| s.gpu.hooks.allocated()).sum::<u64>()
    }
}
