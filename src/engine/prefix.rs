//! Sharing a prompt's start: a context or prompt that begins like the first one of a call (a
//! subject's instruction line, the same few-shot examples before every question) starts from a
//! copy of that first one's cached rows instead of computing them again.
//!
//! A cached row depends only on the tokens at and before its position, and every kernel gives the
//! same bits whatever else the pass holds, so a copied row is the row the sequence would compute
//! itself: results are bit-identical with and without sharing (tests/models.rs).

/// Tokens a sequence must share with the first one to start from its rows: fewer would save
/// less than the copy (and the pass that computes the first one's rows) costs.
pub const MIN_SHARED: usize = 8;

/// The cached rows of `root` that `tokens` can start from: the tokens both begin with, all but
/// `tokens`' last (its output is always computed, as it scores or picks the next token), or 0
/// below [`MIN_SHARED`].
pub fn shared_prefix(tokens: &[u32], root: &[u32]) -> usize {
    let n = tokens.iter().zip(root).take_while(|(a, b)| a == b).count().min(tokens.len().saturating_sub(1));
    if n >= MIN_SHARED { n } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_prefix_is_long_enough_and_leaves_the_last_token() {
        let root: Vec<u32> = (0..20).collect();
        assert_eq!(shared_prefix(&root, &root), 19);
        assert_eq!(shared_prefix(&root[..12], &root), 11);
        assert_eq!(shared_prefix(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 99, 5], &root), 9);
        assert_eq!(shared_prefix(&[0, 1, 2, 3, 4, 5, 6, 99], &root), 0);
        assert_eq!(shared_prefix(&[], &root), 0);
    }
}
