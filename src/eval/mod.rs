//! Evaluation: tasks declared in YAML (`evals/`), readers for the published dataset formats,
//! prompts rendered as lm-evaluation-harness renders them, metrics, and the runner that turns
//! them into engine requests and writes results with their evidence.
//!
//! Data flows: [`task`] (YAML → [`item::Item`]s, rendered with [`template`] from documents that
//! [`data`] reads) → [`plan`] (a task resolved for one run) → [`runner`] (engine calls, samples,
//! [`metrics`], results); [`shard`] splits a run over processes and [`merge`] joins the shards.

pub mod bank;
pub mod chat;
pub mod confine;
pub mod data;
pub mod item;
pub mod metrics;
pub mod plan;
pub mod postprocess;
pub mod merge;
pub mod runner;
pub mod samples_file;
pub mod shard;
pub mod task;
pub mod template;

/// One dataset row, with the field names of the Hugging Face dataset lm-eval reads.
pub type Doc = serde_json::Map<String, serde_json::Value>;
