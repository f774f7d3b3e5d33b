//! Task definitions (YAML) and the requests they render. Placeholder: being written.

use super::Doc;

/// How a task scores a document (lm-eval's `output_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    MultipleChoice,
    Loglikelihood,
    LoglikelihoodRolling,
    GenerateUntil,
}

/// One document turned into what the engine must compute.
#[derive(Clone, Debug)]
pub struct Item {
    /// Index of the document in the evaluated split.
    pub doc_id: usize,
    pub doc: Doc,
    /// The full context: description, few-shot examples and this document's input.
    pub context: String,
    pub kind: ItemKind,
}

#[derive(Clone, Debug)]
pub enum ItemKind {
    /// Score `target_delimiter + choice` after the context, for every choice. `gold` lists the
    /// correct choices (one for acc/mc1; several with labels for mc2).
    Choices { continuations: Vec<String>, gold: Vec<usize>, labels: Vec<u8> },
    /// Log-likelihood of one continuation (lm-eval `loglikelihood`).
    Continuation { continuation: String },
    /// Perplexity of a whole text (lm-eval `loglikelihood_rolling`).
    Rolling { text: String },
    /// Generation until a stop string; `target` is the reference answer.
    Generate { until: Vec<String>, max_gen_toks: usize, target: String },
}
