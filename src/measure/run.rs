//! The sweep: one worker thread per GPU takes points from a shared queue, meters each on its own
//! GPU's counter and appends the row durably before taking the next.
//!
//! Per point: feasibility → idle power → prepare + warm-up (outside the window) → window (submit
//! all R requests … last token, repeated back-to-back until ≥ `min_window_s`) → optional prefill
//! window (m = 1) for `--phases` → row. Any failure of a point becomes `skipped: <reason>` and the
//! sweep goes on; only writer errors stop it.

use super::meter::{idle_power_w, EnergyMeter, GpuInfo, Window};
use super::plan::{CostModel, Point};
use super::rows::{Key, Row};
use super::writer::Writer;
use crate::dataset::schema::Status;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the run loop drives: the engine (real) or a stand-in (tests).
pub trait Workload {
    /// Engine name and version, for the `engine` column.
    fn engine(&self) -> String;
    /// Get ready for `p` outside any window: load or reuse the LLM, size the KV cache, compile and
    /// warm up (kernels, CUDA graphs). An error skips the point.
    fn prepare(&mut self, p: &Point) -> Result<()>;
    /// Submit all `p.requests` requests of `p.input_tokens` tokens at once, generate exactly
    /// `output_tokens` each, return when the last token is on the host. Returns tokens generated.
    fn run(&mut self, p: &Point, output_tokens: u64) -> Result<u64>;
    /// The batch of the last full run (`output_tokens` = the point's m): mean sequences in flight
    /// per iteration and the KV capacity in tokens. None where the workload cannot say.
    fn batch(&self) -> Option<RunBatch> {
        None
    }
}

/// How batched a run was (the rows' `mean_concurrency` and `kv_capacity_tokens`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunBatch {
    pub mean_concurrency: f64,
    pub kv_capacity_tokens: u64,
}

/// Builds the workload of one GPU inside its worker thread.
pub type WorkloadFactory = dyn Fn(u32) -> Result<Box<dyn Workload>> + Sync;

/// Knobs of the run loop.
#[derive(Clone, Debug)]
pub struct RunOpts {
    pub sample: Duration,
    pub idle_s: f64,
    pub min_window_s: f64,
    pub phases: bool,
    pub progress: bool,
    /// Start no new point after this long (the rest is left for `--resume`).
    pub stop_after: Option<Duration>,
}

/// Result of a sweep.
#[derive(Debug, Default)]
pub struct Summary {
    pub ok: usize,
    pub skipped: usize,
    pub windows_s: f64,
    /// The roofline estimate of the `ok` windows (one run's estimate times the window's runs),
    /// and those windows' measured sum: the sweep's pace (`pace.rs`).
    pub estimated_s: f64,
    pub paced_windows_s: f64,
    pub wall_s: f64,
    /// Points not started because `stop_after` had passed.
    pub left: usize,
}

/// Where a sweep's points come from. Workers ask for the next point when they are free, with
/// every row written so far, so a source may choose points from what was measured (adaptive
/// designs) or hand out a fixed list.
pub trait PointSource: Send {
    /// The next point and its `role` column, or `None` to end the sweep.
    fn next(&mut self, rows: &[Row]) -> Option<(Point, String)>;
    /// Points known to be still to come (after a stopped sweep: those left for `--resume`).
    fn left(&self) -> usize;
    /// The points known to be still to come, in order (sizes the progress bar).
    fn queued(&self) -> Vec<Point>;
}

/// A fixed list of points, in order, each with its role.
pub struct FixedPoints(pub VecDeque<(Point, String)>);

impl PointSource for FixedPoints {
    fn next(&mut self, _rows: &[Row]) -> Option<(Point, String)> {
        self.0.pop_front()
    }
    fn left(&self) -> usize {
        self.0.len()
    }
    fn queued(&self) -> Vec<Point> {
        self.0.iter().map(|(p, _)| p.clone()).collect()
    }
}

