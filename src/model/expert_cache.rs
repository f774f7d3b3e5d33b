//! Host-resident routed experts (`--experts-on host`): the experts' weights stay in host memory
//! — read from the memory-mapped weight file where it stores them as the GPU does, else a copy —
//! and a fixed number of GPU slots (`--expert-cache`) holds the ones a pass needs.
//!
//! The routing must be known to know what to stream, so a sparse layer costs one small readback:
//! the router and top-k run on the GPU, the pass is submitted up to there and the `[tokens, k]`
//! expert ids are read back (4 · tokens · k bytes). The host then builds each expert's token list
//! (the same lists `moe_gather` builds), uploads the experts the cache lacks into the least
//! slots (empty ones first, then the most recently used: passes sweep the layers in order, and
//! for a cyclic sweep larger than the cache MRU keeps a stable part resident where LRU would
//! evict each expert just before its reuse; ties to the lowest slot: deterministic), and runs the expert matmuls
//! against the slots with per-slot counts and lists. When a layer needs more experts than there
//! are slots it runs in rounds of at most `slots` experts, one submission each. Every expert row
//! is computed by the same kernel from the same weights as with GPU-resident experts, so the
//! results are bit-identical; only the traffic differs: per sparse layer one readback, one
//! submission per round, and the bytes of the missing experts over the bus.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

use super::bytes::FileBytes;
use super::config::{Config, MoeConfig};
use super::plan::{self, BankClass, Dtypes};
use super::split::LoadOptions;
use super::weights::TensorSource;
use crate::device::{Gpu, Recorder};
use crate::kernels::expert_matmul::{self, Experts, Gathered};
use crate::kernels::swiglu;
use crate::tensor::DType;

/// One bank (gate/up or down) of a layer's experts in host memory.
enum Store {
    /// A copy in the GPU's stored layout (16-bit rows padded to even length), expert after expert.
    Copy(Vec<u8>),
    /// Per expert, the byte ranges of the (memory-mapped) weight file holding it, in order (gate
    /// then up): no copy, and processes on one machine share the page cache.
    Mapped(Vec<Vec<(Arc<FileBytes>, Range<usize>)>>),
}

impl Store {
    /// Expert `e`'s bytes (`eb` of them).
    fn expert(&self, e: usize, eb: usize) -> Cow<'_, [u8]> {
        match self {
            Store::Copy(v) => Cow::Borrowed(&v[e * eb..(e + 1) * eb]),
            Store::Mapped(segs) if segs[e].len() == 1 => {
                let (f, r) = &segs[e][0];
                Cow::Borrowed(&f[r.clone()])
            }
            Store::Mapped(segs) => Cow::Owned(segs[e].iter().flat_map(|(f, r)| f[r.clone()].iter().copied()).collect()),
        }
    }

    fn copied_bytes(&self) -> u64 {
        match self {
            Store::Copy(v) => v.len() as u64,
            Store::Mapped(_) => 0,
        }
    }
}

/// One layer's experts in host memory.
struct HostBank {
    class: BankClass,
    gate_up: Store,
    down: Store,
}

/// The GPU slots of one bank class (dtype pair) and who holds them.
struct Slots {
    gate_up: Experts,
    down: Experts,
    /// Experts per chunk of the banks (a slot's chunk is `slot / per`).
    per_gu: usize,
    per_down: usize,
    owner: Vec<Option<(usize, usize)>>,
    last_use: Vec<u64>,
}

struct State {
    host: HashMap<usize, HostBank>,
    classes: BTreeMap<BankClass, Slots>,
    lists: Option<(usize, wgpu::Buffer)>,
    tick: u64,
    stats: CacheStats,
}

/// What the cache did, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Experts uploaded into a slot.
    pub uploads: u64,
    /// Experts found in a slot.
    pub hits: u64,
    /// Rounds of expert matmuls (one submission each).
    pub rounds: u64,
    /// Routing readbacks (one per sparse layer per pass).
    pub readbacks: u64,
}

pub struct ExpertCache {
    pub slots: usize,
    experts: usize,
    hidden: usize,
    inter: usize,
    counts: wgpu::Buffer,
    state: Mutex<State>,
}

/// Bytes of one expert of `[rows, cols]` stored as `dtype`, and its rows padded as on the GPU.
fn stored(dtype: DType, rows: usize, cols: usize, bytes: &[u8]) -> Vec<u8> {
    let row = dtype.bytes_for(cols);
    let srow = plan::expert_bytes(dtype, 1, cols) as usize;
    if row == srow {
        return bytes.to_vec();
    }
    let mut out = vec![0u8; rows * srow];
    for (i, r) in bytes.chunks_exact(row).enumerate() {
        out[i * srow..i * srow + row].copy_from_slice(r);
    }
    out
}

