//! Models: config, weights, tokenizer and decoder architectures.

pub mod config;
pub mod decoder;
pub mod tokenizer;
pub mod weights;

pub use config::{Arch, Config};
pub use decoder::Decoder;
pub use tokenizer::Tokenizer;