/// Run `points` (already filtered by shard and resume) on `meters` (one per GPU).
pub fn run_sweep(
    points: Vec<Point>,
    meters: Vec<Arc<dyn EnergyMeter>>,
    factory: &WorkloadFactory,
    cost: &dyn CostModel,
    writer: Writer,
    opts: &RunOpts,
) -> Result<Summary> {
    let total_points = points.len();
    let source = FixedPoints(points.into_iter().map(|p| (p, String::new())).collect());
    run_source(
        Box::new(source),
        Some(total_points),
        None,
        meters,
        factory,
        cost,
        writer,
        opts,
    )
}

/// Run the points `source` hands out. `expected_points` (when known beforehand) and `expected_s`
/// (the estimated measured seconds, when known beforehand, e.g. a budget) only feed the progress
/// bar; without `expected_s` the bar is sized from the source's fixed points.
#[allow(clippy::too_many_arguments)]
pub fn run_source(
    source: Box<dyn PointSource>,
    expected_points: Option<usize>,
    expected_s: Option<f64>,
    meters: Vec<Arc<dyn EnergyMeter>>,
    factory: &WorkloadFactory,
    cost: &dyn CostModel,
    writer: Writer,
    opts: &RunOpts,
) -> Result<Summary> {
    let t0 = Instant::now();
    let mem = meters
        .first()
        .map(|m| m.info())
        .transpose()?
        .map(|i| i.memory_total_bytes)
        .unwrap_or(80 << 30);
    let weigh = Weigh {
        cost,
        mem,
        min_window_s: opts.min_window_s,
    };
    let total_w = match expected_s {
        Some(s) => (s * 1000.0) as u64,
        None => source.queued().iter().map(|p| weigh.of(p)).sum(),
    };
    let of_total = expected_points.map_or(String::new(), |n| format!("/{n}"));
    let shared = Shared {
        queue: Mutex::new(source),
        writer: Mutex::new(writer),
        summary: Mutex::new(Summary::default()),
        bar: progress_bar(total_w, opts.progress, &of_total),
        of_total,
        t0,
        opts,
        cost,
        weigh,
    };
    let errors: Vec<anyhow::Error> = std::thread::scope(|s| {
        let handles: Vec<_> = meters
            .iter()
            .map(|meter| {
                let shared = &shared;
                s.spawn(move || shared.worker(meter.clone(), factory))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("worker thread panicked"))
                    .and_then(|r| r)
                    .err()
            })
            .collect()
    });
    shared.bar.finish();
    let mut sm = shared.summary.into_inner().unwrap();
    sm.wall_s = t0.elapsed().as_secs_f64();
    sm.left = shared.queue.into_inner().unwrap().left();
    if let Some(e) = errors.into_iter().next() {
        return Err(e.context(format!(
            "sweep stopped ({} ok, {} skipped written)",
            sm.ok, sm.skipped
        )));
    }
    Ok(sm)
}

/// A point's weight on the progress bar: its estimated window in ms (roofline, at least
/// min_window_s), so the bar's ETA is meaningful although points differ in length by 1000×.
struct Weigh<'a> {
    cost: &'a dyn CostModel,
    mem: u64,
    min_window_s: f64,
}

impl Weigh<'_> {
    fn of(&self, p: &Point) -> u64 {
        self.weight(self.estimate_s(p))
    }

    /// The weight of a point of estimate `est` (None: it does not fit).
    fn weight(&self, est: Option<f64>) -> u64 {
        (est.unwrap_or(0.0).max(self.min_window_s).max(0.1) * 1000.0) as u64
    }

    /// One run's roofline seconds, where the point fits.
    fn estimate_s(&self, p: &Point) -> Option<f64> {
        self.cost.feasible(p, self.mem).ok()?;
        self.cost.estimate_s(p, self.mem).ok()
    }
}

/// The bar advances by estimated time; its message counts points.
fn progress_bar(total_w: u64, progress: bool, of_total: &str) -> ProgressBar {
    let bar = if progress {
        ProgressBar::new(total_w)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {percent}% (by estimated time), ETA {eta_precise}  {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("0{of_total} points"));
    bar
}

/// What the GPU workers share: the point queue, the writer, the counts and the bar.
struct Shared<'a> {
    queue: Mutex<Box<dyn PointSource>>,
    writer: Mutex<Writer>,
    summary: Mutex<Summary>,
    bar: ProgressBar,
    of_total: String,
    t0: Instant,
    opts: &'a RunOpts,
    cost: &'a dyn CostModel,
    weigh: Weigh<'a>,
}