impl ExpertCache {
    /// Allocates the slots for the sparse layers of `opts.layers` (one set per bank class).
    pub fn new(gpu: &Gpu, cfg: &Config, m: &MoeConfig, src: &dyn TensorSource, opts: &LoadOptions) -> Result<ExpertCache> {
        let (h, i) = (cfg.hidden_size, m.expert_intermediate);
        let d = Dtypes::Source(src);
        let mut classes: BTreeMap<BankClass, u64> = BTreeMap::new();
        for l in opts.layers.clone().filter(|&l| m.sparse_layers[l]) {
            let c = plan::bank_class(&d, &format!("model.layers.{l}.mlp"))?;
            classes.insert(c, plan::expert_bytes(c.gate_up, 2 * i, h) + plan::expert_bytes(c.down, h, i));
        }
        let list: Vec<(BankClass, u64)> = classes.iter().map(|(c, b)| (*c, *b)).collect();
        let slots = plan::cache_slots(opts.expert_cache, &list, m.num_experts);
        if slots == 0 && !list.is_empty() {
            bail!("--expert-cache holds no expert: one expert of each kind takes {} bytes", list.iter().map(|c| c.1).sum::<u64>());
        }
        let mut banks = BTreeMap::new();
        for (c, _) in list {
            let bank = |rows: usize, cols: usize, dt: DType, what: &str| -> Result<(Experts, usize)> {
                let eb = plan::expert_bytes(dt, rows, cols);
                if eb > gpu.max_binding {
                    bail!("expert cache: one {what} expert is {eb} bytes, above the largest storage binding ({} bytes)", gpu.max_binding);
                }
                let per = ((gpu.max_binding / eb) as usize).max(1);
                let mut e = Experts::new(rows, cols);
                let mut n = 0;
                while n < slots {
                    let c = per.min(slots - n);
                    let zeros = vec![0u8; c * rows * dt.bytes_for(cols)];
                    e.push(gpu, &format!("expert cache {what}"), dt, c, &zeros)?;
                    n += c;
                }
                Ok((e, per))
            };
            let (gate_up, per_gu) = bank(2 * i, h, c.gate_up, "gate/up")?;
            let (down, per_down) = bank(h, i, c.down, "down")?;
            banks.insert(c, Slots { gate_up, down, per_gu, per_down, owner: vec![None; slots], last_use: vec![0; slots] });
        }
        let counts = gpu.storage("expert cache counts", slots as u64 * 4)?;
        Ok(ExpertCache {
            slots,
            experts: m.num_experts,
            hidden: h,
            inter: i,
            counts,
            state: Mutex::new(State { host: HashMap::new(), classes: banks, lists: None, tick: 0, stats: CacheStats::default() }),
        })
    }

    /// Keeps layer `layer`'s experts in host memory: `n` gate/up experts `[2 * inter, hidden]`
    /// and down experts `[hidden, inter]` given as stored bytes.
    pub fn register(&self, layer: usize, gu_dtype: DType, gate_up: &[u8], down_dtype: DType, down: &[u8]) -> Result<()> {
        let class = BankClass { gate_up: gu_dtype, down: down_dtype };
        let mut st = self.state.lock().unwrap();
        if !st.classes.contains_key(&class) {
            bail!("internal: layer {layer}'s experts ({gu_dtype:?}/{down_dtype:?}) have no slots in the expert cache");
        }
        let (h, i, n) = (self.hidden, self.inter, self.experts);
        let gate_up = Store::Copy(stored(gu_dtype, 2 * i * n, h, gate_up));
        let down = Store::Copy(stored(down_dtype, h * n, i, down));
        st.host.insert(layer, HostBank { class, gate_up, down });
        Ok(())
    }

