//! `pingce plan`: the memory each adapter will need, before loading anything.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use pingce::device::select::select_adapter;
use pingce::device::DeviceOptions;
use pingce::engine::EngineOptions;
use pingce::model::gguf::GgufModel;
use pingce::model::plan::{parse_dtype, CacheSize, DeviceSpec, Dtypes, ExpertsOn, MemoryPlan, PlanOptions};
use pingce::model::weights::{Safetensors, TensorSource};
use pingce::model::Config;

use super::{at_least_one, parse_experts_on, parse_size, CheckFailed};

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// A GGUF file or a Hugging Face folder; a folder with only config.json needs --assume-dtype.
    /// Default: $PINGCE_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Adapters to split the layers across (as `eval --devices`); default: the one adapter.
    #[arg(long, value_delimiter = ',')]
    devices: Vec<String>,
    /// Backend: vulkan, metal, dx12 or gl.
    #[arg(long)]
    backend: Option<String>,
    /// Positions per sequence the KV cache is sized for (default: the model's context, at most 4096).
    #[arg(long)]
    context: Option<usize>,
    /// Sequences per pass.
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    batch_size: usize,
    #[arg(long, value_name = "gpu|host", default_value = "gpu", value_parser = parse_experts_on)]
    experts_on: ExpertsOn,
    /// GPU expert cache with --experts-on host: bytes (512M, 2G) or slots (16experts).
    #[arg(long, value_name = "SIZE", value_parser = CacheSize::parse)]
    expert_cache: Option<CacheSize>,
    /// Each device's memory (bytes or K/M/G): totals are checked against it.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    gpu_memory_budget: Option<u64>,
    /// Plan for devices whose largest storage binding is SIZE instead of asking the adapters
    /// (plans for GPUs this machine does not have; `--devices` entries then only name them).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_binding: Option<u64>,
    /// Take every weight matrix as stored in this dtype (F16, BF16, Q8_0, Q4_K, ...) instead of
    /// reading the weight headers: for a config.json without weights.
    #[arg(long, value_name = "DTYPE")]
    assume_dtype: Option<String>,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: PlanArgs) -> Result<()> {
    let path = match &a.model {
        Some(p) => p.clone(),
        None => pingce::default_model(),
    };
    let assumed = a.assume_dtype.as_deref().map(parse_dtype).transpose()?;
    let (cfg, src): (Config, Option<Box<dyn TensorSource>>) = if path.is_file() && path.extension().is_some_and(|e| e == "gguf") {
        let g = GgufModel::open(&path)?;
        (g.cfg.clone(), Some(Box::new(g)))
    } else if path.is_dir() {
        let cfg = Config::load(&path.join("config.json"))?;
        let has_weights = path.join("model.safetensors").exists() || path.join("model.safetensors.index.json").exists();
        let src: Option<Box<dyn TensorSource>> = if has_weights && assumed.is_none() { Some(Box::new(Safetensors::open_dir(&path)?)) } else { None };
        if src.is_none() && assumed.is_none() {
            bail!("{}: no model.safetensors or model.safetensors.index.json; give --assume-dtype to plan from config.json alone", path.display());
        }
        (cfg, src)
    } else {
        bail!("model {} does not exist (a .gguf file or a model folder)", path.display());
    };
    let labels: Vec<String> = if a.devices.is_empty() { vec![String::new()] } else { a.devices.iter().map(|d| d.trim().to_string()).collect() };
    let mut devices = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        let spec = match a.max_binding {
            Some(mb) => DeviceSpec {
                label: if l.is_empty() { format!("{i}") } else { l.clone() },
                max_binding: mb & !255,
                max_buffer: u64::MAX,
                limit: a.gpu_memory_budget,
            },
            None => {
                let opts = DeviceOptions { backend: a.backend.clone(), device: (!l.is_empty()).then(|| l.clone()), memory_budget: a.gpu_memory_budget };
                let (adapter, _) = select_adapter(&opts)?;
                let lim = adapter.limits();
                let name = adapter.get_info().name;
                DeviceSpec {
                    label: if a.devices.is_empty() { format!("{i} ({name})") } else { format!("{i} (--devices {l}: {name})") },
                    max_binding: lim.max_storage_buffer_binding_size.min(lim.max_buffer_size),
                    max_buffer: lim.max_buffer_size,
                    limit: a.gpu_memory_budget,
                }
            }
        };
        devices.push(spec);
    }
    let opts = PlanOptions {
        devices,
        context: a.context.unwrap_or(cfg.max_position_embeddings.min(4096)),
        batch_size: a.batch_size,
        max_batch_tokens: EngineOptions::default().max_batch_tokens,
        experts_on: a.experts_on,
        expert_cache: a.expert_cache,
    };
    let dtypes = match (&src, assumed) {
        (_, Some(d)) => Dtypes::Assumed(d),
        (Some(s), None) => Dtypes::Source(s.as_ref()),
        (None, None) => unreachable!(),
    };
    let plan = MemoryPlan::new(&path.display().to_string(), &cfg, &dtypes, &opts)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", plan.render());
    }
    if !plan.fits {
        return Err(CheckFailed(format!("the model does not fit: {}", plan.devices.iter().flat_map(|d| d.problems.iter().cloned()).collect::<Vec<_>>().join("; "))).into());
    }
    Ok(())
}