impl Shared<'_> {
    /// One GPU's worker: take the next point, measure it, append its row, until the source is
    /// empty or `stop_after` has passed. Only a failure to start the workload or to write a row
    /// ends it with an error; a point that fails is a skipped row.
    fn worker(&self, meter: Arc<dyn EnergyMeter>, factory: &WorkloadFactory) -> Result<()> {
        let info = meter.info()?;
        let mut work = factory(info.index)
            .with_context(|| format!("starting the workload on GPU {}", info.index))?;
        let engine = work.engine();
        loop {
            if self.opts.stop_after.is_some_and(|d| self.t0.elapsed() >= d) {
                return Ok(());
            }
            let next = {
                let mut q = self.queue.lock().unwrap();
                let w = self.writer.lock().unwrap();
                q.next(w.rows())
            };
            let Some((p, role)) = next else {
                return Ok(());
            };
            let mut row = measure_point(
                &p,
                meter.clone(),
                &info,
                &engine,
                work.as_mut(),
                self.cost,
                self.opts,
            );
            row.role = role;
            let (ok, msg) = (row.status.is_ok(), point_message(&p, &row));
            let window = row.window_s.unwrap_or(0.0);
            let one_run = self.weigh.estimate_s(&p);
            let est = row
                .window_runs
                .zip(one_run)
                .map(|(runs, e)| e * runs as f64)
                .filter(|e| ok && *e > 0.0 && window > 0.0);
            self.writer.lock().unwrap().append(row)?;
            self.record(ok, window, est, &msg);
            self.bar.inc(self.weigh.weight(one_run));
        }
    }

    /// Count a finished point and show it: on the bar, or one plain line per point when there is
    /// no terminal (a log file, a batch job).
    fn record(&self, ok: bool, window: f64, est: Option<f64>, msg: &str) {
        let mut sm = self.summary.lock().unwrap();
        if ok {
            sm.ok += 1
        } else {
            sm.skipped += 1
        }
        sm.windows_s += window;
        if let Some(e) = est {
            sm.estimated_s += e;
            sm.paced_windows_s += window;
        }
        let pace = est.map_or(String::new(), |e| {
            format!(" ({:.2}× its estimate)", window / e)
        });
        let (done, of_total) = (sm.ok + sm.skipped, &self.of_total);
        self.bar
            .set_message(format!("{done}{of_total} points, last: {msg}"));
        if self.opts.progress && self.bar.is_hidden() {
            eprintln!(
                "[{:>7.1} s] {done}{of_total} points, window {window:.1} s{pace}: {msg}",
                self.t0.elapsed().as_secs_f64(),
            );
        }
    }
}

/// The progress line of a finished point: its tokens/J, or its status.
fn point_message(p: &Point, row: &Row) -> String {
    match (row.status.is_ok(), row.energy_j, row.generated_tokens) {
        (true, Some(e), Some(t)) if e > 0.0 => format!(
            "{} n={} m={}: {:.2} tokens/J",
            p.llm,
            p.input_tokens,
            p.output_tokens,
            t as f64 / e
        ),
        _ => format!(
            "{} n={} m={}: {}",
            p.llm, p.input_tokens, p.output_tokens, row.status
        ),
    }
}

/// A window of back-to-back runs of `p` with `m` output tokens lasting at least `min_s`.
struct Measured {
    energy_j: f64,
    duration_s: f64,
    runs: u64,
    tokens: u64,
    reading: super::meter::Reading,
}

fn window(
    meter: Arc<dyn EnergyMeter>,
    work: &mut dyn Workload,
    p: &Point,
    m: u64,
    opts: &RunOpts,
) -> Result<Measured> {
    let w = Window::start(meter, opts.sample)?;
    let t = Instant::now();
    let (mut runs, mut tokens) = (0u64, 0u64);
    while runs == 0 || t.elapsed().as_secs_f64() < opts.min_window_s {
        tokens += work.run(p, m)?;
        runs += 1;
    }
    let reading = w.finish()?;
    Ok(Measured {
        energy_j: reading.energy_j,
        duration_s: reading.duration_s,
        runs,
        tokens,
        reading,
    })
}

