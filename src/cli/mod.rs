//! Command-line interface: one file per subcommand; `main.rs` only parses and dispatches.

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "energy-fit", version, about = "Measure, fit and predict the GPU energy of LLM inference", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {}

/// Run the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {}
}
