use clap::Parser;

fn main() {
    restore_sigpipe();
    let argv: Vec<String> = std::env::args().collect();
    let cli = match energy_fit::cli::Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            // clap reads `--cv -3` as the flag without a value and a stray `-3`; say what is wrong.
            if let Some(msg) = negative_count(&argv) {
                eprintln!("error: {msg}");
                std::process::exit(2);
            }
            e.exit()
        }
    };
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

/// `--flag -N` or `--flag=-N` on a command line that failed to parse: the flag wants a positive
/// number (every numeric flag of energy-fit counts or measures something).
fn negative_count(argv: &[String]) -> Option<String> {
    let negative = |v: &str| v.starts_with('-') && v[1..].parse::<f64>().is_ok();
    for (i, a) in argv.iter().enumerate().skip(1) {
        if !a.starts_with("--") {
            continue;
        }
        let (flag, value) = match a.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (a.as_str(), argv.get(i + 1).map(String::as_str)),
        };
        if let Some(v) = value.filter(|v| negative(v)) {
            return Some(format!("{flag}: wants a positive number, got {v}"));
        }
    }
    None
}
