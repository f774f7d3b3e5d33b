//! Records kernel dispatches for one submission: every dispatch's parameters go into a single
//! uniform buffer, so a whole forward pass is one command buffer with no host round trip.

use std::sync::Arc;

use anyhow::Result;
use bytemuck::Pod;

use super::{Gpu, Kernel, SpareKind};

struct Dispatch {
    kernel: Arc<Kernel>,
    buffers: Vec<wgpu::Buffer>,
    param_offset: u64,
    param_size: u64,
    groups: [u32; 3],
}

/// A buffer copy made before the recorded dispatches: (source, offset, destination, offset, bytes).
type Copy = (wgpu::Buffer, u64, wgpu::Buffer, u64, u64);

pub struct Recorder<'g> {
    gpu: &'g Gpu,
    params: Vec<u8>,
    dispatches: Vec<Dispatch>,
    /// Copies made before the first dispatch ([`copy_first`](Self::copy_first)).
    copies: Vec<Copy>,
    /// Storage the recorded kernels pass between them within the submission ([`scratch`](Self::scratch)).
    scratch: Vec<wgpu::Buffer>,
}

/// Splits `n` workgroups over x and y so that neither exceeds the per-dimension limit.
/// Kernels rebuild the linear index as `wid.x + wid.y * nwg.x` and skip indices `>= n`.
pub fn grid(n: u32, max_dim: u32) -> [u32; 3] {
    if n <= max_dim {
        [n.max(1), 1, 1]
    } else {
        let y = n.div_ceil(max_dim);
        [n.div_ceil(y), y, 1]
    }
}

impl<'g> Recorder<'g> {
    pub fn new(gpu: &'g Gpu) -> Self {
        Recorder { gpu, params: Vec::new(), dispatches: Vec::new(), copies: Vec::new(), scratch: Vec::new() }
    }

    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// Adds a dispatch: `params` (laid out as the shader's uniform struct, padded here to 16
    /// bytes) binds at 0, `buffers` at 1, 2, ... in order.
    pub fn dispatch<P: Pod>(&mut self, kernel: Arc<Kernel>, params: &P, buffers: &[&wgpu::Buffer], groups: [u32; 3]) {
        let bytes = bytemuck::bytes_of(params);
        let align = self.gpu.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let offset = self.params.len().next_multiple_of(align);
        self.params.resize(offset, 0);
        self.params.extend_from_slice(bytes);
        let size = bytes.len().next_multiple_of(16);
        self.params.resize(offset + size, 0);
        self.dispatches.push(Dispatch {
            kernel,
            buffers: buffers.iter().map(|b| (*b).clone()).collect(),
            param_offset: offset as u64,
            param_size: size as u64,
            groups,
        });
    }

    /// A dispatch over `n` workgroups laid out linearly (see [`grid`]).
    pub fn dispatch_linear<P: Pod>(&mut self, kernel: Arc<Kernel>, params: &P, buffers: &[&wgpu::Buffer], n: u32) {
        let g = grid(n, self.gpu.limits.max_compute_workgroups_per_dimension);
        self.dispatch(kernel, params, buffers, g)
    }

    /// A storage buffer of at least `size` bytes for results one recorded kernel leaves for the
    /// next (attention's key spans for its combine kernel): every call of the submission gets the
    /// same buffer (grown if needed), as its dispatches run one after another; it goes back to
    /// the spares once the submission has finished.
    pub fn scratch(&mut self, size: u64) -> Result<wgpu::Buffer> {
        if let Some(b) = self.scratch.last().filter(|b| b.size() >= size) {
            return Ok(b.clone());
        }
        let b = self.gpu.take_spare(SpareKind::Scratch, size)?;
        self.scratch.push(b.clone());
        Ok(b)
    }

