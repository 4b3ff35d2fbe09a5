//! `energy-fit measure`: plan a sweep, print it (`--dry-run`) or run it, appending one durable row
//! per point to `--out` and continuing a previous file with `--resume`.

use super::measure_adaptive::Adaptive;
use crate::measure::cost::RooflineCost;
use crate::measure::plan::{dry_run_table, parse_list, plan_csv, plan_rows, Grid, Shard};
use crate::measure::plan_file::read_plan;
use crate::measure::rows::Row;
use crate::measure::run::{key_of, run_source, FixedPoints, RunOpts, WorkloadFactory};
use crate::measure::standin::{StandinConfig, StandinMeter, StandinWorkload, STANDIN_ENV};
use crate::measure::writer::{done_keys, peek_rows};
use crate::measure::Key;
use crate::measure::{CostModel, EnergyMeter, NvmlMeter, Point, PointSource, Writer};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
#[command(args_override_self = true)]
pub struct MeasureArgs {
    /// LLM(s): catalog name or config.json / checkpoint directory, comma-separated.
    #[arg(long, default_value = "llama-3.2-1b")]
    pub llm: String,
    /// Input lengths n, comma-separated.
    #[arg(
        long,
        default_value = "64,128,256,512,1024,2048,4096",
        allow_hyphen_values = true
    )]
    pub inputs: String,
    /// Output lengths m, comma-separated.
    #[arg(
        long,
        default_value = "64,128,256,512,1024,2048,4096",
        allow_hyphen_values = true
    )]
    pub outputs: String,
    /// Requests R submitted at once, comma-separated.
    #[arg(long, default_value = "1000", allow_hyphen_values = true)]
    pub requests: String,
    /// In-flight batch bound(s), comma-separated.
    #[arg(long, default_value = "1024", allow_hyphen_values = true)]
    pub max_batch_size: String,
    /// Tokens per engine step.
    #[arg(long, default_value = "8192", allow_hyphen_values = true)]
    pub max_num_tokens: String,
    /// Dtype(s): bf16, fp16, fp32, comma-separated.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Measurements per point.
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    pub repeats: String,
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
    #[arg(long, value_parser = super::design::positive_f64)]
    pub budget_s: Option<f64>,
    /// With --budget-s: measure an initial design (see --initial-fraction), then refit after every
    /// point and choose the next by the largest expected reduction of the sweet spots'
    /// uncertainty per second, until the budget is spent. Resumable; not with --shard.
    #[arg(long, requires = "budget_s", conflicts_with = "shard")]
    pub adaptive: bool,
    /// With --adaptive: share of the budget the initial design may spend (at least what
    /// identifies the model).
    #[arg(long, value_name = "F", default_value_t = crate::design::DEFAULT_INITIAL_FRACTION, value_parser = super::design::fraction, requires = "adaptive")]
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
    /// only the points --out lacks (the time left); --out is only read.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run, also write the plan to this CSV file for scripts: one line per point with
    /// columns llm, input_tokens, output_tokens, requests, max_batch_size, max_num_tokens, dtype,
    /// repeat, fits (true/false), est_s (the table's roofline seconds of one run, unrounded; empty
    /// when the point does not fit) and runs (runs per window; empty likewise).
    #[arg(long, requires = "dry_run", value_name = "PATH")]
    pub plan_csv: Option<PathBuf>,
    /// Power / clock / temperature sampling period in milliseconds.
    #[arg(long, default_value = "100", allow_hyphen_values = true)]
    pub sample_ms: String,
    /// Seconds of idle power measured just before each point, from the energy counter (0: one power
    /// sample, which on Ampere and newer averages the last second and so still holds the last point).
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    pub idle_s: String,
    /// Minimum window length; shorter points are repeated inside the window.
    #[arg(long, default_value = "5", allow_hyphen_values = true)]
    pub min_window_s: String,
    /// Also measure each point's prefill alone (m = 1): prefill_energy_j, decode_energy_j.
    #[arg(long)]
    pub phases: bool,
    /// GPUs to use, one worker each (NVML indices), comma-separated.
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub gpus: String,
    /// Take every N-th point starting at I (0 <= I < N), for splitting a sweep over hosts.
    #[arg(long)]
    pub shard: Option<String>,
    /// GPU memory for --dry-run feasibility when no GPU is readable (GiB).
    #[arg(long, allow_hyphen_values = true)]
    pub gpu_mem_gib: Option<String>,
    /// No progress bar (without a terminal, a plain line per finished point is printed instead
    /// unless --quiet).
    #[arg(long)]
    pub quiet: bool,
    /// Start no new point after this many seconds; the remaining points are left for --resume
    /// (for sweeps split over time-limited jobs).
    #[arg(long, allow_hyphen_values = true)]
    pub stop_after_s: Option<String>,
    /// Before the first point, time cuBLASLt's candidate algorithms against cuBLAS's default for
    /// every layer GEMM at every decode batch size and keep the fastest (~30 ms a shape on an
    /// H100: ~2 minutes at max_batch_size 1024; it gained ~1 % of a decode step there, see
    /// docs/performance.md; the engine column then says "cuBLASLt-tuned GEMMs").
    #[arg(long)]
    pub tune_gemms: bool,
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T> {
    v.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag}: {v:?} is not a valid number"))
}

