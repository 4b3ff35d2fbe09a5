//! Command-line interface: one file per subcommand; `main.rs` only parses and dispatches.

use clap::{Parser, Subcommand};

pub mod llms;
pub mod measure;
pub mod merge;

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
    /// Measure the GPU energy of a grid of (input_tokens, output_tokens) points.
    Measure(Box<measure::MeasureArgs>),
    /// Combine measurement files (e.g. shards), refusing conflicting duplicates.
    Merge(merge::MergeArgs),
}

/// Run the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Llms { json } => llms::run(json),
        Command::Measure(a) => measure::run(*a),
        Command::Merge(a) => merge::run(a),
    }
}
