//! The run loop with a stand-in meter and workloads (no GPU): window repetition, per-run energy,
//! skipped points, phases, multi-GPU workers. Energies are synthetic: constant power × time.

use energy_fit::measure::cost::RooflineCost;
use energy_fit::measure::meter::{idle_power_w, EnergyMeter, GpuInfo, Sample};
use energy_fit::measure::run::{measure_point, run_sweep, RunOpts};
use energy_fit::measure::standin::{StandinConfig, StandinMeter};
use energy_fit::measure::{read_rows, Point, Workload, Writer};
use std::sync::Arc;
use std::time::Duration;

fn point(n: u64, m: u64) -> Point {
    Point {
        llm: "llama-3.2-1b".into(),
        input_tokens: n,
        output_tokens: m,
        requests: 4,
        max_batch_size: 1024,
        max_num_tokens: 8192,
        dtype: "bf16".into(),
        repeat: 0,
    }
}

fn opts(min_window_s: f64, phases: bool) -> RunOpts {
    RunOpts {
        sample: Duration::from_millis(5),
        idle_s: 0.0,
        min_window_s,
        phases,
        progress: false,
        stop_after: None,
    }
}

fn meter(power_w: f64) -> Arc<dyn EnergyMeter> {
    let cfg = StandinConfig {
        power_w,
        ..StandinConfig::parse("").unwrap()
    };
    Arc::new(StandinMeter::open_all(&cfg, &[0]).unwrap().pop().unwrap())
}

/// Sleeps `ms_per_token` per output token (so prefill-only runs are short); fails on `fail_n`.
struct Sleepy {
    ms_per_token: f64,
    fail_n: Option<u64>,
    prepare_fails: bool,
    runs: usize,
}

impl Workload for Sleepy {
    fn engine(&self) -> String {
        "sleepy".into()
    }
    fn prepare(&mut self, _p: &Point) -> anyhow::Result<()> {
        if self.prepare_fails {
            anyhow::bail!("cannot load")
        }
        Ok(())
    }
    fn run(&mut self, p: &Point, m: u64) -> anyhow::Result<u64> {
        if Some(p.input_tokens) == self.fail_n {
            anyhow::bail!("out of memory\nsecond line");
        }
        self.runs += 1;
        std::thread::sleep(Duration::from_secs_f64(
            self.ms_per_token * m as f64 / 1000.0,
        ));
        Ok(p.requests * m)
    }
}

fn sleepy(ms: f64) -> Sleepy {
    Sleepy {
        ms_per_token: ms,
        fail_n: None,
        prepare_fails: false,
        runs: 0,
    }
}

#[test]
fn short_points_are_repeated_inside_the_window_and_reported_per_run() {
    let m = meter(250.0);
    let info = m.info().unwrap();
    let mut w = sleepy(0.5); // 64 tokens → 32 ms per run
    let row = measure_point(
        &point(64, 64),
        m,
        &info,
        "sleepy",
        &mut w,
        &RooflineCost,
        &opts(0.3, false),
    );
    assert!(row.status.is_ok(), "{}", row.status);
    let runs = row.window_runs.unwrap();
    assert!(
        runs >= 5,
        "0.3 s window of ~32 ms runs needs ≥ 5 runs, got {runs}"
    );
    assert_eq!(runs as usize, w.runs);
    assert!(row.window_s.unwrap() >= 0.3);
    // Per-run numbers are the window's divided by the runs.
    let e = row.energy_j.unwrap();
    assert!((e * runs as f64 - row.window_energy_j.unwrap()).abs() < 1e-9);
    assert!((row.duration_s.unwrap() * runs as f64 - row.window_s.unwrap()).abs() < 1e-9);
    assert_eq!(row.generated_tokens, Some(4 * 64));
    // Constant 250 W: energy = 250 W × duration, avg power 250 W (counter truncated to mJ).
    assert!(
        (row.avg_power_w.unwrap() - 250.0).abs() < 1.0,
        "{:?}",
        row.avg_power_w
    );
    assert!((e - 250.0 * row.duration_s.unwrap()).abs() < 0.01);
    assert_eq!(row.sm_clock_mhz, Some(1980.0));
    assert_eq!(row.max_temp_c, Some(40.0));
    assert_eq!(row.idle_power_w, Some(250.0));
    assert!(row.samples.unwrap() >= 1);
    assert_eq!(row.gpu, "stand-in GPU");
    assert_eq!(row.power_limit_w, Some(700.0));
    assert!(
        row.started_at.ends_with('Z') && row.started_at.len() == 20,
        "{}",
        row.started_at
    );
}

