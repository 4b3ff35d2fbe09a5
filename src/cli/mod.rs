//! Command-line interface: one file per subcommand; `main.rs` only parses and dispatches.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub mod llms;
pub mod measure;
pub mod merge;
pub mod selftest;

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
    /// Check every engine kernel on this GPU against CPU references, then a random-weights forward.
    Selftest {
        /// bf16, fp16 or all.
        #[arg(long, default_value = "all")]
        dtype: String,
        /// LLM whose random-weights forward is checked layer by layer.
        #[arg(long, default_value = "llama-3.2-1b")]
        llm: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run one grid point on the engine and print throughput (no energy metering).
    #[command(hide = true)]
    EngineRun {
        #[arg(long, default_value = "llama-3.2-1b")]
        llm: String,
        #[arg(long, default_value_t = 64)]
        requests: usize,
        #[arg(long, default_value_t = 128)]
        input_tokens: usize,
        #[arg(long, default_value_t = 128)]
        output_tokens: usize,
        #[arg(long, default_value_t = 1024)]
        max_batch_size: usize,
        #[arg(long, default_value_t = 8192)]
        max_num_tokens: usize,
        #[arg(long, default_value = "bf16")]
        dtype: String,
        #[arg(long, default_value_t = 0.9)]
        kv_fraction: f64,
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Greedy-generate from a checkpoint and dump tokens and logits as JSON (HF comparison).
    #[command(hide = true)]
    EngineDump {
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        prompts: PathBuf,
        #[arg(long, default_value_t = 17)]
        output_tokens: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "bf16")]
        dtype: String,
    },
}

/// Run the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Llms { json } => llms::run(json),
        Command::Measure(a) => measure::run(*a),
        Command::Merge(a) => merge::run(a),
        Command::Selftest { dtype, llm, seed } => selftest::run(&dtype, &llm, seed),
        Command::EngineRun { llm, requests, input_tokens, output_tokens, max_batch_size, max_num_tokens, dtype, kv_fraction, checkpoint } => {
            selftest::engine_run(&llm, requests, input_tokens, output_tokens, max_batch_size, max_num_tokens, &dtype, kv_fraction, checkpoint)
        }
        Command::EngineDump { checkpoint, prompts, output_tokens, out, dtype } => selftest::engine_dump(checkpoint, prompts, output_tokens, out, &dtype),
    }
}
