//! `energy-fit measure`: plan a sweep, print it (`--dry-run`) or run it, appending one durable row
//! per point to `--out` and continuing a previous file with `--resume`.

use super::measure_plan::{grid, plan, Planned};
use super::measure_replace::Replacing;
use super::values::{fraction, positive_f64, seconds, whole};
use crate::measure::cost::RooflineCost;
use crate::measure::pace::{pace, pace_text};
use crate::measure::plan::{dry_run_table, plan_csv, plan_rows, Shard};
use crate::measure::plan::{MAX_BATCH_SIZE, MAX_NUM_TOKENS, MAX_REPEATS, MAX_REQUESTS, MAX_TOKENS};
use crate::measure::plan_file::write_plan;
use crate::measure::rows::Row;
use crate::measure::run::{key_of, run_source, FixedPoints, RunOpts, WorkloadFactory};
use crate::measure::standin::{StandinConfig, StandinMeter, StandinWorkload, STANDIN_ENV};
use crate::measure::writer::{card_warning, done_keys, peek_rows};
use crate::measure::{CostModel, EnergyMeter, NvmlMeter, Point, PointSource, Writer};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(args_override_self = true)]
pub struct MeasureArgs {
    /// LLM(s): catalog name or config.json / checkpoint directory, comma-separated.
    #[arg(long, default_value = "llama-3.2-1b")]
    pub llm: String,
    /// Input lengths n, comma-separated, each once.
    #[arg(long, value_delimiter = ',', default_value = "64,128,256,512,1024,2048,4096", value_parser = whole(1, MAX_TOKENS), allow_hyphen_values = true)]
    pub inputs: Vec<u64>,
    /// Output lengths m, comma-separated, each once.
    #[arg(long, value_delimiter = ',', default_value = "64,128,256,512,1024,2048,4096", value_parser = whole(1, MAX_TOKENS), allow_hyphen_values = true)]
    pub outputs: Vec<u64>,
    /// Requests R submitted at once, comma-separated, each once.
    #[arg(long, value_delimiter = ',', default_value = "1000", value_parser = whole(1, MAX_REQUESTS), allow_hyphen_values = true)]
    pub requests: Vec<u64>,
    /// In-flight batch bound(s), comma-separated, each once.
    #[arg(long, value_delimiter = ',', default_value = "1024", value_parser = whole(1, MAX_BATCH_SIZE), allow_hyphen_values = true)]
    pub max_batch_size: Vec<u64>,
    /// Tokens per engine step.
    #[arg(long, default_value_t = 8192, value_parser = whole(1, MAX_NUM_TOKENS), allow_hyphen_values = true)]
    pub max_num_tokens: u64,
    /// Dtype(s): bf16, fp16, fp32, comma-separated.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Measurements per point.
    #[arg(long, default_value_t = 1, value_parser = whole(1, MAX_REPEATS), allow_hyphen_values = true)]
    pub repeats: u64,
    /// Output file (.csv or .parquet; Parquet keeps a .journal.csv beside it).
    #[arg(long, default_value = "measurements.csv")]
    pub out: PathBuf,
    /// Measure exactly the points of this plan file (written by `design --plan-csv` or
    /// `measure --dry-run --plan-csv`), with their roles. The plan carries the LLM and run
    /// settings, so the grid flags are refused beside it.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["llm", "inputs", "outputs", "requests", "max_batch_size", "max_num_tokens", "dtype", "repeats", "budget_s", "shard"])]
    pub plan: Option<PathBuf>,
    /// Design within this many estimated measured seconds (as `energy-fit design --budget-s`,
    /// over the grid the flags give, GPU memory from --gpu-mem-gib or 80 GiB) and measure the
    /// design's points (role `design`).
    #[arg(long, value_parser = positive_f64)]
    pub budget_s: Option<f64>,
    /// With --budget-s: measure an initial design (see --initial-fraction), then refit after every
    /// point and choose the next by the largest expected reduction of the sweet spots'
    /// uncertainty per second, until the budget is spent. Resumable; not with --shard.
    #[arg(long, requires = "budget_s", conflicts_with = "shard")]
    pub adaptive: bool,
    /// With --adaptive: share of the budget the initial design may spend (at least what
    /// identifies the model).
    #[arg(long, value_name = "F", default_value_t = crate::design::DEFAULT_INITIAL_FRACTION, value_parser = fraction, requires = "adaptive")]
    pub initial_fraction: f64,
    /// With --budget-s: a fit file whose surface weights the points instead of the roofline
    /// estimate (it is never fitted).
    #[arg(long, value_name = "FIT.json", requires = "budget_s")]
    pub prior: Option<PathBuf>,
    /// With --budget-s and several --requests values: at least K design points at each (default
    /// 6; 0: none), as `design --min-points-per-requests`.
    #[arg(
        long,
        value_name = "K",
        requires = "budget_s",
        conflicts_with = "adaptive"
    )]
    pub min_points_per_requests: Option<usize>,
    /// With --budget-s: the energy model the design is for.
    #[arg(long, default_value = "flops-mem", requires = "budget_s")]
    pub model: String,
    /// Continue --out, skipping points already in it.
    #[arg(long)]
    pub resume: bool,
    /// With --resume, run again the points whose rows in --out are all skipped (e.g. after a
    /// transient failure); the new row is appended after the old one, which stays as history
    /// (fit and report read `ok` rows only; merge keeps the `ok` row).
    #[arg(long, requires = "resume")]
    pub retry_skipped: bool,
    /// With --resume, append even when --out holds rows of LLMs not being measured now (by
    /// default refused, so two campaigns are not mixed in one file by mistake).
    #[arg(long, requires = "resume")]
    pub force: bool,
    /// Print the plan, feasibility and roofline duration estimates; measure nothing. With --resume,
    /// only the points --out lacks (the time left), and the pace of the rows --out holds: their
    /// measured windows against the estimate, and the time left at that pace; --out is only read.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run, also write the plan to this CSV file for scripts: one line per point with
    /// columns llm, input_tokens, output_tokens, requests, max_batch_size, max_num_tokens, dtype,
    /// repeat, fits (true/false), est_s (the table's roofline seconds of one run, unrounded; empty
    /// when the point does not fit) and runs (runs per window; empty likewise). Written atomically;
    /// an existing file that is not a plan is refused.
    #[arg(long, requires = "dry_run", value_name = "PATH")]
    pub plan_csv: Option<PathBuf>,
    /// Power / clock / temperature sampling period in milliseconds.
    #[arg(long, default_value_t = 100, value_parser = whole(1, 60_000), allow_hyphen_values = true)]
    pub sample_ms: u64,
    /// Seconds of idle power measured just before each point, from the energy counter (0: one power
    /// sample, which on Ampere and newer averages the last second and so still holds the last point).
    #[arg(long, default_value_t = 1.0, value_parser = seconds(3600.0), allow_hyphen_values = true)]
    pub idle_s: f64,
    /// Minimum window length (s); shorter points are repeated inside the window.
    #[arg(long, default_value_t = 5.0, value_parser = seconds(86_400.0), allow_hyphen_values = true)]
    pub min_window_s: f64,
    /// Also measure each point's prefill alone (m = 1): prefill_energy_j, decode_energy_j.
    #[arg(long)]
    pub phases: bool,
    /// GPUs to use, one worker each (NVML indices), comma-separated, each once.
    #[arg(long, value_delimiter = ',', default_value = "0", value_parser = whole(0, 1023), allow_hyphen_values = true)]
    pub gpus: Vec<u64>,
    /// Take every N-th point starting at I (0 <= I < N), for splitting a sweep over hosts.
    #[arg(long, value_name = "I/N", value_parser = shard)]
    pub shard: Option<Shard>,
    /// GPU memory for --dry-run feasibility when no GPU is readable (GiB).
    #[arg(long, value_parser = super::values::gpu_mem_gib, allow_hyphen_values = true)]
    pub gpu_mem_gib: Option<f64>,
    /// No progress bar (without a terminal, a plain line per finished point is printed instead
    /// unless --quiet).
    #[arg(long)]
    pub quiet: bool,
    /// Start no new point after this many seconds; the remaining points are left for --resume
    /// (for sweeps split over time-limited jobs).
    #[arg(long, value_parser = positive_f64, allow_hyphen_values = true)]
    pub stop_after_s: Option<f64>,
    /// Before the first point, time cuBLASLt's candidate algorithms against cuBLAS's default for
    /// every layer GEMM at every decode batch size and keep the fastest (~30 ms a shape on an
    /// H100: ~2 minutes at max_batch_size 1024; it gained ~1 % of a decode step there, see
    /// docs/performance.md; the engine column then says "cuBLASLt-tuned GEMMs").
    #[arg(long)]
    pub tune_gemms: bool,
}

