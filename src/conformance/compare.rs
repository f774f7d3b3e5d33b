//! `pingce compare`: a candidate dump against a reference dump, metric by metric, with
//! thresholds and a PASS/FAIL verdict.
//!
//! KL divergence per position is estimated over the reference's top-k plus one bucket for the
//! rest of the vocabulary (see [`kld`]); the estimate and its treatment of reference top-k ids
//! that the candidate's top-k lacks are stated in every report.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::{log1mexp, Dump};

/// Pass/fail limits. Optional ones are only checked when set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub max_mean_kld: f64,
    pub min_top1_agreement: f64,
    pub max_abs_dlogprob: f64,
    pub max_flips: u64,
    #[serde(default)]
    pub max_p99_kld: Option<f64>,
    #[serde(default)]
    pub max_max_kld: Option<f64>,
    #[serde(default)]
    pub max_rms_dp: Option<f64>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { max_mean_kld: 1e-3, min_top1_agreement: 0.99, max_abs_dlogprob: 5e-2, max_flips: 0, max_p99_kld: None, max_max_kld: None, max_rms_dp: None }
    }
}

/// A thresholds file: any subset of the keys of [`Thresholds`]; the rest keep their defaults.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsFile {
    pub max_mean_kld: Option<f64>,
    pub min_top1_agreement: Option<f64>,
    pub max_abs_dlogprob: Option<f64>,
    pub max_flips: Option<u64>,
    pub max_p99_kld: Option<f64>,
    pub max_max_kld: Option<f64>,
    pub max_rms_dp: Option<f64>,
}

impl ThresholdsFile {
    pub fn read(path: &Path) -> Result<ThresholdsFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading thresholds {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not a valid thresholds file (a JSON object with numbers for any of max_mean_kld, min_top1_agreement, \
                 max_abs_dlogprob, max_flips, max_p99_kld, max_max_kld, max_rms_dp)",
                path.display()
            )
        })
    }

    /// Overrides `t` with the keys present here.
    pub fn apply(&self, t: &mut Thresholds) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { t.$f = v; } )* };
        }
        set!(max_mean_kld, min_top1_agreement, max_abs_dlogprob, max_flips);
        macro_rules! set_opt {
            ($($f:ident),*) => { $( if self.$f.is_some() { t.$f = self.$f; } )* };
        }
        set_opt!(max_p99_kld, max_max_kld, max_rms_dp);
    }
}

impl Thresholds {
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("max_mean_kld", Some(self.max_mean_kld)),
            ("max_abs_dlogprob", Some(self.max_abs_dlogprob)),
            ("max_p99_kld", self.max_p99_kld),
            ("max_max_kld", self.max_max_kld),
            ("max_rms_dp", self.max_rms_dp),
        ] {
            if let Some(v) = v {
                ensure!(v.is_finite() && v >= 0.0, "threshold {name} = {v}: must be a finite number >= 0");
            }
        }
        ensure!(
            (0.0..=1.0).contains(&self.min_top1_agreement),
            "threshold min_top1_agreement = {}: must be in [0, 1]",
            self.min_top1_agreement
        );
        Ok(())
    }
}

/// What the candidate's log-prob is taken to be for a reference top-k id outside its own top-k.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MissingEstimate {
    /// ln(tail_cand / (vocab - k_cand)): the candidate's average tail token. Usually below the
    /// token's true probability (the missing id tends to sit just under the candidate's k-th), so
    /// the KL estimate errs high: conservative.
    TailAverage,
    /// The id joins the tail bucket in both distributions (a coarser partition): a lower bound
    /// of the KL over these buckets, never an overestimate.
    TailBucket,
}

impl MissingEstimate {
    pub fn describe(self) -> &'static str {
        match self {
            MissingEstimate::TailAverage => {
                "a reference top-k id outside the candidate's top-k gets the candidate's average tail log-prob \
                 ln(tail_cand / (vocab - k_cand)) (conservative: errs towards a larger KL)"
            }
            MissingEstimate::TailBucket => {
                "a reference top-k id outside the candidate's top-k is merged into the tail bucket of both \
                 (a lower bound of the bucketed KL)"
            }
        }
    }
}

