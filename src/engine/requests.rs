//! lm-evaluation-harness request semantics (placeholder, being written).