/// `--shard I/N` (the library's parser; its message names the flag).
fn shard(s: &str) -> std::result::Result<Shard, String> {
    s.parse().map_err(|e: anyhow::Error| format!("{e:#}"))
}

pub fn run(a: MeasureArgs) -> Result<()> {
    let g = grid(&a)?;
    let gpus = gpu_indices(&a.gpus)?;
    let opts = run_opts(&a);
    let gpu_mem = a.gpu_mem_gib.map(|g| (g * (1u64 << 30) as f64) as u64);
    crate::measure::writer::out_format(&a.out)?;
    let cost = RooflineCost;
    for l in &g.llms {
        cost.llm_name(l)?;
    }
    let mut planned = plan(&a, &g, gpu_mem, opts.min_window_s, &cost)?;
    // Meters first: no GPU, no NVML or a refused reading stops here, before any work.
    let standin = std::env::var(STANDIN_ENV)
        .ok()
        .map(|s| StandinConfig::parse(&s))
        .transpose()?;
    let meters = open_meters(standin.as_ref(), &gpus);
    if a.dry_run {
        return dry_run(&a, &mut planned, meters, gpu_mem, opts.min_window_s, &cost);
    }
    let meters = meters?;
    if standin.is_none() {
        number_gpus_as_nvml();
    }
    let writer = Writer::open(&a.out, a.resume)?;
    let cards = meters
        .iter()
        .map(|m| Ok(m.info()?.uuid))
        .collect::<Result<Vec<_>>>()?;
    if let Some(w) = card_warning(writer.rows(), &cards, &a.out) {
        eprintln!("{w}");
    }
    if a.resume {
        drop_done(&mut planned.points, writer.rows(), &a, &cost)?;
    }
    let factory = workload_factory(standin, a.tune_gemms);
    let (source, expected_points, expected_s) = point_source(planned, &a, gpu_mem, &cost);
    let s = run_source(
        source,
        expected_points,
        expected_s,
        meters,
        factory.as_ref(),
        &cost,
        writer,
        &opts,
    )
    .with_context(|| format!("measuring into {}", a.out.display()))?;
    let pace = if s.estimated_s > 0.0 {
        format!(
            " ({:.0} s estimated for the ok ones: pace {:.2}×)",
            s.estimated_s,
            s.paced_windows_s / s.estimated_s
        )
    } else {
        String::new()
    };
    eprintln!(
        "done: {} ok, {} skipped; wall {:.1} s, sum of measured windows {:.1} s{pace}; rows in {}",
        s.ok,
        s.skipped,
        s.wall_s,
        s.windows_s,
        a.out.display()
    );
    if s.left > 0 {
        eprintln!(
            "stopped after --stop-after-s with {}{} points left: continue with --resume",
            if a.adaptive { "at least " } else { "" },
            s.left
        );
    }
    Ok(())
}