    /// Copies `size` bytes at `src_offset` of `src` to `dst_offset` of `dst` before any of the
    /// recorded dispatches run (and after the buffer writes made before the submission): a pass's
    /// input taken from an earlier pass's results on the device (offsets and size multiples of 4).
    pub fn copy_first(&mut self, src: &wgpu::Buffer, src_offset: u64, dst: &wgpu::Buffer, dst_offset: u64, size: u64) {
        self.copies.push((src.clone(), src_offset, dst.clone(), dst_offset, size));
    }

    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty() && self.copies.is_empty()
    }

    /// Encodes everything recorded, its parameters in a spare uniform buffer (returned, to be
    /// given back once the submission has finished).
    fn encode(self) -> Result<(Option<wgpu::Buffer>, wgpu::CommandEncoder)> {
        let gpu = self.gpu;
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for (src, so, dst, d, n) in &self.copies {
            enc.copy_buffer_to_buffer(src, *so, dst, *d, *n);
        }
        if self.dispatches.is_empty() {
            return Ok((None, enc));
        }
        let ubuf = gpu.take_spare(SpareKind::Uniform, self.params.len() as u64)?;
        gpu.write(&ubuf, 0, &self.params);
        let groups: Vec<wgpu::BindGroup> = self.dispatches.iter().map(|d| gpu.bind_group(&d.kernel, &ubuf, d.param_offset, d.param_size, &d.buffers)).collect();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for (d, bg) in self.dispatches.iter().zip(&groups) {
                pass.set_pipeline(&d.kernel.pipeline);
                pass.set_bind_group(0, bg, &[]);
                pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
            }
        }
        Ok((Some(ubuf), enc))
    }

    /// Submits what is recorded so far and waits, leaving the recorder empty to go on recording
    /// (a pass that must read something back midway: host-resident experts).
    pub fn flush(&mut self, what: &str) -> Result<()> {
        let done = std::mem::replace(self, Recorder::new(self.gpu));
        done.submit(what)
    }

    /// Encodes, submits and waits; `what` names the work in any error.
    pub fn submit(self, what: &str) -> Result<()> {
        self.submit_then_read(what, None).map(|_| ())
    }

    /// [`submit`](Self::submit), then `len` bytes at `offset` of `buf` back to the host, copied
    /// in the same submission after the last dispatch: one wait per pass, not two.
    pub fn submit_read(self, what: &str, buf: &wgpu::Buffer, offset: u64, len: u64) -> Result<Vec<u8>> {
        Ok(self.submit_then_read(what, Some((buf, offset, len)))?.unwrap_or_default())
    }

    /// [`submit_read`](Self::submit_read) without waiting: the bytes come with
    /// [`Pending::wait`], so the host can record the next pass while this one runs. Passes
    /// run in submission order, so a later pass may read what this one writes.
    pub fn submit_read_later(self, what: &str, buf: &wgpu::Buffer, offset: u64, len: u64) -> Result<Pending> {
        self.submit_later(what, Some((buf, offset, len)))
    }

    fn submit_then_read(self, what: &str, read: Option<(&wgpu::Buffer, u64, u64)>) -> Result<Option<Vec<u8>>> {
        let gpu = self.gpu;
        self.submit_later(what, read)?.finish(gpu)
    }

    /// Encodes and submits, the copy back (if any) in the same submission after the last
    /// dispatch; with `PINGCE_PROFILE`, runs it all at once instead.
    fn submit_later(mut self, what: &str, read: Option<(&wgpu::Buffer, u64, u64)>) -> Result<Pending> {
        let gpu = self.gpu;
        let scratch = std::mem::take(&mut self.scratch);
        let state = if profile::enabled() {
            self.submit_profiled(what)?;
            let data = read.map(|(buf, offset, len)| gpu.read_bytes(buf, offset, len)).transpose()?;
            // Given back only after a finished submission (an error may leave one running).
            for b in scratch {
                gpu.put_spare(SpareKind::Scratch, b);
            }
            PendingState::Read(data)
        } else {
            let (ubuf, mut enc) = self.encode()?;
            let staging = read.map(|(buf, offset, len)| gpu.copy_out(&mut enc, buf, offset, len).map(|s| (s, len))).transpose()?;
            let index = gpu.submit(enc.finish(), what)?;
            PendingState::Running { index, ubuf, staging, scratch }
        };
        Ok(Pending { what: what.to_string(), state })
    }

    /// `PINGCE_PROFILE` set: each dispatch submitted and waited for on its own, its wall time
    /// added to its kernel's total (see [`profile::report`]). Results are the same; only slower.
    fn submit_profiled(self, what: &str) -> Result<()> {
        let gpu = self.gpu;
        let Recorder { params, dispatches, mut copies, .. } = self;
        if dispatches.is_empty() && !copies.is_empty() {
            let (_, enc) = Recorder { copies, ..Recorder::new(gpu) }.encode()?;
            return gpu.submit_wait(enc.finish(), what);
        }
        for d in dispatches {
            let mut one = Recorder::new(gpu);
            // The copies go first, with the first dispatch.
            one.copies = std::mem::take(&mut copies);
            one.params = params[d.param_offset as usize..(d.param_offset + d.param_size) as usize].to_vec();
            let name = format!("{} {:?}", d.kernel.name, d.groups);
            one.dispatches.push(Dispatch { param_offset: 0, ..d });
            let (ubuf, enc) = one.encode()?;
            let t = std::time::Instant::now();
            gpu.submit_wait(enc.finish(), what)?;
            profile::add(name, t.elapsed());
            if let Some(u) = ubuf {
                gpu.put_spare(SpareKind::Uniform, u);
            }
        }
        Ok(())
    }
}

