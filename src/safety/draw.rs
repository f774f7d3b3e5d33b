//! Seeded stratified draws (documented in docs/safety.md):
//!
//! 1. Strata: the risk code (generated-content, should-refuse) or the topic (must-answer).
//! 2. Allocation of `n` among strata of sizes `s_i` (total `S`): if `n ≥ S` every item; else one
//!    per non-empty stratum (when `n` is smaller than the number of strata, the `n` strata with
//!    the smallest keys get one), then one at a time to the stratum with the largest deficit
//!    `n·s_i/S − a_i` among those not yet exhausted (ties: the smaller stratum name).
//! 3. Within a stratum, items ordered by key: the first 16 hex digits of
//!    sha256("pingce-safety-draw:{seed}:{kind}:{id}") (ties by id); the first `a_i` are drawn.
//!
//! The draw depends only on the seed and the set of (kind, stratum, id), never on file order.

use std::collections::BTreeMap;

use super::bank::Item;
use super::Kind;

/// The sort key of an item id (or a stratum name) under a seed.
pub fn key(seed: u64, kind: Kind, id: &str) -> String {
    crate::digest::sha256_hex(format!("pingce-safety-draw:{seed}:{}:{id}", kind.name()).as_bytes())[..16].to_string()
}

/// How many to take from each stratum: see the module documentation.
pub fn allocate(sizes: &BTreeMap<String, usize>, n: usize, seed: u64, kind: Kind) -> BTreeMap<String, usize> {
    let total: usize = sizes.values().sum();
    if n >= total {
        return sizes.clone();
    }
    let mut a: BTreeMap<String, usize> = sizes.keys().map(|k| (k.clone(), 0)).collect();
    let nonempty: Vec<&String> = sizes.iter().filter(|(_, &s)| s > 0).map(|(k, _)| k).collect();
    if n < nonempty.len() {
        let mut ks = nonempty.clone();
        ks.sort_by_key(|k| (key(seed, kind, &format!("stratum:{k}")), (*k).clone()));
        for k in ks.into_iter().take(n) {
            a.insert(k.clone(), 1);
        }
        return a;
    }
    for k in &nonempty {
        a.insert((*k).clone(), 1);
    }
    let mut given = nonempty.len();
    while given < n {
        let best = sizes
            .iter()
            .filter(|(k, &s)| a[*k] < s)
            .map(|(k, &s)| (n as f64 * s as f64 / total as f64 - a[k] as f64, k))
            .fold(None::<(f64, &String)>, |acc, (d, k)| match acc {
                Some((bd, _)) if bd >= d => acc,
                _ => Some((d, k)),
            });
        let Some((_, k)) = best else { break };
        *a.get_mut(k).unwrap() += 1;
        given += 1;
    }
    a
}

/// Draws `n` items of `kind` from `items`; returned in (stratum, key) order.
pub fn draw(items: &[Item], kind: Kind, n: usize, seed: u64) -> Vec<&Item> {
    let mut strata: BTreeMap<String, Vec<(String, &Item)>> = BTreeMap::new();
    for i in items.iter().filter(|i| i.kind == kind) {
        strata.entry(i.stratum()).or_default().push((key(seed, kind, &i.id), i));
    }
    let sizes = strata.iter().map(|(k, v)| (k.clone(), v.len())).collect();
    let alloc = allocate(&sizes, n, seed, kind);
    let mut out = vec![];
    for (s, mut v) in strata {
        v.sort_by(|a, b| (&a.0, &a.1.id).cmp(&(&b.0, &b.1.id)));
        out.extend(v.into_iter().take(alloc[&s]).map(|(_, i)| i));
    }
    out
}

/// Draw sizes per kind: `generated=1000,refuse=300,answer=300` (any subset; the rest default).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DrawSizes {
    pub generated: usize,
    pub refuse: usize,
    pub answer: usize,
}

impl Default for DrawSizes {
    fn default() -> Self {
        DrawSizes { generated: super::DRAW_GENERATED, refuse: super::DRAW_REFUSE, answer: super::DRAW_ANSWER }
    }
}

impl DrawSizes {
    pub fn parse(s: &str) -> Result<DrawSizes, String> {
        let mut d = DrawSizes::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("{part:?}: expected KIND=N"))?;
            let v: usize = v.trim().parse().map_err(|_| format!("{part:?}: N must be a whole number"))?;
            match k.trim() {
                "generated" | "generated-content" => d.generated = v,
                "refuse" | "should-refuse" => d.refuse = v,
                "answer" | "must-answer" => d.answer = v,
                other => return Err(format!("unknown kind {other:?} (generated, refuse, answer)")),
            }
        }
        Ok(d)
    }

    pub fn of(&self, k: Kind) -> usize {
        match k {
            Kind::GeneratedContent => self.generated,
            Kind::ShouldRefuse => self.refuse,
            Kind::MustAnswer => self.answer,
        }
    }
}