/// The run loop's knobs from the flags.
fn run_opts(a: &MeasureArgs) -> RunOpts {
    RunOpts {
        sample: Duration::from_millis(a.sample_ms),
        idle_s: a.idle_s,
        min_window_s: a.min_window_s,
        phases: a.phases,
        progress: !a.quiet,
        stop_after: a.stop_after_s.map(Duration::from_secs_f64),
    }
}

/// One meter per GPU: the stand-in's when configured, else NVML's. The error is kept, not
/// returned: `--dry-run` goes on without a GPU.
fn open_meters(standin: Option<&StandinConfig>, gpus: &[u32]) -> Result<Vec<Arc<dyn EnergyMeter>>> {
    fn shared<M: EnergyMeter + 'static>(v: Vec<M>) -> Vec<Arc<dyn EnergyMeter>> {
        v.into_iter()
            .map(|m| Arc::new(m) as Arc<dyn EnergyMeter>)
            .collect()
    }
    match standin {
        Some(c) => StandinMeter::open_all(c, gpus).map(shared),
        None => NvmlMeter::open_all(gpus).map(shared),
    }
}

/// `--dry-run`: print the plan with feasibility and estimates (the points --out lacks, with
/// --resume) and write it with --plan-csv; measure nothing.
fn dry_run(
    a: &MeasureArgs,
    planned: &mut Planned,
    meters: Result<Vec<Arc<dyn EnergyMeter>>>,
    gpu_mem: Option<u64>,
    min_window_s: f64,
    cost: &RooflineCost,
) -> Result<()> {
    let done = if a.resume {
        let rows = peek_rows(&a.out)?;
        let before = planned.points.clone();
        drop_done(&mut planned.points, &rows, a, cost)?;
        Some((rows, before))
    } else if a.out.exists() {
        eprintln!(
            "note: --out {} exists; measuring these points into it needs --resume",
            a.out.display()
        );
        None
    } else {
        None
    };
    let (mem, src) = match (gpu_mem, &meters) {
        (Some(m), _) => (m, "--gpu-mem-gib".to_string()),
        (None, Ok(ms)) => {
            let i = ms[0].info()?;
            (
                i.memory_total_bytes,
                format!("{} (GPU {})", i.name, i.index),
            )
        }
        (None, Err(_)) => (
            80u64 << 30,
            "assumed 80 GiB H100 (no GPU readable; set --gpu-mem-gib)".to_string(),
        ),
    };
    let points = &planned.points;
    println!(
        "plan: {} points{}; memory from {src}",
        points.len(),
        a.shard
            .map(|s| format!(" (shard {}/{})", s.index, s.count))
            .unwrap_or_default()
    );
    let rows = plan_rows(points, cost, mem, min_window_s)?;
    print!("{}", dry_run_table(&rows, min_window_s)?);
    if let Some((measured, before)) = &done {
        let left: Vec<f64> = rows
            .iter()
            .filter_map(|r| r.fit.as_ref().ok())
            .map(|(e, n)| e * *n as f64)
            .collect();
        let paces = pace(measured, &plan_rows(before, cost, mem, min_window_s)?);
        let file = a.out.display().to_string();
        print!(
            "{}",
            pace_text(&paces, &file, left.len(), left.iter().sum())
        );
    }
    if planned.adaptive.is_some() {
        println!(
            "(the initial design: further points are chosen while measuring, within --budget-s)"
        );
    }
    if let Some(path) = &a.plan_csv {
        let roles: Vec<&str> = rows
            .iter()
            .map(|r| {
                planned
                    .roles
                    .get(&key_of(r.point, cost))
                    .map_or("", String::as_str)
            })
            .collect();
        write_plan(path, &plan_csv(&rows, &roles))?;
    }
    Ok(())
}