#[test]
fn long_points_run_once() {
    let m = meter(100.0);
    let info = m.info().unwrap();
    let mut w = sleepy(1.0);
    let row = measure_point(
        &point(64, 128),
        m,
        &info,
        "sleepy",
        &mut w,
        &RooflineCost,
        &opts(0.05, false),
    );
    assert_eq!(row.window_runs, Some(1));
}

#[test]
fn failures_become_skipped_rows_with_one_line_reasons() {
    let m = meter(100.0);
    let info = m.info().unwrap();
    let mut w = Sleepy {
        fail_n: Some(128),
        ..sleepy(0.1)
    };
    let row = measure_point(
        &point(128, 64),
        m.clone(),
        &info,
        "sleepy",
        &mut w,
        &RooflineCost,
        &opts(0.0, false),
    );
    assert_eq!(
        row.status.to_string(),
        "skipped: run: out of memory second line"
    );
    assert_eq!(row.energy_j, None);
    let mut w = Sleepy {
        prepare_fails: true,
        ..sleepy(0.1)
    };
    let row = measure_point(
        &point(64, 64),
        m.clone(),
        &info,
        "sleepy",
        &mut w,
        &RooflineCost,
        &opts(0.0, false),
    );
    assert_eq!(row.status.to_string(), "skipped: prepare: cannot load");
    // Infeasible on this GPU's memory: skipped before the workload is touched.
    let small = GpuInfo {
        memory_total_bytes: 1 << 30,
        ..info
    };
    let mut w = sleepy(0.1);
    let row = measure_point(
        &point(64, 64),
        m,
        &small,
        "sleepy",
        &mut w,
        &RooflineCost,
        &opts(0.0, false),
    );
    assert!(
        row.status.to_string().starts_with("skipped: needs"),
        "{}",
        row.status
    );
    assert_eq!(w.runs, 0);
}

#[test]
fn phases_split_prefill_and_decode() {
    let m = meter(300.0);
    let info = m.info().unwrap();
    let mut w = sleepy(1.0); // m = 100 → 100 ms; prefill alone (m = 1) → 1 ms
    let row = measure_point(
        &point(64, 100),
        m,
        &info,
        "sleepy",
        &mut w,
        &RooflineCost,
        &opts(0.0, true),
    );
    let (e, pre, dec) = (
        row.energy_j.unwrap(),
        row.prefill_energy_j.unwrap(),
        row.decode_energy_j.unwrap(),
    );
    assert!((pre + dec - e).abs() < 1e-9);
    assert!(pre > 0.0 && pre < 0.1 * e, "prefill {pre} J of {e} J");
}

/// A meter whose counter only moves in 100 ms steps, like NVML's on an H100.
struct Quantised(Arc<dyn EnergyMeter>);
impl EnergyMeter for Quantised {
    fn info(&self) -> anyhow::Result<GpuInfo> {
        self.0.info()
    }
    fn energy_mj(&self) -> anyhow::Result<u64> {
        Ok(self.0.energy_mj()? / 20_000 * 20_000) // 200 W × 100 ms = 20 J steps
    }
    fn sample(&self) -> anyhow::Result<Sample> {
        self.0.sample()
    }
}

#[test]
fn min_window_bounds_the_counter_quantisation_error() {
    let m: Arc<dyn EnergyMeter> = Arc::new(Quantised(meter(200.0)));
    let info = m.info().unwrap();
    let mut w = sleepy(0.5); // 32 ms runs, far below one counter step
    let row = measure_point(
        &point(64, 64),
        m,
        &info,
        "sleepy",
        &mut w,
        &RooflineCost,
        &opts(1.0, false),
    );
    let window = row.window_s.unwrap();
    let err = (row.window_energy_j.unwrap() - 200.0 * window).abs() / (200.0 * window);
    assert!(err <= 0.11, "1 s window, 0.1 s steps: error {err}");
}

