//! The device layer: one wgpu device and queue, buffers sized from the adapter's limits, compute
//! pipelines compiled once and cached, and wgpu errors turned into errors that say what was done.

pub mod fault;
pub mod recorder;
pub mod select;
pub mod shader;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
pub use fault::{is_gpu_fault, FaultHooks, GpuFault};
pub use recorder::Recorder;
pub use select::{AdapterSummary, DeviceOptions};

/// A compiled compute pipeline and the layout of its bind group 0.
pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub name: String,
}

/// The GPU every kernel runs on.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Largest byte size of one storage binding; tensors above it are split into chunks.
    pub max_binding: u64,
    kernels: Mutex<HashMap<String, Arc<Kernel>>>,
    /// Errors wgpu reported outside an error scope, and a lost device; checked after each wait.
    failures: Arc<Mutex<Vec<String>>>,
    /// A memory budget and an injected device loss (tests; `--gpu-memory-budget`).
    pub hooks: FaultHooks,
    /// Kernels laid out for a CPU adapter with subgroups of at least 8 lanes: the matrix-vector
    /// kernel shares x through subgroup broadcasts (`X_SUBGROUP`), reads whole blocks with `WV`
    /// and takes every row count for the formats `matvec::reads_whole_blocks` names, in
    /// workgroups of one subgroup; attention runs `attention_lanes.wgsl`. Off (GPUs), the linear
    /// kernels take the split-K form of the order (`kernels::linear::split_k`), the same bits as
    /// on for k up to one segment. Tests switch it to check the other variants on one adapter.
    pub subgroup_x: bool,
    /// Uniform and readback buffers of finished submissions, kept for the next ones: a decode
    /// step would otherwise allocate (and a software adapter map, zero and unmap) both anew.
    spare: Mutex<Spare>,
    /// Bind groups made for earlier submissions, by kernel and bindings: a decode step binds the
    /// same buffers at the same parameter offsets as the step before (a software adapter spends
    /// about half of the host's time per step making them). Cleared whenever a buffer is
    /// allocated, so that it never keeps a replaced buffer alive for long.
    bind_groups: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
}

/// What a bind group binds: the kernel (by address: compiled kernels are never dropped), its
/// parameters' buffer and range, and the buffers at bindings 1, 2, ...
#[derive(PartialEq, Eq, Hash)]
struct BindKey {
    kernel: usize,
    params: wgpu::Buffer,
    offset: u64,
    size: u64,
    buffers: Vec<wgpu::Buffer>,
}

/// Bind groups kept at most (a pass binds a few hundred).
const BIND_GROUPS_KEEP: usize = 4096;

/// Buffers a submission needs only while it runs, by kind ([`Gpu::take_spare`]).
#[derive(Default)]
struct Spare {
    uniform: Vec<wgpu::Buffer>,
    readback: Vec<wgpu::Buffer>,
    scratch: Vec<wgpu::Buffer>,
}

impl Spare {
    fn of(&mut self, kind: SpareKind) -> &mut Vec<wgpu::Buffer> {
        match kind {
            SpareKind::Uniform => &mut self.uniform,
            SpareKind::Readback => &mut self.readback,
            SpareKind::Scratch => &mut self.scratch,
        }
    }
}

/// What a spare buffer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpareKind {
    /// Kernel parameters (uniform, written before each submission).
    Uniform,
    /// The host's copy of results (mapped for reading after the submission).
    Readback,
    /// Storage passed between kernels within one submission ([`Recorder::scratch`]).
    Scratch,
}

/// Spare buffers kept per kind, and the largest kept (a pass's uniforms and scores are a few
/// KiB to a few MiB; a rare large readback, such as whole logit rows, is not worth holding on to).
const SPARE_KEEP: usize = 4;
const SPARE_MAX_BYTES: u64 = 16 << 20;