/// --gpus are NVML indices; make CUDA number the GPUs the same way (PCI bus order).
fn number_gpus_as_nvml() {
    if std::env::var_os("CUDA_DEVICE_ORDER").is_none() {
        std::env::set_var("CUDA_DEVICE_ORDER", "PCI_BUS_ID");
    }
    if std::env::var_os("CUDA_VISIBLE_DEVICES").is_some() {
        eprintln!("warning: CUDA_VISIBLE_DEVICES is set; --gpus are NVML indices and CUDA may number the GPUs differently");
    }
}

/// What each GPU's worker runs: the stand-in workload when configured, else the engine.
fn workload_factory(standin: Option<StandinConfig>, tune_gemms: bool) -> Box<WorkloadFactory> {
    match standin {
        Some(c) => Box::new(move |_gpu| {
            Ok(Box::new(StandinWorkload::new(c.clone())) as Box<dyn crate::measure::Workload>)
        }),
        None => Box::new(move |gpu| engine_workload(gpu, tune_gemms)),
    }
}

/// Where the run loop takes its points: the adaptive source (sized by the budget), or the planned
/// list with each point's role (sized by its length), whose design points that fail are replaced
/// (`measure_replace.rs`) unless the run is one shard of several.
fn point_source(
    planned: Planned,
    a: &MeasureArgs,
    gpu_mem: Option<u64>,
    cost: &RooflineCost,
) -> (Box<dyn PointSource>, Option<usize>, Option<f64>) {
    if let Some(ad) = planned.adaptive {
        return (Box::new(ad), None, a.budget_s);
    }
    let n = planned.points.len();
    let with_roles: VecDeque<(Point, String)> = planned
        .points
        .into_iter()
        .map(|p| {
            let role = planned
                .roles
                .get(&key_of(&p, cost))
                .cloned()
                .unwrap_or_default();
            (p, role)
        })
        .collect();
    let plan: Vec<(Point, String)> = planned.roles.into_iter().collect();
    let replacing = a.shard.is_none().then(|| {
        Replacing::new(
            with_roles.clone(),
            &plan,
            (&a.inputs, &a.outputs),
            &a.model,
            a.prior.as_deref(),
            gpu_mem.unwrap_or(80 << 30),
            a.min_window_s,
        )
    });
    match replacing.flatten() {
        Some(r) => (Box::new(r), Some(n), None),
        None => (Box::new(FixedPoints(with_roles)), Some(n), None),
    }
}

