use clap::Parser;

fn main() {
    let cli = energy_fit::cli::Cli::parse();
    if let Err(e) = energy_fit::cli::dispatch(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
