//! The engine: batching, KV cache, scoring and generation on top of a loaded model.

pub mod requests;