/// `--gpus` as NVML indices, each once.
fn gpu_indices(gpus: &[u64]) -> Result<Vec<u32>> {
    let mut seen = std::collections::HashSet::new();
    for g in gpus {
        if !seen.insert(g) {
            let all: Vec<String> = gpus.iter().map(u64::to_string).collect();
            bail!("--gpus: GPU {g} is listed twice in {}", all.join(","));
        }
    }
    Ok(gpus.iter().map(|&g| g as u32).collect())
}

/// `--resume`: drop the points `rows` (those already in --out) hold, all of them or with
/// --retry-skipped those with an `ok` row, and say how many are left.
/// Rows of LLMs that are not being measured are refused unless --force.
fn drop_done(
    points: &mut Vec<Point>,
    rows: &[Row],
    a: &MeasureArgs,
    cost: &dyn CostModel,
) -> Result<()> {
    let ours: std::collections::HashSet<String> =
        points.iter().map(|p| key_of(p, cost).llm).collect();
    let mut foreign: Vec<&str> = rows
        .iter()
        .map(|r| r.llm.as_str())
        .filter(|l| !ours.contains(*l))
        .collect();
    foreign.sort_unstable();
    foreign.dedup();
    if !foreign.is_empty() && !points.is_empty() && !a.force {
        bail!(
            "--resume: {} holds rows of {} not being measured now (--llm gives {}); pass --force \
             to append to it anyway, or choose another --out and merge",
            a.out.display(),
            foreign.join(", "),
            ours.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let (before, done) = (points.len(), done_keys(rows, a.retry_skipped));
    points.retain(|p| !done.contains(&key_of(p, cost)));
    eprintln!(
        "resume: {} of {before} points already in {}, {} to go",
        before - points.len(),
        a.out.display(),
        points.len()
    );
    Ok(())
}

/// The real workload: the engine on GPU `gpu`.
fn engine_workload(gpu: u32, gemm_tune: bool) -> Result<Box<dyn crate::measure::Workload>> {
    Ok(Box::new(
        crate::measure::engine_workload::EngineWorkload::new(gpu, gemm_tune),
    ))
}
