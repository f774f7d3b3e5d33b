//! An evaluated document turned into what the engine must compute.

use super::Doc;

/// One document turned into what the engine must compute.
#[derive(Clone, Debug)]
pub struct Item {
    /// Index of the document in the evaluated split.
    pub doc_id: usize,
    pub doc: Doc,
    /// The full context: description, few-shot examples and this document's input. For
    /// [`ItemKind::ChoiceContexts`] it is the shared part (description and few-shot examples);
    /// for [`ItemKind::Rolling`] it is empty.
    pub context: String,
    pub kind: ItemKind,
}

#[derive(Clone, Debug)]
pub enum ItemKind {
    /// Score each continuation after `context` (lm-eval `multiple_choice`). `continuations[i]`
    /// is already `target_delimiter + choices[i]`, the exact string lm-eval passes; `choices`
    /// are the bare choice texts (their `len()` in chars normalises acc_norm). `gold` lists the
    /// correct choices (one for acc/mc1; the true ones for mc2); `labels` gives 0/1 per choice.
    Choices { continuations: Vec<String>, choices: Vec<String>, gold: Vec<usize>, labels: Vec<u8> },
    /// lm-eval "multiple inputs" (winogrande, partial scoring): score `continuation` (already
    /// `target_delimiter + target`) after each full context `contexts[i]` (few-shot prefix +
    /// `choices[i]`); `gold` is the correct context. `choices` are the per-choice inputs (their
    /// lengths normalise acc_norm, as in lm-eval).
    ChoiceContexts { contexts: Vec<String>, continuation: String, choices: Vec<String>, gold: Vec<usize> },
    /// Log-likelihood of one continuation (lm-eval `loglikelihood`).
    Continuation { continuation: String },
    /// Perplexity of a whole text (lm-eval `loglikelihood_rolling`). `words` and `bytes` are the
    /// normalisers, `len(re.split(r"\s+", t))` and `len(t.encode())` of the counted text (the
    /// scored text, or what `doc_to_count_text` names: wikitext counts the original page).
    Rolling { text: String, words: usize, bytes: usize },
    /// Generation until a stop string; `target` is the reference answer.
    Generate { until: Vec<String>, max_gen_toks: usize, target: String },
}

impl Item {
    /// The (context, continuation) pairs lm-eval sends as `loglikelihood` requests, in order
    /// (empty for generation and rolling items).
    pub fn loglikelihood_requests(&self) -> Vec<(String, String)> {
        match &self.kind {
            ItemKind::Choices { continuations, .. } => {
                continuations.iter().map(|c| (self.context.clone(), c.clone())).collect()
            }
            ItemKind::ChoiceContexts { contexts, continuation, .. } => {
                contexts.iter().map(|c| (c.clone(), continuation.clone())).collect()
            }
            ItemKind::Continuation { continuation } => vec![(self.context.clone(), continuation.clone())],
            _ => vec![],
        }
    }
}

