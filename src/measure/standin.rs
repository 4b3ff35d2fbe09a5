//! Stand-in meter and workload for tests: no GPU, deterministic energy (constant power × time).
//!
//! Compiled into the binary so integration tests can spawn the real `energy-fit measure`, kill it
//! and resume it; reachable only through the hidden environment variable `ENERGY_FIT_STANDIN`
//! (never set in normal use), whose value configures it, e.g.
//! `power_w=200,us_per_token=0.05,fail_input=4096,gpus=2,tick_ms=100` (`tick_ms`: the counter moves
//! in steps like NVML's; 0, the default, is continuous).

use super::meter::{EnergyMeter, GpuInfo, Sample};
use super::plan::Point;
use super::run::{RunBatch, Workload};
use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

pub const STANDIN_ENV: &str = "ENERGY_FIT_STANDIN";

#[derive(Clone, Debug)]
pub struct StandinConfig {
    /// Constant power the stand-in GPU draws.
    pub power_w: f64,
    /// Run time per processed token (R · (n + m)) in microseconds.
    pub us_per_token: f64,
    /// Input lengths whose runs fail (to test skipped points).
    pub fail_inputs: Vec<u64>,
    /// GPUs the stand-in pretends to have.
    pub gpus: u32,
    /// The energy counter moves only every `tick_ms` ms, like NVML's (0: continuous).
    pub tick_ms: f64,
}

impl StandinConfig {
    pub fn parse(spec: &str) -> Result<StandinConfig> {
        let mut c = StandinConfig {
            power_w: 200.0,
            us_per_token: 0.05,
            fail_inputs: vec![],
            gpus: 8,
            tick_ms: 0.0,
        };
        for kv in spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "1")
        {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("{STANDIN_ENV}: expected key=value, got {kv:?}"))?;
            let bad = || format!("{STANDIN_ENV}: bad value {v:?} for {k}");
            match k {
                "power_w" => c.power_w = v.parse().with_context(bad)?,
                "us_per_token" => c.us_per_token = v.parse().with_context(bad)?,
                "fail_input" => c.fail_inputs.push(v.parse().with_context(bad)?),
                "gpus" => c.gpus = v.parse().with_context(bad)?,
                "tick_ms" => {
                    c.tick_ms = v
                        .parse::<f64>()
                        .ok()
                        .filter(|t| *t >= 0.0)
                        .with_context(bad)?
                }
                _ => bail!("{STANDIN_ENV}: unknown key {k:?}"),
            }
        }
        Ok(c)
    }
}

/// Energy = `power_w` × time since creation (floored to whole ticks if `tick_s` > 0).
pub struct StandinMeter {
    index: u32,
    power_w: f64,
    tick_s: f64,
    t0: Instant,
}

impl StandinMeter {
    pub fn open_all(cfg: &StandinConfig, indices: &[u32]) -> Result<Vec<StandinMeter>> {
        indices
            .iter()
            .map(|&index| {
                if index >= cfg.gpus {
                    bail!(
                        "--gpus: GPU {index} does not exist (stand-in has {} GPU(s))",
                        cfg.gpus
                    );
                }
                Ok(StandinMeter {
                    index,
                    power_w: cfg.power_w,
                    tick_s: cfg.tick_ms / 1000.0,
                    t0: Instant::now(),
                })
            })
            .collect()
    }
}

impl EnergyMeter for StandinMeter {
    fn info(&self) -> Result<GpuInfo> {
        Ok(GpuInfo {
            index: self.index,
            name: "stand-in GPU".into(),
            driver: "stand-in".into(),
            uuid: format!("stand-in-GPU-{}", self.index),
            power_limit_w: 700.0,
            memory_total_bytes: STANDIN_MEMORY_BYTES,
        })
    }
    fn energy_mj(&self) -> Result<u64> {
        let t = self.t0.elapsed().as_secs_f64();
        let t = if self.tick_s > 0.0 {
            (t / self.tick_s).floor() * self.tick_s
        } else {
            t
        };
        Ok((self.power_w * t * 1000.0) as u64)
    }
    fn sample(&self) -> Result<Sample> {
        Ok(Sample {
            t_s: 0.0,
            power_w: self.power_w,
            sm_clock_mhz: 1980.0,
            mem_clock_mhz: 2619.0,
            temp_c: 40.0,
        })
    }
}

/// Sleeps R · (n + m) · `us_per_token`; fails on `fail_inputs`.
pub struct StandinWorkload {
    pub cfg: StandinConfig,
    last_batch: Option<RunBatch>,
}

impl StandinWorkload {
    pub fn new(cfg: StandinConfig) -> StandinWorkload {
        StandinWorkload {
            cfg,
            last_batch: None,
        }
    }
}

/// GPU memory of the stand-in GPU (`StandinMeter::info`).
const STANDIN_MEMORY_BYTES: u64 = 80 << 30;

/// The batch the engine's scheduler would give `p` on the stand-in GPU, from the CPU predictor
/// (`llm::concurrency`); None for an LLM or dtype it does not know.
fn predicted_batch(p: &Point) -> Option<RunBatch> {
    use crate::llm::concurrency::{concurrency, kv_capacity_tokens, Batching, PAGE_TOKENS};
    let cfg = crate::llm::resolve_llm(&p.llm).ok()?;
    let bytes = super::plan::dtype_bytes(&p.dtype)?;
    let (mbs, mnt) = (p.max_batch_size as usize, p.max_num_tokens as usize);
    let cap = kv_capacity_tokens(
        &cfg,
        STANDIN_MEMORY_BYTES as f64,
        bytes,
        mnt,
        mbs.min(p.requests as usize),
    );
    let b = Batching {
        requests: p.requests as usize,
        max_batch_size: mbs,
        max_num_tokens: mnt,
        kv_capacity_tokens: cap,
        page_tokens: PAGE_TOKENS,
    };
    let c = concurrency(p.input_tokens as usize, p.output_tokens as usize, &b).ok()?;
    Some(RunBatch {
        mean_concurrency: c.mean_in_flight,
        kv_capacity_tokens: cap as u64,
    })
}

impl Workload for StandinWorkload {
    fn engine(&self) -> String {
        "stand-in".into()
    }
    fn prepare(&mut self, _p: &Point) -> Result<()> {
        Ok(())
    }
    fn run(&mut self, p: &Point, m: u64) -> Result<u64> {
        if self.cfg.fail_inputs.contains(&p.input_tokens) {
            bail!("stand-in failure for input_tokens {}", p.input_tokens);
        }
        let us = (p.requests * (p.input_tokens + m)) as f64 * self.cfg.us_per_token;
        std::thread::sleep(Duration::from_secs_f64(us * 1e-6));
        if m == p.output_tokens {
            self.last_batch = predicted_batch(p);
        }
        Ok(p.requests * m)
    }

    fn batch(&self) -> Option<RunBatch> {
        self.last_batch
    }
}
