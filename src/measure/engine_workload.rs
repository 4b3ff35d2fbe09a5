//! The real workload: our CUDA engine (`crate::engine`) on one GPU, behind the run loop's
//! `Workload` trait.
//!
//! The engine is (re)built when a point needs another LLM, dtype or a larger batch / token
//! capacity; weights are random (seeded) unless `--llm` names a checkpoint directory. Prompts are
//! drawn in `prepare`, outside the window, so the window holds GPU work and scheduling only; all
//! runs of a window reuse them (energy does not depend on the token values).

use super::plan::Point;
use super::run::{RunBatch, Workload};
use crate::engine::{DType, Engine, EngineOptions, Limits, Request};
use crate::llm::resolve_llm;
use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};

pub struct EngineWorkload {
    gpu: u32,
    /// EngineOptions::gemm_tune (`measure --tune-gemms`).
    gemm_tune: bool,
    seed: u64,
    engine: Option<(String, String, usize, usize, Engine)>,
    /// (point, requests with m output tokens, the same prompts with 1 output token).
    reqs: Option<(Point, Vec<Request>, Vec<Request>)>,
    /// The schedule of the last full run, from the engine's own iterations.
    last_batch: Option<RunBatch>,
}

impl EngineWorkload {
    pub fn new(gpu: u32, gemm_tune: bool) -> EngineWorkload {
        EngineWorkload {
            gpu,
            gemm_tune,
            seed: 0,
            engine: None,
            reqs: None,
            last_batch: None,
        }
    }

    fn engine_for(&mut self, p: &Point) -> Result<&mut Engine> {
        let (mbs, mnt) = (p.max_batch_size as usize, p.max_num_tokens as usize);
        let fits = matches!(&self.engine, Some((l, d, b, t, _)) if *l == p.llm && *d == p.dtype && *b >= mbs && *t >= mnt);
        if !fits {
            self.engine = None; // free the old one's memory first
            let cfg = resolve_llm(&p.llm)?;
            let dir = std::path::Path::new(&p.llm);
            let checkpoint = dir.is_dir().then(|| dir.to_path_buf());
            let opts = EngineOptions {
                dtype: DType::parse(&p.dtype)?,
                seed: self.seed,
                checkpoint,
                max_batch_size: mbs,
                max_num_tokens: mnt,
                device: self.gpu as usize,
                gemm_tune: self.gemm_tune,
                ..EngineOptions::default()
            };
            let mut e = Engine::new(&cfg, opts).with_context(|| {
                format!("starting the engine for {} on GPU {}", cfg.name, self.gpu)
            })?;
            // Every decode batch size once, so no window pays cuBLAS's first use of a shape.
            e.warm_gemm_shapes(1..=mbs)
                .context("warming the GEMM shapes")?;
            self.engine = Some((p.llm.clone(), p.dtype.clone(), mbs, mnt, e));
        }
        Ok(&mut self.engine.as_mut().expect("set above").4)
    }
}

fn limits(p: &Point) -> Limits {
    Limits {
        max_batch_size: p.max_batch_size as usize,
        max_num_tokens: p.max_num_tokens as usize,
    }
}

impl Workload for EngineWorkload {
    fn engine(&self) -> String {
        // One literal, so the binary holds it whole (scripts/dev_binary.sh checks the commit in it).
        const ENGINE: &str = concat!(
            "energy-fit ",
            env!("CARGO_PKG_VERSION"),
            " (",
            env!("ENERGY_FIT_COMMIT"),
            ", own CUDA engine)"
        );
        match self.gemm_tune {
            true => format!("{}, cuBLASLt-tuned GEMMs)", ENGINE.trim_end_matches(')')),
            false => ENGINE.to_string(),
        }
    }

    fn prepare(&mut self, p: &Point) -> Result<()> {
        let seed = self.seed;
        let e = self.engine_for(p)?;
        let vocab = e.config().vocab as u32;
        let mut rng =
            rand::rngs::StdRng::seed_from_u64(seed ^ (p.input_tokens << 20) ^ p.output_tokens);
        let prompts: Vec<Vec<u32>> = (0..p.requests)
            .map(|_| {
                (0..p.input_tokens)
                    .map(|_| rng.random_range(0..vocab))
                    .collect()
            })
            .collect();
        // Warm-up outside the window (the run loop opens it right after): prompts of this shape
        // filling one prefill iteration, then a few decode steps (the GPU busy and the prefill
        // iteration's GEMM shapes used once; the decode shapes were warmed with the engine).
        let per_iter =
            (p.max_num_tokens / p.input_tokens.max(1)).clamp(8, p.requests.max(8)) as usize;
        let warm: Vec<Request> = prompts
            .iter()
            .take(per_iter)
            .map(|q| Request {
                prompt: q.clone(),
                output_tokens: p.output_tokens.min(4) as usize,
            })
            .collect();
        e.run_requests(&warm, limits(p), false)
            .context("warm-up run")?;
        let full = prompts
            .iter()
            .map(|q| Request {
                prompt: q.clone(),
                output_tokens: p.output_tokens as usize,
            })
            .collect();
        let pre = prompts
            .into_iter()
            .map(|q| Request {
                prompt: q,
                output_tokens: 1,
            })
            .collect();
        self.reqs = Some((p.clone(), full, pre));
        Ok(())
    }

    fn run(&mut self, p: &Point, output_tokens: u64) -> Result<u64> {
        let reqs = match &self.reqs {
            Some((q, full, _)) if q == p && output_tokens == p.output_tokens => full,
            Some((q, _, pre)) if q == p && output_tokens == 1 => pre,
            _ => anyhow::bail!("point {p} with {output_tokens} output tokens was not prepared"),
        };
        let e = &mut self.engine.as_mut().context("engine not started")?.4;
        let out = e.run_requests(reqs, limits(p), false)?;
        if output_tokens == p.output_tokens {
            // Every active request yields one token per iteration (prefill included), so tokens
            // over iterations is the mean number of sequences in flight.
            let iterations = out.stats.iterations.len().max(1) as f64;
            self.last_batch = Some(RunBatch {
                mean_concurrency: out.stats.generated_tokens as f64 / iterations,
                kv_capacity_tokens: e.kv_capacity_tokens() as u64,
            });
        }
        Ok(out.stats.generated_tokens as u64)
    }

    fn batch(&self) -> Option<RunBatch> {
        self.last_batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows measured with tuned GEMMs say so in their engine column (no GPU needed: the engine
    /// starts only with the first point).
    #[test]
    fn the_engine_column_names_gemm_tuning() {
        let plain = EngineWorkload::new(0, false).engine();
        let tuned = EngineWorkload::new(0, true).engine();
        assert!(plain.ends_with(", own CUDA engine)"), "{plain}");
        assert!(
            tuned.ends_with(", own CUDA engine, cuBLASLt-tuned GEMMs)"),
            "{tuned}"
        );
    }
}
