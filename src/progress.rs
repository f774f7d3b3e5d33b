//! Progress bars for long commands: drawn on a terminal, hidden when stderr is not one (logs,
//! CI, batch jobs) or when the caller asks for quiet.

use std::io::IsTerminal;

/// Whether bars should be drawn: stderr is a terminal.
pub fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar of `len` steps labelled `prefix`; hidden unless `show` and stderr is a terminal.
pub fn bar(len: u64, prefix: &str, show: bool) -> indicatif::ProgressBar {
    if !show || !on_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(indicatif::ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}").unwrap().progress_chars("=> "));
    b.set_prefix(prefix.to_string());
    b
}