fn pos_f64(flag: &str, v: &str, allow_zero: bool) -> Result<f64> {
    let x: f64 = num(flag, v)?;
    if !x.is_finite() || x < 0.0 || (!allow_zero && x == 0.0) {
        bail!(
            "{flag}: must be {}, got {v:?}",
            if allow_zero { ">= 0" } else { "> 0" }
        );
    }
    Ok(x)
}

fn grid(a: &MeasureArgs) -> Result<Grid> {
    let list = |s: &str| {
        s.split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
    };
    let mnt = parse_list("--max-num-tokens", &a.max_num_tokens)?;
    if mnt.len() != 1 {
        bail!(
            "--max-num-tokens: one value expected, got {:?}",
            a.max_num_tokens
        );
    }
    let repeats: u64 = num("--repeats", &a.repeats)?;
    let g = Grid {
        llms: list(&a.llm),
        inputs: parse_list("--inputs", &a.inputs)?,
        outputs: parse_list("--outputs", &a.outputs)?,
        requests: parse_list("--requests", &a.requests)?,
        max_batch_sizes: parse_list("--max-batch-size", &a.max_batch_size)?,
        max_num_tokens: mnt[0],
        dtypes: list(&a.dtype),
        repeats,
    };
    g.validate()?;
    Ok(g)
}