    /// Keeps layer `layer`'s experts (tensors under `p`, `n` of them) as references into the
    /// weight file where it stores them as the GPU does; `false` where it cannot (tensors held
    /// in memory, rows that need padding, mixed dtypes): then [`register`](Self::register) a copy.
    pub fn register_mapped(&self, layer: usize, src: &dyn TensorSource, p: &str, n: usize) -> Result<bool> {
        let (h, i) = (self.hidden, self.inter);
        type Seg = (Arc<FileBytes>, Range<usize>);
        let slice = |name: &str, shape: &[usize]| -> Result<Option<(DType, Seg)>> {
            let t = src.tensor(name)?;
            t.expect_shape(shape)?;
            Ok(src.backing(name).map(|s| (t.dtype, s)))
        };
        // Expert e of a tensor `[n, ...]` stacking n experts.
        let part = |s: &Seg, e: usize| -> Seg {
            let per = s.1.len() / n;
            (s.0.clone(), s.1.start + e * per..s.1.start + (e + 1) * per)
        };
        let fused = format!("{p}.experts.gate_up_proj");
        let stacked = |w: &str| format!("{p}.experts.{w}_proj.weight");
        let (gdt, ddt, gu, down): (DType, DType, Vec<Vec<Seg>>, Vec<Vec<Seg>>) = if src.contains(&fused) {
            let (Some((gdt, g)), Some((ddt, d))) = (slice(&fused, &[n, 2 * i, h])?, slice(&format!("{p}.experts.down_proj"), &[n, h, i])?) else { return Ok(false) };
            (gdt, ddt, (0..n).map(|e| vec![part(&g, e)]).collect(), (0..n).map(|e| vec![part(&d, e)]).collect())
        } else if src.contains(&stacked("gate")) {
            let (Some((gdt, g)), Some((udt, u)), Some((ddt, d))) = (slice(&stacked("gate"), &[n, i, h])?, slice(&stacked("up"), &[n, i, h])?, slice(&stacked("down"), &[n, h, i])?) else {
                return Ok(false);
            };
            if gdt != udt {
                return Ok(false);
            }
            (gdt, ddt, (0..n).map(|e| vec![part(&g, e), part(&u, e)]).collect(), (0..n).map(|e| vec![part(&d, e)]).collect())
        } else {
            let (mut gu, mut down, mut dts) = (Vec::new(), Vec::new(), Vec::new());
            for e in 0..n {
                let name = |w: &str| format!("{p}.experts.{e}.{w}_proj.weight");
                let (Some((a, g)), Some((b, u)), Some((c, d))) = (slice(&name("gate"), &[i, h])?, slice(&name("up"), &[i, h])?, slice(&name("down"), &[h, i])?) else { return Ok(false) };
                dts.extend([a, b, c]);
                gu.push(vec![g, u]);
                down.push(vec![d]);
            }
            if dts.iter().any(|d| *d != dts[0]) {
                return Ok(false);
            }
            (dts[0], dts[0], gu, down)
        };
        // Stored as is only where no row needs padding.
        if plan::expert_bytes(gdt, 2 * i, h) != (2 * i * gdt.bytes_for(h)) as u64 || plan::expert_bytes(ddt, h, i) != (h * ddt.bytes_for(i)) as u64 {
            return Ok(false);
        }
        let class = BankClass { gate_up: gdt, down: ddt };
        let mut st = self.state.lock().unwrap();
        if !st.classes.contains_key(&class) {
            bail!("internal: layer {layer}'s experts ({gdt:?}/{ddt:?}) have no slots in the expert cache");
        }
        st.host.insert(layer, HostBank { class, gate_up: Store::Mapped(gu), down: Store::Mapped(down) });
        Ok(true)
    }

    /// Bytes of routed experts copied into host memory (experts read from a mapped file count 0).
    pub fn host_bytes(&self) -> u64 {
        self.state.lock().unwrap().host.values().map(|b| b.gate_up.copied_bytes() + b.down.copied_bytes()).sum()
    }

    /// Layers whose experts are read from the mapped weight file rather than copied.
    pub fn mapped_layers(&self) -> usize {
        self.state.lock().unwrap().host.values().filter(|b| matches!(b.gate_up, Store::Mapped(_))).count()
    }

    pub fn stats(&self) -> CacheStats {
        self.state.lock().unwrap().stats
    }

