//! The cache layout and passes of one batch of multiple-choice items: each context is prefilled
//! once and every continuation is scored from a copy of its cached rows; and a context that
//! begins like the first item's starts from a copy of that context's rows, kept in the cache from
//! batch to batch ([`super::prefix`] says which rows, and why the scores keep their bits).

use super::batch::Segment;
use super::prefix::shared_prefix;

/// Where a segment's scores land: its stage and its index among that stage's segments.
pub type SegRef = (usize, usize);

/// One batch's stages, run in order: stage `s` first makes the copies `copies[s]`
/// (`(rows, src, dst)`, as `batch::run_after_copies` takes them), then runs `segs[s]`.
pub struct ChoicePlan<'a> {
    pub rows: usize,
    pub copies: Vec<Vec<(usize, usize, usize)>>,
    pub segs: Vec<Vec<Segment<'a>>>,
    /// Per item: the segment whose scores are each choice's first token, in choice order, and
    /// per choice the segment scoring the rest of its tokens (none for a one-token choice).
    pub items: Vec<(SegRef, Vec<Option<SegRef>>)>,
    /// Context tokens copied from the root instead of computed.
    pub shared_tokens: usize,
}

impl<'a> ChoicePlan<'a> {
    /// The plan for `items`, each (context tokens, continuation tokens per choice); every
    /// context and continuation holds at least one token. `root` is the context kept in cache
    /// rows `0..root.len()` from one batch to the next (the first batch's first context; empty
    /// to share nothing); with `root_cached` false it is `items[0]`'s context, computed here.
    ///
    /// Cache layout per item: its context's rows, then one region of (context + continuation)
    /// rows per further choice; choice 0 extends the context's own region.
    /// - Stage 0 prefills the contexts that share nothing with the root, or with a cached root
    ///   every context after copying what it shares, and scores their choices' first tokens.
    /// - Stage 1 copies those contexts to their other choices' regions, scores the rest of those
    ///   choices and, with the root computed in stage 0, copies the shared prefix to the sharing
    ///   items and prefills the rest of their contexts (scoring their choices' first tokens).
    /// - Stage 2 does for those sharing items what stage 1 does for the others' choices.
    pub fn new(items: &'a [(Vec<u32>, Vec<Vec<u32>>)], root: &[u32], root_cached: bool) -> ChoicePlan<'a> {
        let mut plan = ChoicePlan { rows: if root_cached { root.len() } else { 0 }, copies: vec![Vec::new(); 3], segs: vec![Vec::new(), Vec::new(), Vec::new()], items: Vec::new(), shared_tokens: 0 };
        for (n, (c, ts)) in items.iter().enumerate() {
            let shared = if n == 0 && !root_cached { 0 } else { shared_prefix(c, root) };
            plan.shared_tokens += shared;
            let base = plan.rows;
            let head_stage = if shared > 0 && !root_cached { 1 } else { 0 };
            if shared > 0 {
                plan.copies[head_stage].push((shared, 0, base));
            }
            let head = plan.push(head_stage, Segment { tokens: &c[shared..], start_pos: shared, base, score: ts.iter().map(|t| (c.len() - 1 - shared, t[0])).collect() });
            plan.rows += c.len() + ts[0].len();
            let mut tails = Vec::with_capacity(ts.len());
            for (i, t) in ts.iter().enumerate() {
                let b = if i == 0 { base } else { plan.rows };
                if i > 0 {
                    plan.copies[head_stage + 1].push((c.len(), base, b));
                    plan.rows += c.len() + t.len();
                }
                tails.push((t.len() > 1).then(|| plan.push(head_stage + 1, Segment { tokens: &t[..t.len() - 1], start_pos: c.len(), base: b, score: (1..t.len()).map(|j| (j - 1, t[j])).collect() })));
            }
            plan.items.push((head, tails));
        }
        plan
    }

    fn push(&mut self, stage: usize, seg: Segment<'a>) -> SegRef {
        self.segs[stage].push(seg);
        (stage, self.segs[stage].len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_sharing_the_first_ones_start_make_a_copy_and_a_later_stage() {
        let head: Vec<u32> = (100..112).collect();
        let with = |tail: &[u32]| -> Vec<u32> { head.iter().chain(tail).copied().collect() };
        let items = vec![
            (with(&[1, 2]), vec![vec![7], vec![8, 9]]),
            (with(&[3]), vec![vec![7, 6], vec![8]]),
            (vec![100, 101, 5], vec![vec![7]]),
            (head.clone(), vec![vec![4]]),
        ];
        let p = ChoicePlan::new(&items, &items[0].0, false);
        // Item 0 (14 + 1 rows, then 14 + 2), item 1 (13 + 2, 13 + 1), item 2 (3 + 1), item 3 (12 + 1).
        assert_eq!(p.rows, 15 + 16 + 15 + 14 + 4 + 13);
        // Item 1 shares 12 tokens, item 2 only 2 (below MIN_SHARED), item 3 all but its last token.
        assert_eq!(p.shared_tokens, 12 + 11);
        assert_eq!(p.copies[1], vec![(14, 0, 15), (12, 0, 31), (11, 0, 64)]);
        assert_eq!(p.copies[2], vec![(13, 31, 46)]);
        let starts: Vec<Vec<(usize, usize, usize)>> = p.segs.iter().map(|s| s.iter().map(|g| (g.start_pos, g.base, g.tokens.len())).collect()).collect();
        assert_eq!(starts[0], vec![(0, 0, 14), (0, 60, 3)]);
        assert_eq!(starts[1], vec![(14, 15, 1), (12, 31, 1), (11, 64, 1)]);
        assert_eq!(starts[2], vec![(13, 31, 1)]);
        assert_eq!(p.segs[1][1].score, vec![(0, 7), (0, 8)]);
        assert_eq!(p.items[1], ((1, 1), vec![Some((2, 0)), None]));
        assert_eq!(p.items[3], ((1, 2), vec![None]));

        // A later batch: the root's 14 context rows stay at the start of the cache; every
        // context copies what it shares before stage 0.
        let p = ChoicePlan::new(&items[1..], &items[0].0, true);
        assert_eq!(p.rows, 14 + 15 + 14 + 4 + 13);
        assert_eq!(p.copies[0], vec![(12, 0, 14), (11, 0, 47)]);
        assert_eq!(p.copies[1], vec![(13, 14, 29)]);
        assert!(p.copies[2].is_empty() && p.segs[2].is_empty());
        let starts: Vec<(usize, usize, usize)> = p.segs[0].iter().map(|g| (g.start_pos, g.base, g.tokens.len())).collect();
        assert_eq!(starts, vec![(12, 14, 1), (0, 43, 3), (11, 47, 1)]);
        assert_eq!(p.items[0], ((0, 0), vec![Some((1, 0)), None]));
    }
}