impl Gpu {
    /// Opens the adapter `opts` selects, requesting all of its limits. Returns a note when it
    /// fell back to a software adapter.
    pub fn open(opts: &DeviceOptions) -> Result<(Gpu, Option<String>)> {
        let (adapter, note) = select::select_adapter(opts)?;
        let mut gpu = Gpu::from_adapter(adapter)?;
        gpu.hooks = FaultHooks::from_env(opts.memory_budget);
        Ok((gpu, note))
    }

    /// The default adapter (a hardware GPU if any, else the software one), quietly.
    pub fn default_device() -> Result<Gpu> {
        Ok(Gpu::open(&DeviceOptions::default())?.0)
    }

    pub fn from_adapter(adapter: wgpu::Adapter) -> Result<Gpu> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("pingce"),
            // Subgroups where there are any: the CPU-adapter kernels (see `subgroup_x`).
            required_features: adapter.features() & wgpu::Features::SUBGROUP,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .with_context(|| format!("opening device on adapter {:?}", info.name))?;
        let failures = Arc::new(Mutex::new(Vec::new()));
        let f = failures.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            f.lock().unwrap().push(e.to_string());
        }));
        let f = failures.clone();
        device.set_device_lost_callback(move |reason, msg| {
            f.lock().unwrap().push(format!("device lost ({reason:?}): {msg}"));
        });
        let max_binding = (limits.max_storage_buffer_binding_size as u64).min(limits.max_buffer_size);
        let subgroup_x = device.features().contains(wgpu::Features::SUBGROUP) && info.subgroup_min_size >= 8 && info.device_type == wgpu::DeviceType::Cpu;
        Ok(Gpu { device, queue, info, limits, max_binding, kernels: Mutex::new(HashMap::new()), failures, hooks: FaultHooks::default(), subgroup_x, spare: Mutex::default(), bind_groups: Mutex::default() })
    }

    /// Lowers the chunking threshold (tests use it to exercise chunked bindings on small tensors).
    pub fn with_max_binding(mut self, bytes: u64) -> Self {
        self.max_binding = bytes.min(self.max_binding) & !255;
        self
    }

    /// One line naming the adapter, backend and driver, for logs and manifests.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {}, driver {} {})",
            self.info.name,
            self.info.backend,
            select::device_type_name(self.info.device_type),
            self.info.driver,
            self.info.driver_info
        )
    }

    /// Fails with the first error wgpu reported since the last check, naming `what`.
    pub fn check(&self, what: &str) -> Result<()> {
        let mut f = self.failures.lock().unwrap();
        if let Some(first) = f.first().cloned() {
            let n = f.len();
            f.clear();
            let more = if n > 1 { format!(" (and {} more)", n - 1) } else { String::new() };
            let lower = first.to_ascii_lowercase();
            if lower.contains("device lost") || lower.contains("lost device") {
                return Err(GpuFault::DeviceLost { what: what.to_string(), detail: format!("{first}{more}") }.into());
            }
            if lower.contains("out of memory") {
                return Err(GpuFault::OutOfMemory { what: what.to_string(), detail: format!("{first}{more}") }.into());
            }
            bail!("GPU error while {what}: {first}{more}");
        }
        Ok(())
    }

    /// A storage buffer of `size` bytes (rounded up to 4), catching out-of-memory.
    pub fn storage(&self, label: &str, size: u64) -> Result<wgpu::Buffer> {
        self.buffer(label, size, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC)
    }

    pub fn buffer(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        // Multiples of 16 bytes, so a buffer can also be read as vec4 to its last byte.
        let size = size.max(16).next_multiple_of(16);
        if size > self.limits.max_buffer_size {
            bail!(
                "buffer {label:?} needs {} MiB, above the adapter's largest buffer ({} MiB)",
                size >> 20,
                self.limits.max_buffer_size >> 20
            );
        }
        if usage.contains(wgpu::BufferUsages::STORAGE) {
            self.hooks.allocate(label, size)?;
        }
        self.bind_groups.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: false });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuFault::OutOfMemory { what: format!("allocating {label:?} ({} MiB)", size >> 20), detail: e.to_string() }.into());
        }
        Ok(buf)
    }

    /// A buffer of `kind` holding at least `size` bytes: a spare one given back by an earlier
    /// submission ([`put_spare`](Self::put_spare)), else a new one (a power of two, so that it
    /// serves later submissions of similar size). Only for work that is waited for before the
    /// buffer is given back, so no submission in flight still uses it.
    pub fn take_spare(&self, kind: SpareKind, size: u64) -> Result<wgpu::Buffer> {
        let size = size.max(16).next_multiple_of(16);
        {
            let mut s = self.spare.lock().unwrap_or_else(|e| e.into_inner());
            let list = s.of(kind);
            if let Some(i) = list.iter().position(|b| b.size() >= size) {
                return Ok(list.swap_remove(i));
            }
        }
        let (label, usage) = match kind {
            SpareKind::Uniform => ("params", wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST),
            SpareKind::Readback => ("readback", wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
            SpareKind::Scratch => ("scratch", wgpu::BufferUsages::STORAGE),
        };
        self.buffer(label, size.next_power_of_two().min(self.limits.max_buffer_size.max(size)), usage)
    }

    /// Gives back a buffer from [`take_spare`](Self::take_spare) once its submission has finished
    /// (and, for a readback buffer, it is unmapped).
    pub fn put_spare(&self, kind: SpareKind, buf: wgpu::Buffer) {
        let mut s = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        let list = s.of(kind);
        if list.len() < SPARE_KEEP && buf.size() <= SPARE_MAX_BYTES {
            list.push(buf);
        }
    }

    /// The bind group of `kernel` with its parameters at `offset..offset + size` of `params` and
    /// `buffers` at bindings 1, 2, ...: made once, then reused (see `bind_groups`).
    pub fn bind_group(&self, kernel: &Arc<Kernel>, params: &wgpu::Buffer, offset: u64, size: u64, buffers: &[wgpu::Buffer]) -> wgpu::BindGroup {
        let key = BindKey { kernel: Arc::as_ptr(kernel) as usize, params: params.clone(), offset, size, buffers: buffers.to_vec() };
        let mut cache = self.bind_groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = cache.get(&key) {
            return g.clone();
        }
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: params, offset, size: wgpu::BufferSize::new(size) }),
        }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
        }
        let g = self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(&kernel.name), layout: &kernel.layout, entries: &entries });
        if cache.len() >= BIND_GROUPS_KEEP {
            cache.clear();
        }
        cache.insert(key, g.clone());
        g
    }

    /// A storage buffer holding `data`.
    pub fn upload(&self, label: &str, data: &[u8]) -> Result<wgpu::Buffer> {
        let buf = self.storage(label, data.len() as u64)?;
        self.write(&buf, 0, data);
        Ok(buf)
    }

    /// Writes `data` at byte `offset`, padding the tail to 4 bytes as wgpu requires.
    pub fn write(&self, buf: &wgpu::Buffer, offset: u64, data: &[u8]) {
        if data.len() % 4 == 0 {
            self.queue.write_buffer(buf, offset, data);
        } else {
            let mut v = data.to_vec();
            v.resize(data.len().next_multiple_of(4), 0);
            self.queue.write_buffer(buf, offset, &v);
        }
    }

    /// The compiled kernel `key`, building it from `source()` on first use.
    pub fn kernel(&self, key: &str, source: impl FnOnce() -> Result<String>) -> Result<Arc<Kernel>> {
        if let Some(k) = self.kernels.lock().unwrap().get(key) {
            return Ok(k.clone());
        }
        let src = source()?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(key),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(key),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            bail!("compiling kernel {key}: {e}");
        }
        let layout = pipeline.get_bind_group_layout(0);
        let k = Arc::new(Kernel { pipeline, layout, name: key.to_string() });
        self.kernels.lock().unwrap().insert(key.to_string(), k.clone());
        Ok(k)
    }

    /// Submits `cmd` and waits for it, turning wgpu errors into an error about `what`.
    pub fn submit_wait(&self, cmd: wgpu::CommandBuffer, what: &str) -> Result<()> {
        let idx = self.submit(cmd, what)?;
        self.wait(idx, what)
    }

    /// Submits `cmd` without waiting for it (see [`wait`](Self::wait)).
    pub fn submit(&self, cmd: wgpu::CommandBuffer, what: &str) -> Result<wgpu::SubmissionIndex> {
        self.hooks.submit(what)?;
        Ok(self.queue.submit([cmd]))
    }

    /// Waits for submission `idx` to finish, turning wgpu errors into an error about `what`.
    pub fn wait(&self, idx: wgpu::SubmissionIndex, what: &str) -> Result<()> {
        let polled = self.device.poll(wgpu::PollType::Wait { submission_index: Some(idx), timeout: None });
        // A rejected submission fails the wait too: report what wgpu said about it first.
        self.check(what)?;
        polled.map_err(|e| poll_error(what, e))?;
        self.check(what)
    }

    /// Copies `len` bytes at `offset` of `buf` back to the host.
    pub fn read_bytes(&self, buf: &wgpu::Buffer, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut enc = self.device.create_command_encoder(&Default::default());
        let staging = self.copy_out(&mut enc, buf, offset, len)?;
        self.submit_wait(enc.finish(), "copying results back")?;
        self.read_staging(staging, len)
    }

    /// Records a copy of `len` bytes at `offset` of `buf` into a readback buffer, to be read with
    /// [`read_staging`](Self::read_staging) once the encoder's submission has finished.
    pub fn copy_out(&self, enc: &mut wgpu::CommandEncoder, buf: &wgpu::Buffer, offset: u64, len: u64) -> Result<wgpu::Buffer> {
        let len4 = len.max(4).next_multiple_of(4);
        let staging = self.take_spare(SpareKind::Readback, len4)?;
        enc.copy_buffer_to_buffer(buf, offset, &staging, 0, len4);
        Ok(staging)
    }

    /// The first `len` bytes of a readback buffer from [`copy_out`](Self::copy_out), whose
    /// submission has finished; the buffer goes back to the spares.
    pub fn read_staging(&self, staging: wgpu::Buffer, len: u64) -> Result<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device.poll(wgpu::PollType::Wait { submission_index: None, timeout: None }).map_err(|e| poll_error("mapping results", e))?;
        rx.recv()?.map_err(|e| anyhow!("mapping readback buffer: {e}"))?;
        let data = staging.get_mapped_range(..).map_err(|e| anyhow!("reading back results: {e:?}"))?[..len as usize].to_vec();
        staging.unmap();
        self.put_spare(SpareKind::Readback, staging);
        Ok(data)
    }

    pub fn read_f32(&self, buf: &wgpu::Buffer, offset_elems: u64, n: usize) -> Result<Vec<f32>> {
        let b = self.read_bytes(buf, offset_elems * 4, n as u64 * 4)?;
        Ok(bytemuck::pod_collect_to_vec(&b))
    }

    pub fn read_u32(&self, buf: &wgpu::Buffer, offset_elems: u64, n: usize) -> Result<Vec<u32>> {
        let b = self.read_bytes(buf, offset_elems * 4, n as u64 * 4)?;
        Ok(bytemuck::pod_collect_to_vec(&b))
    }

    /// Starts recording a sequence of kernel dispatches.
    pub fn recorder(&self) -> Recorder<'_> {
        Recorder::new(self)
    }
}

/// A failed wait: a lost device is a [`GpuFault`], anything else a plain error.
fn poll_error(what: &str, e: wgpu::PollError) -> anyhow::Error {
    match e {
        wgpu::PollError::Timeout => anyhow!("GPU error while {what}: timed out"),
        other => {
            let detail = other.to_string();
            if detail.to_ascii_lowercase().contains("lost") {
                GpuFault::DeviceLost { what: what.to_string(), detail }.into()
            } else {
                anyhow!("GPU error while {what}: {detail}")
            }
        }
    }
}