pub fn run(a: MeasureArgs) -> Result<()> {
    let g = grid(&a)?;
    let gpus = a
        .gpus
        .split(',')
        .map(|t| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| anyhow::anyhow!("--gpus: {t:?} is not a GPU index (in {:?})", a.gpus))
        })
        .collect::<Result<Vec<u32>>>()?;
    if gpus.iter().collect::<std::collections::HashSet<_>>().len() != gpus.len() {
        bail!("--gpus: {:?} lists a GPU twice", a.gpus);
    }
    let shard: Option<Shard> = a.shard.as_deref().map(str::parse).transpose()?;
    let opts = RunOpts {
        sample: Duration::from_millis(num::<u64>("--sample-ms", &a.sample_ms).and_then(|v| {
            if v == 0 {
                bail!("--sample-ms: must be > 0, got 0")
            } else {
                Ok(v)
            }
        })?),
        idle_s: pos_f64("--idle-s", &a.idle_s, true)?,
        min_window_s: pos_f64("--min-window-s", &a.min_window_s, true)?,
        phases: a.phases,
        progress: !a.quiet,
        stop_after: a
            .stop_after_s
            .as_deref()
            .map(|v| pos_f64("--stop-after-s", v, false))
            .transpose()?
            .map(Duration::from_secs_f64),
    };
    let gpu_mem_override = a
        .gpu_mem_gib
        .as_deref()
        .map(|v| pos_f64("--gpu-mem-gib", v, false))
        .transpose()?
        .map(|g| (g * (1u64 << 30) as f64) as u64);
    crate::measure::writer::out_format(&a.out)?;
    let cost = RooflineCost;
    for l in &g.llms {
        cost.llm_name(l)?;
    }
    let mut adaptive = None;
    let planned: Vec<(Point, String)> = match (&a.plan, a.budget_s) {
        (Some(path), _) => read_plan(path)?,
        (None, Some(budget)) if a.adaptive => {
            let ad = adaptive_source(&a, &g, budget, gpu_mem_override, opts.min_window_s)?;
            let initial = ad.initial_points();
            adaptive = Some(ad);
            initial
        }
        (None, Some(budget)) => designed(&a, &g, budget, gpu_mem_override, opts.min_window_s)?,
        (None, None) => g.points().into_iter().map(|p| (p, String::new())).collect(),
    };
    for (p, _) in planned.iter().take(1) {
        cost.llm_name(&p.llm)?;
    }
    crate::measure::plan::check_runnable(planned.iter().map(|(p, _)| p))?;
    let roles: HashMap<Key, String> = planned
        .iter()
        .map(|(p, r)| (key_of(p, &cost), r.clone()))
        .collect();
    let mut points: Vec<Point> = planned.into_iter().map(|(p, _)| p).collect();
    if let Some(s) = shard {
        points = s.take(points);
    }

    // Meters first: no GPU, no NVML or a refused reading stops here, before any work.
    let standin = std::env::var(STANDIN_ENV)
        .ok()
        .map(|s| StandinConfig::parse(&s))
        .transpose()?;
    let meters: Result<Vec<Arc<dyn EnergyMeter>>> = match &standin {
        Some(c) => StandinMeter::open_all(c, &gpus).map(|v| {
            v.into_iter()
                .map(|m| Arc::new(m) as Arc<dyn EnergyMeter>)
                .collect()
        }),
        None => NvmlMeter::open_all(&gpus).map(|v| {
            v.into_iter()
                .map(|m| Arc::new(m) as Arc<dyn EnergyMeter>)
                .collect()
        }),
    };

    if a.dry_run {
        if a.resume {
            drop_done(&mut points, &peek_rows(&a.out)?, &a, &cost)?;
        } else if a.out.exists() {
            eprintln!(
                "note: --out {} exists; measuring these points into it needs --resume",
                a.out.display()
            );
        }
        let (mem, src) = match (gpu_mem_override, &meters) {
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
        println!(
            "plan: {} points{}; memory from {src}",
            points.len(),
            shard
                .map(|s| format!(" (shard {}/{})", s.index, s.count))
                .unwrap_or_default()
        );
        let rows = plan_rows(&points, &cost, mem, opts.min_window_s)?;
        print!("{}", dry_run_table(&rows, opts.min_window_s)?);
        if adaptive.is_some() {
            println!("(the initial design: further points are chosen while measuring, within --budget-s)");
        }
        if let Some(path) = &a.plan_csv {
            std::fs::write(
                path,
                plan_csv(
                    &rows,
                    &rows
                        .iter()
                        .map(|r| {
                            roles
                                .get(&key_of(r.point, &cost))
                                .map_or("", String::as_str)
                        })
                        .collect::<Vec<_>>(),
                ),
            )
            .with_context(|| format!("--plan-csv: writing {}", path.display()))?;
        }
        return Ok(());
    }
    let meters = meters?;
    if standin.is_none() {
        // --gpus are NVML indices; make CUDA number the GPUs the same way (PCI bus order).
        if std::env::var_os("CUDA_DEVICE_ORDER").is_none() {
            std::env::set_var("CUDA_DEVICE_ORDER", "PCI_BUS_ID");
        }
        if std::env::var_os("CUDA_VISIBLE_DEVICES").is_some() {
            eprintln!("warning: CUDA_VISIBLE_DEVICES is set; --gpus are NVML indices and CUDA may number the GPUs differently");
        }
    }
    let writer = Writer::open(&a.out, a.resume)?;
    if a.resume {
        drop_done(&mut points, writer.rows(), &a, &cost)?;
    }
    let factory: Box<WorkloadFactory> = match standin {
        Some(c) => Box::new(move |_gpu| {
            Ok(Box::new(StandinWorkload::new(c.clone())) as Box<dyn crate::measure::Workload>)
        }),
        None => {
            let tune = a.tune_gemms;
            Box::new(move |gpu| engine_workload(gpu, tune))
        }
    };
    let n = points.len();
    let (source, expected_points, expected_s): (Box<dyn PointSource>, _, _) = match adaptive {
        Some(ad) => (Box::new(ad), None, a.budget_s),
        None => (
            Box::new(FixedPoints(
                points
                    .into_iter()
                    .map(|p| {
                        let role = roles.get(&key_of(&p, &cost)).cloned().unwrap_or_default();
                        (p, role)
                    })
                    .collect(),
            )),
            Some(n),
            None,
        ),
    };
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
    eprintln!(
        "done: {} ok, {} skipped; wall {:.1} s, sum of measured windows {:.1} s; rows in {}",
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

/// `--budget-s`: the D-optimal design of the grid's points within the budget.
fn designed(
    a: &MeasureArgs,
    g: &Grid,
    budget: f64,
    mem: Option<u64>,
    min_window_s: f64,
) -> Result<Vec<(Point, String)>> {
    let model = crate::analytic::model_by_name(&a.model)?;
    let mem = mem.unwrap_or(80 << 30);
    let c = super::design_input::candidates(
        super::design_input::grid_points(g, &a.model)?,
        a.prior.as_deref(),
        mem,
        min_window_s,
    )?;
    let p = crate::design::Planner::new(model.as_ref(), c.list.clone())?;
    let floor =
        super::design_input::min_points_per_requests(a.min_points_per_requests, &g.requests)?;
    let d = crate::design::plan_with_floor(&p, budget, &[], floor)?;
    eprintln!(
        "design: {} points, {:.1} s estimated of the {budget:.1} s budget (prior: {})",
        d.chosen.len(),
        d.cost_s,
        c.prior
    );
    if c.several_requests() {
        eprintln!(
            "{}",
            super::design_input::per_requests_line(&p, &d.chosen, floor)
        );
    }
    Ok(d.chosen
        .iter()
        .map(|&i| (c.points[i].clone(), "design".to_string()))
        .collect())
}

/// `--adaptive`: the candidates of the grid and the source that refines their design.
fn adaptive_source(
    a: &MeasureArgs,
    g: &Grid,
    budget: f64,
    mem: Option<u64>,
    min_window_s: f64,
) -> Result<Adaptive> {
    if g.requests.len() > 1 {
        anyhow::bail!(
            "--adaptive --requests {}: an adaptive design is refined for one requests value; plan several with `design --requests` or `measure --budget-s` without --adaptive",
            a.requests
        );
    }
    let c = super::design_input::candidates(
        super::design_input::grid_points(g, &a.model)?,
        a.prior.as_deref(),
        mem.unwrap_or(80 << 30),
        min_window_s,
    )?;
    let keys = c.points.iter().map(|p| key_of(p, &RooflineCost)).collect();
    Adaptive::new(
        crate::analytic::model_by_name(&a.model)?,
        &c,
        keys,
        budget,
        a.initial_fraction,
        !a.quiet,
    )
}

/// The real workload: the engine on GPU `gpu`.
fn engine_workload(gpu: u32, gemm_tune: bool) -> Result<Box<dyn crate::measure::Workload>> {
    Ok(Box::new(
        crate::measure::engine_workload::EngineWorkload::new(gpu, gemm_tune),
    ))
}