/// A submission from [`Recorder::submit_read_later`] whose results are not read yet.
pub struct Pending {
    what: String,
    state: PendingState,
}

enum PendingState {
    Running { index: wgpu::SubmissionIndex, ubuf: Option<wgpu::Buffer>, staging: Option<(wgpu::Buffer, u64)>, scratch: Vec<wgpu::Buffer> },
    /// Already finished (`PINGCE_PROFILE` runs every dispatch on its own).
    Read(Option<Vec<u8>>),
}

impl Pending {
    /// Waits for the submission and returns the bytes it copied back; its buffers go back to the
    /// spares. Dropped instead, they are simply freed once the device is done with them.
    pub fn wait(self, gpu: &Gpu) -> Result<Vec<u8>> {
        Ok(self.finish(gpu)?.unwrap_or_default())
    }

    fn finish(self, gpu: &Gpu) -> Result<Option<Vec<u8>>> {
        match self.state {
            PendingState::Read(data) => Ok(data),
            PendingState::Running { index, ubuf, staging, scratch } => {
                gpu.wait(index, &self.what)?;
                if let Some(u) = ubuf {
                    gpu.put_spare(SpareKind::Uniform, u);
                }
                for b in scratch {
                    gpu.put_spare(SpareKind::Scratch, b);
                }
                staging.map(|(s, len)| gpu.read_staging(s, len)).transpose()
            }
        }
    }
}

/// Wall time per kernel (and grid) when `PINGCE_PROFILE` is set: a developer's view of where a
/// pass spends its time. Dispatches are then serialised, so totals include per-submit overhead.
pub mod profile {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    static TIMES: Mutex<Option<HashMap<String, (u64, Duration)>>> = Mutex::new(None);

    pub fn enabled() -> bool {
        std::env::var_os("PINGCE_PROFILE").is_some_and(|v| !v.is_empty() && v != "0")
    }

    pub fn add(name: String, t: Duration) {
        let mut g = TIMES.lock().unwrap_or_else(|e| e.into_inner());
        let e = g.get_or_insert_with(HashMap::new).entry(name).or_default();
        e.0 += 1;
        e.1 += t;
    }

    /// Clears the totals (after warm-up).
    pub fn reset() {
        *TIMES.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Kernels by total time, longest first: name and grid, count, total and mean.
    pub fn report() -> String {
        let g = TIMES.lock().unwrap_or_else(|e| e.into_inner());
        let Some(m) = g.as_ref() else { return String::new() };
        let mut v: Vec<_> = m.iter().collect();
        v.sort_by(|a, b| b.1 .1.cmp(&a.1 .1));
        let total: Duration = v.iter().map(|x| x.1 .1).sum();
        let mut s = format!("kernel profile (PINGCE_PROFILE): {:.3} s in all\n", total.as_secs_f64());
        for (name, (n, t)) in v {
            s += &format!(
                "{:>6.2}% {:>9.3} ms {:>7} x {:>8.3} ms  {}\n",
                100.0 * t.as_secs_f64() / total.as_secs_f64().max(1e-12),
                t.as_secs_f64() * 1e3,
                n,
                t.as_secs_f64() * 1e3 / *n as f64,
                name
            );
        }
        s
    }
}
