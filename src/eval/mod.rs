//! Evaluation: tasks declared in YAML (`evals/`), readers for the published dataset formats,
//! prompts rendered as lm-evaluation-harness renders them, metrics, and the runner that turns
//! them into engine requests and writes results with their evidence.

pub mod chat;
pub mod data;
pub mod metrics;
pub mod runner;
pub mod task;

/// One dataset row, with the field names of the Hugging Face dataset lm-eval reads.
pub type Doc = serde_json::Map<String, serde_json::Value>;
