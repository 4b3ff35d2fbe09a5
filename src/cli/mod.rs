//! Command-line interface: one file per subcommand; `main.rs` only parses and dispatches.

pub mod fit;
pub mod import_reference;
pub mod predict;
pub mod report;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "energy-fit",
    version,
    about = "Measure the GPU energy of LLM inference, fit analytical energy models, predict sweet spots",
    long_about = "energy-fit measures how much GPU energy an LLM spends per generated token over a grid of \
                  input and output lengths, fits analytical energy models (b1–b4, flops, flops-mem) to the \
                  measurements and predicts each input length's most efficient output length (sweet spot).\n\n\
                  With no files named, `fit` reads the shipped measurements in data/."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fit energy models to measurements: MAPE table, coefficients, sweet spots, JSON fit files.
    Fit(fit::FitArgs),
    /// Energy per token, tokens/J and sweet spot for an input length, from a fit.
    Predict(predict::PredictArgs),
    /// SVG figures and report.md from measurements and fit files.
    Report(report::ReportArgs),
    /// Convert the published coefficient table into reference fit files.
    #[command(hide = true)]
    ImportReference(import_reference::ImportReferenceArgs),
}

/// Run the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Fit(a) => fit::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Report(a) => report::run(a),
        Command::ImportReference(a) => import_reference::run(a),
    }
}
