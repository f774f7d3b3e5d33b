//! Models: config, weights, tokenizer and decoder architectures.
