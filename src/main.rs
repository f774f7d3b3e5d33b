//! The `pingce` command line.
//!
//! Exit status: 0 success; 1 a check failed (`compare` FAIL, `determinism` differences); 2 bad
//! arguments; 65 bad input (a file, a task, a model that cannot be used as given); 70 a bug in
//! pingce (a panic); 75 the GPU failed (out of memory or lost): retry, possibly with a smaller
//! --batch-size or on another --device. Finished samples stay on disk in every case.

mod cli;

use std::process::ExitCode;

use clap::Parser;

const CHECK_FAILED: u8 = 1;
const BAD_INPUT: u8 = 65;
const BUG: u8 = 70;
const RETRY: u8 = 75;

fn main() -> ExitCode {
    pingce::device::select::tune_software_threads();
    let args = cli::Cli::parse();
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal bug in pingce ({info}); please report it with the command that caused it");
    }));
    match std::panic::catch_unwind(|| cli::run(args)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            if pingce::device::is_gpu_fault(&e) {
                eprintln!(
                    "note: the GPU failed, not the input. Finished samples are kept on disk: rerun the same command to \
                     resume, with a smaller --batch-size, or on another adapter (--device; see `pingce devices`)."
                );
                ExitCode::from(RETRY)
            } else if e.downcast_ref::<cli::CheckFailed>().is_some() {
                ExitCode::from(CHECK_FAILED)
            } else {
                ExitCode::from(BAD_INPUT)
            }
        }
        Err(_) => ExitCode::from(BUG),
    }
}