#[test]
fn sweep_on_two_gpus_writes_every_point_once_metered_by_its_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.csv");
    let cfg = StandinConfig::parse("power_w=150").unwrap();
    let meters: Vec<Arc<dyn EnergyMeter>> = StandinMeter::open_all(&cfg, &[0, 3])
        .unwrap()
        .into_iter()
        .map(|m| Arc::new(m) as _)
        .collect();
    let pts: Vec<Point> = [64, 128, 256]
        .iter()
        .flat_map(|&n| [64, 128].map(|m| point(n, m)))
        .collect();
    let factory = |gpu: u32| -> anyhow::Result<Box<dyn Workload>> {
        Ok(Box::new(Sleepy {
            fail_n: if gpu == 3 { Some(256) } else { None },
            ..sleepy(0.2)
        }))
    };
    let s = run_sweep(
        pts.clone(),
        meters,
        &factory,
        &RooflineCost,
        Writer::open(&out, false).unwrap(),
        &opts(0.0, false),
    )
    .unwrap();
    let rows = read_rows(&out).unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(s.ok + s.skipped, 6);
    let gpus: std::collections::HashSet<_> = rows.iter().map(|r| r.gpu_index.unwrap()).collect();
    assert!(gpus.is_subset(&[0, 3].into()), "{gpus:?}");
    for r in &rows {
        let failed_here = r.gpu_index == Some(3) && r.input_tokens == 256;
        assert_eq!(!r.status.is_ok(), failed_here, "{r:?}");
    }
    let mut keys: Vec<_> = rows
        .iter()
        .map(|r| (r.input_tokens, r.output_tokens))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            (64, 64),
            (64, 128),
            (128, 64),
            (128, 128),
            (256, 64),
            (256, 128)
        ]
    );
}

/// Synthetic meter whose power reading lags like NVML's 1 s average: the counter climbs at
/// `counter_w`, the sampled power still says `sampled_w` (the last point's draw).
struct LaggingMeter {
    counter_w: f64,
    sampled_w: f64,
    t0: std::time::Instant,
}

impl EnergyMeter for LaggingMeter {
    fn info(&self) -> anyhow::Result<GpuInfo> {
        meter(0.0).info()
    }
    fn energy_mj(&self) -> anyhow::Result<u64> {
        Ok((self.counter_w * self.t0.elapsed().as_secs_f64() * 1000.0) as u64)
    }
    fn sample(&self) -> anyhow::Result<Sample> {
        Ok(Sample {
            t_s: 0.0,
            power_w: self.sampled_w,
            sm_clock_mhz: 345.0,
            mem_clock_mhz: 2619.0,
            temp_c: 40.0,
        })
    }
}

#[test]
fn idle_power_comes_from_the_counter_not_the_lagging_power_reading() {
    let m: Arc<dyn EnergyMeter> = Arc::new(LaggingMeter {
        counter_w: 75.0,
        sampled_w: 690.0,
        t0: std::time::Instant::now(),
    });
    let p = idle_power_w(m.clone(), 0.2, Duration::from_millis(5)).unwrap();
    assert!(
        (p - 75.0).abs() < 1.0,
        "idle power {p} W, the counter says 75 W"
    );
    // --idle-s 0 asks for one power sample, lag and all.
    assert_eq!(
        idle_power_w(m, 0.0, Duration::from_millis(5)).unwrap(),
        690.0
    );
    assert!(
        (idle_power_w(meter(123.0), 0.05, Duration::from_millis(5)).unwrap() - 123.0).abs() < 1.0
    );
}

#[test]
fn stop_after_starts_no_new_point_and_leaves_the_rest_for_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.csv");
    let pts: Vec<Point> = [64, 128, 256, 512].iter().map(|&n| point(n, 64)).collect();
    let factory = |_gpu: u32| -> anyhow::Result<Box<dyn Workload>> { Ok(Box::new(sleepy(1.0))) }; // ~64 ms per point
    let o = RunOpts {
        stop_after: Some(Duration::from_millis(100)),
        ..opts(0.0, false)
    };
    let s = run_sweep(
        pts.clone(),
        vec![meter(100.0)],
        &factory,
        &RooflineCost,
        Writer::open(&out, false).unwrap(),
        &o,
    )
    .unwrap();
    let rows = read_rows(&out).unwrap();
    assert!(
        s.ok >= 1 && s.ok < 4,
        "the first point always starts, not all four fit in 100 ms: {s:?}"
    );
    assert_eq!(rows.len(), s.ok);
    assert_eq!(s.left, 4 - s.ok);
    // Resume runs exactly the points left.
    let w = Writer::open(&out, true).unwrap();
    let left: Vec<Point> = pts
        .into_iter()
        .filter(|p| {
            !energy_fit::measure::writer::done_keys(w.rows(), false)
                .contains(&energy_fit::measure::run::key_of(p, &RooflineCost))
        })
        .collect();
    assert_eq!(left.len(), s.left);
    let s2 = run_sweep(
        left,
        vec![meter(100.0)],
        &factory,
        &RooflineCost,
        w,
        &opts(0.0, false),
    )
    .unwrap();
    assert_eq!((s2.ok, s2.left), (4 - s.ok, 0));
    assert_eq!(read_rows(&out).unwrap().len(), 4);
}
