//! GPU energy meter: NVML's cumulative energy counter read at a window's ends, plus a background
//! sampler of power, clocks and temperature for the per-point means.
//!
//! The counter only moves at discrete updates (~100 ms on an H100), so a plain reading at each end
//! is off by up to one update's energy. Instead the window opens on an update (`Window::start`
//! polls until the counter changes) and its end is interpolated linearly between the updates
//! just before and just after the last token (a poller thread records every change), so the
//! counter's steps no longer quantise short windows. `Reading` reports the observed update period
//! and whether both ends were exact.
//!
//! Behind the `EnergyMeter` trait so the run loop is tested without a GPU (see `standin.rs`).
//! The meter only reads: it never changes a clock, power limit or any other GPU setting.

use anyhow::{bail, Context, Result};
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::Nvml;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Static facts about the metered GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuInfo {
    pub index: u32,
    pub name: String,
    pub driver: String,
    /// NVML's UUID of the card ("GPU-…"): tells apart cards of one model, which can differ by
    /// several percent in energy.
    pub uuid: String,
    /// Enforced power limit (W), as set by the administrator; never changed here.
    pub power_limit_w: f64,
    pub memory_total_bytes: u64,
}

/// One reading of the background sampler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Seconds since the window started.
    pub t_s: f64,
    pub power_w: f64,
    pub sm_clock_mhz: f64,
    pub mem_clock_mhz: f64,
    pub temp_c: f64,
}

/// What the run loop needs from a meter. Implementations must be cheap to call from two threads
/// (the run loop reads the counter while the sampler thread samples).
pub trait EnergyMeter: Send + Sync {
    fn info(&self) -> Result<GpuInfo>;
    /// Cumulative energy since driver load, millijoules.
    fn energy_mj(&self) -> Result<u64>;
    /// Instantaneous power, clocks and temperature (`t_s` is filled in by the sampler).
    fn sample(&self) -> Result<Sample>;
}

/// NVML meter of one GPU (index as NVML numbers them).
pub struct NvmlMeter {
    nvml: Arc<Nvml>,
    index: u32,
}

impl NvmlMeter {
    /// Open meters for `indices`, reading every quantity once so that a missing library, a missing
    /// GPU or a refused reading is an error before any work starts.
    pub fn open_all(indices: &[u32]) -> Result<Vec<NvmlMeter>> {
        let nvml = Arc::new(Nvml::init().context(
            "NVML is not available (libnvidia-ml.so not found or no NVIDIA driver); measure needs an NVIDIA GPU (use --dry-run to plan without one)",
        )?);
        let count = nvml
            .device_count()
            .context("NVML: reading the device count")?;
        let mut out = Vec::new();
        for &index in indices {
            if index >= count {
                bail!("--gpus: GPU {index} does not exist (NVML sees {count} GPU(s))");
            }
            let m = NvmlMeter {
                nvml: nvml.clone(),
                index,
            };
            m.info()?;
            m.energy_mj()?;
            m.sample()?;
            out.push(m);
        }
        Ok(out)
    }

    fn device(&self) -> Result<nvml_wrapper::Device<'_>> {
        self.nvml
            .device_by_index(self.index)
            .with_context(|| format!("NVML: opening GPU {}", self.index))
    }
}

impl EnergyMeter for NvmlMeter {
    fn info(&self) -> Result<GpuInfo> {
        let d = self.device()?;
        let i = self.index;
        Ok(GpuInfo {
            index: i,
            name: d
                .name()
                .with_context(|| format!("NVML refused the name of GPU {i}"))?,
            driver: self
                .nvml
                .sys_driver_version()
                .context("NVML refused the driver version")?,
            uuid: d
                .uuid()
                .with_context(|| format!("NVML refused the UUID of GPU {i}"))?,
            power_limit_w: d
                .enforced_power_limit()
                .with_context(|| format!("NVML refused the enforced power limit of GPU {i}"))?
                as f64
                / 1000.0,
            memory_total_bytes: d
                .memory_info()
                .with_context(|| format!("NVML refused the memory info of GPU {i}"))?
                .total,
        })
    }

    fn energy_mj(&self) -> Result<u64> {
        let i = self.index;
        self.device()?.total_energy_consumption().with_context(|| {
            format!("NVML refused the energy counter of GPU {i} (needs Volta or newer)")
        })
    }

    fn sample(&self) -> Result<Sample> {
        let d = self.device()?;
        let i = self.index;
        Ok(Sample {
            t_s: 0.0,
            power_w: d
                .power_usage()
                .with_context(|| format!("NVML refused the power of GPU {i}"))?
                as f64
                / 1000.0,
            sm_clock_mhz: d
                .clock_info(Clock::SM)
                .with_context(|| format!("NVML refused the SM clock of GPU {i}"))?
                as f64,
            mem_clock_mhz: d
                .clock_info(Clock::Memory)
                .with_context(|| format!("NVML refused the memory clock of GPU {i}"))?
                as f64,
            temp_c: d
                .temperature(TemperatureSensor::Gpu)
                .with_context(|| format!("NVML refused the temperature of GPU {i}"))?
                as f64,
        })
    }
}

