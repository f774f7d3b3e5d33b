//! Statistics for reports and conformance: exact McNemar, Wilson intervals, Holm's correction
//! and a seeded paired bootstrap. Each function is small enough to check by hand; the tests in
//! `tests/stats.rs` compare them with independent computations.

/// Exact two-sided McNemar test: binomial(b + c, 1/2) on the discordant pairs,
/// p = min(1, 2 · P[X <= min(b, c)]).
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let m = b.min(c);
    // ln C(n, i) built up term by term.
    let mut ln_c = 0.0f64;
    let mut sum = 0.0f64;
    let ln_half_n = n as f64 * 0.5f64.ln();
    for i in 0..=m {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        sum += (ln_c + ln_half_n).exp();
    }
    (2.0 * sum).min(1.0)
}

/// The two-sided 95% normal quantile.
pub const Z95: f64 = 1.959963984540054;

/// Wilson score interval for `k` successes in `n` trials at normal quantile `z`
/// (Wilson 1927); (NaN, NaN) when n = 0.
pub fn wilson(k: f64, n: f64, z: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (f64::NAN, f64::NAN);
    }
    let p = k / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Holm's step-down adjustment of p-values (Holm 1979), returned in the input order:
/// sorted ascending, p_(i) · (m − i) for i = 0.., made monotone, capped at 1.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(p[i] * (m - rank) as f64).min(1.0);
        out[i] = running;
    }
    out
}

/// SplitMix64 (Steele, Lea, Flood 2014): the bootstrap's generator, fixed so a seed gives the
/// same interval on every machine.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (multiply-shift; the bias is below 2^-32 for the sizes used here).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
}

/// Quantile `q` of sorted values with linear interpolation (numpy's default "linear" method).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Percentile bootstrap 95% interval of mean(a − b) over paired items: `reps` resamples of the
/// item indices with replacement, drawn with [`SplitMix64`] seeded with `seed` (per resample, n
/// draws of `below(n)`), the 2.5% and 97.5% quantiles of the resampled mean differences.
pub fn paired_bootstrap(a: &[f64], b: &[f64], reps: usize, seed: u64) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "paired samples of different lengths");
    let n = a.len();
    if n == 0 || reps == 0 {
        return (f64::NAN, f64::NAN);
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mut rng = SplitMix64(seed);
    let mut means: Vec<f64> = (0..reps)
        .map(|_| {
            let mut s = 0.0;
            for _ in 0..n {
                s += d[rng.below(n)];
            }
            s / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    (quantile(&means, 0.025), quantile(&means, 0.975))
}
