//! The statistics against independent computations: exact binomial tails worked by hand,
//! Holm on a textbook example, Wilson intervals from the closed form, and the seeded paired
//! bootstrap against a separate implementation and against the normal approximation.

use pingce::stats::{holm, mcnemar_exact, paired_bootstrap, quantile, wilson, Z95};

#[test]
fn mcnemar_exact_binomial_tails_by_hand() {
    // p = 2 · Σ_{i ≤ min(b,c)} C(b+c, i) / 2^(b+c), capped at 1.
    assert_eq!(mcnemar_exact(0, 0), 1.0);
    assert!((mcnemar_exact(0, 5) - 2.0 / 32.0).abs() < 1e-15); // 2·1/32
    assert!((mcnemar_exact(1, 4) - 2.0 * 6.0 / 32.0).abs() < 1e-15); // 2·(1+5)/32
    assert_eq!(mcnemar_exact(2, 2), 1.0); // 2·(1+4+6)/16 > 1
    assert!((mcnemar_exact(3, 10) - 2.0 * 378.0 / 8192.0).abs() < 1e-14); // 1+13+78+286 = 378
    assert!((mcnemar_exact(10, 0) - 2.0 / 1024.0).abs() < 1e-15);
    // 20 discordant, 5 vs 15: Σ_{i≤5} C(20,i) = 1+20+190+1140+4845+15504 = 21700.
    assert!((mcnemar_exact(15, 5) - 2.0 * 21700.0 / 1048576.0).abs() < 1e-13);
}

#[test]
fn holm_known_example() {
    // p = (0.01, 0.04, 0.03, 0.005): sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06,
    // max(0.06, 0.04·1) = 0.06 (statsmodels multipletests(method="holm") gives the same).
    let adj = holm(&[0.01, 0.04, 0.03, 0.005]);
    let want = [0.03, 0.06, 0.06, 0.02];
    for (a, w) in adj.iter().zip(want) {
        assert!((a - w).abs() < 1e-12, "{adj:?}");
    }
    assert_eq!(holm(&[0.5, 0.9]), vec![1.0, 1.0]);
    assert!(holm(&[]).is_empty());
}

#[test]
fn wilson_closed_form() {
    // k = 0: upper = z²/(n + z²).
    let (lo, hi) = wilson(0.0, 10.0, Z95);
    assert_eq!(lo, 0.0);
    assert!((hi - Z95 * Z95 / (10.0 + Z95 * Z95)).abs() < 1e-12);
    // 5 of 10 (z = 1.96): 0.5 ± 1.96·√(0.025 + 0.009604)/1.38416 = [0.2366, 0.7634].
    let (lo, hi) = wilson(5.0, 10.0, 1.96);
    assert!((lo - 0.236593).abs() < 1e-5 && (hi - 0.763407).abs() < 1e-5, "{lo} {hi}");
    // 81 of 263 (Newcombe 1998's example 1): 0.2553 to 0.3662.
    let (lo, hi) = wilson(81.0, 263.0, Z95);
    assert!((lo - 0.2553).abs() < 1e-4 && (hi - 0.3662).abs() < 1e-4, "{lo} {hi}");
}

/// An independent bootstrap: SplitMix64 as published (Steele et al. 2014; the reference output
/// for seed 1234567 starts 6457827717110365317, 3203168211198807973), counts of how often each
/// item is drawn, the mean difference from the counts, numpy-style linear quantiles.
fn reference_bootstrap(a: &[f64], b: &[f64], reps: usize, seed: u64) -> (f64, f64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    };
    let n = a.len();
    let mut means = Vec::new();
    for _ in 0..reps {
        let mut counts = vec![0u32; n];
        for _ in 0..n {
            let u = next() >> 32;
            counts[((u * n as u64) >> 32) as usize] += 1;
        }
        let total: f64 = counts.iter().enumerate().map(|(i, &c)| c as f64 * (a[i] - b[i])).sum();
        means.push(total / n as f64);
    }
    means.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let q = |p: f64| {
        let h = (reps - 1) as f64 * p;
        let i = h.floor() as usize;
        means[i] + (h - i as f64) * (means[(i + 1).min(reps - 1)] - means[i])
    };
    (q(0.025), q(0.975))
}

#[test]
fn splitmix64_reference_output() {
    let mut r = pingce::stats::SplitMix64(1234567);
    assert_eq!(r.next_u64(), 6457827717110365317);
    assert_eq!(r.next_u64(), 3203168211198807973);
}

#[test]
fn paired_bootstrap_with_a_known_seed() {
    // 200 items: A right on 120, B on 100, 30 items only A, 10 only B.
    let a: Vec<f64> = (0..200).map(|i| (i < 120) as u8 as f64).collect();
    let b: Vec<f64> = (0..200).map(|i| ((10..110).contains(&i) || (120..120).contains(&i)) as u8 as f64).collect();
    let d: f64 = a.iter().zip(&b).map(|(x, y)| x - y).sum::<f64>() / 200.0;
    assert_eq!(d, 0.1);
    let got = paired_bootstrap(&a, &b, 2000, 20240607);
    assert_eq!(got, reference_bootstrap(&a, &b, 2000, 20240607));
    // And close to the normal approximation: d ± 1.96·sd(dᵢ)/√n.
    let var = a.iter().zip(&b).map(|(x, y)| (x - y - d).powi(2)).sum::<f64>() / 199.0;
    let se = (var / 200.0).sqrt();
    assert!((got.0 - (d - Z95 * se)).abs() < 0.01 && (got.1 - (d + Z95 * se)).abs() < 0.01, "{got:?} vs ±{se}");
    // Same seed, same interval; another seed, a slightly different one.
    assert_eq!(paired_bootstrap(&a, &b, 2000, 20240607), got);
    assert_ne!(paired_bootstrap(&a, &b, 2000, 1), got);
    assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.5);
}
