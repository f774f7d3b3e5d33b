//! Models: config, weights, tokenizer and decoder architectures.

pub mod bytes;
pub mod chat_template;
pub mod config;
pub mod decoder;
pub mod deepseek;
pub mod gguf;
pub mod gguf_tokenizer;
pub mod expert_cache;
pub mod mla;
pub mod moe;
pub mod plan;
pub mod split;
pub mod tokenizer;
pub mod weights;

pub use config::{Arch, Config, MoeConfig};
pub use decoder::Decoder;
pub use tokenizer::Tokenizer;
