//! Command-line interface: one file per subcommand; `main.rs` only parses and dispatches.

pub mod bench;
pub mod calibrate;
pub mod design;
mod design_input;
mod design_validate;
pub mod engine_run;
pub mod fit;
mod fit_prior;
pub mod import_reference;
mod measure_adaptive;
pub mod predict;
pub mod report;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub mod llms;
pub mod measure;
pub mod merge;
pub mod selftest;

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
    /// Fit the zero-shot constants across LLMs (measurements or the published surfaces); with
    /// --leave-one-out, score predictions of each LLM from the others beside two naive baselines.
    Calibrate(calibrate::CalibrateArgs),
    /// Print the LLM catalog: shapes, parameters, FLOPs per token, KV bytes per token.
    Llms {
        /// Print the full configs as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Choose the grid points that tell most about an energy model per estimated second, within a
    /// budget; or print the budget curve, or validate designs on a measured grid (no GPU needed).
    Design(Box<design::DesignArgs>),
    /// Measure the GPU energy of a grid of (input_tokens, output_tokens) points.
    Measure(Box<measure::MeasureArgs>),
    /// Time the engine's prefill and decode against their roofline floors on this GPU (needs a GPU).
    Bench(bench::BenchArgs),
    /// Combine measurement files (e.g. shards), refusing conflicting duplicates.
    Merge(merge::MergeArgs),
    /// Check every engine kernel on this GPU against CPU references, then random-weights forwards.
    Selftest {
        /// bf16, fp16 or all.
        #[arg(long, default_value = "all")]
        dtype: String,
        /// LLMs (comma-separated) whose random-weights forward is checked layer by layer; the
        /// default takes one per architecture family.
        #[arg(long, default_value = "llama-3.2-1b,opt-1.3b,falcon-rw-7b,gemma-2-2b")]
        llm: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run grid points on the engine with random weights; print time and tokens/s (GPU, no NVML).
    ///
    /// No energy metering. Example: `energy-fit engine-run --llm opt-6.7b --points 64x64,4096x4096`.
    EngineRun {
        /// Catalog name, config.json or checkpoint directory.
        #[arg(long, default_value = "llama-3.2-1b")]
        llm: String,
        /// Requests per point, all submitted at once.
        #[arg(long, default_value_t = 64)]
        requests: usize,
        #[arg(long, default_value_t = 128)]
        input_tokens: usize,
        #[arg(long, default_value_t = 128)]
        output_tokens: usize,
        /// Several points on one engine, as NxM (input x output tokens), comma-separated; overrides
        /// --input-tokens / --output-tokens.
        #[arg(long)]
        points: Option<String>,
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
        /// Launch every kernel directly instead of replaying decode iterations as CUDA graphs.
        #[arg(long)]
        no_graphs: bool,
        /// Attention kernels (prefill and decode): tensor-core (tc) or the fp32 scalar ones (A/B checks).
        #[arg(long, value_enum, default_value_t = Attention::Tc)]
        attention: Attention,
        /// Write one CSV row per iteration of every point (point, iteration, prefill and decode
        /// tokens, host µs to plan and queue it, GPU ms from its first to its last launch, GPU idle
        /// ms before it) to FILE, and print each point's GPU idle time between iterations.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Skip running every decode GEMM shape (1..=max_batch_size rows) once before the first
        /// point; the first point then pays cuBLAS's first use of each shape (A/B checks).
        #[arg(long)]
        no_warm_gemms: bool,
        /// Tune every decode GEMM shape instead of only warming it: time cuBLASLt's candidate
        /// algorithms against cuBLAS's default and keep the fastest (A/B of `measure --tune-gemms`).
        #[arg(long, conflicts_with = "no_warm_gemms")]
        tune_gemms: bool,
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
        #[arg(long, value_enum, default_value_t = Attention::Tc)]
        attention: Attention,
    },
}

/// Attention kernels of prefill and decode.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attention {
    /// Tensor cores (mma.sync): attention_tc.cu (prefill), attention_tcd.cu (decode).
    Tc,
    /// fp32 scalar arithmetic: attention.cu.
    Scalar,
}

impl Attention {
    pub fn is_tc(self) -> bool {
        self == Attention::Tc
    }
}

/// Run the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Fit(a) => fit::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Calibrate(a) => calibrate::run(a),
        Command::Report(a) => report::run(a),
        Command::ImportReference(a) => import_reference::run(a),
        Command::Llms { json } => llms::run(json),
        Command::Design(a) => design::run(*a),
        Command::Measure(a) => measure::run(*a),
        Command::Merge(a) => merge::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Selftest { dtype, llm, seed } => selftest::run(&dtype, &llm, seed),
        Command::EngineRun {
            llm,
            requests,
            input_tokens,
            output_tokens,
            points,
            max_batch_size,
            max_num_tokens,
            dtype,
            kv_fraction,
            checkpoint,
            no_graphs,
            attention,
            trace,
            no_warm_gemms,
            tune_gemms,
        } => {
            let pts = match points {
                Some(p) => engine_run::parse_points(&p)?,
                None => vec![(input_tokens, output_tokens)],
            };
            let opts = engine_run::RunOpts {
                cuda_graphs: !no_graphs,
                tc_attention: attention.is_tc(),
                trace,
                warm_gemms: !no_warm_gemms,
                gemm_tune: tune_gemms,
            };
            engine_run::engine_run(
                &llm,
                requests,
                &pts,
                max_batch_size,
                max_num_tokens,
                &dtype,
                kv_fraction,
                checkpoint,
                opts,
            )
        }
        Command::EngineDump {
            checkpoint,
            prompts,
            output_tokens,
            out,
            dtype,
            attention,
        } => engine_run::engine_dump(
            checkpoint,
            prompts,
            output_tokens,
            out,
            &dtype,
            attention.is_tc(),
        ),
    }
}