/// How long the window's ends wait for the counter to move before giving up on alignment.
const TICK_TIMEOUT: Duration = Duration::from_secs(1);
/// Sleep between counter reads while waiting for the opening change (one NVML read takes 1–3 ms).
const ALIGN_POLL: Duration = Duration::from_millis(1);
/// Sleep between counter reads of the background poller.
const TICK_POLL: Duration = Duration::from_millis(2);

/// A background thread that runs until told to stop.
struct Background<T> {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<T>>,
}

impl<T: Send + 'static> Background<T> {
    fn spawn(f: impl FnOnce(&AtomicBool) -> Result<T> + Send + 'static) -> Background<T> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        Background {
            stop,
            handle: std::thread::spawn(move || f(&flag)),
        }
    }
    fn signal(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
    fn join(self, what: &str) -> Result<T> {
        self.signal();
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("{what} thread panicked"))?
    }
}

/// Background sampler: one `Sample` every `period` (`t_s` from `t0`) until stopped.
fn sampler(meter: Arc<dyn EnergyMeter>, period: Duration, t0: Instant) -> Background<Vec<Sample>> {
    Background::spawn(move |stop| {
        let mut out = Vec::new();
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let mut s = meter.sample()?;
            s.t_s = t0.elapsed().as_secs_f64();
            out.push(s);
            next += period;
            // Sleep in short slices so stopping is prompt.
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= next {
                    break;
                }
                std::thread::sleep((next - now).min(Duration::from_millis(10)));
            }
        }
        Ok(out)
    })
}

/// A change of the energy counter: (seconds since the window opened, counter in mJ). A change is
/// timed at the return of the first read that shows it — every tick, the opening one included,
/// by the same rule, so the few ms by which that trails the true update cancel in differences.
pub type Tick = (f64, u64);

/// Counter poller: every `TICK_POLL`, pushes each change of the counter (from `last`) to `ticks`.
fn poller(
    meter: Arc<dyn EnergyMeter>,
    t0: Instant,
    mut last: u64,
    ticks: Arc<Mutex<Vec<Tick>>>,
) -> Background<()> {
    Background::spawn(move |stop| {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(TICK_POLL);
            let e = meter.energy_mj()?;
            if e != last {
                ticks.lock().unwrap().push((t0.elapsed().as_secs_f64(), e));
                last = e;
            }
        }
        Ok(())
    })
}

/// Counter value (mJ) at `t_end`, interpolated linearly between the last change at or before
/// `t_end` (t1, E1) and the first after it (t2, E2): E1 + (E2 − E1)·(t_end − t1)/(t2 − t1).
/// `ticks` are in time order. Returns (value, interpolated); without a change after `t_end` the
/// value is E1 (the plain reading), without one at or before it the first tick's.
pub fn counter_at(ticks: &[Tick], t_end: f64) -> (f64, bool) {
    let after = ticks.partition_point(|&(t, _)| t <= t_end);
    match (after.checked_sub(1).map(|i| ticks[i]), ticks.get(after)) {
        (Some((t1, e1)), Some(&(t2, e2))) if t2 > t1 => (
            e1 as f64 + (e2 as f64 - e1 as f64) * (t_end - t1) / (t2 - t1),
            true,
        ),
        (Some((_, e1)), _) => (e1 as f64, false),
        (None, first) => (first.map_or(f64::NAN, |&(_, e)| e as f64), false),
    }
}

/// Median interval between consecutive changes (ms); `None` with fewer than two changes.
pub fn median_period_ms(ticks: &[Tick]) -> Option<f64> {
    let mut gaps: Vec<f64> = ticks
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * 1000.0)
        .collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_by(f64::total_cmp);
    let n = gaps.len();
    Some(if n % 2 == 1 {
        gaps[n / 2]
    } else {
        (gaps[n / 2 - 1] + gaps[n / 2]) / 2.0
    })
}

/// Poll the counter every `ALIGN_POLL` until it differs from `last`: (instant of the read that
/// showed the change, new value), or `None` after `TICK_TIMEOUT`.
fn next_change(meter: &dyn EnergyMeter, last: u64) -> Result<Option<(Instant, u64)>> {
    let deadline = Instant::now() + TICK_TIMEOUT;
    while Instant::now() < deadline {
        std::thread::sleep(ALIGN_POLL);
        let e = meter.energy_mj()?;
        if e != last {
            return Ok(Some((Instant::now(), e)));
        }
    }
    Ok(None)
}

/// A measured window in progress.
pub struct Window {
    meter: Arc<dyn EnergyMeter>,
    start_mj: u64,
    t0: Instant,
    /// The window opened on a counter change (else on a plain reading).
    aligned_start: bool,
    /// Counter changes after the opening, shared with the poller.
    ticks: Arc<Mutex<Vec<Tick>>>,
    poller: Background<()>,
    sampler: Background<Vec<Sample>>,
}

