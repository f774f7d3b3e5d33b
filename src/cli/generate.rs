//! `pingce generate`: greedy continuation of a prompt.

use anyhow::Result;
use clap::Args;
use pingce::engine::requests::Encode;
use pingce::engine::GenRequest;

use super::ModelArgs;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt text.
    #[arg(long)]
    prompt: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Stop strings (repeatable).
    #[arg(long)]
    until: Vec<String>,
}

pub fn run(a: GenerateArgs) -> Result<()> {
    let mut engine = a.model.engine()?;
    let prompt = engine.tokenizer.encode(&a.prompt)?;
    let g = engine.generate(&[GenRequest { prompt, until: a.until.clone(), max_tokens: a.max_tokens }])?.remove(0);
    println!("{}", g.text);
    eprintln!("({} tokens, stopped by {:?})", g.tokens.len(), g.stop);
    Ok(())
}
