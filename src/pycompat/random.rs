//! CPython's `random.Random` (MT19937, `seed(int)`, `getrandbits`, `_randbelow`, `sample`), so
//! that few-shot examples are drawn exactly as lm-eval's `ContextSampler` draws them with
//! `random.Random(seed).sample(pool, n)`.
//!
//! Mirrors `Modules/_randommodule.c` (`init_genrand`, `init_by_array`, `genrand_uint32`,
//! `random_seed` for an int, `getrandbits`) and `Lib/random.py` (`_randbelow_with_getrandbits`,
//! `sample`), unchanged from CPython 3.8 to 3.13 for the paths used here.

const N: usize = 624;
const M: usize = 397;

/// Python's `random.Random`, seeded with a non-negative integer.
#[derive(Clone)]
pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)` for an int seed: the absolute value split into 32-bit words,
    /// least significant first (`[0]` for 0), fed to `init_by_array`.
    pub fn new(seed: u64) -> Self {
        let key: Vec<u32> = if seed >> 32 == 0 {
            vec![seed as u32]
        } else {
            vec![seed as u32, (seed >> 32) as u32]
        };
        let mut r = PyRandom { mt: [0; N], index: N };
        r.init_by_array(&key);
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1];
            self.mt[i] = 1812433253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19650218);
        let (mut i, mut j) = (1usize, 0usize);
        let mut k = N.max(key.len());
        while k > 0 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1664525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
            k -= 1;
        }
        k = N - 1;
        while k > 0 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1566083941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            k -= 1;
        }
        self.mt[0] = 0x8000_0000;
    }

    /// `genrand_uint32`.
    pub fn next_u32(&mut self) -> u32 {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        if self.index >= N {
            for kk in 0..N {
                let y = (self.mt[kk] & UPPER) | (self.mt[(kk + 1) % N] & LOWER);
                let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
                self.mt[kk] = self.mt[(kk + M) % N] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `getrandbits(k)` for `1 <= k <= 64` (words are filled least significant first; the last,
    /// most significant word keeps its top bits).
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!((1..=64).contains(&k), "getrandbits({k}) out of the supported range");
        if k <= 32 {
            return u64::from(self.next_u32() >> (32 - k));
        }
        let lo = u64::from(self.next_u32());
        let hi = u64::from(self.next_u32() >> (64 - k));
        lo | (hi << 32)
    }

    /// `_randbelow_with_getrandbits(n)`: rejection sampling on `n.bit_length()` bits.
    pub fn randbelow(&mut self, n: u64) -> u64 {
        assert!(n > 0, "randbelow(0)");
        let k = 64 - n.leading_zeros();
        let mut r = self.getrandbits(k);
        while r >= n {
            r = self.getrandbits(k);
        }
        r
    }

    /// `random.sample(range(n), k)`: the indices `sample` picks from a population of size `n`,
    /// in order. Uses the pool algorithm for small populations and the set algorithm otherwise,
    /// exactly as `Lib/random.py` chooses.
    pub fn sample_indices(&mut self, n: usize, k: usize) -> Result<Vec<usize>, String> {
        if k > n {
            return Err("Sample larger than population or is negative".into());
        }
        let mut setsize = 21usize;
        if k > 5 {
            let exp = ((k * 3) as f64).ln() / 4f64.ln();
            setsize += 4usize.pow(exp.ceil() as u32);
        }
        let mut result = Vec::with_capacity(k);
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = self.randbelow((n - i) as u64) as usize;
                result.push(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        } else {
            let mut selected = std::collections::HashSet::new();
            for _ in 0..k {
                let mut j = self.randbelow(n as u64) as usize;
                while selected.contains(&j) {
                    j = self.randbelow(n as u64) as usize;
                }
                selected.insert(j);
                result.push(j);
            }
        }
        Ok(result)
    }

    /// `random.sample(population, k)`.
    pub fn sample<T: Clone>(&mut self, population: &[T], k: usize) -> Result<Vec<T>, String> {
        Ok(self
            .sample_indices(population.len(), k)?
            .into_iter()
            .map(|i| population[i].clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values printed by CPython 3.11:
    //   r = random.Random(seed); [r.getrandbits(32) for _ in range(3)]
    //   random.Random(seed).sample(range(n), k)
    #[test]
    fn matches_cpython_getrandbits() {
        let mut r = PyRandom::new(1234);
        let got: Vec<u64> = (0..3).map(|_| r.getrandbits(32)).collect();
        assert_eq!(got, EXPECT_1234_BITS);
        let mut r = PyRandom::new(0);
        let got: Vec<u64> = (0..3).map(|_| r.getrandbits(32)).collect();
        assert_eq!(got, EXPECT_0_BITS);
        let mut r = PyRandom::new(1 << 40 | 7);
        let got: Vec<u64> = (0..2).map(|_| r.getrandbits(64)).collect();
        assert_eq!(got, EXPECT_BIG_BITS64);
    }

    #[test]
    fn matches_cpython_sample() {
        for &(seed, n, k, expect) in EXPECT_SAMPLES {
            let mut r = PyRandom::new(seed);
            assert_eq!(r.sample_indices(n, k).unwrap(), expect, "seed {seed} n {n} k {k}");
        }
        // Sequential calls share the generator state, as lm-eval's sampler does across docs.
        let mut r = PyRandom::new(1234);
        let a = r.sample_indices(10, 3).unwrap();
        let b = r.sample_indices(10, 3).unwrap();
        assert_eq!((a, b), (EXPECT_SEQ.0.to_vec(), EXPECT_SEQ.1.to_vec()));
        assert!(PyRandom::new(1).sample_indices(2, 3).is_err());
    }

    include!("random_expected.rs");
}