/// The result of a window.
#[derive(Clone, Debug)]
pub struct Reading {
    pub energy_j: f64,
    pub duration_s: f64,
    pub samples: Vec<Sample>,
    /// Median interval between the counter's updates seen during the window (ms), if ≥ 2 seen.
    pub counter_period_ms: Option<f64>,
    /// Both ends are exact: the window opened on a counter update and its end was interpolated
    /// between two updates. False where the counter did not move within 1 s at either end, so
    /// that end carries up to one update period of quantisation.
    pub aligned: bool,
}

impl Reading {
    pub fn avg_power_w(&self) -> f64 {
        if self.duration_s > 0.0 {
            self.energy_j / self.duration_s
        } else {
            f64::NAN
        }
    }
    pub fn mean_sm_clock_mhz(&self) -> f64 {
        mean(self.samples.iter().map(|s| s.sm_clock_mhz))
    }
    pub fn mean_mem_clock_mhz(&self) -> f64 {
        mean(self.samples.iter().map(|s| s.mem_clock_mhz))
    }
    pub fn max_temp_c(&self) -> f64 {
        self.samples
            .iter()
            .map(|s| s.temp_c)
            .fold(f64::NAN, f64::max)
    }
    pub fn mean_power_w(&self) -> f64 {
        mean(self.samples.iter().map(|s| s.power_w))
    }
}

fn mean(it: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = it.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

impl Window {
    /// Open the window on the counter's next update (waiting up to 1 s for it; a plain reading if
    /// none comes): the caller starts its work at once, so the window holds nothing from before
    /// and misses nothing of the work. Starts the sampler and the counter poller.
    pub fn start(meter: Arc<dyn EnergyMeter>, period: Duration) -> Result<Window> {
        let first = meter.energy_mj()?;
        let (t0, start_mj, aligned_start) = match next_change(meter.as_ref(), first)? {
            Some((t, e)) => (t, e, true),
            None => (Instant::now(), first, false),
        };
        let ticks = Arc::new(Mutex::new(Vec::new()));
        let poller = poller(meter.clone(), t0, start_mj, ticks.clone());
        let sampler = sampler(meter.clone(), period, t0);
        Ok(Window {
            meter,
            start_mj,
            t0,
            aligned_start,
            ticks,
            poller,
            sampler,
        })
    }

    /// Close the window now (t_end): stop the sampler, wait (up to 1 s) for the counter's first
    /// update after t_end, and interpolate the counter at t_end between the updates around it.
    /// The wait for that update is not part of the window's duration.
    pub fn finish(self) -> Result<Reading> {
        let t_end = self.t0.elapsed().as_secs_f64();
        self.sampler.signal();
        let deadline = Instant::now() + TICK_TIMEOUT;
        let after_end = |ticks: &Mutex<Vec<Tick>>| {
            ticks
                .lock()
                .unwrap()
                .last()
                .is_some_and(|&(t, _)| t > t_end)
        };
        while !after_end(&self.ticks)
            && !self.poller.handle.is_finished()
            && Instant::now() < deadline
        {
            std::thread::sleep(ALIGN_POLL);
        }
        self.poller.join("energy counter poller")?;
        let mut samples = self.sampler.join("power sampler")?;
        if samples.is_empty() {
            samples.push(self.meter.sample()?);
        }
        // The opening reading is the first point of the counter's path; it is a change (and
        // counts for the update period) only when the window opened on one.
        let mut ticks = vec![(0.0, self.start_mj)];
        ticks.append(&mut self.ticks.lock().unwrap());
        if let Some(w) = ticks.windows(2).find(|w| w[1].1 < w[0].1) {
            bail!(
                "energy counter went backwards ({} mJ -> {} mJ); driver reloaded?",
                w[0].1,
                w[1].1
            );
        }
        let (end_mj, interpolated) = counter_at(&ticks, t_end);
        Ok(Reading {
            energy_j: (end_mj - self.start_mj as f64) / 1000.0,
            duration_s: t_end,
            samples,
            counter_period_ms: median_period_ms(&ticks[usize::from(!self.aligned_start)..]),
            aligned: self.aligned_start && interpolated,
        })
    }
}

/// Idle power just before a point: the energy counter's mean power over `secs` (one power sample
/// if `secs` is 0). Not the sampler's mean: NVML documents its power reading on Ampere (except
/// GA100) and newer as an average over the last second, so sampled right after a point it still
/// carries the point's draw (rows measured that way read 400-480 W "idle" after 690 W points,
/// 75 W before a process's first point). The counter has no such lag; the window opens and closes
/// on its updates like a measured one.
pub fn idle_power_w(meter: Arc<dyn EnergyMeter>, secs: f64, period: Duration) -> Result<f64> {
    if secs <= 0.0 {
        return Ok(meter.sample()?.power_w);
    }
    let w = Window::start(meter, period)?;
    std::thread::sleep(Duration::from_secs_f64(secs));
    Ok(w.finish()?.avg_power_w())
}