    /// Records the expert matmuls of `layer` for `tokens` rows routed as `ids` (`[tokens, k]`,
    /// read back from the GPU): gu/act/out rows `t * k + slot` as the GPU-resident path writes
    /// them. Submits each round; `rec` is empty on return.
    #[allow(clippy::too_many_arguments)]
    pub fn record(&self, rec: &mut Recorder, layer: usize, ids: &[u32], tokens: usize, k: usize, h: &wgpu::Buffer, gu: &wgpu::Buffer, act: &wgpu::Buffer, out: &wgpu::Buffer) -> Result<()> {
        let gpu = rec.gpu();
        let (hidden, inter, n) = (self.hidden, self.inter, self.experts);
        // Each expert's entries t * k + j in ascending order, as moe_gather lists them.
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (v, &e) in ids.iter().enumerate().take(tokens * k) {
            let e = e as usize;
            if e >= n {
                bail!("internal: routed expert id {e} of {n}");
            }
            lists[e].push(v as u32);
        }
        let mut st = self.state.lock().unwrap();
        st.stats.readbacks += 1;
        let class = st.host.get(&layer).with_context(|| format!("internal: layer {layer}'s experts are not in host memory"))?.class;
        let cap = tokens;
        if st.lists.as_ref().is_none_or(|(c, _)| *c < self.slots * cap) {
            let size = self.slots * cap.next_multiple_of(64);
            st.lists = Some((size, gpu.storage("expert cache lists", size as u64 * 4)?));
        }
        // Resident experts first (their round needs no upload), then the rest, ascending.
        let needed: Vec<usize> = (0..n).filter(|&e| !lists[e].is_empty()).collect();
        let resident = |st: &State, e: usize| st.classes[&class].owner.iter().position(|o| *o == Some((layer, e)));
        let (mut order, rest): (Vec<usize>, Vec<usize>) = needed.iter().partition(|&&e| resident(&st, e).is_some());
        order.extend(rest);
        for group in order.chunks(self.slots) {
            st.tick += 1;
            let tick = st.tick;
            let mut slot_of = Vec::with_capacity(group.len());
            let mut misses = Vec::new();
            for &e in group {
                match resident(&st, e) {
                    Some(s) => {
                        st.stats.hits += 1;
                        slot_of.push(s);
                    }
                    None => slot_of.push(usize::MAX),
                }
            }
            for (j, &e) in group.iter().enumerate() {
                if slot_of[j] != usize::MAX {
                    continue;
                }
                let sl = &st.classes[&class];
                // An empty slot if any, else the most recently used slot not serving this round
                // (lowest index on ties). Passes sweep the layers in order, so the expert used
                // longest ago is the one needed soonest: LRU would evict every expert just before
                // its reuse once the experts outgrow the cache, MRU keeps a stable part resident.
                let free = (0..self.slots).filter(|s| !slot_of.contains(s));
                let victim = free
                    .clone()
                    .find(|&s| sl.owner[s].is_none())
                    .or_else(|| free.max_by_key(|&s| (sl.last_use[s], std::cmp::Reverse(s))))
                    .context("internal: no free expert slot")?;
                slot_of[j] = victim;
                st.classes.get_mut(&class).unwrap().owner[victim] = Some((layer, e));
                misses.push(victim);
                st.stats.uploads += 1;
            }
            let sl = st.classes.get_mut(&class).unwrap();
            for &s in &slot_of {
                sl.last_use[s] = tick;
            }
            for &s in &misses {
                write_slot(gpu, &st, class, true, s);
                write_slot(gpu, &st, class, false, s);
            }
            st.stats.rounds += 1;
            let mut counts = vec![0u32; self.slots];
            let (_, lists_buf) = st.lists.as_ref().unwrap();
            for (j, &e) in group.iter().enumerate() {
                counts[slot_of[j]] = lists[e].len() as u32;
                gpu.write(lists_buf, (slot_of[j] * cap * 4) as u64, bytemuck::cast_slice(&lists[e]));
            }
            gpu.write(&self.counts, 0, bytemuck::cast_slice(&counts));
            let sl = &st.classes[&class];
            let g = Gathered { x: h, x_stride: hidden, x_div: k, y: gu, y_stride: 2 * inter, y_div: 1, counts: &self.counts, lists: lists_buf, cap };
            expert_matmul::record(rec, &sl.gate_up, &g)?;
            swiglu::swiglu(rec, gu, act, tokens * k, inter)?;
            let g = Gathered { x: act, x_stride: inter, x_div: 1, y: out, y_stride: hidden, y_div: 1, ..g };
            expert_matmul::record(rec, &sl.down, &g)?;
            rec.flush(&format!("layer {layer}: a round of {} streamed experts", group.len()))?;
        }
        Ok(())
    }
}

/// Writes slot `s`'s expert (of bank gate/up or down) from host memory. wgpu writes whole
/// 4-byte words, so where an expert's bytes are not a multiple of 4 the written span takes its
/// neighbours' bytes from their own owners (zeros for empty slots).
fn write_slot(gpu: &Gpu, st: &State, class: BankClass, gate_up: bool, s: usize) {
    let sl = &st.classes[&class];
    let (bank, per) = if gate_up { (&sl.gate_up, sl.per_gu) } else { (&sl.down, sl.per_down) };
    let chunk = &bank.matrix.chunks[s / per];
    let eb = plan::expert_bytes(chunk.dtype, bank.rows, bank.matrix.cols) as usize;
    let first = (s / per) * per;
    let slots_here = chunk.rows / bank.rows;
    let off = (s - first) * eb;
    let (lo, hi) = (off & !3, (off + eb).next_multiple_of(4).min(chunk.buf.size() as usize));
    let mut span = vec![0u8; hi - lo];
    for t in first..first + slots_here {
        let (t_lo, t_hi) = ((t - first) * eb, (t - first + 1) * eb);
        if t_hi <= lo || t_lo >= hi {
            continue;
        }
        let Some((layer, e)) = sl.owner[t] else { continue };
        let hb = &st.host[&layer];
        let src = if gate_up { hb.gate_up.expert(e, eb) } else { hb.down.expert(e, eb) };
        let (a, b) = (t_lo.max(lo), t_hi.min(hi));
        span[a - lo..b - lo].copy_from_slice(&src[a - t_lo..b - t_lo]);
    }
    gpu.write(&chunk.buf, lo as u64, &span);
}