/// Measure one point; never fails — a failure is a skipped row.
pub fn measure_point(
    p: &Point,
    meter: Arc<dyn EnergyMeter>,
    info: &GpuInfo,
    engine: &str,
    work: &mut dyn Workload,
    cost: &dyn CostModel,
    opts: &RunOpts,
) -> Row {
    let mut row = base_row(p, cost, info, engine);
    let skip = |mut row: Row, why: String| {
        row.status = Status::skipped(&why);
        row
    };
    if let Err(why) = cost.feasible(p, info.memory_total_bytes) {
        return skip(row, why);
    }
    // Idle power first, then prepare (which ends with the workload's warm-up): the window opens
    // on a GPU that has just been working, not on one that idled for the idle reading.
    match idle_power_w(meter.clone(), opts.idle_s, opts.sample) {
        Ok(w) => row.idle_power_w = Some(w),
        Err(e) => return skip(row, format!("idle power: {e:#}")),
    }
    if let Err(e) = work.prepare(p) {
        return skip(row, format!("prepare: {e:#}"));
    }
    row.started_at = utc_now();
    let full = match window(meter.clone(), work, p, p.output_tokens, opts) {
        Ok(m) => m,
        Err(e) => return skip(row, format!("run: {e:#}")),
    };
    let runs = full.runs as f64;
    row.energy_j = Some(full.energy_j / runs);
    row.duration_s = Some(full.duration_s / runs);
    row.generated_tokens = Some(full.tokens / full.runs);
    row.avg_power_w = Some(full.reading.avg_power_w());
    row.sm_clock_mhz = Some(full.reading.mean_sm_clock_mhz());
    row.mem_clock_mhz = Some(full.reading.mean_mem_clock_mhz());
    row.max_temp_c = Some(full.reading.max_temp_c());
    row.window_s = Some(full.duration_s);
    row.window_runs = Some(full.runs);
    row.window_energy_j = Some(full.energy_j);
    row.samples = Some(full.reading.samples.len() as u64);
    // Read before the prefill window below, which runs the point again with m = 1.
    if let Some(b) = work.batch() {
        row.mean_concurrency = Some(b.mean_concurrency);
        row.kv_capacity_tokens = Some(b.kv_capacity_tokens);
    }
    if opts.phases {
        match window(meter, work, p, 1, opts) {
            Ok(pre) => {
                let e = pre.energy_j / pre.runs as f64;
                row.prefill_energy_j = Some(e);
                row.decode_energy_j = Some(full.energy_j / runs - e);
            }
            Err(e) => return skip(row, format!("prefill window: {e:#}")),
        }
    }
    row.status = Status::Ok;
    row
}

fn base_row(p: &Point, cost: &dyn CostModel, info: &GpuInfo, engine: &str) -> Row {
    Row {
        llm: cost.llm_name(&p.llm).unwrap_or_else(|_| p.llm.clone()),
        input_tokens: p.input_tokens,
        output_tokens: p.output_tokens,
        requests: p.requests,
        gpu: info.name.clone(),
        driver: info.driver.clone(),
        engine: engine.to_string(),
        dtype: p.dtype.clone(),
        max_batch_size: p.max_batch_size,
        max_num_tokens: p.max_num_tokens,
        repeat: p.repeat,
        started_at: utc_now(),
        gpu_index: Some(info.index as u64),
        power_limit_w: Some(info.power_limit_w),
        gpu_uuid: info.uuid.clone(),
        ..Row::default()
    }
}

/// The resume key of a point (with the canonical LLM name the row will carry).
pub fn key_of(p: &Point, cost: &dyn CostModel) -> Key {
    Key {
        llm: cost.llm_name(&p.llm).unwrap_or_else(|_| p.llm.clone()),
        ..p.clone()
    }
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, no date crate needed).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
