//! GPU energy meter: NVML's cumulative energy counter read at a window's ends, plus a background
//! sampler of power, clocks and temperature for the per-point means and the idle power.
//!
//! Behind the `EnergyMeter` trait so the run loop is tested without a GPU (see `standin.rs`).
//! The meter only reads: it never changes a clock, power limit or any other GPU setting.

use anyhow::{bail, Context, Result};
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::Nvml;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Static facts about the metered GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuInfo {
    pub index: u32,
    pub name: String,
    pub driver: String,
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
        let count = nvml.device_count().context("NVML: reading the device count")?;
        let mut out = Vec::new();
        for &index in indices {
            if index >= count {
                bail!("--gpus: GPU {index} does not exist (NVML sees {count} GPU(s))");
            }
            let m = NvmlMeter { nvml: nvml.clone(), index };
            m.info()?;
            m.energy_mj()?;
            m.sample()?;
            out.push(m);
        }
        Ok(out)
    }

    fn device(&self) -> Result<nvml_wrapper::Device<'_>> {
        self.nvml.device_by_index(self.index).with_context(|| format!("NVML: opening GPU {}", self.index))
    }
}

impl EnergyMeter for NvmlMeter {
    fn info(&self) -> Result<GpuInfo> {
        let d = self.device()?;
        let i = self.index;
        Ok(GpuInfo {
            index: i,
            name: d.name().with_context(|| format!("NVML refused the name of GPU {i}"))?,
            driver: self.nvml.sys_driver_version().context("NVML refused the driver version")?,
            power_limit_w: d.enforced_power_limit().with_context(|| format!("NVML refused the enforced power limit of GPU {i}"))? as f64 / 1000.0,
            memory_total_bytes: d.memory_info().with_context(|| format!("NVML refused the memory info of GPU {i}"))?.total,
        })
    }

    fn energy_mj(&self) -> Result<u64> {
        let i = self.index;
        self.device()?
            .total_energy_consumption()
            .with_context(|| format!("NVML refused the energy counter of GPU {i} (needs Volta or newer)"))
    }

    fn sample(&self) -> Result<Sample> {
        let d = self.device()?;
        let i = self.index;
        Ok(Sample {
            t_s: 0.0,
            power_w: d.power_usage().with_context(|| format!("NVML refused the power of GPU {i}"))? as f64 / 1000.0,
            sm_clock_mhz: d.clock_info(Clock::SM).with_context(|| format!("NVML refused the SM clock of GPU {i}"))? as f64,
            mem_clock_mhz: d.clock_info(Clock::Memory).with_context(|| format!("NVML refused the memory clock of GPU {i}"))? as f64,
            temp_c: d.temperature(TemperatureSensor::Gpu).with_context(|| format!("NVML refused the temperature of GPU {i}"))? as f64,
        })
    }
}

/// Background sampler: one `Sample` every `period` until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<Vec<Sample>>>,
}

impl Sampler {
    fn start(meter: Arc<dyn EnergyMeter>, period: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut out = Vec::new();
            let mut next = t0;
            while !flag.load(Ordering::Relaxed) {
                let mut s = meter.sample()?;
                s.t_s = t0.elapsed().as_secs_f64();
                out.push(s);
                next += period;
                // Sleep in short slices so stopping is prompt.
                while !flag.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now >= next {
                        break;
                    }
                    std::thread::sleep((next - now).min(Duration::from_millis(10)));
                }
            }
            Ok(out)
        });
        Sampler { stop, handle }
    }

    fn finish(self) -> Result<Vec<Sample>> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().map_err(|_| anyhow::anyhow!("power sampler thread panicked"))?
    }
}

/// A measured window in progress.
pub struct Window {
    meter: Arc<dyn EnergyMeter>,
    start_mj: u64,
    t0: Instant,
    sampler: Sampler,
}

/// The result of a window.
#[derive(Clone, Debug)]
pub struct Reading {
    pub energy_j: f64,
    pub duration_s: f64,
    pub samples: Vec<Sample>,
}

impl Reading {
    pub fn avg_power_w(&self) -> f64 {
        if self.duration_s > 0.0 { self.energy_j / self.duration_s } else { f64::NAN }
    }
    pub fn mean_sm_clock_mhz(&self) -> f64 {
        mean(self.samples.iter().map(|s| s.sm_clock_mhz))
    }
    pub fn mean_mem_clock_mhz(&self) -> f64 {
        mean(self.samples.iter().map(|s| s.mem_clock_mhz))
    }
    pub fn max_temp_c(&self) -> f64 {
        self.samples.iter().map(|s| s.temp_c).fold(f64::NAN, f64::max)
    }
    pub fn mean_power_w(&self) -> f64 {
        mean(self.samples.iter().map(|s| s.power_w))
    }
}

fn mean(it: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = it.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { f64::NAN } else { s / n as f64 }
}

impl Window {
    /// Start the sampler, then read the counter: the window opens at that reading.
    pub fn start(meter: Arc<dyn EnergyMeter>, period: Duration) -> Result<Window> {
        let sampler = Sampler::start(meter.clone(), period);
        let start_mj = meter.energy_mj()?;
        Ok(Window { meter, start_mj, t0: Instant::now(), sampler })
    }

    /// Close the window: read the counter, stop the sampler.
    pub fn finish(self) -> Result<Reading> {
        let end_mj = self.meter.energy_mj()?;
        let duration_s = self.t0.elapsed().as_secs_f64();
        let mut samples = self.sampler.finish()?;
        if samples.is_empty() {
            samples.push(self.meter.sample()?);
        }
        if end_mj < self.start_mj {
            bail!("energy counter went backwards ({} mJ -> {end_mj} mJ); driver reloaded?", self.start_mj);
        }
        Ok(Reading { energy_j: (end_mj - self.start_mj) as f64 / 1000.0, duration_s, samples })
    }
}

/// Idle power just before a point: mean sampled power over `secs` (one sample if `secs` is 0).
pub fn idle_power_w(meter: Arc<dyn EnergyMeter>, secs: f64, period: Duration) -> Result<f64> {
    if secs <= 0.0 {
        return Ok(meter.sample()?.power_w);
    }
    let w = Window::start(meter, period)?;
    std::thread::sleep(Duration::from_secs_f64(secs));
    let r = w.finish()?;
    // The counter over a 1 s idle window is ±0.1 s quantised; the sampled mean is steadier.
    Ok(r.mean_power_w())
}
