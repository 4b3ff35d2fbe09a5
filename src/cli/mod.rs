//! Command-line interface: one file per subcommand; `main.rs` only parses and dispatches.

use clap::{Parser, Subcommand};

pub mod llms;

#[derive(Parser, Debug)]
#[command(name = "energy-fit", version, about = "Measure, fit and predict the GPU energy of LLM inference", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the LLM catalog: shapes, parameters, FLOPs per token, KV bytes per token.
    Llms {
        /// Print the full configs as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Run the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Llms { json } => llms::run(json),
    }
}
