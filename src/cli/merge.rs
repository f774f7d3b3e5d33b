//! `pingce merge SHARD_DIR... --output DIR`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct MergeArgs {
    /// The output folders of `pingce eval --shard i/N`, every shard once, any order.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Folder for the merged results.json, samples and summary.md.
    #[arg(long)]
    output: PathBuf,
}

pub fn run(a: MergeArgs) -> Result<()> {
    let results = pingce::eval::merge::merge(&a.shards, &a.output, true)?;
    println!("{}", pingce::eval::runner::summary(&results));
    eprintln!("merged {} shards: {}", a.shards.len(), a.output.join("results.json").display());
    Ok(())
}
