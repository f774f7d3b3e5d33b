//! Which adapter runs the kernels: listing what wgpu sees and picking one by index, name or kind.

use anyhow::{bail, Result};
use serde::Serialize;
use wgpu::{Backends, DeviceType};

/// Environment variable that sets llvmpipe's (lavapipe's) worker threads.
pub const LP_NUM_THREADS: &str = "LP_NUM_THREADS";

/// For the command line, before any adapter exists: where `LP_NUM_THREADS` is unset and the
/// machine has at most 4 CPUs, asks lavapipe for two worker threads per CPU. llvmpipe splits a
/// dispatch's workgroups into one chunk per thread, each thread takes a chunk when it wakes and
/// another if one is left, and the dispatch ends with its last chunk: with one chunk per CPU a
/// thread that wakes late holds up every dispatch; with two, the threads awake first take the
/// spare chunks. On CI's 2 cores decoding one sequence went from 27.5 to 31.6 tokens/s (mean of
/// 4 paired runs, each faster; prefill and 16 sequences within noise); larger machines were not
/// measured, so they keep llvmpipe's default. Other drivers ignore the variable, and no number
/// changes: workgroups compute alone. Returns the value now in effect, if any.
pub fn tune_software_threads() -> Option<String> {
    if std::env::var_os(LP_NUM_THREADS).is_none() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpus <= 4 {
            // Called first thing in main, before any other thread exists.
            std::env::set_var(LP_NUM_THREADS, (2 * cpus).to_string());
        }
    }
    std::env::var(LP_NUM_THREADS).ok()
}

/// What the user asked for on the command line (`--backend`, `--device`).
#[derive(Clone, Debug, Default)]
pub struct DeviceOptions {
    /// `vulkan`, `metal`, `dx12` or `gl`; `None` means every primary backend.
    pub backend: Option<String>,
    /// An adapter index (as `pingce devices` prints it) or a case-insensitive name substring.
    pub device: Option<String>,
    /// Storage bytes the run may allocate (`--gpu-memory-budget`): past it allocations fail as
    /// out of memory, as a full GPU would.
    pub memory_budget: Option<u64>,
}

impl DeviceOptions {
    pub fn backends(&self) -> Result<Backends> {
        Ok(match self.backend.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => Backends::PRIMARY,
            Some("vulkan") => Backends::VULKAN,
            Some("metal") => Backends::METAL,
            Some("dx12") => Backends::DX12,
            Some("gl") | Some("gles") => Backends::GL,
            Some(other) => bail!("unknown backend {other:?}: expected vulkan, metal, dx12 or gl"),
        })
    }
}

/// One adapter as `pingce devices` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub max_storage_binding_mib: u64,
    pub max_buffer_mib: u64,
    pub max_workgroup_storage_kib: u32,
    pub max_invocations_per_workgroup: u32,
    pub shader_f16: bool,
    pub subgroups: bool,
    pub timestamps: bool,
}

impl AdapterSummary {
    pub fn from_adapter(index: usize, adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features();
        AdapterSummary {
            index,
            name: info.name.clone(),
            backend: format!("{:?}", info.backend).to_lowercase(),
            device_type: device_type_name(info.device_type).into(),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            max_storage_binding_mib: limits.max_storage_buffer_binding_size as u64 >> 20,
            max_buffer_mib: limits.max_buffer_size >> 20,
            max_workgroup_storage_kib: limits.max_compute_workgroup_storage_size >> 10,
            max_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        }
    }
}

pub fn device_type_name(t: DeviceType) -> &'static str {
    match t {
        DeviceType::DiscreteGpu => "discrete-gpu",
        DeviceType::IntegratedGpu => "integrated-gpu",
        DeviceType::VirtualGpu => "virtual-gpu",
        DeviceType::Cpu => "cpu (software)",
        DeviceType::Other => "other",
    }
}

fn preference(t: DeviceType) -> u8 {
    match t {
        DeviceType::DiscreteGpu => 0,
        DeviceType::IntegratedGpu => 1,
        DeviceType::VirtualGpu => 2,
        DeviceType::Other => 3,
        DeviceType::Cpu => 4,
    }
}

pub fn instance(backends: Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu finds on the requested backends, in wgpu's order.
pub fn list_adapters(opts: &DeviceOptions) -> Result<Vec<wgpu::Adapter>> {
    let inst = instance(opts.backends()?);
    Ok(pollster::block_on(inst.enumerate_adapters(opts.backends()?)))
}

/// The adapter `opts` selects, and a note when it fell back to a software adapter.
pub fn select_adapter(opts: &DeviceOptions) -> Result<(wgpu::Adapter, Option<String>)> {
    let adapters = list_adapters(opts)?;
    if let Some(spec) = opts.device.as_deref() {
        if let Ok(i) = spec.parse::<usize>() {
            return match adapters.into_iter().nth(i) {
                Some(a) => Ok((a, None)),
                None => bail!("--device {i}: no adapter with that index (see `pingce devices`)"),
            };
        }
        let needle = spec.to_lowercase();
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        return match adapters.into_iter().find(|a| a.get_info().name.to_lowercase().contains(&needle)) {
            Some(a) => Ok((a, None)),
            None => bail!("--device {spec:?}: no adapter name contains it; adapters: {names:?}"),
        };
    }
    let best = adapters.into_iter().min_by_key(|a| preference(a.get_info().device_type));
    match best {
        Some(a) if a.get_info().device_type != DeviceType::Cpu => Ok((a, None)),
        other => {
            // No hardware adapter: ask Vulkan for its fallback (software) adapter, e.g. lavapipe.
            let inst = instance(Backends::VULKAN);
            let fallback = pollster::block_on(inst.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: true,
                compatible_surface: None,
                apply_limit_buckets: false,
            }));
            let a = match (fallback, other) {
                (Ok(a), _) => a,
                (Err(_), Some(a)) => a,
                (Err(e), None) => bail!(
                    "no GPU adapter and no software Vulkan adapter found ({e}); install Mesa's lavapipe \
                     (Debian: apt-get install mesa-vulkan-drivers libvulkan1)"
                ),
            };
            let note = format!("no hardware GPU adapter found: using software adapter {:?}", a.get_info().name);
            Ok((a, Some(note)))
        }
    }
}