/// The smallest mass a sum of k f32 probabilities resolves: masses below it are taken to be it,
/// so a tail that rounds to zero does not make the KL infinite.
fn log_floor(k: usize) -> f64 {
    ((k.max(1) as f64) * f64::powi(2.0, -24)).ln()
}

fn logsumexp(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY || m.is_nan() {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// KL(P_ref || P_cand) at row `i`, over the reference's top-k ids plus one bucket holding the rest
/// of the vocabulary:
///
/// Σ_{j in topk_ref} p_j (ln p_j − ln q_j) + p_rest (ln p_rest − ln q_rest),
/// p_rest = 1 − Σ p_j, q_rest = 1 − Σ q_j (both from the top-k log-probs in f64),
///
/// where q_j is the candidate's log-prob of id j from its own top-k, or, when that lacks j, as
/// `missing` says. Masses below the f32 resolution of a k-term sum are floored to it. Returns
/// (KL clamped at 0, number of reference top-k ids missing from the candidate's top-k).
pub fn kld(r: &Dump, c: &Dump, i: usize, vocab: usize, missing: MissingEstimate) -> (f64, usize) {
    let rid = r.topk_ids_row(i);
    let rlp = r.topk_logprobs_row(i);
    let cid = c.topk_ids_row(i);
    let clp = c.topk_logprobs_row(i);
    if rlp.iter().chain(clp).any(|x| x.is_nan()) || c.tail_logmass[i].is_nan() {
        // f64::max would quietly drop a NaN below; a NaN must fail the comparison.
        return (f64::NAN, 0);
    }
    let floor = log_floor(r.k.max(c.k));
    let tail_avg = (c.tail_logmass[i] as f64).max(floor) - ((vocab.saturating_sub(c.k)).max(1) as f64).ln();
    let mut n_missing = 0;
    let mut pairs: Vec<(f64, f64)> = Vec::with_capacity(r.k);
    for (&id, &lp) in rid.iter().zip(rlp) {
        match cid.iter().position(|&x| x == id) {
            Some(j) => pairs.push((lp as f64, clp[j] as f64)),
            None => {
                n_missing += 1;
                if missing == MissingEstimate::TailAverage {
                    pairs.push((lp as f64, tail_avg));
                }
            }
        }
    }
    let p_rest = log1mexp(logsumexp(pairs.iter().map(|x| x.0)));
    let q_rest = log1mexp(logsumexp(pairs.iter().map(|x| x.1))).max(floor);
    let mut kl = 0.0;
    for &(p, q) in &pairs {
        if p > f64::NEG_INFINITY {
            kl += p.exp() * (p - q.max(floor.min(p)));
        }
    }
    if p_rest > floor {
        kl += p_rest.exp() * (p_rest - q_rest);
    }
    if kl.is_nan() {
        return (f64::NAN, n_missing);
    }
    (kl.max(0.0), n_missing)
}

/// Nearest-rank percentile of sorted values (`q` in 0..=100).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // The small slack keeps q·n that is an integer in exact arithmetic (99.9% of 1000) from
    // rounding up a rank.
    let rank = ((q / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

pub use crate::stats::mcnemar_exact;

/// Where a metric's extreme value sits.
#[derive(Clone, Debug, Serialize)]
pub struct Location {
    pub row: usize,
    /// 1-based, as in the requests file.
    pub request: usize,
    pub position: i32,
    pub token_id: i32,
}

#[derive(Clone, Debug, Serialize)]
pub struct KldStats {
    pub mean: f64,
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub max_at: Option<Location>,
    pub non_finite: usize,
    /// Positions where some reference top-k id is not in the candidate's top-k.
    pub positions_with_missing_ids: usize,
    pub missing_ids: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct McNemar {
    pub items_with_gold: usize,
    pub reference_correct: usize,
    pub candidate_correct: usize,
    /// Reference right, candidate wrong.
    pub b: u64,
    /// Reference wrong, candidate right.
    pub c: u64,
    pub p_value: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Flips {
    /// Groups of consecutive requests with the same context (at least two choices).
    pub items: usize,
    pub flips: usize,
    /// 1-based request number of the first request of each flipped item.
    pub flipped_items: Vec<usize>,
    pub mcnemar: Option<McNemar>,
    pub note: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub metric: String,
    pub value: f64,
    pub op: String,
    pub threshold: f64,
    pub pass: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Side {
    pub path: String,
    pub producer: String,
    pub adapter: String,
    pub model: String,
    pub top_k: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub reference: Side,
    pub candidate: Side,
    pub positions: usize,
    pub requests: usize,
    pub vocab_size: usize,
    pub kld_estimator: String,
    pub kld: KldStats,
    pub top1_agreement: f64,
    pub top1_disagreements: usize,
    pub first_top1_disagreement: Option<Location>,
    pub target_rms_dp: f64,
    pub target_max_abs_dlogprob: f64,
    pub target_max_abs_dlogprob_at: Option<Location>,
    pub answer_flips: Flips,
    pub notes: Vec<String>,
    pub thresholds: Thresholds,
    pub checks: Vec<Check>,
    pub pass: bool,
}

fn side(path: &Path, d: &Dump) -> Side {
    let m = &d.manifest;
    Side { path: path.display().to_string(), producer: m.producer.clone(), adapter: m.adapter.clone(), model: m.model.path.clone(), top_k: d.k }
}

fn model_key(d: &Dump) -> Vec<String> {
    let mut v: Vec<String> = d.manifest.model.files.iter().map(|f| f.sha256.clone()).collect();
    v.sort();
    v
}

/// Errors unless both dumps score the same tokens at the same places (and, unless
/// `allow_different_models`, come from the same model files).
pub fn check_layout(rp: &Path, r: &Dump, cp: &Path, c: &Dump, allow_different_models: bool) -> Result<()> {
    let (rm, cm) = (&r.manifest, &c.manifest);
    if !allow_different_models && model_key(r) != model_key(c) {
        let list = |d: &Dump| d.manifest.model.files.iter().map(|f| format!("{} (sha256 {})", f.path, &f.sha256[..f.sha256.len().min(12)])).collect::<Vec<_>>().join(", ");
        bail!(
            "different models: {} was made from {} but {} from {} (pass --allow-different-models to compare anyway)",
            rp.display(),
            list(r),
            cp.display(),
            list(c)
        );
    }
    ensure!(
        rm.model.vocab_size == cm.model.vocab_size,
        "different vocabularies: {} has {} tokens, {} has {}",
        rp.display(),
        rm.model.vocab_size,
        cp.display(),
        cm.model.vocab_size
    );
    let n = r.len().min(c.len());
    for i in 0..n {
        if (r.request_index[i], r.position[i], r.token_ids[i]) != (c.request_index[i], c.position[i], c.token_ids[i]) {
            bail!(
                "token streams differ at row {i}: {} has request {} position {} token {}, {} has request {} position {} token {}",
                rp.display(),
                r.request_index[i] + 1,
                r.position[i],
                r.token_ids[i],
                cp.display(),
                c.request_index[i] + 1,
                c.position[i],
                c.token_ids[i]
            );
        }
    }
    if r.len() != c.len() {
        bail!(
            "token streams differ in length: {} has {} scored positions, {} has {} (the first {n} agree)",
            rp.display(),
            r.len(),
            cp.display(),
            c.len()
        );
    }
    if let (Some(a), Some(b)) = (&r.context_sha256, &c.context_sha256) {
        if let Some(q) = (0..a.len()).find(|&q| a[q] != b[q]) {
            bail!("contexts differ at request {}: the two dumps hash its context string differently", q + 1);
        }
    }
    Ok(())
}

fn location(d: &Dump, i: usize) -> Location {
    Location { row: i, request: d.request_index[i] as usize + 1, position: d.position[i], token_id: d.token_ids[i] }
}

/// Multiple-choice items: runs of at least two consecutive requests with the same context hash.
pub fn items(d: &Dump) -> Vec<std::ops::Range<usize>> {
    let Some(h) = &d.context_sha256 else { return Vec::new() };
    let mut out = Vec::new();
    let mut s = 0;
    for q in 1..=h.len() {
        if q == h.len() || h[q] != h[s] {
            if q - s >= 2 {
                out.push(s..q);
            }
            s = q;
        }
    }
    out
}

/// Per request, the sum of its target log-probs in f64 (token order).
fn request_sums(d: &Dump) -> Vec<f64> {
    let mut s = vec![0.0f64; d.requests()];
    for i in 0..d.len() {
        s[d.request_index[i] as usize] += d.target_logprob[i] as f64;
    }
    s
}

/// Index of the largest value (the first among equals); NaN never wins.
fn choice(v: &[f64]) -> usize {
    let mut best = 0;
    for j in 1..v.len() {
        if v[j] > v[best] || v[best].is_nan() {
            best = j;
        }
    }
    best
}

fn flips(r: &Dump, c: &Dump) -> Flips {
    let its = items(r);
    let (rs, cs) = (request_sums(r), request_sums(c));
    let mut flipped = Vec::new();
    let (mut b, mut cc, mut labelled, mut rc, mut ccount) = (0u64, 0u64, 0usize, 0usize, 0usize);
    for it in &its {
        let a = choice(&rs[it.clone()]);
        let z = choice(&cs[it.clone()]);
        if a != z {
            flipped.push(it.start + 1);
        }
        if let Some(g) = &r.gold {
            let golds: Vec<usize> = (0..it.len()).filter(|&j| g[it.start + j] == 1).collect();
            if golds.len() == 1 {
                labelled += 1;
                let (ok_r, ok_c) = (a == golds[0], z == golds[0]);
                rc += ok_r as usize;
                ccount += ok_c as usize;
                match (ok_r, ok_c) {
                    (true, false) => b += 1,
                    (false, true) => cc += 1,
                    _ => {}
                }
            }
        }
    }
    let (mcnemar, note) = if labelled > 0 {
        let p = mcnemar_exact(b, cc);
        (
            Some(McNemar { items_with_gold: labelled, reference_correct: rc, candidate_correct: ccount, b, c: cc, p_value: p }),
            format!("exact McNemar test on {labelled} items with a gold answer: {b} right only in the reference, {cc} only in the candidate, p = {p:.4}"),
        )
    } else if its.is_empty() {
        (None, "no multiple-choice items (no run of consecutive requests sharing a context)".to_string())
    } else {
        (None, "no gold labels in the reference: flips counted, McNemar not computed (it needs right/wrong per item)".to_string())
    };
    Flips { items: its.len(), flips: flipped.len(), flipped_items: flipped, mcnemar, note }
}

/// Per-position KL divergence and its distribution: exact where both dumps hold the whole row,
/// else the top-k + tail estimate.
fn kld_stats(r: &Dump, c: &Dump, missing: MissingEstimate) -> (KldStats, usize) {
    let n = r.len();
    let vocab = r.manifest.model.vocab_size;
    let mut klds = Vec::with_capacity(n);
    let (mut pos_missing, mut n_missing) = (0, 0);
    let mut exact = 0;
    for i in 0..n {
        if let (Some(fr), Some(fc)) = (r.full_row(i), c.full_row(i)) {
            let k: f64 = fr.iter().zip(fc).map(|(&a, &b)| if a == f32::NEG_INFINITY { 0.0 } else { (a as f64).exp() * (a as f64 - b as f64) }).sum();
            klds.push(k.max(0.0));
            exact += 1;
            continue;
        }
        let (k, m) = kld(r, c, i, vocab, missing);
        klds.push(k);
        pos_missing += (m > 0) as usize;
        n_missing += m;
    }
    let non_finite = klds.iter().filter(|x| !x.is_finite()).count();
    let mean = klds.iter().sum::<f64>() / n as f64;
    let mut sorted = klds.clone();
    sorted.sort_by(f64::total_cmp);
    // The first position holding the largest value.
    let max_i = (0..n).reduce(|a, b| if klds[b].total_cmp(&klds[a]).is_gt() { b } else { a });
    let stats = KldStats {
        mean: if non_finite > 0 { f64::NAN } else { mean },
        median: median(&sorted),
        p90: percentile(&sorted, 90.0),
        p99: percentile(&sorted, 99.0),
        p999: percentile(&sorted, 99.9),
        max: if non_finite > 0 { f64::NAN } else { *sorted.last().unwrap_or(&f64::NAN) },
        max_at: max_i.map(|i| location(r, i)),
        non_finite,
        positions_with_missing_ids: pos_missing,
        missing_ids: n_missing,
    };
    (stats, exact)
}

/// RMS of the target's probability difference, and the largest |Δ log-prob| with its row (a NaN
/// on one side only counts as infinite).
fn target_deltas(r: &Dump, c: &Dump) -> (f64, (f64, Option<usize>)) {
    let n = r.len();
    let mut sq = 0.0f64;
    let mut worst: (f64, Option<usize>) = (0.0, None);
    for i in 0..n {
        let (a, b) = (r.target_logprob[i] as f64, c.target_logprob[i] as f64);
        sq += (a.exp() - b.exp()).powi(2);
        let d = (a - b).abs();
        let d = if d.is_nan() && a == b { 0.0 } else if d.is_nan() { f64::INFINITY } else { d };
        if d > worst.0 || worst.1.is_none() {
            worst = (d, Some(i));
        }
    }
    ((sq / n as f64).sqrt(), worst)
}

/// The pass/fail checks of a comparison, in report order.
fn checks(t: &Thresholds, kld: &KldStats, top1: f64, rms: f64, max_dlp: f64, flips: usize) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut le = |metric: &str, value: f64, th: f64| checks.push(Check { metric: metric.into(), value, op: "<=".into(), threshold: th, pass: value <= th });
    le("mean KLD", kld.mean, t.max_mean_kld);
    if let Some(x) = t.max_p99_kld {
        le("p99 KLD", kld.p99, x);
    }
    if let Some(x) = t.max_max_kld {
        le("max KLD", kld.max, x);
    }
    le("max |Δ target log-prob|", max_dlp, t.max_abs_dlogprob);
    if let Some(x) = t.max_rms_dp {
        le("RMS Δp (target)", rms, x);
    }
    le("answer flips", flips as f64, t.max_flips as f64);
    checks.insert(1, Check { metric: "top-1 agreement".into(), value: top1, op: ">=".into(), threshold: t.min_top1_agreement, pass: top1 >= t.min_top1_agreement });
    if kld.non_finite > 0 {
        checks.push(Check { metric: "non-finite KLD positions".into(), value: kld.non_finite as f64, op: "<=".into(), threshold: 0.0, pass: false });
    }
    checks
}

/// Compares two dumps whose layout has been checked with [`check_layout`].
pub fn compare(rp: &Path, r: &Dump, cp: &Path, c: &Dump, t: &Thresholds, missing: MissingEstimate) -> Report {
    let n = r.len();
    let (kld, exact) = kld_stats(r, c, missing);
    let disagree: Vec<usize> = (0..n).filter(|&i| r.topk_ids_row(i)[0] != c.topk_ids_row(i)[0]).collect();
    let top1 = (n - disagree.len()) as f64 / n as f64;
    let (rms, worst) = target_deltas(r, c);
    let fl = flips(r, c);
    let mut notes = Vec::new();
    if exact > 0 {
        notes.push(format!("KLD is exact (over the whole vocabulary) at the {exact} positions whose full log-softmax rows both dumps hold"));
    }
    if r.manifest.input.sha256 != c.manifest.input.sha256 {
        notes.push(format!("the input files differ ({} vs {}) but score the same tokens", r.manifest.input.path, c.manifest.input.path));
    }
    if model_key(r) != model_key(c) {
        notes.push("the model files differ (--allow-different-models)".to_string());
    }
    let checks = checks(t, &kld, top1, rms, worst.0, fl.flips);
    let pass = checks.iter().all(|c| c.pass);
    Report {
        reference: side(rp, r),
        candidate: side(cp, c),
        positions: n,
        requests: r.requests(),
        vocab_size: r.manifest.model.vocab_size,
        kld_estimator: format!(
            "KL(P_ref || P_cand) per position, estimated over the reference's top-{} ids plus one bucket for the rest of \
             the vocabulary (sum over the top-k of p_ref (ln p_ref - ln p_cand) + p_rest (ln p_rest - ln q_rest), \
             p_rest = 1 - sum p_ref, q_rest = 1 - sum q_cand over the same ids); {}; masses below {:.1e} are floored to it",
            r.k,
            missing.describe(),
            log_floor(r.k.max(c.k)).exp()
        ),
        kld,
        top1_agreement: top1,
        top1_disagreements: disagree.len(),
        first_top1_disagreement: disagree.first().map(|&i| location(r, i)),
        target_rms_dp: rms,
        target_max_abs_dlogprob: worst.0,
        target_max_abs_dlogprob_at: worst.1.map(|i| location(r, i)),
        answer_flips: fl,
        notes,
        thresholds: t.clone(),
        checks,
        pass,
    }
}

fn loc(l: &Option<Location>) -> String {
    match l {
        Some(l) => format!(" (request {}, position {}, token {})", l.request, l.position, l.token_id),
        None => String::new(),
    }
}

impl Report {
    /// The human-readable report: summary, metrics, the PASS/FAIL table and the verdict.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let (r, c) = (&self.reference, &self.candidate);
        let _ = writeln!(s, "reference: {}\n  {} on {}, model {}, top-{}", r.path, r.producer, r.adapter, r.model, r.top_k);
        let _ = writeln!(s, "candidate: {}\n  {} on {}, model {}, top-{}", c.path, c.producer, c.adapter, c.model, c.top_k);
        let _ = writeln!(s, "{} scored positions in {} requests, vocabulary {}", self.positions, self.requests, self.vocab_size);
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        let _ = writeln!(s, "\nKLD: {}.", self.kld_estimator);
        let k = &self.kld;
        let _ = writeln!(s, "  mean {:.3e}  median {:.3e}  p90 {:.3e}  p99 {:.3e}  p99.9 {:.3e}  max {:.3e}{}", k.mean, k.median, k.p90, k.p99, k.p999, k.max, loc(&k.max_at));
        let _ = writeln!(
            s,
            "  {} of {} positions have reference top-k ids outside the candidate's top-k ({} ids in all)",
            k.positions_with_missing_ids, self.positions, k.missing_ids
        );
        let _ = writeln!(
            s,
            "top-1 agreement: {:.6} ({} of {} differ){}",
            self.top1_agreement,
            self.top1_disagreements,
            self.positions,
            loc(&self.first_top1_disagreement).replace(" (", " (first at ")
        );
        let _ = writeln!(s, "target token: RMS Δp {:.3e}, max |Δ log-prob| {:.3e}{}", self.target_rms_dp, self.target_max_abs_dlogprob, loc(&self.target_max_abs_dlogprob_at));
        let f = &self.answer_flips;
        let _ = writeln!(s, "answer flips: {} of {} multiple-choice items; {}", f.flips, f.items, f.note);
        if !f.flipped_items.is_empty() {
            let _ = writeln!(s, "  flipped items start at requests {:?}", f.flipped_items);
        }
        let _ = writeln!(s, "\n{:<28} {:>12}  {:>13}  result", "check", "value", "threshold");
        for ch in &self.checks {
            let _ = writeln!(s, "{:<28} {:>12.4e}  {:>2} {:>10.3e}  {}", ch.metric, ch.value, ch.op, ch.threshold, if ch.pass { "PASS" } else { "FAIL" });
        }
        let failed: Vec<&str> = self.checks.iter().filter(|c| !c.pass).map(|c| c.metric.as_str()).collect();
        if self.pass {
            let _ = writeln!(s, "\nPASS");
        } else {
            let _ = writeln!(s, "\nFAIL: {}", failed.join(", "));
        }
        s
    }
}
