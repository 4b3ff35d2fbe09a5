use clap::Parser;

fn main() {
    restore_sigpipe();
    let cli = energy_fit::cli::Cli::parse();
    if let Err(e) = energy_fit::cli::dispatch(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`energy-fit fit | head`) would panic on
/// the failed write; with the default action the process ends quietly, as command-line tools do.
/// Files are written through their own handles and are unaffected.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first in main, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
