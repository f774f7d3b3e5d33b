//! Metrics and their standard errors, as lm-eval computes them. Placeholder: being written.
